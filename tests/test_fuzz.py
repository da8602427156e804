"""Hostile and random input never gets a 500 or a body outside the envelope."""
from __future__ import annotations

from hypothesis import HealthCheck, given, settings, strategies as st

from payletter_emulator.domain.errors import GatewayError

from .conftest import PAYMENT_KEY, SCHEMAS, SEARCH_KEY

ENDPOINTS = ["/v1.0/payments/request", "/v1.0/payments/autopay", "/v1.0/payments/cancel",
             "/v1.0/payments/cancel/partial", "/v1.0/cashreceipt/issue/tpay_test-202611290000001",
             "/v1.0/payments/status"]
FIELDS = ["pgcode", "client_id", "user_id", "amount", "product_name", "return_url", "callback_url", "tid",
          "billkey", "ip_addr", "taxfree_amount", "tax_amount", "disposable_cup_deposit", "order_no",
          "autopay_flag", "type", "tax_flag", "expire_date", "expire_time"]
scalars = st.one_of(st.none(), st.booleans(), st.integers(min_value=-10**20, max_value=10**20),
                    st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=300),
                    st.sampled_from(["pay_test", "creditcard", "mobile", "virtualaccount", "Y", "0", ""]))
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
                      max_leaves=6)
bodies = st.dictionaries(st.sampled_from(FIELDS) | st.text(max_size=10), values, max_size=12)

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def assert_envelope(response):
    assert response.status_code in (200, 400, 403, 406), response.text  # 400: a body that is not UTF-8 (997)
    body = response.json()
    if response.status_code != 200:
        assert set(body) == {"code", "message"} and isinstance(body["code"], int) and body["message"]


@FUZZ
@given(endpoint=st.sampled_from(ENDPOINTS), body=bodies)
def test_random_json_bodies(api, endpoint, body):
    body = {"client_id": "pay_test", **body} if isinstance(body, dict) else body
    assert_envelope(api.post(endpoint, body))


VALID_REQUEST = {"pgcode": "creditcard", "client_id": "pay_test", "user_id": "u", "amount": 1000,
                 "product_name": "p", "return_url": "https://m.example/r", "callback_url": "http://127.0.0.1:9/cb"}


@FUZZ
@given(changes=st.dictionaries(st.sampled_from(FIELDS), values, min_size=1, max_size=3))
def test_valid_request_with_a_few_fields_changed(api, changes):
    """Close to valid, so the values reach the rules and the database, not only the schema."""
    assert_envelope(api.post("/v1.0/payments/request", {**VALID_REQUEST, **changes, "client_id": "pay_test"}))


@FUZZ
@given(endpoint=st.sampled_from(ENDPOINTS), raw=st.binary(max_size=200))
def test_random_bytes(api, endpoint, raw):
    response = api.http.post(api.url + endpoint, data=raw,
                             headers={"Authorization": f"PLKEY {PAYMENT_KEY}", "Content-Type": "application/json"})
    assert_envelope(response)


@FUZZ
@given(params=st.dictionaries(st.sampled_from(["client_id", "CLIENT_ID", "date", "date_type", "pgcode", "amount",
                                               "transaction_date"]) | st.text(max_size=8), st.text(max_size=20),
                              max_size=6),
       path=st.sampled_from(["/v1.0/payments/transaction/list", "/v1.0/receipt/info/tpay_test-202611290000001"]))
def test_random_queries(api, params, path):
    response = api.http.get(api.url + path, params={"client_id": "pay_test", **params},
                            headers={"Authorization": f"PLKEY {SEARCH_KEY}"})
    assert_envelope(response)


CONTROL_FIELDS = ["option", "card_number", "install_month", "bank_code", "code", "message", "amount",
                  "advance_seconds", "set", "freeze"]


@FUZZ
@given(action=st.sampled_from(["approve", "decline", "abandon"]),
       body=st.dictionaries(st.sampled_from(CONTROL_FIELDS), values, max_size=3),
       pgcode=st.sampled_from(["creditcard", "naverpay", "virtualaccount", "mobile", "smilepay"]))
def test_control_api_payer_actions(api, action, body, pgcode):
    token = api.request_payment(pgcode=pgcode, amount=60_000)
    response = api.http.post(f"{api.url}/_emulator/payments/{token}/{action}", json=body)
    assert response.status_code in (200, 406), response.text
    if response.status_code == 406:
        assert set(response.json()) == {"code", "message"}


@FUZZ
@given(body=st.dictionaries(st.sampled_from(CONTROL_FIELDS), values, max_size=2))
def test_control_api_clock(api, body):
    response = api.http.post(f"{api.url}/_emulator/clock", json=body)
    assert response.status_code in (200, 406), response.text
    api.control("/reset")


@settings(max_examples=1000, deadline=None)
@given(name=st.sampled_from(sorted(n for n in SCHEMAS.documents if n.startswith(("requests/", "control/")))),
       data=st.one_of(values, st.dictionaries(st.sampled_from(FIELDS) | st.text(max_size=10), values, max_size=12)),
       strict=st.booleans(), from_query=st.booleans())
def test_validator_answers_with_checked_values_or_a_gateway_error(name, data, strict, from_query):
    """In-process, many examples: the validator never fails any other way."""
    try:
        checked = SCHEMAS.check_request(name, data, strict=strict, endpoint=name, from_query=from_query)
    except GatewayError as error:
        assert 2000 <= error.code <= 5000 and error.status in (406, 413) and error.message
    else:
        assert SCHEMAS.errors(name, checked.values) == []
        assert strict is False or checked.warnings == []
