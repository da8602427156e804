"""The validator's fast path for valid bodies may only ever say "valid" when jsonschema agrees
and leniency has nothing to repair: checked by mutating valid requests at random (hypothesis)."""
from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

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
