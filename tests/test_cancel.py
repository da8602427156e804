"""POST /v1.0/payments/cancel and /v1.0/payments/cancel/partial through the live server:
what a cancellation answers, what it stores, every refusal, the windows on the emulator's
clock, and the sum cancelled under concurrent partial cancels."""
from __future__ import annotations

import threading

import pytest
import requests

from .conftest import OTHER_CLIENT, PAYMENT_KEY, freeze_at, ok, refused, stored

START = "2026-01-31T10:00:00+09:00"


# --- helpers -----------------------------------------------------------------------------


def pay_as_other_client(api, **overrides) -> dict:
    """A payment of the second client, shop_b, made with its own PAYMENT key."""
    client_id, payment_key, _ = OTHER_CLIENT
    response = api.post("/v1.0/payments/request", api.request_body(client_id=client_id, **overrides),
                        key=payment_key)
    assert response.status_code == 200, response.text
    return api.control(f"/payments/{response.json()['token']}/approve", {})["fields"]


def cancel_body(fields: dict, **overrides) -> dict:
    body = {"pgcode": fields["pgcode"], "client_id": "pay_test", "user_id": fields["user_id"],
            "tid": fields["tid"], "ip_addr": "127.0.0.1", **overrides}
    return {k: v for k, v in body.items() if v is not None}


# --- success -----------------------------------------------------------------------------
def test_full_cancel_answers_exactly_the_documented_fields(api, schemas):
    freeze_at(api, START)
    fields = api.pay(amount=1000)
    api.advance(seconds=90)
    body = ok(api.cancel(fields))
    assert schemas.errors("responses/payments_cancel", body) == []
    assert list(body) == ["tid", "cid", "amount", "cancel_date"]
    assert body == {"tid": fields["tid"], "cid": fields["cid"], "amount": 1000,
                    "cancel_date": "2026-01-31 10:01:30"}
    payment = stored(api, fields["tid"])
    assert payment["cancelled_amount"] == 1000
    assert payment["remaining"] == 0
    assert [(c["amount"], c["partial"], c["cancel_date"]) for c in payment["cancellations"]] == [
        (1000, False, "2026-01-31 10:01:30")]


def test_partial_then_full_cancel_of_the_rest(api, schemas):
    fields = api.pay(amount=1000)
    first = ok(api.cancel(fields, 300, partial=True))
    assert schemas.errors("responses/payments_cancel", first) == []
    assert (first["tid"], first["cid"], first["amount"]) == (fields["tid"], fields["cid"], 300)
    assert stored(api, fields["tid"])["remaining"] == 700

    second = ok(api.cancel(fields, 700))
    assert schemas.errors("responses/payments_cancel", second) == []
    assert second["amount"] == 700
    payment = stored(api, fields["tid"])
    assert payment["cancelled_amount"] == 1000 and payment["remaining"] == 0
    assert [(c["amount"], c["partial"]) for c in payment["cancellations"]] == [(300, True), (700, False)]


def test_several_partial_cancels_add_up(api):
    fields = api.pay(amount=1000)
    for amount in (100, 200, 300):
        assert ok(api.cancel(fields, amount, partial=True))["amount"] == amount
    assert stored(api, fields["tid"])["remaining"] == 400
    assert ok(api.cancel(fields, 400))["amount"] == 400


def test_full_cancel_without_amount_is_lenient_and_warned(api):
    fields = api.pay(amount=1000)
    ok(api.cancel(fields, 250, partial=True))
    body = ok(api.post("/v1.0/payments/cancel", cancel_body(fields)))
    assert body["amount"] == 750  # what was left, not the original amount
    assert stored(api, fields["tid"])["remaining"] == 0
    journal = api.control("/requests", method="GET")["requests"]
    last = journal[-1]
    assert last["path"].rstrip("/") == "/v1.0/payments/cancel"
    assert last["status"] == 200
    assert any(w.startswith("amount:") and "omitted" in w for w in last["warnings"]), last["warnings"]


def test_full_cancel_with_amount_carries_no_warning(api):
    fields = api.pay(amount=1000)
    ok(api.cancel(fields))
    assert api.control("/requests", method="GET")["requests"][-1]["warnings"] == []


def test_full_cancel_without_amount_is_refused_in_strict_mode(strict_api):
    fields = strict_api.pay(amount=1000)
    error = refused(strict_api.post("/v1.0/payments/cancel", cancel_body(fields)))
    assert error["code"] == 2007
    assert error["message"].startswith("amount: omitted on a full cancel")
    assert "--strict" in error["message"]
    payment = stored(strict_api, fields["tid"])
    assert payment["cancelled_amount"] == 0 and payment["cancellations"] == []
    # the same cancel with its amount goes through in strict mode
    assert ok(strict_api.cancel(fields))["amount"] == 1000


# --- amounts -----------------------------------------------------------------------------
def test_full_cancel_amount_must_be_what_is_left(api):
    fields = api.pay(amount=1000)
    tid = fields["tid"]
    assert refused(api.cancel(fields, 500)) == {
        "code": 4008, "message": f"payments/cancel cancels what is left of {tid}: amount must be 1000, got 500"}
    ok(api.cancel(fields, 300, partial=True))
    assert refused(api.cancel(fields, 1000)) == {
        "code": 4008, "message": f"payments/cancel cancels what is left of {tid}: amount must be 700, got 1000"}
    assert stored(api, tid)["cancelled_amount"] == 300


@pytest.mark.parametrize("amount", [1000, 1500])
def test_partial_cancel_of_the_whole_remainder_or_more(api, amount):
    fields = api.pay(amount=1000)
    tid = fields["tid"]
    assert refused(api.cancel(fields, amount, partial=True)) == {
        "code": 4009,
        "message": f"a partial cancellation must be less than what is left of {tid} (1000), got {amount}"}
    ok(api.cancel(fields, 400, partial=True))
    error = refused(api.cancel(fields, 600, partial=True))
    assert error["code"] == 4009 and "(600), got 600" in error["message"]
    assert stored(api, tid)["cancelled_amount"] == 400


def test_zero_amount_is_refused(api):
    fields = api.pay(amount=1000)
    assert refused(api.cancel(fields, 0, partial=True))["code"] == 4012
    assert refused(api.post("/v1.0/payments/cancel", cancel_body(fields, amount=0)))["code"] in (4008, 4012)
    assert stored(api, fields["tid"])["cancelled_amount"] == 0


# --- what each method allows -----------------------------------------------------------
@pytest.mark.parametrize("pgcode", ["teencash", "phonebill", "smartculture", "cvs", "eggmoney", "cashbee",
                                    "checkpay", "oncash"])
def test_partial_cancel_on_a_method_without_it(api, pgcode):
    fields = api.pay(pgcode=pgcode, amount=1000)
    assert refused(api.cancel(fields, 100, partial=True)) == {
        "code": 4005, "message": f"{pgcode} does not support partial cancellation"}
    assert stored(api, fields["tid"])["cancelled_amount"] == 0
    assert ok(api.cancel(fields))["amount"] == 1000  # a full cancel is fine


def test_partial_cancel_with_a_disposable_cup_deposit(api):
    fields = api.pay(amount=1000, disposable_cup_deposit=300)
    tid = fields["tid"]
    assert refused(api.cancel(fields, 100, partial=True)) == {
        "code": 4010, "message": f"{tid} carries a disposable_cup_deposit and cannot be partially cancelled"}
    assert stored(api, tid)["cancelled_amount"] == 0
    assert ok(api.cancel(fields))["amount"] == 1000


def test_virtual_account_cannot_be_cancelled(api):
    token = api.request_payment(pgcode="virtualaccount", amount=10000)
    fields = api.control(f"/payments/{token}/approve", {})["fields"]
    tid = fields["tid"]
    expected = {"code": 4004, "message": "virtualaccount payments cannot be cancelled"}
    # issued, awaiting the deposit
    assert refused(api.cancel(fields)) == expected
    deposited = api.deposit(tid)
    assert deposited["status"] == "approved"
    # paid
    assert refused(api.cancel(fields)) == expected
    assert refused(api.cancel(fields, 1000, partial=True)) == expected
    payment = stored(api, tid)
    assert payment["cancelled_amount"] == 0 and payment["cancellations"] == []


# --- whose payment ---------------------------------------------------------------------
def test_unknown_tid(api):
    fields = api.pay()
    ghost = dict(fields, tid="tpay_test-202601319999999")
    assert refused(api.cancel(ghost)) == {
        "code": 4001, "message": "tid 'tpay_test-202601319999999' is not a payment of client 'pay_test'"}
    assert refused(api.cancel(ghost, 100, partial=True))["code"] == 4001


def test_another_clients_tid(api):
    theirs = pay_as_other_client(api, amount=1000)
    tid = theirs["tid"]
    assert tid.startswith("tshop_b-")
    assert refused(api.cancel(theirs)) == {
        "code": 4001, "message": f"tid {tid!r} is not a payment of client 'pay_test'"}
    assert refused(api.cancel(theirs, 100, partial=True))["code"] == 4001
    assert stored(api, tid)["cancelled_amount"] == 0

    ours = api.pay(amount=1000)
    client_id, payment_key, _ = OTHER_CLIENT
    as_b = api.post("/v1.0/payments/cancel", cancel_body(ours, client_id=client_id, amount=1000), key=payment_key)
    assert refused(as_b) == {"code": 4001, "message": f"tid {ours['tid']!r} is not a payment of client 'shop_b'"}
    assert stored(api, ours["tid"])["cancelled_amount"] == 0

    # shop_b may cancel its own payment with its own key
    own = api.post("/v1.0/payments/cancel", cancel_body(theirs, client_id=client_id, amount=1000), key=payment_key)
    assert ok(own)["tid"] == tid


def test_user_id_mismatch(api):
    fields = api.pay(amount=1000)
    tid = fields["tid"]
    other = dict(fields, user_id="someone")
    assert refused(api.cancel(other)) == {"code": 4002, "message": f"user_id 'someone' is not the payer of {tid}"}
    assert refused(api.cancel(other, 100, partial=True))["code"] == 4002
    assert stored(api, tid)["cancelled_amount"] == 0


def test_pgcode_mismatch(api):
    fields = api.pay(amount=1000)
    tid = fields["tid"]
    assert refused(api.cancel(fields, pgcode="mobile")) == {
        "code": 4003, "message": f"pgcode 'mobile' does not match {tid}, paid with creditcard"}
    assert refused(api.cancel(fields, 100, partial=True, pgcode="kakaopay"))["code"] == 4003
    assert stored(api, tid)["cancelled_amount"] == 0
    # pgcode is optional on payments/cancel
    assert ok(api.post("/v1.0/payments/cancel", cancel_body(fields, pgcode=None, amount=1000)))["amount"] == 1000


@pytest.mark.parametrize("partial", [False, True])
@pytest.mark.parametrize("missing,sent", [("client_id", None), ("ip_addr", None), ("ip_addr", "")])
def test_client_id_and_ip_addr_are_necessary_in_both_modes(api, strict_api, missing, sent, partial):
    """The reference marks both Necessary; the Go library that once left them out added them
    (docs/fidelity.md entry 5): a cancel without one is refused, leniency or not, and cancels nothing."""
    for side in (api, strict_api):
        fields = side.pay(amount=1000)
        response = side.cancel(fields, 300 if partial else 1000, partial=partial, **{missing: sent})
        assert refused(response) == {"code": 2001, "message": f"{missing} is required"}
        assert stored(side, fields["tid"])["cancelled_amount"] == 0


def test_the_cancels_ip_addr_is_stored_as_sent(api):
    fields = api.pay(amount=1000)
    ok(api.cancel(fields, 1000, ip_addr="203.0.113.7"))
    assert [c["ip_addr"] for c in stored(api, fields["tid"])["cancellations"]] == ["203.0.113.7"]


@pytest.mark.parametrize("option", ["navercard", "naverpoint"])
def test_naverpay_answers_to_its_code_and_the_payers_pick(api, option):
    fields = api.pay({"option": option}, pgcode="naverpay", amount=1000)
    assert fields["pgcode"] == option
    assert ok(api.cancel(fields, 100, partial=True, pgcode="naverpay"))["amount"] == 100
    assert ok(api.cancel(fields, 200, partial=True, pgcode=option))["amount"] == 200
    assert ok(api.cancel(fields, 700, pgcode="naverpay"))["amount"] == 700
    assert stored(api, fields["tid"])["remaining"] == 0


def test_naverpay_refuses_a_method_it_was_not_paid_with(api):
    fields = api.pay({"option": "naverpoint"}, pgcode="naverpay", amount=1000)
    tid = fields["tid"]
    assert refused(api.cancel(fields, pgcode="creditcard")) == {
        "code": 4003, "message": f"pgcode 'creditcard' does not match {tid}, paid with naverpoint"}
    assert refused(api.cancel(fields, pgcode="smilecash"))["code"] == 4003
    # The other Naver Pay option is not what the payer picked.
    assert refused(api.cancel(fields, pgcode="navercard")) == {
        "code": 4003, "message": f"pgcode 'navercard' does not match {tid}, paid with naverpoint"}


# --- state -------------------------------------------------------------------------------
def test_already_cancelled(api):
    fields = api.pay(amount=1000)
    tid = fields["tid"]
    ok(api.cancel(fields))
    expected = {"code": 4007, "message": f"{tid} is already fully cancelled"}
    assert refused(api.cancel(fields)) == expected
    assert refused(api.cancel(fields, 100, partial=True)) == expected
    assert refused(api.post("/v1.0/payments/cancel", cancel_body(fields))) == expected
    payment = stored(api, tid)
    assert payment["cancelled_amount"] == 1000 and len(payment["cancellations"]) == 1


def test_already_cancelled_after_partials_then_the_rest(api):
    fields = api.pay(amount=1000)
    ok(api.cancel(fields, 600, partial=True))
    ok(api.cancel(fields, 400))
    assert refused(api.cancel(fields, 1, partial=True))["code"] == 4007


def test_tax_split_of_partial_cancels(api):
    fields = api.pay(amount=10000, taxfree_amount=1000)
    tid = fields["tid"]
    payment = stored(api, tid)
    assert (payment["taxfree_amount"], payment["tax_amount"]) == (1000, 819)  # ceil(9000 / 11)

    ok(api.cancel(fields, 1001, partial=True, taxfree_amount=100))  # ceil(901 / 11) = ceil(81.9)
    ok(api.cancel(fields, 1000, partial=True))  # no taxfree: ceil(1000 / 11) = ceil(90.9)
    ok(api.cancel(fields, 2000, partial=True, taxfree_amount=500, tax_amount=100))  # given: kept
    cancellations = stored(api, tid)["cancellations"]
    assert [(c["amount"], c["taxfree_amount"], c["tax_amount"]) for c in cancellations] == [
        (1001, 100, 82), (1000, 0, 91), (2000, 500, 100)]

    # the full cancel gives back what is left of each part
    ok(api.cancel(fields, 10000 - 1001 - 1000 - 2000))
    payment = stored(api, tid)
    last = payment["cancellations"][-1]
    assert (last["amount"], last["taxfree_amount"], last["tax_amount"]) == (5999, 400, 819 - 82 - 91 - 100)
    assert payment["cancelled_taxfree_amount"] == 1000
    assert payment["cancelled_tax_amount"] == 819


def test_partial_taxfree_larger_than_the_cancelled_amount(api):
    fields = api.pay(amount=10000, taxfree_amount=5000)
    assert refused(api.cancel(fields, 100, partial=True, taxfree_amount=200)) == {
        "code": 4013, "message": "taxfree_amount 200 exceeds the cancelled amount 100"}
    assert stored(api, fields["tid"])["cancellations"] == []


def test_partial_tax_amount_is_checked_as_on_payments_request(api):
    fields = api.pay(amount=1000)
    assert refused(api.cancel(fields, 500, partial=True, taxfree_amount=100, tax_amount=450)) == {
        "code": 3009, "message": "tax_amount 450 exceeds the taxable amount 400 (amount - taxfree_amount)"}


def test_partial_tax_amount_is_bounded_by_the_vat_left(api):
    fields = api.pay(amount=1000)  # VAT ceil(1000 / 11) = 91
    tid = fields["tid"]
    assert refused(api.cancel(fields, 500, partial=True, tax_amount=92)) == {
        "code": 4014, "message": f"tax_amount 92 exceeds the VAT left on {tid}: 91 of its 91"}
    ok(api.cancel(fields, 500, partial=True, tax_amount=80))
    assert refused(api.cancel(fields, 100, partial=True, tax_amount=12))["message"] == \
        f"tax_amount 12 exceeds the VAT left on {tid}: 11 of its 91"
    ok(api.cancel(fields, 100, partial=True))  # ceil(100 / 11) = 10: within what is left
    ok(api.cancel(fields, 100, partial=True))  # 10 more than the 1 left: the computed VAT stops at 1
    assert [c["tax_amount"] for c in stored(api, tid)["cancellations"]] == [80, 10, 1]
    ok(api.cancel(fields, 300))
    payment = stored(api, tid)
    assert payment["cancellations"][-1]["tax_amount"] == 0 and payment["cancelled_tax_amount"] == 91


def test_a_payment_without_vat_gives_none_back(api):
    fields = api.pay(amount=1000, tax_amount=0)
    ok(api.cancel(fields, 500, partial=True))
    assert stored(api, fields["tid"])["cancellations"][0]["tax_amount"] == 0


def test_partial_taxfree_amount_is_bounded_by_the_taxfree_left(api):
    fields = api.pay(amount=1000, taxfree_amount=300)
    ok(api.cancel(fields, 400, partial=True, taxfree_amount=200))
    assert refused(api.cancel(fields, 400, partial=True, taxfree_amount=101)) == {
        "code": 4015,
        "message": f"taxfree_amount 101 exceeds the tax-free amount left on {fields['tid']}: 100 of its 300"}


# --- windows on the emulator's clock ---------------------------------------------------
def test_d_plus_180_counts_calendar_days_inclusive(api):
    freeze_at(api, START)
    first, second = api.pay(amount=1000), api.pay(amount=1000)
    api.advance(days=180)  # 2026-07-30 10:00, the 180th day
    assert ok(api.cancel(first))["cancel_date"] == "2026-07-30 10:00:00"
    api.advance(seconds=14 * 3600)  # 2026-07-31 00:00, the 181st day
    error = refused(api.cancel(second))
    assert error["code"] == 4006
    assert "(D+180)" in error["message"]
    assert "ended on 2026-07-30" in error["message"]
    assert "today is 2026-07-31" in error["message"]
    assert refused(api.cancel(second, 100, partial=True))["code"] == 4006
    assert stored(api, second["tid"])["cancelled_amount"] == 0


def test_d_plus_180_last_second_of_the_last_day(api):
    freeze_at(api, START)
    fields = api.pay(amount=1000)
    api.set_clock("2026-07-30T23:59:59+09:00")
    assert ok(api.cancel(fields, 100, partial=True))["cancel_date"] == "2026-07-30 23:59:59"
    api.advance(seconds=1)
    assert refused(api.cancel(fields, 900))["code"] == 4006


def test_banktransfer_only_on_the_day_of_the_transaction(api):
    freeze_at(api, START)
    first, second = api.pay(pgcode="banktransfer", amount=1000), api.pay(pgcode="banktransfer", amount=1000)
    api.set_clock("2026-01-31T23:59:59+09:00")
    ok(api.cancel(first, 100, partial=True))
    api.set_clock("2026-02-01T00:00:01+09:00")  # 2026-01-31 15:00:01 UTC: the next day in KST
    error = refused(api.cancel(second))
    assert error["code"] == 4006
    assert "ended on 2026-01-31" in error["message"] and "today is 2026-02-01" in error["message"]
    assert refused(api.cancel(first, 900))["code"] == 4006


def test_banktransfer_day_is_the_kst_day(api):
    # 08:00 KST on Feb 1 is still Jan 31 in UTC: the KST calendar day decides
    freeze_at(api, "2026-02-01T08:00:00+09:00")
    fields = api.pay(pgcode="banktransfer", amount=1000)
    api.set_clock("2026-02-01T23:00:00+09:00")
    assert ok(api.cancel(fields))["cancel_date"] == "2026-02-01 23:00:00"


@pytest.mark.parametrize("paid,last_minute,next_month", [
    ("2026-01-10T10:00:00+09:00", "2026-01-31T23:59:00+09:00", "2026-02-01T00:00:00+09:00"),
    ("2026-02-03T09:00:00+09:00", "2026-02-28T23:59:00+09:00", "2026-03-01T00:00:00+09:00"),
    ("2026-12-31T10:00:00+09:00", "2026-12-31T23:59:00+09:00", "2027-01-01T00:00:00+09:00"),
])
def test_mobile_within_the_calendar_month(api, paid, last_minute, next_month):
    freeze_at(api, paid)
    first, second = api.pay(pgcode="mobile", amount=1000), api.pay(pgcode="mobile", amount=1000)
    api.set_clock(last_minute)
    ok(api.cancel(first))
    api.set_clock(next_month)
    error = refused(api.cancel(second))
    assert error["code"] == 4006
    assert f"ended on {last_minute[:10]}" in error["message"]
    assert f"today is {next_month[:10]}" in error["message"]


def test_phonebill_within_the_calendar_month(api):
    freeze_at(api, START)
    first, second = api.pay(pgcode="phonebill", amount=1000), api.pay(pgcode="phonebill", amount=1000)
    api.set_clock("2026-01-31T23:59:00+09:00")
    ok(api.cancel(first))
    api.set_clock("2026-02-01T00:00:00+09:00")
    assert refused(api.cancel(second))["code"] == 4006


@pytest.mark.parametrize("pgcode", ["culture", "teencash"])
def test_vouchers_d_plus_24(api, pgcode):
    freeze_at(api, START)
    first, second = api.pay(pgcode=pgcode, amount=1000), api.pay(pgcode=pgcode, amount=1000)
    api.advance(days=24)  # 2026-02-24
    ok(api.cancel(first))
    api.advance(days=1)  # 2026-02-25
    error = refused(api.cancel(second))
    assert error["code"] == 4006
    assert "(D+24)" in error["message"] and "ended on 2026-02-24" in error["message"]


def test_checkpay_d_plus_30(api):
    freeze_at(api, START)
    first, second = api.pay(pgcode="checkpay", amount=1000), api.pay(pgcode="checkpay", amount=1000)
    api.advance(days=30)  # 2026-03-02
    ok(api.cancel(first))
    api.advance(days=1)
    error = refused(api.cancel(second))
    assert error["code"] == 4006 and "ended on 2026-03-02" in error["message"]


def test_smilepay_window_follows_the_payers_pick(api):
    freeze_at(api, START)
    card = api.pay({"option": "smilecard"}, pgcode="smilepay", amount=1000)
    cash = api.pay({"option": "smilecash"}, pgcode="smilepay", amount=1000)
    late_cash = api.pay({"option": "smilecash"}, pgcode="smilepay", amount=1000)
    assert (card["pgcode"], cash["pgcode"]) == ("smilecard", "smilecash")

    api.advance(days=181)  # 2026-07-31: past D+180, inside D+365
    error = refused(api.cancel(card))
    assert error["code"] == 4006 and "ended on 2026-07-30" in error["message"]
    assert ok(api.cancel(cash))["amount"] == 1000

    api.set_clock("2027-01-31T23:59:00+09:00")  # the 365th day
    assert ok(api.cancel(late_cash, 100, partial=True))["amount"] == 100
    api.set_clock("2027-02-01T00:00:00+09:00")  # the 366th day
    error = refused(api.cancel(late_cash, 900, pgcode="smilepay"))
    assert error["code"] == 4006 and "ended on 2027-01-31" in error["message"]


def test_smilepay_default_pick_is_card(api):
    freeze_at(api, START)
    fields = api.pay(pgcode="smilepay", amount=1000)
    assert fields["pgcode"] == "smilecard"
    api.advance(days=181)
    assert refused(api.cancel(fields))["code"] == 4006


def test_chai_follows_the_client_policy(api):
    freeze_at(api, START)
    fields = api.pay(pgcode="chai", amount=1000)
    api.advance(days=3 * 365 + 10)
    ok(api.cancel(fields, 100, partial=True))
    api.advance(days=2 * 365)
    assert ok(api.cancel(fields, 900))["amount"] == 900


def test_refused_cancels_leave_no_trace(api):
    """Cancels refused for the window record nothing, however often they are tried."""
    freeze_at(api, START)
    fields = api.pay(pgcode="culture", amount=1000)
    api.advance(days=40)
    for _ in range(3):
        assert refused(api.cancel(fields))["code"] == 4006
    payment = stored(api, fields["tid"])
    assert payment["cancelled_amount"] == 0 and payment["cancellations"] == []


# --- concurrency -------------------------------------------------------------------------
def test_concurrent_partial_cancels_never_exceed_the_amount(api):
    fields = api.pay(amount=1000)
    tid = fields["tid"]
    body = cancel_body(fields, amount=100)
    url = api.url + "/v1.0/payments/cancel/partial"
    headers = {"Authorization": f"PLKEY {PAYMENT_KEY}"}
    threads_count = 20
    barrier = threading.Barrier(threads_count)
    results: list[tuple[int, dict]] = []
    lock = threading.Lock()

    def worker():
        with requests.Session() as session:
            barrier.wait()
            response = session.post(url, json=body, headers=headers, timeout=60)
            with lock:
                results.append((response.status_code, response.json()))

    threads = [threading.Thread(target=worker) for _ in range(threads_count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(90)
    assert len(results) == threads_count

    succeeded = [b for status, b in results if status == 200]
    failed = [(status, b) for status, b in results if status != 200]
    assert len(succeeded) == 9, results
    assert all(status == 406 and b["code"] == 4009 for status, b in failed), failed
    assert all(b["tid"] == tid and b["amount"] == 100 for b in succeeded)

    payment = stored(api, tid)
    assert payment["cancelled_amount"] == 900
    assert payment["remaining"] == 100
    assert sum(b["amount"] for b in succeeded) == payment["cancelled_amount"]
    assert sum(c["amount"] for c in payment["cancellations"]) == 900
    assert len(payment["cancellations"]) == 9
    # what is left is still cancellable in full
    assert ok(api.cancel(fields, 100))["amount"] == 100
