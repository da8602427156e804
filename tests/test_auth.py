"""Keys, key types, clients, methods and paths: the reference's 401/403/405 and our 404/500."""
from __future__ import annotations

import pytest

from .conftest import OTHER_CLIENT, PAYMENT_KEY, SEARCH_KEY

AUTH_ERROR = {"code": 998, "message": "Authentication token is missing or incorrect"}


NO_HEADER = "998: no Authorization header"
NOT_PLKEY = "998: the Authorization header is not `PLKEY <key>` (it starts with {!r})"
NO_KEY = "998: the Authorization header is `PLKEY` without a key"
UNKNOWN_KEY = "998: the key of `PLKEY <key>` is not a key of this emulator (nor of a sandbox)"


@pytest.mark.parametrize("header,why", [
    (None, NO_HEADER), ("", NO_HEADER), ("PLKEY", NO_KEY), ("PLKEY ", NO_KEY),
    ("Bearer " + PAYMENT_KEY, NOT_PLKEY.format("Bearer")), 
    (PAYMENT_KEY, "998: the Authorization header is not `PLKEY <key>` (the value has no `PLKEY ` before it)"),
    ("PLKEY " + PAYMENT_KEY[:-2], UNKNOWN_KEY), ("PLKEY nope", UNKNOWN_KEY)])
def test_missing_malformed_or_unknown_key_is_401_and_the_journal_says_which(api, header, why):
    headers = {} if header is None else {"Authorization": header}
    response = api.http.post(api.url + "/v1.0/payments/request", json=api.request_body(), headers=headers)
    assert response.status_code == 401
    assert response.json() == AUTH_ERROR  # the gateway's words to the client
    [entry] = api.control("/requests", method="GET")["requests"]
    assert (entry["status"], entry["error"]) == (401, why)


def test_scheme_is_read_in_any_case(api):
    response = api.http.post(api.url + "/v1.0/payments/request", json=api.request_body(),
                             headers={"Authorization": "plkey " + PAYMENT_KEY})
    assert response.status_code == 200


def test_search_key_on_a_payment_endpoint_is_403(api):
    response = api.post("/v1.0/payments/request", api.request_body(), key=SEARCH_KEY)
    assert response.status_code == 403
    assert response.json() == {"code": 993, "message": "Yon do not have authorization. payments/request "
                                                       "needs a PAYMENT key; this is a SEARCH key"}


def test_payment_key_on_a_search_endpoint_is_403(api):
    response = api.get("/v1.0/payments/transaction/list",
                       {"client_id": "pay_test", "date": "20261129", "date_type": "transaction"}, key=PAYMENT_KEY)
    assert response.status_code == 403
    assert response.json()["code"] == 993


def test_client_id_of_another_client_is_403(api):
    response = api.post("/v1.0/payments/request", api.request_body(client_id=OTHER_CLIENT[0]))
    assert response.status_code == 403
    assert response.json() == {"code": 993, "message": "Yon do not have authorization. "
                                                       "client_id 'shop_b' is not the client of this key"}


def test_a_configured_client_has_its_own_payments(api):
    client_id, payment_key, search_key = OTHER_CLIENT
    response = api.post("/v1.0/payments/request", api.request_body(client_id=client_id), key=payment_key)
    assert response.status_code == 200
    mine = api.control("/payments?client_id=pay_test", method="GET")["payments"]
    assert mine == []


@pytest.mark.parametrize("method,path", [("GET", "/v1.0/payments/request"), ("PUT", "/v1.0/payments/cancel"),
                                         ("POST", "/v1.0/payments/transaction/list"),
                                         ("DELETE", "/v1.0/receipt/info/tpay_test-202611290000001")])
def test_wrong_http_method_is_405(api, method, path):
    response = api.http.request(method, api.url + path, headers={"Authorization": f"PLKEY {PAYMENT_KEY}"})
    assert response.status_code == 405
    assert response.json() == {"code": 995, "message": f"Not authorized method. {method} is not allowed on {path}"}


def test_unknown_path_is_404_in_the_envelope(api):
    response = api.post("/v1.0/payments/refund", {})
    assert response.status_code == 404
    assert response.json() == {"code": 996, "message": "Cannot find resource. Please check resource: there is no endpoint at /v1.0/payments/refund"}


@pytest.mark.parametrize("path", ["/v1.0/payments/request", "/v1.0/payments/request/"])
def test_paths_work_with_and_without_trailing_slash(api, path):
    assert api.post(path, api.request_body()).status_code == 200


def test_the_key_is_never_journaled(api):
    api.post("/v1.0/payments/request", api.request_body())
    journal = api.http.get(api.url + "/_emulator/requests").text
    assert PAYMENT_KEY not in journal
