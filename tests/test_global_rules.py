"""Payletter Global's formulas and data as pure functions, held to the worked example of
docs/research/payletter-global.md (made-up store and key, hex values computed there with hashlib)."""
from __future__ import annotations

from pathlib import Path

import pytest

from payletter_emulator.domain import global_rules
from payletter_emulator.domain.callback_policy import GATEWAYS
from payletter_emulator.domain.global_rules import GlobalError

STORE, KEY = "demo_store", "made-up-key-0001"


def test_the_poqapi_signature_of_the_worked_example():
    body = ("storeid=demo_store&currency=USD&storeorderno=ORD-1001&amount=10.00&payerid=user42"
            "&payeremail=buyer@example.com&returnurl=https://shop.example/return&notiurl=https://shop.example/noti"
            "&pginfo=PLCreditCard")
    url = "https://dev-api.payletter.com/api/payment/request"
    assert global_rules.encode_url(url) == "https%3a%2f%2fdev-api.payletter.com%2fapi%2fpayment%2frequest"
    assert global_rules.poqapi_signature(STORE, KEY, "POST", url, "1700000000",
                                         "{0F8FAD5B-D9CB-469F-A165-70867728950E}", body) == \
        "c8c448c18579dda77c34cb462eb9c546e32c58d61f7e1dc382bf2a1273a4cf90"
    refund = global_rules.poqapi_signature(
        STORE, KEY, "POST", "https://dev-api.payletter.com/payment/PLCreditCard/refund", "1700000600",
        "3f1c2a9e-0b7d-4c55-9e61-2d8f4a7b6c10",
        "storeid=demo_store&paytoken=PT0000000001&currency=USD&amount=10.00&pginfo=PLCreditCard")
    assert refund == "d8bcd190d6814417b5619a4fba735331c16e69fd0637c862966b51bfd916b2d0"


def test_the_notification_hash_is_over_the_amount_as_written():
    assert global_rules.notification_hash(STORE, "USD", "ORD-1001", "10.00", "user42", "1700000300", KEY) == \
        "578b13f9d5c4c7a40f0e3f5c780f8d8f87a6ac2b9db73ca3665287708da24a01"
    assert global_rules.notification_hash(STORE, "USD", "ORD-1001", "10", "user42", "1700000300", KEY) == \
        "95e799a11d6809a67d3953a8b1d58d650c9ac40f21b2fd53e84a3094f32f6bd2"


def test_the_poqapi_header_is_read_whatever_the_nonce():
    for nonce in ("{0F8FAD5B-D9CB-469F-A165-70867728950E}", "a" * 64, "3f1c2a9e-0b7d-4c55-9e61-2d8f4a7b6c10"):
        read = global_rules.read_poqapi(f"{STORE}:{'b' * 64}:{nonce}:1700000000")
        assert (read.store_id, read.nonce, read.timestamp) == (STORE, nonce, "1700000000")
    assert global_rules.read_poqapi("demo_store:only-two") is None


@pytest.mark.parametrize("text,currency,units", [("10.00", "USD", 1000), ("0.5", "USD", 50), ("1200", "JPY", 1200),
                                                 ("15000", "KRW", 15000)])
def test_amounts_in_the_currencys_smallest_unit(text, currency, units):
    assert global_rules.minor_units(text, currency) == units


@pytest.mark.parametrize("text,currency", [("10.001", "USD"), ("10.5", "JPY"), ("1.5", "KRW"), ("0", "USD"),
                                           ("-1", "USD"), ("1e3", "USD"), ("", "USD")])
def test_an_amount_the_currency_cannot_have_is_a_406_naming_the_rule(text, currency):
    with pytest.raises(GlobalError) as refused:
        global_rules.minor_units(text, currency)
    assert (refused.value.status, refused.value.code) == (406, 995)


def test_a_json_number_is_echoed_without_exponent_or_trailing_zeros():
    assert [global_rules.amount_text(v) for v in (1, 10.5, 10.0, 1e-2, " 10.00 ")] == ["1", "10.5", "10", "0.01", "10.00"]


def test_test_cards_by_prefix():
    kinds = {number: global_rules.card_kind(number) for number in
             ("4111111111111111", "5105105105105100", "3530111333300000", "378282246310005", "6011000000000004",
              "4111")}
    assert kinds == {"4111111111111111": "VISA", "5105105105105100": "MASTER", "3530111333300000": "JCB",
                     "378282246310005": "AMEX", "6011000000000004": None, "4111": None}
    assert global_rules.mask_card("4111 1111 1111 1111") == "************1111"


def test_pginfo_is_matched_without_regard_to_case():
    assert global_rules.canonical_pginfo("PLCreditCardmpi") == "PLCreditCardMpi"
    assert global_rules.canonical_pginfo("paypalexpresscheckout") == "PayPalExpressCheckout"
    assert global_rules.canonical_pginfo("Visa") is None


def test_only_result_ok_acknowledges_a_global_notification_and_its_policy_is_ten_every_five_minutes():
    ack = global_rules.acknowledged
    assert ack(200, b"<RESULT>OK</RESULT>") and ack(200, b"\xef\xbb\xbf<RESULT>OK</RESULT>\n")
    assert not ack(200, b"<RESULT>FAIL</RESULT>") and not ack(200, b'{"code": 0}') and not ack(500, b"<RESULT>OK</RESULT>")
    assert not ack(200, b"<html><RESULT>OK</RESULT></html>") and not ack(None, b"")
    policy = GATEWAYS["global"].policy
    assert (policy.retries, policy.interval, GATEWAYS["global"].form) == (10, 300, True)


def test_the_error_codes_page_lists_the_samples_status_and_code_pairs():
    page = (Path(__file__).parent.parent / "docs" / "error-codes.md").read_text("utf-8")
    section = page[page.index("## Payletter Global"):page.index("## Examples")]
    pairs = {tuple(row.split(" | ")[:2]) for row in section.splitlines() if row[:3] in ("| 4", "| 5")}
    assert pairs == {("| 400", "997"), ("| 401", "998"), ("| 403", "993"), ("| 404", "996"), ("| 405", "995"),
                     ("| 406", "995"), ("| 500", "999"), ("| 501", "994")}
