"""Automatic payment: the billkey from a payment request with autopay_flag=Y (or a
verification-only request), POST /v1.0/payments/autopay with it, its refusals, and the
reference's mobile re-payment rules on the emulator's clock."""
from __future__ import annotations

import hashlib
import re

import pytest
import requests

from .conftest import OTHER_CLIENT, PAYMENT_KEY, freeze_at, ok, refused, stored

BILLKEY = re.compile(r"^tb(?P<client_id>pay_test)(?P<stamp>\d{14})(?P<serial>\d{4})$")
MOBILE_PAID = "2026-01-10T10:00:00+09:00"


# --- helpers -----------------------------------------------------------------------------


def autopay_body(billkey: str, **overrides) -> dict:
    body = {"pgcode": "creditcard", "client_id": "pay_test", "service_name": "payletter",
            "user_id": "test_user_id", "user_name": "tester", "order_no": "sub-0001", "amount": 1000,
            "product_name": "monthly plan", "billkey": billkey, "ip_addr": "127.0.0.1"}
    body.update(overrides)
    return {k: v for k, v in body.items() if v is not None}


def autopay(api, billkey: str, *, key: str = PAYMENT_KEY, **overrides) -> requests.Response:
    return api.post("/v1.0/payments/autopay", autopay_body(billkey, **overrides), key=key)


def billkey_of(api, **overrides) -> dict:
    """Pay with autopay_flag=Y; the return fields (with the billkey)."""
    fields = api.pay(autopay_flag="Y", **overrides)
    assert fields["code"] == "0"
    return fields


def verify(api, **overrides) -> dict:
    """A verification-only request (amount 0, autopay_flag=Y), approved; the return fields."""
    token = api.request_payment(amount=0, autopay_flag="Y", **overrides)
    return api.control(f"/payments/{token}/approve", {})["fields"]


def no_callbacks(api, callback_receiver) -> None:
    """None queued (a callback is on the ledger from the approval's own transaction) and none
    sent (the flush returns once every callback due has been attempted)."""
    api.flush()
    assert api.control("/callbacks", method="GET")["callbacks"] == []
    assert callback_receiver.received == []


# --- the billkey -------------------------------------------------------------------------
def test_payment_with_autopay_flag_returns_a_billkey(api):
    freeze_at(api, "2026-03-04T05:06:07+09:00")
    fields = billkey_of(api, amount=1000)
    match = BILLKEY.match(fields["billkey"])
    assert match, fields["billkey"]
    assert match["stamp"] == "20260304050607"
    assert len(fields["billkey"]) <= 40  # payments/autopay's billkey Size
    assert stored(api, fields["tid"])["billkey"] == fields["billkey"]


def test_billkeys_are_distinct(api):
    freeze_at(api, "2026-03-04T05:06:07+09:00")
    keys = {billkey_of(api)["billkey"] for _ in range(3)}
    assert len(keys) == 3
    assert all(BILLKEY.match(k) for k in keys)


def test_billkey_carries_the_client_id(api):
    client_id, payment_key, _ = OTHER_CLIENT
    response = api.post("/v1.0/payments/request", api.request_body(client_id=client_id, autopay_flag="Y"),
                        key=payment_key)
    assert response.status_code == 200, response.text
    fields = api.control(f"/payments/{response.json()['token']}/approve", {})["fields"]
    assert re.fullmatch(r"tbshop_b\d{18}", fields["billkey"]), fields["billkey"]


def test_payment_without_autopay_flag_has_no_billkey(api):
    fields = api.pay(amount=1000)
    assert fields["billkey"] == ""
    assert refused(autopay(api, "tbpay_test202601011200000001"))["code"] == 4101


# --- payments/autopay ------------------------------------------------------------------
def test_autopay_with_the_billkey(api, schemas):
    freeze_at(api, "2026-03-04T05:06:07+09:00")
    first = billkey_of(api, amount=1000)
    billkey = first["billkey"]
    api.advance(days=1)
    body = ok(autopay(api, billkey, amount=1500))
    assert schemas.errors("responses/payments_autopay", body) == []
    assert list(body) == ["tid", "cid", "amount", "billkey", "transaction_date"]
    assert body["amount"] == 1500
    assert body["billkey"] == billkey
    assert body["transaction_date"] == "2026-03-05 05:06:07"
    assert body["tid"].startswith("tpay_test-20260305") and body["tid"] != first["tid"]
    assert re.fullmatch(r"\d{7}", body["cid"])

    payment = stored(api, body["tid"])
    assert payment["status"] == "approved"
    assert (payment["amount"], payment["billkey"], payment["user_id"]) == (1500, billkey, "test_user_id")
    assert payment["tax_amount"] == 137  # ceil(1500 / 11)
    assert payment["order_no"] == "sub-0001"


def test_autopay_payment_can_be_cancelled(api):
    billkey = billkey_of(api)["billkey"]
    body = ok(autopay(api, billkey, amount=2000))
    cancel = {"pgcode": "creditcard", "client_id": "pay_test", "user_id": "test_user_id",
              "tid": body["tid"], "amount": 2000, "ip_addr": "127.0.0.1"}
    assert ok(api.post("/v1.0/payments/cancel", cancel))["amount"] == 2000
    assert stored(api, body["tid"])["remaining"] == 0


def test_billkey_can_be_used_again_and_again(api):
    billkey = billkey_of(api)["billkey"]
    tids = [ok(autopay(api, billkey, amount=1000 + i))["tid"] for i in range(3)]
    assert len(set(tids)) == 3
    assert [stored(api, t)["amount"] for t in tids] == [1000, 1001, 1002]


def test_autopay_with_a_cup_deposit_on_creditcard(api):
    billkey = billkey_of(api)["billkey"]
    body = ok(autopay(api, billkey, amount=3000, disposable_cup_deposit=500))
    assert stored(api, body["tid"])["disposable_cup_deposit"] == 500


# --- verification only -----------------------------------------------------------------
def test_verification_only_returns_a_billkey_and_its_payhash(api, schemas, callback_receiver):
    freeze_at(api, "2026-03-04T05:06:07+09:00")
    fields = verify(api, user_id="member42")
    assert schemas.errors("payloads/return_verification", fields) == []
    assert fields["code"] == "0"
    assert fields["pgcode"] == "creditcard"
    assert fields["user_id"] == "member42"
    match = BILLKEY.match(fields["billkey"])
    assert match and match["stamp"] == "20260304050607", fields["billkey"]
    expected = hashlib.sha256(f"member42{fields['billkey']}{PAYMENT_KEY}".encode()).hexdigest().upper()
    assert fields["payhash"] == expected
    assert re.fullmatch(r"\d{6}\*{6}\d{4}", fields["card_info"])
    for absent in ("tid", "cid", "amount", "transaction_date"):
        assert absent not in fields
    no_callbacks(api, callback_receiver)


def test_verification_billkey_works_for_autopay(api, schemas):
    fields = verify(api, user_id="member42")
    body = ok(autopay(api, fields["billkey"], user_id="member42", amount=9900))
    assert schemas.errors("responses/payments_autopay", body) == []
    assert body["billkey"] == fields["billkey"] and body["amount"] == 9900
    assert stored(api, body["tid"])["status"] == "approved"


def test_an_ordinary_payment_does_send_its_callback(api, callback_receiver):
    """The counterpart of the verification's silence: the receiver does hear approvals."""
    fields = billkey_of(api)
    assert [r.json()["tid"] for r in callback_receiver.wait_for(1)] == [fields["tid"]]


# --- refusals ----------------------------------------------------------------------------
def test_unknown_billkey(api):
    billkey_of(api)
    assert refused(autopay(api, "tbpay_test202601011200000001")) == {
        "code": 4101, "message": "billkey 'tbpay_test202601011200000001' was not issued to client 'pay_test'"}


def test_billkey_of_another_client(api):
    client_id, payment_key, _ = OTHER_CLIENT
    response = api.post("/v1.0/payments/request", api.request_body(client_id=client_id, autopay_flag="Y"),
                        key=payment_key)
    assert response.status_code == 200, response.text
    theirs = api.control(f"/payments/{response.json()['token']}/approve", {})["fields"]["billkey"]
    assert refused(autopay(api, theirs)) == {
        "code": 4101, "message": f"billkey {theirs!r} was not issued to client 'pay_test'"}
    # shop_b itself may use it
    assert ok(autopay(api, theirs, client_id=client_id, key=payment_key))["billkey"] == theirs


def test_billkey_of_another_user(api):
    billkey = billkey_of(api, user_id="alice")["billkey"]
    assert refused(autopay(api, billkey, user_id="mallory")) == {
        "code": 4102, "message": f"billkey {billkey} belongs to another user_id than 'mallory'"}
    assert ok(autopay(api, billkey, user_id="alice"))["billkey"] == billkey


@pytest.mark.parametrize("pgcode", ["payco", "mobile", "chai"])
def test_billkey_with_another_pgcode(api, pgcode):
    billkey = billkey_of(api)["billkey"]
    assert refused(autopay(api, billkey, pgcode=pgcode)) == {
        "code": 4103, "message": f"billkey {billkey} was issued for creditcard, not {pgcode}"}


@pytest.mark.parametrize("pgcode", ["kakaopay", "banktransfer", "naverpay", "toss"])
def test_method_without_recurring_payment(api, pgcode):
    billkey = billkey_of(api)["billkey"]
    assert refused(autopay(api, billkey, pgcode=pgcode)) == {
        "code": 3003,
        "message": f"{pgcode} does not support automatic payment (autopay_flag=Y, payments/autopay)"}


@pytest.mark.parametrize("missing,sent", [("client_id", None), ("ip_addr", None), ("ip_addr", "")])
def test_client_id_and_ip_addr_are_necessary_in_both_modes(api, strict_api, missing, sent):
    """The reference marks both Necessary; the Go library that once left them out added them
    (docs/fidelity.md entry 5): an autopay without one is refused, leniency or not, and pays nothing."""
    for side in (api, strict_api):
        billkey = billkey_of(side)["billkey"]
        made = len(side.control("/payments", method="GET")["payments"])
        assert refused(autopay(side, billkey, **{missing: sent})) == {"code": 2001, "message": f"{missing} is required"}
        assert len(side.control("/payments", method="GET")["payments"]) == made


def test_zero_amount(api):
    billkey = billkey_of(api)["billkey"]
    assert refused(autopay(api, billkey, amount=0)) == {"code": 4012, "message": "amount must be greater than 0"}


def test_below_the_minimum(api):
    billkey = billkey_of(api)["billkey"]
    assert refused(autopay(api, billkey, amount=99)) == {
        "code": 3002, "message": "amount 99 is below the minimum approval amount of 100 KRW for creditcard"}
    assert ok(autopay(api, billkey, amount=100))["amount"] == 100


def test_refusals_record_no_payment(api):
    billkey = billkey_of(api)["billkey"]
    before = len(api.control("/payments", method="GET")["payments"])
    for key, overrides in ((billkey, {"amount": 0}), (billkey, {"amount": 50}), (billkey, {"user_id": "x"}),
                           (billkey, {"pgcode": "payco"}), ("tbpay_test202601011200000001", {})):
        assert autopay(api, key, **overrides).status_code == 406
    assert len(api.control("/payments", method="GET")["payments"]) == before


@pytest.mark.parametrize("pgcode,amount", [("payco", 1000), ("chai", 1000), ("checkpay", 1000)])
def test_cup_deposit_only_for_creditcard_among_recurring(api, pgcode, amount):
    billkey = billkey_of(api, pgcode=pgcode, amount=amount)["billkey"]
    assert refused(autopay(api, billkey, pgcode=pgcode, amount=amount, disposable_cup_deposit=100)) == {
        "code": 3005, "message": f"disposable_cup_deposit is not allowed for {pgcode} on payments/autopay"}
    assert ok(autopay(api, billkey, pgcode=pgcode, amount=amount))["billkey"] == billkey


def test_cup_deposit_refused_for_mobile_autopay(api):
    freeze_at(api, MOBILE_PAID)
    billkey = billkey_of(api, pgcode="mobile", amount=1000)["billkey"]
    api.set_clock("2026-02-10T10:00:00+09:00")  # a re-payment the mobile rules allow
    assert refused(autopay(api, billkey, pgcode="mobile", amount=1000, disposable_cup_deposit=100)) == {
        "code": 3005, "message": "disposable_cup_deposit is not allowed for mobile on payments/autopay"}
    assert ok(autopay(api, billkey, pgcode="mobile", amount=1000))["billkey"] == billkey


# --- mobile re-payment -------------------------------------------------------------------
@pytest.fixture
def mobile_billkey(api) -> str:
    freeze_at(api, MOBILE_PAID)
    fields = billkey_of(api, pgcode="mobile", amount=1000)
    assert fields["transaction_date"] == "2026-01-10 10:00:00"
    return fields["billkey"]


def mobile_autopay(api, billkey: str, amount: int = 1000) -> requests.Response:
    return autopay(api, billkey, pgcode="mobile", amount=amount)


def test_mobile_repayment_not_before_30_days(api, mobile_billkey):
    api.set_clock("2026-02-05T10:00:00+09:00")
    error = refused(mobile_autopay(api, mobile_billkey))
    assert error["code"] == 4104
    assert "30 days after billkey" in error["message"] and mobile_billkey in error["message"]
    assert "2026-02-09" in error["message"]


def test_mobile_repayment_must_keep_the_amount(api, mobile_billkey):
    api.set_clock("2026-02-10T10:00:00+09:00")
    assert refused(mobile_autopay(api, mobile_billkey, amount=2000)) == {
        "code": 4105,
        "message": f"mobile re-payment must keep the amount of billkey {mobile_billkey}: 1000, got 2000"}


def test_mobile_repayment_with_the_same_amount_after_30_days(api, mobile_billkey, schemas):
    api.set_clock("2026-02-10T10:00:00+09:00")
    body = ok(mobile_autopay(api, mobile_billkey))
    assert schemas.errors("responses/payments_autopay", body) == []
    assert body["transaction_date"] == "2026-02-10 10:00:00"
    assert re.fullmatch(r"20260210100000\d{6}", body["cid"])  # mobile approval numbers are 20 digits
    # the next month follows on from this one
    api.set_clock("2026-03-10T10:00:00+09:00")
    assert ok(mobile_autopay(api, mobile_billkey))["billkey"] == mobile_billkey
    assert refused(mobile_autopay(api, mobile_billkey, amount=999))["code"] == 4105


def test_mobile_repayment_needs_a_payment_in_the_previous_month(api, mobile_billkey):
    api.set_clock("2026-03-12T10:00:00+09:00")  # the last payment was in January
    assert refused(mobile_autopay(api, mobile_billkey)) == {
        "code": 4106, "message": f"mobile re-payment needs a payment with billkey {mobile_billkey} in 2026-02"}


def test_mobile_rules_are_for_mobile_only(api):
    freeze_at(api, MOBILE_PAID)
    billkey = billkey_of(api, amount=1000)["billkey"]
    api.advance(days=1)
    assert ok(autopay(api, billkey, amount=2000))["amount"] == 2000  # a card: any day, any amount
