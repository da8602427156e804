"""POST /v1.0/payments/request: the reference's example, the response, and every refusal."""
from __future__ import annotations

import pytest

from payletter_emulator.domain.methods import table

from .conftest import PAYMENT_KEY

REFERENCE_EXAMPLE = """{
"pgcode" : "mobile",
"user_id":"test_user_id",
"user_name":"tester",
"service_name":"payletter",
"client_id":"pay_test",
"order_no":"1234567890",
"amount":1000,
"product_name":"test product",
"email_flag":"Y",
"email_addr":"payletter@payletter.com",
"autopay_flag":"N",
"receipt_flag":"Y",
"custom_parameter":"this is custom parameter",
"return_url":"https://testpg.payletter.com/result",
"callback_url":"https://testpg.payletter.com/callback",
"cancel_url":"https://testpg.payletter.com/cancel"
}"""


def test_reference_example_verbatim(api, schemas):
    response = api.http.post(api.url + "/v1.0/payments/request/", data=REFERENCE_EXAMPLE.encode(),
                             headers={"Authorization": f"PLKEY {PAYMENT_KEY}", "Content-Type": "application/json"})
    assert response.status_code == 200
    body = response.json()
    assert schemas.errors("responses/payments_request", body) == []
    assert list(body) == ["token", "online_url", "mobile_url"]
    token = body["token"]
    assert isinstance(token, int) and len(str(token)) == 18
    assert body["online_url"] == f"{api.url}/pgsvc/hub.asp?location=online&token={token}"
    assert body["mobile_url"] == f"{api.url}/pgsvc/hub.asp?location=mobile&token={token}"


def test_tokens_are_epoch_millis_and_a_counter(api):
    api.control("/clock", {"freeze": True})
    api.control("/clock", {"set": "2026-11-29T12:00:00+09:00"})
    first, second = api.request_payment(), api.request_payment()
    millis = "1795921200000"  # 2026-11-29 03:00:00 UTC
    assert str(first).startswith(millis) and str(second).startswith(millis)
    assert second == first + 1


def test_stored_as_pending_with_tax_computed(api):
    token = api.request_payment(amount=1001, taxfree_amount=100)
    payment = api.control(f"/payments/{token}", method="GET")
    assert payment["status"] == "created"
    assert payment["tax_amount"] == 82  # ceil((1001 - 100) / 11) = ceil(81.9)
    assert payment["tid"] is None


def refused(api, **overrides):
    response = api.post("/v1.0/payments/request", api.request_body(**overrides))
    assert response.status_code == 406, response.text
    return response.json()


@pytest.mark.parametrize("missing", ["pgcode", "user_id", "amount", "product_name", "return_url", "callback_url"])
def test_missing_necessary_field(api, missing):
    assert refused(api, **{missing: None}) == {"code": 2001, "message": f"{missing} is required"}


def test_missing_client_id_is_refused_in_both_modes(api, strict_api):
    """The PLKEY does not stand in for client_id: the reference says Necessary, and no real client
    was seen leaving it out (docs/fidelity.md entry 5)."""
    for side in (api, strict_api):
        assert refused(side, client_id=None) == {"code": 2001, "message": "client_id is required"}


FORBIDDEN = ("product_name must not contain <, > or a control character "
             "(U+0000 to U+001F, U+007F to U+009F: CR, LF, tab, ...)")


@pytest.mark.parametrize("field,value,code,message", [
    ("amount", "12a", 2002, "amount must be a whole number of KRW, got \"12a\""),
    ("amount", 1000.5, 2002, "amount must be a whole number of KRW, got 1000.5"),
    ("amount", -100, 2005, "amount must not be negative, got -100"),
    ("amount", 10**20, 2011, "amount must be at most 99999999999, got 100000000000000000000"),
    ("taxfree_amount", "100000000000", 2011, "taxfree_amount must be at most 99999999999, got 100000000000"),
    ("product_name", "x" * 101, 2003, "product_name is longer than 100 characters"),
    ("user_id", "u" * 51, 2003, "user_id is longer than 50 characters"),
    ("product_name", "a <b>", 2008, FORBIDDEN),
    ("product_name", "line\nbreak", 2008, FORBIDDEN),
    ("email_flag", "yes", 2004, "email_flag must be one of 'Y', 'N'"),
    ("pgcode", "visa", 3001, "pgcode 'visa' is not a payment method code of the appendix"),
    ("user_id", ["a"], 2002, "user_id must be a string, got [\"a\"]"),
])
def test_field_rules(api, field, value, code, message):
    assert refused(api, **{field: value}) == {"code": code, "message": message}


@pytest.mark.parametrize("control", ["\t", "\x00", "\x1b", "\x7f", "\x85", "\x9f", "\r"])
def test_every_control_character_is_refused_in_product_name(api, control):
    """The reference: "Not allowed to use control character such as <, >, carriage return"."""
    assert refused(api, product_name=f"cup{control}cake") == {"code": 2008, "message": FORBIDDEN}


def test_product_name_keeps_what_is_not_a_control_character(api):
    name = "한글 café ™ \u00a0 \u2028 !\"#$%&'()*+,-./:;=?@[\\]^_`{|}~"
    assert api.post("/v1.0/payments/request", api.request_body(product_name=name)).status_code == 200


def test_sizes_count_characters_not_bytes(api):
    assert api.post("/v1.0/payments/request", api.request_body(product_name="가" * 100)).status_code == 200
    assert refused(api, product_name="가" * 101)["code"] == 2003


@pytest.mark.parametrize("pgcode", sorted(table()))
def test_minimum_amount_of_every_method(api, pgcode):
    method = table()[pgcode]
    extra = {"service_name": "payletter"}
    if method.minimum > 1:
        below = refused(api, pgcode=pgcode, amount=method.minimum - 1, **extra)
        assert below["code"] == 3002
        assert f"minimum approval amount of {method.minimum} KRW for {pgcode}" in below["message"]
    ok = api.post("/v1.0/payments/request", api.request_body(pgcode=pgcode, amount=method.minimum, **extra))
    assert ok.status_code == 200, ok.text


@pytest.mark.parametrize("pgcode", ["ssgpay", "samsungpay"])
def test_service_name_required(api, pgcode):
    assert refused(api, pgcode=pgcode, service_name=None) == {
        "code": 3004, "message": f"service_name is required for {pgcode}"}


def test_cup_deposit_rules(api):
    assert refused(api, pgcode="banktransfer", disposable_cup_deposit=100)["code"] == 3005
    assert refused(api, amount=1000, disposable_cup_deposit=2000)["code"] == 3007
    ok = api.post("/v1.0/payments/request", api.request_body(pgcode="naverpay", disposable_cup_deposit=300))
    assert ok.status_code == 200


def test_tax_rules(api):
    assert refused(api, amount=1000, taxfree_amount=1001) == {
        "code": 3006, "message": "taxfree_amount 1001 exceeds amount 1000"}
    assert refused(api, amount=1000, taxfree_amount=900, tax_amount=101)["code"] == 3009


def test_verification_only_needs_autopay_and_a_recurring_method(api):
    assert refused(api, amount=0)["code"] == 3008
    assert refused(api, pgcode="kakaopay", autopay_flag="Y")["code"] == 3003
    assert api.post("/v1.0/payments/request", api.request_body(amount=0, autopay_flag="Y")).status_code == 200


@pytest.mark.parametrize("pgcode", sorted(code for code, method in table().items() if method.recurring))
def test_verification_only_where_the_reference_lists_it(api, pgcode):
    """The reference's verification result: "pgcode | Payment method Code (creditcard, mobile)"."""
    response = api.post("/v1.0/payments/request", api.request_body(pgcode=pgcode, amount=0, autopay_flag="Y"))
    if pgcode in ("creditcard", "mobile"):
        assert response.status_code == 200, response.text
    else:
        assert response.status_code == 406 and response.json() == {"code": 3011, "message": (
            f"amount 0 is a verification-only request, which {pgcode} does not offer (only creditcard, mobile)")}
    # a payment with a billkey stays possible for every recurring method
    assert api.post("/v1.0/payments/request", api.request_body(pgcode=pgcode, autopay_flag="Y")).status_code == 200


def test_virtual_account_expiry(api):
    api.set_clock("2026-11-29T12:00:00+09:00")
    assert refused(api, pgcode="virtualaccount", expire_date="20261128")["code"] == 3010
    assert refused(api, pgcode="virtualaccount", expire_date="20261340")["message"].endswith("is not a real date and time")
    assert refused(api, pgcode="virtualaccount", expire_date="2026121")["message"] == \
        "expire_date must be 8 digits, YYYYMMDD"
    ok = api.post("/v1.0/payments/request", api.request_body(pgcode="virtualaccount", expire_date="20261201",
                                                           expire_time="1130"))
    assert ok.status_code == 200


def test_malformed_bodies(api):
    url = api.url + "/v1.0/payments/request"
    headers = {"Authorization": f"PLKEY {PAYMENT_KEY}", "Content-Type": "application/json"}
    cases = [b'{"pgcode": ', b"\xff\xfe{}", b"[1, 2]", b"[" * 100_000]
    codes = [api.http.post(url, data=raw, headers=headers).json()["code"] for raw in cases]
    assert codes == [2000, 997, 2009, 2000]


def test_oversized_body_is_413_in_the_envelope(api):
    response = api.post("/v1.0/payments/request", api.request_body(custom_parameter="x" * 2_000_000))
    assert response.status_code == 413
    assert response.json() == {"code": 2010, "message": "The body is larger than 1048576 bytes"}
