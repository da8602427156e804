"""The pytest plugin (entry point `pytest11`): the emulator as fixtures, a clean sandbox per test,
the gateway's view of a failing test in its report, and what the run exercised at the end.

Fixtures: `payletter_server` (session: an emulator process on a free port, or the one at
`--payletter-url`), `payletter` (an EmulatorClient with a clean state for each test),
`payletter_app` (the same client on an in-process app, no server), `payletter_serve_app`
(serves the merchant's own WSGI or ASGI app on a free port, so callbacks reach it) and
`payletter_global` (the test's Payletter Global store, global_client.py). Options:
`--payletter-url`, `--payletter-scenario` (repeatable), `--payletter-isolation=sandbox|reset`,
`--payletter-token`, `--payletter-tls`, `--payletter-intercept`, `--payletter-ca`, `--payletter-no-coverage`,
`--payletter-keep-failed`. Marker: `@pytest.mark.payletter_scenario(name, ...)`. Under
pytest-xdist the workers' coverage is merged into one summary. `payletter.assert_requested(path,
**fields)` checks the journal (EmulatorClient's); the server is started by local_emulator.py,
which `payletter_emulator.running()` uses outside pytest.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import pytest

from .app_server import serve_app
from .control_client import EmulatorClient, EmulatorError
from .global_client import PayletterGlobal
from .local_emulator import start_emulator, stop_emulator, wait_ready
from .plugin_report import coverage_lines, describe, merge_coverage, subtract_coverage

COVERAGE_KEY = pytest.StashKey[dict]()  # url -> coverage, for the terminal summary
OUTCOME_KEY = pytest.StashKey[dict]()  # a test's reports by phase, for the fixtures' teardown
SERVER_KEY = pytest.StashKey[Any]()  # this process's PayletterServer, once started
IN_PROCESS_KEY = pytest.StashKey[dict]()  # the payletter_app fixtures' coverage, added up
BEFORE_KEY = pytest.StashKey[dict]()  # url -> the coverage a --payletter-url emulator had at the start
KEPT_TITLE = "payletter sandbox kept (payletter)"
ISOLATIONS = ("sandbox", "reset")
_UNKNOWN = object()
REACH_TIMEOUT = 10.0  # seconds the session-start check of --payletter-url waits for an answer


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("payletter", "Payletter emulator (payletter-emulator)")
    group.addoption("--payletter-url", metavar="URL", default=None,
                    help="Use the emulator already running at URL (e.g. in Docker) instead of starting one.")
    group.addoption("--payletter-scenario", metavar="NAME", action="append", default=[],
                    help="Scenario in force for every test: a shipped name or a file; repeatable, merged in order.")
    group.addoption("--payletter-isolation", choices=ISOLATIONS, default="sandbox",
                    help="How each test gets a clean emulator: a fresh sandbox (default; safe in parallel), "
                         "or a reset of the whole emulator (one test at a time).")
    group.addoption("--payletter-token", metavar="TOKEN", default=None,
                    help="The control token of an emulator started with --control-token.")
    group.addoption("--payletter-tls", action="store_true", default=False,
                    help="Start the emulator with --tls (HTTPS, TLS 1.2+); tests get its CA as payletter.ca_file.")
    group.addoption("--payletter-intercept", action="store_true", default=False,
                    help="Start the emulator with --intercept too, and set HTTPS_PROXY (and the CA variables) "
                         "for the session, so code that hard-codes https://testpgapi.payletter.com reaches it.")
    group.addoption("--payletter-ca", metavar="FILE", default=None,
                    help="The CA certificate to trust for an emulator at an https:// --payletter-url.")
    group.addoption("--payletter-no-coverage", action="store_true", default=False,
                    help="Do not print the emulator's coverage summary at the end of the run.")
    group.addoption("--payletter-keep-failed", action="store_true", default=False,
                    help="Keep a failed test's sandbox (not deleted after the test) and name it in the failure "
                         "report, to open on the dashboard's sandbox picker.")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "payletter_scenario(*names): the scenario (shipped names, files or dicts) in force for this "
                   "test's `payletter` or `payletter_app`, instead of --payletter-scenario")
    config.stash[COVERAGE_KEY] = {}
    config.stash[BEFORE_KEY] = {}
    _refuse_what_cannot_work(config)


def pytest_sessionstart(session: pytest.Session) -> None:
    """An emulator at --payletter-url that does not answer is one usage error at start, not a wait
    and a traceback in every test (pytest-xdist's controller asks; its workers need not)."""
    config = session.config
    if not hasattr(config, "workerinput"):
        _warn_of_unknown_variables()
    url = config.getoption("payletter_url", None)
    if url and not hasattr(config, "workerinput"):
        _refuse_an_absent_emulator(config, url)


def _warn_of_unknown_variables() -> None:
    """A misspelt PAYLETTER_EMULATOR_* variable, which the emulator the plugin starts would ignore
    (and say so only in its log)."""
    from ..config import unknown_variables
    from .drive_options import CA_VARIABLE, SANDBOX_VARIABLE, URL_VARIABLE

    for warning in unknown_variables(os.environ, others=(URL_VARIABLE, CA_VARIABLE, SANDBOX_VARIABLE)):
        sys.stderr.write(f"payletter: warning: {warning}\n")


def _refuse_an_absent_emulator(config: pytest.Config, url: str) -> None:
    client = EmulatorClient(url, control_token=config.getoption("payletter_token"),
                            verify=config.getoption("payletter_ca") or True, timeout=REACH_TIMEOUT)
    try:
        client.health()
        if not config.getoption("payletter_no_coverage"):
            config.stash[BEFORE_KEY][client.base_url] = _coverage_of(client)
    except EmulatorError as exc:
        raise pytest.UsageError(
            f"--payletter-url {url}: it answers, but not as payletter-emulator ({exc}); give the URL of "
            f"`payletter-emulator serve` (e.g. http://127.0.0.1:8080)") from None
    except OSError as exc:  # refused, unknown name, timed out, TLS not trusted
        tls = " (for HTTPS, trust its CA with --payletter-ca FILE)" if url.startswith("https://") else ""
        raise pytest.UsageError(
            f"--payletter-url {url}: no emulator answers there ({type(exc).__name__}: {exc}). Start it "
            f"first (`payletter-emulator serve`, or `docker compose up`) and check the URL{tls}, or leave "
            f"out --payletter-url so that the plugin starts an emulator of its own") from None
    finally:
        client.close()


def parallel(config: pytest.Config) -> bool:
    """Whether pytest-xdist runs this session's tests in several processes (its controller or a worker)."""
    if hasattr(config, "workerinput"):
        return True
    return getattr(config.option, "numprocesses", None) not in (None, 0) or \
        getattr(config.option, "dist", "no") not in ("no", None)


def _refuse_what_cannot_work(config: pytest.Config) -> None:
    """Usage errors at start, not failures in the middle of the run."""
    isolation = config.getoption("payletter_isolation", "sandbox")
    if isolation == "reset" and parallel(config) and config.getoption("payletter_url", None):
        raise pytest.UsageError(
            "--payletter-isolation=reset cannot work in parallel (pytest-xdist's -n) on one emulator "
            "(--payletter-url): each test's reset would empty the emulator under the other workers' tests. "
            "Use --payletter-isolation=sandbox (the default: every test its own sandbox), or leave out "
            "--payletter-url so that each worker starts its own emulator, or run without -n.")
    if config.getoption("payletter_intercept", False) and config.getoption("payletter_url", None):
        raise pytest.UsageError("--payletter-intercept starts the plugin's emulator with --intercept: it cannot "
                                "apply to an emulator at --payletter-url; start that one with --intercept and "
                                "set HTTPS_PROXY and SSL_CERT_FILE yourself (docs/intercept.md)")
    if config.getoption("payletter_keep_failed", False) and isolation == "reset":
        raise pytest.UsageError("--payletter-keep-failed keeps a failed test's sandbox: it needs "
                                "--payletter-isolation=sandbox (the default), not reset")


# --- the server ---------------------------------------------------------------------------------

@dataclass
class PayletterServer:
    """One emulator for the session: `url`, a root `client`, and how tests are isolated on it."""

    url: str
    client: EmulatorClient
    isolation: str
    process: subprocess.Popen | None = None
    log_path: Path | None = None
    shared_in_parallel: bool = False  # pytest-xdist workers on one emulator (--payletter-url)
    proxy: str | None = None  # --payletter-intercept: the emulator's HTTPS proxy, the session's HTTPS_PROXY
    proxy_ca: str | None = None  # the CA its certificate for the gateway's hosts is signed by
    root_scenario: Any = field(default=_UNKNOWN, init=False)  # the root's, when the session began

    @property
    def ca_file(self) -> str | None:
        """The CA certificate an HTTPS emulator is trusted with (None over HTTP)."""
        return self.client.ca_file

    def client_for(self, scenarios: list[Any]) -> EmulatorClient:
        """A client with a clean state: a new sandbox with `scenarios` in force (none if empty),
        or (isolation `reset`, or an emulator without sandboxes) the root, reset, with
        `scenarios` in force, else the scenario it had when the session began."""
        if self.isolation == "sandbox":
            try:
                return self.client.new_sandbox(scenarios or None)
            except EmulatorError as exc:
                if exc.status not in (404, 405):
                    raise
                if self.shared_in_parallel:
                    raise RuntimeError(f"the emulator at {self.url} has no sandboxes, and resetting it instead "
                                       f"cannot work with pytest-xdist workers sharing it: run without -n, or "
                                       f"without --payletter-url (each worker starts its own)") from exc
                self.isolation = "reset"  # an emulator without sandboxes: one test at a time
        if self.root_scenario is _UNKNOWN:
            self.root_scenario = self.client.scenario().get("scenario")
        self.client.reset()
        # Every time: a test may have put a scenario of its own in force, and a reset keeps it.
        wanted = scenarios or ([self.root_scenario] if self.root_scenario else [])
        if wanted:
            self.client.use_scenario(*wanted)
        else:
            self.client.clear_scenario()
        return self.client

    def release(self, client: EmulatorClient) -> None:
        if client.sandbox:
            try:
                client.delete_sandbox(client.sandbox)
            except EmulatorError as exc:
                if exc.status != 404:  # already gone (idle) is fine
                    raise

    def stop(self) -> None:
        if self.process is not None:
            stop_emulator(self.process)


@pytest.fixture(scope="session")
def payletter_server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    """The emulator of this session: started on a free port (stopped at the end), or the one
    at `--payletter-url`."""
    config = request.config
    scenarios = list(config.getoption("payletter_scenario"))
    token = config.getoption("payletter_token")
    url = config.getoption("payletter_url")
    isolation = config.getoption("payletter_isolation")
    if url:
        client = EmulatorClient(url, control_token=token, verify=config.getoption("payletter_ca") or True)
        wait_ready(client)
        server = PayletterServer(client.base_url, client, isolation, shared_in_parallel=parallel(config))
    else:
        flags = [arg for name in scenarios for arg in ("--scenario", name)]
        if token:
            flags += ["--control-token", token]
        started = start_emulator(tmp_path_factory.mktemp("payletter"), *flags, token=token,
                                 tls=config.getoption("payletter_tls"), intercept=config.getoption("payletter_intercept"))
        server = PayletterServer(started.client.base_url, started.client, isolation, started.process,
                                 started.log_path, proxy=started.proxy, proxy_ca=started.proxy_ca)
    config.stash[SERVER_KEY] = server
    trusted = {**_trusted_for_the_session(server, tmp_path_factory), **_proxied_for_the_session(server)}
    try:
        yield server
    finally:
        _restore(trusted)
        try:
            if not config.getoption("payletter_no_coverage"):
                _keep_coverage(config, server)
        finally:
            server.stop()


TRUST_VARIABLES = ("REQUESTS_CA_BUNDLE", "SSL_CERT_FILE")  # read by requests, and by OpenSSL (urllib, httpx, Go)
PROXY_VARIABLES = ("HTTPS_PROXY", "https_proxy")  # read by requests, httpx, urllib, curl, Go
NO_PROXY_VARIABLES = ("NO_PROXY", "no_proxy")
LOOPBACK = ("localhost", "127.0.0.1", "::1")  # never through the proxy: it refuses every host but the gateway's


def _trusted_for_the_session(server: PayletterServer, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The code under test trusts the emulator's CA (its HTTPS port's, its proxy's) as it trusts
    the Internet: REQUESTS_CA_BUNDLE and SSL_CERT_FILE name a bundle of the system's CAs and the
    emulator's, for the session. Returns the variables' values before, to restore."""
    cas = dict.fromkeys(ca for ca in (server.ca_file if server.url.startswith("https://") else None,
                                      server.proxy_ca) if ca)
    if not cas:
        return {}
    bundle = tmp_path_factory.mktemp("payletter-trust") / "ca-bundle.pem"
    bundle.write_text("\n".join([_system_cas(), *(Path(ca).read_text("ascii") for ca in cas)]), "ascii")
    before = {name: os.environ.get(name) for name in TRUST_VARIABLES}
    os.environ.update(dict.fromkeys(TRUST_VARIABLES, str(bundle)))
    return before


def _proxied_for_the_session(server: PayletterServer) -> dict:
    """--payletter-intercept: HTTPS_PROXY names the emulator's proxy for the session, and NO_PROXY
    keeps loopback (the emulator's own port, the merchant's app) off it. Returns the variables'
    values before, to restore."""
    if not server.proxy:
        return {}
    before = {name: os.environ.get(name) for name in PROXY_VARIABLES + NO_PROXY_VARIABLES}
    kept = [part.strip() for name in NO_PROXY_VARIABLES for part in (os.environ.get(name) or "").split(",")
            if part.strip()]
    os.environ.update(dict.fromkeys(PROXY_VARIABLES, server.proxy))
    os.environ.update(dict.fromkeys(NO_PROXY_VARIABLES, ",".join(dict.fromkeys([*kept, *LOOPBACK]))))
    return before


def _system_cas() -> str:
    """The CAs the code under test trusted without the plugin: certifi's bundle (what requests
    uses) if installed, else the system's default verify paths."""
    try:
        import certifi

        return Path(certifi.where()).read_text("ascii")
    except ImportError:
        pass
    import ssl

    paths = ssl.get_default_verify_paths()
    for cafile in (paths.cafile, paths.openssl_cafile):
        if cafile and os.path.isfile(cafile):
            return Path(cafile).read_text("ascii", "replace")
    folder = Path(paths.capath or paths.openssl_capath or "")
    if folder.is_dir() and str(folder) != ".":
        return "".join(path.read_text("ascii", "replace") for path in sorted(folder.iterdir())
                       if path.is_file() and path.read_bytes().startswith(b"-----BEGIN CERTIFICATE"))
    return ""


def _restore(before: dict) -> None:
    for name, value in before.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


def _scenarios(request: pytest.FixtureRequest) -> list[Any]:
    marker = request.node.get_closest_marker("payletter_scenario")
    if marker is not None:
        return list(marker.args)
    return list(request.config.getoption("payletter_scenario"))


@pytest.fixture
def payletter(payletter_server: PayletterServer, request: pytest.FixtureRequest):
    """An EmulatorClient for this test alone: by default a fresh sandbox (its own keys,
    payments, clock, scenario, callbacks and journal), deleted afterwards. Give merchant code
    `payletter.url`, `.client_id`, `.payment_key` and `.search_key`."""
    scenarios = _scenarios(request)
    client = payletter_server.client_for(scenarios)
    yield client
    if client.sandbox and request.config.getoption("payletter_keep_failed") and _failed(request.node):
        return  # kept: the failure report names it (pytest_runtest_makereport)
    payletter_server.release(client)


@pytest.fixture
def payletter_global(payletter: EmulatorClient) -> PayletterGlobal:
    """Payletter Global in this test's sandbox (the root's `global_test` under reset isolation):
    give merchant code `.url`, `.store_id` and `.key`; `.approve(token)` pays a payment as its
    payer would, `.payments()`, `.notifications()`, `.hosted_form(...)` signs the form posted
    without an API call. `.client` is the test's `payletter`."""
    return PayletterGlobal(payletter)


def _failed(item: pytest.Item) -> bool:
    return any(report.failed for report in item.stash.get(OUTCOME_KEY, {}).values())


@pytest.fixture
def payletter_app(request: pytest.FixtureRequest):
    """An EmulatorClient on an in-process app (`payletter_emulator.create_app(db=":memory:")`) through
    Flask's test client: no server, no port. Call the gateway with `payletter_app.gateway.post(...)`;
    the app is `payletter_app.app`."""
    from .. import create_app

    app = create_app(db=":memory:")
    client = EmulatorClient.for_app(app)
    scenarios = _scenarios(request)
    if scenarios:
        client.use_scenario(*scenarios)
    try:
        yield client
        if not request.config.getoption("payletter_no_coverage"):
            counted = request.config.stash.get(IN_PROCESS_KEY, None)
            coverage = client.coverage()
            request.config.stash[IN_PROCESS_KEY] = merge_coverage([counted, coverage]) if counted else coverage
    finally:
        app.extensions["payletter"].dispatcher.stop()


# --- the merchant's own app, served so that callbacks reach it ---------------------------------------

@pytest.fixture
def payletter_serve_app():
    """`payletter_serve_app(app)` serves the merchant's own WSGI or ASGI app on a free port for
    this test and returns its base URL (`http://127.0.0.1:<port>`): give the emulator
    `callback_url=<url>/your/callback/path` and the callback reaches the app. `asgi=True/False`
    overrides the guess; ASGI is served with uvicorn. Stopped after the test."""
    stops: list[Callable[[], None]] = []

    def serve(app, *, asgi: bool | None = None) -> str:
        url, stop = serve_app(app, asgi=asgi)
        stops.append(stop)
        return url

    yield serve
    for stop in reversed(stops):
        stop()


# --- a failing test's report --------------------------------------------------------------------

@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    report = yield
    item.stash.setdefault(OUTCOME_KEY, {})[report.when] = report
    if report.failed and report.when in ("setup", "call"):
        for name in ("payletter", "payletter_app"):
            client = getattr(item, "funcargs", {}).get(name)
            if isinstance(client, EmulatorClient):
                for title, text in describe(client):
                    report.sections.append((f"{title} ({name})", text))
        client = getattr(item, "funcargs", {}).get("payletter")
        if isinstance(client, EmulatorClient) and client.sandbox and item.config.getoption("payletter_keep_failed"):
            report.sections.append((KEPT_TITLE, kept_sandbox_text(item.config, client)))
    return report


def kept_sandbox_text(config: pytest.Config, client: EmulatorClient) -> str:
    """Where a failed test's kept sandbox is, and how to open it."""
    lines = [f"sandbox {client.sandbox}: {client.url}/_emulator/"]
    server = _session_server(config)
    if server is not None and server.process is not None:
        db = server.log_path.parent / "emulator.db"
        lines.append(f"the emulator this run started stops with the run; its data stays in {db}: "
                     f"`payletter-emulator serve --db {db}`, then open /_sandbox/{client.sandbox}/_emulator/ "
                     f"or pick {client.sandbox} on the dashboard")
    else:
        lines.append(f"open it, or pick {client.sandbox} on the dashboard's sandbox picker; it is deleted "
                     f"after its idle time, or by DELETE /_emulator/sandboxes/{client.sandbox}")
    return "\n".join(lines)


def _session_server(config: pytest.Config) -> PayletterServer | None:
    return config.stash.get(SERVER_KEY, None)


# --- the run's coverage ---------------------------------------------------------------------------

def _coverage_of(client: EmulatorClient) -> dict | None:
    try:
        return client.coverage()
    except EmulatorError:  # an emulator without the coverage endpoint: nothing to say
        return None


def _keep_coverage(config: pytest.Config, server: PayletterServer) -> None:
    coverage = _coverage_of(server.client)
    if coverage is not None:
        config.stash[COVERAGE_KEY][server.url] = coverage


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session) -> None:
    """A pytest-xdist worker hands its coverage (its emulator's, its in-process apps') to the
    controller, once its session fixtures are torn down."""
    config = session.config
    if hasattr(config, "workeroutput") and not config.getoption("payletter_no_coverage"):
        config.workeroutput["payletter_coverage"] = json.dumps(config.stash.get(COVERAGE_KEY, {}))
        config.workeroutput["payletter_app_coverage"] = json.dumps(config.stash.get(IN_PROCESS_KEY, None))


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error) -> None:
    """pytest-xdist: a worker's coverage reaches the controller's summary. Workers sharing one
    emulator (--payletter-url) each read all of it, at different moments: the fullest is kept.
    In-process apps are each their own: their counts are added."""
    output = getattr(node, "workeroutput", {})
    config = node.config
    found = config.stash[COVERAGE_KEY]
    for url, coverage in json.loads(output.get("payletter_coverage") or "{}").items():
        found[url] = merge_coverage([found[url], coverage], combine=max) if url in found else coverage
    in_process = json.loads(output.get("payletter_app_coverage") or "null")
    if in_process:
        counted = config.stash.get(IN_PROCESS_KEY, None)
        config.stash[IN_PROCESS_KEY] = merge_coverage([counted, in_process]) if counted else in_process


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    if not hasattr(config, "workerinput"):
        kept = [(report.nodeid, text.splitlines()[0]) for report in terminalreporter.stats.get("failed", [])
                for title, text in report.sections if title == KEPT_TITLE]
        if kept:
            terminalreporter.write_sep("-", "payletter sandboxes kept (--payletter-keep-failed)")
            for nodeid, where in kept:
                terminalreporter.write_line(f"{nodeid}: {where}")
    if config.getoption("payletter_no_coverage") or hasattr(config, "workerinput"):
        return
    summary = _run_coverage(config)
    if summary is None:
        return
    title, coverage = summary
    terminalreporter.write_sep("-", title)
    for line in coverage_lines(coverage):
        terminalreporter.write_line(line)


def _run_coverage(config: pytest.Config) -> tuple[str, dict] | None:
    """The title and the counts of this run: the emulators' (on one this run did not start, what it
    had counted at the start subtracted) and the in-process apps', added up."""
    found = config.stash.get(COVERAGE_KEY, {})
    before = config.stash.get(BEFORE_KEY, {})
    parts = [subtract_coverage(coverage, before[url]) if before.get(url) else coverage
             for url, coverage in found.items()]
    if len(found) == 1:
        [url] = found
        titles = [f"{url}, this run's counts only" if before.get(url) else url]
    elif found:  # pytest-xdist workers, each with the emulator it started
        titles = [f"{len(found)} emulators, one per pytest-xdist worker, merged"]
    else:
        titles = []
    in_process = config.stash.get(IN_PROCESS_KEY, None)
    if in_process:
        parts.append(in_process)
        titles.append("with payletter_app's in-process apps")
    if not parts:
        return None
    return f"payletter coverage ({'; '.join(titles)})", merge_coverage(parts) if len(parts) > 1 else parts[0]
