"""`payletter-emulator global list|approve|decline|refund|notifications` against a real serve: the
console script, as a shell or a CI job in another language runs it (docs/cli.md's session shows them)."""
from __future__ import annotations

import json

import pytest
import requests

from .conftest import run_cli

STORE = KEY = "global_test"


@pytest.fixture
def server(emulator_process):
    requests.post(f"{emulator_process.url}/_emulator/reset", json={}, timeout=30).raise_for_status()
    return emulator_process


def request_payment(server, order: str, base: str | None = None, store: str = STORE, key: str = KEY,
                    notiurl: str = "http://127.0.0.1:9/noti") -> str:
    answer = requests.post(f"{base or server.url}/api/payment/request", headers={"Authorization": f"GPLKEY {key}"},
                           json={"storeid": store, "currency": "KRW", "storeorderno": order, "amount": 5000,
                                 "payerid": "u1", "payeremail": "u1@example.com", "pginfo": "PLCreditCard",
                                 "returnurl": "https://merchant.example/r", "notiurl": notiurl},
                           timeout=30)
    assert answer.status_code == 200, answer.text
    return answer.json()["token"]


def global_cli(server, *args: str) -> dict:
    done = run_cli("global", *args, "--url", server.url)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_approve_decline_and_list(server):
    paid = global_cli(server, "approve", request_payment(server, "C-1"), "--card-number", "378282246310005")
    assert (paid["status"], paid["card_kind"], paid["amount"]) == ("paid", "AMEX", "5000")
    assert global_cli(server, "approve", request_payment(server, "C-2"), "--card-number", "6011000990139424")["status"] \
        == "declined"
    assert global_cli(server, "decline", request_payment(server, "C-3"))["status"] == "declined"
    request_payment(server, "C-4")
    listed = global_cli(server, "list")["payments"]
    assert [(p["order_no"], p["status"]) for p in listed] == [("C-1", "paid"), ("C-2", "declined"),
                                                              ("C-3", "declined"), ("C-4", "requested")]
    assert [p["order_no"] for p in global_cli(server, "list", "--status", "declined")["payments"]] == ["C-2", "C-3"]


def test_refund_partly_then_the_rest_and_the_notifications_at_a_real_page(server, receiver):
    receiver.as_global_page()
    token = request_payment(server, "R-1", notiurl=receiver.url)
    paytoken = global_cli(server, "approve", token)["paytoken"]
    part = global_cli(server, "refund", token, "--amount", "1500")
    assert (part["data"]["refundamount"], part["data"]["remainamount"]) == ("1500", "3500")
    assert global_cli(server, "refund", token)["data"]["refundamount"] == "3500"  # what is left
    done = run_cli("global", "refund", token, "--url", server.url)
    assert done.returncode == 1 and "already refunded" in json.loads(done.stderr)["message"]
    assert [p["status"] for p in global_cli(server, "list")["payments"]] == ["refunded"]
    requests.post(f"{server.url}/_emulator/callbacks/flush", json={}, timeout=30).raise_for_status()
    listed = global_cli(server, "notifications", "--paytoken", paytoken)["notifications"]
    assert [(n["body"]["notifytype"], n["body"]["payamt"], n["status"]) for n in listed] == \
        [("1", "5000", "delivered"), ("2", "1500", "delivered"), ("2", "3500", "delivered")]
    assert [r.body.count(b"notifytype=2") for r in receiver.wait_for(3)] == [0, 1, 1]
    assert global_cli(server, "notifications", "--status", "failed")["notifications"] == []


def test_a_refusal_is_json_on_stderr_and_exit_1(server):
    token = request_payment(server, "C-5")
    global_cli(server, "approve", token)
    done = run_cli("global", "approve", token, "--url", server.url)
    assert done.returncode == 1 and done.stdout == ""
    refusal = json.loads(done.stderr)
    assert (refusal["status"], refusal["code"]) == (406, 995) and "not waiting for its payer" in refusal["message"]
    assert run_cli("global", "list", "--status", "lost", "--url", server.url).returncode == 2


def test_a_sandbox_with_its_own_store(server):
    sandbox = requests.post(f"{server.url}/_emulator/sandboxes", json={}, timeout=30).json()
    token = request_payment(server, "S-1", f"{server.url}{sandbox['path']}", sandbox["global_store_id"],
                            sandbox["global_key"])
    assert global_cli(server, "approve", token, "--sandbox", sandbox["id"])["status"] == "paid"
    assert global_cli(server, "list")["payments"] == []  # the root's are its own
    assert len(global_cli(server, "list", "--sandbox", sandbox["id"])["payments"]) == 1
    requests.delete(f"{server.url}/_emulator/sandboxes/{sandbox['id']}", timeout=30)
