"""Nothing due is lost and nothing acknowledged is sent again: a server killed with SIGKILL
and started on the same database, and two servers sharing one database."""
from __future__ import annotations

import threading
from collections import Counter

from .conftest import Answer, Api, EmulatorProcess, freeze_at

T0 = "2026-11-29T10:00:00+09:00"


def start(tmp_path, name: str, db: str) -> EmulatorProcess:
    workdir = tmp_path / name
    workdir.mkdir()
    return EmulatorProcess(workdir, "--callback-timeout", "1", db=db)


def killed(process: EmulatorProcess) -> None:
    process.process.kill()  # SIGKILL: no shutdown, no cleanup
    process.process.wait(10)
    process.stop()


def notification(api: Api, tid: str) -> dict:
    [found] = api.control(f"/callbacks?tid={tid}", method="GET")["callbacks"]
    return found


def test_a_killed_server_resumes_the_schedule_on_restart(tmp_path, callback_receiver):
    db = str(tmp_path / "shared.db")
    callback_receiver.clear()
    first = start(tmp_path, "first", db)
    try:
        api = Api(first.url, callback_receiver.url)
        freeze_at(api, T0)
        acknowledged = api.pay(order_no="acknowledged")["tid"]
        callback_receiver.status = 500
        retried = api.pay(order_no="retried")["tid"]
    finally:
        killed(first)

    callback_receiver.status = 200
    second = start(tmp_path, "second", db)
    try:
        api = Api(second.url, callback_receiver.url)
        assert api.control("/clock", method="GET") == {"now": T0, "frozen": True}
        api.advance(seconds=300)
        api.flush()
        assert notification(api, retried)["status"] == "delivered"
        assert [a["number"] for a in notification(api, retried)["attempts"]] == [1, 2]
        assert len(notification(api, acknowledged)["attempts"]) == 1
        api.advance(seconds=6000)
        api.flush()
        sent = Counter(r.json()["order_no"] for r in callback_receiver.received)
        assert sent == {"acknowledged": 1, "retried": 2}
    finally:
        second.stop()
        callback_receiver.clear()


def test_an_attempt_cut_by_a_crash_is_made_again_after_the_lease(tmp_path, callback_receiver):
    db = str(tmp_path / "shared.db")
    callback_receiver.clear()
    first = start(tmp_path, "first", db)
    try:
        api = Api(first.url, callback_receiver.url)
        freeze_at(api, T0)
        callback_receiver.script.append(Answer(delay=3))  # the server dies while the merchant thinks
        token = api.request_payment()
        tid = api.control(f"/payments/{token}/approve")["fields"]["tid"]
        assert len(callback_receiver.wait_for(1)) == 1
    finally:
        killed(first)

    second = start(tmp_path, "second", db)
    try:
        api = Api(second.url, callback_receiver.url)
        api.flush()  # waits for the dead server's claim to lapse, then makes the attempt
        found = notification(api, tid)
        assert found["status"] == "delivered"
        assert [(a["number"], a["kind"]) for a in found["attempts"]] == [(1, "first")]
        assert len(callback_receiver.received) == 2  # at least once: the cut attempt may have arrived
    finally:
        second.stop()
        callback_receiver.clear()


def test_two_servers_on_one_database_never_send_an_attempt_twice(tmp_path, callback_receiver):
    db = str(tmp_path / "shared.db")
    callback_receiver.clear()
    servers = [start(tmp_path, "one", db), start(tmp_path, "two", db)]
    try:
        one, two = (Api(s.url, callback_receiver.url) for s in servers)
        freeze_at(one, T0)
        callback_receiver.status = 500
        tids = [one.pay(order_no=f"order-{i}")["tid"] for i in range(6)]
        tids += [two.pay(order_no=f"order-{i + 6}")["tid"] for i in range(6)]
        two.advance(seconds=6000)
        flushes = [threading.Thread(target=api.flush) for api in (one, two, one, two)]
        for thread in flushes:
            thread.start()
        for thread in flushes:
            thread.join()
        one.flush()
        two.flush()

        per_order = Counter(r.json()["order_no"] for r in callback_receiver.received)
        assert per_order == {f"order-{i}": 21 for i in range(12)}
        for tid in tids:
            found = notification(one, tid)
            assert found["status"] == "failed"
            assert [a["number"] for a in found["attempts"]] == list(range(1, 22))
            assert {a["http_status"] for a in found["attempts"]} == {500}
    finally:
        for server in servers:
            server.stop()
        callback_receiver.clear()
