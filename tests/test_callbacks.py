"""Callback delivery end to end: a real emulator process, a real receiver on a port, the
documented policy (a first attempt, then a retry every 5 minutes, 20 of them) driven by the
emulator's clock, never by sleeping."""
from __future__ import annotations

import socket
import time
from urllib.parse import urlencode

import pytest

from payletter_emulator.domain.payhash import payhash

from .conftest import (PAYMENT_KEY, Answer, Api, CallbackReceiver, EmulatorProcess, RawMerchant, _clean, freeze_at,
                       serve_receiver)

T0 = "2026-11-29T10:00:00+09:00"
TIMEOUT = 1.0  # the emulator's per-attempt timeout in this module


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def fast_process(request, tmp_path_factory):
    """The module's tests run against a server on SQLite, then on PostgreSQL."""
    workdir = tmp_path_factory.mktemp("callbacks")
    db = str(workdir / "emulator.db") if request.param == "sqlite" else \
        request.getfixturevalue("postgres_server").new_database()
    process = EmulatorProcess(workdir, "--callback-timeout", str(TIMEOUT), db=db)
    yield process
    process.stop()


@pytest.fixture
def api(fast_process, callback_receiver):
    yield from _clean(fast_process, callback_receiver)


def notifications(api: Api, **filters) -> list[dict]:
    query = urlencode({k: v for k, v in filters.items() if v})
    return api.control("/callbacks" + (f"?{query}" if query else ""), method="GET")["callbacks"]


def notification(api: Api, tid: str) -> dict:
    [found] = notifications(api, tid=tid)
    return found


def approved(api: Api, **overrides) -> str:
    """A card payment approved at the frozen T0; its tid, once the first attempt was made."""
    return api.pay(**overrides)["tid"]


def minutes(api: Api, count: float) -> None:
    api.advance(seconds=count * 60)
    api.flush()


# --- the first attempt ---------------------------------------------------------------------

def test_acknowledged_at_once(api, callback_receiver):
    freeze_at(api, T0)
    tid = approved(api, amount=5000)
    [received] = callback_receiver.received
    body = received.json()
    assert body["payhash"] == payhash("test_user_id", 5000, tid, PAYMENT_KEY)
    found = notification(api, tid)
    assert found["status"] == "delivered"
    assert found["attempts_made"] == 1
    assert found["next_attempt_at"] is None
    assert found["created_at"] == T0
    [attempt] = found["attempts"]
    assert attempt["number"] == 1 and attempt["kind"] == "first"
    assert attempt["scheduled_at"] == attempt["at"] == T0
    assert attempt["http_status"] == 200 and attempt["error"] == ""
    assert attempt["response_body"] == '{"code": 0, "message": "success"}'
    assert attempt["latency_ms"] >= 0 and attempt["wall_time"].endswith("+09:00")


FAILURES = {
    "http 500": (Answer(500, b'{"code": 0}'), 500, "not acknowledged"),
    "code 1": (Answer(200, b'{"code": 1, "message": "no"}'), 200, "not acknowledged"),
    "bad json": (Answer(200, b"<html>ok</html>"), 200, "not acknowledged"),
    "timeout": (Answer(delay=TIMEOUT + 0.5), None, "Timeout"),
    "dropped connection": (Answer(drop=True), None, "ConnectionError"),
}


@pytest.mark.parametrize("kind", FAILURES)
def test_a_failure_is_retried_five_minutes_later_and_recovers(api, callback_receiver, kind):
    answer, http_status, error = FAILURES[kind]
    callback_receiver.script.append(answer)
    freeze_at(api, T0)
    tid = approved(api)
    found = notification(api, tid)
    assert found["status"] == "pending"
    [first] = found["attempts"]
    assert first["http_status"] == http_status
    assert error in first["error"]
    assert found["next_attempt_at"] == "2026-11-29T10:05:00+09:00"

    minutes(api, 4 + 59 / 60)  # one second early: nothing is due
    assert len(notification(api, tid)["attempts"]) == 1
    minutes(api, 1 / 60)
    found = notification(api, tid)
    assert found["status"] == "delivered" and found["attempts_made"] == 2
    retry = found["attempts"][1]
    assert (retry["number"], retry["kind"], retry["http_status"]) == (2, "retry", 200)
    assert retry["scheduled_at"] == retry["at"] == "2026-11-29T10:05:00+09:00"
    assert len(callback_receiver.received) == 2
    assert callback_receiver.received[0].body == callback_receiver.received[1].body


def test_connection_refused_then_the_merchant_comes_up(api):
    with socket.socket() as probe:  # a port nobody listens on, until the merchant starts
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    freeze_at(api, T0)
    tid = approved(api, callback_url=f"http://127.0.0.1:{port}/callback")
    [first] = notification(api, tid)["attempts"]
    assert first["http_status"] is None and "ConnectionError" in first["error"]

    merchant = CallbackReceiver()
    server = serve_receiver(merchant, port)
    try:
        minutes(api, 5)
        assert notification(api, tid)["status"] == "delivered"
        assert [r.json()["tid"] for r in merchant.received] == [tid]
    finally:
        server.shutdown()
        server.server_close()


def test_given_up_after_exactly_21_attempts(api, callback_receiver):
    callback_receiver.status = 500
    freeze_at(api, T0)
    tid = approved(api)
    minutes(api, 99 + 59 / 60)
    found = notification(api, tid)
    assert found["status"] == "pending" and found["attempts_made"] == 20

    minutes(api, 1 / 60)  # 100 minutes after the first attempt: the 20th retry
    found = notification(api, tid)
    assert found["status"] == "failed" and found["attempts_made"] == 21
    assert found["next_attempt_at"] is None
    assert [a["number"] for a in found["attempts"]] == list(range(1, 22))
    assert [a["kind"] for a in found["attempts"]] == ["first"] + ["retry"] * 20
    assert [a["scheduled_at"][11:16] for a in found["attempts"]] == [
        f"{10 + m // 60:02d}:{m % 60:02d}" for m in range(0, 101, 5)]
    assert len(callback_receiver.received) == 21
    assert [c["tid"] for c in notifications(api, status="failed")] == [tid]

    minutes(api, 60)  # given up: nothing more, ever
    assert len(callback_receiver.received) == 21


def test_one_clock_jump_runs_the_whole_schedule_in_order(api, callback_receiver):
    callback_receiver.script.extend([Answer(500)] * 3)
    freeze_at(api, T0)
    tid = approved(api)
    minutes(api, 100)  # retries 1 and 2 fail, retry 3 is acknowledged
    found = notification(api, tid)
    assert found["status"] == "delivered" and found["attempts_made"] == 4
    assert [a["scheduled_at"][11:16] for a in found["attempts"]] == ["10:00", "10:05", "10:10", "10:15"]
    assert {a["at"] for a in found["attempts"][1:]} == {"2026-11-29T11:40:00+09:00"}
    assert len(callback_receiver.received) == 4


def test_retries_of_different_payments_are_independent(api, callback_receiver):
    freeze_at(api, T0)
    callback_receiver.status = 500
    failing = approved(api, order_no="A")
    minutes(api, 2)
    callback_receiver.status = 200
    delivered = approved(api, order_no="B")
    callback_receiver.status = 500
    minutes(api, 3)  # 10:05: the first payment's first retry; the second is done
    assert notification(api, delivered)["attempts_made"] == 1
    assert notification(api, failing)["attempts_made"] == 2
    callback_receiver.status = 200
    minutes(api, 5)
    assert notification(api, failing)["status"] == "delivered"
    assert [a["scheduled_at"][11:16] for a in notification(api, failing)["attempts"]] == ["10:00", "10:05", "10:10"]
    assert [r.json()["order_no"] for r in callback_receiver.received] == ["A", "B", "A", "A"]


def test_advancing_the_clock_sends_due_retries_without_a_flush(api, callback_receiver):
    callback_receiver.status = 500
    tid = approved(api)  # the clock runs in real time here
    callback_receiver.status = 200
    api.advance(seconds=300)
    received = callback_receiver.wait_for(2)
    assert len(received) == 2
    api.flush()
    assert notification(api, tid)["status"] == "delivered"


def test_a_virtual_account_deposit_is_delivered_and_retried_the_same_way(api, callback_receiver):
    freeze_at(api, T0)
    account = api.pay(pgcode="virtualaccount", amount=10000)
    assert notifications(api) == []  # issuing the account sends nothing
    callback_receiver.script.append(Answer(503))
    api.deposit(account["tid"])
    minutes(api, 5)
    found = notification(api, account["tid"])
    assert found["status"] == "delivered" and found["attempts_made"] == 2
    assert callback_receiver.received[-1].json()["payhash"] == payhash("test_user_id", 10000, account["tid"],
                                                                        PAYMENT_KEY)


# --- resend, flush, filters --------------------------------------------------------------------

def test_resend_a_delivered_notification(api, callback_receiver):
    freeze_at(api, T0)
    tid = approved(api)
    callback_id = notification(api, tid)["id"]
    answer = api.control(f"/callbacks/{callback_id}/resend")
    assert answer["attempt"]["kind"] == "resend" and answer["attempt"]["number"] == 2
    assert answer["attempt"]["scheduled_at"] is None
    assert answer["callback"]["status"] == "delivered"
    assert answer["callback"]["attempts_made"] == 1  # a resend is not one of the policy's attempts
    assert len(callback_receiver.received) == 2


def test_resend_delivers_a_failed_notification(api, callback_receiver):
    api.control("/clock", {"freeze": True})
    callback_receiver.status = 500
    tid = approved(api)
    minutes(api, 100)
    assert notification(api, tid)["status"] == "failed"
    callback_receiver.status = 200
    answer = api.control(f"/callbacks/{notification(api, tid)['id']}/resend")
    assert answer["callback"]["status"] == "delivered"
    assert answer["callback"]["attempts_made"] == 21
    assert len(answer["callback"]["attempts"]) == 22


def test_resend_of_an_unknown_notification(api):
    response = api.http.post(api.url + "/_emulator/callbacks/999999/resend")
    assert response.status_code == 404 and response.json()["code"] == 4308


def test_flush_answers_with_what_is_left(api, callback_receiver):
    freeze_at(api, T0)
    assert api.flush() == {"idle": True, "pending": 0, "next_attempt_at": None}
    callback_receiver.status = 500
    approved(api)
    assert api.flush() == {"idle": True, "pending": 1, "next_attempt_at": "2026-11-29T10:05:00+09:00"}


def test_unknown_status_filter_is_refused(api):
    response = api.http.get(api.url + "/_emulator/callbacks?status=sent")
    assert response.status_code == 406 and "pending, delivered, failed" in response.json()["message"]


def test_reset_forgets_pending_notifications(api, callback_receiver):
    freeze_at(api, T0)
    callback_receiver.status = 500
    approved(api)
    api.control("/reset")
    callback_receiver.clear()
    freeze_at(api, T0)
    minutes(api, 100)
    assert callback_receiver.received == [] and notifications(api) == []


# --- safety of the sender ------------------------------------------------------------------------

def test_redirects_are_not_followed(api, callback_receiver):
    callback_receiver.script.append(Answer(302, b"", headers={"Location": callback_receiver.url + "/elsewhere"}))
    freeze_at(api, T0)
    tid = approved(api)
    [attempt] = notification(api, tid)["attempts"]
    assert attempt["http_status"] == 302
    assert [r.path for r in callback_receiver.received] == ["/callback"]


DRIBBLED = (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nX-Padding: " + b"." * 200 +
            b"\r\nContent-Length: 12\r\n\r\n{\"code\": 0}\n")


def dribble(connection: socket.socket, request: bytes) -> None:
    """A merchant that answers well, one byte every 50 ms: its whole answer (about 13 s) takes
    longer than the attempt's timeout and the claim's lease together."""
    for byte in DRIBBLED:
        time.sleep(0.05)  # the merchant dribbles: the case under test
        connection.sendall(bytes([byte]))


def test_a_dribbling_merchant_gets_each_attempt_once_and_the_attempt_ends_at_the_timeout(api):
    merchant = RawMerchant(dribble)
    try:
        freeze_at(api, T0)
        tid = approved(api, callback_url=merchant.url)  # returns once the attempt is over
        [first] = notification(api, tid)["attempts"]
        assert first["error"].startswith("Timeout") and first["state"] == "done"
        # Not before the timeout (the event loop's timer, libuv's: whole milliseconds); and over at
        # it, long before the answer would have been whole: the sender hung up mid-answer.
        assert first["latency_ms"] >= TIMEOUT * 1000 - 2
        assert merchant.wait_ended(1) == 1 and merchant.cut_off == 1
        assert len(merchant.requests) == 1
        minutes(api, 5)
        found = notification(api, tid)
        assert [(a["number"], a["kind"]) for a in found["attempts"]] == [(1, "first"), (2, "retry")]
        assert found["attempts"][1]["error"].startswith("Timeout")
        assert len(merchant.requests) == 2 and found["status"] == "pending"
    finally:
        merchant.close()


def test_the_answer_kept_is_bounded(api, callback_receiver):
    callback_receiver.script.append(Answer(500, b"x" * 100_000))
    freeze_at(api, T0)
    [attempt] = notification(api, approved(api))["attempts"]
    assert attempt["response_body"] == "x" * 4096


def test_warnings_where_the_real_gateway_would_not_reach(api):
    freeze_at(api, T0)
    warnings = notification(api, approved(api))["warnings"]
    assert len(warnings) == 2
    assert "ports 80 and 443" in warnings[0] and "private host 127.0.0.1" in warnings[1]


def test_the_allow_list_blocks_other_hosts(tmp_path, callback_receiver):
    process = EmulatorProcess(tmp_path, "--callback-host", "*.merchant.example")
    try:
        api = Api(process.url, callback_receiver.url)
        callback_receiver.clear()
        tid = api.pay()["tid"]
        found = notification(api, tid)
        assert found["status"] == "failed" and found["attempts_made"] == 1
        assert found["attempts"][0]["error"].startswith("blocked")
        assert callback_receiver.received == []
    finally:
        process.stop()


def test_a_shorter_policy_from_the_settings(tmp_path, callback_receiver):
    process = EmulatorProcess(tmp_path, "--callback-interval", "60", "--callback-retries", "2")
    try:
        api = Api(process.url, callback_receiver.url)
        callback_receiver.clear()
        callback_receiver.status = 500
        freeze_at(api, T0)
        tid = api.pay()["tid"]
        minutes(api, 10)
        found = notification(api, tid)
        assert found["status"] == "failed"
        assert [a["scheduled_at"][11:16] for a in found["attempts"]] == ["10:00", "10:01", "10:02"]
    finally:
        process.stop()
        callback_receiver.clear()
