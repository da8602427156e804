"""create_app: one Flask app serving the gateway's API, the control API and /openapi.json."""
from __future__ import annotations

import hmac
import logging
from dataclasses import replace

from flask import Flask, g, jsonify, request
from werkzeug.exceptions import HTTPException

from .. import __version__
from ..config import Settings
from ..errors import GatewayError
from ..instance import Emulator, build
from ..sandboxes import Sandboxes
from . import control_api, dashboard, gateway_api, journal, openapi, pages
from .journal import JOURNALED
from .plumbing import plkey

log = logging.getLogger("payletter_emulator")
BODY_LIMIT = 1024 * 1024
_HTTP_KINDS = {404: "not_found", 405: "method_not_allowed", 413: "body_too_large"}


def create_app(settings: Settings | None = None, **overrides) -> Flask:
    """The app for tests (in-process), the CLI's server and gunicorn alike.

    `create_app(db=":memory:", strict=True)` is shorthand for `create_app(Settings(...))`.
    """
    settings = replace(settings or Settings(), **overrides)
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = BODY_LIMIT
    app.json.ensure_ascii = False
    app.json.sort_keys = False
    app.url_map.strict_slashes = False
    root = build(settings)
    sandboxes = Sandboxes(root, settings)
    app.extensions["payletter"] = root
    app.extensions["payletter_sandboxes"] = sandboxes
    app.wsgi_app = SandboxPrefix(app.wsgi_app)
    app.register_blueprint(gateway_api.blueprint)
    app.register_blueprint(control_api.blueprint)
    app.register_blueprint(pages.blueprint)
    app.register_blueprint(dashboard.blueprint)
    document = openapi.build(root.schemas, __version__)
    app.add_url_rule("/openapi.json", "openapi", lambda: jsonify(document))
    _install_error_handlers(app)
    _install_instances(app, root, sandboxes)
    journal.install(app)
    return app


class SandboxPrefix:
    """`/_sandbox/<id>/...` reaches sandbox <id>: its gateway API, pages and control API."""

    PREFIX = "/_sandbox/"

    def __init__(self, wsgi_app):
        self.wsgi_app = wsgi_app

    def __call__(self, environ, start_response):
        path = environ.get("PATH_INFO", "")
        if path.startswith(self.PREFIX):
            sandbox_id, _, rest = path[len(self.PREFIX):].partition("/")
            environ["payletter.sandbox"] = sandbox_id
            environ["SCRIPT_NAME"] = environ.get("SCRIPT_NAME", "") + self.PREFIX + sandbox_id
            environ["PATH_INFO"] = "/" + rest
        return self.wsgi_app(environ, start_response)


def _install_error_handlers(app: Flask) -> None:
    def envelope(error: GatewayError):
        return jsonify(error.body()), error.status

    app.register_error_handler(GatewayError, envelope)

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):
        kind = _HTTP_KINDS.get(exc.code)
        if kind == "not_found":
            return envelope(GatewayError(kind, path=request.path))
        if kind == "method_not_allowed":
            return envelope(GatewayError(kind, method=request.method, path=request.path))
        if kind == "body_too_large":
            return envelope(GatewayError(kind, limit=BODY_LIMIT))
        return envelope(GatewayError("malformed_json", detail=exc.description or exc.name))

    @app.errorhandler(Exception)
    def unexpected(exc: Exception):
        log.exception("unexpected error on %s %s", request.method, request.path)
        g.exception = f"{type(exc).__name__}: {exc}"
        return envelope(GatewayError("internal"))


def _install_instances(app: Flask, root: Emulator, sandboxes: Sandboxes) -> None:
    @app.before_request
    def select_instance():
        """The emulator this request talks to: a sandbox by its path prefix, its header or its
        key, else the root. Its clock and scenario are brought up to date, and the timed jobs
        its moment has made due have run."""
        sandboxes.start()
        environ = request.environ
        sandbox_id = environ.get("payletter.sandbox") or environ.get("HTTP_X_EMULATOR_SANDBOX")
        if sandbox_id:
            instance = sandboxes.get(sandbox_id)
            if instance is None:
                raise GatewayError("sandbox_unknown", id=sandbox_id)
        elif request.path.startswith(JOURNALED) and (key := _foreign_key(root)):
            instance = sandboxes.with_key(key) or root
        else:
            instance = root
        g.instance = instance
        instance.dispatcher.start()  # a worker forked after create_app starts its own
        instance.gateway.sync_clock()
        instance.gateway.catch_up()


def _foreign_key(root: Emulator) -> str | None:
    """The request's PLKEY when it is none of the root's clients' keys (then it may be a
    sandbox's); root keys never cost a database lookup."""
    key = plkey()
    if key is None:
        return None
    known = any(hmac.compare_digest(key.encode(), k.encode())
                for c in root.settings.clients for k in (c.payment_key, c.search_key))
    return None if known else key
