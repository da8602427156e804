"""The control plane is safe on a developer's machine: a callback_url cannot lead back into the
emulator's own control API, another site's web page cannot drive it, the control token never
reaches a log, and its lists page instead of stopping short. Against a live emulator."""
from __future__ import annotations

from urllib.parse import urlsplit

import pytest
import requests

from payletter_emulator.client import EmulatorClient
from payletter_emulator.domain.errors import catalog

from .conftest import Api, EmulatorProcess, _clean, refused

FORM_HEADERS = {"Content-Type": "application/x-www-form-urlencoded"}


def code(kind: str) -> int:
    return catalog()[kind].code


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    process = EmulatorProcess(tmp_path_factory.mktemp("safety"), "--callback-timeout", "1")
    yield process
    process.stop()


@pytest.fixture
def api(server, callback_receiver):
    yield from _clean(server, callback_receiver)


def payments(api: Api) -> list[dict]:
    return api.control("/payments", method="GET")["payments"]


# --- a callback_url that leads back into the control API --------------------------------------

OWN_CONTROL_API = [
    "http://127.0.0.1:{port}/_emulator/reset",
    "http://localhost:{port}/_emulator/reset",
    "http://LOCALHOST.:{port}/_emulator/reset",
    "http://0.0.0.0:{port}/_emulator/reset",
    "http://[::1]:{port}/_emulator/reset",
    "http://[::ffff:127.0.0.1]:{port}/_emulator/reset",
    "http://127.1:{port}/_emulator/reset",  # the socket library reads these as 127.0.0.1
    "http://2130706433:{port}/_emulator/reset",
    "http://127.0.0.2:{port}/_emulator/clock",
    "https://127.0.0.1:{port}/_emulator/reset",
    "http://127.0.0.1:{port}/%5Femulator/reset",  # percent-encoded, as the server decodes it
    "http://127.0.0.1:{port}/x/../_emulator/reset",
    "http://127.0.0.1:{port}//_emulator/reset",
    "http://127.0.0.1:{port}/_sandbox/sb12345678/_emulator/reset",  # a sandbox's control API
]


@pytest.mark.parametrize("template", OWN_CONTROL_API)
def test_a_callback_url_into_the_emulators_own_control_api_is_refused(api, template):
    api.pay()  # a payment a reset would wipe
    url = template.format(port=urlsplit(api.url).port)
    body = refused(api.post("/v1.0/payments/request", api.request_body(callback_url=url)), 406, code("field_invalid"))
    assert body["message"].startswith("callback_url must not lead to the emulator's own control API"), body
    assert len(payments(api)) == 1


def test_a_callback_url_at_the_public_url_is_refused_too(tmp_path, callback_receiver):
    process = EmulatorProcess(tmp_path, "--public-url", "http://emulator.test:9999")
    try:
        api = Api(process.url, callback_receiver.url)
        body = refused(api.post("/v1.0/payments/request", api.request_body(
            callback_url="http://emulator.test:9999/_emulator/reset")), 406, code("field_invalid"))
        assert "control API" in body["message"]
        # The same path on another port, or another host, is somebody else's.
        for url in ("http://emulator.test:9998/_emulator/reset", "http://shop.test:9999/_emulator/reset"):
            assert api.post("/v1.0/payments/request", api.request_body(callback_url=url)).status_code == 200
    finally:
        process.stop()


@pytest.mark.parametrize("url", ["ftp://merchant.example/callback", "file:///etc/passwd", "javascript:alert(1)",
                                 "/callback", "merchant.example/callback", "gopher://127.0.0.1:70/_emulator",
                                 "http:///callback", "http://merchant.example:99999/callback"])
def test_a_callback_url_that_is_not_http_is_refused(api, url):
    body = refused(api.post("/v1.0/payments/request", api.request_body(callback_url=url)), 406, code("field_invalid"))
    assert body["message"].startswith("callback_url must"), body


def test_the_emulators_own_address_outside_the_control_api_is_a_callback_url_like_any(api):
    url = f"http://127.0.0.1:{urlsplit(api.url).port}/merchant/callback"
    assert api.post("/v1.0/payments/request", api.request_body(callback_url=url)).status_code == 200


# --- requests another site's page could send --------------------------------------------------

@pytest.mark.parametrize("headers,data", [
    (FORM_HEADERS, b"x=1"),  # an HTML form
    ({"Content-Type": "multipart/form-data; boundary=x"}, b"--x--\r\n"),
    ({"Content-Type": "text/plain"}, b"{}"),  # fetch(..., {mode: "no-cors", body: "{}"})
    ({}, b"{}"),  # a body without a type
    ({"Content-Type": "application/json", "Origin": "https://evil.example"}, b"{}"),
    ({"Content-Type": "application/json", "Origin": "null"}, b"{}"),
    ({"Origin": "http://127.0.0.1:1"}, b""),  # another origin on this machine, no body
    ({"Content-Type": "application/json", "Sec-Fetch-Site": "cross-site"}, b"{}"),
])
def test_a_cross_site_request_is_refused_without_a_token(api, headers, data):
    api.pay()
    response = requests.post(api.url + "/_emulator/reset", data=data, headers=headers, timeout=30)
    assert refused(response, 403, code("control_cross_site"))["message"].startswith("control API: ")
    assert len(payments(api)) == 1  # nothing reset


def test_reading_from_a_foreign_origin_is_refused(api):
    response = requests.get(api.url + "/_emulator/payments", headers={"Origin": "https://evil.example"}, timeout=30)
    refused(response, 403, code("control_cross_site"))


@pytest.mark.parametrize("headers,data", [
    ({"Content-Type": "application/json"}, b"{}"),
    ({}, b""),  # curl -X POST, requests.post without a body
    ({"Content-Type": "application/json", "Origin": "{own}", "Sec-Fetch-Site": "same-origin"}, b"{}"),  # the dashboard
    ({"Content-Type": "application/json; charset=utf-8", "Sec-Fetch-Site": "none"}, b"{}"),
])
def test_same_origin_and_non_browser_requests_still_work(api, headers, data):
    api.pay()
    headers = {name: value.format(own=api.url) for name, value in headers.items()}
    response = requests.post(api.url + "/_emulator/reset", data=data, headers=headers, timeout=30)
    assert response.status_code == 200, response.text
    assert payments(api) == []


# --- the control token never reaches a log ----------------------------------------------------

@pytest.mark.parametrize("workers", ["1", "2"])
def test_the_control_token_never_lands_in_the_access_log(tmp_path, workers):
    token = "s3cret-Token.42"
    process = EmulatorProcess(tmp_path, "--control-token", token, "--access-log", "--workers", workers)
    try:
        session = requests.Session()
        opened = session.get(process.url + f"/_emulator/?token={token}&lang=ko", timeout=30)  # the dashboard's way in
        assert opened.status_code == 200 and opened.url.endswith("/_emulator/?lang=ko")
        for query in (f"token={token}", f"%74oken={token.replace('-', '%2D')}", f"x=1&TOKEN={token}"):
            requests.get(process.url + f"/_emulator/clock?{query}", headers={"X-Emulator-Token": token}, timeout=30)
        requests.get(process.url + f"/_emulator/?token={token}x", timeout=30)  # a wrong one: 401
    finally:
        process.stop()
    log = (tmp_path / "emulator.log").read_text()
    assert "GET /_emulator/?token=[redacted]&lang=ko" in log and "x=1&TOKEN=[redacted]" in log  # the lines are there
    assert token not in log and token.replace("-", "%2D") not in log and token.lower() not in log.lower()


def test_serve_writes_no_access_log_unless_asked(tmp_path):
    process = EmulatorProcess(tmp_path)
    try:
        requests.get(process.url + "/_emulator/clock?probe=1", timeout=30)
    finally:
        process.stop()
    assert "/_emulator/clock?probe=1" not in (tmp_path / "emulator.log").read_text()


# --- hosted pages are not framed by other sites -----------------------------------------------

def test_hosted_pages_may_be_framed_by_the_emulator_alone(api):
    token = api.request_payment()
    online_url = f"{api.url}/pgsvc/hub.asp?location=online&token={token}"
    for url, status in ((online_url, 200), (f"{api.url}/pgsvc/hub.asp?location=online&token=1", 404)):
        response = requests.get(url, timeout=30)
        assert response.status_code == status
        policy = [part.strip() for part in response.headers["Content-Security-Policy"].split(";")]
        assert "frame-ancestors 'self'" in policy and response.headers["X-Frame-Options"] == "SAMEORIGIN"


# --- NUL is refused alike on SQLite and PostgreSQL --------------------------------------------

@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def both(request, tmp_path_factory):
    """A server on SQLite, then one on PostgreSQL (which cannot keep NUL in text)."""
    workdir = tmp_path_factory.mktemp("nul")
    db = str(workdir / "emulator.db") if request.param == "sqlite" else \
        request.getfixturevalue("postgres_server").new_database()
    process = EmulatorProcess(workdir, db=db)
    yield process
    process.stop()


@pytest.fixture
def both_api(both, callback_receiver):
    yield from _clean(both, callback_receiver)


NUL_MESSAGE = "must not contain the NUL character (\\u0000)"


@pytest.mark.parametrize("where,field", [
    ({"user_name": "kim\u0000"}, "user_name"),
    ({"order_no": "\u0000"}, "order_no"),
    ({"custom_parameter": "a\u0000b"}, "custom_parameter"),
    ({"callback_url": "http://127.0.0.1:9/cb\u0000"}, "callback_url"),
    ({"extra\u0000": "1"}, "extra\\u0000"),  # a field's name, even one that would be ignored
])
def test_nul_in_a_gateway_request_is_refused_naming_the_field(both_api, where, field):
    body = refused(both_api.post("/v1.0/payments/request", both_api.request_body(**where)), 406, code("field_invalid"))
    assert body["message"] == f"{field} {NUL_MESSAGE}"
    assert payments(both_api) == []
    [entry] = both_api.control("/requests", method="GET")["requests"]  # journaled like any refusal
    assert entry["status"] == 406


def test_nul_in_a_query_path_or_control_body_is_refused(both_api):
    search = requests.get(both_api.url + "/v1.0/payments/transaction/list", timeout=30,
                          params={"client_id": "pay_test", "date": "20261129\u0000", "date_type": "settle"},
                          headers={"Authorization": "PLKEY MUI3MjM0RUExQTgyRDA1ODZGRDUyOEM4OTY2QTVCN0Y="})
    assert refused(search, 406, code("field_invalid"))["message"] == f"date {NUL_MESSAGE}"
    for path in ("/_emulator/payments/t%00", "/_emulator/callbacks?tid=%00", "/_emulator/payments?client_id=a%00",
                 "/_sandbox/sb%00/_emulator/payments", "/v1.0/receipt/info/t%00?client_id=pay_test"):
        assert refused(requests.get(both_api.url + path, timeout=30), 406, code("field_invalid"))
    token = both_api.request_payment()
    declined = requests.post(f"{both_api.url}/_emulator/payments/{token}/decline", json={"message": "no\u0000"},
                             timeout=30)
    assert refused(declined, 406)["message"] == f"message {NUL_MESSAGE}"
    scenario = requests.put(both_api.url + "/_emulator/scenario", timeout=30,
                            json={"version": 1, "name": "x", "rules": [{"name": "r\u0000", "when": {},
                                                                        "then": {"latency": {"ms": 1}}}]})
    assert refused(scenario, 406)["message"] == f"rules[0].name {NUL_MESSAGE}"
    # A raw NUL byte in a JSON string is no JSON at all; the journal keeps the request all the same.
    raw = requests.post(both_api.url + "/v1.0/payments/request", data=b'{"user_id": "a\x00"}', timeout=30,
                        headers={"Authorization": "PLKEY MTFBNTAzNTEwNDAxQUIyMjlCQzgwNTg1MkU4MkZENDA=",
                                 "Content-Type": "application/json"})
    refused(raw, 406, code("malformed_json"))
    assert both_api.control("/requests", method="GET")["requests"][-1]["request"] == {"user_id": "a\ufffd"}


# --- control lists page -----------------------------------------------------------------------

def test_control_lists_page_instead_of_stopping_at_a_thousand(both_api):
    api = both_api
    tokens = [api.request_payment(order_no=f"o{i}") for i in range(1001)]
    first = api.control("/payments", method="GET")
    assert [p["token"] for p in first["payments"]] == tokens[:1000] and first["next"] == str(tokens[999])
    rest = api.control(f"/payments?after={first['next']}", method="GET")
    assert [p["token"] for p in rest["payments"]] == tokens[1000:] and rest["next"] is None
    client = EmulatorClient(api.url)
    assert [p["token"] for p in client.payments()] == tokens  # the client follows the pages
    assert [p["token"] for p in client.payments(status="created")] == tokens

    latest = api.control("/requests", method="GET")  # the journal: the newest 1,000, and where the rest begins
    assert len(latest["requests"]) == 1000 and latest["earlier"] is not None
    older = api.control(f"/requests?before={latest['earlier']}", method="GET")
    assert len(older["requests"]) == 1 and older["earlier"] is None
    assert older["requests"][0]["id"] < latest["requests"][0]["id"]
    assert len(client.requests()) == 1001 and len(client.requests(limit=5)) == 5
    assert [e["id"] for e in client.requests(limit=1001)] == [e["id"] for e in older["requests"] + latest["requests"]]
    for path in ("/payments", "/requests", "/callbacks"):  # a page is at most 1,000: more is refused, not built
        too_many = requests.get(f"{api.url}/_emulator{path}?limit=1001", timeout=30)
        assert too_many.status_code == 406 and too_many.json()["message"].startswith(
            "control API: limit 1001 is more than 1000, the most one page holds; follow "), too_many.text

    for token in tokens[:3]:
        api.control(f"/payments/{token}/approve", {})
    api.flush()
    page = api.control("/callbacks?limit=2", method="GET")
    assert len(page["callbacks"]) == 2 and page["next"] == str(page["callbacks"][-1]["id"])
    last = api.control(f"/callbacks?limit=2&after={page['next']}", method="GET")
    assert len(last["callbacks"]) == 1 and last["next"] is None
    assert len(client.callbacks.list()) == 3 and len(client.callbacks.list(status="delivered")) == 3
    bad = requests.get(api.url + "/_emulator/payments?after=x1", timeout=30)
    assert refused(bad, 406, code("control_request_invalid"))["message"] == \
        "control API: after 'x1' is not a cursor this list handed out"
