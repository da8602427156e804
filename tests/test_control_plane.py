"""Nobody reaches the control plane by accident, against live emulators bound to loopback and to
every interface: a callback never reaches the emulator itself, whatever name or address leads
there (the ledger says why); a browser reaches the control API only under a name the emulator
answers to (DNS rebinding); no URL or header gets a 500; no credential is kept."""
from __future__ import annotations

import json
import socket
import string
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests
from hypothesis import HealthCheck, given, settings, strategies as st

from payletter_emulator.domain.errors import catalog

from .browser import CHROMIUM_ARGS, WAIT, chromium_path
from .conftest import PAYMENT_KEY, SEARCH_KEY, Api, EmulatorProcess, _clean, refused

BINDS = ["127.0.0.1", "0.0.0.0"]
ITSELF = "blocked: callback_url reaches the emulator itself"
HOST_NAME = socket.gethostname()
REBOUND = "rebind.example"  # a name an attacker's DNS answers with 127.0.0.1 once the page has loaded


def code(kind: str) -> int:
    return catalog()[kind].code


# --- servers ------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def loopback_server(tmp_path_factory):
    process = EmulatorProcess(tmp_path_factory.mktemp("loopback"), "--host", "127.0.0.1", "--callback-timeout", "2")
    yield process
    process.stop()


@pytest.fixture(scope="module")
def every_interface_server(tmp_path_factory):
    """Bound as the Docker image binds: to 0.0.0.0."""
    process = EmulatorProcess(tmp_path_factory.mktemp("everywhere"), "--host", "0.0.0.0", "--callback-timeout", "2")
    yield process
    process.stop()


@pytest.fixture(params=BINDS)
def bound(request) -> str:
    return request.param


@pytest.fixture
def api(bound, request, callback_receiver):
    server = request.getfixturevalue("loopback_server" if bound == "127.0.0.1" else "every_interface_server")
    yield from _clean(server, callback_receiver)


def port_of(api: Api) -> int:
    return urlsplit(api.url).port


def payments(api: Api) -> list[dict]:
    return api.control("/payments", method="GET")["payments"]


def first_attempt(api: Api, callback_url: str, **body) -> dict:
    """A payment whose callback_url is `callback_url`, approved; its notification once the first
    attempt is over (made in the serving process's event loop)."""
    token = api.request_payment(callback_url=callback_url, **body)
    tid = api.control(f"/payments/{token}/approve", {})["fields"]["tid"]
    api.flush()
    [notification] = api.control(f"/callbacks?tid={tid}", method="GET")["callbacks"]
    return notification


def refused_on_the_ledger(notification: dict, port: int) -> dict:
    """The notification was given up at its first attempt, never sent: the attempt says why."""
    assert notification["status"] == "failed" and notification["next_attempt_at"] is None, notification
    [attempt] = notification["attempts"]
    assert attempt["http_status"] is None and attempt["response_body"] == "", attempt
    assert attempt["error"].startswith(ITSELF) and f":{port}, where it listens)" in attempt["error"], attempt
    return attempt


def resolves_to(name: str) -> set[str]:
    """The IPv4 addresses `name` resolves to here (the hosts file, no network)."""
    return {info[4][0] for info in socket.getaddrinfo(name, None, socket.AF_INET, socket.SOCK_STREAM)}


def reached_by(bound: str, name: str) -> bool:
    """Whether a connection to `name` lands on a server bound to `bound` on this machine."""
    addresses = resolves_to(name)
    return bound == "0.0.0.0" or bound in addresses


# --- a callback never reaches the emulator itself -------------------------------------------------

def test_the_machines_host_name_leads_a_callback_nowhere_near_the_control_api(api, bound):
    """The URL as written names no address of the emulator; the name resolves to one (this machine's
    name is in its hosts file), and the peer of the connection is refused before a byte is sent."""
    api.pay()  # what a reset would wipe
    port = port_of(api)
    notification = first_attempt(api, f"http://{HOST_NAME}:{port}/_emulator/reset")
    if reached_by(bound, HOST_NAME):
        refused_on_the_ledger(notification, port)
    else:  # the name leads to an address of this machine the server is not bound to: nobody answers there
        assert notification["attempts"][0]["error"].startswith("ConnectionError"), notification
    assert len(payments(api)) == 2  # nothing was reset


# Names the resolver, not the URL check, turns into this machine's address: localhost (the hosts
# file), numbers the socket library reads as 127.0.0.1, an IPv4-mapped IPv6 address, and the host
# name in capitals (a lookup in the hosts file ignores case; the URL check compares text).
ALIASES = ["localhost", "127.1", "2130706433", "0x7f.0.0.1", "[::ffff:127.0.0.1]", HOST_NAME.upper()]


@pytest.mark.parametrize("alias", ALIASES)
def test_an_alias_of_this_machine_reaches_no_path_of_the_emulator(api, bound, alias):
    """Not only the control API: no request of the emulator's own (a payment cancelled by its own
    callback) is a callback. The URL check lets a path outside /_emulator/ through; the connection
    is refused, whatever the name resolved to."""
    port = port_of(api)
    notification = first_attempt(api, f"http://{alias}:{port}/v1.0/payments/cancel")
    if alias != HOST_NAME.upper() or reached_by(bound, HOST_NAME):
        refused_on_the_ledger(notification, port)
    else:
        assert notification["attempts"][0]["error"].startswith("ConnectionError"), notification


def test_a_refused_callback_is_refused_again_when_resent(api):
    """A resend is refused the same way, and it changes nothing."""
    port = port_of(api)
    notification = first_attempt(api, f"http://localhost:{port}/_sandbox/x/openapi.json")
    refused_on_the_ledger(notification, port)
    resent = api.control(f"/callbacks/{notification['id']}/resend")
    assert resent["attempt"]["kind"] == "resend" and resent["attempt"]["error"].startswith(ITSELF), resent
    assert resent["callback"]["status"] == "failed"


def this_machines_other_addresses() -> list[str]:
    """Addresses of this machine besides 127.0.0.1, found without sending anything: another of the
    loopback range, the address of the interface a route leaves by, those of the host name."""
    found = ["127.0.0.2"]
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        probe.connect(("198.51.100.1", 9))  # a UDP socket's connect only picks the source address
        found.append(probe.getsockname()[0])
    except OSError:  # no route out: no such interface
        pass
    finally:
        probe.close()
    found += sorted(resolves_to(HOST_NAME))
    return list(dict.fromkeys(address for address in found if address != "127.0.0.1"))


def test_bound_to_every_interface_each_address_of_the_machine_is_the_emulator(every_interface_server,
                                                                            callback_receiver):
    for api in _clean(every_interface_server, callback_receiver):
        api.pay()
        port = port_of(api)
        addresses = this_machines_other_addresses()
        for address in addresses:
            # 127.0.0.2 is loopback by its spelling: the URL check refuses it on /_emulator/ at once.
            path = "/openapi.json" if address.startswith("127.") else "/_emulator/reset"
            refused_on_the_ledger(first_attempt(api, f"http://{address}:{port}{path}"), port)
        assert len(payments(api)) == 1 + len(addresses)


def test_a_sandboxs_control_api_is_not_reached_through_the_host_name(api, bound):
    created = api.http.post(api.url + "/_emulator/sandboxes", json={}, timeout=30)
    assert created.status_code == 201, created.text
    sandbox = created.json()
    inside = Api(sandbox["base_url"], api.callback_url)
    key = sandbox["payment_key"]
    first = inside.post("/v1.0/payments/request", inside.request_body(client_id=sandbox["client_id"]), key=key)
    assert first.status_code == 200, first.text
    port = port_of(api)
    url = f"http://{HOST_NAME}:{port}/_sandbox/{sandbox['id']}/_emulator/reset"
    second = inside.post("/v1.0/payments/request", inside.request_body(client_id=sandbox["client_id"],
                                                                       callback_url=url), key=key)
    assert second.status_code == 200, second.text
    tid = inside.control(f"/payments/{second.json()['token']}/approve", {})["fields"]["tid"]
    inside.flush()
    [notification] = inside.control(f"/callbacks?tid={tid}", method="GET")["callbacks"]
    if reached_by(bound, HOST_NAME):
        refused_on_the_ledger(notification, port)
    assert len(payments(inside)) == 2  # the sandbox was not reset
    api.http.delete(f"{api.url}/_emulator/sandboxes/{sandbox['id']}", timeout=30)


def test_over_https_the_emulator_is_refused_before_the_handshake(tmp_path, callback_receiver):
    """The TLS port is the server's port: a callback to it is refused at the connection, not by a
    certificate the merchant's name does not match."""
    server = EmulatorProcess(tmp_path, "--tls", "--host", "0.0.0.0", "--callback-timeout", "2")
    try:
        api = Api(server.url, callback_receiver.url)
        api.http.verify = server.ca
        api.http.trust_env = False  # REQUESTS_CA_BUNDLE, if set, would win over the session's CA
        api.pay()
        port = port_of(api)
        refused_on_the_ledger(first_attempt(api, f"https://{HOST_NAME}:{port}/_emulator/reset"), port)
        assert len(payments(api)) == 2
    finally:
        server.stop()


def test_the_merchant_on_this_machine_is_still_called_back(api, callback_receiver):
    """Only the emulator's own port is refused: a merchant on loopback gets its callback."""
    fields = api.pay()
    [notification] = api.control(f"/callbacks?tid={fields['tid']}", method="GET")["callbacks"]
    assert notification["status"] == "delivered" and callback_receiver.received[-1].json()["tid"] == fields["tid"]


# --- DNS rebinding: a browser under a name that is not the emulator's ---------------------------

def test_a_rebound_name_cannot_drive_the_control_api(api):
    """The attacker's page and its request share one origin, so the Origin check passes; the Host
    names the attacker's domain, and the request is refused."""
    api.pay()
    port = port_of(api)
    rebound = {"Host": f"{REBOUND}:{port}", "Origin": f"http://{REBOUND}:{port}", "Sec-Fetch-Site": "same-origin",
               "Content-Type": "application/json"}
    response = requests.post(api.url + "/_emulator/reset", data=b"{}", headers=rebound, timeout=30)
    message = refused(response, 403, code("control_cross_site"))["message"]
    assert f"Host '{REBOUND}:{port}' is not a name this emulator answers to" in message
    # A same-origin GET carries no Origin, only Sec-Fetch-*; the dashboard opened by navigation too.
    for path, marks in (("/_emulator/payments", {"Sec-Fetch-Site": "same-origin", "Sec-Fetch-Mode": "cors"}),
                        ("/_emulator/", {"Sec-Fetch-Mode": "navigate", "Sec-Fetch-Dest": "document"})):
        answer = requests.get(api.url + path, headers={"Host": f"{REBOUND}:{port}", **marks}, timeout=30)
        refused(answer, 403, code("control_cross_site"))
    assert len(payments(api)) == 1


def test_clients_that_are_not_browsers_use_any_name(api):
    """A CI script or an SDK calling the emulator by a Docker service name: no browser marks."""
    api.pay()
    port = port_of(api)
    response = requests.post(api.url + "/_emulator/reset", headers={"Host": f"emulator:{port}"}, timeout=30)
    assert response.status_code == 200, response.text
    assert payments(api) == []


def test_a_browser_under_the_emulators_own_names_is_served(api, bound):
    port = port_of(api)
    names = ["localhost", "127.0.0.1", "[::1]", "LOCALHOST.", "app.localhost"]
    if bound == "0.0.0.0":  # every address of this machine and its name are the emulator's
        names += [HOST_NAME, *this_machines_other_addresses()]
    for name in names:
        own = {"Host": f"{name}:{port}", "Origin": f"http://{name}:{port}", "Sec-Fetch-Site": "same-origin"}
        answer = requests.get(api.url + "/_emulator/clock", headers=own, timeout=30)
        assert answer.status_code == 200, (name, answer.text)
    if bound == "127.0.0.1":  # bound to loopback, the machine's name is no name of the emulator's
        foreign = {"Host": f"{HOST_NAME}:{port}", "Sec-Fetch-Site": "same-origin"}
        refused(requests.get(api.url + "/_emulator/clock", headers=foreign, timeout=30), 403)


@pytest.fixture(scope="module")
def allowed_server(tmp_path_factory):
    process = EmulatorProcess(tmp_path_factory.mktemp("allowed"), "--host", "0.0.0.0",
                              "--allowed-host", REBOUND, "--allowed-host", "*.dev.example")
    yield process
    process.stop()


def test_allowed_hosts_come_from_the_option_the_variable_and_the_public_url(allowed_server, tmp_path,
                                                                             callback_receiver):
    from_variable = EmulatorProcess(tmp_path, "--public-url", "http://public.test:9999",
                                    env={"PAYLETTER_EMULATOR_ALLOWED_HOSTS": "emulator, shop.test"})
    try:
        for server, allowed, other in ((allowed_server, [REBOUND, "a.dev.example", "b.a.dev.example"],
                                        ["dev.example", "emulator"]),
                                       (from_variable, ["emulator", "shop.test", "public.test"], [REBOUND])):
            port = urlsplit(server.url).port
            for name, status in [*((name, 200) for name in allowed), *((name, 403) for name in other)]:
                headers = {"Host": f"{name}:{port}", "Origin": f"http://{name}:{port}"}
                answer = requests.get(server.url + "/_emulator/clock", headers=headers, timeout=30)
                assert answer.status_code == status, (server.url, name, answer.text)
    finally:
        from_variable.stop()


@pytest.fixture(scope="module")
def rebinding_browser(playwright):
    """Chromium whose resolver answers 127.0.0.1 for the attacker's domain: where DNS rebinding
    leaves a browser, without a DNS server. Its private-network checks are off, as they are in
    browsers that have none (Firefox, Safari): the emulator must stand on its own."""
    browser = playwright.chromium.launch(
        executable_path=chromium_path(),
        args=[*CHROMIUM_ARGS, f"--host-resolver-rules=MAP {REBOUND} 127.0.0.1",
              "--disable-features=BlockInsecurePrivateNetworkRequests,PrivateNetworkAccessSendPreflights,"
              "PrivateNetworkAccessRespectPreflightResults,LocalNetworkAccessChecks"])
    yield browser
    browser.close()


ATTACK = """<!doctype html><title>cats</title><script>
fetch("/_emulator/reset", {method: "POST"}).then(r => r.text().then(t => { document.title = r.status + " " + t; }),
                                                  e => { document.title = "failed " + e; });
</script>"""


def test_a_rebinding_page_in_a_real_browser_cannot_reset_the_emulator(api, rebinding_browser):
    """The attacker's page was loaded from rebind.example:<port> (served here by the test, as the
    attacker's server served it before the name was rebound); its script posts to the same origin,
    which now resolves to the emulator."""
    api.pay()
    port = port_of(api)
    context = rebinding_browser.new_context()
    try:
        page = context.new_page()
        page.route(f"http://{REBOUND}:{port}/cats", lambda route: route.fulfill(
            status=200, content_type="text/html", body=ATTACK))
        page.goto(f"http://{REBOUND}:{port}/cats")
        page.wait_for_function("document.title !== 'cats'", timeout=WAIT * 1000)
        status, _, body = page.title().partition(" ")
        assert status == "403" and json.loads(body)["code"] == code("control_cross_site"), page.title()
    finally:
        context.close()
    assert len(payments(api)) == 1


def test_the_dashboard_under_an_allowed_name_works_in_a_real_browser(allowed_server, callback_receiver,
                                                                    rebinding_browser):
    for api in _clean(allowed_server, callback_receiver):
        fields = api.pay(order_no="dashboard-by-name")
        port = port_of(api)
        context = rebinding_browser.new_context()
        answers = []
        try:
            page = context.new_page()
            page.on("response", lambda response: answers.append((response.status, response.url)))
            page.goto(f"http://{REBOUND}:{port}/_emulator/")
            page.locator(f"[data-testid=payment-row][data-tid='{fields['tid']}']").wait_for(timeout=WAIT * 1000)
            reset = page.evaluate("fetch('/_emulator/reset', {method: 'POST'}).then(r => r.status)")
        finally:
            context.close()
        assert reset == 200 and payments(api) == []
        control = [(status, url) for status, url in answers if "/_emulator/" in url]
        assert control and all(status == 200 for status, _ in control), control


# --- malformed URLs and headers: the envelope, never a 500 --------------------------------------

@pytest.mark.parametrize("url", ["http://[::1:80/x", "http://[aaaa]/", "http://[::1]:99999/", "https://[1.2.3.4]/cb",
                                 "http://a:b@[::1/cb"])
def test_a_malformed_callback_url_is_refused_naming_it(api, url):
    body = refused(api.post("/v1.0/payments/request", api.request_body(callback_url=url)), 406, code("field_invalid"))
    assert body["message"].startswith("callback_url must"), body


@pytest.mark.parametrize("host", ["[bad", "[aaaa]", "[::1", "x:99999", "a b", "x<y>", "[::1]:80:80", "x:-1"])
def test_a_malformed_host_is_refused_naming_the_header(api, host):
    message = f"Host header {host!r} is not host[:port]"
    for method, path, key in (("GET", "/_emulator/clock", None), ("POST", "/v1.0/payments/request", PAYMENT_KEY)):
        headers = {"Host": host, **({"Authorization": f"PLKEY {key}"} if key else {})}
        answer = requests.request(method, api.url + path, json=api.request_body(), headers=headers, timeout=30)
        assert refused(answer, 400, code("header_invalid"))["message"].startswith(message)
    page = requests.get(api.url + "/pgsvc/hub.asp?location=online&token=1", headers={"Host": host}, timeout=30)
    assert page.status_code == 400 and "data-error=\"other\"" in page.text  # a page says it as a page
    assert "Host header" in page.text and "is not host[:port]" in page.text


def test_a_host_werkzeug_cannot_read_but_docker_can_still_builds_the_urls(api):
    """A compose project's container name (`shop_emulator_1`) holds `_`: a valid Host here, and
    the URLs handed out start with it."""
    port = port_of(api)
    response = api.http.post(api.url + "/v1.0/payments/request", json=api.request_body(), timeout=30,
                             headers={"Host": f"shop_emulator_1:{port}", "Authorization": f"PLKEY {PAYMENT_KEY}"})
    assert response.status_code == 200, response.text
    assert response.json()["online_url"].startswith(f"http://shop_emulator_1:{port}/pgsvc/hub.asp?")


@pytest.mark.parametrize("origin", ["http://[bad", "http://x:99999", "http://[aaaa]", "https://[::1:443"])
def test_a_malformed_origin_on_the_control_api_is_refused_naming_the_header(api, origin):
    api.pay()
    answer = requests.post(api.url + "/_emulator/reset", headers={"Origin": origin}, timeout=30)
    body = refused(answer, 400, code("header_invalid"))
    assert body["message"] == f"Origin header {origin!r} is not scheme://host[:port]"
    assert len(payments(api)) == 1


@pytest.mark.parametrize("field", ["return_url", "cancel_url", "app_return_url", "app_cancel_url"])
@pytest.mark.parametrize("url", ["https://[::1/r", "https://shop.example:99999/r", "myapp://[aaaa]/r"])
def test_a_malformed_url_in_any_field_is_refused_naming_it(api, field, url):
    body = refused(api.post("/v1.0/payments/request", api.request_body(**{field: url})), 406, code("field_invalid"))
    assert body["message"].startswith(f"{field} must be a URL that can be read ("), body


def test_a_cancel_url_with_a_long_korean_label_is_a_redirect(api):
    """Percent-encoded, the label is longer than a DNS label may be: the redirect carries it as given."""
    url = "https://가나다라마바사아자차카타파하.example/cancel"
    token = api.request_payment(cancel_url=url)
    left = requests.post(f"{api.url}/pgsvc/hub.asp?location=online&token={token}", data={"action": "cancel"},
                         allow_redirects=False, timeout=30)
    assert left.status_code == 303 and left.headers["Location"].startswith("https://%EA%B0%80%EB%82%98"), left.text


# The pieces a malformed URL is made of, and text of any kind.
SCHEMES = st.sampled_from(["http", "https", "HTTP", "ftp", "javascript", "", "h\u0131ttp", "ⓗttp"])
SEPARATORS = st.sampled_from(["://", ":/", ":", "//", ":///", "", ":\\\\"])
HOSTS = st.sampled_from(["[", "]", "[::1", "[::1]", "[aaaa]", "[::1:80", "[v1.x]", "[fe80::1%25eth0]", "[1.2.3.4]",
                         "127.0.0.1", "localhost", "0", "2130706433", "@", "a@b", "user:pw@[::1", "xn--", "%5B::1%5D",
                         "merchant.example", "例え.テスト", "\u3000", "", "a_b", "[::ffff:127.0.0.1]"])
PORTS = st.sampled_from(["", ":", ":80", ":0", ":65535", ":65536", ":99999999999", ":-1", ":abc", ":８０", "::1"])
PATHS = st.sampled_from(["", "/", "/_emulator/reset", "/%", "?", "#", "/\\..", "?x=[", "/a b", "/%zz", "/\u00e9"])
urls = st.one_of(st.tuples(SCHEMES, SEPARATORS, HOSTS | st.text(max_size=12), PORTS, PATHS).map("".join),
                 st.text(max_size=40))
PRINTABLE = string.ascii_letters + string.digits + string.punctuation  # what an HTTP header's value may hold
ascii_urls = st.one_of(st.tuples(SCHEMES, SEPARATORS, HOSTS, PORTS, PATHS).map("".join),
                       st.text(alphabet=PRINTABLE, max_size=40)).filter(lambda value: value.isascii()
                                                                        and value.strip() == value and value)
hosts = st.one_of(st.tuples(HOSTS, PORTS).map("".join), st.text(alphabet=PRINTABLE, min_size=1, max_size=30)).filter(
    lambda value: value.isascii() and value.strip() == value and " " not in value and value)
FUZZ = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
URL_FIELDS = ["callback_url", "return_url", "cancel_url", "app_return_url", "app_cancel_url"]


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory):
    """Callbacks blocked by the allow-list before any connection or name lookup: a fuzzed host is never looked up."""
    process = EmulatorProcess(tmp_path_factory.mktemp("fuzzed"), "--callback-host", "callbacks.invalid")
    yield process
    process.stop()


@pytest.fixture
def fuzz_api(fuzzed, callback_receiver):
    yield from _clean(fuzzed, callback_receiver)


def envelope_or_ok(response: requests.Response, statuses=(200, 400, 403, 406)) -> None:
    assert response.status_code in statuses, (response.status_code, response.text[:300])
    if response.status_code != 200 and response.headers.get("Content-Type", "").startswith("application/json"):
        body = response.json()
        assert set(body) == {"code", "message"} and isinstance(body["code"], int), body


@FUZZ
@given(field=st.sampled_from(URL_FIELDS), url=urls, in_app=st.booleans())
def test_fuzzed_urls_in_every_url_field_of_payments_request_never_get_a_500(fuzz_api, field, url, in_app):
    """Taken or refused (406 naming the field); a payment taken is then shown, approved (its
    callback handed to the sender) and its page opened and left, with the URL in place."""
    extra = {"inapp_flag": "Y", "app_return_url": "myapp://r"} if in_app else {}
    response = fuzz_api.post("/v1.0/payments/request", fuzz_api.request_body(**{**extra, field: url}))
    envelope_or_ok(response, (200, 406))
    if response.status_code == 406:
        assert field in response.json()["message"], response.text  # the refusal names the field
        return
    token = response.json()["token"]
    page = requests.get(response.json()["online_url"], timeout=30)
    envelope_or_ok(page, (200, 400))  # 400: a return_url no browser can be sent to (4403), said on the page
    left = requests.post(response.json()["online_url"], data={"action": "cancel"}, allow_redirects=False, timeout=30)
    assert left.status_code < 500, left.text[:300]
    token = fuzz_api.request_payment(**{**extra, field: url})
    approved = fuzz_api.http.post(f"{fuzz_api.url}/_emulator/payments/{token}/approve", json={}, timeout=30)
    envelope_or_ok(approved, (200,))
    envelope_or_ok(fuzz_api.http.get(f"{fuzz_api.url}/_emulator/payments/{token}", timeout=30), (200,))


@pytest.fixture(scope="module")
def banktransfer(fuzzed, callback_receiver) -> str:
    """A bank transfer paid, whose cash receipt the fuzz below asks for again and again."""
    api = Api(fuzzed.url, callback_receiver.url)
    return api.pay(pgcode="banktransfer", amount=5000)["tid"]


@FUZZ
@given(url=urls)
def test_fuzzed_return_urls_of_a_cash_receipt_never_get_a_500(fuzzed, banktransfer, url):
    api = Api(fuzzed.url, "http://callbacks.invalid/cb")
    response = api.post(f"/v1.0/cashreceipt/issue/{banktransfer}",
                        {"client_id": "pay_test", "type": "2", "tax_flag": "N", "return_url": url})
    envelope_or_ok(response, (200, 406))
    if response.status_code == 200:
        envelope_or_ok(requests.get(response.json()["receipt_url"], timeout=30), (200, 400, 404, 409))
    else:
        assert "return_url" in response.json()["message"], response.text


@FUZZ
@given(origin=ascii_urls, host=hosts)
def test_fuzzed_origin_and_host_headers_never_get_a_500(fuzzed, origin, host):
    for method, path, headers in (("GET", "/_emulator/clock", {"Origin": origin, "Host": host}),
                                  ("POST", "/_emulator/reset", {"Origin": origin}),
                                  ("GET", "/_emulator/", {"Host": host, "Sec-Fetch-Mode": "navigate"}),
                                  ("GET", "/v1.0/payments/transaction/list?client_id=pay_test&date=20261129",
                                   {"Host": host, "Origin": origin, "Authorization": f"PLKEY {SEARCH_KEY}"})):
        envelope_or_ok(requests.request(method, fuzzed.url + path, headers=headers, timeout=30))


# --- no credential is kept --------------------------------------------------------------------

SECRETS = {"X-Emulator-Token": "control-T0ken-7", "X-Api-Key": "api-K3y-7", "X-Client-Secret": "cl1ent-Secret-7",
           "Cookie": "session=c00kie-7", "X-Auth-Token": "auth-T0ken-7", "Proxy-Authorization": "Basic pr0xy-7"}
QUERY_SECRET = "query-K3y-7"


def test_no_credential_is_stored_echoed_or_logged(tmp_path, callback_receiver):
    token = SECRETS["X-Emulator-Token"]
    server = EmulatorProcess(tmp_path, "--control-token", token, "--access-log")
    try:
        api = Api(server.url, callback_receiver.url)
        api.http.headers.update({**SECRETS, "X-Shop-Trace": "trace-1"})  # a client's default headers, on every call
        fields = api.pay()
        search = api.get("/v1.0/payments/transaction/list", {"client_id": "pay_test", "date": "20261129",
                                                             "api_key": QUERY_SECRET})
        assert search.status_code in (200, 406), search.text
        kept = api.control(f"/payments/{fields['tid']}", method="GET")
        assert kept["request"]["request_headers"]["x-shop-trace"] == "trace-1"  # what scenario rules match stays
        shown = json.dumps([kept, api.control("/payments", method="GET"), api.control("/requests", method="GET"),
                            api.control("/callbacks", method="GET")])
        [entry] = [e for e in api.control("/requests", method="GET")["requests"] if "api_key" in e["query"]]
        assert "api_key=[redacted]" in entry["query"]
        api.control("/callbacks/flush", {})
    finally:
        server.stop()
    printed = server.printed().encode() + server.log_path.read_bytes()  # access lines on stdout, the log on stderr
    stored = b"".join(path.read_bytes() for path in Path(tmp_path).rglob("*") if path.is_file())
    for secret in [value.split("=")[-1].split()[-1] for value in SECRETS.values()]:
        assert secret not in shown, secret
        assert secret.encode() not in stored + printed, secret  # the database, its WAL, the log
    assert QUERY_SECRET not in shown and QUERY_SECRET.encode() not in stored + printed  # the access log too
    assert b"GET /v1.0/payments/transaction/list" in printed  # the log has its lines
