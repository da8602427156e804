"""Every request example of the reference, sent verbatim. Their tids and billkeys belong to the
gateway's own history, so the emulator answers with the documented refusal for unknown ones:
the point is that each example parses and validates exactly as written."""
from __future__ import annotations

import pytest

from .conftest import PAYMENT_KEY, SEARCH_KEY

CANCEL = """{
"pgcode" : "mobile",
"client_id":"pay_test",
"user_id":"test_user_id",
"tid":"tpay_test2018010123595900001",
"amount" : 1000,
"ip_addr":"127.0.0.1"
}"""
PARTIAL = """{
"pgcode" : "mobile",
"client_id":"pay_test",
"user_id":"test_user_id",
"tid":"tpay_test2018010123595900001",
"amount" : 1000,
"taxfree_amount" : 100,
"tax_amount" : 20,
"ip_addr":"127.0.0.1"
}"""
AUTOPAY = """{
"pgcode" : "mobile",
"client_id":"pay_test",
"service_name":"payletter",
"user_id":"test_user_id",
"user_name":"tester",
"order_no":"1234567890",
"amount":1000,
"product_name":"testproduct",
"billkey":"tbpay_test201801012359590002",
"ip_addr":"127.0.0.1"
}"""
CASH_RECEIPT = """{
"client_id":"pay_test",
"type":"0",
"tax_flag":"N",
"return_url":"https://testpg.payletter.com/result"
}"""
# Verbatim, including the stray quote after "Test Product": the reference's example is not JSON.
VERIFICATION = """{
"pgcode" : "creditcard",
"user_id":"test_user_id",
"user_name":"Tester",
"service_name":"payletter",
"client_id":"pay_test",
"order_no":"1234567890",
"amount":0,
"product_name":"Test Product"",
"email_flag":"N",
"autopay_flag":"Y",
"custom_parameter":"this is custom parameter",
"return_url":"https://testpg.payletter.com/result",
"callback_url":"https://testpg.payletter.com/callback",
"cancel_url":"https://testpg.payletter.com/cancel"
}"""


def post(api, path, raw):
    return api.http.post(api.url + path, data=raw.encode(),
                         headers={"Authorization": f"PLKEY {PAYMENT_KEY}", "Content-Type": "application/json"})


@pytest.mark.parametrize("path,raw,code", [
    ("/v1.0/payments/cancel", CANCEL, 4001),
    ("/v1.0/payments/cancel/partial", PARTIAL, 4001),
    ("/v1.0/payments/autopay", AUTOPAY, 4101),
    ("/v1.0/cashreceipt/issue/tpay_test-201904097449610", CASH_RECEIPT, 4001),
])
def test_examples_validate_and_reach_the_rules(api, path, raw, code):
    response = post(api, path, raw)
    assert response.status_code == 406
    assert response.json()["code"] == code


def test_verification_example_as_printed_is_malformed_json(api):
    response = post(api, "/v1.0/payments/request", VERIFICATION)
    assert response.status_code == 406
    assert response.json()["code"] == 2000


def test_verification_example_with_its_typo_mended_succeeds(api):
    response = post(api, "/v1.0/payments/request", VERIFICATION.replace('"Test Product""', '"Test Product"'))
    assert response.status_code == 200


def test_transaction_list_example(api):
    response = api.http.get(api.url + "/v1.0/payments/transaction/list?client_id=pay_test&date=20180918&date_type=transaction",
                            headers={"Authorization": f"PLKEY {SEARCH_KEY}"})
    assert response.status_code == 200
    assert response.json() == {"total_count": 0, "list": []}


def test_receipt_info_example_uses_a_key_that_is_not_ours(api):
    response = api.http.get(api.url + "/v1.0/receipt/info/tsktest1-202201039368273/?client_id=sktest1&amount=50001"
                                      "&transaction_date=20220103",
                            headers={"Authorization": "PLKEY NDhBNDJGNUY0QzI5RjY5NjAwMDdDREI0Q0Q4RDVGOTY=="})
    assert response.status_code == 401
    assert response.json() == {"code": 998, "message": "Authentication token is missing or incorrect"}


def test_receipt_info_example_shape_with_our_client(api):
    response = api.get("/v1.0/receipt/info/tpay_test-202201039368273/",
                       {"client_id": "pay_test", "amount": "50001", "transaction_date": "20220103"})
    assert response.status_code == 406 and response.json()["code"] == 4001
