"""Load and crashes, on SQLite and on PostgreSQL: a bounded load of payments, approvals,
deposits, partial and full cancels and searches against `serve --workers 2`, then every payment's
ledger and every callback's attempts checked; and a server killed (master and workers, SIGKILL)
in the middle of that load, restarted on the same database: nothing acknowledged is lost, no
attempt is recorded twice, every callback due is delivered."""
from __future__ import annotations

import json
import random
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests

from payletter_emulator.domain.payment import ABANDONED, APPROVED, CREATED, FAILED, ISSUED, LIST_CANCELLED, LIST_PARTIAL
from payletter_emulator.domain.errors import catalog

from .conftest import ACK, READY_TIMEOUT, SCHEMAS, Api, EmulatorProcess, freeze_at

T0 = "2026-11-29T10:00:00+09:00"
DAY = "20261129"
THREADS = 12
STORIES = 7  # per thread: 84 stories, about 400 requests in all
FLAKY = "flaky-"  # a callback of an order_no starting so is refused once, then acknowledged
RETRY_SECONDS = 300
# What a cancel may be refused with while other threads cancel the same payment.
CANCEL_REFUSALS = {catalog()[kind].code for kind in ("already_cancelled", "partial_amount_too_large",
                                                       "cancel_amount_mismatch")}


# --- a server in its own session, and a merchant's callback endpoint ----------------------------

def crashable(workdir: Path, db: str) -> EmulatorProcess:
    """`serve --workers 2` in a session of its own: a crash (`kill`) takes the master and its
    workers at once, as a machine losing power would (SIGKILL to the master alone leaves workers
    running)."""
    return EmulatorProcess(workdir, "--workers", "2", "--callback-timeout", "1", db=db, own_session=True)


@dataclass
class Merchant:
    """A callback endpoint that records every POST by tid, and refuses the first POST of an
    order_no starting with FLAKY (HTTP 500) to make the dispatcher retry."""

    url: str = ""
    posts: dict[str, list[dict]] = field(default_factory=lambda: defaultdict(list))
    lock: threading.Lock = field(default_factory=threading.Lock)
    refuse_all: bool = False  # every POST refused (500)
    delay: float = 0.0  # seconds before each answer

    def serve(self) -> ThreadingHTTPServer:
        merchant = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
                with merchant.lock:
                    merchant.posts[body["tid"]].append(body)
                    first = len(merchant.posts[body["tid"]]) == 1
                refuse = merchant.refuse_all or (first and body["order_no"].startswith(FLAKY))
                time.sleep(merchant.delay)  # the merchant is slow, on purpose
                answer = b'{"code": 1, "message": "try again"}' if refuse else ACK
                self.send_response(500 if refuse else 200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args):
                pass

        class Listener(ThreadingHTTPServer):
            daemon_threads = True
            request_queue_size = 128

        server = Listener(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{server.server_port}/callback"
        threading.Thread(target=server.serve_forever, daemon=True).start()
        return server

    def count(self, tid: str) -> int:
        with self.lock:
            return len(self.posts.get(tid, []))

    def total(self) -> int:
        with self.lock:
            return sum(map(len, self.posts.values()))


@pytest.fixture
def merchant():
    found = Merchant()
    server = found.serve()
    yield found
    server.shutdown()
    server.server_close()


# --- the load -------------------------------------------------------------------------------

@dataclass
class Ledger:
    """What the clients were told: each payment's expected state and every acknowledged cancel.
    The doubtful ones were in flight when the server died: their outcome is unknown."""

    created: dict[int, str] = field(default_factory=dict)  # token -> expected status
    tids: dict[int, str] = field(default_factory=dict)  # token -> tid, once approved (or issued)
    amounts: dict[str, int] = field(default_factory=dict)  # tid -> amount
    cancels: dict[str, list[int]] = field(default_factory=lambda: defaultdict(list))
    doubtful_cancels: dict[str, list[int | None]] = field(default_factory=lambda: defaultdict(list))
    doubtful_tokens: set[int] = field(default_factory=set)
    cards: list[str] = field(default_factory=list)  # approved card payments anyone may cancel
    searches: int = 0
    finished: bool = False  # every client has stopped
    lock: threading.Condition = field(default_factory=threading.Condition)

    def expect(self, token: int, status: str, tid: str | None = None, amount: int | None = None) -> None:
        with self.lock:
            self.created[token] = status
            if tid:
                self.tids[token], self.amounts[tid] = tid, amount
            self.lock.notify_all()

    def approvals(self) -> int:
        return sum(status == APPROVED for status in self.created.values())

    def wait_for_approvals(self, count: int) -> bool:
        """Until `count` approvals have been answered (True) or the clients have stopped (False)."""
        with self.lock:
            self.lock.wait_for(lambda: self.approvals() >= count or self.finished, timeout=120)
            return self.approvals() >= count


class Crashed(Exception):
    """The server is gone: this client stops."""


class Client:
    """One merchant thread: a seeded mix of stories, every answer checked as it comes."""

    def __init__(self, url: str, callback_url: str, ledger: Ledger, seed: int):
        self.api = Api(url, callback_url)  # its own HTTP session
        self.ledger = ledger
        self.random = random.Random(seed)
        self.seed = seed
        self.serial = 0

    def run(self, stories: int, stop: threading.Event) -> None:
        for _ in range(stories):
            if stop.is_set():
                return
            story = self.random.choices(
                [self.card, self.card_then_cancels, self.virtual_account, self.declined, self.abandoned,
                 self.left_pending, self.search],
                weights=[3, 4, 2, 1, 1, 1, 2])[0]
            story()

    # --- calls; a dead server raises Crashed, anything else must be an answer ---
    def _call(self, method, *args, **kwargs):
        try:
            return method(*args, **kwargs)
        except (requests.ConnectionError, requests.exceptions.ChunkedEncodingError) as exc:
            raise Crashed() from exc

    def _order(self, kind: str) -> str:
        self.serial += 1
        flaky = FLAKY if self.random.random() < 0.25 else ""
        return f"{flaky}{kind}-{self.seed}-{self.serial}"

    def _request(self, pgcode: str, amount: int, kind: str) -> int:
        response = self._call(self.api.post, "/v1.0/payments/request",
                              self.api.request_body(pgcode=pgcode, amount=amount, order_no=self._order(kind)))
        assert response.status_code == 200, response.text
        token = response.json()["token"]
        self.ledger.expect(token, CREATED)
        return token

    def _control(self, path: str, token: int, body: dict | None = None) -> dict:
        with self.ledger.lock:
            self.ledger.doubtful_tokens.add(token)
        response = self._call(self.api.http.post, f"{self.api.url}/_emulator{path}", json=body or {}, timeout=30)
        assert response.status_code == 200, response.text
        with self.ledger.lock:
            self.ledger.doubtful_tokens.discard(token)
        return response.json()

    def _cancel(self, tid: str, amount: int | None, partial: bool) -> None:
        body = {"pgcode": "creditcard", "client_id": "pay_test", "user_id": "test_user_id", "tid": tid,
                "ip_addr": "127.0.0.1", **({"amount": amount} if amount is not None else {})}
        path = "/v1.0/payments/cancel/partial" if partial else "/v1.0/payments/cancel"
        with self.ledger.lock:
            self.ledger.doubtful_cancels[tid].append(amount)
        response = self._call(self.api.post, path, body)
        with self.ledger.lock:
            self.ledger.doubtful_cancels[tid].remove(amount)
            if response.status_code == 200:
                answer = response.json()
                assert answer["tid"] == tid and (amount is None or answer["amount"] == amount), answer
                self.ledger.cancels[tid].append(answer["amount"])
        if response.status_code != 200:
            assert response.status_code == 406 and response.json()["code"] in CANCEL_REFUSALS, response.text

    # --- stories ---
    def card(self) -> str:
        amount = self.random.randrange(1_000, 90_000, 10)
        token = self._request("creditcard", amount, "card")
        fields = self._control(f"/payments/{token}/approve", token)["fields"]
        assert fields["code"] == "0" and int(fields["amount"]) == amount, fields
        self.ledger.expect(token, APPROVED, fields["tid"], amount)
        with self.ledger.lock:
            self.ledger.cards.append(fields["tid"])
        return fields["tid"]

    def card_then_cancels(self) -> None:
        """Pay, then cancel parts of payments anyone made, then perhaps the rest of one: threads
        race on the same payments."""
        self.card()
        for _ in range(self.random.randint(1, 3)):
            with self.ledger.lock:
                tid = self.random.choice(self.ledger.cards)
                amount = self.ledger.amounts[tid]
            self._cancel(tid, self.random.randint(1, amount // 2), partial=True)
        if self.random.random() < 0.4:
            with self.ledger.lock:
                tid = self.random.choice(self.ledger.cards)
            self._cancel(tid, None, partial=False)  # whatever is left

    def virtual_account(self) -> None:
        amount = self.random.randrange(1_000, 50_000, 100)
        token = self._request("virtualaccount", amount, "va")
        fields = self._control(f"/payments/{token}/approve", token)["fields"]
        self.ledger.expect(token, ISSUED, fields["tid"], amount)
        if self.random.random() < 0.8:
            payment = self._control(f"/virtual-accounts/{fields['tid']}/deposit", token)
            assert payment["status"] == APPROVED, payment
            self.ledger.expect(token, APPROVED, fields["tid"], amount)

    def declined(self) -> None:
        token = self._request("creditcard", 5_000, "declined")
        assert self._control(f"/payments/{token}/decline", token)["fields"]["code"] == "6001"
        self.ledger.expect(token, FAILED)

    def abandoned(self) -> None:
        token = self._request("mobile", 3_000, "abandoned")
        self._control(f"/payments/{token}/abandon", token)
        self.ledger.expect(token, ABANDONED)

    def left_pending(self) -> None:
        self._request("banktransfer", 2_000, "pending")

    def search(self) -> None:
        date_type = self.random.choice(["transaction", "settle"])
        response = self._call(self.api.get, "/v1.0/payments/transaction/list",
                              {"client_id": "pay_test", "date": DAY, "date_type": date_type})
        assert response.status_code == 200, response.text  # and its body matched the schema
        body = response.json()
        assert body["total_count"] == len(body["list"])
        with self.ledger.lock:
            self.ledger.searches += 1


def load(url: str, callback_url: str, ledger: Ledger, *, stop: threading.Event | None = None) -> list[BaseException]:
    """THREADS clients at once; what went wrong in them (a crash is not wrong)."""
    stop = stop or threading.Event()
    start = threading.Barrier(THREADS)
    failures: list[BaseException] = []

    def client(seed: int) -> None:
        worker = Client(url, callback_url, ledger, seed)
        try:
            try:
                worker.card()  # every thread has a payment in the pool before anyone cancels
            finally:
                start.wait(READY_TIMEOUT)
            worker.run(STORIES, stop)
        except Crashed:
            pass
        except BaseException as exc:  # noqa: BLE001  (reported by the test)
            failures.append(exc)

    threads = [threading.Thread(target=client, args=(seed,)) for seed in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    with ledger.lock:
        ledger.finished = True
        ledger.lock.notify_all()
    return failures


# --- the checks -----------------------------------------------------------------------------

def check_payments(api: Api, ledger: Ledger, *, crashed: bool = False) -> dict[str, dict]:
    """Every payment: the status the client was told, a ledger that adds up, and the cancels the
    clients were acknowledged, exactly (after a crash: at least those, at most with what was in
    flight). The approved payments, by tid."""
    payments = api.control("/payments?client_id=pay_test", method="GET")["payments"]
    by_token = {p["token"]: p for p in payments}
    assert set(ledger.created) <= set(by_token), "a payment request that was answered is lost"
    if not crashed:
        assert set(by_token) == set(ledger.created)
    approved = {}
    for token, expected in ledger.created.items():
        payment = by_token[token]
        if token in ledger.doubtful_tokens:  # the server died while approving it
            assert payment["status"] in (expected, APPROVED, ISSUED, FAILED, ABANDONED), payment
        else:
            assert payment["status"] == expected, (expected, payment)
        if token in ledger.tids:
            assert payment["tid"] == ledger.tids[token]
        cancellations = payment["cancellations"]
        assert payment["cancelled_amount"] == sum(c["amount"] for c in cancellations), payment
        assert payment["cancelled_taxfree_amount"] == sum(c["taxfree_amount"] for c in cancellations)
        assert payment["cancelled_tax_amount"] == sum(c["tax_amount"] for c in cancellations)
        assert 0 <= payment["cancelled_amount"] <= payment["amount"], payment
        assert payment["cancelled_taxfree_amount"] <= payment["taxfree_amount"]
        assert payment["cancelled_tax_amount"] <= payment["tax_amount"]
        if payment["tid"]:
            assert payment["remaining"] == payment["amount"] - payment["cancelled_amount"]
            recorded = Counter(c["amount"] for c in cancellations)
            told = Counter(ledger.cancels.get(payment["tid"], []))
            assert told <= recorded, ("an acknowledged cancel is lost", payment["tid"], told, recorded)
            unexplained = recorded - told
            if crashed:
                in_flight = ledger.doubtful_cancels.get(payment["tid"], [])
                assert sum(unexplained.values()) <= len(in_flight), (payment["tid"], unexplained, in_flight)
            else:
                assert not unexplained, (payment["tid"], unexplained)
            # At most one full cancel, and nothing after it.
            assert all(c["partial"] for c in cancellations[:-1]), cancellations
        else:
            assert cancellations == []
        if payment["status"] == APPROVED:
            approved[payment["tid"]] = payment
    return approved


def check_search(api: Api, approved: dict[str, dict]) -> None:
    """The day's search lists exactly the approved payments, each as the payment says."""
    rows = api.get("/v1.0/payments/transaction/list",
                   {"client_id": "pay_test", "date": DAY, "date_type": "transaction"}).json()["list"]
    assert sorted(r["tid"] for r in rows) == sorted(approved)
    for row in rows:
        payment = approved[row["tid"]]
        if payment["cancelled_amount"] == 0:
            assert (row["status_code"], row["amount"], row["cancel_date"]) == (0, payment["amount"], "")
        else:
            status = LIST_CANCELLED if payment["remaining"] == 0 else LIST_PARTIAL
            assert (row["status_code"], row["amount"]) == (status, payment["cancelled_amount"]), (row, payment)
            assert row["cancel_date"] == payment["cancellations"][-1]["cancel_date"]
    settle = api.get("/v1.0/payments/transaction/list",
                     {"client_id": "pay_test", "date": DAY, "date_type": "settle"}).json()["list"]
    cancellations = [c for p in approved.values() for c in p["cancellations"]]
    assert len(settle) == len(approved) + len(cancellations)
    assert sum(r["amount"] for r in settle if r["status_code"] == 0) == sum(p["amount"] for p in approved.values())
    assert sum(r["amount"] for r in settle if r["status_code"] != 0) == sum(c["amount"] for c in cancellations)


def acknowledged(attempt: dict) -> bool:
    if attempt["http_status"] != 200:
        return False
    try:
        return str(json.loads(attempt["response_body"]).get("code")) == "0"
    except (ValueError, AttributeError):
        return False


def check_callbacks(api: Api, approved: dict[str, dict], merchant: Merchant, *, crashed: bool = False) -> None:
    """One notification per approved payment and none for any other; attempts numbered 1..n
    without gaps or repeats, a first and then retries; the status the attempts say; every POST the
    merchant received is on the ledger, and every attempt on it reached the merchant, except (after
    a crash) one the crash cut, whose outcome is unknown: it may have stopped before its request left."""
    callbacks = api.control("/callbacks", method="GET")["callbacks"]
    assert Counter(c["tid"] for c in callbacks) == Counter(list(approved)), "not exactly one notification per approval"
    for callback in callbacks:
        attempts = callback["attempts"]
        numbers = [a["number"] for a in attempts]
        assert numbers == list(range(1, len(attempts) + 1)), (callback["tid"], numbers)
        unknown = [a for a in attempts if a["state"] == "unknown"]
        done = [a for a in attempts if a["state"] == "done"]
        assert len(done) + len(unknown) == len(attempts), attempts  # none left "sending"
        assert len(unknown) <= (1 if crashed else 0), attempts
        assert attempts[:len(unknown)] == unknown  # only a first attempt was under way at the crash
        assert [a["kind"] for a in attempts] == ["first"] + ["retry"] * (len(attempts) - 1)  # none made twice
        assert callback["attempts_made"] == len(attempts)
        assert not any(acknowledged(a) for a in attempts[:-1]), "an attempt after an acknowledgement"
        assert callback["status"] == "delivered" and acknowledged(attempts[-1]), callback
        assert SCHEMAS.errors("payloads/callback", callback["body"]) == []
        received = merchant.posts.get(callback["tid"], [])
        assert received and all(body == callback["body"] for body in received)
        assert len(done) <= len(received) <= len(attempts), (callback["tid"], attempts, len(received))
        reached = len(received) == len(attempts)  # the attempt the crash cut, if any, reached the merchant
        flaky = approved[callback["tid"]]["order_no"].startswith(FLAKY)
        # The flaky merchant refuses its first POST: one retry, unless that was the one the crash cut.
        assert len(done) == (1 if not flaky or (unknown and reached) else 2), (callback["tid"], attempts)
    assert set(merchant.posts) <= set(approved)


def settle_callbacks(api: Api, retries: int = 1) -> None:
    """Deliver the first attempts, then the retries the flaky merchant asked for (after a crash,
    one more: the attempt it cut counts as made, and the merchant may not have had it)."""
    api.flush()
    for _ in range(retries):
        api.advance(seconds=RETRY_SECONDS)
        api.flush()


# --- the tests ------------------------------------------------------------------------------

def test_load_keeps_every_payment_and_callback_consistent(tmp_path, database, merchant):
    server = crashable(tmp_path, database)
    try:
        api = Api(server.url, merchant.url)
        freeze_at(api, T0)
        ledger = Ledger()
        failures = load(server.url, merchant.url, ledger)
        assert not failures, failures
        assert ledger.searches and sum(map(len, ledger.cancels.values())) > THREADS
        settle_callbacks(api)
        approved = check_payments(api, ledger)
        assert sum(p["pgcode"] == "virtualaccount" for p in approved.values()) > 0
        assert any(p["remaining"] == 0 for p in approved.values()) and any(
            0 < p["cancelled_amount"] < p["amount"] for p in approved.values())
        check_search(api, approved)
        check_callbacks(api, approved, merchant)
    finally:
        server.stop()


def test_a_crash_under_load_loses_nothing_acknowledged(tmp_path, database, merchant):
    first_dir, second_dir = tmp_path / "first", tmp_path / "second"
    first_dir.mkdir()
    second_dir.mkdir()
    first = crashable(first_dir, database)
    try:
        freeze_at(Api(first.url, merchant.url), T0)
        ledger = Ledger()
        stop = threading.Event()
        failures: list[BaseException] = []
        running = threading.Thread(target=lambda: failures.extend(load(first.url, merchant.url, ledger, stop=stop)))
        running.start()
        # Mid-load: once about a third of the approvals have been answered, pull the plug.
        assert ledger.wait_for_approvals(THREADS * STORIES // 3), "the load ended before the crash"
        first.kill()
        stop.set()
        running.join()
        assert not failures, failures
    finally:
        first.stop()

    second = crashable(second_dir, database)
    try:
        api = Api(second.url, merchant.url)
        assert api.control("/clock", method="GET") == {"now": T0, "frozen": True}
        # What the dead workers were sending is taken over once their claims lapse; flush waits.
        settle_callbacks(api, retries=2)
        approved = check_payments(api, ledger, crashed=True)
        check_search(api, approved)
        check_callbacks(api, approved, merchant, crashed=True)
        # The restarted server takes new work as usual.
        tid = Client(second.url, merchant.url, ledger, seed=99).card()
        api.flush()
        assert merchant.count(tid) >= 1
    finally:
        second.stop()


def test_a_crash_mid_flush_leaves_every_post_on_the_ledger(tmp_path, database, merchant):
    """Many retries due at once, the server killed while it sends them: after a restart has
    finished the work, every POST the merchant received is an attempt on the ledger."""
    first_dir, second_dir = tmp_path / "first", tmp_path / "second"
    first_dir.mkdir()
    second_dir.mkdir()
    payments = 150
    first = crashable(first_dir, database)
    try:
        api = Api(first.url, merchant.url)
        freeze_at(api, T0)
        merchant.refuse_all = True  # every first attempt fails: 150 retries fall due together
        tids = [api.pay(order_no=f"burst-{i}")["tid"] for i in range(payments)]
        assert merchant.total() == payments
        merchant.refuse_all, merchant.delay = False, 0.01
        flushing = threading.Thread(target=lambda: api.control("/clock", {"advance_seconds": RETRY_SECONDS}))
        flushing.start()  # the clock's move wakes both workers' dispatchers
        deadline = time.monotonic() + READY_TIMEOUT
        while merchant.total() < payments + payments // 3 and time.monotonic() < deadline:
            time.sleep(0.005)
        first.kill()
        flushing.join()
    finally:
        first.stop()
    sent_before = merchant.total()
    assert payments < sent_before < 2 * payments, "the crash did not come mid-flush"

    second = crashable(second_dir, database)
    try:
        api = Api(second.url, merchant.url)
        api.flush()  # what the dead workers were sending is recorded unknown once their claims lapse
        api.advance(seconds=RETRY_SECONDS)  # and retried when the policy says
        api.flush()
        recorded = done = 0
        for tid in tids:
            [callback] = api.control(f"/callbacks?tid={tid}", method="GET")["callbacks"]
            attempts = callback["attempts"]
            assert callback["status"] == "delivered", callback
            assert [a["number"] for a in attempts] == list(range(1, len(attempts) + 1))
            states = Counter(a["state"] for a in attempts)
            assert set(states) <= {"done", "unknown"} and states["unknown"] <= 1, attempts
            assert callback["attempts_made"] == len(attempts)
            received = merchant.count(tid)
            # Every POST that left is on the ledger; one whose outcome is unknown may not have left.
            assert states["done"] <= received <= len(attempts), (tid, attempts, received)
            recorded += len(attempts)
            done += states["done"]
        assert done <= merchant.total() <= recorded
    finally:
        second.stop()
