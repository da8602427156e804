"""HTTPS like the gateway's: `serve --tls` with a CA kept beside the database, one's own
certificate, TLS 1.2 at least, served by one process or several."""
from __future__ import annotations

import re
import socket
import ssl
import warnings

import pytest
import requests
import trustme
import uvicorn
from cryptography import x509

from payletter_emulator.serving import tls
from payletter_emulator.config import Settings

from .conftest import PAYMENT_KEY, EmulatorProcess, cli, run_cli
from .doc_blocks import doc_block

AUTH = {"Authorization": f"PLKEY {PAYMENT_KEY}"}
PAYMENT = {"pgcode": "creditcard", "client_id": "pay_test", "user_id": "test_user_id", "service_name": "shop",
           "order_no": "tls-1", "amount": 1000, "product_name": "a book",
           "return_url": "https://merchant.example/result", "callback_url": "https://merchant.example/callback"}


@pytest.fixture(scope="module")
def https_server(tmp_path_factory):
    server = EmulatorProcess(tmp_path_factory.mktemp("tls"), "--tls")
    yield server
    server.stop()


def _handshake(port: int, context: ssl.SSLContext, hostname: str | None = "127.0.0.1") -> str:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        with context.wrap_socket(raw, server_hostname=hostname) as wrapped:
            return wrapped.version()


def _client_of_tls_1_1_or_older() -> ssl.SSLContext:
    """A client that offers TLS 1.0 and 1.1 only (the security level lowered so that this
    machine's OpenSSL offers them at all)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.set_ciphers("DEFAULT:@SECLEVEL=0")
    with warnings.catch_warnings():  # the old versions are deprecated, which is the point
        warnings.simplefilter("ignore", DeprecationWarning)
        context.minimum_version = ssl.TLSVersion.TLSv1
        context.maximum_version = ssl.TLSVersion.TLSv1_1
    return context


def _refuses_old_clients(port: int) -> None:
    with pytest.raises(ssl.SSLError) as refused:
        _handshake(port, _client_of_tls_1_1_or_older(), hostname=None)
    # The server's doing, not the client declining to offer (NO_PROTOCOLS_AVAILABLE, before a
    # byte is sent): the client offered TLS 1.1 and the server closed the handshake on it (the
    # event loop's TLS sends no protocol-version alert before closing; OpenSSL's own server would).
    assert refused.value.reason in ("UNEXPECTED_EOF_WHILE_READING", "TLSV1_ALERT_PROTOCOL_VERSION"), refused.value
    capable = _client_of_tls_1_1_or_older()
    capable.maximum_version = ssl.TLSVersion.TLSv1_2  # the same client, allowed TLS 1.2: served
    assert _handshake(port, capable, hostname=None) == "TLSv1.2"


def test_the_gateway_api_and_the_pages_answer_over_https_to_a_client_trusting_the_ca(https_server):
    assert https_server.url.startswith("https://127.0.0.1:")
    assert https_server.ca == str(tls.ca_path(https_server.db))
    response = requests.post(https_server.url + "/v1.0/payments/request", json=PAYMENT, headers=AUTH,
                             verify=https_server.ca, timeout=10)
    assert response.status_code == 200, response.text
    body = response.json()
    # Handed-out URLs follow the request's scheme.
    assert body["online_url"].startswith(https_server.url + "/")
    assert body["mobile_url"].startswith(https_server.url + "/")
    page = requests.get(body["online_url"], verify=https_server.ca, timeout=10)
    assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html")
    # The certificate names localhost as well as 127.0.0.1.
    local = https_server.url.replace("127.0.0.1", "localhost")
    assert requests.get(local + "/openapi.json", verify=https_server.ca, timeout=10).status_code == 200


def test_a_client_without_the_ca_does_not_trust_the_server(https_server):
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(https_server.url + "/_emulator/health", verify=True, timeout=10)


def test_tls_1_1_and_older_are_refused_1_2_and_1_3_are_served(https_server):
    _refuses_old_clients(https_server.port)
    trusting = ssl.create_default_context(cafile=https_server.ca)
    for version in (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3):
        trusting.minimum_version = trusting.maximum_version = version
        assert _handshake(https_server.port, trusting) == {ssl.TLSVersion.TLSv1_2: "TLSv1.2",
                                                          ssl.TLSVersion.TLSv1_3: "TLSv1.3"}[version]
    context = tls.server_context(tls.prepare(Settings(db=https_server.db, tls=True)))
    assert context.minimum_version == ssl.TLSVersion.TLSv1_2


def test_a_client_that_never_starts_its_handshake_holds_up_nobody(https_server):
    with socket.create_connection(("127.0.0.1", https_server.port)):
        health = requests.get(https_server.url + "/_emulator/health", verify=https_server.ca, timeout=10)
        assert health.json() == {"status": "ok"}


def test_the_ca_is_served_as_the_file_and_kept_across_restarts(tmp_path, https_server):
    served = requests.get(https_server.url + "/_emulator/ca.pem", verify=https_server.ca, timeout=10)
    assert served.status_code == 200 and served.headers["Content-Type"] == "application/x-pem-file"
    assert served.content == open(https_server.ca, "rb").read()
    assert x509.load_pem_x509_certificate(served.content).extensions.get_extension_for_class(
        x509.BasicConstraints).value.ca
    # A second start on the same data folder finds the CA and trusts it still.
    again = EmulatorProcess(tmp_path, "--tls", db=https_server.db)
    try:
        assert again.ca == https_server.ca
        assert requests.get(again.url + "/_emulator/ca.pem", verify=again.ca, timeout=10).content == served.content
    finally:
        again.stop()
    key = tls.data_folder(https_server.db) / tls.CA_KEY_FILE
    assert key.stat().st_mode & 0o077 == 0, "the CA's key is the owner's only"


def test_workers_serve_https_from_the_environment_and_the_ca_stays_open(tmp_path):
    server = EmulatorProcess(tmp_path, "--workers", "2", "--control-token", "s3cret",
                           env={"PAYLETTER_EMULATOR_TLS": "1"})
    try:
        assert server.url.startswith("https://")
        for _ in range(4):
            response = requests.post(server.url + "/v1.0/payments/request", json=PAYMENT, headers=AUTH,
                                     verify=server.ca, timeout=10)
            assert response.status_code == 200 and response.json()["online_url"].startswith("https://")
        # The CA is public, like health: no control token needed.
        served = requests.get(server.url + "/_emulator/ca.pem", verify=server.ca, timeout=10)
        assert served.content == open(server.ca, "rb").read()
        assert requests.get(server.url + "/_emulator/clock", verify=server.ca, timeout=10).status_code == 401
        _refuses_old_clients(server.port)
        with pytest.raises(requests.exceptions.ConnectionError, match="without response"):
            requests.get(f"http://127.0.0.1:{server.port}/_emulator/health", timeout=10)
    finally:
        server.stop()


@pytest.fixture(scope="module")
def own_ca(tmp_path_factory):
    """A merchant's own CA and a certificate it issued for localhost, in separate files."""
    folder = tmp_path_factory.mktemp("own")
    ca = trustme.CA()
    leaf = ca.issue_cert("localhost", "127.0.0.1")
    ca.cert_pem.write_to_path(folder / "ca.pem")
    leaf.cert_chain_pems[0].write_to_path(folder / "cert.pem")
    leaf.private_key_pem.write_to_path(folder / "key.pem")
    return folder


@pytest.mark.parametrize("workers", [("--workers", "1"), ("--workers", "2")], ids=["one process", "two processes"])
def test_own_certificate_and_key(tmp_path, own_ca, workers):
    server = EmulatorProcess(tmp_path, *workers, ca=str(own_ca / "ca.pem"),
                           env={"PAYLETTER_EMULATOR_TLS_CERT": str(own_ca / "cert.pem"),
                                "PAYLETTER_EMULATOR_TLS_KEY": str(own_ca / "key.pem")})
    try:
        response = requests.post(server.url + "/v1.0/payments/request", json=PAYMENT, headers=AUTH,
                                 verify=server.ca, timeout=10)
        assert response.status_code == 200 and response.json()["online_url"].startswith("https://")
        # No CA of the emulator's own: nothing to serve, nothing made in the data folder.
        assert requests.get(server.url + "/_emulator/ca.pem", verify=server.ca, timeout=10).status_code == 404
        assert not (tmp_path / tls.CA_FILE).exists()
    finally:
        server.stop()


def test_a_certificate_that_does_not_load_stops_the_start(tmp_path, own_ca):
    broken = tmp_path / "broken.pem"
    broken.write_text("not a certificate\n")
    for options in (["--tls-cert", str(broken)],
                    ["--tls-cert", str(own_ca / "cert.pem"), "--tls-key", str(own_ca / "ca.pem")]):
        result = run_cli("serve", "--port", "0", "--db", str(tmp_path / "e.db"), *options)
        assert result.returncode != 0 and "TLS:" in result.stderr, result.stderr
    result = run_cli("serve", "--port", "0", "--db", str(tmp_path / "e.db"),
                     env={"PAYLETTER_EMULATOR_TLS_KEY": str(own_ca / "key.pem"), "PATH": ""})
    assert result.returncode == 2 and "tls_key needs tls_cert" in result.stderr, result.stderr


def test_the_certificate_names_loopback_the_host_and_the_public_url(tmp_path):
    settings = Settings(db=str(tmp_path / "e.db"), tls=True, host="0.0.0.0", public_url="https://emulator:8443")
    certificates = tls.prepare(settings)
    leaf = x509.load_pem_x509_certificate(certificates.cert_file.read_bytes())
    names = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    dns = set(names.get_values_for_type(x509.DNSName))
    ips = {str(ip) for ip in names.get_values_for_type(x509.IPAddress)}
    assert {"localhost", "emulator", socket.gethostname()} <= dns and {"127.0.0.1", "::1"} <= ips
    ca = x509.load_pem_x509_certificate(certificates.ca_file.read_bytes())
    leaf.verify_directly_issued_by(ca)
    # The same settings find the same files; another host gets its own certificate, same CA.
    assert tls.prepare(settings) == certificates
    other = tls.prepare(Settings(db=settings.db, tls=True, host="127.0.0.5"))
    assert other.ca_file == certificates.ca_file and other.cert_file != certificates.cert_file
    assert certificates.cert_file.stat().st_mode & 0o077 == 0, "the server's key is the owner's only"


def test_tls_settings_come_from_the_environment():
    settings = Settings.from_env({"PAYLETTER_EMULATOR_TLS": "true", "PAYLETTER_EMULATOR_TLS_CERT": "c.pem",
                                  "PAYLETTER_EMULATOR_TLS_KEY": "k.pem"})
    assert (settings.tls, settings.tls_cert, settings.tls_key) == (True, "c.pem", "k.pem")
    assert tls.enabled(Settings(tls_cert="c.pem")) and not tls.enabled(Settings())
    assert tls.ca_path("data/emulator.db") == tls.data_folder("data/emulator.db") / "payletter-emulator-ca.pem"


def test_the_docs_example_runs_against_an_https_server(https_server):
    block = doc_block("https-example")
    example = block.text.replace("https://127.0.0.1:8080", https_server.url).replace(
        '"payletter-emulator-ca.pem"', repr(https_server.ca))
    exec(compile(example, block.page, "exec"), {})


def test_the_docs_https_start_prints_the_lines_shown(tmp_path):
    """The block's command as it is, in a folder of its own (the port from the environment: 0);
    the lines it shows as comments are printed, with this run's port, folder and number of
    processes (one per core)."""
    command, *shown = doc_block("https-start").text.splitlines()
    program, *args = command.split()
    assert program == "payletter-emulator"
    server = EmulatorProcess(tmp_path, argv=cli(*args), env={"PAYLETTER_EMULATOR_PORT": "0"})
    try:
        def processes(line: str) -> str:
            return re.sub(r", \d+ workers\)", ")", line)

        expected = [processes(line.removeprefix("# ").replace("https://127.0.0.1:8080", server.url)
                              .replace("/home/you/shop", str(tmp_path))) for line in shown]
        assert server.line("CA certificate") == str(tmp_path / tls.CA_FILE)
        assert [line for line in expected if line not in map(processes, server.lines)] == [], server.lines
    finally:
        server.stop()


def test_plain_http_on_the_https_port_is_closed_without_an_answer(https_server):
    """TLS is uvicorn's: a request in plain HTTP fails the handshake, and the connection is closed with
    nothing said (curl: "Empty reply from server"); the server logs nothing."""
    with pytest.raises(requests.exceptions.ConnectionError, match="without response"):
        requests.get(f"http://127.0.0.1:{https_server.port}/_emulator/health", timeout=10)
    assert requests.get(https_server.url + "/_emulator/health", verify=https_server.ca, timeout=10).ok
    assert "Traceback" not in (https_server.workdir / "emulator.log").read_text()


def test_a_stop_does_not_wait_for_an_idle_https_client(tmp_path):
    """A keep-alive client (a requests Session) never answers TLS's close_notify: the stop closes
    its connection after tls.TLS_SHUTDOWN, without running out uvicorn's graceful-stop time."""
    server = EmulatorProcess(tmp_path, "--tls")
    with requests.Session() as session:
        for _ in range(2):  # the second request reuses the connection
            assert session.get(server.url + "/_emulator/health", verify=server.ca, timeout=10).ok
        server.stop()
    assert server.process.returncode == 0
    assert "graceful shutdown exceeded" not in server.log_path.read_text()


def test_https_is_uvicorns_own_on_its_default_loop(tmp_path):
    """`--tls` sets uvicorn's public options: the context is tls.server_context's (TLS 1.2 at least),
    the loop uvicorn's default one (uvloop where installed) with TLS_SHUTDOWN for a closing client."""
    from payletter_emulator.serving.bridge import uvicorn_options

    settings = Settings(db=str(tmp_path / "e.db"), tls=True)
    config = uvicorn.Config(lambda scope, receive, send: None, **uvicorn_options(settings, tls.prepare(settings)))
    config.load()
    assert config.ssl.minimum_version == ssl.TLSVersion.TLSv1_2
    loop, default = config.get_loop_factory()(), uvicorn.Config(None).get_loop_factory()()
    try:
        assert isinstance(loop, type(default))
    finally:
        loop.close()
        default.close()
