"""Hostile input against a live emulator: schemathesis from its own /openapi.json (the gateway's
API and the control API; the one spec-driven fuzz: no 500, no answer outside the schema), then
what a fuzzer does not send: bodies that are no JSON document, deep nesting, wrong content types,
invalid UTF-8, oversize and chunked bodies, CR/LF in the merchant's URLs, HTML in every page,
keys that must never be written down, and a control API that is locked or switched off. The
raw-HTTP tests run on one process and on several (`--workers`).

What other files already prove is not repeated here: the 413 of a large JSON body and malformed
JSON (test_payments_request.py), text/plain read as JSON (test_leniency.py), merchant values
escaped on the payment and return pages (test_pages.py), the callback allow-list
(test_callbacks.py), the validator on random values (test_validation_fast_path.py)."""
from __future__ import annotations

import json
import re
import socket
from urllib.parse import quote, urlsplit

import pytest
import requests
import schemathesis
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.config import SchemathesisConfig
from schemathesis.specs.openapi.checks import (content_type_conformance, response_schema_conformance,
                                               status_code_conformance)

from payletter_emulator.domain.errors import catalog
from payletter_emulator.engines.scenario import SIZE_LIMIT as SCENARIO_LIMIT
from payletter_emulator.web.app import create_app

from .browser import read_html
from .conftest import OTHER_CLIENT, PAYMENT_KEY, SEARCH_KEY, Api, EmulatorProcess

KEYS = (PAYMENT_KEY, SEARCH_KEY, *OTHER_CLIENT[1:])
ALLOWED_HOST = "callbacks.invalid"  # the schemathesis server's allow-list: no callback leaves it
AUTH = {"Authorization": f"PLKEY {PAYMENT_KEY}"}
SEARCH = {"Authorization": f"PLKEY {SEARCH_KEY}"}
REQUEST = {"pgcode": "creditcard", "client_id": "pay_test", "user_id": "test_user_id", "amount": 1000,
           "product_name": "p", "return_url": "https://merchant.example/result",
           "callback_url": "http://127.0.0.1:9/callback", "cancel_url": "https://merchant.example/cancel"}


def code(kind: str) -> int:
    return catalog()[kind].code


# --- servers ----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def hostile(tmp_path_factory):
    """The server schemathesis talks to: callbacks may go only to a host nothing names, so each is
    blocked before it is sent (no connection, no name lookup)."""
    process = EmulatorProcess(tmp_path_factory.mktemp("schemathesis"), "--callback-host", ALLOWED_HOST,
                              "--callback-timeout", "1")
    yield process
    process.stop()


@pytest.fixture(scope="module", params=["one-process", "workers"])
def server(request, tmp_path_factory):
    """One process and two; callbacks only to loopback."""
    workers = "2" if request.param == "workers" else "1"
    process = EmulatorProcess(tmp_path_factory.mktemp(request.param), "--workers", workers,
                              "--callback-host", "127.0.0.1", "--callback-timeout", "1")
    yield process
    process.stop()


@pytest.fixture
def api(server):
    client = Api(server.url, "http://127.0.0.1:9/callback")
    client.control("/reset")
    yield client
    client.http.delete(server.url + "/_emulator/scenario", timeout=30)


def raw(url: str, head: bytes, body: bytes = b"") -> tuple[int, dict, bytes]:
    """Send bytes as they are (no client library tidies them); status, headers, body."""
    where = urlsplit(url)
    with socket.create_connection((where.hostname, where.port), timeout=30) as connection:
        connection.sendall(head.replace(b"\n", b"\r\n") + b"Host: x\r\nConnection: close\r\n\r\n" + body)
        answer = b""
        while b"\r\n\r\n" not in answer and (chunk := connection.recv(65536)):
            answer += chunk
        header_block, _, content = answer.partition(b"\r\n\r\n")
        lines = header_block.decode("latin-1").split("\r\n")
        headers = {k.lower(): v for k, v in (line.split(": ", 1) for line in lines[1:] if ": " in line)}
        # Read what the answer says it has: a server that did not read the whole request may
        # keep the connection open after answering.
        length = int(headers.get("content-length", -1))
        while (length < 0 or len(content) < length) and (chunk := connection.recv(65536)):
            content += chunk
    return int(lines[0].split()[1]), headers, content


def envelope(status: int, body: bytes) -> dict:
    """The gateway's error envelope, never a 500."""
    assert 400 <= status < 500, (status, body[:300])
    answer = json.loads(body)
    assert set(answer) == {"code", "message"} and isinstance(answer["code"], int), answer
    return answer


# --- schemathesis -----------------------------------------------------------------------------

# Bounded for CI: a dozen fuzzed examples per operation beside the coverage phase's boundary
# cases, a fixed seed (a failure comes back the same way), no example database.
CONFIG = {"seed": 20261129, "generation": {"max-examples": 12, "database": "none"},
          "phases": {"stateful": {"enabled": False}}}
CHECKS = [not_a_server_error, response_schema_conformance, status_code_conformance, content_type_conformance]
FRESH = "fresh"  # a path parameter replaced, at call time, by a real one made for the case


def served_document() -> dict:
    """/openapi.json as an emulator serves it; schemathesis needs it when tests are collected, so
    it comes from an app in this process, and the next test checks the live server serves the same."""
    return create_app(db=":memory:").test_client().get("/openapi.json").get_json()


DOCUMENT = served_document()
schema = schemathesis.openapi.from_dict(DOCUMENT, config=SchemathesisConfig.from_dict(CONFIG))


def test_the_live_document_is_the_one_fuzzed(hostile):
    assert requests.get(hostile.url + "/openapi.json", timeout=30).json() == DOCUMENT


@schema.hook
def flatmap_path_parameters(context, path_parameters):
    # Half the time a real token, tid or callback id, so the generated bodies reach the rules.
    if not path_parameters:
        return st.just(path_parameters)
    return st.sampled_from([path_parameters, {name: FRESH for name in path_parameters}])


@schema.hook
def map_body(context, body):
    if isinstance(body, dict) and "client_id" in body:  # the key's own client, or it stops at 403
        return {**body, "client_id": "pay_test"}
    return body


@schema.hook
def map_query(context, query):
    if isinstance(query, dict) and "client_id" in query:
        return {**query, "client_id": "pay_test"}
    return query


def real(api: Api, path: str, name: str) -> str:
    """A real value for the path parameter `name` of `path`, made for one case."""
    if name == "token":
        return str(api.request_payment(pgcode="creditcard", amount=60_000))
    if name == "callback_id":
        api.pay()
        return str(api.control("/callbacks", method="GET")["callbacks"][-1]["id"])
    if "virtual-accounts" in path:
        token = api.request_payment(pgcode="virtualaccount", amount=5_000)
        return api.control(f"/payments/{token}/approve", {})["fields"]["tid"]
    if "cashreceipt" in path:
        return api.pay(pgcode="banktransfer", amount=5_000)["tid"]
    if name == "tid" or name == "ref":
        return api.pay(amount=5_000)["tid"]
    return FRESH


@schema.parametrize()
def test_generated_requests_never_get_a_500_or_an_answer_outside_the_schema(case, hostile):
    api = Api(hostile.url, "http://127.0.0.1:9/callback")  # blocked by the allow-list
    for name, value in (case.path_parameters or {}).items():
        if value == FRESH:
            case.path_parameters[name] = real(api, case.path, name)
    headers = {}
    if case.path.startswith("/v1.0/"):
        headers = SEARCH if case.method == "GET" else AUTH
    case.call_and_validate(base_url=hostile.url, headers=headers, checks=CHECKS, timeout=60)


# --- identifiers in the control API's paths ---------------------------------------------------

CONTROL_IDS = [("GET", "/_emulator/payments/{}"), ("POST", "/_emulator/payments/{}/approve"),
               ("POST", "/_emulator/payments/{}/decline"), ("POST", "/_emulator/payments/{}/abandon"),
               ("GET", "/_emulator/callbacks/{}"), ("POST", "/_emulator/callbacks/{}/resend")]


ODD_IDS = {"superscript-two": "²", "arabic-indic-digits": "٩٨٧٦٥٤٣٢١", "beyond-64-bits": "9" * 30,
           "negative": "-1", "hex": "0x1f", "leading-space": " 1"}


@pytest.mark.parametrize("text", list(ODD_IDS.values()), ids=list(ODD_IDS))
@pytest.mark.parametrize("method,path", CONTROL_IDS)
def test_an_id_that_is_not_plain_digits_is_unknown_like_any_other(api, method, path, text):
    """Python's isdigit() is true for "²" and for Arabic-Indic digits; int() reads only some of
    them, and SQLite holds 64 bits: every such id is an unknown one, never a 500."""
    odd = api.http.request(method, api.url + path.format(quote(text)), json={}, timeout=30)
    plain = api.http.request(method, api.url + path.format("987654321"), json={}, timeout=30)
    assert plain.status_code == 404
    assert (odd.status_code, envelope(odd.status_code, odd.content)["code"]) == (404, plain.json()["code"])


@pytest.mark.parametrize("limit", ["²", "-5", "abc", ""], ids=["superscript-two", "negative", "letters", "empty"])
def test_a_journal_limit_that_is_no_count_still_answers(api, limit):
    api.post("/v1.0/payments/request", REQUEST)
    response = api.http.get(api.url + "/_emulator/requests", params={"limit": limit}, timeout=30)
    assert response.status_code == 200, response.text
    assert isinstance(response.json()["requests"], list)


def test_a_journal_limit_beyond_64_bits_is_refused_in_the_envelope(api):
    response = api.http.get(api.url + "/_emulator/requests", params={"limit": "9" * 30}, timeout=30)
    assert response.status_code == 406
    assert "more than 1000, the most one page holds" in envelope(response.status_code, response.content)["message"]


@pytest.mark.parametrize("amount", ["²", "١٠٠٠", "1e3", " 1000 ", "-", "+1000"])
def test_a_scenario_rule_on_amounts_reads_any_amount_text(api, amount):
    """Rules are matched before validation, on what the merchant sent: any text where an amount
    belongs is answered in the envelope (by the rule, or by validation)."""
    scenario = {"version": 1, "name": "amounts", "rules": [
        {"name": "large", "when": {"amount": {"min": 1000}}, "then": {"api_error": {"status": 406, "code": 9999}}},
        {"name": "exact", "when": {"amount": [5, 7]}, "then": {"api_error": {"status": 406, "code": 9998}}}]}
    assert api.http.put(api.url + "/_emulator/scenario", json=scenario, timeout=30).status_code == 200
    response = api.post("/v1.0/payments/request", {**REQUEST, "amount": amount})
    envelope(response.status_code, response.content)


# --- deep nesting ----------------------------------------------------------------------------

def nested(depth: int, shape: str) -> str:
    return "[" * depth + "]" * depth if shape == "array" else '{"a":' * depth + "1" + "}" * depth


@pytest.mark.parametrize("depth", [900, 100_000])
@pytest.mark.parametrize("shape", ["array", "object"])
@pytest.mark.parametrize("where", ["gateway body", "gateway field", "approve", "clock", "scenario json",
                                   "scenario yaml"])
def test_deep_nesting_is_refused_in_the_envelope(api, where, shape, depth):
    value = nested(depth, shape)
    if where == "gateway body":
        status, _, body = raw(api.url, b"POST /v1.0/payments/request HTTP/1.1\nAuthorization: PLKEY %s\n"
                              b"Content-Type: application/json\nContent-Length: %d\n" % (PAYMENT_KEY.encode(), len(value)),
                              value.encode())
    elif where == "gateway field":
        text = json.dumps(REQUEST)[:-1] + ', "custom_parameter": ' + value + "}"
        response = api.http.post(api.url + "/v1.0/payments/request", data=text, timeout=30,
                                 headers={**AUTH, "Content-Type": "application/json"})
        status, body = response.status_code, response.content
    elif where in ("approve", "clock"):
        token = api.request_payment() if where == "approve" else None
        path = f"/_emulator/payments/{token}/approve" if token else "/_emulator/clock"
        response = api.http.post(api.url + path, data='{"option": ' + value + "}", timeout=30,
                                 headers={"Content-Type": "application/json"})
        status, body = response.status_code, response.content
    else:
        kind = "application/yaml" if where == "scenario yaml" else "application/json"
        response = api.http.put(api.url + "/_emulator/scenario", data=value, headers={"Content-Type": kind}, timeout=60)
        status, body = response.status_code, response.content
    # A scenario past its size limit is refused for its size (413) before anything reads it.
    too_large = where.startswith("scenario") and len(value.encode()) > SCENARIO_LIMIT
    assert status == (413 if too_large else 406), (status, body[:300])
    envelope(status, body)
    assert api.http.get(api.url + "/_emulator/requests", timeout=30).status_code == 200


def test_yaml_aliases_cannot_blow_a_small_scenario_up(tmp_path):
    """Nine levels of nine aliases: 600 bytes that stand for 387 million strings. Refused at once;
    on a server of its own, since a server that expands them is busy for a very long time."""
    levels = ["[" + ", ".join(["lol"] * 9) + "]"]
    levels += ["[" + ", ".join([f"*a{i}"] * 9) + "]" for i in range(8)]
    anchors = "\n".join(f"        h{i}: &a{i} {level}" for i, level in enumerate(levels))
    document = f"version: 1\nname: laughs\nrules:\n  - name: r\n    when:\n      header:\n{anchors}\n    then: {{abandon: {{}}}}\n"
    assert len(document) < 1000
    process = EmulatorProcess(tmp_path)
    try:
        response = requests.put(process.url + "/_emulator/scenario", data=document, timeout=60,
                                headers={"Content-Type": "application/yaml"})
        answer = envelope(response.status_code, response.content)
        assert answer["code"] == code("scenario_invalid") and len(response.content) < 10_000
    finally:
        process.process.kill()
        process.stop()


# --- content types and encodings ---------------------------------------------------------------

FORM = "&".join(f"{k}={quote(str(v))}" for k, v in REQUEST.items())
MULTIPART = (b"--x\r\nContent-Disposition: form-data; name=\"pgcode\"\r\n\r\ncreditcard\r\n--x--\r\n")


@pytest.mark.parametrize("content_type,body,status,kind", [
    ("application/json; charset=utf-8", json.dumps(REQUEST).encode(), 200, None),
    ("application/json", b"\xef\xbb\xbf" + json.dumps(REQUEST).encode(), 200, None),  # a UTF-8 BOM
    ("application/json", json.dumps(REQUEST).encode("utf-16"), 400, "body_not_utf8"),
    ("application/x-www-form-urlencoded", FORM.encode(), 406, "malformed_json"),
    ("multipart/form-data; boundary=x", MULTIPART, 406, "malformed_json"),
    ("application/xml", b"<request><pgcode>creditcard</pgcode></request>", 406, "malformed_json"),
    ("application/x-www-form-urlencoded", json.dumps(REQUEST).encode(), 200, None),  # JSON all the same
    (None, json.dumps(REQUEST).encode(), 200, None),
])
def test_content_types_of_a_gateway_request(api, content_type, body, status, kind):
    head = b"POST /v1.0/payments/request HTTP/1.1\nAuthorization: PLKEY %s\nContent-Length: %d\n" % (
        PAYMENT_KEY.encode(), len(body))
    if content_type:
        head += b"Content-Type: %s\n" % content_type.encode()
    got, _, answer = raw(api.url, head, body)
    if status == 200:
        assert got == 200 and "token" in json.loads(answer), answer
    else:
        assert (got, envelope(got, answer)["code"]) == (status, code(kind))


# Bodies no JSON encoder writes, which a fuzzer driven by the API's schemas therefore never sends.
NOT_JSON = {"empty": b"", "not-utf8": b"\xff\xfe{\x00}", "cut-short": b'{"pgcode": "credit',
            "nul": b'{"user_id": "a\x00"}', "bare-nan": b'{"amount": NaN}', "huge-exponent": b'{"amount": 1e999}',
            "duplicate-keys": b'{"amount": 1, "amount": "x"}', "bom": "\ufeff{}".encode(), "a-number": b"1000",
            "latin-1": '{"product_name": "caf\u00e9"}'.encode("latin-1")}
GATEWAY_BODIES = ["/v1.0/payments/request", "/v1.0/payments/autopay", "/v1.0/payments/cancel",
                  "/v1.0/payments/cancel/partial", "/v1.0/cashreceipt/issue/tpay_test-202611290000001",
                  "/v1.0/payments/status"]


@pytest.mark.parametrize("body", NOT_JSON.values(), ids=NOT_JSON)
def test_a_body_that_is_no_json_document_gets_the_envelope_everywhere(api, body):
    for path in GATEWAY_BODIES:
        status, _, answer = raw(api.url, b"POST %s HTTP/1.1\nAuthorization: PLKEY %s\nContent-Type: application/json\n"
                                b"Content-Length: %d\n" % (path.encode(), PAYMENT_KEY.encode(), len(body)), body)
        envelope(status, answer)


@pytest.mark.parametrize("content_type,body,kind", [
    ("application/x-www-form-urlencoded", b"advance_seconds=60", "control_cross_site"),  # a form anywhere
    ("multipart/form-data; boundary=x", MULTIPART, "control_cross_site"),
    ("application/json", b"\xff\xfe\x00{", "body_not_utf8"),
    ("text/html", b"<p>60</p>", "control_cross_site"),
])
def test_content_types_of_a_control_request(api, content_type, body, kind):
    response = api.http.post(api.url + "/_emulator/clock", data=body, headers={"Content-Type": content_type},
                             timeout=30)
    assert envelope(response.status_code, response.content)["code"] == code(kind)


@pytest.mark.parametrize("text", ['"\\ud800"', '"a\\udc00\\ud800b"'], ids=["high-half", "halves-reversed"])
@pytest.mark.parametrize("where", ["gateway", "decline", "scenario"])
def test_a_lone_surrogate_escape_is_refused_like_any_text_that_is_not_utf8(api, where, text):
    """JSON may spell a UTF-16 half (\\ud800) that no UTF-8 text can hold: refused as malformed,
    and the refusal is journaled like any other."""
    if where == "gateway":
        body = json.dumps(REQUEST)[:-1] + ', "product_name": ' + text + "}"
        response = api.http.post(api.url + "/v1.0/payments/request", data=body, timeout=30,
                                 headers={**AUTH, "Content-Type": "application/json"})
    elif where == "decline":
        token = api.request_payment()
        response = api.http.post(f"{api.url}/_emulator/payments/{token}/decline", data='{"message": ' + text + "}",
                                 headers={"Content-Type": "application/json"}, timeout=30)
        assert api.control(f"/payments/{token}", method="GET")["status"] == "created"
    else:
        response = api.http.put(api.url + "/_emulator/scenario", data='{"version": 1, "name": ' + text + "}",
                                headers={"Content-Type": "application/json"}, timeout=30)
    assert response.status_code == 406, response.text
    envelope(response.status_code, response.content)
    if where == "gateway":
        assert api.control("/payments", method="GET")["payments"] == []
        [entry] = api.control("/requests", method="GET")["requests"]
        assert entry["status"] == 406 and entry["path"] == "/v1.0/payments/request"


BAD_UTF8 = [b"\xff", b"\xc0\xaf", b"\xe2\x82", b"\xed\xa0\x80", b"\xf4\x90\x80\x80"]


@pytest.mark.parametrize("bad", BAD_UTF8, ids=lambda b: b.hex())
def test_invalid_utf8_anywhere_in_a_gateway_request(api, bad):
    """In the body, the query, the path and the key: an answer in the envelope (or, for bytes the
    HTTP server itself refuses in the request line, its 400), never a 500."""
    body = json.dumps(REQUEST).encode().replace(b'"p"', b'"' + bad + b'"')
    status, _, answer = raw(api.url, b"POST /v1.0/payments/request HTTP/1.1\nAuthorization: PLKEY %s\n"
                            b"Content-Type: application/json\nContent-Length: %d\n" % (PAYMENT_KEY.encode(), len(body)),
                            body)
    assert envelope(status, answer)["code"] == code("body_not_utf8")
    percent = "".join(f"%{byte:02X}" for byte in bad).encode()
    for target in (b"/v1.0/payments/transaction/list?client_id=pay_test&date=2026" + percent + b"&date_type=settle",
                   b"/v1.0/payments/transaction/list?client_id=" + percent + b"&date=20261129&date_type=settle",
                   b"/v1.0/receipt/info/t" + percent + b"?client_id=pay_test&amount=1&transaction_date=20261129"):
        status, _, answer = raw(api.url, b"GET " + target + b" HTTP/1.1\nAuthorization: PLKEY %s\n" % SEARCH_KEY.encode())
        envelope(status, answer)
    status, _, answer = raw(api.url, b"POST /v1.0/payments/request HTTP/1.1\nAuthorization: PLKEY " + bad + b"\n"
                            b"Content-Type: application/json\nContent-Length: 2\n", b"{}")
    assert envelope(status, answer)["code"] == code("auth_missing")
    status, _, answer = raw(api.url, b"GET /v1.0/receipt/info/t" + bad + b"?client_id=pay_test HTTP/1.1\n"
                            b"Authorization: PLKEY %s\n" % SEARCH_KEY.encode())
    assert 400 <= status < 500, (status, answer[:300])


@pytest.mark.parametrize("bad", BAD_UTF8, ids=lambda b: b.hex())
def test_invalid_utf8_in_control_paths_and_pages(api, bad):
    percent = "".join(f"%{byte:02X}" for byte in bad).encode()
    for method, path in CONTROL_IDS:
        status, _, answer = raw(api.url, method.encode() + b" " + path.format("{}").encode().replace(b"{}", percent)
                                + b" HTTP/1.1\nContent-Type: application/json\nContent-Length: 2\n", b"{}")
        envelope(status, answer)
    for query in (b"token=" + percent, b"token=1&location=" + percent, b"token=1&lang=" + percent,
                  b"token=" + percent + b"&" + percent + b"=" + percent):
        status, headers, answer = raw(api.url, b"GET /pgsvc/hub.asp?" + query + b" HTTP/1.1\n")
        assert 400 <= status < 500 and headers["content-type"].startswith("text/html"), (status, answer[:300])
    token = api.request_payment()
    form = b"action=pay&card_number=" + percent + b"&card_expiry=" + bad
    status, headers, answer = raw(api.url, b"POST /pgsvc/hub.asp?location=online&token=%d HTTP/1.1\n"
                                  b"Content-Type: application/x-www-form-urlencoded\nContent-Length: %d\n"
                                  % (token, len(form)), form)
    assert status == 422 and headers["content-type"].startswith("text/html"), (status, answer[:300])


# --- sizes ----------------------------------------------------------------------------------

def chunked(body: bytes) -> bytes:
    pieces = [body[i:i + 65536] for i in range(0, len(body), 65536)]
    return b"".join(b"%x\r\n%s\r\n" % (len(piece), piece) for piece in pieces) + b"0\r\n\r\n"


def test_a_chunked_body_over_the_limit_is_413_not_cut_and_read(api):
    """Without Content-Length the server reads the chunks as they come; past 1 MiB the answer is
    the same 413 as for a declared length, not the first MiB read as if it were the whole body."""
    body = json.dumps({**REQUEST, "custom_parameter": "x" * (2 * 1024 * 1024)}).encode()
    status, _, answer = raw(api.url, b"POST /v1.0/payments/request HTTP/1.1\nAuthorization: PLKEY %s\n"
                            b"Content-Type: application/json\nTransfer-Encoding: chunked\n" % PAYMENT_KEY.encode(),
                            chunked(body))
    assert (status, envelope(status, answer)["code"]) == (413, code("body_too_large"))


def test_a_chunked_body_within_the_limit_is_read_whole(api):
    status, _, answer = raw(api.url, b"POST /v1.0/payments/request HTTP/1.1\nAuthorization: PLKEY %s\n"
                            b"Content-Type: application/json\nTransfer-Encoding: chunked\n" % PAYMENT_KEY.encode(),
                            chunked(json.dumps(REQUEST).encode()))
    assert status == 200 and "token" in json.loads(answer)


@pytest.mark.parametrize("method,path", [("POST", "/_emulator/clock"), ("PUT", "/_emulator/scenario"),
                                         ("POST", "/v1.0/payments/status"), ("POST", "/_emulator/callbacks/flush")])
def test_oversize_bodies_everywhere_are_413_in_the_envelope(api, method, path):
    # A connection of its own: the server closes it, the body being unread.
    response = requests.request(method, api.url + path, data=b"{" + b" " * (1024 * 1024 + 1) + b"}",
                                headers={**AUTH, "Content-Type": "application/json"}, timeout=30)
    assert (response.status_code, envelope(413, response.content)["code"]) == (413, code("body_too_large"))


def test_a_declared_length_beyond_the_limit_is_refused_before_reading(api):
    status, _, answer = raw(api.url, b"POST /v1.0/payments/request HTTP/1.1\nAuthorization: PLKEY %s\n"
                            b"Content-Type: application/json\nContent-Length: 99999999999\n" % PAYMENT_KEY.encode(), b"{}")
    assert (status, envelope(status, answer)["code"]) == (413, code("body_too_large"))


def test_a_client_that_leaves_mid_body_or_gets_413_costs_no_traceback_and_no_journal_entry(api, server):
    log = server.workdir / "emulator.log"
    seen = log.stat().st_size
    head = b"POST /v1.0/payments/request HTTP/1.1\nAuthorization: PLKEY %s\nContent-Type: application/json\n" % (
        PAYMENT_KEY.encode())
    for path in (b"/v1.0/payments/request", b"/_emulator/clock"):  # gone after 15 bytes of 1,000
        with socket.create_connection(urlsplit(api.url).netloc.split(":"), timeout=30) as connection:
            connection.sendall((head.replace(b"/v1.0/payments/request", path) + b"Host: x\nContent-Length: 1000\n\n")
                               .replace(b"\n", b"\r\n") + b'{"pgcode": "cre')
    status, _, _ = raw(api.url, head + b"Content-Length: 99999999\n", b"{}")
    assert status == 413
    status, _, _ = raw(api.url, head + b"Transfer-Encoding: chunked\n", chunked(b"[" + b"1," * (1024 * 1024) + b"1]"))
    assert status == 413
    assert api.post("/v1.0/payments/request", REQUEST).status_code == 200  # served after all of it
    [entry] = api.control("/requests", method="GET")["requests"]  # the only entry
    assert entry["status"] == 200
    with open(log, "rb") as written:
        written.seek(seen)
        assert b"Traceback" not in written.read()


# --- CR/LF in the merchant's URLs -------------------------------------------------------------

INJECTED = "\r\nX-Injected: yes\r\n\r\n<html>"


@pytest.fixture
def recorder(callback_receiver):
    """A merchant endpoint's address: the callback receiver keeps the path and headers of every POST."""
    return callback_receiver.url.removesuffix("/callback")


@pytest.mark.parametrize("where", ["path", "query", "host"])
def test_cr_lf_in_callback_url_never_reaches_the_merchant_as_a_header(api, callback_receiver, recorder, where):
    host, port = urlsplit(recorder).netloc.split(":")
    url = {"path": f"{recorder}/cb{INJECTED}", "query": f"{recorder}/cb?x=1{INJECTED}",
           "host": f"http://{host}{INJECTED}:{port}/cb"}[where]
    response = api.post("/v1.0/payments/request", {**REQUEST, "callback_url": url})
    if response.status_code != 200:  # refusing such a URL is as good as sending it safely
        envelope(response.status_code, response.content)
        return
    tid = api.control(f"/payments/{response.json()['token']}/approve", {})["fields"]["tid"]
    api.flush()
    [notification] = api.control(f"/callbacks?tid={tid}", method="GET")["callbacks"]
    assert [a["number"] for a in notification["attempts"]] == [1]
    for seen in callback_receiver.received:
        assert "\r" not in seen.path and "\n" not in seen.path and "X-Injected" not in seen.headers, seen
    # The dispatcher goes on with the next one.
    fields = api.pay(callback_url=recorder + "/after")
    assert api.control(f"/callbacks?tid={fields['tid']}", method="GET")["callbacks"][0]["status"] == "delivered"


@pytest.mark.parametrize("field,extra", [("cancel_url", {}),
                                         ("app_cancel_url", {"inapp_flag": "Y", "app_return_url": "myapp://r"})])
def test_cr_lf_in_a_cancel_address_stays_inside_location(api, field, extra):
    response = api.post("/v1.0/payments/request", {**REQUEST, **extra, field: "https://merchant.example/c" + INJECTED})
    assert response.status_code == 200, response.text
    status, headers, _ = raw(api.url, b"POST /pgsvc/hub.asp?location=online&token=%d HTTP/1.1\n"
                             b"Content-Type: application/x-www-form-urlencoded\nContent-Length: 13\n"
                             % response.json()["token"], b"action=cancel")
    assert "x-injected" not in headers, headers
    if status == 303:
        assert "\r" not in headers["location"] and "\n" not in headers["location"]
        assert headers["location"].startswith("https://merchant.example/c%0D%0AX-Injected")
    else:
        assert status == 200  # the cancelled page, when the address is not one a browser may go to


def test_cr_lf_in_a_cash_receipt_return_url_stays_in_the_query(api):
    tid = api.pay(pgcode="banktransfer", amount=5000)["tid"]
    response = api.post(f"/v1.0/cashreceipt/issue/{tid}",
                        {"client_id": "pay_test", "return_url": "https://merchant.example/r" + INJECTED})
    if response.status_code != 200:
        envelope(response.status_code, response.content)
        return
    url = response.json()["receipt_url"]
    assert "\r" not in url and "\n" not in url and " " not in url
    page = api.http.get(url, timeout=30)
    assert page.headers["Content-Type"].startswith("text/html") and "X-Injected" not in page.headers
    assert "<html>" not in page.text.split("<body", 1)[1]


# --- HTML in every page ---------------------------------------------------------------------------

MARK = "\"'><script>alert(1)</script><svg onload=alert(2)>"
RAW = ("<script>alert(1)", "<svg onload")


def html_of(response: requests.Response) -> str:
    assert response.status_code < 500 and response.headers["Content-Type"].startswith("text/html"), response.text[:300]
    for raw_mark in RAW:
        assert raw_mark not in response.text, response.url
    return response.text


def test_no_page_renders_what_it_was_sent(api):
    """Every page, with the mark in whatever it reads: the query (known and unknown names), the
    form, the payer's inputs, the merchant's values, and a scenario's failure message."""
    page = f"{api.url}/pgsvc/hub.asp"
    merchant = {"user_name": MARK[:20], "order_no": MARK[:40], "custom_parameter": MARK, "service_name": MARK[:20]}
    token = api.request_payment(**merchant)
    get = lambda url, **params: html_of(api.http.get(url, params=params, timeout=30, allow_redirects=False))  # noqa: E731
    post = lambda url, data: html_of(api.http.post(url, data=data, timeout=30, allow_redirects=False))  # noqa: E731
    # Error pages echo what they could not use.
    get(page, token=MARK)
    get(page, token=token, location=MARK)
    get(page, token="1", lang=MARK)
    get(f"{api.url}/PGSVC/AllTheGate/Receipt_All.asp", id=MARK)
    get(f"{api.url}/PGSVC/Receipt/ReceiptForm.asp", id=MARK, token="1", returnurl=MARK, type=MARK)
    # The payment page carries its own query into the language switch and the form's action.
    text = get(page, token=token, location="online", x=MARK, **{MARK: "1"})
    assert "lang=en" in text
    # The payer's inputs come back in the form when they are wrong, and in the app step.
    post(f"{page}?location=online&token={token}", {"action": "pay", "card_number": MARK, "card_expiry": MARK,
                                                     "install_month": MARK, MARK: MARK})
    bank = api.request_payment(pgcode="banktransfer", **merchant)
    text = post(f"{page}?location=mobile&token={bank}", {"action": "pay", "bank_code": "004", MARK: MARK})
    assert 'data-testid="app-step"' in text
    # The cancelled page.
    naver = api.request_payment(pgcode="naverpay", **merchant)
    post(f"{page}?location=online&token={naver}&x={quote(MARK)}", {"action": "cancel"})
    # A scenario's failure message on the result page.
    scenario = {"version": 1, "name": "marked", "rules": [{"name": "say it", "when": {"pgcode": ["creditcard"]},
                                                          "then": {"decline": {"code": "6099", "message": MARK}}}]}
    assert api.http.put(api.url + "/_emulator/scenario", json=scenario, timeout=30).status_code == 200
    card = api.request_payment(**merchant)
    text = post(f"{page}?location=online&token={card}", {"action": "pay", "card_number": "4579730000001235",
                                                          "card_expiry": "12/39", "install_month": "00"})
    assert 'data-testid="failure-message"' in text
    api.http.delete(api.url + "/_emulator/scenario", timeout=30)
    # The receipt and the cash-receipt form of a paid payment with the merchant's values.
    fields = api.pay(pgcode="banktransfer", amount=5000, **merchant)
    day = fields["transaction_date"][:10].replace("-", "")
    receipt = api.get(f"/v1.0/receipt/info/{fields['tid']}",
                      {"client_id": "pay_test", "amount": 5000, "transaction_date": day}).json()["receipt_url"]
    get(receipt, x=MARK)
    form = api.post(f"/v1.0/cashreceipt/issue/{fields['tid']}",
                    {"client_id": "pay_test", "return_url": "https://merchant.example/r?x=" + quote(MARK)}).json()
    get(form["receipt_url"], x=MARK)
    text = post(form["receipt_url"], {"cash_receipt_type": MARK, "cash_receipt_id": MARK})
    text = post(form["receipt_url"], {"cash_receipt_type": "02", "cash_receipt_id": "1234567890"})
    action = next(f for f in read_html(text).forms if f["testid"] == "return-form")["action"]
    assert action == "https://merchant.example/r?x=" + quote(MARK)


# --- keys are never written down -------------------------------------------------------------

def test_keys_are_never_logged_journaled_or_shown(api, server, recorder):
    other_payment, other_search = OTHER_CLIENT[1:]
    api.callback_url = recorder + "/callback"
    api.pay()  # a callback, its attempt and payhash
    api.post("/v1.0/payments/request", {**REQUEST, "client_id": "shop_b"})  # 403: another client's id
    api.post("/v1.0/payments/request", {**REQUEST, "amount": "x"})  # 406
    api.post("/v1.0/payments/request", REQUEST, key=SEARCH_KEY)  # 403: wrong kind of key
    api.post("/v1.0/payments/request", REQUEST, key=PAYMENT_KEY[:-2] + "==")  # 401: a near miss
    api.post("/v1.0/payments/request", REQUEST, key=other_payment)  # 403: a key of shop_b
    api.get("/v1.0/payments/transaction/list", {"client_id": "pay_test", "date": "20261129",
                                                 "date_type": "settle"}, key=other_search)
    api.http.post(api.url + "/v1.0/payments/request", json=REQUEST, timeout=30,
                  headers={"Authorization": f"Bearer {PAYMENT_KEY}"})  # 401: another scheme
    api.http.get(api.url + "/v1.0/payments/request", headers=AUTH, timeout=30)  # 405
    api.http.post(api.url + "/v1.0/nowhere", headers=AUTH, timeout=30)  # 404
    api.http.post(api.url + "/v1.0/payments/request", data=b"\xff", headers=AUTH, timeout=30)  # 406, not JSON
    api.flush()
    shown = [api.http.get(api.url + path, timeout=30).text
             for path in ("/_emulator/requests", "/_emulator/payments", "/_emulator/callbacks", "/_emulator/scenario")]
    assert len(json.loads(shown[0])["requests"]) >= 10  # the journal did record them
    log = (server.workdir / "emulator.log").read_bytes().decode("utf-8", "replace")
    for key in KEYS:
        for text in (*shown, log):
            assert key not in text and quote(key, safe="") not in text


# --- the control API locked or switched off ---------------------------------------------------

CONTROL = sorted((method.upper(), path) for path, item in DOCUMENT["paths"].items() for method in item
                 if "control" in item[method].get("tags", []) and path != "/_emulator/health")


@pytest.fixture(scope="module")
def locked(tmp_path_factory):
    process = EmulatorProcess(tmp_path_factory.mktemp("locked"), "--control-token", "s3cret-token")
    yield process
    process.stop()


@pytest.fixture(scope="module")
def switched_off(tmp_path_factory):
    process = EmulatorProcess(tmp_path_factory.mktemp("off"), "--no-control")
    yield process
    process.stop()


def fill(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "1", path)


@pytest.mark.parametrize("method,path", CONTROL)
def test_every_control_operation_needs_the_token(locked, method, path):
    url = locked.url + fill(path)
    # (" s3cret-token " is the token: whitespace around a header's value is not part of it.)
    for token in (None, "", "s3cret-toke", "s3cret-token x", "S3CRET-TOKEN", "s3cret-tokën"):
        headers = {"Content-Type": "application/json"}
        if token is not None:
            headers["X-Emulator-Token"] = token.encode("utf-8")
        response = requests.request(method, url, data=b"{}", headers=headers, timeout=30)
        assert (response.status_code, envelope(401, response.content)["code"]) == (401, code("control_token_missing"))
    opened = requests.request(method, url, data=b"{}", timeout=30,
                              headers={"X-Emulator-Token": "s3cret-token", "Content-Type": "application/json"})
    assert opened.status_code != 401


@pytest.mark.parametrize("method,path", CONTROL)
def test_every_control_operation_is_gone_when_switched_off(switched_off, method, path):
    response = requests.request(method, switched_off.url + fill(path), data=b"{}", timeout=30,
                                headers={"Content-Type": "application/json"})
    assert (response.status_code, envelope(404, response.content)["code"]) == (404, code("not_found"))


def test_switched_off_still_serves_the_gateway_and_its_pages(switched_off):
    answer = requests.post(switched_off.url + "/v1.0/payments/request", json=REQUEST, headers=AUTH, timeout=30)
    assert answer.status_code == 200
    page = requests.get(answer.json()["online_url"], timeout=30)
    assert page.status_code == 200 and 'data-testid="pay-button"' in page.text
    assert requests.get(switched_off.url + "/_emulator/health", timeout=30).status_code == 200
