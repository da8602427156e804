"""Nothing one request does stalls the others (issue 23): while a fault goes on (a regex that
backtracks, a scenario of 256 KiB, a page of a thousand payments, a lock held by another process),
a real `serve` process answers /_emulator/health, and payments/request, within LATENCY each time."""
from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FuturesTimeout

import pytest
import requests

from payletter_emulator.client import EmulatorClient
from payletter_emulator.engines.scenario import ScenarioError
from payletter_emulator.waits import LOCK_WAIT

from .conftest import PAYMENT_KEY, Api, EmulatorProcess, ok, refused, run_cli
from .doc_blocks import doc_block

ROOT = Path(__file__).resolve().parent.parent
# The behaviour under test: a loopback answer takes a few milliseconds, a stalled one as long as
# the fault (seconds), so the bound is generous.
# An answer slower than this during a fault is a stall (the faults held every answer for seconds).
# The issue's 0.1 s is a figure of an idle machine; on a loaded one (CI, the suite's own workers)
# single answers reach 0.1-0.2 s with no fault at all, so the test holds them to this, and to
# CALM_FACTOR times the slowest of the same probes just before the fault.
LATENCY = 0.25
SAMPLES = 5  # latencies taken during each fault, at least
CALM = 30  # rounds of the probes timed before the fault, whose slowest raises LATENCY on a loaded machine
CALM_FACTOR = 3
LOCKED_MESSAGE = (f"Internal server error (the emulator's database is locked by another process; "
                  f"waited {LOCK_WAIT:g} s)")


class Sampler:
    """Times /_emulator/health and payments/request, one after the other, while a fault runs on a
    thread of its own."""

    def __init__(self, api: Api):
        self.api = api
        self.http = requests.Session()  # one connection, kept: what is timed is the server's answer
        self.headers = {"Authorization": f"PLKEY {PAYMENT_KEY}"}

    def health(self) -> None:
        assert self.http.get(self.api.url + "/_emulator/health", timeout=30).status_code == 200

    def payment(self) -> None:
        response = self.http.post(self.api.url + "/v1.0/payments/request", json=self.api.request_body(),
                                  headers=self.headers, timeout=30)
        assert response.status_code == 200, response.text

    def during(self, fault, probes=("health", "payment"), least: int = SAMPLES) -> list[tuple[str, float]]:
        """Run `fault(stop)` on a thread (a fault that repeats stops once `stop` is set) and time
        `probes` over and over from here until it has returned, and at least `least` rounds; the
        latencies, each checked against LATENCY, or on a loaded machine against CALM_FACTOR times
        the slowest of the same probes timed just before the fault (the faults stalled answers for
        seconds; a machine's load slows the calm probes too)."""
        calm = [self._timed(name) for _ in range(CALM) for name in probes]
        bound = max(LATENCY, CALM_FACTOR * max(calm))
        stop, ended, failures = threading.Event(), threading.Event(), []

        def run():
            try:
                fault(stop)
            except BaseException as exc:  # noqa: BLE001  (raised again below, in the test's thread)
                failures.append(exc)
            finally:
                ended.set()

        thread = threading.Thread(target=run, name="fault", daemon=True)
        thread.start()
        timings: list[tuple[str, float]] = []
        rounds = 0
        while not ended.is_set():
            for name in probes:
                timings.append((name, self._timed(name)))
            rounds += 1
            if rounds >= least:
                stop.set()
        thread.join(60)
        if failures:
            raise failures[0]
        assert rounds >= least, f"the fault ended after {rounds} rounds of probes"
        slow = [(name, round(seconds, 3)) for name, seconds in timings if seconds > bound]
        assert slow == [], (f"answered later than {bound:.3f} s during the fault (calm: at most "
                            f"{max(calm):.3f} s): {slow} of {len(timings)}")
        return timings

    def _timed(self, name: str) -> float:
        started = time.perf_counter()
        getattr(self, name)()
        return time.perf_counter() - started


def repeat(request):
    """A fault that makes `request()` again and again until told to stop."""
    def fault(stop: threading.Event) -> None:
        while not stop.is_set():
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

    Sampler(api).during(repeat(unmatched))


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
    http = requests.Session()
    for index in range(1100):
        assert http.post(api.url + "/v1.0/payments/request", json=api.request_body(order_no=f"o{index}"),
                         headers={"Authorization": f"PLKEY {PAYMENT_KEY}"}, timeout=30).status_code == 200
    for path in ("payments", "callbacks", "requests"):
        refusal = refused(requests.get(f"{api.url}/_emulator/{path}?limit=1000000", timeout=30), 406, 4314)
        assert refusal["message"].startswith("control API: limit 1000000 is more than 1000, the most one page holds")

    def whole_page():
        page = requests.get(f"{api.url}/_emulator/payments?limit=1000", timeout=30).json()
        assert len(page["payments"]) == 1000 and page["next"] is not None

    Sampler(api).during(repeat(whole_page))


# --- 4. a lock another process holds -----------------------------------------------------------------

def test_a_write_lock_another_process_holds_stalls_no_other_request(server, api):
    """SQLite: another process holds the write lock (BEGIN IMMEDIATE). A payment waits for it
    where it stops no one else, and is refused (503, code 999) once LOCK_WAIT has passed; one
    whose lock ends sooner is answered then."""
    api.request_payment()
    foreign = sqlite3.connect(server.db, isolation_level=None, check_same_thread=False)
    answers = {}

    def held_past_the_wait(stop):
        foreign.execute("BEGIN IMMEDIATE")
        try:
            started = time.monotonic()
            answers["refused"] = api.post("/v1.0/payments/request", api.request_body())
            answers["waited"] = time.monotonic() - started
        finally:
            foreign.execute("ROLLBACK")

    Sampler(api).during(held_past_the_wait, probes=("health",))
    assert refused(answers["refused"], 503, 999)["message"] == LOCKED_MESSAGE
    assert LOCK_WAIT <= answers["waited"] < LOCK_WAIT + 5

    foreign.execute("BEGIN IMMEDIATE")
    waiting = ThreadPoolExecutor(1).submit(api.post, "/v1.0/payments/request", api.request_body())
    assert not released_when_answered(waiting, foreign, after=1.0)
    ok(waiting.result(30))  # answered once the lock was gone
    foreign.close()


def released_when_answered(answer, connection, after: float) -> bool:
    """Whether `answer` came before `connection` ended its transaction, `after` seconds on."""
    try:
        answer.result(after)
        return True
    except FuturesTimeout:
        return False
    finally:
        connection.execute("ROLLBACK")


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

        def row_locked(stop):
            locker.execute("SELECT token FROM payments WHERE tid = %s FOR UPDATE", (fields["tid"],))
            try:
                started = time.monotonic()
                answers["refused"] = api.cancel(fields)
                answers["waited"] = time.monotonic() - started
            finally:
                locker.rollback()

        Sampler(api).during(row_locked)
        assert refused(answers["refused"], 503, 999)["message"] == LOCKED_MESSAGE
        assert LOCK_WAIT <= answers["waited"] < LOCK_WAIT + 5
        ok(api.cancel(fields))  # the lock gone, the same cancel goes through
        locker.close()
    finally:
        process.stop()


def test_the_lock_example_of_the_architecture_page_runs(server, api):
    example = doc_block("lock-example").text.replace("http://127.0.0.1:8080", api.url).replace('"payletter-emulator.db"', repr(server.db))
    exec(compile(example, "docs/architecture.md", "exec"), {})
