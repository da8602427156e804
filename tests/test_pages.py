"""The hosted pages without a browser: every pgcode's page and its inputs, paying from the page
(the same fields, callback and state as the control API's approve), failures, the payer's cancel,
in-app returns, single use, expiry, escaping, languages, the receipt and the cash-receipt form."""
from __future__ import annotations

import re
import tomllib
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from payletter_emulator.engines import checkout
from payletter_emulator.domain.methods import lookup, table
from payletter_emulator.web.pages import texts

from .browser import payhash, read_html, wait_for_callback
from .conftest import SCHEMAS, freeze_at, stored

ROOT = Path(__file__).resolve().parent.parent
PGCODES = list(table())
# A well-formed value for each input a method's page may ask for: each is approved.
GOOD = {"card_number": "4579730000001235", "card_expiry": "12/39", "install_month": "00", "carrier": "SKT",
        "phone": "01012345678", "auth_code": "123456", "bank_code": "004", "pin": "1234-5678-9012-3456",
        "member_phone": "01012345678"}
TESTIDS = {"card_number": ["card-number"], "card_expiry": ["card-expiry"], "install_month": ["install-month-fixed"],
           "carrier": [f"carrier-{c.lower().replace('_', '-')}" for c in checkout.CARRIERS], "phone": ["phone"],
           "auth_code": ["auth-code", "send-code"], "bank_code": ["bank-code"], "pin": ["pin"],
           "member_phone": ["member-phone"]}
TEXT = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=40)
PAGE_STATUSES = {200, 303, 400, 404, 406, 409, 410, 422}


# --- helpers ---------------------------------------------------------------------------------

def request(api, **overrides) -> dict:
    response = api.post("/v1.0/payments/request", api.request_body(**overrides))
    assert response.status_code == 200, response.text
    return response.json()


def get(api, url: str, **params):
    response = api.http.get(url, params=params, timeout=30, allow_redirects=False)
    assert response.status_code in PAGE_STATUSES, (response.status_code, response.text[:500])
    assert response.headers["Content-Type"].startswith("text/html"), response.headers
    return response


def post(api, url: str, data: dict):
    response = api.http.post(url, data=data, timeout=30, allow_redirects=False)
    assert response.status_code in PAGE_STATUSES, (response.status_code, response.text[:500])
    if response.status_code != 303:
        assert response.headers["Content-Type"].startswith("text/html"), response.headers
    return response


def good_inputs(pgcode: str) -> dict:
    method = lookup(pgcode)
    values = {name: GOOD[name] for name in checkout.pages()[pgcode].inputs if name in GOOD}
    if method.options:
        values["option"] = method.options[-1].pgcode
    return values


def returned(response) -> tuple[str, dict]:
    """The return form of a result page: where it POSTs, and its fields."""
    assert response.status_code == 200, response.text[:500]
    page = read_html(response.text)
    form = next(f for f in page.forms if f["testid"] == "return-form")
    return form["action"], form["fields"]


def pay_on_page(api, url: str, inputs: dict, app_result: str = "approve"):
    """Send the page's form, and the app step when the method has one; the last answer."""
    response = post(api, url, {**inputs, "action": "pay"})
    if 'data-testid="app-step"' in response.text:
        carried = next(f for f in read_html(response.text).forms if f["testid"] == "app-form")["fields"]
        response = post(api, url, {**carried, "app_result": app_result})
    return response


def error_of(response) -> str:
    match = re.search(r'data-testid="page-error" data-error="([a-z_]+)"', response.text)
    assert match, response.text[:500]
    return match.group(1)


# --- every method's page ------------------------------------------------------------------------

@pytest.mark.parametrize("location", ["online", "mobile"])
@pytest.mark.parametrize("pgcode", PGCODES)
def test_every_method_has_a_page_with_its_inputs(api, pgcode, location):
    payment = request(api, pgcode=pgcode, amount=max(lookup(pgcode).minimum, 1000), product_name="상품 A")
    response = get(api, payment[f"{location}_url"])
    assert response.status_code == 200
    page = read_html(response.text)
    assert {"payment-page", "order-summary", "product-name", "amount", "merchant-name", "method-name", "pay-button",
            "cancel-button", "lang-switch", "payment-form"} <= page.testids
    for name in checkout.pages()[pgcode].inputs:
        expected = TESTIDS.get(name) or [f"option-{o.pgcode}" for o in lookup(pgcode).options]
        assert set(expected) <= page.testids, (name, expected)
    assert f'<body class="layout-{location} page-payment">' in response.text
    assert '<html lang="ko">' in response.text and "상품 A" in response.text and "1,000원" in response.text
    assert "http://" not in re.sub(r'(action|href)="[^"]*"', "", response.text)  # no external asset


@pytest.mark.parametrize("pgcode", PGCODES)
def test_paying_on_the_page_is_the_control_apis_approval(api, pgcode, callback_receiver):
    """Same request, paid once on the page and once through the control API: the same fields
    (names and the values that are not per-payment), the same callback, the same state."""
    amount = max(lookup(pgcode).minimum, 1000)
    inputs = good_inputs(pgcode)
    choices = {name: inputs[name].replace("-", "") for name in checkout.CHOICES if name in inputs}
    page_payment, api_payment = request(api, pgcode=pgcode, amount=amount), request(api, pgcode=pgcode, amount=amount)
    target, fields = returned(pay_on_page(api, page_payment["online_url"], inputs))
    expected = api.control(f"/payments/{api_payment['token']}/approve", choices)
    assert target == expected["return_url"] == "https://merchant.example/result"
    assert set(fields) == set(expected["fields"])
    per_payment = {"tid", "cid", "transaction_date", "payhash", "pay_info", "card_info", "account_no", "issue_tid"}
    assert {k: v for k, v in fields.items() if k not in per_payment} == \
        {k: v for k, v in expected["fields"].items() if k not in per_payment}
    assert SCHEMAS.errors("payloads/return_success", fields) == []
    page_state, api_state = stored(api, fields["tid"]), stored(api, expected["fields"]["tid"])
    assert page_state["status"] == api_state["status"] in ("approved", "awaiting_deposit")
    if "payhash" in fields:
        assert fields["payhash"] == payhash(fields["user_id"], fields["amount"], fields["tid"])
        page_callback = wait_for_callback(callback_receiver, fields["tid"])
        api_callback = wait_for_callback(callback_receiver, expected["fields"]["tid"])
        assert set(page_callback) == set(api_callback)
        assert page_callback["pgcode"] == fields["pgcode"]


def test_installments_are_offered_from_fifty_thousand_krw(api):
    below = get(api, request(api, amount=49999)["online_url"])
    assert 'data-testid="install-month-fixed"' in below.text and 'name="install_month"' not in below.text
    page = get(api, request(api, amount=50000)["online_url"])
    months = re.findall(r'<option value="([0-9]{2})"', page.text)
    assert months == ["00", *(f"{m:02d}" for m in range(2, 13))]
    _, fields = returned(pay_on_page(api, request(api, amount=50000)["online_url"],
                                     {**good_inputs("creditcard"), "install_month": "3"}))
    assert fields["install_month"] == "03"
    # Asking for installments below 50,000 KRW anyway is refused on the page.
    url = request(api, amount=49999)["online_url"]
    refused = post(api, url, {**good_inputs("creditcard"), "install_month": "03", "action": "pay"})
    assert refused.status_code == 422 and 'data-testid="error-install-month"' in refused.text


def test_page_entered_then_paid_in_payments_status(api):
    payment = request(api, order_no="ORD-status")
    status = lambda: api.post("/v1.0/payments/status", {"client_id": "pay_test", "order_no": "ORD-status"}).json()  # noqa: E731
    assert status()["status_code"] == 1
    get(api, payment["online_url"])
    assert status()["status_code"] == 2 and stored(api, payment["token"])["status"] == "page_entered"
    returned(pay_on_page(api, payment["online_url"], good_inputs("creditcard")))
    assert status()["status_code"] == 5


def test_verification_only_registers_a_billkey(api, callback_receiver):
    payment = request(api, amount=0, autopay_flag="Y")
    page = get(api, payment["online_url"])
    assert 'data-testid="verification-note"' in page.text
    target, fields = returned(pay_on_page(api, payment["online_url"], good_inputs("creditcard")))
    assert SCHEMAS.errors("payloads/return_verification", fields) == []
    assert fields["card_info"] == "457973******1235" and fields["billkey"].startswith("tbpay_test")


# --- failures ---------------------------------------------------------------------------------

def declining() -> list[tuple[str, str, str, checkout.Failure]]:
    tests = checkout.test_inputs()
    cases = [("creditcard", "card_number", number, failure) for number, failure in tests.cards.items()]
    cases += [("mobile", "auth_code", code, failure) for code, failure in tests.auth_codes.items()]
    cases += [("phonebill", "auth_code", code, failure) for code, failure in tests.auth_codes.items()]
    cases += [(pgcode, "pin", pin, failure) for pgcode in ("culture", "tmoney") for pin, failure in tests.pins.items()]
    return cases


@pytest.mark.parametrize("pgcode,name,value,failure", declining())
def test_declining_test_inputs_fail_the_payment(api, pgcode, name, value, failure):
    payment = request(api, pgcode=pgcode, amount=1000)
    target, fields = returned(pay_on_page(api, payment["online_url"], {**good_inputs(pgcode), name: value}))
    assert target == "https://merchant.example/result"
    assert SCHEMAS.errors("payloads/return_failure", fields) == []
    assert (fields["code"], fields["message"]) == (failure.code, failure.message)
    assert stored(api, payment["token"])["status"] == "failed"
    assert api.control("/callbacks", method="GET")["callbacks"] == []


@pytest.mark.parametrize("pgcode", [p for p in PGCODES if checkout.pages()[p].app_step])
def test_declining_in_the_app_fails_the_payment(api, pgcode):
    payment = request(api, pgcode=pgcode, amount=1000)
    target, fields = returned(pay_on_page(api, payment["mobile_url"], good_inputs(pgcode), app_result="decline"))
    assert (fields["code"], fields["message"]) == (checkout.test_inputs().app_decline.code,
                                                   checkout.test_inputs().app_decline.message)
    assert stored(api, payment["token"])["status"] == "failed"


@pytest.mark.parametrize("name,value,error", [
    ("card_number", "4579730000001234", "card-number"),  # fails the Luhn check
    ("card_number", "4579", "card-number"),
    ("card_expiry", "13/30", "card-expiry"),
    ("card_expiry", "01/20", "card-expiry"),  # expired
])
def test_wrong_inputs_come_back_with_the_reason(api, name, value, error):
    payment = request(api)
    response = post(api, payment["online_url"], {**good_inputs("creditcard"), name: value, "action": "pay"})
    assert response.status_code == 422
    assert f'data-testid="error-{error}"' in response.text and 'data-testid="form-errors"' in response.text
    assert f'value="{value}"' in response.text or name == "card_number"  # typed values are kept
    assert stored(api, payment["token"])["status"] == "created"


@pytest.mark.parametrize("pgcode,name,value", [
    ("mobile", "carrier", "SKB"), ("mobile", "phone", "0212345678"), ("mobile", "auth_code", "12345"),
    ("banktransfer", "bank_code", "999"), ("culture", "pin", "12ab"), ("naverpay", "option", "smilecash"),
    ("ssgpay", "member_phone", "12345"), ("phonebill", "phone", "12345")])
def test_each_inputs_rule(api, pgcode, name, value):
    payment = request(api, pgcode=pgcode, amount=1000)
    response = post(api, payment["online_url"], {**good_inputs(pgcode), name: value, "action": "pay"})
    assert response.status_code == 422
    assert f'data-testid="error-{name.replace("_", "-")}"' in response.text


# --- the payer's cancel, in-app returns, where the browser may be sent ------------------------------

def test_cancel_redirects_to_cancel_url(api):
    payment = request(api, cancel_url="https://merchant.example/cancel?order=7")
    response = post(api, payment["online_url"], {"action": "cancel"})
    assert response.status_code == 303 and response.headers["Location"] == "https://merchant.example/cancel?order=7"
    assert stored(api, payment["token"])["status"] == "abandoned"


@pytest.mark.parametrize("pgcode", ["naverpay", "samsungpay", "lpay"])
def test_cancel_shows_a_page_for_methods_that_do_not_redirect(api, pgcode):
    payment = request(api, pgcode=pgcode)
    response = post(api, payment["mobile_url"], {"action": "cancel"})
    assert response.status_code == 200 and 'data-testid="page-cancelled"' in response.text
    assert stored(api, payment["token"])["status"] == "abandoned"


def test_cancel_without_a_cancel_url_shows_a_page(api):
    payment = request(api, cancel_url=None)
    response = post(api, payment["online_url"], {"action": "cancel"})
    assert response.status_code == 200 and 'data-testid="page-cancelled"' in response.text


@pytest.mark.parametrize("pgcode", ["creditcard", "banktransfer"])
def test_in_app_isp_and_account_transfer_go_to_the_app_urls(api, pgcode):
    apps = {"inapp_flag": "Y", "app_return_url": "myshop://ISPSuccess", "app_cancel_url": "myshop://ISPCancel"}
    payment = request(api, pgcode=pgcode, amount=1000, **apps)
    target, fields = returned(pay_on_page(api, payment["mobile_url"], good_inputs(pgcode)))
    assert target == "myshop://ISPSuccess" and fields["code"] == "0"
    cancelled = request(api, pgcode=pgcode, amount=1000, **apps)
    response = post(api, cancelled["mobile_url"], {"action": "cancel"})
    assert response.status_code == 303 and response.headers["Location"] == "myshop://ISPCancel"


def test_in_app_other_methods_keep_return_url(api):
    apps = {"inapp_flag": "Y", "app_return_url": "myshop://ISPSuccess", "app_cancel_url": "myshop://ISPCancel"}
    target, _ = returned(pay_on_page(api, request(api, pgcode="kakaopay", **apps)["mobile_url"], {}))
    assert target == "https://merchant.example/result"
    # Without inapp_flag, the app URLs are not used.
    target, _ = returned(pay_on_page(api, request(api, app_return_url="myshop://x")["online_url"],
                                     good_inputs("creditcard")))
    assert target == "https://merchant.example/result"


@pytest.mark.parametrize("url", ["javascript:alert(1)", " JavaScript:alert(1)", "java\tscript:alert(1)",
                                 "data:text/html,<script>alert(1)</script>", "/relative/result", "http:/x"])
def test_a_return_url_a_browser_cannot_be_sent_to_is_refused_before_paying(api, url):
    payment = request(api, return_url=url)
    response = get(api, payment["online_url"])
    assert response.status_code == 400 and error_of(response) == "page_url_unusable"
    response = post(api, payment["online_url"], {**good_inputs("creditcard"), "action": "pay"})
    assert response.status_code == 400
    assert stored(api, payment["token"])["status"] == "created"


def test_an_unusable_cancel_url_gets_the_cancelled_page(api):
    payment = request(api, cancel_url="javascript:alert(1)")
    response = post(api, payment["online_url"], {"action": "cancel"})
    assert response.status_code == 200 and 'data-testid="page-cancelled"' in response.text


# --- single use, unknown and expired tokens, bad addresses --------------------------------------------

def test_a_token_is_used_once(api):
    payment = request(api)
    returned(pay_on_page(api, payment["online_url"], good_inputs("creditcard")))
    for response in (get(api, payment["online_url"]), get(api, payment["mobile_url"]),
                     post(api, payment["online_url"], {**good_inputs("creditcard"), "action": "pay"}),
                     post(api, payment["online_url"], {"action": "cancel"})):
        assert response.status_code == 409 and error_of(response) == "payment_not_pending"
    assert len(api.control("/payments", method="GET")["payments"]) == 1


@pytest.mark.parametrize("query,status,kind", [
    ("location=online&token=100000000000000001", 404, "token_unknown"),
    ("location=online&token=12ab", 404, "token_unknown"),
    ("location=online&token=" + "9" * 19, 404, "token_unknown"),
    ("location=online&token=" + "9" * 30, 404, "token_unknown"),
    ("location=online", 404, "token_unknown"),
    ("location=tablet&token=1", 400, "page_request_invalid"),
    ("", 404, "token_unknown"),
])
def test_unknown_tokens_and_bad_addresses_get_a_clear_page(api, query, status, kind):
    response = get(api, f"{api.url}/pgsvc/hub.asp?{query}")
    assert response.status_code == status and error_of(response) == kind
    assert "Traceback" not in response.text


def test_an_autopay_token_has_no_page(api):
    approved = api.pay(autopay_flag="Y")
    billkey_payment = api.post("/v1.0/payments/autopay", {
        "pgcode": "creditcard", "client_id": "pay_test", "user_id": "test_user_id", "amount": 1000,
        "product_name": "p", "billkey": approved["billkey"], "ip_addr": "127.0.0.1"}).json()
    token = stored(api, billkey_payment["tid"])["token"]
    response = get(api, f"{api.url}/pgsvc/hub.asp?location=online&token={token}")
    assert response.status_code == 404 and error_of(response) == "token_unknown"


def test_the_page_expires_thirty_minutes_after_the_request(api):
    freeze_at(api, "2026-11-29T12:00:00+09:00")
    payment, late = request(api), request(api)
    api.advance(seconds=29 * 60)
    assert get(api, payment["online_url"]).status_code == 200
    api.advance(seconds=60 + 1)
    for response in (get(api, late["online_url"]),
                     post(api, payment["online_url"], {**good_inputs("creditcard"), "action": "pay"})):
        assert response.status_code == 410 and error_of(response) == "page_expired"
        assert "2026-11-29 12:30:00" in response.text
    assert stored(api, payment["token"])["status"] == "page_entered"


def test_page_paths_match_in_any_case(api):
    payment = request(api)
    token = payment["token"]
    for path in ("/PGSVC/HUB.ASP", "/PgSvc/Hub.asp", "/pgsvc/hub.asp/"):
        assert get(api, f"{api.url}{path}?location=online&token={token}").status_code == 200
    assert get(api, f"{api.url}/pgsvc/hub.asp?LOCATION=mobile&Token={token}").status_code == 200


def test_pages_carry_a_content_security_policy_and_are_not_cached(api):
    for response in (get(api, request(api)["online_url"]), get(api, f"{api.url}/pgsvc/hub.asp?token=1")):
        assert "default-src 'self'" in response.headers["Content-Security-Policy"]
        assert response.headers["Cache-Control"] == "no-store"
        assert response.headers["X-Content-Type-Options"] == "nosniff"


def test_a_body_too_large_gets_a_page(api):
    response = api.http.post(request(api)["online_url"], data={"card_number": "1" * (1024 * 1024 + 10)}, timeout=30)
    assert response.status_code == 413 and 'data-testid="page-error"' in response.text


def test_other_methods_on_the_page_get_the_gateways_envelope(api):
    response = api.http.put(request(api)["online_url"], timeout=30)
    assert response.status_code == 405 and response.json()["code"] == 995


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(form=st.dictionaries(st.sampled_from(["action", "card_number", "card_expiry", "install_month", "app_result",
                                             "cash_receipt_type", "cash_receipt_id", "x"]),
                            TEXT, max_size=6),
       query=st.dictionaries(st.sampled_from(["location", "token", "lang", "LANG"]), TEXT, max_size=4))
def test_any_form_or_query_gets_a_page_never_a_500(api, form, query):
    url = request(api, amount=60000)["online_url"]
    post(api, url, form)
    get(api, f"{api.url}/pgsvc/hub.asp", **query)
    get(api, f"{api.url}/PGSVC/AllTheGate/Receipt_All.asp", **{"id": form.get("x", ""), **query})
    post(api, f"{api.url}/PGSVC/Receipt/ReceiptForm.asp?id={form.get('x', '')}&token={query.get('token', '')}", form)


# --- what the merchant sent is escaped --------------------------------------------------------------

def test_merchant_values_are_escaped_and_come_back_unchanged(api):
    nasty = {"user_name": '<svg onload=alert()>', "custom_parameter": '"><script>alert(1)</script>&amp;\'',
             "service_name": "<b>shop</b>", "order_no": "A&B<1>", "product_name": "Tom & Jerry \"DVD\" 'x'"}
    payment = request(api, **nasty)
    page = get(api, payment["online_url"])
    for raw in ("<svg onload", "<script>alert", "<b>shop</b>", "A&B<1>"):
        assert raw not in page.text
    assert "&lt;b&gt;shop&lt;/b&gt;" in page.text and "Tom &amp; Jerry &#34;DVD&#34; &#39;x&#39;" in page.text
    result = pay_on_page(api, payment["online_url"], good_inputs("creditcard"))
    assert "<script>alert" not in result.text
    _, fields = returned(result)
    for name, value in nasty.items():
        assert fields[name] == value, name


# --- languages ------------------------------------------------------------------------------

def test_english_on_request(api):
    payment = request(api, pgcode="mobile", amount=2500)
    page = get(api, payment["online_url"], lang="en")
    assert '<html lang="en">' in page.text and "KRW 2,500" in page.text and "Mobile number" in page.text
    assert 'hreflang="ko"' in page.text and "lang=ko" in page.text
    error = get(api, f"{api.url}/pgsvc/hub.asp?location=online&token=1&lang=en")
    assert "Payment not found" in error.text


def test_both_languages_say_everything():
    text = tomllib.loads((ROOT / "emulator" / "web" / "page_text.toml").read_text("utf-8"))

    def keys(table, prefix=""):
        return {f"{prefix}{k}" for k, v in table.items() if not isinstance(v, dict)} | {
            key for k, v in table.items() if isinstance(v, dict) for key in keys(v, f"{prefix}{k}.")}

    assert keys(text["ko"]) == keys(text["en"])
    for lang in ("ko", "en"):  # each method's and option's label, from its row of the method table
        assert set(PGCODES) <= set(texts()[lang]["methods"])
        assert {o.pgcode for m in table().values() for o in m.options} <= set(texts()[lang]["methods"])
    assert set(text["ko"]["carriers"]) == set(checkout.CARRIERS)


def test_the_readme_lists_every_declining_test_input():
    readme = (ROOT / "README.md").read_text("utf-8")
    tests = checkout.test_inputs()
    for group in (tests.cards, tests.auth_codes, tests.pins):
        for value, failure in group.items():
            assert re.search(rf"`{value}`.*`{failure.code}`", readme), value
    assert f"`{tests.app_decline.code}`" in readme


# --- the cash receipt on the payment page (receipt_flag=Y) -------------------------------------------

@pytest.mark.parametrize("usage,number,issue_type,sid", [
    ("01", "010-9876-5432", "1", "01098765432"), ("02", "123-45-67890", "1", "1234567890"),
    ("06", "", "2", checkout.SELF_ISSUED_SID)])
def test_receipt_flag_asks_for_a_cash_receipt(api, callback_receiver, usage, number, issue_type, sid):
    payment = request(api, pgcode="banktransfer", amount=11000, receipt_flag="Y", order_no="ORD-cash")
    page = get(api, payment["online_url"])
    assert {"cash-receipt", "cash-receipt-type-01", "cash-receipt-type-02", "cash-receipt-type-06",
            "cash-receipt-id"} <= read_html(page.text).testids
    inputs = {**good_inputs("banktransfer"), "cash_receipt_type": usage, "cash_receipt_id": number}
    _, fields = returned(pay_on_page(api, payment["online_url"], inputs))
    assert SCHEMAS.errors("payloads/return_success", fields) == []
    assert (fields["cash_receipt_type"], fields["cash_receipt_issue_type"], fields["cash_receipt_payer_sid"],
            fields["cash_receipt_code"], fields["cash_receipt_deal_no"]) == (usage, issue_type, sid, "0", "ORD-cash")
    assert re.fullmatch(r"[0-9]{9}", fields["cash_receipt_cid"])
    callback = wait_for_callback(callback_receiver, fields["tid"])
    assert callback["cash_receipt"] == {"code": "0", "message": fields["cash_receipt_message"],
                                        "cid": fields["cash_receipt_cid"], "deal_no": "ORD-cash",
                                        "issue_type": issue_type, "payer_sid": sid, "type": usage}
    receipts = stored(api, fields["tid"])["cash_receipts"]
    assert [(r["status"], r["details"]) for r in receipts] == [("issued", callback["cash_receipt"])]


@pytest.mark.parametrize("usage,number", [("01", "1234"), ("02", "12345"), ("03", "01012345678"), ("", "")])
def test_a_wrong_cash_receipt_entry_comes_back(api, usage, number):
    payment = request(api, pgcode="culture", amount=1000, receipt_flag="Y")
    response = post(api, payment["online_url"], {**good_inputs("culture"), "cash_receipt_type": usage,
                                                 "cash_receipt_id": number, "action": "pay"})
    assert response.status_code == 422
    assert 'data-testid="error-cash-receipt-' in response.text


@pytest.mark.parametrize("pgcode", ["creditcard", "mobile", "kakaopay", "teencash"])
def test_no_cash_receipt_on_other_methods(api, pgcode):
    payment = request(api, pgcode=pgcode, amount=1000, receipt_flag="Y")
    assert 'data-testid="cash-receipt"' not in get(api, payment["online_url"]).text
    _, fields = returned(pay_on_page(api, payment["online_url"], good_inputs(pgcode)))
    assert not [name for name in fields if name.startswith("cash_receipt")]


def test_the_control_apis_approval_carries_no_page_cash_receipt(api):
    fields = api.pay(pgcode="banktransfer", receipt_flag="Y")
    assert not [name for name in fields if name.startswith("cash_receipt")]


# --- the receipt page -----------------------------------------------------------------------

def receipt_url(api, fields: dict) -> str:
    day = fields["transaction_date"][:10].replace("-", "")
    response = api.get(f"/v1.0/receipt/info/{fields['tid']}",
                       {"client_id": "pay_test", "amount": fields["amount"], "transaction_date": day})
    assert response.status_code == 200, response.text
    return response.json()["receipt_url"]


def test_the_receipt_shows_the_payment_and_its_cancellations(api):
    fields = api.pay({"card_number": "4579730000001235", "install_month": "06"}, amount=60000,
                     product_name="영수증 & \"상품\"")
    url = receipt_url(api, fields)
    page = get(api, url)
    assert page.status_code == 200
    assert {"receipt", "receipt-amount", "receipt-status", "receipt-tid", "receipt-cid", "receipt-card",
            "print-button"} <= read_html(page.text).testids
    assert "60,000원" in page.text and fields["tid"] in page.text and fields["cid"] in page.text
    assert "457973******1235" in page.text and "6개월" in page.text and "영수증 &amp; &#34;상품&#34;" in page.text
    assert 'data-status="approved"' in page.text
    api.cancel(fields, 20000, partial=True)
    page = get(api, url)
    assert 'data-status="partial"' in page.text and page.text.count('data-testid="receipt-cancellation"') == 1
    assert "40,000원" in page.text
    api.cancel(fields, 40000)
    page = get(api, url, lang="en")
    assert 'data-status="cancelled"' in page.text and "Card sales slip" in page.text
    assert page.text.count('data-testid="receipt-cancellation"') == 2


def test_the_receipt_path_in_any_case_and_a_forged_id(api):
    fields = api.pay(pgcode="banktransfer", amount=5000)
    url = receipt_url(api, fields)
    query = urlsplit(url).query
    assert get(api, f"{api.url}/pgsvc/allthegate/receipt_all.asp?{query}").status_code == 200
    forged = "0" * 16 + "|001|4|" + fields["tid"].encode().hex()
    for bad in (forged, "", "zz", "||||", "1|2|3|" + "ff" * 4):
        response = get(api, f"{api.url}/PGSVC/AllTheGate/Receipt_All.asp", id=bad)
        assert response.status_code == 404 and error_of(response) == "receipt_unknown"


# --- the cash-receipt form of cashreceipt/issue ---------------------------------------------------------

def cash_receipt_url(api, tid: str, return_url: str = "https://merchant.example/receipt-done", kind: str = "0"):
    response = api.post(f"/v1.0/cashreceipt/issue/{tid}",
                        {"client_id": "pay_test", "type": kind, "tax_flag": "N", "return_url": return_url})
    assert response.status_code == 200, response.text
    return response.json()["receipt_url"]


def test_the_cash_receipt_form_issues_the_receipt_and_returns(api):
    fields = api.pay(pgcode="banktransfer", amount=22000, order_no="ORD-cr")
    url = cash_receipt_url(api, fields["tid"])
    form = get(api, url)
    assert form.status_code == 200
    assert {"cash-receipt-form", "cash-receipt-type-01", "cash-receipt-type-02", "cash-receipt-id",
            "cash-receipt-submit"} <= read_html(form.text).testids
    assert "22,000원" in form.text
    result = post(api, url, {"cash_receipt_type": "02", "cash_receipt_id": "1234567890"})
    target, sent = returned(result)
    assert target == "https://merchant.example/receipt-done"
    assert sent["tid"] == fields["tid"]
    assert (sent["cash_receipt_code"], sent["cash_receipt_type"], sent["cash_receipt_issue_type"],
            sent["cash_receipt_payer_sid"], sent["cash_receipt_deal_no"]) == ("0", "02", "1", "1234567890", "ORD-cr")
    view = stored(api, fields["tid"])
    assert [r["status"] for r in view["cash_receipts"]] == ["issued"]
    assert view["details"]["cash_receipt"]["cid"] == sent["cash_receipt_cid"]
    # Used once.
    again = post(api, url, {"cash_receipt_type": "01", "cash_receipt_id": "01012345678"})
    assert again.status_code == 409 and error_of(again) == "cash_receipt_form_used"
    assert get(api, url).status_code == 409
    # The receipt page shows it too.
    assert 'data-testid="receipt-cash-receipt"' in get(api, receipt_url(api, fields)).text


def test_the_cash_receipt_form_uses_the_requests_return_url_and_type(api):
    fields = api.pay(pgcode="virtualaccount", amount=3000)
    api.control(f"/virtual-accounts/{fields['tid']}/deposit", {})
    url = cash_receipt_url(api, fields["tid"], kind="2")
    tampered = url.replace("returnurl=https://merchant.example/receipt-done", "returnurl=https://evil.example/")
    tampered = tampered.replace("&type=2&", "&type=1&")
    form = get(api, tampered)
    assert 'data-testid="cash-receipt-type-02"' in form.text and 'data-testid="cash-receipt-type-01"' not in form.text
    refused = post(api, tampered, {"cash_receipt_type": "01", "cash_receipt_id": "01012345678"})
    assert refused.status_code == 422
    target, sent = returned(post(api, tampered, {"cash_receipt_type": "02", "cash_receipt_id": "01012345678"}))
    assert target == "https://merchant.example/receipt-done" and sent["cash_receipt_type"] == "02"


def test_the_cash_receipt_form_refuses_what_it_cannot_issue(api):
    fields = api.pay(pgcode="banktransfer", amount=4000)
    url = cash_receipt_url(api, fields["tid"])
    other = api.pay(pgcode="banktransfer", amount=4000)
    wrong_tid = url.replace(f"id={fields['tid']}", f"id={other['tid']}")
    assert error_of(get(api, wrong_tid)) == "cash_receipt_form_unknown"
    assert error_of(get(api, re.sub(r"token=[0-9]+", "token=1", url))) == "cash_receipt_form_unknown"
    assert error_of(get(api, re.sub(r"token=[0-9]+", "token=x", url))) == "token_unknown"
    api.cancel(fields)
    response = get(api, url)
    assert response.status_code == 406 and error_of(response) == "cash_receipt_not_available"


# --- scenario rules reach the page's payer too ----------------------------------------------------

@pytest.fixture
def scenario(api):
    """Put a scenario in force for one test (a reset keeps scenarios, so it is taken away after)."""
    def install(*rules):
        answer = api.http.put(api.url + "/_emulator/scenario", json={"version": 1, "name": "pages", "rules": list(rules)},
                              timeout=30)
        assert answer.status_code == 200, answer.text

    yield install
    api.http.delete(api.url + "/_emulator/scenario", timeout=30)


def test_a_scenarios_payer_rules_decide_on_the_page(api, scenario):
    scenario({"name": "payer gives up", "when": {"pgcode": ["kakaopay"]}, "then": {"abandon": {}}},
             {"name": "card refused", "when": {"card_number": "5361480000001236"},
              "then": {"decline": {"code": "6099", "message": "scenario decline"}}},
             {"name": "bank refused", "when": {"pgcode": ["banktransfer"]},
              "then": {"decline": {"code": "6098", "message": "bank says no"}}})
    payment = request(api, pgcode="kakaopay", cancel_url="https://merchant.example/cancel")
    response = pay_on_page(api, payment["online_url"], {})
    assert response.status_code == 303 and response.headers["Location"] == "https://merchant.example/cancel"
    assert stored(api, payment["token"])["status"] == "abandoned"
    payment = request(api)
    _, fields = returned(pay_on_page(api, payment["online_url"], {**good_inputs("creditcard"),
                                                                  "card_number": "5361480000001236"}))
    assert (fields["code"], fields["message"]) == ("6099", "scenario decline")
    payment = request(api, pgcode="banktransfer", receipt_flag="Y")
    _, fields = returned(pay_on_page(api, payment["online_url"], {**good_inputs("banktransfer"),
                                                                  "cash_receipt_type": "06"}))
    assert fields["code"] == "6098" and stored(api, payment["token"])["cash_receipts"] == []


def parity_cases() -> list[tuple[str, str, str]]:
    """Every typed test input of domain/test_inputs.toml (read here, not through checkout), with
    each method whose page asks for that input."""
    raw = tomllib.loads((ROOT / "emulator" / "domain" / "test_inputs.toml").read_text("utf-8"))
    names = {"cards": "card_number", "auth_codes": "auth_code", "pins": "pin"}
    assert set(raw) - set(names) == {"app_decline"}  # a new group of typed inputs needs a row here
    return [(pgcode, names[group], value) for group, values in raw.items() if group in names for value in values
            for pgcode in PGCODES if names[group] in checkout.pages()[pgcode].inputs]


@pytest.mark.parametrize("pgcode,name,value", parity_cases())
def test_a_declining_test_input_declines_the_same_way_on_the_page_and_through_the_api(api, pgcode, name, value):
    amount = max(lookup(pgcode).minimum, 1000)
    page_payment, api_payment = request(api, pgcode=pgcode, amount=amount), request(api, pgcode=pgcode, amount=amount)
    _, page_fields = returned(pay_on_page(api, page_payment["online_url"], {**good_inputs(pgcode), name: value}))
    api_fields = api.control(f"/payments/{api_payment['token']}/approve", {name: value})["fields"]
    assert page_fields["code"] != "0"
    assert page_fields == api_fields
    assert stored(api, page_payment["token"])["status"] == stored(api, api_payment["token"])["status"] == "failed"
    assert api.control("/callbacks", method="GET")["callbacks"] == []


def test_a_test_input_of_another_method_is_not_a_decline_through_the_api(api):
    payment = request(api, pgcode="culture", amount=1000)
    fields = api.control(f"/payments/{payment['token']}/approve", {"card_number": "4000000000009995"})["fields"]
    assert fields["code"] == "0"
