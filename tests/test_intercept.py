"""`serve --intercept PORT`: code that hard-codes the gateway's host reaches the emulator through
HTTPS_PROXY, unchanged. Each client below (curl, Python's requests, Node's https) is a merchant's
code calling https://testpgapi.payletter.com itself; only its proxy and its trust are set."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from payletter_emulator.domain.errors import catalog

from .conftest import ONLY_OUR_PLUGIN, PAYMENT_KEY, EmulatorProcess, run_cli
from .doc_blocks import doc_block

pytest_plugins = ["pytester"]

GATEWAY = "https://testpgapi.payletter.com/v1.0/payments/request"  # the real host, hard-coded
REFUSED = catalog()["intercept_refused"].code


def payment(order_no: str) -> dict:
    return {"pgcode": "creditcard", "client_id": "pay_test", "user_id": "u1", "amount": 1000, "product_name": "p",
            "order_no": order_no, "return_url": "https://merchant.example/result",
            "callback_url": "https://merchant.example/callback"}


class Intercepted:
    """An emulator started with `--intercept 0`, and what its startup line says: the proxy's URL
    and the CA to trust."""

    def __init__(self, server: EmulatorProcess):
        self.server = server
        said = server.line("intercept")
        self.proxy = said.split()[0]
        self.ca = said.rsplit("trust the CA certificate ", 1)[1]
        self.port = int(self.proxy.rsplit(":", 1)[1])

    def env(self, **more: str) -> dict:
        """A merchant process's environment: the proxy and the trust, nothing else of the emulator."""
        kept = {name: value for name, value in os.environ.items() if name.lower() != "no_proxy"}
        return {**kept, "HTTPS_PROXY": self.proxy, "https_proxy": self.proxy, **more}

    def payments(self) -> dict:
        """The payments as the control API on the main port shows them, by order_no."""
        answer = requests.get(self.server.url + "/_emulator/payments", verify=self.server.ca or True, timeout=10)
        return {row["request"].get("order_no"): row for row in answer.json()["payments"]}


@pytest.fixture(scope="module")
def intercepted(tmp_path_factory):
    server = EmulatorProcess(tmp_path_factory.mktemp("intercept"), "--intercept", "0")
    yield Intercepted(server)
    server.stop()


def test_the_startup_lines_name_the_proxy_and_the_ca(intercepted):
    said = intercepted.server.line("intercept")
    assert said.startswith("http://127.0.0.1:") and "testpgapi.payletter.com, pgapi.payletter.com" in said
    assert Path(intercepted.ca).read_text().startswith("-----BEGIN CERTIFICATE-----")
    # The same CA is served on the main port, although it speaks plain HTTP.
    assert requests.get(intercepted.server.url + "/_emulator/ca.pem", timeout=10).text == Path(intercepted.ca).read_text()


def test_curl_through_the_proxy(intercepted):
    done = subprocess.run(["curl", "-sS", "--fail-with-body", "--proxy", intercepted.proxy, "--cacert", intercepted.ca,
                           GATEWAY, "-H", f"Authorization: PLKEY {PAYMENT_KEY}", "-H", "Content-Type: application/json",
                           "-d", json.dumps(payment("curl-1"))],
                          capture_output=True, text=True, timeout=60, env=intercepted.env())
    assert done.returncode == 0, done.stderr + done.stdout
    answer = json.loads(done.stdout)
    assert answer["online_url"].startswith("https://testpgapi.payletter.com/pgsvc/hub.asp?")
    assert intercepted.payments()["curl-1"]["token"] == answer["token"]  # the main port's emulator has it


PYTHON_MERCHANT = f'''
import json, sys
import requests

answer = requests.post({GATEWAY!r}, json=json.loads(sys.argv[1]),
                       headers={{"Authorization": "PLKEY {PAYMENT_KEY}"}}, timeout=30)
print(answer.status_code, answer.text)
'''


def test_python_requests_through_the_proxy_and_the_payment_is_on_the_control_api(intercepted):
    done = subprocess.run([sys.executable, "-c", PYTHON_MERCHANT, json.dumps(payment("requests-1"))],
                          capture_output=True, text=True, timeout=60,
                          env=intercepted.env(REQUESTS_CA_BUNDLE=intercepted.ca))
    assert done.returncode == 0, done.stderr
    status, body = done.stdout.split(" ", 1)
    assert status == "200", body
    token = json.loads(body)["token"]
    approved = requests.post(f"{intercepted.server.url}/_emulator/payments/{token}/approve", json={}, timeout=10)
    tid = approved.json()["fields"]["tid"]
    shown = requests.get(f"{intercepted.server.url}/_emulator/payments/{tid}", timeout=10).json()
    assert (shown["status"], shown["token"], shown["request"]["order_no"]) == ("approved", token, "requests-1")


# Node (20) has no HTTPS_PROXY support of its own: the merchant's code opens the tunnel with a
# CONNECT and hands its socket to https.request, with the emulator's CA.
NODE_MERCHANT = r'''
const fs = require('fs'), http = require('http'), https = require('https');
const gateway = new URL(process.argv[2]), proxy = new URL(process.env.HTTPS_PROXY);
const body = process.argv[3];
http.request({host: proxy.hostname, port: proxy.port, method: 'CONNECT', path: `${gateway.hostname}:443`})
  .on('connect', (tunnel, socket) => {
    if (tunnel.statusCode !== 200) { console.error('CONNECT answered', tunnel.statusCode); process.exit(1); }
    https.request({host: gateway.hostname, path: gateway.pathname, method: 'POST', socket, agent: false,
                   ca: fs.readFileSync(process.env.CA_FILE),
                   headers: {'Authorization': `PLKEY ${process.env.PAYMENT_KEY}`, 'Content-Type': 'application/json',
                             'Content-Length': Buffer.byteLength(body)}},
      (answer) => {
        let text = '';
        answer.on('data', (chunk) => text += chunk);
        answer.on('end', () => { console.log(answer.statusCode, text); socket.destroy(); });
      })
      .on('error', (error) => { console.error(error.message); process.exit(1); })
      .end(body);
  })
  .on('error', (error) => { console.error(error.message); process.exit(1); })
  .end();
'''


def test_node_https_through_the_proxy(intercepted, tmp_path, node):
    script = tmp_path / "pay.js"
    script.write_text(NODE_MERCHANT)
    done = subprocess.run([node, str(script), GATEWAY, json.dumps(payment("node-1"))],
                          capture_output=True, text=True, timeout=60,
                          env=intercepted.env(CA_FILE=intercepted.ca, PAYMENT_KEY=PAYMENT_KEY))
    assert done.returncode == 0, done.stderr
    status, body = done.stdout.split(" ", 1)
    assert status == "200", body
    assert intercepted.payments()["node-1"]["token"] == json.loads(body)["token"]


def proxy_answer(port: int, head: bytes) -> tuple[str, dict]:
    """What the proxy answers `head`: its status line and its JSON body."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as connection:
        connection.sendall(head)
        reply = b""
        while chunk := connection.recv(4096):  # the proxy closes after a refusal
            reply += chunk
    status, _, rest = reply.partition(b"\r\n")
    return status.decode(), json.loads(rest.partition(b"\r\n\r\n")[2])


def test_any_other_host_is_refused_and_nothing_is_forwarded(intercepted):
    elsewhere = socket.create_server(("127.0.0.1", 0))  # a host the proxy could reach, if it forwarded
    elsewhere.setblocking(False)
    target = f"127.0.0.1:{elsewhere.getsockname()[1]}"
    try:
        for head, shown in [
            (f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n", f"CONNECT {target}"),
            (b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n", "CONNECT example.com:443"),
            (b"CONNECT testpgapi.payletter.com:80 HTTP/1.1\r\n\r\n", "CONNECT testpgapi.payletter.com:80"),
            (f"GET http://{target}/ HTTP/1.1\r\nHost: {target}\r\n\r\n", f"GET http://{target}/"),
        ]:
            status, body = proxy_answer(intercepted.port, head.encode() if isinstance(head, str) else head)
            assert status == "HTTP/1.1 403 Forbidden"
            assert body["code"] == REFUSED and body["message"].startswith(f"{shown} is refused")
            assert "testpgapi.payletter.com:443, pgapi.payletter.com:443" in body["message"]
        with pytest.raises(BlockingIOError):  # nobody connected to it
            elsewhere.accept()
    finally:
        elsewhere.close()
    assert f"CONNECT {target} is refused" in intercepted.server.log_path.read_text()


def test_tls_to_the_proxy_itself_is_closed_with_a_hint_in_the_log(intercepted):
    """HTTPS_PROXY=https://...: the client starts TLS with the proxy, which speaks plain HTTP."""
    with socket.create_connection(("127.0.0.1", intercepted.port), timeout=10) as connection:
        connection.sendall(b"\x16\x03\x01\x00\x05hello")
        assert connection.recv(4096) == b""  # closed, nothing answered
    assert "give the proxy as http://, not https://" in intercepted.server.log_path.read_text()


def test_https_workers_and_the_variable(tmp_path):
    """With --tls on the main port and two processes, set by PAYLETTER_EMULATOR_INTERCEPT: the
    proxy's certificate and the main port's are signed by one CA, and every tunnel is served."""
    server = EmulatorProcess(tmp_path, "--tls", "--workers", "2", env={"PAYLETTER_EMULATOR_INTERCEPT": "0"})
    try:
        intercepted = Intercepted(server)
        assert intercepted.ca == server.ca
        for number in range(4):  # new connections: the workers share the proxy's port
            done = subprocess.run([sys.executable, "-c", PYTHON_MERCHANT.replace("testpgapi", "pgapi"),
                                   json.dumps(payment(f"workers-{number}"))], capture_output=True, text=True,
                                  timeout=60, env=intercepted.env(REQUESTS_CA_BUNDLE=intercepted.ca))
            assert done.stdout.startswith("200 "), done.stdout + done.stderr
            assert json.loads(done.stdout[4:])["online_url"].startswith("https://pgapi.payletter.com/pgsvc/")
        assert {f"workers-{number}" for number in range(4)} <= set(intercepted.payments())
    finally:
        server.stop()


def test_a_stop_does_not_wait_for_an_idle_tunnel(tmp_path):
    """A client keeping its tunnel open (a requests Session) never answers TLS's close_notify: the
    stop closes it without running out uvicorn's graceful-stop time."""
    server = EmulatorProcess(tmp_path, "--intercept", "0")
    intercepted = Intercepted(server)
    with requests.Session() as session:
        for _ in range(2):  # the second request reuses the tunnel
            answer = session.get("https://testpgapi.payletter.com/_emulator/health", timeout=10,
                                 proxies={"https": intercepted.proxy}, verify=intercepted.ca)
            assert answer.json() == {"status": "ok"}
        server.stop()
    assert server.process.returncode == 0
    assert "graceful shutdown exceeded" not in server.log_path.read_text()


def test_a_port_that_cannot_be_had_is_refused_in_one_line(tmp_path):
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        done = run_cli("serve", "--port", "0", "--db", ":memory:", "--intercept", str(port), cwd=tmp_path)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    [line] = done.stderr.splitlines()
    assert line.startswith(f"Error: cannot listen on 127.0.0.1:{port}") and "choose another --intercept" in line


# --- the pytest plugin: --payletter-intercept -------------------------------------------------------

MERCHANT_SUITE = '''
import json
import re
import os
import urllib.request

import pytest
import requests

GATEWAY = "https://testpgapi.payletter.com"  # the merchant's code: the real host, hard-coded


def request_payment(client_id, payment_key, order_no):
    body = {"pgcode": "creditcard", "client_id": client_id, "user_id": "u1", "amount": 1000, "product_name": "p",
            "order_no": order_no, "return_url": "https://shop.example/result",
            "callback_url": "https://shop.example/callback"}
    answer = requests.post(GATEWAY + "/v1.0/payments/request", json=body,
                           headers={"Authorization": "PLKEY " + payment_key}, timeout=30)
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_the_hard_coded_host_reaches_this_tests_sandbox(payletter):
    answer = request_payment(payletter.client_id, payletter.payment_key, "plugin-1")
    # The sandbox the key belongs to answered; its page is under the same host, through the proxy.
    assert answer["online_url"].startswith(f"https://testpgapi.payletter.com/_sandbox/{payletter.sandbox}/pgsvc/")
    assert payletter.approve(answer["token"])["fields"]["code"] == "0"
    assert [row["request"]["order_no"] for row in payletter.payments()] == ["plugin-1"]


def test_urllib_too(payletter):
    request = urllib.request.Request(GATEWAY + "/v1.0/payments/status", method="POST",
                                     data=json.dumps({"client_id": payletter.client_id, "order_no": "none"}).encode(),
                                     headers={"Authorization": "PLKEY " + payletter.payment_key,
                                              "Content-Type": "application/json"})
    try:
        urllib.request.urlopen(request, timeout=30)
    except urllib.error.HTTPError as answer:  # the emulator's envelope: no such order
        assert json.loads(answer.read())["code"]
    else:
        raise AssertionError("an unknown order_no was found")


def test_any_other_host_is_refused_and_loopback_stays_off_the_proxy(payletter):
    with pytest.raises(requests.exceptions.ProxyError):
        requests.get("https://shop-partner.example/", timeout=30)
    assert "127.0.0.1" in os.environ["NO_PROXY"].split(",")
    assert requests.get(payletter.url + "/_emulator/health", timeout=30).status_code == 200
'''


def test_the_plugin_sets_the_proxy_for_a_merchant_suite(pytester, monkeypatch):
    monkeypatch.setenv("NO_PROXY", "intranet.example")
    for name in ("HTTPS_PROXY", "https_proxy", "no_proxy", "REQUESTS_CA_BUNDLE", "SSL_CERT_FILE"):
        monkeypatch.delenv(name, raising=False)
    pytester.makepyfile(test_shop=MERCHANT_SUITE + '''

def test_the_variables_the_session_set(payletter_server):
    assert os.environ["HTTPS_PROXY"] == os.environ["https_proxy"] == payletter_server.proxy
    assert os.environ["NO_PROXY"].split(",") == ["intranet.example", "localhost", "127.0.0.1", "::1"]
    assert open(payletter_server.proxy_ca).read() in open(os.environ["SSL_CERT_FILE"]).read()
''')
    pytester.makepyfile(test_doc=example("intercept-plugin"))  # docs/intercept.md's, as written
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", *ONLY_OUR_PLUGIN, "--payletter-intercept")
    result.assert_outcomes(passed=5)


def test_the_plugin_refuses_intercept_with_an_emulator_elsewhere(pytester):
    pytester.makepyfile(test_shop="def test_nothing():\n    pass\n")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", *ONLY_OUR_PLUGIN, "--payletter-intercept",
                                           "--payletter-url", "http://127.0.0.1:9")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--payletter-intercept starts the plugin's emulator with --intercept*"])


# --- docs/intercept.md's examples, run as written (the ports and the CA's path replaced) -------------

def example(name: str) -> str:
    return doc_block(name).text


def as_served(text: str, intercepted: Intercepted) -> str:
    return (text.replace("http://127.0.0.1:8443", intercepted.proxy).replace("port: 8443", f"port: {intercepted.port}")
            .replace("http://127.0.0.1:8080", intercepted.server.url)
            .replace("payletter-emulator-ca.pem", intercepted.ca))


def test_the_python_example(intercepted):
    code = as_served(example("intercept-python"), intercepted)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                          env=intercepted.env(REQUESTS_CA_BUNDLE=intercepted.ca))
    assert done.returncode == 0, done.stderr


def test_the_curl_example(intercepted):
    done = subprocess.run(["sh", "-c", as_served(example("intercept-curl"), intercepted)],
                          capture_output=True, text=True, timeout=60, env=intercepted.env())
    assert done.returncode == 0 and json.loads(done.stdout)["token"], done.stderr


def test_the_node_example(intercepted, node, tmp_path):
    script = tmp_path / "example.js"
    script.write_text(as_served(example("intercept-node"), intercepted))
    done = subprocess.run([node, str(script)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and json.loads(done.stdout)["token"], done.stderr
