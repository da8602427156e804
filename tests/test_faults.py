"""Nothing one request does stalls the others (issue 23). While a fault goes on (a regex that
backtracks, a scenario of 256 KiB, a page of a thousand payments on SQLite and on PostgreSQL, a
lock held by another process, a hundred bodies of 1 MiB held half-sent), a real `serve` process
answers /_emulator/health, and payments/request, each time; and, where the fault's request is slow
by its nature, several times while one such request is under way, which a fault holding up the
process would prevent (its probes would wait for it to end). What each probe took is a figure,
not asserted: benchmarks/faults.py measures it, and the same probes with no fault, in one run."""
from __future__ import annotations

import json
import math
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from payletter_emulator.client import EmulatorClient
from payletter_emulator.engines.scenario import ScenarioError
from payletter_emulator.waits import LOCK_WAIT

from .conftest import PAYMENT_KEY, Api, EmulatorProcess, ok, refused, run_cli
from .doc_blocks import doc_block

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = 5  # rounds of probes during each fault, at least
WITHIN_ONE = 3  # probes answered while one slow request of the fault was under way, at least
TIMES = 30  # a repeated fault's requests, at most: it ends even if the probes never get their turn
LOCKED_MESSAGE = (f"Internal server error (the emulator's database is locked by another process; "
                  f"waited {LOCK_WAIT:g} s)")


class Sampler:
    """Sends /_emulator/health and payments/request, one after the other, while a fault runs on a
    thread of its own; keeps when each probe was sent and answered, and when each of the fault's
    slow requests was under way (`slow`)."""

    def __init__(self, api: Api):
        self.api = api
        self.http = requests.Session()  # one connection, kept: what is probed is the server's answer
        self.headers = {"Authorization": f"PLKEY {PAYMENT_KEY}"}
        self.spans: list[list[float]] = []  # the fault's slow requests: [sent, answered] (inf: under way)
        self.probes: list[tuple[str, float, float]] = []  # (name, sent, answered)

    def health(self) -> None:
        assert self.http.get(self.api.url + "/_emulator/health", timeout=30).status_code == 200

    def payment(self) -> None:
        response = self.http.post(self.api.url + "/v1.0/payments/request", json=self.api.request_body(),
                                  headers=self.headers, timeout=30)
        assert response.status_code == 200, response.text

    @contextmanager
    def slow(self):
        """Around one slow request of the fault: when it was under way is kept."""
        span = [time.monotonic(), math.inf]
        self.spans.append(span)
        try:
            yield
        finally:
            span[1] = time.monotonic()

    def within_one(self) -> int:
        """The most probes sent and answered while one and the same slow request was under way (or
        is: one still under way counts those answered so far)."""
        return max((sum(start <= sent and answered <= end for _, sent, answered in self.probes)
                    for start, end in self.spans), default=0)

    def during(self, fault, probes=("health", "payment"), within_one: int = WITHIN_ONE) -> list[tuple[str, float]]:
        """Run `fault(stop, slow)` on a thread (a fault that repeats stops once `stop` is set, and
        wraps each slow request in `slow()`) and send `probes` over and over from here until it
        has returned: at least SAMPLES rounds, and until `within_one` probes were answered while
        one slow request was under way. Each probe must be answered (200); the probes' latencies
        are returned."""
        stop, ended, failures = threading.Event(), threading.Event(), []

        def run():
            try:
                fault(stop, self.slow)
            except BaseException as exc:  # noqa: BLE001  (raised again below, in the test's thread)
                failures.append(exc)
            finally:
                ended.set()

        thread = threading.Thread(target=run, name="fault", daemon=True)
        thread.start()
        rounds = 0
        while not ended.is_set():
            for name in probes:
                sent = time.monotonic()
                getattr(self, name)()
                self.probes.append((name, sent, time.monotonic()))
            rounds += 1
            if rounds >= SAMPLES and (within_one == 0 or self.within_one() >= within_one):
                stop.set()
        thread.join(60)
        if failures:
            raise failures[0]
        assert rounds >= SAMPLES, f"the fault ended after {rounds} rounds of probes"
        assert self.within_one() >= within_one, (
            f"{self.within_one()} probes answered while one of the fault's {len(self.spans)} slow requests was "
            f"under way, of {len(self.probes)}: the fault held the process up")
        return [(name, answered - sent) for name, sent, answered in self.probes]


def repeat(request, times: int = TIMES):
    """A fault that makes `request()`, a slow request, again and again until told to stop, `times` at most."""
    def fault(stop: threading.Event, slow) -> None:
        for _ in range(times):
            if stop.is_set():
                return
            with slow():
                request()
    return fault


@pytest.fixture
def server(tmp_path):
    process = EmulatorProcess(tmp_path, "--workers", "1")  # one process: a stall there is a stall of all
    yield process
    process.stop()


@pytest.fixture
def api(server, callback_receiver):
    return Api(server.url, callback_receiver.url)


# --- 1. a scenario regex that backtracks -------------------------------------------------------------

CATASTROPHIC = "^(a+)+$"  # Python's re took 6.8 s to find that 27 a's and a '!' do not match


def test_a_regex_that_would_backtrack_for_seconds_is_matched_at_once(api):
    api.control("/scenario", {"version": 1, "rules": [
        {"name": "only a's", "when": {"user_id": {"regex": CATASTROPHIC}},
         "then": {"api_error": {"status": 406, "code": 5999, "message": "only a's"}}}]}, method="PUT")
    refused(api.post("/v1.0/payments/request", api.request_body(user_id="a" * 27)), 406, 5999)  # the rule is live

    def unmatched():
        ok(api.post("/v1.0/payments/request", api.request_body(user_id="a" * 27 + "!")))

    # A match takes microseconds now: no request of this fault is under way long enough for a probe
    # to be answered within it; that every probe is answered as it repeats is what is left to check.
    Sampler(api).during(repeat(unmatched), within_one=0)


def test_a_regex_re2_cannot_run_is_refused_when_the_scenario_is_put(api):
    response = api.http.put(api.url + "/_emulator/scenario", timeout=30, json={"version": 1, "rules": [
        {"name": "twice", "when": {"order_no": {"regex": r"^(\d)\1"}}, "then": {"abandon": {}}}]})
    message = refused(response, 406, 4501)["message"]
    assert r"rules[0].when.order_no.regex: '^(\\d)\\1' is not a regular expression RE2 accepts: " \
           r"invalid escape sequence: \1 (RE2's syntax, matched in linear time: no backreferences" in message


# --- 2. a large scenario document --------------------------------------------------------------------

def scenario_yaml(size: int) -> str:
    """A scenario of about `size` bytes: rules that each decline one user's payments."""
    rules, length, index = [], 0, 0
    while length < size:
        rule = (f"  - name: rule {index}\n    when: {{user_id: {{regex: \"^user-{index}-\"}}, "
                f"amount: {{min: 100, max: 2000}}}}\n    then: {{decline: {{code: \"6001\", message: declined}}}}\n")
        rules.append(rule)
        length += len(rule)
        index += 1
    return "version: 1\nname: large\nrules:\n" + "".join(rules)


def test_a_scenario_past_256_kib_is_refused_and_one_within_is_read_off_the_event_loop(api, tmp_path):
    yaml_type = {"Content-Type": "application/yaml"}
    huge = scenario_yaml(1000 * 1024)  # within the 1 MiB any body may be
    response = api.http.put(api.url + "/_emulator/scenario", data=huge.encode(), headers=yaml_type, timeout=30)
    assert refused(response, 413, 4502)["message"] == (
        f"scenario: the document is {len(huge.encode())} bytes, more than the 262144 bytes a scenario may be; "
        f"split it, or drop rules a test does not use")

    large = scenario_yaml(250 * 1024).encode()  # within the limit: a fifth of a second to read and check

    def put_large():
        answer = api.http.put(api.url + "/_emulator/scenario", data=large, headers=yaml_type, timeout=30)
        assert answer.status_code == 200, answer.text[:300]

    Sampler(api).during(repeat(put_large))
    assert len(api.control("/scenario", method="GET")["rules"]) > 1000

    path = tmp_path / "huge.yaml"  # a file is refused where it is read: the CLI, the client, `serve --scenario`
    path.write_text(huge, "utf-8")
    checked = run_cli("scenario", "check", str(path))
    assert checked.returncode == 1
    assert f"{path}: {len(huge.encode()):,} bytes, more than the 262,144 bytes a scenario may be" in checked.stdout \
           + checked.stderr
    with pytest.raises(ScenarioError, match="more than the 262,144 bytes a scenario may be"):
        EmulatorClient(api.url).use_scenario(str(path))


# --- 3. a control list asked for in one page ---------------------------------------------------------

def test_control_lists_answer_a_page_of_at_most_a_thousand_off_the_event_loop(api):
    pages_of_a_thousand(api)


@pytest.mark.postgres
def test_on_postgresql_a_page_of_a_thousand_stalls_no_other_request(postgres_server, tmp_path, callback_receiver):
    """The list took 4.6 s on PostgreSQL, every other request of the process held up meanwhile."""
    process = EmulatorProcess(tmp_path, "--workers", "1", db=postgres_server.new_database())
    try:
        pages_of_a_thousand(Api(process.url, callback_receiver.url))
    finally:
        process.stop()


def pages_of_a_thousand(api: Api) -> None:
    """1,100 payments; a page past 1,000 refused on every list; pages of 1,000 asked for again and
    again while the probes run."""
    http = requests.Session()
    for index in range(1100):
        assert http.post(api.url + "/v1.0/payments/request", json=api.request_body(order_no=f"o{index}"),
                         headers={"Authorization": f"PLKEY {PAYMENT_KEY}"}, timeout=30).status_code == 200
    for path in ("payments", "callbacks", "requests"):
        refusal = refused(requests.get(f"{api.url}/_emulator/{path}?limit=1000000", timeout=30), 406, 4314)
        assert refusal["message"].startswith("control API: limit 1000000 is more than 1000, the most one page holds")

    def whole_pages(stop, slow):
        for _ in range(TIMES):
            if stop.is_set():
                return
            with slow():  # until the answer's head: the page is made by then, and read after
                answer = requests.get(f"{api.url}/_emulator/payments?limit=1000", timeout=30, stream=True)
            page = answer.json()
            assert len(page["payments"]) == 1000 and page["next"] is not None

    Sampler(api).during(whole_pages)


# --- 4. a lock another process holds -----------------------------------------------------------------

def test_a_write_lock_another_process_holds_stalls_no_other_request(server, api):
    """SQLite: another process holds the write lock (BEGIN IMMEDIATE). A payment waits for it
    where it stops no one else, and is refused (503, code 999) once LOCK_WAIT has passed; one
    whose lock ends sooner is answered then."""
    api.request_payment()
    foreign = sqlite3.connect(server.db, isolation_level=None, check_same_thread=False)
    answers = {}

    def held_past_the_wait(stop, slow):
        foreign.execute("BEGIN IMMEDIATE")
        try:
            with slow():
                started = time.monotonic()
                answers["refused"] = api.post("/v1.0/payments/request", api.request_body())
                answers["waited"] = time.monotonic() - started
        finally:
            foreign.execute("ROLLBACK")

    Sampler(api).during(held_past_the_wait, probes=("health",))
    assert refused(answers["refused"], 503, 999)["message"] == LOCKED_MESSAGE
    assert answers["waited"] >= LOCK_WAIT  # refused once the wait was over, not before

    def held_then_released(stop, slow):
        foreign.execute("BEGIN IMMEDIATE")
        with slow():
            waiting = ThreadPoolExecutor(1).submit(api.post, "/v1.0/payments/request", api.request_body())
            stop.wait(60)  # set once health was answered several times while the payment waited
            answers["answered while held"] = waiting.done()
            foreign.execute("ROLLBACK")
            answers["once released"] = waiting.result(30)

    Sampler(api).during(held_then_released, probes=("health",))
    assert answers["answered while held"] is False, answers["once released"].text
    ok(answers["once released"])  # answered once the lock was gone
    foreign.close()


def test_a_payment_row_another_process_locks_stalls_only_its_own_cancel(postgres_server, tmp_path, callback_receiver):
    """PostgreSQL: a payment's row locked in psql (SELECT ... FOR UPDATE) while a cancel of that
    payment arrives. The cancel waits without holding the process's connection or the writers'
    lock; other payments are made meanwhile; it is refused (503) once LOCK_WAIT has passed."""
    import psycopg

    url = postgres_server.new_database()
    process = EmulatorProcess(tmp_path, "--workers", "1", db=url)
    try:
        api = Api(process.url, callback_receiver.url)
        fields = api.pay()
        locker = psycopg.connect(url)
        answers = {}

        def row_locked(stop, slow):
            locker.execute("SELECT token FROM payments WHERE tid = %s FOR UPDATE", (fields["tid"],))
            try:
                with slow():
                    started = time.monotonic()
                    answers["refused"] = api.cancel(fields)
                    answers["waited"] = time.monotonic() - started
            finally:
                locker.rollback()

        Sampler(api).during(row_locked)
        assert refused(answers["refused"], 503, 999)["message"] == LOCKED_MESSAGE
        assert answers["waited"] >= LOCK_WAIT  # refused once the wait was over, not before
        ok(api.cancel(fields))  # the lock gone, the same cancel goes through
        locker.close()
    finally:
        process.stop()


# --- 5. bodies held half-sent -------------------------------------------------------------------------

HELD_BODIES = 100
BODY = 1024 * 1024  # the most a body may be


def test_bodies_held_half_sent_stall_no_other_request(api):
    """Connections that each declare a body of 1 MiB, send what the server takes of it without
    waiting, and hold the rest back."""
    address = urlsplit(api.url)
    head = (f"POST /v1.0/payments/request HTTP/1.1\r\nHost: {address.netloc}\r\nContent-Type: application/json\r\n"
            f"Authorization: PLKEY {PAYMENT_KEY}\r\nContent-Length: {BODY}\r\n\r\n").encode()

    def held_bodies(stop, slow):
        connections = []
        try:
            with slow():
                for _ in range(HELD_BODIES):
                    connection = socket.create_connection((address.hostname, address.port), timeout=30)
                    connection.setblocking(False)
                    connections.append(connection)
                    body = memoryview(head + b" " * (BODY - 1))  # one byte short: never a whole request
                    try:
                        while body:
                            body = body[connection.send(body):]
                    except BlockingIOError:  # the server reads no more for now: the rest is held back
                        pass
                stop.wait(60)  # set once the probes were answered while the bodies are held
        finally:
            for connection in connections:
                connection.close()

    Sampler(api).during(held_bodies)
    Sampler(api).health()  # and after they went


def test_the_lock_example_of_the_architecture_page_runs(server, api):
    example = doc_block("lock-example").text.replace("http://127.0.0.1:8080", api.url).replace('"payletter-emulator.db"', repr(server.db))
    exec(compile(example, "docs/architecture.md", "exec"), {})


@pytest.mark.slow
def test_the_faults_benchmark_gives_every_figure(tmp_path):
    """benchmarks/faults.py in its smallest form: every probe's figures during every fault."""
    figures = tmp_path / "faults.json"
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "faults.py"), "--rounds", "1", "--probes", "3",
                           "--warmup", "1", "--json", str(figures)], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads(figures.read_text())
    health = ("health, keep-alive", "health, new connection")
    assert {fault: sorted(probes) for fault, probes in results["figures"].items()} == {
        fault: sorted(health if fault == "lock" else (*health, "payments/request, keep-alive"))
        for fault in ("calm", "regex", "scenario", "page", "lock", "bodies")}
    assert all(cell["p50"] > 0 and cell["count"] >= 1 for probes in results["figures"].values() for cell in probes.values())
    assert set(results["rss"]) == {"before", "held", "after"}
    assert "| lock | health, keep-alive |" in done.stdout
