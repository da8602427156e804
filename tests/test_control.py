"""The control API: health, reset, the clock, and /openapi.json."""
from __future__ import annotations

from datetime import datetime

import pytest
from jsonschema import Draft202012Validator

from payletter_emulator.domain.identifiers import TOKEN_DIGITS, is_token, token

from .conftest import Answer, freeze_at


def test_health(api):
    assert api.control("/health", method="GET") == {"status": "ok"}


def test_clock_freeze_set_and_advance(api):
    assert api.control("/clock", method="GET")["frozen"] is False
    api.control("/clock", {"freeze": True})
    frozen = api.control("/clock", {"set": "2026-03-01T09:30:00"})  # no offset: read as KST
    assert frozen == {"now": "2026-03-01T09:30:00+09:00", "frozen": True}
    assert api.control("/clock", {"advance_seconds": 86400 * 31})["now"] == "2026-04-01T09:30:00+09:00"
    running = api.control("/clock", {"freeze": False})
    assert running["frozen"] is False and running["now"].startswith("2026-04-01T09:30")


def test_the_clock_dates_what_the_gateway_makes(api):
    api.control("/clock", {"freeze": True})
    api.set_clock("2030-05-05T23:59:59+09:00")
    fields = api.pay()
    assert fields["transaction_date"] == "2030-05-05 23:59:59"
    assert fields["tid"].startswith("tpay_test-20300505")


@pytest.mark.parametrize("body,code", [({}, 4311), ({"advance_seconds": 1, "freeze": True}, 4311),
                                       ({"set": "yesterday"}, 4311), ({"freeze": "yes"}, 2002),
                                       ({"advance_seconds": 1e20}, 4311), ({"set": "2001-12-31T23:59:59+09:00"}, 4311),
                                       ({"set": "2200-01-01T00:00:00+09:00"}, 4311),
                                       ({"rewind": 5}, 2006)])
def test_bad_clock_changes(api, body, code):
    response = api.http.post(api.url + "/_emulator/clock", json=body)
    assert response.status_code == 406
    assert response.json()["code"] == code


# Each way the clock moves 300 s on from 10:00, where a failed first attempt's retry falls due.
CLOCK_MOVES = {
    "advance": lambda api: api.advance(seconds=300),
    "set": lambda api: api.set_clock("2026-11-29T10:05:00+09:00"),
    "scenario": lambda api: api.control("/scenario", {"version": 1, "settings": {"clock": {
        "start": "2026-11-29T10:05:00+09:00", "frozen": True}}}, method="PUT"),
}


@pytest.mark.parametrize("move", CLOCK_MOVES)
def test_a_clock_moved_any_way_sends_the_retry_it_makes_due(api, callback_receiver, move):
    freeze_at(api, "2026-11-29T10:00:00+09:00")
    callback_receiver.script.append(Answer(500))
    tid = api.pay()["tid"]  # the first attempt made, and failed
    try:
        CLOCK_MOVES[move](api)
        assert len(callback_receiver.wait_for(2)) == 2  # sent without a flush, as the clock moved
        api.flush()  # the retry's outcome on the ledger
        [found] = api.control(f"/callbacks?tid={tid}", method="GET")["callbacks"]
        assert found["status"] == "delivered"
        assert [a["scheduled_at"][11:16] for a in found["attempts"]] == ["10:00", "10:05"]
    finally:
        api.control("/scenario", method="DELETE")


def test_reset_forgets_state_and_returns_to_real_time(api):
    api.control("/clock", {"freeze": True})
    api.set_clock("2002-01-01T00:00:00+09:00")
    api.pay()
    assert api.control("/payments", method="GET")["payments"]
    api.control("/reset")
    assert api.control("/payments", method="GET")["payments"] == []
    assert api.control("/callbacks", method="GET")["callbacks"] == []
    assert api.control("/requests", method="GET")["requests"] == []
    now = api.control("/clock", method="GET")
    assert now["frozen"] is False and datetime.fromisoformat(now["now"]).year >= 2026


def test_control_errors_use_the_envelope(api):
    response = api.http.post(api.url + "/_emulator/payments/123/approve", json={})
    assert response.status_code == 404
    assert response.json() == {"code": 4301, "message": "token 123 is not a payment request"}
    response = api.http.get(api.url + "/_emulator/payments/tnobody-202601010000001")
    assert (response.status_code, response.json()["code"]) == (404, 4309)


def test_openapi_describes_every_route(api):
    document = api.http.get(api.url + "/openapi.json").json()
    assert document["openapi"] == "3.1.0"
    paths = document["paths"]
    for path, method in [("/v1.0/payments/request", "post"), ("/v1.0/payments/autopay", "post"),
                         ("/v1.0/payments/cancel", "post"), ("/v1.0/payments/cancel/partial", "post"),
                         ("/v1.0/cashreceipt/issue/{tid}", "post"), ("/v1.0/payments/transaction/list", "get"),
                         ("/v1.0/receipt/info/{tid}", "get"), ("/v1.0/payments/status", "post"),
                         ("/_emulator/clock", "post"), ("/_emulator/payments/{token}/approve", "post")]:
        assert method in paths[path], (path, method)
    request_schema = paths["/v1.0/payments/request"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    name = request_schema["$ref"].rsplit("/", 1)[1]
    component = document["components"]["schemas"][name]
    assert "pgcode" in component["required"]
    # Every component is itself a valid JSON Schema, and every $ref points at a component.
    for schema in document["components"]["schemas"].values():
        Draft202012Validator.check_schema(schema)
    refs = []

    def collect(node):
        if isinstance(node, dict):
            refs.extend(v for k, v in node.items() if k == "$ref")
            for v in node.values():
                collect(v)
        elif isinstance(node, list):
            for v in node:
                collect(v)
    collect(document)
    for ref in refs:
        node = document
        for part in ref.removeprefix("#/").split("/"):
            node = node[part]
        assert isinstance(node, dict)


def test_non_finite_advance_is_refused(api):
    response = api.http.post(api.url + "/_emulator/clock", data='{"advance_seconds": Infinity}',
                             headers={"Content-Type": "application/json"})
    assert (response.status_code, response.json()["code"]) == (406, 4311)
    assert api.control("/clock", method="GET")["frozen"] is False


def test_reset_keeps_identifiers_unique(api):
    first = api.pay()["tid"]
    api.control("/reset")
    assert api.pay()["tid"] != first


def test_an_internal_fault_is_999_without_a_traceback_and_journaled():
    from payletter_emulator import create_app
    app = create_app(db=":memory:")

    def broken():
        raise RuntimeError("disk on fire")

    app.add_url_rule("/v1.0/broken", "broken", broken, methods=["POST"])
    client = app.test_client()
    response = client.post("/v1.0/broken", json={})
    assert response.status_code == 500
    assert response.get_json() == {"code": 999, "message": "Internal server error"}
    entry = client.get("/_emulator/requests").get_json()["requests"][-1]
    assert entry["status"] == 500 and entry["error"] == "RuntimeError: disk on fire"


def test_every_token_made_has_the_shape_the_control_api_and_the_pages_read():
    longest = str(token(9_999_999_999_999, 99_999))  # the last 13-digit epoch millisecond
    assert len(longest) == TOKEN_DIGITS and is_token(longest) and is_token(str(token(1_764_378_000_000, 1)))
    assert not any(is_token(text) for text in ("", "12ab", "1\u00b2", " 1", "9" * (TOKEN_DIGITS + 1)))


def test_a_token_longer_than_any_token_is_unknown_not_a_crash(api):
    for path in ("/_emulator/payments/12345678901234567890123/approve",):
        response = api.http.post(api.url + path, json={})
        assert response.status_code == 404 and response.json()["code"] == 4301
    response = api.http.get(api.url + "/_emulator/payments/12345678901234567890123")
    assert response.status_code == 404 and response.json()["code"] == 4309
