"""create_app: one Flask app serving the gateway's API, the control API and /openapi.json."""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass, replace

from faker import Faker
from flask import Flask, g, jsonify, request
from werkzeug.exceptions import HTTPException

from .. import __version__
from ..clock import Clock, iso
from ..config import Settings
from ..errors import GatewayError
from ..resources import schemas_dir
from ..dispatcher import DeliverySettings, Dispatcher
from ..domain.delivery import Policy
from .. import scenario as scenario_files
from ..scenario import Scenario
from ..service import Gateway
from ..storage import Storage
from ..validation import Schemas
from . import control_api, gateway_api, openapi, pages

log = logging.getLogger("payletter_emulator")
BODY_LIMIT = 1024 * 1024
JOURNALED = "/v1.0/"
_HTTP_KINDS = {404: "not_found", 405: "method_not_allowed", 413: "body_too_large"}


@dataclass
class Emulator:
    """What a request handler reaches through `current_app.extensions["payletter"]`."""

    settings: Settings
    gateway: Gateway
    schemas: Schemas
    dispatcher: Dispatcher


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
    faker = Faker("ko_KR")
    if settings.faker_seed is not None:
        faker.seed_instance(settings.faker_seed)
    storage = Storage(settings.db, journal_limit=settings.journal_limit, callback_limit=settings.callback_limit)
    gateway = Gateway(storage, Clock(), settings, faker)
    dispatcher = Dispatcher(storage, gateway.milliseconds, _delivery(settings), jobs=gateway.run_jobs)
    gateway.on_callback_queued = dispatcher.wake
    emulator = Emulator(settings, gateway, Schemas(schemas_dir()), dispatcher)
    gateway.on_scenario = lambda scenario: _apply(emulator, settings, scenario, faker)
    gateway.sync_clock()  # the clock and the scenario a previous run left in the database
    if settings.scenario:
        document = scenario_files.load(settings.scenario)
        if storage.scenario_document() != document:
            gateway.install_scenario(document)
    dispatcher.start()  # what a previous run left due goes out now, before any request
    app.before_request(dispatcher.start)  # a worker forked after create_app starts its own
    app.extensions["payletter"] = emulator
    schemas = emulator.schemas
    app.register_blueprint(gateway_api.blueprint)
    app.register_blueprint(control_api.blueprint)
    app.register_blueprint(pages.blueprint)
    document = openapi.build(schemas, __version__)
    app.add_url_rule("/openapi.json", "openapi", lambda: jsonify(document))
    _install_error_handlers(app)
    _install_journal(app, gateway)
    return app


def _delivery(settings: Settings) -> DeliverySettings:
    return DeliverySettings(Policy(settings.callback_interval, settings.callback_retries), settings.callback_timeout,
                            settings.callback_concurrency, settings.callback_hosts)


def _apply(emulator: Emulator, base: Settings, scenario: Scenario, faker) -> None:
    """The settings a scenario brings, over those the emulator was started with."""
    chosen, callbacks = scenario.settings, scenario.settings.get("callbacks", {})
    clients = {c.client_id: c for c in (*base.clients, *scenario.clients)}
    settings = replace(base, strict=chosen.get("strict", base.strict), clients=tuple(clients.values()),
                       callback_interval=callbacks.get("interval", base.callback_interval),
                       callback_retries=callbacks.get("retries", base.callback_retries),
                       callback_timeout=callbacks.get("timeout", base.callback_timeout))
    emulator.settings = emulator.gateway.settings = settings
    emulator.gateway.clients = clients
    emulator.dispatcher.settings = _delivery(settings)
    if "faker_seed" in chosen:
        faker.seed_instance(chosen["faker_seed"])


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


def _install_journal(app: Flask, gateway: Gateway) -> None:
    @app.before_request
    def sync_clock():
        gateway.sync_clock()
        gateway.catch_up()  # a request sees every timed job its moment has made due

    @app.after_request
    def journal(response):
        if not request.path.startswith(JOURNALED):
            return response
        client_id = g.get("client_id", "")
        try:
            gateway.storage.journal_append({
                "at": iso(gateway.clock.now()), "method": request.method, "path": request.path,
                "query": request.query_string.decode("latin-1"), "client_id": client_id,
                "request": _request_record(), "status": response.status_code,
                "response": response.get_json(silent=True), "warnings": g.get("warnings", []),
                "error": g.get("exception", ""), "rule": g.get("rule"),
            })
        except Exception:  # the journal must never turn an answer into a failure
            log.exception("could not write the journal")
        return response


def _request_record():
    """The body as JSON when it is JSON, else as text; the Authorization header is never kept."""
    raw = request.get_data(cache=True)
    if not raw:
        return None
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):
        return raw[:4096].decode("utf-8", "replace")
