"""The SEARCH side and its neighbours: payments/transaction/list, receipt/info/{tid},
cashreceipt/issue/{tid} and payments/status."""
from __future__ import annotations

import re

import pytest

from .conftest import OTHER_CLIENT, PAYMENT_KEY, SEARCH_KEY, freeze_at, ok, refused

LIST = "/v1.0/payments/transaction/list"
DAY = "2026-11-29"
DAY_Q = "20261129"
NEXT_DAY_Q = "20261130"


# --- helpers -----------------------------------------------------------------------------


def at(api, hhmmss: str, day: str = DAY) -> None:
    api.set_clock(f"{day}T{hhmmss}+09:00")


def search(api, date: str = DAY_Q, date_type: str = "transaction", *, key: str = SEARCH_KEY,
           client_id: str = "pay_test", **extra):
    return api.get(LIST, {"client_id": client_id, "date": date, "date_type": date_type, **extra}, key=key)


def rows_of(api, date: str = DAY_Q, date_type: str = "transaction", **extra) -> list[dict]:
    response = search(api, date, date_type, **extra)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["total_count"] == len(body["list"])
    return body["list"]


def expected_row(fields: dict, *, status_code: int, amount: int, cancel_date: str, taxfree_amount: int = 0,
                 tax_amount: int | None = None) -> dict:
    """A row as the Korean documentation shows it; its tax split is that of `amount` (by default
    all taxable, VAT ceil(amount / 11))."""
    vat = -(-(amount - taxfree_amount) // 11) if tax_amount is None else tax_amount
    return {"pgcode": fields["pgcode"], "user_id": fields["user_id"], "user_name": fields["user_name"],
            "tid": fields["tid"], "cid": fields["cid"], "amount": amount, "taxfree_amount": taxfree_amount,
            "tax_amount": vat, "order_no": fields["order_no"],
            "product_name": fields["product_name"], "status_code": status_code,
            "transaction_date": fields["transaction_date"], "cancel_date": cancel_date}


def by_tid(rows: list[dict]) -> dict[str, dict]:
    found = {row["tid"]: row for row in rows}
    assert len(found) == len(rows), f"one row per payment expected: {rows}"
    return found


def cancel_ok(api, fields, amount=None, partial=False) -> dict:
    return ok(api.cancel(fields, amount=amount, partial=partial))


# --- payments/transaction/list: date_type=transaction -------------------------------------

def test_reference_request_verbatim(api, schemas):
    freeze_at(api, f"{DAY}T10:00:00+09:00")
    paid = api.pay(order_no="A-1")
    response = api.http.get(f"{api.url}{LIST}?client_id=pay_test&date={DAY_Q}&date_type=transaction",
                            headers={"Authorization": f"PLKEY {SEARCH_KEY}"})
    body = ok(response)
    assert schemas.errors("responses/transaction_list", body) == []
    assert body == {"total_count": 1, "list": [
        expected_row(paid, status_code=0, amount=1000, cancel_date="")]}
    assert body["list"][0]["transaction_date"] == f"{DAY} 10:00:00"


def test_transaction_rows_carry_the_present_status(api, schemas):
    freeze_at(api, f"{DAY}T09:00:00+09:00")
    approved = api.pay(order_no="A", amount=1000)
    at(api, "09:10:00")
    full = api.pay(order_no="B", amount=2000)
    at(api, "09:20:00")
    partial = api.pay(order_no="C", amount=5000)
    at(api, "09:30:00")
    rest = api.pay(order_no="D", amount=3000)

    at(api, "10:00:00")
    assert cancel_ok(api, full)["amount"] == 2000
    at(api, "10:05:00")
    cancel_ok(api, partial, 1000, partial=True)
    at(api, "10:06:00")
    cancel_ok(api, partial, 500, partial=True)
    at(api, "10:07:00")
    cancel_ok(api, rest, 1000, partial=True)
    at(api, "10:08:00")
    cancel_ok(api, rest, 2000)  # the rest, by payments/cancel

    response = search(api)
    body = ok(response)
    assert schemas.errors("responses/transaction_list", body) == []
    rows = by_tid(body["list"])
    assert body["total_count"] == 4
    assert rows == {
        approved["tid"]: expected_row(approved, status_code=0, amount=1000, cancel_date=""),
        full["tid"]: expected_row(full, status_code=1, amount=2000, cancel_date=f"{DAY} 10:00:00"),
        partial["tid"]: expected_row(partial, status_code=2, amount=1500, cancel_date=f"{DAY} 10:06:00"),
        rest["tid"]: expected_row(rest, status_code=1, amount=3000, cancel_date=f"{DAY} 10:08:00"),
    }


def test_transaction_lists_by_payment_date_only(api):
    freeze_at(api, f"{DAY}T15:00:00+09:00")
    paid = api.pay(order_no="late-cancel", amount=4000)
    api.advance(days=1)
    cancel_ok(api, paid, 1000, partial=True)
    today = rows_of(api, DAY_Q)
    assert today == [expected_row(paid, status_code=2, amount=1000, cancel_date="2026-11-30 15:00:00")]
    assert rows_of(api, NEXT_DAY_Q) == []
    assert rows_of(api, "20261128") == []


def test_rows_carry_the_tax_split_of_their_amount(api):
    """VAT reconciliation reads taxfree_amount and tax_amount of each row: the payment's for an
    approval, what was cancelled for a cancelled one, each cancellation's on its settle row."""
    freeze_at(api, f"{DAY}T10:00:00+09:00")
    paid = api.pay(order_no="VAT-1", amount=10000, taxfree_amount=1000)  # VAT ceil(9000 / 11) = 819
    assert rows_of(api) == [expected_row(paid, status_code=0, amount=10000, taxfree_amount=1000, tax_amount=819,
                                         cancel_date="")]
    at(api, "10:30:00")
    cancel_ok(api, paid, 1001, partial=True)  # all taxable: VAT ceil(1001 / 11) = 91
    at(api, "10:40:00")
    ok(api.cancel(paid, 2000, partial=True, taxfree_amount=500, tax_amount=100))
    assert rows_of(api) == [expected_row(paid, status_code=2, amount=3001, taxfree_amount=0 + 500,
                                         tax_amount=91 + 100, cancel_date=f"{DAY} 10:40:00")]
    settle = rows_of(api, date_type="settle")
    assert [(r["amount"], r["taxfree_amount"], r["tax_amount"]) for r in settle] == [
        (10000, 1000, 819), (1001, 0, 91), (2000, 500, 100)]


def test_empty_day_matches_the_schema(api, schemas):
    freeze_at(api, f"{DAY}T10:00:00+09:00")
    body = ok(search(api, "20200101"))
    assert body == {"total_count": 0, "list": []}
    assert schemas.errors("responses/transaction_list", body) == []


# --- date_type=settle ----------------------------------------------------------------------

def test_settle_puts_approval_and_cancellation_on_their_own_dates(api, schemas):
    freeze_at(api, f"{DAY}T11:00:00+09:00")
    paid = api.pay(order_no="S-1", amount=3000)
    api.advance(days=1)  # 2026-11-30 11:00:00
    cancel_ok(api, paid)

    day1 = ok(search(api, DAY_Q, "settle"))
    day2 = ok(search(api, NEXT_DAY_Q, "settle"))
    assert schemas.errors("responses/transaction_list", day1) == []
    assert schemas.errors("responses/transaction_list", day2) == []
    assert day1 == {"total_count": 1, "list": [expected_row(paid, status_code=0, amount=3000, cancel_date="")]}
    assert day2 == {"total_count": 1, "list": [
        expected_row(paid, status_code=1, amount=3000, cancel_date="2026-11-30 11:00:00")]}
    assert day2["list"][0]["transaction_date"] == f"{DAY} 11:00:00"
    # date_type=transaction, by contrast, shows the payment once, on its own date, as cancelled.
    assert rows_of(api, DAY_Q) == [expected_row(paid, status_code=1, amount=3000,
                                               cancel_date="2026-11-30 11:00:00")]
    assert rows_of(api, NEXT_DAY_Q) == []


def test_settle_gives_a_row_per_cancellation(api, schemas):
    freeze_at(api, f"{DAY}T08:00:00+09:00")
    paid = api.pay(order_no="S-2", amount=10000)
    other = api.pay(order_no="S-3", amount=2000)
    at(api, "12:00:00", "2026-11-30")
    cancel_ok(api, paid, 1000, partial=True)
    at(api, "13:00:00", "2026-11-30")
    cancel_ok(api, paid, 2000, partial=True)
    at(api, "09:00:00", "2026-12-01")
    cancel_ok(api, paid, 7000)

    assert {(r["tid"], r["status_code"], r["amount"]) for r in rows_of(api, DAY_Q, "settle")} == {
        (paid["tid"], 0, 10000), (other["tid"], 0, 2000)}
    day2 = rows_of(api, NEXT_DAY_Q, "settle")
    assert sorted(day2, key=lambda r: r["cancel_date"]) == [
        expected_row(paid, status_code=2, amount=1000, cancel_date="2026-11-30 12:00:00"),
        expected_row(paid, status_code=2, amount=2000, cancel_date="2026-11-30 13:00:00"),
    ]
    day3 = ok(search(api, "20261201", "settle"))
    assert schemas.errors("responses/transaction_list", day3) == []
    assert day3["list"] == [expected_row(paid, status_code=1, amount=7000, cancel_date="2026-12-01 09:00:00")]


def test_settle_same_day_approval_and_cancellation(api):
    freeze_at(api, f"{DAY}T10:00:00+09:00")
    paid = api.pay(order_no="S-4", amount=1500)
    at(api, "10:30:00")
    cancel_ok(api, paid, 500, partial=True)
    rows = rows_of(api, DAY_Q, "settle")
    assert len(rows) == 2
    assert expected_row(paid, status_code=0, amount=1500, cancel_date="") in rows
    assert expected_row(paid, status_code=2, amount=500, cancel_date=f"{DAY} 10:30:00") in rows


# --- filters, other clients, unfinished payments ------------------------------------------

def test_pgcode_filter_knows_naverpay_options(api):
    freeze_at(api, f"{DAY}T10:00:00+09:00")
    point = api.pay(approve={"option": "naverpoint"}, pgcode="naverpay", order_no="N-point")
    card = api.pay(pgcode="naverpay", order_no="N-card")
    credit = api.pay(pgcode="creditcard", order_no="C-1")
    assert point["pgcode"] == "naverpoint" and card["pgcode"] == "navercard"

    def tids(**extra):
        return {r["tid"] for r in rows_of(api, DAY_Q, **extra)}

    assert tids() == {point["tid"], card["tid"], credit["tid"]}
    assert tids(pgcode="naverpoint") == {point["tid"]}
    assert tids(pgcode="navercard") == {card["tid"]}
    assert tids(pgcode="naverpay") == {point["tid"], card["tid"]}
    assert tids(pgcode="creditcard") == {credit["tid"]}
    assert tids(pgcode="mobile") == set()
    assert {r["pgcode"] for r in rows_of(api, DAY_Q, pgcode="naverpay")} == {"naverpoint", "navercard"}
    # The same filter in settle mode.
    assert {r["tid"] for r in rows_of(api, DAY_Q, "settle", pgcode="naverpoint")} == {point["tid"]}
    assert {r["tid"] for r in rows_of(api, DAY_Q, "settle", pgcode="naverpay")} == {point["tid"], card["tid"]}


def test_another_clients_payments_never_appear(api):
    freeze_at(api, f"{DAY}T10:00:00+09:00")
    shop_b, shop_b_payment_key, shop_b_search_key = OTHER_CLIENT
    mine = api.pay(order_no="mine")
    response = api.post("/v1.0/payments/request", api.request_body(client_id=shop_b, order_no="theirs"),
                        key=shop_b_payment_key)
    token = ok(response)["token"]
    theirs = api.control(f"/payments/{token}/approve", {})["fields"]
    at(api, "11:00:00")
    assert ok(api.cancel(mine, amount=300, partial=True))
    response = api.post("/v1.0/payments/cancel/partial",
                        {"pgcode": "creditcard", "client_id": shop_b, "user_id": theirs["user_id"],
                         "tid": theirs["tid"], "amount": 200, "ip_addr": "127.0.0.1"}, key=shop_b_payment_key)
    ok(response)

    for date_type in ("transaction", "settle"):
        assert {r["tid"] for r in rows_of(api, DAY_Q, date_type)} == {mine["tid"]}
        theirs_rows = ok(search(api, DAY_Q, date_type, key=shop_b_search_key, client_id=shop_b))["list"]
        assert {r["tid"] for r in theirs_rows} == {theirs["tid"]}
    # pay_test's SEARCH key cannot ask about shop_b.
    refused(search(api, DAY_Q, client_id=shop_b), 403, 993)


def test_failed_and_pending_payments_never_appear(api):
    freeze_at(api, f"{DAY}T10:00:00+09:00")
    approved = api.pay(order_no="done")
    api.request_payment(order_no="created-only")
    declined = api.request_payment(order_no="declined")
    api.control(f"/payments/{declined}/decline", {})
    abandoned = api.request_payment(order_no="abandoned")
    api.control(f"/payments/{abandoned}/abandon", {})
    account = api.pay(pgcode="virtualaccount", order_no="awaiting-deposit")
    verification = api.request_payment(order_no="verify", amount=0, autopay_flag="Y")
    api.control(f"/payments/{verification}/approve", {})

    for date_type in ("transaction", "settle"):
        body = ok(search(api, DAY_Q, date_type))
        assert body["total_count"] == 1
        assert [r["tid"] for r in body["list"]] == [approved["tid"]]

    # Once the payer deposits, the virtual account is a payment of the day.
    at(api, "12:00:00")
    api.deposit(account["tid"])
    rows = by_tid(rows_of(api, DAY_Q))
    assert set(rows) == {approved["tid"], account["tid"]}
    assert rows[account["tid"]]["status_code"] == 0
    assert rows[account["tid"]]["pgcode"] == "virtualaccount"
    assert rows[account["tid"]]["amount"] == 1000


# --- leniency and refusals -----------------------------------------------------------------

def test_query_names_in_another_case_are_accepted_with_a_warning(api):
    freeze_at(api, f"{DAY}T10:00:00+09:00")
    paid = api.pay(order_no="case")
    response = api.get(LIST, {"client_Id": "pay_test", "date": DAY_Q, "Date_Type": "transaction"})
    body = ok(response)
    assert [r["tid"] for r in body["list"]] == [paid["tid"]]
    entry = api.control("/requests", method="GET")["requests"][-1]
    assert entry["path"] == LIST
    assert entry["status"] == 200
    assert any("client_Id" in w and w.startswith("client_id") for w in entry["warnings"]), entry["warnings"]
    assert any("Date_Type" in w for w in entry["warnings"]), entry["warnings"]


def test_correct_query_names_leave_no_warning(api):
    ok(search(api))
    assert api.control("/requests", method="GET")["requests"][-1]["warnings"] == []


def test_strict_refuses_query_names_in_another_case(strict_api):
    response = strict_api.get(LIST, {"client_Id": "pay_test", "date": DAY_Q, "date_type": "transaction"})
    body = refused(response, 406, 2007)
    assert "client_Id" in body["message"]
    # The reference's spelling is fine in strict mode too.
    assert ok(search(strict_api)) == {"total_count": 0, "list": []}


@pytest.mark.parametrize("params,code", [
    ({"date": "20261340"}, 2004),
    ({"date": "2026113"}, 2004),
    ({"date_type": "cancel"}, 2004),
    ({"date": None}, 2001),
    ({"date_type": None}, 2001),
])
def test_invalid_query(api, params, code):
    query = {"client_id": "pay_test", "date": DAY_Q, "date_type": "transaction", **params}
    response = api.get(LIST, {k: v for k, v in query.items() if v is not None})
    body = refused(response, 406, code)
    assert next(iter(k for k in params)) in body["message"]


def test_invalid_calendar_date_message(api):
    body = refused(search(api, "20261340"), 406, 2004)
    assert body["message"].startswith("date ")


def test_payment_key_on_the_search_endpoint(api):
    body = refused(search(api, key=PAYMENT_KEY), 403, 993)
    assert "SEARCH" in body["message"] and "PAYMENT" in body["message"]


def test_missing_key_on_the_search_endpoint(api):
    refused(api.get(LIST, {"client_id": "pay_test", "date": DAY_Q, "date_type": "transaction"}, key=None), 401, 998)


# --- receipt/info/{tid} --------------------------------------------------------------------

def receipt_info(api, tid: str, *, amount, date: str, key: str = SEARCH_KEY, client_id: str = "pay_test"):
    return api.get(f"/v1.0/receipt/info/{tid}/",
                   {"client_id": client_id, "amount": amount, "transaction_date": date}, key=key)


def test_receipt_info_gives_the_receipt_page(api, schemas):
    freeze_at(api, f"{DAY}T10:00:00+09:00")
    paid = api.pay(amount=50001)
    body = ok(receipt_info(api, paid["tid"], amount=50001, date=DAY_Q))
    assert list(body) == ["receipt_url"]
    assert schemas.errors("responses/receipt_info", body) == []
    prefix = f"{api.url}/PGSVC/AllTheGate/Receipt_All.asp?id="
    assert body["receipt_url"].startswith(prefix)
    receipt_id = body["receipt_url"][len(prefix):]
    tid_hex = paid["tid"].encode().hex()
    assert tid_hex == tid_hex.lower()
    assert receipt_id.endswith(tid_hex)
    assert receipt_id != tid_hex  # opaque like the gateway's, not just the hex


def test_receipt_info_without_the_trailing_slash(api):
    freeze_at(api, f"{DAY}T10:00:00+09:00")
    paid = api.pay()
    response = api.get(f"/v1.0/receipt/info/{paid['tid']}",
                       {"client_id": "pay_test", "amount": 1000, "transaction_date": DAY_Q})
    assert ok(response)["receipt_url"].endswith(paid["tid"].encode().hex())


@pytest.mark.parametrize("amount,date", [(1001, DAY_Q), (999, DAY_Q), (1000, NEXT_DAY_Q), (1000, "20261128")])
def test_receipt_info_wrong_amount_or_date(api, amount, date):
    freeze_at(api, f"{DAY}T10:00:00+09:00")
    paid = api.pay(amount=1000)
    body = refused(receipt_info(api, paid["tid"], amount=amount, date=date), 406, 4201)
    assert paid["tid"] in body["message"]


def test_receipt_info_unknown_tid(api):
    freeze_at(api, f"{DAY}T10:00:00+09:00")
    body = refused(receipt_info(api, "tpay_test-202611299999999", amount=1000, date=DAY_Q), 406, 4001)
    assert "tpay_test-202611299999999" in body["message"]


def test_receipt_info_of_another_clients_tid_is_unknown(api):
    freeze_at(api, f"{DAY}T10:00:00+09:00")
    shop_b, shop_b_payment_key, _ = OTHER_CLIENT
    token = ok(api.post("/v1.0/payments/request", api.request_body(client_id=shop_b), key=shop_b_payment_key))["token"]
    theirs = api.control(f"/payments/{token}/approve", {})["fields"]
    refused(receipt_info(api, theirs["tid"], amount=1000, date=DAY_Q), 406, 4001)


def test_receipt_info_needs_the_search_key(api):
    freeze_at(api, f"{DAY}T10:00:00+09:00")
    paid = api.pay()
    refused(receipt_info(api, paid["tid"], amount=1000, date=DAY_Q, key=PAYMENT_KEY), 403, 993)


# --- cashreceipt/issue/{tid} ---------------------------------------------------------------

CASH_RECEIPT_BODY = {"client_id": "pay_test", "type": "0", "tax_flag": "N",
                     "return_url": "https://testpg.payletter.com/result"}


def issue_cash_receipt(api, tid: str, body=None, key: str = PAYMENT_KEY):
    return api.post(f"/v1.0/cashreceipt/issue/{tid}", body or CASH_RECEIPT_BODY, key=key)


def test_cash_receipt_for_a_bank_transfer(api, schemas):
    freeze_at(api, f"{DAY}T10:00:00+09:00")
    paid = api.pay(pgcode="banktransfer", amount=1000)
    body = ok(issue_cash_receipt(api, paid["tid"]))
    assert list(body) == ["receipt_url"]
    assert schemas.errors("responses/cashreceipt_issue", body) == []
    expected = (re.escape(f"{api.url}/PGSVC/Receipt/ReceiptForm.asp?id={paid['tid']}&type=1&taxflag=N"
                          "&returnurl=https://testpg.payletter.com/result&token=") + r"(\d{18})")
    match = re.fullmatch(expected, body["receipt_url"])
    assert match, body["receipt_url"]
    # Recorded against the payment.
    receipts = api.control(f"/payments/{paid['tid']}", method="GET")["cash_receipts"]
    assert [str(r["token"]) for r in receipts] == [match.group(1)]


def test_cash_receipt_type_and_tax_flag_pass_through(api):
    freeze_at(api, f"{DAY}T10:00:00+09:00")
    paid = api.pay(pgcode="banktransfer", amount=1000)
    body = ok(issue_cash_receipt(api, paid["tid"], {**CASH_RECEIPT_BODY, "type": "2", "tax_flag": "Y"}))
    assert "&type=2&taxflag=Y&" in body["receipt_url"]


def test_cash_receipt_refused_for_a_card_payment(api):
    freeze_at(api, f"{DAY}T10:00:00+09:00")
    paid = api.pay(pgcode="creditcard")
    body = refused(issue_cash_receipt(api, paid["tid"]), 406, 4203)
    assert paid["tid"] in body["message"]


def test_cash_receipt_refused_for_a_virtual_account_awaiting_deposit(api):
    freeze_at(api, f"{DAY}T10:00:00+09:00")
    account = api.pay(pgcode="virtualaccount", amount=1000)
    refused(issue_cash_receipt(api, account["tid"]), 406, 4203)
    api.deposit(account["tid"])
    assert ok(issue_cash_receipt(api, account["tid"]))["receipt_url"].startswith(
        f"{api.url}/PGSVC/Receipt/ReceiptForm.asp?id={account['tid']}&")


def test_cash_receipt_unknown_tid_and_wrong_key(api):
    freeze_at(api, f"{DAY}T10:00:00+09:00")
    refused(issue_cash_receipt(api, "tpay_test-202611299999999"), 406, 4001)
    paid = api.pay(pgcode="banktransfer")
    refused(issue_cash_receipt(api, paid["tid"], key=SEARCH_KEY), 403, 993)


# --- payments/status -----------------------------------------------------------------------

def status_of(api, order_no: str, key: str = PAYMENT_KEY):
    return api.post("/v1.0/payments/status", {"client_id": "pay_test", "order_no": order_no}, key=key)


def test_status_follows_the_payment(api, schemas):
    token = api.request_payment(order_no="ORD-approve")
    created = ok(status_of(api, "ORD-approve"))
    assert schemas.errors("responses/payments_status", created) == []
    assert created == {"code": 0, "message": "ok", "client_id": "pay_test", "order_no": "ORD-approve",
                       "token": str(token), "tid": "", "status_code": 1}
    assert isinstance(created["token"], str)
    fields = api.control(f"/payments/{token}/approve", {})["fields"]
    done = ok(status_of(api, "ORD-approve"))
    assert schemas.errors("responses/payments_status", done) == []
    assert done["status_code"] == 5
    assert done["tid"] == fields["tid"]
    assert done["token"] == str(token)


def test_status_after_decline(api, schemas):
    token = api.request_payment(order_no="ORD-decline")
    api.control(f"/payments/{token}/decline", {})
    body = ok(status_of(api, "ORD-decline"))
    assert schemas.errors("responses/payments_status", body) == []
    assert body["status_code"] == 4
    assert body["token"] == str(token)


def test_status_accepts_either_key(api):
    token = api.request_payment(order_no="ORD-keys")
    with_payment = ok(status_of(api, "ORD-keys", key=PAYMENT_KEY))
    with_search = ok(status_of(api, "ORD-keys", key=SEARCH_KEY))
    assert with_payment == with_search
    assert with_search["token"] == str(token)
    refused(status_of(api, "ORD-keys", key="bm90IGEga2V5"), 401, 998)


def test_status_unknown_order(api):
    api.request_payment(order_no="ORD-known")
    body = refused(status_of(api, "ORD-never-requested"), 406, 4204)
    assert "ORD-never-requested" in body["message"]
    refused(status_of(api, "ORD-never-requested", key=SEARCH_KEY), 406, 4204)
