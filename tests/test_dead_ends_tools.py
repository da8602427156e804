"""Dead ends a new user met with the plugin, the settings and the tools, each now a clear answer:
tried through what the user touches (a merchant's suite run by pytest with the plugin as
installed, the console script, HTTP)."""
from __future__ import annotations

import socket

import pytest
import requests

from .conftest import ONLY_OUR_PLUGIN, EmulatorProcess, run_cli

pytest_plugins = ["pytester"]


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest_subprocess("-p", "no:cacheprovider", *ONLY_OUR_PLUGIN, *args)


@pytest.fixture
def silent_port():
    """A port bound but not listening: a connection to it is refused for as long as the test runs."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


def test_a_payletter_url_where_nothing_listens_is_one_usage_error_at_start(pytester, silent_port):
    pytester.makepyfile('''
def test_one(payletter):
    pass


def test_two(payletter):
    pass
''')
    url = f"http://127.0.0.1:{silent_port}"
    result = run(pytester, "--payletter-url", url)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"ERROR: --payletter-url {url}: no emulator answers there*Start it first*"
                                 f"leave out --payletter-url*"])
    assert "Traceback" not in result.stdout.str() + result.stderr.str()
    assert "test_one" not in result.stdout.str()  # no test ran, none failed one by one


MISSPELT = {"PAYLETTER_EMULATOR_CALLBACK_TIMOUT": "2", "PAYLETTER_EMULATOR_URL": "http://127.0.0.1:1"}


def test_serve_warns_of_a_misspelt_variable_with_the_setting_it_meant(tmp_path):
    process = EmulatorProcess(tmp_path, env=MISSPELT)
    try:
        assert requests.get(process.url + "/_emulator/health", timeout=10).status_code == 200
    finally:
        process.stop()
    log = process.log_path.read_text()
    assert "warning: PAYLETTER_EMULATOR_CALLBACK_TIMOUT is not a setting of payletter-emulator and is ignored; " \
           "did you mean PAYLETTER_EMULATOR_CALLBACK_TIMEOUT?" in log
    assert "PAYLETTER_EMULATOR_URL" not in log  # the commands' own variable is known


def test_the_plugin_warns_of_a_misspelt_variable(pytester, monkeypatch):
    monkeypatch.setenv("PAYLETTER_EMULATOR_STRICTT", "1")
    pytester.makepyfile("def test_nothing():\n    pass\n")
    result = run(pytester)
    result.assert_outcomes(passed=1)
    result.stderr.fnmatch_lines(["payletter: warning: PAYLETTER_EMULATOR_STRICTT is not a setting*"
                                 "did you mean PAYLETTER_EMULATOR_STRICT?"])


def test_scenario_check_reports_every_problem_in_one_pass(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("""version: 1
rules:
  - name: declined
    when: {pgcode: creditcrad}
    then: {decline: {code: 6001}}
  - name: slow
    when: {endpoint: payment/request}
    then: {latency: {ms: -5}}
""", "utf-8")
    result = run_cli("scenario", "check", str(path))
    assert result.returncode == 1
    lines = result.stderr.splitlines()
    assert lines[:3] == [
        f"{path}: rules[0].then.decline.code: 6001 is not of type 'string'; quote it: '6001'",
        f"{path}: rules[1].then.latency.ms: -5 is less than the minimum of 0",
        f"{path}: rules[0].when.pgcode: 'creditcrad' is not a pgcode; did you mean 'creditcard'?",
    ]
    assert lines[3].startswith(f"{path}: rules[1].when.endpoint: 'payment/request' is not an endpoint; one of "
                               "payments/request, ")
    assert len(lines) == 4
    assert "Traceback" not in result.stdout + result.stderr


def test_with_payletter_tls_the_code_under_test_trusts_the_emulator_and_the_internet(pytester, monkeypatch):
    monkeypatch.setenv("SSL_CERT_FILE", "/the/one/before")
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    pytester.makeconftest('''
import os


def pytest_sessionfinish(session):
    print("after the session:", os.environ.get("REQUESTS_CA_BUNDLE"), os.environ.get("SSL_CERT_FILE"))
''')
    pytester.makepyfile('''
import os
import urllib.request

import certifi
import requests


def test_merchant_code_without_a_ca_argument(payletter):
    assert requests.get(payletter.url + "/_emulator/health").status_code == 200
    with urllib.request.urlopen(payletter.url + "/_emulator/health") as answer:  # OpenSSL's default paths
        assert answer.status == 200
    bundle = open(os.environ["REQUESTS_CA_BUNDLE"]).read()
    assert os.environ["SSL_CERT_FILE"] == os.environ["REQUESTS_CA_BUNDLE"]
    assert open(certifi.where()).read() in bundle  # the Internet's CAs stay trusted
    assert open(payletter.ca_file).read() in bundle
''')
    result = run(pytester, "--payletter-tls", "-s")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*after the session: None /the/one/before"])


IN_PROCESS_ONLY = '''
def test_in_process(payletter_app):
    answer = payletter_app.gateway.post("/v1.0/payments/request", {
        "pgcode": "mobile", "client_id": "pay_test", "user_id": "u1", "amount": 1000, "product_name": "p",
        "return_url": "https://merchant.example/result", "callback_url": "http://127.0.0.1:9/callback"})
    assert answer.status_code == 200


def test_in_process_again(payletter_app):
    assert payletter_app.gateway.post("/v1.0/payments/request", {"pgcode": "bitcoin"}).status_code == 406
'''


def test_the_coverage_summary_counts_tests_on_payletter_app(pytester):
    pytester.makepyfile(IN_PROCESS_ONLY)
    result = run(pytester)
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["*payletter coverage (with payletter_app's in-process apps)*",
                                 "endpoints: payments/request 2", "pgcodes: none", "error codes: 2001 1"])


ONE_PAYMENT = '''
import requests


def test_one_payment(payletter):
    answer = requests.post(payletter.url + "/v1.0/payments/request", json={
        "pgcode": "creditcard", "client_id": payletter.client_id, "user_id": "u1", "amount": 1000,
        "product_name": "p", "return_url": "https://merchant.example/result",
        "callback_url": "http://127.0.0.1:9/callback"}, headers={"Authorization": "PLKEY " + payletter.payment_key})
    assert answer.status_code == 200
'''


def test_on_a_shared_emulator_the_summary_counts_this_run_only(pytester, tmp_path):
    pytester.makepyfile(ONE_PAYMENT)
    process = EmulatorProcess(tmp_path)
    try:
        for _ in range(2):  # the second run finds the first's counts on the emulator
            result = run(pytester, "--payletter-url", process.url)
            result.assert_outcomes(passed=1)
            result.stdout.fnmatch_lines([f"*payletter coverage ({process.url}, this run's counts only)*",
                                         "endpoints: payments/request 1"])
        assert requests.get(process.url + "/_emulator/coverage", timeout=10).json()["endpoints"] == \
            {"payments/request": 2}  # the emulator itself keeps counting across runs
    finally:
        process.stop()


def test_docs_is_not_offered_to_merchants_but_still_runs(tmp_path):
    listed = run_cli("--help")
    assert listed.returncode == 0 and "serve" in listed.stdout
    assert not [line for line in listed.stdout.splitlines() if line.strip().startswith("docs ")]
    written = run_cli("docs", str(tmp_path))
    assert written.returncode == 0, written.stderr
    assert (tmp_path / "error-codes.md").read_text("utf-8").startswith("#")
