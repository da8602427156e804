"""A payer in a real browser (headless chromium): opens online_url or mobile_url, pays, fails or
cancels, and lands on the merchant's site with the documented fields; the callback arrives at the
merchant's callback endpoint. Screenshots of each page go to test-artifacts/pages/."""
from __future__ import annotations

import re

from playwright.sync_api import expect

from payletter_emulator.domain.methods import lookup, table

from .browser import chromium, desktop, merchant, payhash, phone, screenshot, shop, wait_for_callback  # noqa: F401
from .conftest import SCHEMAS, stored
from .doc_blocks import doc_block

CUSTOM = 'order=7&note="우유" <b>&amp;</b>'


def request(api, shop, **overrides) -> dict:
    body = api.request_body(**{"return_url": f"{shop.url}/result", "cancel_url": f"{shop.url}/cancel",
                               "user_name": "홍길동", "service_name": "커피상점", "product_name": "원두 1kg & 드리퍼",
                               "order_no": "ORD-2026-0001", "custom_parameter": CUSTOM, **overrides})
    response = api.post("/v1.0/payments/request", body)
    assert response.status_code == 200, response.text
    return response.json()


def pay_by_card(page, shop, payment: dict, number: str, expiry: str) -> dict:
    """The payer types a card on the online page and pays; the fields the merchant received."""
    page.goto(payment["online_url"])
    page.get_by_test_id("card-number").fill(number)
    page.get_by_test_id("card-expiry").fill(expiry)
    page.get_by_test_id("pay-button").click()
    return landed(page, shop).form


def landed(page, shop, path: str = "/result"):
    """The browser is on the merchant's page and the merchant got the request."""
    arrival = shop.wait_for(path)
    page.wait_for_url(f"{shop.url}{path}*")
    expect(page.get_by_test_id("merchant-landed")).to_be_visible()
    return arrival


def assert_paid(fields: dict, callback: dict, **expected) -> None:
    """What a merchant checks: code 0, the payhash of both, the same payment in both."""
    assert SCHEMAS.errors("payloads/return_success", fields) == [], fields
    assert fields["code"] == "0"
    assert fields["payhash"] == payhash(fields["user_id"], fields["amount"], fields["tid"])
    assert callback["payhash"] == payhash(callback["user_id"], callback["amount"], callback["tid"])
    for name in ("tid", "cid", "pgcode", "user_id", "order_no", "card_info", "pay_info", "transaction_date",
                 "custom_parameter", "product_name"):
        assert callback[name] == fields[name], name
    assert callback["amount"] == int(fields["amount"])
    assert fields["custom_parameter"] == CUSTOM and fields["product_name"] == "원두 1kg & 드리퍼"
    for name, value in expected.items():
        assert fields[name] == value, name


def test_a_card_payment_with_installments_online(api, desktop, shop, callback_receiver):
    payment = request(api, shop, pgcode="creditcard", amount=55000)
    desktop.goto(payment["online_url"])
    assert desktop.get_by_test_id("amount").inner_text() == "55,000원"
    assert desktop.get_by_test_id("product-name").inner_text() == "원두 1kg & 드리퍼"
    assert desktop.get_by_test_id("merchant-name").inner_text() == "커피상점"
    desktop.get_by_test_id("card-number").fill("4579730000001235")
    assert desktop.get_by_test_id("card-number").input_value() == "4579 7300 0000 1235"
    desktop.get_by_test_id("card-expiry").fill("12/30")
    desktop.get_by_test_id("install-month").select_option("03")
    screenshot(desktop, "creditcard-online")
    desktop.get_by_test_id("pay-button").click()
    fields = landed(desktop, shop).form
    callback = wait_for_callback(callback_receiver, fields["tid"])
    assert_paid(fields, callback, pgcode="creditcard", amount="55000", install_month="03",
                card_info="457973******1235", domestic_flag="N", user_name="홍길동")
    assert stored(api, fields["tid"])["status"] == "approved"


def test_the_docs_playwright_snippet_pays_on_the_online_page(api, desktop, shop, callback_receiver):
    """docs/payer.md's snippet as it is, with `page` and `payment` given, and its return_url this
    test's merchant: the card with installments is approved and the merchant gets the POST."""
    payment = request(api, shop, pgcode="creditcard", amount=55000)
    snippet = doc_block("playwright-snippet")
    code = snippet.text.replace("https://merchant.example/result", f"{shop.url}/result")
    exec(compile(code, snippet.page, "exec"), {"page": desktop, "payment": payment})
    fields = shop.wait_for("/result").form
    assert (fields["code"], fields["install_month"], fields["amount"]) == ("0", "03", "55000")


def test_a_mobile_payment_on_the_mobile_page(api, phone, shop, callback_receiver):
    payment = request(api, shop, pgcode="mobile", amount=3300)
    phone.goto(payment["mobile_url"])
    phone.get_by_test_id("carrier-kt").check()
    phone.get_by_test_id("phone").fill("010-1234-5678")
    phone.get_by_test_id("send-code").click()
    expect(phone.get_by_test_id("code-sent")).to_be_visible()
    phone.get_by_test_id("auth-code").fill("123456")
    screenshot(phone, "mobile-mobile")
    phone.get_by_test_id("pay-button").click()
    fields = landed(phone, shop).form
    callback = wait_for_callback(callback_receiver, fields["tid"])
    assert_paid(fields, callback, pgcode="mobile", amount="3300", card_info="", install_month="")
    assert re.fullmatch(r"[0-9]{20}", fields["cid"])
    assert re.fullmatch(r"010[0-9]{8}", fields["pay_info"])


def test_a_naver_pay_point_payment_approved_in_the_app(api, desktop, shop, callback_receiver):
    payment = request(api, shop, pgcode="naverpay", amount=12000)
    desktop.goto(payment["online_url"])
    desktop.get_by_test_id("option-naverpoint").check()
    screenshot(desktop, "naverpay-online")
    desktop.get_by_test_id("pay-button").click()
    expect(desktop.get_by_test_id("app-step")).to_be_visible()
    screenshot(desktop, "naverpay-app-step-online")
    desktop.get_by_test_id("app-approve").click()
    fields = landed(desktop, shop).form
    callback = wait_for_callback(callback_receiver, fields["tid"])
    assert_paid(fields, callback, pgcode="naverpoint", amount="12000")
    assert callback["pgcode"] == "naverpoint"


def test_a_virtual_account_with_a_cash_receipt_then_the_deposit(api, phone, shop, callback_receiver):
    payment = request(api, shop, pgcode="virtualaccount", amount=25000, receipt_flag="Y")
    phone.goto(payment["mobile_url"])
    phone.get_by_test_id("bank-code").select_option("088")
    phone.get_by_test_id("cash-receipt-type-01").check()
    phone.get_by_test_id("cash-receipt-id").fill("01098765432")
    screenshot(phone, "virtualaccount-mobile")
    phone.get_by_test_id("pay-button").click()
    fields = landed(phone, shop).form
    # Issued, not paid: the account, no payhash, and no callback until the deposit.
    assert SCHEMAS.errors("payloads/return_success", fields) == [], fields
    assert "payhash" not in fields
    assert (fields["bank_code"], fields["bank_name"], fields["pgcode"]) == ("088", "신한은행", "virtualaccount")
    assert re.fullmatch(r"[0-9]{14}", fields["account_no"])
    assert (fields["cash_receipt_type"], fields["cash_receipt_issue_type"], fields["cash_receipt_payer_sid"]) == (
        "01", "1", "01098765432")
    assert fields["cash_receipt_code"] == "0" and fields["cash_receipt_deal_no"] == "ORD-2026-0001"
    assert stored(api, fields["tid"])["status"] == "awaiting_deposit"
    api.control(f"/virtual-accounts/{fields['tid']}/deposit", {"amount": 25000})
    callback = wait_for_callback(callback_receiver, fields["tid"])
    assert callback["payhash"] == payhash(callback["user_id"], callback["amount"], fields["tid"])
    assert callback["cash_receipt"] == {
        "code": "0", "message": fields["cash_receipt_message"], "cid": fields["cash_receipt_cid"],
        "deal_no": "ORD-2026-0001", "issue_type": "1", "payer_sid": "01098765432", "type": "01"}


def test_a_declining_test_card_fails_the_payment(api, desktop, shop, callback_receiver):
    payment = request(api, shop, pgcode="creditcard", amount=8000)
    fields = pay_by_card(desktop, shop, payment, "4000 0000 0000 9995", "0130")
    assert SCHEMAS.errors("payloads/return_failure", fields) == [], fields
    assert fields == {"code": "6002", "message": "잔액이 부족합니다. (insufficient funds)", "user_id": "test_user_id",
                      "order_no": "ORD-2026-0001", "service_name": "커피상점", "product_name": "원두 1kg & 드리퍼",
                      "custom_parameter": CUSTOM}
    state = stored(api, payment["token"])
    assert state["status"] == "failed"
    assert api.control("/callbacks", method="GET")["callbacks"] == []  # a failure sends no callback


def test_the_payer_cancels_and_lands_on_cancel_url(api, phone, shop, callback_receiver):
    payment = request(api, shop, pgcode="creditcard", cancel_url=f"{shop.url}/cancel?order=ORD-2026-0001")
    phone.goto(payment["mobile_url"])
    phone.get_by_test_id("cancel-button").click()
    arrival = landed(phone, shop, "/cancel")
    assert arrival.method == "GET" and arrival.query == {"order": "ORD-2026-0001"}
    assert stored(api, payment["token"])["status"] == "abandoned"
    assert [a for a in shop.arrivals if a.path == "/result"] == []  # nothing went to return_url
    assert api.control("/callbacks", method="GET")["callbacks"] == []  # and no callback
    # The page was used: going back to it shows why it cannot be paid any more.
    phone.goto(payment["mobile_url"])
    assert phone.get_by_test_id("page-error").get_attribute("data-error") == "payment_not_pending"
    screenshot(phone, "used-token-mobile")


def test_naver_pay_cancel_stays_on_a_cancelled_page(api, desktop, shop):
    payment = request(api, shop, pgcode="naverpay")
    desktop.goto(payment["online_url"])
    desktop.get_by_test_id("pay-button").click()
    desktop.get_by_test_id("cancel-button").click()
    expect(desktop.get_by_test_id("page-cancelled")).to_be_visible()
    assert shop.arrivals == []
    screenshot(desktop, "naverpay-cancelled-online")


def test_wrong_inputs_are_shown_next_to_the_field_then_fixed(api, phone, shop, callback_receiver):
    payment = request(api, shop, pgcode="culture", amount=5000)
    phone.goto(payment["mobile_url"])
    phone.get_by_test_id("pin").fill("1234")
    phone.get_by_test_id("pay-button").click()
    expect(phone.get_by_test_id("error-pin")).to_be_visible()
    screenshot(phone, "culture-error-mobile")
    phone.get_by_test_id("pin").fill("1234-5678-9012-3456")
    phone.get_by_test_id("pay-button").click()
    fields = landed(phone, shop).form
    callback = wait_for_callback(callback_receiver, fields["tid"])
    assert_paid(fields, callback, pgcode="culture", amount="5000")


def test_the_page_in_english(api, desktop, shop):
    payment = request(api, shop, pgcode="kakaopay", amount=1500)
    desktop.goto(payment["online_url"])
    assert desktop.locator("html").get_attribute("lang") == "ko"
    desktop.get_by_test_id("lang-switch").click()
    assert desktop.locator("html").get_attribute("lang") == "en"
    assert desktop.get_by_test_id("amount").inner_text() == "KRW 1,500"
    assert desktop.get_by_test_id("pay-button").inner_text() == "Pay KRW 1,500"
    screenshot(desktop, "kakaopay-online-en")


def test_receipt_pages_in_the_browser(api, desktop, shop):
    payment = request(api, shop, pgcode="creditcard", amount=30000)
    fields = pay_by_card(desktop, shop, payment, "5361480000001236", "07/31")
    api.cancel(fields, 10000, partial=True)
    day = fields["transaction_date"][:10].replace("-", "")
    receipt_url = api.get(f"/v1.0/receipt/info/{fields['tid']}",
                          {"client_id": "pay_test", "amount": 30000, "transaction_date": day}).json()["receipt_url"]
    desktop.goto(receipt_url)
    assert desktop.get_by_test_id("receipt-amount").inner_text() == "30,000원"
    assert desktop.get_by_test_id("receipt-status").get_attribute("data-status") == "partial"
    assert "536148******1236" in desktop.get_by_test_id("receipt-card").inner_text()
    screenshot(desktop, "receipt-online")


def test_every_methods_page_in_both_layouts(api, desktop, phone, shop):
    """A screenshot of each pgcode's page, online and mobile; each renders without a script error."""
    for pgcode in table():
        payment = request(api, shop, pgcode=pgcode, amount=max(lookup(pgcode).minimum, 60000), receipt_flag="Y")
        for page, location in ((desktop, "online"), (phone, "mobile")):
            page.goto(payment[f"{location}_url"])
            expect(page.get_by_test_id("pay-button")).to_be_visible()
            assert page.get_by_test_id("payment-page").get_attribute("data-pgcode") == pgcode
            screenshot(page, f"all/{pgcode}-{location}")


def test_the_cash_receipt_form_in_the_browser(api, phone, shop):
    fields = api.pay(pgcode="banktransfer", amount=7000)
    url = api.post(f"/v1.0/cashreceipt/issue/{fields['tid']}",
                   {"client_id": "pay_test", "type": "0", "tax_flag": "N",
                    "return_url": f"{shop.url}/receipt-done"}).json()["receipt_url"]
    phone.goto(url)
    phone.get_by_test_id("cash-receipt-type-02").check()
    phone.get_by_test_id("cash-receipt-id").fill("123-45-67890")
    screenshot(phone, "cash-receipt-form-mobile")
    phone.get_by_test_id("cash-receipt-submit").click()
    sent = landed(phone, shop, "/receipt-done").form
    assert (sent["tid"], sent["cash_receipt_type"], sent["cash_receipt_payer_sid"]) == (fields["tid"], "02",
                                                                                      "1234567890")
