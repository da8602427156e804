"""Near misses explained: every 401, 403, 404 and 406 says which case it was in X-Emulator-Reason
(ASCII, percent-encoded) and in the journal's `error`, while the body stays the gateway's
`{"code", "message"}`. The control API's own messages say more."""
from __future__ import annotations

import json
from urllib.parse import unquote

import pytest
import requests

from payletter_emulator.resources import schemas_dir

from .conftest import PAYMENT_KEY, SEARCH_KEY, refused

AUTH_ERROR = {"code": 998, "message": "Authentication token is missing or incorrect"}


def reason_of(response: requests.Response) -> str:
    """The header's text, once it is checked to be ASCII only."""
    value = response.headers["X-Emulator-Reason"]
    assert value.isascii() and value.isprintable(), value
    return unquote(value)


def last_entry(url: str) -> dict:
    """The newest journal entry of the emulator at `url` (the root, or /_sandbox/<id>)."""
    response = requests.get(url + "/_emulator/requests", timeout=30)
    assert response.status_code == 200, response.text
    return response.json()["requests"][-1]


def told(response: requests.Response, url: str, status: int) -> str:
    """The reason of a refused answer, checked to be the journal's `error` for it too."""
    reason = reason_of(response)
    entry = last_entry(url)
    assert (entry["status"], entry["error"]) == (status, reason)
    return reason


@pytest.fixture
def sandbox(api):
    """A sandbox of the session's emulator, deleted after the test."""
    made = []

    def make() -> dict:
        response = requests.post(api.url + "/_emulator/sandboxes", json={}, timeout=30)
        assert response.status_code == 201, response.text
        made.append(response.json())
        return made[-1]

    yield make
    for box in made:
        assert requests.delete(f"{api.url}/_emulator/sandboxes/{box['id']}", timeout=30).status_code == 200


def test_the_roots_key_sent_into_a_sandbox(api, sandbox):
    box = sandbox()
    response = api.http.post(f"{api.url}{box['path']}/v1.0/payments/request",
                             json=api.request_body(client_id=box["client_id"]),
                             headers={"Authorization": f"PLKEY {PAYMENT_KEY}"})
    assert refused(response, 401) == AUTH_ERROR
    reason = told(response, api.url + box["path"], 401)
    assert reason == (f"998: the key is the PAYMENT key of the root emulator's client 'pay_test', but this request "
                      f"is for sandbox {box['id']} (by its path prefix /_sandbox/{box['id']}/), which takes only "
                      f"its own client's keys")
    assert PAYMENT_KEY not in reason


def test_a_sandboxs_key_sent_to_another_sandbox(api, sandbox):
    one, other = sandbox(), sandbox()
    response = api.http.get(f"{api.url}/v1.0/payments/transaction/list",
                            params={"client_id": other["client_id"], "date": "20261129", "date_type": "transaction"},
                            headers={"Authorization": f"PLKEY {one['search_key']}", "X-Emulator-Sandbox": other["id"]})
    assert refused(response, 401) == AUTH_ERROR
    assert told(response, api.url + other["path"], 401) == (
        f"998: the key is the SEARCH key of sandbox {one['id']}'s client '{one['client_id']}', but this request is "
        f"for sandbox {other['id']} (by the X-Emulator-Sandbox header), which takes only its own client's keys")


def test_a_key_nobody_has_is_still_the_plain_998(api):
    response = api.post("/v1.0/payments/request", api.request_body(), key="bm9ib2R5cyBrZXk=")
    assert refused(response, 401) == AUTH_ERROR
    assert told(response, api.url, 401) == "998: the key of `PLKEY <key>` is not a key of this emulator (nor of a sandbox)"


def test_the_key_of_one_client_with_another_clients_id(api):
    response = api.post("/v1.0/payments/request", api.request_body(client_id="shop_b"))
    assert refused(response, 403) == {"code": 993, "message": "Yon do not have authorization. client_id 'shop_b' "
                                                              "is not the client of this key"}
    assert told(response, api.url, 403) == ("993: the key is of client 'pay_test' and the body's client_id is "
                                            "'shop_b', another client of this emulator: send 'shop_b''s own key, "
                                            "or client_id 'pay_test'")


def test_a_client_id_one_letter_off(api):
    response = api.post("/v1.0/payments/request", api.request_body(client_id="pay_tset"))
    refused(response, 403, 993)
    assert told(response, api.url, 403).endswith("no client of this emulator; did you mean 'pay_test'?")


def test_a_search_key_on_a_payment_endpoint(api):
    response = api.post("/v1.0/payments/request", api.request_body(), key=SEARCH_KEY)
    assert refused(response, 403) == {"code": 993, "message": "Yon do not have authorization. payments/request "
                                                              "needs a PAYMENT key; this is a SEARCH key"}
    assert told(response, api.url, 403) == ("993: a SEARCH key (of client 'pay_test') on payments/request, which "
                                            "takes the PAYMENT key: each client has one of each")


def test_a_payment_key_on_a_search_endpoint(api):
    response = api.get("/v1.0/payments/transaction/list",
                       {"client_id": "pay_test", "date": "20261129", "date_type": "transaction"}, key=PAYMENT_KEY)
    refused(response, 403, 993)
    assert told(response, api.url, 403) == ("993: a PAYMENT key (of client 'pay_test') on payments/transaction/list, "
                                            "which takes the SEARCH key: each client has one of each")


def test_a_pgcode_one_letter_off(api):
    response = api.post("/v1.0/payments/request", api.request_body(pgcode="creditcrad"))
    assert refused(response, 406) == {"code": 3001, "message": "pgcode 'creditcrad' is not a payment method code "
                                                               "of the appendix"}
    assert told(response, api.url, 406) == ("3001: pgcode 'creditcrad' is not a payment method code of the appendix; "
                                            "did you mean 'creditcard'?")


def test_a_reason_outside_ascii_is_percent_encoded(api):
    response = api.post("/v1.0/payments/request", api.request_body(pgcode="카드%"))
    refused(response, 406, 3001)
    assert "%EC%B9%B4%EB%93%9C%25" in response.headers["X-Emulator-Reason"]
    assert told(response, api.url, 406) == "3001: pgcode '카드%' is not a payment method code of the appendix"


def test_a_path_one_letter_off(api):
    response = api.post("/v1.0/payments/cancle", {"client_id": "pay_test"})
    assert refused(response, 404) == {"code": 996, "message": "Cannot find resource. Please check resource: "
                                                              "there is no endpoint at /v1.0/payments/cancle"}
    assert told(response, api.url, 404) == ("996: there is no route at /v1.0/payments/cancle; "
                                            "did you mean /v1.0/payments/cancel?")


def test_a_path_with_a_tid_one_letter_off(api):
    response = api.get("/v1.0/receipt/infos/tpay_test-202611290000001", {"client_id": "pay_test"})
    refused(response, 404, 996)
    assert told(response, api.url, 404).endswith("did you mean /v1.0/receipt/info/tpay_test-202611290000001?")


def test_a_path_far_from_every_route(api):
    response = api.post("/v1.0/payments/refund", {"client_id": "pay_test"})
    refused(response, 404, 996)
    assert told(response, api.url, 404) == ("996: there is no route at /v1.0/payments/refund, nor one a letter or "
                                            "two from it (GET /openapi.json lists them)")


def test_a_control_api_path_one_letter_off(api):
    response = api.http.get(api.url + "/_emulator/clok", timeout=30)
    refused(response, 404, 996)
    assert reason_of(response) == "996: there is no route at /_emulator/clok; did you mean /_emulator/clock?"


def test_every_missing_field_is_named(api):
    response = api.post("/v1.0/payments/request", {"client_id": "pay_test", "pgcode": "creditcard", "amount": 1000})
    assert refused(response, 406) == {"code": 2001, "message": "user_id is required"}  # the gateway's: the first
    assert told(response, api.url, 406) == ("2001: 4 required fields are missing: user_id, product_name, return_url, "
                                            "callback_url (the gateway's message names only the first)")


def test_one_missing_field_is_the_message(api):
    response = api.post("/v1.0/payments/request", api.request_body(user_id=None))
    assert refused(response, 406) == {"code": 2001, "message": "user_id is required"}
    assert told(response, api.url, 406) == "2001: user_id is required"


def test_a_misspelt_field_under_strict_keeps_the_gateways_body(strict_api):
    body = strict_api.request_body()
    body["custom_paramter"] = body.pop("custom_parameter")
    response = strict_api.post("/v1.0/payments/request", body)
    assert refused(response, 406) == {"code": 2006, "message": "custom_paramter is not a parameter of "
                                                               "payments/request (--strict)"}
    assert told(response, strict_api.url, 406) == ("2006: custom_paramter is not a parameter of payments/request "
                                                   "(--strict); did you mean custom_parameter?")


def fields_of(schema: str) -> str:
    """A control operation's fields, as its schema declares them (their one home)."""
    return ", ".join(json.loads((schemas_dir() / "control" / f"{schema}.json").read_text("utf-8"))["properties"])


@pytest.mark.parametrize("path,body,message", [
    ("/clock", {"advance": 60}, "advance is not a field of POST /_emulator/clock; did you mean advance_seconds? "
                                "(its fields: {clock})"),
    ("/payments/1/approve", {"card": "4111111111111111"},
     "card is not a field of POST /_emulator/payments/{{token}}/approve; did you mean card_number? "
     "(its fields: {approve})"),
    ("/clock", {"rewind": 5}, "rewind is not a field of POST /_emulator/clock (its fields: {clock})"),
])
def test_the_control_api_names_the_field_meant(api, path, body, message):
    message = message.format(clock=fields_of("clock"), approve=fields_of("approve"))
    response = api.http.post(api.url + "/_emulator" + path, json=body, timeout=30)
    assert refused(response, 406) == {"code": 2006, "message": message}
    assert reason_of(response) == f"2006: {message}"


def test_an_unknown_sandbox_says_how_it_was_named(api):
    response = api.http.post(api.url + "/_sandbox/sbnothere/v1.0/payments/request", json=api.request_body(),
                             headers={"Authorization": f"PLKEY {PAYMENT_KEY}"}, timeout=30)
    refused(response, 404, 4601)
    assert reason_of(response) == ("4601: sandbox sbnothere does not exist (it was deleted, or idle for too long); "
                                   "it was named by its path prefix")


def test_a_scenario_answer_names_its_rule(api):
    api.control("/scenario", {"version": 1, "rules": [{
        "name": "refuse everything", "when": {"endpoint": "payments/request"},
        "then": {"api_error": {"status": 406, "code": 9999, "message": "no"}}}]}, method="PUT")
    try:  # a reset keeps the scenario: it goes, whatever the test finds
        response = api.post("/v1.0/payments/request", api.request_body())
    finally:
        api.control("/scenario", method="DELETE")
    assert refused(response, 406) == {"code": 9999, "message": "no"}
    assert told(response, api.url, 406) == "9999: scenario rule 'refuse everything' answered this: no"


def test_a_success_carries_no_reason(api):
    response = api.post("/v1.0/payments/request", api.request_body())
    assert response.status_code == 200 and "X-Emulator-Reason" not in response.headers
    assert last_entry(api.url)["error"] == ""
