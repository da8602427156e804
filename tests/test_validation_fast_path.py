"""The validator's fast path for valid bodies may only ever say "valid" when jsonschema agrees
and leniency has nothing to repair: checked by mutating valid requests at random (hypothesis).
And on any value at all, the validator answers with checked values or a gateway error, in-process."""
from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from payletter_emulator.domain.errors import GatewayError
from payletter_emulator.engines.validation import _Repair

from .conftest import SCHEMAS

VALID = {
    "requests/payments_request": {
        "pgcode": "creditcard", "client_id": "pay_test", "user_id": "u1", "user_name": "tester", "amount": 1000,
        "product_name": "p", "order_no": "A-1", "return_url": "https://m.example/r",
        "callback_url": "https://m.example/c", "cancel_url": "https://m.example/x", "autopay_flag": "N"},
    "requests/payments_cancel": {"pgcode": "creditcard", "client_id": "pay_test", "user_id": "u1",
                                 "tid": "tpay_test-202611290000001", "amount": 1000, "ip_addr": "127.0.0.1"},
    "requests/transaction_list": {"client_id": "pay_test", "date": "20261129", "date_type": "transaction"},
    "control/flush": {"max_seconds": 30},  # exclusiveMinimum: 0
}
ODD_VALUES = st.one_of(st.none(), st.booleans(), st.integers(-5, 10**12), st.floats(allow_nan=False),
                       st.text(max_size=300), st.sampled_from(["", "Y", "N", "settle", "0", "<b>", "a\nb"]),
                       st.lists(st.integers(), max_size=2))


def test_valid_requests_take_the_fast_path():
    for name, body in VALID.items():
        assert SCHEMAS._validators[name].is_valid(body)
        assert SCHEMAS._surely_valid[name](body), name


@settings(max_examples=1500, deadline=None)
@given(name=st.sampled_from(sorted(VALID)), data=st.data())
def test_the_fast_path_never_passes_an_invalid_body(name, data):
    body = dict(VALID[name])
    fields = sorted(SCHEMAS.documents[name]["properties"]) + ["not_a_field"]
    for field in data.draw(st.lists(st.sampled_from(fields), max_size=3)):
        if data.draw(st.booleans()):
            body[field] = data.draw(ODD_VALUES)
        else:
            body.pop(field, None)
    if SCHEMAS._surely_valid[name](body):
        assert SCHEMAS._validators[name].is_valid(body), body
        # and leniency would have had nothing to repair: the slow path gives the body back as sent
        repair = _Repair(SCHEMAS.documents[name], strict=False, endpoint=name)
        assert repair.fields(dict(body), from_query=False) == body
        assert repair.warnings == []


FIELDS = ["pgcode", "client_id", "user_id", "amount", "product_name", "return_url", "callback_url", "tid",
          "billkey", "ip_addr", "taxfree_amount", "tax_amount", "disposable_cup_deposit", "order_no",
          "autopay_flag", "type", "tax_flag", "expire_date", "expire_time"]
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(min_value=-10**20, max_value=10**20),
                    st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=300),
                    st.sampled_from(["pay_test", "creditcard", "mobile", "virtualaccount", "Y", "0", ""]))
VALUES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner,
                                                                                           max_size=3), max_leaves=6)


@settings(max_examples=1000, deadline=None)
@given(name=st.sampled_from(sorted(n for n in SCHEMAS.documents if n.startswith(("requests/", "control/")))),
       data=st.one_of(VALUES, st.dictionaries(st.sampled_from(FIELDS) | st.text(max_size=10), VALUES, max_size=12)),
       strict=st.booleans(), from_query=st.booleans())
def test_the_validator_answers_with_checked_values_or_a_gateway_error(name, data, strict, from_query):
    try:
        checked = SCHEMAS.check_request(name, data, strict=strict, endpoint=name, from_query=from_query)
    except GatewayError as error:
        assert 2000 <= error.code <= 5000 and error.status in (406, 413) and error.message
    else:
        assert SCHEMAS.errors(name, checked.values) == []
        assert strict is False or checked.warnings == []
