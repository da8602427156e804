"""What real clients send and the real gateway accepts: tolerated, journaled, refused by --strict."""
from __future__ import annotations

import pytest

from .conftest import PAYMENT_KEY


def last_journal(api) -> dict:
    return api.control("/requests", method="GET")["requests"][-1]


def test_numbers_and_strings_swapped_are_accepted_and_noted(api):
    response = api.post("/v1.0/payments/request", api.request_body(amount="1000", user_id=12345, order_no=777))
    assert response.status_code == 200
    entry = last_journal(api)
    assert entry["status"] == 200
    assert entry["warnings"] == ["user_id: sent as a number (12345), expected a string",
                                 "order_no: sent as a number (777), expected a string",
                                 "amount: sent as a string ('1000'), expected a number"]
    payment = api.control(f"/payments/{response.json()['token']}", method="GET")
    assert (payment["amount"], payment["user_id"], payment["order_no"]) == (1000, "12345", "777")


def test_empty_optional_fields_are_absent(api):
    response = api.post("/v1.0/payments/request", api.request_body(email_flag="", cancel_url="", taxfree_amount=None))
    assert response.status_code == 200
    assert 'email_flag: empty optional field sent as "", treated as absent' in last_journal(api)["warnings"]


def test_unknown_fields_are_ignored_with_a_warning(api):
    assert api.post("/v1.0/payments/request", api.request_body(coupon="X")).status_code == 200
    assert last_journal(api)["warnings"] == ["coupon: not a parameter of payments/request, ignored"]


def test_other_content_type_is_read_as_json(api):
    import json
    response = api.http.post(api.url + "/v1.0/payments/request", data=json.dumps(api.request_body()),
                             headers={"Authorization": f"PLKEY {PAYMENT_KEY}", "Content-Type": "text/plain"})
    assert response.status_code == 200
    assert last_journal(api)["warnings"] == ["Content-Type: Content-Type is text/plain, expected application/json"]


def test_json_sent_as_a_form_is_read_as_json(api):
    """`curl -d '{...}'` sends JSON with a form's Content-Type: it parses, so it is tolerated."""
    import json
    response = api.http.post(api.url + "/v1.0/payments/request", data=json.dumps(api.request_body()),
                             headers={"Authorization": f"PLKEY {PAYMENT_KEY}",
                                      "Content-Type": "application/x-www-form-urlencoded"})
    assert response.status_code == 200


FORM_MESSAGE = ("The body is a form ({}); the gateway expects JSON: send the fields as a JSON object with "
                "Content-Type: application/json")


@pytest.mark.parametrize("sent", ["data", "files"])
def test_a_form_body_is_told_that_json_is_expected(api, sent):
    body = {key: str(value) for key, value in api.request_body().items()}
    form = {"data": body} if sent == "data" else {"files": {k: (None, v) for k, v in body.items()}}
    response = api.http.post(api.url + "/v1.0/payments/request", headers={"Authorization": f"PLKEY {PAYMENT_KEY}"},
                             **form)
    mimetype = "application/x-www-form-urlencoded" if sent == "data" else "multipart/form-data"
    assert response.status_code == 406
    assert response.json() == {"code": 2000, "message": FORM_MESSAGE.format(mimetype)}


@pytest.mark.parametrize("overrides,message", [
    ({"amount": "1000"}, "amount: sent as a string ('1000'), expected a number; "
                         "the real gateway tolerates this, --strict does not"),
    ({"user_id": 12345}, "user_id: sent as a number (12345), expected a string; "
                         "the real gateway tolerates this, --strict does not"),
    ({"email_flag": ""}, 'email_flag: empty optional field sent as "", treated as absent; '
                         "the real gateway tolerates this, --strict does not"),
])
def test_strict_mode_refuses_each_deviation(strict_api, overrides, message):
    response = strict_api.post("/v1.0/payments/request", strict_api.request_body(**overrides))
    assert response.status_code == 406
    assert response.json() == {"code": 2007, "message": message}


def test_strict_mode_refuses_unknown_fields(strict_api):
    response = strict_api.post("/v1.0/payments/request", strict_api.request_body(coupon="X"))
    assert response.json() == {"code": 2006, "message": "coupon is not a parameter of payments/request (--strict)"}


def test_strict_mode_accepts_a_clean_request(strict_api):
    assert strict_api.post("/v1.0/payments/request", strict_api.request_body()).status_code == 200
    assert last_journal(strict_api)["warnings"] == []


def test_journal_keeps_request_response_and_status_of_failures(api):
    api.post("/v1.0/payments/request", api.request_body(amount=-5))
    entry = last_journal(api)
    assert entry["path"] == "/v1.0/payments/request"
    assert entry["client_id"] == "pay_test"
    assert entry["request"]["amount"] == -5
    assert (entry["status"], entry["response"]["code"]) == (406, 2005)
