"""Payletter Global's hosted page (/Web/Payment.aspx, /Smart/Payment.aspx) against a real
`payletter-emulator serve`: a payer in headless chromium pays, is declined or cancels and lands on
the merchant's site with the notification's fields; the notification reaches a real receiver.
Both flows: online_url/mobile_url of an API request, and the WooCommerce plugin's hash-signed form
posted without an API call. The formulas are computed here with hashlib alone (as a merchant's
code does), so the emulator's code is not checking itself."""
from __future__ import annotations

import hashlib
from urllib.parse import parse_qsl

import pytest
import requests
from playwright.sync_api import expect

from .browser import chromium, desktop, merchant, phone, read_html, screenshot, shop  # noqa: F401
from .conftest import SCHEMAS

STORE, KEY = "global_test", "global_test"

HASHED = ("storeid", "currency", "storeorderno", "payamt", "payerid", "timestamp")
WAIT = 15


def merchant_hash(fields: dict, key: str = KEY) -> str:
    """What a merchant recomputes: SHA-256 hex of the six fields as received, then the key."""
    return hashlib.sha256(("".join(fields[name] for name in HASHED) + key).encode()).hexdigest()


@pytest.fixture
def server(emulator_process):
    requests.post(f"{emulator_process.url}/_emulator/reset", json={}, timeout=30).raise_for_status()
    return emulator_process


@pytest.fixture
def noti(server, receiver):
    """The merchant's notification page (conftest's receiver), acknowledging as the samples do;
    emptied after the emulator's reset, which waits for the attempts in flight."""
    receiver.clear()
    return receiver.as_global_page()


def request_payment(server, shop, noti, **overrides) -> dict:
    body = {"storeid": STORE, "currency": "USD", "storeorderno": "ORD-7", "amount": "10.00", "payerid": "user42",
            "payeremail": "buyer@example.com", "servicename": "A T-shirt & socks", "pginfo": "PLCreditCard",
            "returnurl": f"{shop.url}/return", "notiurl": noti.url, **overrides}
    answer = requests.post(f"{server.url}/api/payment/request", json={k: v for k, v in body.items() if v is not None},
                           headers={"Authorization": f"GPLKEY {KEY}"}, timeout=30)
    assert answer.status_code == 200, answer.text
    return answer.json()


def notifications(server) -> list[dict]:
    requests.post(f"{server.url}/_emulator/callbacks/flush", json={}, timeout=30).raise_for_status()
    return requests.get(f"{server.url}/_emulator/callbacks", timeout=30).json()["callbacks"]


def notified(noti, paytoken: str) -> dict:
    """The notification of `paytoken` once the receiver has it (the outbox sends it in the background)."""
    with noti.event:
        noti.event.wait_for(lambda: any(paytoken in r.body.decode() for r in noti.received), WAIT)
    forms = [dict(parse_qsl(r.body.decode(), keep_blank_values=True)) for r in noti.received]
    found = [form for form in forms if form.get("paytoken") == paytoken]
    assert found, f"no notification of {paytoken} within {WAIT}s: {forms}"
    return found[0]


def landed(page, shop, path: str = "/return"):
    arrival = shop.wait_for(path)
    page.wait_for_url(f"{shop.url}{path}*")
    expect(page.get_by_test_id("merchant-landed")).to_be_visible()
    return arrival


def pay_by_card(page, number: str, expiry: str = "12/39", cvv: str = "123") -> None:
    page.get_by_test_id("card-number").fill(number)
    page.get_by_test_id("card-expiry").fill(expiry)
    page.get_by_test_id("card-cvv").fill(cvv)
    page.get_by_test_id("pay-button").click()


def assert_returned_as_notified(fields: dict, notification: dict) -> None:
    """The browser's POST to returnurl carries the notification's fields, its hash checks."""
    assert fields["hash"] == merchant_hash(fields)
    assert notification["hash"] == merchant_hash(notification)
    assert SCHEMAS.errors("global/notification", notification) == [], notification
    for name in ("storeid", "currency", "storeorderno", "payamt", "payerid", "paytoken", "pginfo", "cardkind",
                 "cardno", "trantime", "retcode", "servicename"):
        assert fields[name] == notification[name], name


# --- a payer in chromium ----------------------------------------------------------------------------

def test_a_card_payment_on_the_web_page_returns_to_the_shop_and_is_notified(server, desktop, shop, noti):
    payment = request_payment(server, shop, noti)
    desktop.goto(payment["online_url"])
    expect(desktop.get_by_test_id("payment-page")).to_have_attribute("data-layout", "online")
    assert desktop.get_by_test_id("amount").inner_text() == "USD 10.00"
    assert desktop.get_by_test_id("service-name").inner_text() == "A T-shirt & socks"
    assert desktop.get_by_test_id("order-no").inner_text() == "ORD-7"
    desktop.get_by_test_id("card-number").fill("4111111111111111")
    assert desktop.get_by_test_id("card-number").input_value() == "4111 1111 1111 1111"
    desktop.get_by_test_id("card-expiry").fill("12/39")
    desktop.get_by_test_id("card-cvv").fill("123")
    screenshot(desktop, "global-creditcard-web")
    desktop.get_by_test_id("pay-button").click()
    arrival = landed(desktop, shop)
    fields = arrival.form
    assert arrival.method == "POST"
    assert (fields["retcode"], fields["cardkind"], fields["cardno"]) == ("0", "VISA", "************1111")
    assert fields["payamt"] == "10.00" and fields["notifytype"] == "1" and fields["paytoken"]
    assert_returned_as_notified(fields, notified(noti, fields["paytoken"]))
    listed = requests.get(f"{server.url}/_emulator/global/payments", timeout=30).json()["payments"]
    assert [(p["status"], p["paytoken"]) for p in listed] == [("paid", fields["paytoken"])]


def test_the_smart_page_on_a_phone_pays_with_a_master_card(server, phone, shop, noti):
    payment = request_payment(server, shop, noti, currency="JPY", amount=1500, storeorderno="ORD-JP")
    phone.goto(payment["mobile_url"])
    expect(phone.get_by_test_id("payment-page")).to_have_attribute("data-layout", "mobile")
    assert phone.get_by_test_id("amount").inner_text() == "JPY 1500"
    screenshot(phone, "global-creditcard-smart")
    pay_by_card(phone, "5105 1051 0510 5100")
    fields = landed(phone, shop).form
    assert (fields["retcode"], fields["cardkind"], fields["currency"], fields["payamt"]) == ("0", "MASTER", "JPY", "1500")
    assert_returned_as_notified(fields, notified(noti, fields["paytoken"]))


def test_a_card_that_is_no_test_card_is_declined_after_a_form_error_and_nothing_is_notified(server, desktop, shop,
                                                                                          noti):
    payment = request_payment(server, shop, noti)
    desktop.goto(payment["online_url"])
    pay_by_card(desktop, "6011000990139424", expiry="13/30")  # no month 13: the page asks again
    expect(desktop.get_by_test_id("form-errors")).to_be_visible()
    expect(desktop.get_by_test_id("error-card-expiry")).to_be_visible()
    assert desktop.get_by_test_id("card-number").input_value() == "6011000990139424"  # kept, digits only
    pay_by_card(desktop, "6011000990139424")
    fields = landed(desktop, shop).form
    assert (fields["retcode"], fields["paytoken"], fields["cardkind"]) == ("1001", "", "")
    assert fields["retmsg"].startswith("Declined") and fields["hash"] == merchant_hash(fields)
    assert notifications(server) == [] and noti.received == []
    listed = requests.get(f"{server.url}/_emulator/global/payments?status=declined", timeout=30).json()["payments"]
    assert len(listed) == 1


def test_cancel_sends_the_browser_to_backurl(server, desktop, shop, noti):
    payment = request_payment(server, shop, noti, backurl=f"{shop.url}/checkout")
    desktop.goto(payment["online_url"])
    desktop.get_by_test_id("cancel-button").click()
    assert landed(desktop, shop, "/checkout").method == "GET"
    assert notifications(server) == []
    listed = requests.get(f"{server.url}/_emulator/global/payments?status=cancelled", timeout=30).json()["payments"]
    assert len(listed) == 1


def test_paypal_is_approved_on_its_test_page(server, desktop, shop, noti):
    payment = request_payment(server, shop, noti, pginfo="PayPalExpressCheckout")
    desktop.goto(payment["online_url"])
    expect(desktop.get_by_test_id("card-number")).to_have_count(0)
    expect(desktop.get_by_test_id("not-in-test-note")).to_have_count(0)
    screenshot(desktop, "global-paypal-web")
    desktop.get_by_test_id("approve-button").click()
    fields = landed(desktop, shop).form
    assert (fields["retcode"], fields["pginfo"], fields["cardkind"], fields["cardno"]) == \
        ("0", "PayPalExpressCheckout", "", "")
    assert_returned_as_notified(fields, notified(noti, fields["paytoken"]))


def test_the_woocommerce_form_posted_without_an_api_call_pays_through_the_gopay_page(server, desktop, shop, noti):
    """The plugin's checkout page: a hidden form, signed with the store's hash key, POSTed from the
    browser straight to Payment.aspx; no /api/payment/request. The gopay page's one inline script
    runs under the page's Content-Security-Policy (the fixture fails on any console error)."""
    form = {"storeid": STORE, "storeorderno": "WC-1001", "currency": "USD", "payamt": "10.00", "payerid": "7",
            "servicename": "Order 1001", "payeremail": "buyer@example.com", "returnurl": f"{shop.url}/return",
            "timestamp": "1700000000", "notiurl": noti.url, "pginfo": "PLCreditCard",
            "custom": "Kim Minji|010-0000-0000", "backurl": f"{shop.url}/checkout"}
    form["hash"] = merchant_hash(form)
    inputs = "".join(f'<input type="hidden" name="{k}" value="{v}">' for k, v in form.items())
    desktop.set_content(f'<form method="post" action="{server.url}/Web/Payment.aspx">{inputs}'
                        f'<button data-testid="place-order">Place order</button></form>')
    desktop.get_by_test_id("place-order").click()
    desktop.wait_for_url(f"{server.url}/Web/Payment.aspx?token=*")  # the gopay form, submitted by its script
    assert desktop.get_by_test_id("amount").inner_text() == "USD 10.00"
    pay_by_card(desktop, "3530111333300000")
    fields = landed(desktop, shop).form
    assert (fields["retcode"], fields["cardkind"], fields["payamt"], fields["custom"]) == \
        ("0", "JCB", "10.00", "Kim Minji|010-0000-0000")
    notification = notified(noti, fields["paytoken"])
    assert_returned_as_notified(fields, notification)
    assert notification["storeorderno"] == "WC-1001"


# --- the page through HTTP --------------------------------------------------------------------------

def page_pay(url: str, number: str, expiry: str = "12/39", cvv: str = "123") -> requests.Response:
    return requests.post(url, data={"action": "pay", "card_number": number, "card_expiry": expiry, "card_cvv": cvv},
                         timeout=30)


def returned(answer: requests.Response) -> dict:
    """The fields of the page's return form (what the browser would POST to returnurl)."""
    assert answer.status_code == 200, answer.text[-400:]
    [form] = [f for f in read_html(answer.text).forms if f["testid"] == "return-form"]
    return form["fields"]


def page_error(answer: requests.Response, status: int, code: int) -> str:
    assert answer.status_code == status, answer.text[-400:]
    assert answer.headers["Content-Type"].startswith("text/html")
    assert f'data-testid="page-error" data-status="{status}" data-code="{code}"' in answer.text
    return answer.text


@pytest.mark.parametrize("number, kind", [("4000000000000002", "VISA"), ("5100000000000008", "MASTER"),
                                          ("5500000000000004", "MASTER"), ("3530111333300000", "JCB"),
                                          ("340000000000009", "AMEX"), ("370000000000002", "AMEX")])
def test_each_test_card_prefix_pays_as_its_brand(server, shop, noti, number, kind):
    fields = returned(page_pay(request_payment(server, shop, noti)["online_url"], number))
    assert (fields["retcode"], fields["cardkind"], fields["cardno"][-4:]) == ("0", kind, number[-4:])


@pytest.mark.parametrize("number, expiry, retcode", [("6011000990139424", "12/39", "1001"),
                                                     ("3000000000000004", "12/39", "1001"),
                                                     ("4111111111111111", "01/20", "1002")])
def test_another_number_or_a_past_expiry_declines(server, shop, noti, number, expiry, retcode):
    fields = returned(page_pay(request_payment(server, shop, noti)["online_url"], number, expiry))
    assert (fields["retcode"], fields["paytoken"]) == (retcode, "")
    assert notifications(server) == []


def test_a_form_error_is_422_and_the_page_again(server, shop, noti):
    url = request_payment(server, shop, noti)["online_url"]
    answer = page_pay(url, "4111", "1/2", "12345")
    assert answer.status_code == 422
    assert {"error-card-number", "error-card-expiry", "error-card-cvv", "payment-form"} <= read_html(answer.text).testids
    assert returned(page_pay(url, "4111111111111111"))["retcode"] == "0"


def test_a_page_used_once_cannot_be_paid_again_and_an_unknown_token_is_404(server, shop, noti):
    url = request_payment(server, shop, noti)["online_url"]
    assert returned(page_pay(url, "4111111111111111"))["retcode"] == "0"
    page_error(page_pay(url, "4111111111111111"), 406, 995)
    page_error(requests.get(f"{server.url}/Web/Payment.aspx?token=123", timeout=30), 404, 996)
    page_error(requests.get(f"{server.url}/Smart/Payment.aspx", timeout=30), 400, 997)


def test_cancel_without_backurl_posts_the_cancel_to_returnurl(server, shop, noti):
    url = request_payment(server, shop, noti)["mobile_url"]
    fields = returned(requests.post(url, data={"action": "cancel"}, timeout=30))
    assert (fields["retcode"], fields["paytoken"]) == ("2001", "")


def test_a_method_paylettter_test_lacks_gets_the_approve_page_with_a_note(server, shop, noti):
    url = request_payment(server, shop, noti, pginfo="ICBAlipay")["online_url"]
    page = read_html(requests.get(url, timeout=30).text)
    assert {"not-in-test-note", "approve-button", "decline-button"} <= page.testids
    fields = returned(requests.post(url, data={"action": "decline"}, timeout=30))
    assert (fields["retcode"], fields["pginfo"]) == ("1003", "ICBAlipay")


def test_a_returnurl_that_is_not_http_is_refused_by_the_page(server, shop, noti):
    url = request_payment(server, shop, noti, returnurl="javascript:alert(1)")["online_url"]
    assert "returnurl" in page_error(requests.get(url, timeout=30), 406, 995)


def hosted_form(**overrides) -> dict:
    form = {"storeid": STORE, "storeorderno": "DJ-1", "currency": "USD", "payamt": "8.5", "payerid": "vpnuser",
            "servicename": "VPN 1 month", "payeremail": "buyer@example.com", "returnurl": "https://shop.example/r",
            "timestamp": "1700000000", "pginfo": "PLCreditCard", "recurringtype": "N", **overrides}
    form["hash"] = merchant_hash(form)
    return form


def test_a_django_shop_posts_the_form_from_its_server_without_notiurl(server, noti):
    """The Django shop: the form from its server, payamt a float's text, no notiurl; it rewrites
    what it gets back, looking for the gopay form, target='_self' and the submitting line."""
    answer = requests.post(f"{server.url}/Web/Payment.aspx", data=hosted_form(), timeout=30)
    assert answer.status_code == 200, answer.text
    assert "<script>document.gopay.submit();</script>" in answer.text
    assert "target='_self'" in answer.text and 'name="gopay"' in answer.text
    [gopay] = [f for f in read_html(answer.text).forms if f["testid"] == "gopay-form"]
    assert gopay["action"] == "Payment.aspx"
    page = f"{server.url}/Web/Payment.aspx?token={gopay['fields']['token']}"
    fields = returned(page_pay(page, "4111111111111111"))
    assert (fields["retcode"], fields["payamt"]) == ("0", "8.5") and fields["hash"] == merchant_hash(fields)
    assert notifications(server) == []  # no notiurl: nothing to notify


def test_the_hosted_form_with_a_wrong_hash_or_store_is_401_and_a_missing_field_406(server):
    url = f"{server.url}/Smart/Payment.aspx"
    tampered = {**hosted_form(), "payamt": "0.85"}
    page_error(requests.post(url, data=tampered, timeout=30), 401, 998)
    page_error(requests.post(url, data={**hosted_form(), "storeid": "nobody"}, timeout=30), 401, 998)
    form = hosted_form()
    del form["payeremail"]
    assert "payeremail is required" in page_error(requests.post(url, data=form, timeout=30), 406, 995)
    assert requests.get(f"{server.url}/_emulator/global/payments", timeout=30).json()["payments"] == []


def test_a_sandbox_has_its_own_page_and_its_own_store_key(server, noti):
    sandbox = requests.post(f"{server.url}/_emulator/sandboxes", json={}, timeout=30).json()
    base = f"{server.url}{sandbox['path']}"
    store, key = sandbox["global_store_id"], sandbox["global_key"]
    form = {**hosted_form(storeid=store), "notiurl": noti.url}
    form["hash"] = merchant_hash(form, key)
    page_error(requests.post(f"{server.url}/Web/Payment.aspx", data=form, timeout=30), 401, 998)  # not the root's
    answer = requests.post(f"{base}/Web/Payment.aspx", data=form, timeout=30)
    [gopay] = [f for f in read_html(answer.text).forms if f["testid"] == "gopay-form"]
    fields = returned(page_pay(f"{base}/Web/Payment.aspx?token={gopay['fields']['token']}", "4111111111111111"))
    assert fields["hash"] == merchant_hash(fields, key)
    assert notified(noti, fields["paytoken"])["hash"] == merchant_hash(fields, key)
    requests.delete(f"{server.url}/_emulator/sandboxes/{sandbox['id']}", timeout=30)


def test_a_hosted_form_whose_returnurl_is_not_http_leaves_no_payment_behind(server):
    answer = requests.post(f"{server.url}/Web/Payment.aspx", data=hosted_form(returnurl="javascript:alert(1)"),
                           timeout=30)
    assert "returnurl" in page_error(answer, 406, 995)
    assert "amount" in page_error(requests.post(f"{server.url}/Web/Payment.aspx", timeout=30,
                                                data=hosted_form(payamt="10.001")), 406, 995)
    assert requests.get(f"{server.url}/_emulator/global/payments", timeout=30).json()["payments"] == []
