"""create_app: one Flask app serving the gateway's API, the control API and /openapi.json."""
from __future__ import annotations

import json
import logging
from dataclasses import replace

import orjson
from flask import Flask, Response, g, jsonify, request
from flask.json.provider import DefaultJSONProvider
from werkzeug.exceptions import ClientDisconnected, HTTPException

from ..config import Settings, package_version
from ..domain import global_rules
from ..domain.errors import GatewayError
from ..domain.global_rules import GlobalError
from ..instance import Emulator, build
from ..sandboxes import Sandboxes
from ..engines.validation import refuse_nul
from ..waits import declared
from . import access_log, control_api, dashboard, gateway_api, global_api, global_control, global_pages, openapi, pages, request_log
from .request_log import JOURNALED
from .plumbing import EXPLAINED, REASON_HEADER, find_client, header_value, host_problem, plkey, reason, shown

log = logging.getLogger("payletter_emulator")
BODY_LIMIT = 1024 * 1024  # a request body past this gets 413; the server (serving/bridge.py) reads no more of it
_HTTP_KINDS = {404: "not_found", 405: "method_not_allowed", 413: "body_too_large"}
HEALTH = "control_api.health"


def create_app(settings: Settings | None = None, **overrides) -> Flask:
    """The app for tests (in-process) and for `serve` (emulator/serving/bridge.py) alike.

    `create_app(db=":memory:", strict=True)` is shorthand for `create_app(Settings(...))`.
    """
    settings = replace(settings or Settings(), **overrides)
    app = _App(__name__)
    app.config["MAX_CONTENT_LENGTH"] = BODY_LIMIT
    app.url_map.strict_slashes = False
    root = build(settings)
    sandboxes = Sandboxes(root, settings)
    app.extensions["payletter"] = root
    app.extensions["payletter_sandboxes"] = sandboxes
    app.wsgi_app = SandboxPrefix(app.wsgi_app)
    app.register_blueprint(gateway_api.blueprint)
    app.register_blueprint(global_api.blueprint)
    app.register_blueprint(control_api.blueprint)
    app.register_blueprint(pages.blueprint)
    app.register_blueprint(global_pages.blueprint)
    app.register_blueprint(dashboard.blueprint)
    app.register_blueprint(dashboard.front)
    document = openapi.build(root.schemas, package_version())
    app.add_url_rule("/openapi.json", "openapi", lambda: jsonify(document))
    _install_error_handlers(app)
    app.before_request(refuse_unreadable_host)
    app.before_request(refuse_nul_in_address)
    _install_instances(app, root, sandboxes)
    request_log.install(app)
    app.after_request(tell_reason)  # registered after the journal's hook, so it runs before it
    access_log.install()
    return app


# What json.dumps hands to Flask's `default` (dates as HTTP dates, dataclasses as dicts) orjson
# hands to it too, instead of writing them its own way.
_ORJSON_OPTIONS = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS


class GatewayJSON(DefaultJSONProvider):
    """JSON as the gateway writes it: Korean as it is, keys in the order they were made, no spaces.
    Every JSON answer is encoded by orjson, in the bytes json.dumps(ensure_ascii=False,
    separators=(",", ":")) writes; what orjson refuses (an integer past 64 bits, a key that is not
    text) is written by that json.dumps. Pretty answers (debug) stay Flask's own."""

    ensure_ascii = False
    sort_keys = False

    def __init__(self, app: Flask):
        super().__init__(app)
        self._stdlib = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), default=self.default).encode

    def encode(self, answer) -> bytes:
        try:
            return orjson.dumps(answer, default=self.default, option=_ORJSON_OPTIONS)
        except orjson.JSONEncodeError:
            return self._stdlib(answer).encode()

    def response(self, *args, **kwargs) -> Response:
        if self.compact is False or (self.compact is None and self._app.debug):
            return super().response(*args, **kwargs)
        body = self.encode(self._prepare_response_obj(args, kwargs))
        return self._app.response_class(body + b"\n", mimetype=self.mimetype)


class _App(Flask):
    json_provider_class = GatewayJSON

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._sync: dict = {}

    def ensure_sync(self, func):
        """Flask asks, at every call of every hook, whether it is a coroutine function; the
        answer is kept instead."""
        sync = self._sync.get(func)
        if sync is None:
            sync = self._sync[func] = super().ensure_sync(func)
        return sync


def route_work(app: Flask, method: str, path: str) -> str | None:
    """How the route a request reaches declares its work (waits.LONG), or None: found by the
    route, so a sandbox's prefix or a value in the path never changes it."""
    if path.startswith(SandboxPrefix.PREFIX):
        path = "/" + path[len(SandboxPrefix.PREFIX):].partition("/")[2]
    try:
        endpoint, _ = app.url_map.bind("").match(path, method)
    except HTTPException:
        return None
    return declared(app.view_functions.get(endpoint))


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
        if error.status in EXPLAINED and not g.get("exception"):  # a 401's why was told by authenticate
            g.exception = reason(error, g._get_current_object(), request._get_current_object())
        return jsonify(error.body()), error.status

    app.register_error_handler(GatewayError, envelope)

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):
        kind = _HTTP_KINDS.get(exc.code)
        if isinstance(exc, ClientDisconnected) or kind == "body_too_large":
            g.unjournaled = True  # nobody is left to read it, or nothing of it was read: no request to keep
        if isinstance(exc, ClientDisconnected):
            return envelope(GatewayError("malformed_json", detail="the client left before the whole body arrived"))
        if kind in ("not_found", "method_not_allowed") and global_rules.is_api_path(request.path):
            return envelope(GlobalError(kind, f"{request.method} {request.path[:100]}"))  # Payletter Global's table
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


def tell_reason(response: Response) -> Response:
    """Every 401, 403, 404 and 406 says which case it was in X-Emulator-Reason, the journal's
    `error` text made ASCII; the body stays the gateway's `{"code", "message"}`. An answer made
    elsewhere (a hosted page's error page) is named by its status."""
    if response.status_code in EXPLAINED:
        if not g.get("exception"):
            g.exception = f"{response.status_code}: {response.status.partition(' ')[2]}; the page says why"
        response.headers[REASON_HEADER] = header_value(g.exception)
    return response


def refuse_unreadable_host() -> None:
    """A Host header that is not `host[:port]` is refused (400 naming it) before anything builds
    a URL of it or compares it; a request without one (HTTP/1.0) is read at the server's address."""
    host = request.environ.get("HTTP_HOST")
    if host and (problem := host_problem(host)) is not None:
        raise GatewayError("header_invalid", header="Host", value=shown(host), expected=problem)


def refuse_nul_in_address() -> None:
    """A NUL in the path or a query parameter is refused before anything looks it up (406 naming
    where), as validation refuses one in a body: PostgreSQL could not even compare it."""
    http_request = request._get_current_object()
    if "\x00" in http_request.path or "\x00" in http_request.environ.get("payletter.sandbox", ""):
        raise GatewayError("field_invalid", field="the path", rule="must not contain the NUL character (\\u0000)")
    if b"%00" in http_request.query_string or b"\x00" in http_request.query_string:
        for name, value in http_request.args.items(multi=True):
            refuse_nul({name: value})


def _install_instances(app: Flask, root: Emulator, sandboxes: Sandboxes) -> None:
    @app.before_request
    def select_instance():
        """The emulator this request talks to: a sandbox by its path prefix, its header or its
        key, else the root. Its clock and scenario are brought up to date, and the timed jobs
        its moment has made due have run."""
        sandboxes.start()
        http_request = request._get_current_object()
        environ = http_request.environ
        sandbox_id = environ.get("payletter.sandbox") or environ.get("HTTP_X_EMULATOR_SANDBOX")
        if sandbox_id:
            instance = sandboxes.get(sandbox_id)
            if instance is None:
                raise GatewayError("sandbox_unknown", id=sandbox_id)
        elif http_request.path.startswith(JOURNALED) and (key := _foreign_key(root, environ)):
            instance = sandboxes.with_key(key) or root
        else:
            instance = root
        g.instance = instance
        instance.dispatcher.start()  # a worker forked after create_app starts its own
        if http_request.endpoint == HEALTH:  # it asks the database itself, and answers even without it
            return
        clock_jobs = instance.service.clock_jobs
        clock_jobs.sync_clock()
        clock_jobs.catch_up()


def _foreign_key(root: Emulator, environ: dict) -> str | None:
    """The request's PLKEY when it is none of the root's clients' keys (then it may be a
    sandbox's); root keys never cost a database lookup."""
    key = plkey(environ)
    if key is None or find_client(root, environ) is not None:
        return None
    return key
