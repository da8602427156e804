"""The control API's payer actions: approve, decline, abandon, deposit, and what they send
(return_url fields, callbacks), plus the payments' state as tests see it."""
from __future__ import annotations

import hashlib
import re

import pytest

from .conftest import PAYMENT_KEY, refused
from .conftest import freeze_at as freeze_clock

NOW = "2026-11-29T12:00:00+09:00"
TODAY = "20261129"


# --- helpers -----------------------------------------------------------------------------

def freeze_at(api, moment: str = NOW) -> dict:
    return freeze_clock(api, moment)


def raw(api, path: str, body=None, method: str = "POST"):
    """A control API call whose answer may be a refusal."""
    return api.http.request(method, api.url + "/_emulator" + path, json=body, timeout=30)


def expected_payhash(user_id: str, amount, tid: str, key: str = PAYMENT_KEY) -> str:
    return hashlib.sha256(f"{user_id}{int(amount)}{tid}{key}".encode("utf-8")).hexdigest().upper()


def approve(api, token: int, body: dict | None = None) -> dict:
    """The payer approves; the answer, once the callback's first attempt has been made."""
    answer = api.control(f"/payments/{token}/approve", body or {})
    api.flush()
    return answer


def callbacks(api, **filters) -> list[dict]:
    query = "&".join(f"{k}={v}" for k, v in filters.items())
    return api.control("/callbacks" + (f"?{query}" if query else ""), method="GET")["callbacks"]


def payment(api, ref) -> dict:
    return api.control(f"/payments/{ref}", method="GET")


# --- approve: the return fields ------------------------------------------------------------

def test_approve_returns_the_return_url_and_its_fields(api, schemas):
    freeze_at(api)
    token = api.request_payment(order_no="ORD-1", amount=1000)
    answer = approve(api, token)
    assert set(answer) == {"return_url", "fields"}
    assert answer["return_url"] == "https://merchant.example/result"
    fields = answer["fields"]
    assert schemas.errors("payloads/return_success", fields) == []
    assert all(isinstance(v, str) for v in fields.values()), fields
    assert fields["code"] == "0"
    assert fields["amount"] == "1000"
    assert fields["user_id"] == "test_user_id"
    assert fields["order_no"] == "ORD-1"
    assert fields["pgcode"] == "creditcard"
    assert fields["custom_parameter"] == "this is custom parameter"
    assert fields["transaction_date"] == "2026-11-29 12:00:00"
    assert fields["domestic_flag"] == "N"
    assert fields["payhash"] == expected_payhash("test_user_id", 1000, fields["tid"])
    assert re.fullmatch(r"^[0-9A-F]{64}$", fields["payhash"])


def test_tid_format(api):
    freeze_at(api)
    first, second = api.pay(), api.pay()
    for fields in (first, second):
        assert re.fullmatch(rf"tpay_test-{TODAY}\d{{7}}", fields["tid"]), fields["tid"]
        assert len(fields["tid"]) <= 40
    assert first["tid"] != second["tid"]


def test_cid_is_seven_digits_for_a_card(api):
    freeze_at(api)
    fields = api.pay(pgcode="creditcard")
    assert re.fullmatch(r"\d{7}", fields["cid"]), fields["cid"]


def test_cid_is_twenty_digits_for_mobile(api, schemas):
    freeze_at(api)
    fields = api.pay(pgcode="mobile")
    assert schemas.errors("payloads/return_success", fields) == []
    assert re.fullmatch(r"20261129120000\d{6}", fields["cid"]), fields["cid"]
    assert fields["payhash"] == expected_payhash(fields["user_id"], fields["amount"], fields["tid"])


def test_card_info_is_masked(api):
    freeze_at(api)
    default = api.pay()
    assert re.fullmatch(r"\d{6}\*{6}\d{4}", default["card_info"]), default["card_info"]
    chosen = api.pay(approve={"card_number": "4111111111111111"})
    assert chosen["card_info"] == "411111******1111"
    stored = payment(api, chosen["tid"])
    assert "4111111111111111" not in str(stored)


def test_install_month_defaults_to_lump_sum(api):
    freeze_at(api)
    assert api.pay(amount=50000)["install_month"] == "00"


def test_install_month_from_fifty_thousand_krw(api):
    freeze_at(api)
    fields = api.pay(approve={"install_month": "03"}, amount=50000)
    assert fields["install_month"] == "03"


def test_install_month_refused_below_fifty_thousand_krw(api):
    freeze_at(api)
    token = api.request_payment(amount=10000)
    body = refused(raw(api, f"/payments/{token}/approve", {"install_month": "03"}), 406, 4310)
    assert "03" in body["message"]
    # Nothing happened: the payment is still pending and can be approved properly.
    assert payment(api, token)["status"] == "created"
    assert approve(api, token)["fields"]["install_month"] == "00"


# --- approve: the callback -----------------------------------------------------------------

def test_callback_follows_the_approval(api, schemas, callback_receiver):
    freeze_at(api)
    fields = api.pay(amount=1234, order_no="ORD-cb")
    assert len(callback_receiver.received) == 1
    received = callback_receiver.received[0]
    assert received.path == "/callback"
    assert received.headers["Content-Type"].startswith("application/json")
    body = received.json()
    assert schemas.errors("payloads/callback", body) == []
    assert body["payhash"] == fields["payhash"] == expected_payhash("test_user_id", 1234, fields["tid"])
    assert body["amount"] == 1234 and isinstance(body["amount"], int)
    for name in ("taxfree_amount", "tax_amount", "nonsettle_amount", "discount_amount", "disposable_cup_deposit"):
        assert isinstance(body[name], int) and not isinstance(body[name], bool), name
        assert str(body[name]) == fields[name]
    for name in ("tid", "cid", "order_no", "user_id", "pgcode", "card_info", "transaction_date"):
        assert body[name] == fields[name], name

    [notification] = callbacks(api, tid=fields["tid"])
    assert notification["status"] == "delivered"
    assert notification["attempts_made"] == 1
    assert len(notification["attempts"]) == 1
    assert notification["attempts"][0]["http_status"] == 200
    assert notification["attempts"][0]["error"] == ""
    assert notification["body"] == body


def test_callback_answered_500_stays_pending(api, callback_receiver):
    freeze_at(api)
    callback_receiver.status = 500
    fields = api.pay()
    assert len(callback_receiver.received) == 1
    [notification] = callbacks(api, tid=fields["tid"])
    assert notification["status"] == "pending"
    assert notification["attempts_made"] == 1
    [attempt] = notification["attempts"]
    assert attempt["http_status"] == 500
    assert attempt["error"]
    assert callbacks(api, status="delivered") == []
    assert [c["tid"] for c in callbacks(api, status="pending")] == [fields["tid"]]


def test_callback_answered_with_nonzero_code_is_not_acknowledged(api, callback_receiver):
    freeze_at(api)
    callback_receiver.answer = b'{"code": 1, "message": "out of stock"}'
    fields = api.pay()
    [notification] = callbacks(api, tid=fields["tid"])
    assert notification["status"] == "pending"
    [attempt] = notification["attempts"]
    assert attempt["http_status"] == 200
    assert attempt["error"]
    assert "out of stock" in attempt["response_body"]


@pytest.mark.parametrize("answer,status", [
    (b'{"code": "0", "message": "success"}', "delivered"),
    (b'{"code": 0}', "delivered"),
    (b'not json', "pending"),
    (b'{"message": "success"}', "pending"),
    (b'{"code": "1"}', "pending"),
])
def test_what_acknowledges_a_callback(api, callback_receiver, answer, status):
    freeze_at(api)
    callback_receiver.answer = answer
    fields = api.pay()
    [notification] = callbacks(api, tid=fields["tid"])
    assert notification["status"] == status


def test_callback_with_http_201_is_not_acknowledged(api, callback_receiver):
    freeze_at(api)
    callback_receiver.status = 201
    fields = api.pay()
    [notification] = callbacks(api, tid=fields["tid"])
    assert notification["status"] == "pending"
    assert notification["attempts"][0]["http_status"] == 201


def test_callback_to_a_closed_port_stays_pending(api, callback_receiver):
    freeze_at(api)
    fields = api.pay(callback_url="http://127.0.0.1:9/callback")
    [notification] = callbacks(api, tid=fields["tid"])
    assert notification["status"] == "pending"
    [attempt] = notification["attempts"]
    assert attempt["http_status"] is None
    assert attempt["error"]
    assert callback_receiver.received == []


def test_payhash_uses_the_values_as_the_merchant_sees_them(api, callback_receiver):
    freeze_at(api)
    fields = api.pay(user_id=12345, amount="2000")  # lenient: a number for a string, a string for a number
    assert fields["user_id"] == "12345" and fields["amount"] == "2000"
    assert fields["payhash"] == expected_payhash("12345", 2000, fields["tid"])
    body = callback_receiver.received[-1].json()
    assert body["user_id"] == "12345" and body["amount"] == 2000
    assert body["payhash"] == fields["payhash"]


# --- Naver Pay options ---------------------------------------------------------------------

def test_naverpay_defaults_to_navercard(api, callback_receiver, schemas):
    freeze_at(api)
    fields = api.pay(pgcode="naverpay")
    assert fields["pgcode"] == "navercard"
    body = callback_receiver.received[-1].json()
    assert schemas.errors("payloads/callback", body) == []
    assert body["pgcode"] == "navercard"


def test_naverpay_paid_with_points(api, callback_receiver, schemas):
    freeze_at(api)
    fields = api.pay(approve={"option": "naverpoint"}, pgcode="naverpay")
    assert schemas.errors("payloads/return_success", fields) == []
    assert fields["pgcode"] == "naverpoint"
    body = callback_receiver.received[-1].json()
    assert body["pgcode"] == "naverpoint"
    assert body["payhash"] == fields["payhash"]
    assert payment(api, fields["tid"])["paid_pgcode"] == "naverpoint"


@pytest.mark.parametrize("pgcode,option", [("naverpay", "smilecash"), ("naverpay", "naverpay"),
                                           ("creditcard", "naverpoint"), ("smilepay", "naverpoint")])
def test_option_the_method_does_not_offer(api, callback_receiver, pgcode, option):
    freeze_at(api)
    token = api.request_payment(pgcode=pgcode)
    body = refused(raw(api, f"/payments/{token}/approve", {"option": option}), 406, 4303)
    assert repr(option) in body["message"] and pgcode in body["message"]
    assert payment(api, token)["status"] == "created"
    assert callback_receiver.received == []


def test_smilepay_options(api, callback_receiver):
    freeze_at(api)
    assert api.pay(pgcode="smilepay")["pgcode"] == "smilecard"
    assert api.pay(approve={"option": "smilecash"}, pgcode="smilepay")["pgcode"] == "smilecash"
    assert [r.json()["pgcode"] for r in callback_receiver.received] == ["smilecard", "smilecash"]


# --- decline -------------------------------------------------------------------------------

def test_decline_default(api, schemas, callback_receiver):
    freeze_at(api)
    token = api.request_payment(order_no="ORD-decline")
    answer = api.control(f"/payments/{token}/decline", {})
    assert answer["return_url"] == "https://merchant.example/result"
    fields = answer["fields"]
    assert schemas.errors("payloads/return_failure", fields) == []
    assert all(isinstance(v, str) for v in fields.values())
    assert fields["code"] == "6001"
    assert fields["code"] != "0"
    assert fields["message"]
    assert fields["order_no"] == "ORD-decline"
    assert "payhash" not in fields and "tid" not in fields
    assert callback_receiver.received == []
    assert callbacks(api) == []
    assert payment(api, token)["status"] == "failed"


def test_decline_with_code_and_message(api, schemas):
    freeze_at(api)
    token = api.request_payment()
    fields = api.control(f"/payments/{token}/decline", {"code": "7021", "message": "한도 초과"})["fields"]
    assert schemas.errors("payloads/return_failure", fields) == []
    assert fields["code"] == "7021"
    assert fields["message"] == "한도 초과"


def test_decline_code_zero_is_refused(api):
    token = api.request_payment()
    response = raw(api, f"/payments/{token}/decline", {"code": "0"})
    assert response.status_code == 406, response.text
    assert payment(api, token)["status"] == "created"


def test_a_payment_page_is_used_once(api, callback_receiver):
    freeze_at(api)
    token = api.request_payment()
    api.control(f"/payments/{token}/decline", {})
    body = refused(raw(api, f"/payments/{token}/approve", {}), 409, 4302)
    assert str(token) in body["message"]
    refused(raw(api, f"/payments/{token}/decline", {}), 409, 4302)
    refused(raw(api, f"/payments/{token}/abandon", {}), 409, 4302)
    assert callback_receiver.received == []
    assert payment(api, token)["status"] == "failed"


def test_an_approved_payment_cannot_be_approved_again(api, callback_receiver):
    freeze_at(api)
    token = api.request_payment()
    approve(api, token)
    refused(raw(api, f"/payments/{token}/approve", {}), 409, 4302)
    refused(raw(api, f"/payments/{token}/decline", {}), 409, 4302)
    assert len(callback_receiver.received) == 1


# --- abandon -------------------------------------------------------------------------------

def test_abandon_redirects_to_cancel_url(api, callback_receiver):
    token = api.request_payment(cancel_url="https://merchant.example/cancel?order=7")
    assert api.control(f"/payments/{token}/abandon", {}) == {"redirect_url": "https://merchant.example/cancel?order=7"}
    assert payment(api, token)["status"] == "abandoned"
    assert callback_receiver.received == []
    refused(raw(api, f"/payments/{token}/approve", {}), 409, 4302)


@pytest.mark.parametrize("pgcode", ["naverpay", "samsungpay", "lpay"])
def test_abandon_does_not_redirect_for_some_methods(api, pgcode):
    token = api.request_payment(pgcode=pgcode)
    assert api.control(f"/payments/{token}/abandon", {}) == {"redirect_url": None}


@pytest.mark.parametrize("pgcode", ["kakaopay", "payco", "mobile", "smilepay"])
def test_abandon_redirects_for_other_methods(api, pgcode):
    token = api.request_payment(pgcode=pgcode)
    assert api.control(f"/payments/{token}/abandon", {}) == {"redirect_url": "https://merchant.example/cancel"}


# --- virtual account -----------------------------------------------------------------------

def test_virtual_account_is_issued_not_paid(api, schemas, callback_receiver):
    freeze_at(api)
    token = api.request_payment(pgcode="virtualaccount", amount=15000)
    fields = approve(api, token, {"bank_code": "088"})["fields"]
    assert schemas.errors("payloads/return_success", fields) == []
    assert all(isinstance(v, str) for v in fields.values())
    assert "payhash" not in fields
    assert re.fullmatch(r"\d+", fields["account_no"])
    assert fields["bank_code"] == "088"
    assert fields["bank_name"] == "신한은행"
    assert fields["expire_date"] == "20261206"  # seven days after issue, at 23:59
    assert fields["expire_time"] == "2359"
    assert fields["pgcode"] == "virtualaccount"
    assert re.fullmatch(rf"tpay_test-{TODAY}\d{{7}}", fields["tid"])
    stored = payment(api, fields["tid"])
    assert stored["status"] == "awaiting_deposit"
    assert callback_receiver.received == []
    assert callbacks(api) == []


def test_virtual_account_expiry_from_the_request(api):
    freeze_at(api)
    fields = api.pay(pgcode="virtualaccount", expire_date="20261201", expire_time="1130")
    assert (fields["expire_date"], fields["expire_time"]) == ("20261201", "1130")


def test_deposit_fires_the_callback(api, schemas, callback_receiver):
    freeze_at(api)
    fields = api.pay(pgcode="virtualaccount", amount=15000, user_id="depositor")
    api.advance(days=1)
    view = api.deposit(fields["tid"], amount=15000)
    assert view["status"] == "approved"
    assert view["tid"] == fields["tid"]
    assert len(callback_receiver.received) == 1
    body = callback_receiver.received[0].json()
    assert schemas.errors("payloads/callback", body) == []
    assert body["tid"] == fields["tid"]
    assert body["amount"] == 15000
    assert body["pgcode"] == "virtualaccount"
    assert body["payhash"] == expected_payhash("depositor", 15000, fields["tid"])
    assert body["transaction_date"] == "2026-11-30 12:00:00"
    [notification] = callbacks(api, tid=fields["tid"])
    assert notification["status"] == "delivered"
    assert payment(api, fields["tid"])["status"] == "approved"


def test_deposit_without_amount_takes_the_payments(api, callback_receiver):
    freeze_at(api)
    fields = api.pay(pgcode="virtualaccount", amount=7000)
    api.deposit(fields["tid"])
    assert callback_receiver.received[0].json()["amount"] == 7000


def test_deposit_of_a_wrong_amount(api, callback_receiver):
    freeze_at(api)
    fields = api.pay(pgcode="virtualaccount", amount=10000)
    body = refused(raw(api, f"/virtual-accounts/{fields['tid']}/deposit", {"amount": 5000}), 406, 4305)
    assert "10000" in body["message"] and "5000" in body["message"]
    assert payment(api, fields["tid"])["status"] == "awaiting_deposit"
    assert callback_receiver.received == []


def test_deposit_after_expiry(api, callback_receiver):
    freeze_at(api)
    fields = api.pay(pgcode="virtualaccount", amount=10000)
    api.set_clock("2026-12-07T00:00:01+09:00")  # the account closed at 2026-12-06 23:59
    body = refused(raw(api, f"/virtual-accounts/{fields['tid']}/deposit", {}), 409, 4306)
    assert fields["tid"] in body["message"]
    assert payment(api, fields["tid"])["status"] == "awaiting_deposit"
    assert callback_receiver.received == []


def test_deposit_just_before_expiry(api, callback_receiver):
    freeze_at(api)
    fields = api.pay(pgcode="virtualaccount", amount=10000)
    api.set_clock("2026-12-06T23:58:59+09:00")
    assert api.deposit(fields["tid"])["status"] == "approved"
    assert len(callback_receiver.received) == 1


def test_deposit_to_a_card_payment(api, callback_receiver):
    freeze_at(api)
    fields = api.pay(pgcode="creditcard")
    refused(raw(api, f"/virtual-accounts/{fields['tid']}/deposit", {}), 409, 4304)
    assert len(callback_receiver.received) == 1  # only the approval's


def test_deposit_twice(api, callback_receiver):
    freeze_at(api)
    fields = api.pay(pgcode="virtualaccount", amount=10000)
    api.deposit(fields["tid"])
    refused(raw(api, f"/virtual-accounts/{fields['tid']}/deposit", {}), 409, 4304)
    assert len(callback_receiver.received) == 1


def test_deposit_to_an_unknown_tid(api):
    refused(raw(api, "/virtual-accounts/tpay_test-202611299999999/deposit", {}), 404, 4309)


# --- unknown tokens, the payments' state ---------------------------------------------------

@pytest.mark.parametrize("action", ["approve", "decline", "abandon"])
@pytest.mark.parametrize("token", ["999999999999999999", "not-a-token"])
def test_unknown_token(api, action, token):
    body = refused(raw(api, f"/payments/{token}/{action}", {}), 404, 4301)
    assert token in body["message"]


def test_payments_are_listed(api):
    freeze_at(api)
    paid = api.pay(order_no="L-1")
    pending = api.request_payment(order_no="L-2")
    declined = api.request_payment(order_no="L-3")
    api.control(f"/payments/{declined}/decline", {})
    listed = api.control("/payments", method="GET")["payments"]
    by_order = {p["order_no"]: p for p in listed}
    assert set(by_order) == {"L-1", "L-2", "L-3"}
    assert by_order["L-1"]["tid"] == paid["tid"]
    assert by_order["L-1"]["status"] == "approved"
    assert by_order["L-2"]["token"] == pending and by_order["L-2"]["status"] == "created"
    assert by_order["L-2"]["tid"] is None
    assert by_order["L-3"]["status"] == "failed"
    approved_only = api.control("/payments?status=approved", method="GET")["payments"]
    assert [p["tid"] for p in approved_only] == [paid["tid"]]


def test_payment_shows_its_cancellations(api):
    freeze_at(api)
    paid = api.pay(amount=5000)
    assert payment(api, paid["tid"])["cancellations"] == []
    api.advance(seconds=60)
    assert api.cancel(paid, amount=1200, partial=True).status_code == 200
    api.advance(seconds=60)
    assert api.cancel(paid, amount=3800).status_code == 200
    view = payment(api, paid["tid"])
    assert view["cancelled_amount"] == 5000
    assert view["remaining"] == 0
    assert [(c["amount"], c["partial"], c["cancel_date"]) for c in view["cancellations"]] == [
        (1200, True, "2026-11-29 12:01:00"), (3800, False, "2026-11-29 12:02:00")]
    # The same payment by its token.
    by_token = payment(api, view["token"])
    assert by_token["tid"] == paid["tid"]
    assert len(by_token["cancellations"]) == 2


def test_unknown_payment(api):
    refused(raw(api, "/payments/tpay_test-202611299999999", method="GET"), 404, 4309)
