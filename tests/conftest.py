"""Shared fixtures: a live emulator on a free port (a real process), a real callback receiver,
and a small client that speaks the gateway's API the way a merchant's code does."""
from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib.metadata import entry_points
import re
import shutil
from pathlib import Path
from urllib.parse import urlparse

import pytest
import requests

from payletter_emulator.resources import schemas_dir
from payletter_emulator.engines.validation import Schemas
from payletter_emulator.web import gateway_api  # noqa: F401  (registers the gateway's operations)
from payletter_emulator.web.operations import OPERATIONS

PAYMENT_KEY = "MTFBNTAzNTEwNDAxQUIyMjlCQzgwNTg1MkU4MkZENDA="
SEARCH_KEY = "MUI3MjM0RUExQTgyRDA1ODZGRDUyOEM4OTY2QTVCN0Y="
OTHER_CLIENT = ("shop_b", "U0hPUEJQQVlNRU5US0VZMDAwMDAwMDAwMDAwMDA=", "U0hPUEJTRUFSQ0hLRVkwMDAwMDAwMDAwMDAwMDA=")
READY_TIMEOUT = 30

CLI = Path(sys.executable).parent / "payletter-emulator"  # the console script, as users run it


def cli(*args: str) -> list[str]:
    """The command line `payletter-emulator <args>`: the console script beside this Python."""
    return [str(CLI), *args]


@contextlib.contextmanager
def piped_serve(*args: str, env: dict | None = None, stderr=subprocess.PIPE):
    """`payletter-emulator serve --port 0 <args>` with its output piped as text, for the tests of how
    it starts and stops (its exit status, what it says): killed if still running, and its pipes
    closed, however the test ends."""
    process = subprocess.Popen(cli("serve", "--port", "0", *args), stdout=subprocess.PIPE, stderr=stderr,
                               text=True, env={**os.environ, **(env or {})})
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        for pipe in (process.stdout, process.stderr):
            if pipe is not None:
                pipe.close()


def run_cli(*args: str, **options) -> subprocess.CompletedProcess:
    """`payletter-emulator <args>` run to its end (a start that is refused, a check), its output as text."""
    return subprocess.run(cli(*args), capture_output=True, text=True, timeout=60, **options)


# For a pytest run in a subprocess (a merchant's suite): this repository's test tools (hypothesis,
# schemathesis, ...) are pytest plugins too, which a merchant's suite does not have and
# which would cost every such run seconds of imports; only the plugin under test and xdist load.
ONLY_OUR_PLUGIN = [arg for entry in entry_points(group="pytest11")
                   if entry.name not in ("payletter_emulator", "xdist", "xdist.looponfail")
                   for arg in ("-p", f"no:{entry.name}")]


def serving_processes(pid: int) -> list[int]:
    """The processes `serve` (pid) runs to serve: its children, less multiprocessing's resource
    tracker, which starting them brings along."""
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except FileNotFoundError:
        return []
    found = []
    for child in children:
        try:
            command = Path(f"/proc/{child}/cmdline").read_bytes()
        except FileNotFoundError:
            continue
        if b"resource_tracker" not in command:
            found.append(int(child))
    return found


class EmulatorProcess:
    """`payletter-emulator serve --port 0` in a subprocess, started as users start it; ready when
    /_emulator/health answers. The one way the tests start a server.

    Its stderr goes to `log` (workdir/emulator.log); its startup lines are kept (`line`).
    db: a file in workdir, a path, a URL or ":memory:"; None leaves `--db` out (serve's default).
    env: added to the environment, which has a second test client (OTHER_CLIENT); environ: the
    whole environment instead. argv: the whole command line instead of `payletter-emulator serve
    --port 0 --db ...` (the Docker image's CMD, a start that hides modules first).
    own_session: in a session of its own, so that `kill` takes the server and its workers at once,
    as a machine losing power would. ca: the CA certificate an HTTPS server is trusted by (by
    default the file the server names on its "CA certificate:" line)."""

    def __init__(self, workdir: Path, *args: str, db: str | None = "emulator.db", env: dict | None = None,
                 environ: dict | None = None, argv: list[str] | None = None, own_session: bool = False,
                 ca: str | None = None, log: Path | None = None):
        self.workdir = workdir
        self.db = db if db is None or db == ":memory:" or "://" in db else str(workdir / db)
        self.own_session = own_session
        self.ca = ca
        self.log_path = log or workdir / "emulator.log"
        self.log = open(self.log_path, "ab")
        self.lines: list[str] = []
        self._printed = threading.Condition()
        if environ is None:
            environ = {**os.environ, "PAYLETTER_EMULATOR_CLIENTS": ":".join(OTHER_CLIENT)}
        if argv is None:
            argv = cli("serve", "--port", "0", *(["--db", self.db] if self.db is not None else []), *args)
        self.process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=self.log, env={**environ, **(env or {})},
                                        cwd=workdir, start_new_session=own_session)
        first = self.process.stdout.readline().decode("utf-8", "replace")
        if "listening on " not in first:
            self.kill()
            raise RuntimeError(f"emulator did not start: {first!r}; see {self.log_path}")
        self.lines.append(first.rstrip("\n"))
        self.url = first.split("listening on ")[1].split()[0]
        self._reader = threading.Thread(target=self._read_output, daemon=True)
        self._reader.start()
        try:
            self.wait_ready()
        except BaseException:
            self.kill()  # with its workers: nothing left running behind a failed start
            raise

    def _read_output(self) -> None:
        with self.process.stdout as output:  # read to the end: an unread pipe would fill and block the server
            for raw in output:
                with self._printed:
                    self.lines.append(raw.decode("utf-8", "replace").rstrip("\n"))
                    self._printed.notify_all()

    def printed(self) -> str:
        """Everything the server printed on stdout, once it has ended (after `stop`)."""
        self._reader.join(READY_TIMEOUT)
        with self._printed:
            return "\n".join(self.lines)

    def line(self, label: str, timeout: float = READY_TIMEOUT) -> str:
        """What the server printed after `label` on a line of its own (`dashboard`, `CA
        certificate`, `PAYMENT key`), once that line has come."""
        def found():
            return next((text.strip()[len(label):].lstrip(": ") for text in self.lines
                         if text.strip().startswith(label)), None)

        with self._printed:
            if self._printed.wait_for(lambda: found() is not None, timeout) is False:
                raise AssertionError(f"the server never printed {label!r}: {self.lines}")
            return found()

    def wait_ready(self) -> None:
        """Until /_emulator/health answers (a condition polled: the server says when it listens,
        not when a worker has booted); over HTTPS, to a client trusting the server's CA."""
        if self.ca is None and self.url.startswith("https://"):
            self.ca = self.line("CA certificate")
        deadline = time.monotonic() + READY_TIMEOUT
        while True:
            try:
                if requests.get(self.url + "/_emulator/health", timeout=1, verify=self.ca or True).status_code == 200:
                    return
            except (requests.ConnectionError, requests.Timeout):  # not listening, or no worker booted yet
                pass
            if self.process.poll() is not None:
                raise RuntimeError(f"the emulator exited with {self.process.returncode}; see {self.log_path}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"the emulator never became healthy; see {self.log_path}")
            time.sleep(0.02)

    @property
    def port(self) -> int:
        return urlparse(self.url).port

    def members(self) -> list[int]:
        """The live processes of the server's session (own_session): the server and its workers."""
        found = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                state, _, group = stat.read_text().rsplit(")", 1)[1].split()[:3]
            except (OSError, ValueError):
                continue
            if int(group) == self.process.pid and state != "Z":
                found.append(int(stat.parent.name))
        return found

    def stop(self) -> None:
        """SIGTERM, as Ctrl-C or `docker stop` would; SIGKILL if it has not ended in 15 s."""
        if self.process.poll() is None:
            if self.own_session:
                os.killpg(self.process.pid, signal.SIGTERM)
            else:
                self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                pass
        self.kill()

    def kill(self) -> None:
        """SIGKILL to the server and every process serving for it, as a crash: no shutdown, no
        cleanup (a worker whose parent alone is killed would stop gracefully a second later)."""
        if self.own_session:
            try:
                os.killpg(self.process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.process.wait(10)
            deadline = time.monotonic() + READY_TIMEOUT
            while self.members() and time.monotonic() < deadline:  # the kernel is tearing the workers down
                time.sleep(0.02)
            assert not self.members(), "a worker outlived SIGKILL"
        else:
            workers = serving_processes(self.process.pid)
            self.process.kill()
            for pid in workers:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            self.process.wait(10)
        self.log.close()


@dataclass
class Received:
    path: str
    headers: dict
    body: bytes

    def json(self):
        return json.loads(self.body)


ACK = b'{"code": 0, "message": "success"}'
GLOBAL_ACK = b"<RESULT>OK</RESULT>"  # what a Payletter Global notification page answers (Payletter's PHP samples)


@dataclass
class Answer:
    """How the receiver answers one POST: a status and body, after a delay; `drop` closes the
    connection without a word."""

    status: int = 200
    body: bytes = ACK
    delay: float = 0.0
    drop: bool = False
    headers: dict = field(default_factory=dict)


@dataclass
class CallbackReceiver:
    """A merchant's callback endpoint: records every POST and answers as told, first from
    `script` (one Answer per request, in order), then with `status` and `answer` (of
    `content_type`). `as_global_page()` makes it a Payletter Global notification page."""

    url: str = ""
    received: list[Received] = field(default_factory=list)
    status: int = 200
    answer: bytes = ACK
    content_type: str = "application/json"
    script: list[Answer] = field(default_factory=list)
    event: threading.Condition = field(default_factory=threading.Condition)

    def clear(self) -> None:
        with self.event:
            self.received.clear()
            self.script.clear()
        self.status, self.answer, self.content_type = 200, ACK, "application/json"

    def as_global_page(self) -> "CallbackReceiver":
        """Answer as the samples' notification page does: `<RESULT>OK</RESULT>`, as text/html."""
        self.answer, self.content_type = GLOBAL_ACK, "text/html; charset=utf-8"
        return self

    def next_answer(self) -> Answer:
        with self.event:
            if self.script:
                return self.script.pop(0)
            return Answer(self.status, self.answer, headers={"Content-Type": self.content_type})

    def wait_for(self, count: int, timeout: float = 10.0) -> list[Received]:
        """Until `count` POSTs have arrived (or the timeout passes); what arrived."""
        with self.event:
            self.event.wait_for(lambda: len(self.received) >= count, timeout)
            return list(self.received)


def serve_receiver(receiver: CallbackReceiver, port: int = 0) -> ThreadingHTTPServer:
    """Run `receiver` on a loopback port in a thread; the server (shut it down when done)."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            length = int(self.headers.get("Content-Length", 0))
            body = self.rfile.read(length)
            with receiver.event:
                receiver.received.append(Received(self.path, dict(self.headers), body))
                receiver.event.notify_all()
            answer = receiver.next_answer()
            time.sleep(answer.delay)  # the merchant's endpoint is slow, on purpose
            if answer.drop:
                self.close_connection = True
                return
            self.send_response(answer.status)
            for name, value in {"Content-Type": "application/json", **answer.headers}.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(answer.body)))
            self.end_headers()
            self.wfile.write(answer.body)

        def log_message(self, *args):
            pass

    class Server(ThreadingHTTPServer):
        daemon_threads = True
        request_queue_size = 128  # several dispatchers may connect at once

    server = Server(("127.0.0.1", port), Handler)
    receiver.url = f"http://127.0.0.1:{server.server_port}/callback"
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.fixture(scope="session")
def callback_receiver():
    receiver = CallbackReceiver()
    server = serve_receiver(receiver)
    yield receiver
    server.shutdown()


@pytest.fixture
def receiver(callback_receiver):
    """The session's receiver, emptied before and after the test: what it holds is this test's."""
    callback_receiver.clear()
    yield callback_receiver
    callback_receiver.clear()


SCHEMAS = Schemas(schemas_dir())
_ROUTES = [(re.compile(re.sub(r"\{[^}]+\}", "[^/]+", op.path) + "/?"), op.response) for op in OPERATIONS if op.key]
_PAYER_ACTION = re.compile(r"/_emulator/payments/[^/]+/(approve|decline)/?")


def check_against_schemas(response: requests.Response, *args, **kwargs) -> None:
    """Every answer of the gateway's API, and every set of return fields, is checked against
    schemas/ as it arrives: no test can pass on a body the schemas do not describe."""
    path = urlparse(response.url).path
    if path.startswith("/v1.0/"):
        body = response.json()
        if response.status_code == 200:
            name = next((schema for pattern, schema in _ROUTES if pattern.fullmatch(path)), None)
        else:
            name = "responses/error"
        assert name, f"no response schema for {path}"
        assert SCHEMAS.errors(name, body) == [], (path, body)
    elif response.status_code == 200 and _PAYER_ACTION.fullmatch(path):
        fields = response.json().get("fields")
        if fields is None:  # a scenario made the payer abandon: a redirect, no fields
            return
        if fields["code"] != "0":  # declined, by the test or by a scenario
            name = "payloads/return_failure"
        else:
            name = "payloads/return_verification" if "tid" not in fields else "payloads/return_success"
        assert SCHEMAS.errors(name, fields) == [], (name, fields)


class Api:
    """Talks to one emulator as a merchant's code and a test would."""

    def __init__(self, url: str, callback_url: str):
        self.url = url
        self.callback_url = callback_url
        self.http = requests.Session()
        self.http.hooks["response"].append(check_against_schemas)

    def post(self, path: str, body=None, *, key: str | None = PAYMENT_KEY, **kwargs) -> requests.Response:
        headers = {"Authorization": f"PLKEY {key}"} if key else {}
        return self.http.post(self.url + path, json=body, headers=headers, timeout=30, **kwargs)

    def get(self, path: str, params=None, *, key: str | None = SEARCH_KEY) -> requests.Response:
        headers = {"Authorization": f"PLKEY {key}"} if key else {}
        return self.http.get(self.url + path, params=params, headers=headers, timeout=30)

    def control(self, path: str, body=None, method: str = "POST") -> dict:
        response = self.http.request(method, self.url + "/_emulator" + path, json=body, timeout=30)
        assert response.status_code == 200, response.text
        return response.json()

    def request_body(self, **overrides) -> dict:
        body = {"pgcode": "creditcard", "client_id": "pay_test", "user_id": "test_user_id",
                "user_name": "tester", "service_name": "payletter", "order_no": "1234567890",
                "amount": 1000, "product_name": "test product", "custom_parameter": "this is custom parameter",
                "return_url": "https://merchant.example/result", "callback_url": self.callback_url,
                "cancel_url": "https://merchant.example/cancel"}
        body.update(overrides)
        return {k: v for k, v in body.items() if v is not None}

    def request_payment(self, **overrides) -> int:
        response = self.post("/v1.0/payments/request", self.request_body(**overrides))
        assert response.status_code == 200, response.text
        return response.json()["token"]

    def pay(self, approve: dict | None = None, **overrides) -> dict:
        """Request a payment and approve it as the payer; the return fields, once the
        callback's first attempt has been made."""
        token = self.request_payment(**overrides)
        fields = self.control(f"/payments/{token}/approve", approve or {})["fields"]
        self.flush()
        return fields

    def deposit(self, tid: str, **body) -> dict:
        """The payer deposits into a virtual account; the payment, once the callback's first
        attempt has been made."""
        payment = self.control(f"/virtual-accounts/{tid}/deposit", body)
        self.flush()
        return payment

    def flush(self) -> dict:
        """Wait until every callback due has been attempted (no sleeping in tests)."""
        answer = self.control("/callbacks/flush", {})
        assert answer["idle"], answer
        return answer

    def cancel(self, fields: dict, amount=None, partial: bool = False, **overrides) -> requests.Response:
        body = {"pgcode": fields["pgcode"], "client_id": "pay_test", "user_id": fields["user_id"],
                "tid": fields["tid"], "amount": amount if amount is not None else int(fields["amount"]),
                "ip_addr": "127.0.0.1", **overrides}
        path = "/v1.0/payments/cancel/partial" if partial else "/v1.0/payments/cancel"
        return self.post(path, {k: v for k, v in body.items() if v is not None})

    def advance(self, *, days: float = 0, seconds: float = 0) -> dict:
        return self.control("/clock", {"advance_seconds": days * 86400 + seconds})

    def set_clock(self, iso: str) -> dict:
        return self.control("/clock", {"set": iso})


def refused(response: requests.Response, status: int = 406, code: int | None = None) -> dict:
    """The error envelope of a refusal, once its status (and code, if given) are checked."""
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"code", "message"}, body
    if code is not None:
        assert body["code"] == code, body
    return body


def ok(response: requests.Response) -> dict:
    """A success body: HTTP 200 and no error code (payments/status alone carries code 0)."""
    assert response.status_code == 200, response.text
    body = response.json()
    assert body.get("code", 0) == 0, body
    return body


def freeze_at(api: "Api", moment: str) -> dict:
    """Freeze the emulator's clock at `moment` (ISO 8601)."""
    api.control("/clock", {"freeze": True})
    return api.set_clock(moment)


def stored(api: "Api", ref) -> dict:
    """The emulator's view of a payment, by tid or token."""
    return api.control(f"/payments/{ref}", method="GET")


@pytest.fixture(scope="session")
def schemas() -> Schemas:
    return SCHEMAS


@pytest.fixture(scope="session")
def emulator_process(tmp_path_factory):
    process = EmulatorProcess(tmp_path_factory.mktemp("emulator"))
    yield process
    process.stop()


@pytest.fixture(scope="session")
def strict_process(tmp_path_factory):
    process = EmulatorProcess(tmp_path_factory.mktemp("strict"), "--strict")
    yield process
    process.stop()


def _clean(process: EmulatorProcess, receiver: CallbackReceiver):
    """A clean emulator (reset, clock back to real time) and an empty callback receiver; after
    the test, every callback that arrived must match schemas/payloads/callback.json."""
    client = Api(process.url, receiver.url)
    client.control("/reset")
    receiver.clear()
    yield client
    client.flush()
    for callback in receiver.received:
        assert SCHEMAS.errors("payloads/callback", callback.json()) == [], callback.body


@pytest.fixture
def api(emulator_process, callback_receiver):
    yield from _clean(emulator_process, callback_receiver)


@pytest.fixture
def strict_api(strict_process, callback_receiver):
    yield from _clean(strict_process, callback_receiver)


# --- what a test needs beyond Python -----------------------------------------------------------
# Each test is marked by the fixture it takes (for PostgreSQL also the backend it is parametrized
# with), so `make quick` can leave out what needs a system package; pyproject.toml describes each
# marker. `make test` runs them all: a missing package fails its tests, never skips them.
NEEDS = {"browser": "chromium", "postgres": "postgres_server", "wrk": "wrk", "node": "node"}


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects by these marks
def pytest_collection_modifyitems(items):
    for item in items:
        for marker, fixture in NEEDS.items():
            if fixture in item.fixturenames:
                item.add_marker(marker)
        spec = getattr(item, "callspec", None)
        if spec is not None and any(value == "postgresql" for value in spec.params.values() if isinstance(value, str)):
            item.add_marker("postgres")


def pytest_report_header(config):
    """What a `-m "not browser and ..."` run (make quick) leaves out, and why."""
    left_out = set(re.findall(r"\bnot\s+(\w+)", config.getoption("markexpr") or ""))
    described = dict(line.split(":", 1) for line in config.getini("markers") if ":" in line)
    return [f"left out: the {name} tests ({described[name].strip()})" for name in NEEDS if name in left_out]


def _system_tool(names: tuple[str, ...], package: str, why: str) -> str:
    found = next(filter(None, map(shutil.which, names)), None)
    if not found:
        pytest.fail(f"{why} needs {names[0]} on PATH: apt-get install {package} (.ci/run installs it)", pytrace=False)
    return found


@pytest.fixture(scope="session")
def node() -> str:
    """Node (Debian's nodejs): the Node shop's suite and the Node examples of docs/ci.md."""
    return _system_tool(("node", "nodejs"), "nodejs", "the Node example")


@pytest.fixture(scope="session")
def wrk() -> str:
    """wrk, which the benchmark suite drives its load with."""
    return _system_tool(("wrk",), "wrk", "the benchmark")


# --- databases: every test that takes `database` runs on SQLite and on PostgreSQL --------------

@pytest.fixture(scope="session")
def postgres_server():
    from .databases import PostgresServer

    server = PostgresServer()
    yield server
    server.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request, tmp_path):
    """A fresh database for one test: a SQLite file, or a new PostgreSQL database."""
    if request.param == "sqlite":
        return str(tmp_path / "shared.db")
    return request.getfixturevalue("postgres_server").new_database()


class RawMerchant:
    """A merchant on a raw socket, for answers no HTTP server library would give (a byte at a
    time, none at all): each connection is handled by `behave(connection, request)` once the
    whole request (head and body) has arrived. What arrived is kept in `requests`; `ended` counts
    the connections over (`wait_ended` waits for them), `cut_off` those the sender hung up on
    while `behave` was still answering."""

    def __init__(self, behave):
        self.behave = behave
        self.requests: list[bytes] = []
        self.ended = 0
        self.cut_off = 0
        self._over = threading.Condition()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}/callback?shop=7"
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                connection, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._one, args=(connection,), daemon=True).start()

    def _one(self, connection: socket.socket) -> None:
        cut_off = False
        try:
            with connection:
                request = b""
                while b"\r\n\r\n" not in request:
                    chunk = connection.recv(4096)
                    if not chunk:  # the sender left before its request was whole, or sent none
                        return
                    request += chunk
                head = request.split(b"\r\n\r\n")[0].lower()
                length = int(head.split(b"content-length:")[1].split(b"\r\n")[0])
                while len(request.split(b"\r\n\r\n", 1)[1]) < length:
                    request += connection.recv(4096)
                self.requests.append(request)
                try:
                    self.behave(connection, request)
                except OSError:  # the sender hung up (its timeout)
                    cut_off = True
        finally:
            with self._over:
                self.ended += 1
                self.cut_off += cut_off
                self._over.notify_all()

    def wait_ended(self, count: int, timeout: float = READY_TIMEOUT) -> int:
        """Until `count` connections are over (or the timeout passes); how many are."""
        with self._over:
            self._over.wait_for(lambda: self.ended >= count, timeout)
            return self.ended

    def close(self) -> None:
        self.listener.close()


@pytest.fixture(scope="session")
def playwright():
    """The test process's one Playwright: its sync API drives one instance per thread at a time, so
    every module that launches a browser launches it from this one (a fixture of conftest.py, so
    one per test process, whichever modules import browser.py's fixtures)."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("the hosted-page tests need Playwright for Python: pip install -e '.[test]'", pytrace=False)
    with sync_playwright() as instance:
        yield instance


def until(condition, timeout: float = 30.0, what: str = "the condition"):
    """Poll `condition()` until it answers something true, within `timeout` seconds; that answer.
    The tests' one way to wait for a state another process reaches in its own time (a host hearing
    the news, a pool's connection made again)."""
    deadline = time.monotonic() + timeout
    while True:
        answer = condition()
        if answer:
            return answer
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not come within {timeout} s")
        time.sleep(0.005)
