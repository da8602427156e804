"""The pytest plugin, as a merchant's suite meets it: generated test files run by pytest in a
subprocess (so the plugin comes in through its entry point, as after `pip install`)."""
from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest
import requests


from .conftest import ONLY_OUR_PLUGIN, EmulatorProcess
from .doc_blocks import doc_block

pytest_plugins = ["pytester"]


# What a merchant's code does: request a payment with its keys, at the URL it is configured with.
PRELUDE = '''
import pytest
import requests
import requests


def request_payment(payletter, **overrides):
    body = {"pgcode": "creditcard", "client_id": payletter.client_id, "user_id": "u1", "amount": 1000,
            "product_name": "p", "order_no": "A-1", "return_url": "https://merchant.example/result",
            "callback_url": "http://127.0.0.1:9/callback", **overrides}
    answer = requests.post(payletter.url + "/v1.0/payments/request", json=body,
                           headers={"Authorization": "PLKEY " + payletter.payment_key})
    assert answer.status_code == 200, answer.text
    return answer.json()["token"]
'''


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest_subprocess("-p", "no:cacheprovider", *ONLY_OUR_PLUGIN, *args)


def test_a_suite_using_the_fixtures_passes_and_ends_with_a_coverage_summary(pytester):
    pytester.makepyfile(PRELUDE + '''
def test_a_payment_with_its_callback(payletter):
    token = request_payment(payletter)
    fields = payletter.approve(token)["fields"]
    assert fields["code"] == "0"
    assert payletter.payment(fields["tid"])["status"] == "approved"
    first = payletter.callbacks.wait(tid=fields["tid"], status="pending")  # nobody listens on port 9
    assert first["attempts_made"] == 1
    payletter.clock.advance(minutes=100)
    assert payletter.callbacks.wait(tid=fields["tid"], status="failed")["attempts_made"] == 21


def test_the_clock_and_a_decline(payletter):
    before = payletter.clock.freeze()
    assert payletter.clock.advance(days=2) - before == __import__("datetime").timedelta(days=2)
    fields = payletter.decline(request_payment(payletter), code="6002")["fields"]
    assert fields["code"] == "6002"


def test_in_process(payletter_app):
    answer = payletter_app.gateway.post("/v1.0/payments/request", {
        "pgcode": "creditcard", "client_id": "pay_test", "user_id": "u1", "amount": 1000, "product_name": "p",
        "return_url": "https://merchant.example/result", "callback_url": "http://127.0.0.1:9/callback"})
    assert answer.status_code == 200
    assert payletter_app.approve(answer.json()["token"])["fields"]["code"] == "0"
    assert [p["status"] for p in payletter_app.payments()] == ["approved"]
''')
    result = run(pytester)
    result.assert_outcomes(passed=3)
    result.stdout.fnmatch_lines([
        "*payletter coverage (http://127.0.0.1:*; with payletter_app's in-process apps)*",
        "endpoints: payments/request 3",  # two on the server, one in process
        "pgcodes: creditcard *",
        "callbacks: *exhausted 1*",
        "never exercised (endpoints): *payments/cancel*",
    ])


def test_a_failing_test_shows_what_the_gateway_saw_and_sent(pytester):
    pytester.makepyfile(PRELUDE + '''
def test_fails(payletter):
    fields = payletter.approve(request_payment(payletter, order_no="ORDER-77"))["fields"]
    payletter.callbacks.flush()
    assert fields["amount"] == "999"
''')
    # A control token too: the plugin starts the emulator with it and sends it.
    result = run(pytester, "--payletter-no-coverage", "--payletter-token", "s3cret")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([
        "*payletter journal (payletter)*",
        "http://127.0.0.1:*/_sandbox/*, clock *",
        "*POST /v1.0/payments/request -> 200",
        '*sent *"order_no":"ORDER-77"*',
        "*answered *token*",
        "*payletter callbacks (payletter)*",
        "#1 t* -> http://127.0.0.1:9/callback: pending, 1 attempt(s), next attempt *",
        "*1. first at *: ConnectionError*",
    ])
    assert "payletter coverage" not in result.stdout.str()


def test_a_passing_test_prints_nothing_of_the_emulator(pytester, emulator_process):
    pytester.makepyfile(PRELUDE + '''
def test_passes(payletter):
    request_payment(payletter)
''')
    result = run(pytester, "--payletter-url", emulator_process.url, "--payletter-no-coverage")
    result.assert_outcomes(passed=1)
    assert not re.search(r"payletter (journal|callbacks|coverage)", result.stdout.str())


TWO_TESTS = PRELUDE + '''
def test_one(payletter):
    payletter.clock.freeze()
    payletter.clock.advance(days=10)
    token = request_payment(payletter, order_no="ONE")
    assert [p["order_no"] for p in payletter.payments()] == ["ONE"]
    payletter.approve(token)


def test_two(payletter):
    assert payletter.payments() == [] and payletter.callbacks.list() == [] and payletter.requests() == []
    assert payletter.clock.state()["frozen"] is False
    request_payment(payletter, order_no="TWO")
    assert [p["order_no"] for p in payletter.payments()] == ["TWO"]
'''


@pytest.mark.parametrize("isolation", ["sandbox", "reset"])
def test_two_tests_in_one_run_do_not_see_each_other(pytester, isolation):
    pytester.makepyfile(TWO_TESTS)
    result = run(pytester, f"--payletter-isolation={isolation}", "--payletter-no-coverage")
    result.assert_outcomes(passed=2)


def test_each_test_gets_its_own_sandbox_with_its_own_keys(pytester, emulator_process):
    pytester.makepyfile('''
seen = []

def test_one(payletter):
    seen.append((payletter.url, payletter.client_id, payletter.payment_key, payletter.search_key))

def test_two(payletter):
    seen.append((payletter.url, payletter.client_id, payletter.payment_key, payletter.search_key))
    (url1, *keys1), (url2, *keys2) = seen
    assert "/_sandbox/" in url1 and url1 != url2
    assert not set(keys1) & set(keys2)
''')
    result = run(pytester, "--payletter-url", emulator_process.url, "--payletter-no-coverage")
    result.assert_outcomes(passed=2)


def test_two_runs_at_once_on_one_emulator_do_not_see_each_other(pytester, emulator_process):
    """What parallel CI jobs (or xdist workers) do: two pytest processes share one emulator."""
    many = PRELUDE + '''
import os

@pytest.mark.parametrize("n", range(10))
def test_mine_only(payletter, n):
    mine = os.environ["RUN"]
    for i in range(3):
        request_payment(payletter, order_no=f"{mine}-{n}-{i}")
    assert sorted(p["order_no"] for p in payletter.payments()) == [f"{mine}-{n}-{i}" for i in range(3)]
    assert len(payletter.requests()) == 3
'''
    pytester.makepyfile(test_many=many)
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *ONLY_OUR_PLUGIN,
               "--payletter-no-coverage", "--payletter-url", emulator_process.url, "test_many.py"]
    runs = [subprocess.Popen(command, cwd=pytester.path, env={**os.environ, "RUN": name},
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
            for name in ("first", "second")]
    outputs = [run_.communicate(timeout=120)[0].decode() for run_ in runs]
    for run_, output in zip(runs, outputs):
        assert run_.returncode == 0, output
        assert "10 passed" in output, output


def test_scenarios_from_the_command_line_and_from_a_marker(pytester):
    pytester.makepyfile(PRELUDE + '''
def test_the_run_scenario(payletter):
    assert payletter.scenario()["scenario"]["name"] == "flaky-callbacks"


@pytest.mark.payletter_scenario("declined-cards")
def test_a_scenario_of_its_own(payletter):
    assert payletter.scenario()["scenario"]["name"] == "declined-cards"
    fields = payletter.approve(request_payment(payletter, amount=1013))["fields"]
    assert fields["code"] != "0"


@pytest.mark.payletter_scenario({"version": 1, "name": "inline", "rules": []})
def test_a_document(payletter_app):
    assert payletter_app.scenario()["scenario"]["name"] == "inline"


@pytest.mark.payletter_scenario("no-such-scenario")
def test_an_unknown_one(payletter):
    pass
''')
    for isolation in ("sandbox", "reset"):
        result = run(pytester, "--payletter-scenario", "flaky-callbacks", f"--payletter-isolation={isolation}",
                     "--payletter-no-coverage")
        result.assert_outcomes(passed=3, errors=1)
        result.stdout.fnmatch_lines(["*no-such-scenario: no such file, and no scenario of that name (shipped: *"])



def test_reset_isolation_keeps_the_scenario_a_shared_emulator_was_started_with(pytester, tmp_path):
    pytester.makepyfile('''
import pytest
import requests

@pytest.mark.payletter_scenario("declined-cards")
def test_one(payletter):
    assert payletter.scenario()["scenario"]["name"] == "declined-cards"

def test_two(payletter):
    assert payletter.scenario()["scenario"]["name"] == "flaky-callbacks"
''')
    process = EmulatorProcess(tmp_path, "--scenario", "flaky-callbacks")
    try:
        result = run(pytester, "--payletter-url", process.url, "--payletter-isolation=reset",
                     "--payletter-no-coverage")
        result.assert_outcomes(passed=2)
    finally:
        process.stop()

def test_the_readme_example_runs(pytester):
    example = doc_block("pytest-example").text
    pytester.makepyfile(test_readme=example)
    result = run(pytester)
    result.assert_outcomes(passed=example.count("\ndef test_"))
    # Two requests on the server, one on the in-process app: one summary.
    result.stdout.fnmatch_lines(["*payletter coverage*", "endpoints: payments/request 3"])


HTTPS_TESTS = '''
import certifi
import pytest
import requests


def test_https(payletter):
    assert payletter.url.startswith("https://") and payletter.ca_file.endswith(".pem")
    answer = requests.post(payletter.url + "/v1.0/payments/request", verify=payletter.ca_file, json={
        "pgcode": "creditcard", "client_id": payletter.client_id, "user_id": "u1", "amount": 1000,
        "product_name": "p", "return_url": "https://merchant.example/result",
        "callback_url": "https://merchant.example/callback"},
        headers={"Authorization": "PLKEY " + payletter.payment_key})
    assert answer.json()["online_url"].startswith(payletter.url + "/pgsvc/")
    assert payletter.approve(answer.json()["token"])["fields"]["code"] == "0"
    with pytest.raises(requests.exceptions.SSLError):  # the emulator's CA is none of the Internet's
        requests.get(payletter.url + "/_emulator/health", verify=certifi.where())
    assert requests.get(payletter.url + "/_emulator/health").status_code == 200  # the session's bundle has it
'''


def test_https_the_plugin_starts_or_is_pointed_at(pytester, tmp_path):
    pytester.makepyfile(test_https=HTTPS_TESTS)
    run(pytester, "--payletter-tls").assert_outcomes(passed=1)

    process = EmulatorProcess(tmp_path, "--tls")  # an HTTPS emulator started elsewhere
    try:
        result = run(pytester, "--payletter-url", process.url, "--payletter-ca", process.ca)
        result.assert_outcomes(passed=1)
    finally:
        process.stop()


# --- the merchant's own app, served so that callbacks reach it ----------------------------------------

SHOPS = PRELUDE + '''
import json

from flask import Flask, request


def wsgi_shop():
    app = Flask("shop")
    received = []

    @app.post("/payletter/callback")
    def callback():
        received.append(request.get_json())
        return {"code": 0}

    return app, received


def asgi_shop():
    """A bare ASGI app (what FastAPI and Starlette are), lifespan included."""
    received = []

    async def app(scope, receive, send):
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                await send({"type": message["type"] + ".complete"})
                if message["type"] == "lifespan.shutdown":
                    return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        received.append(json.loads(body))
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": b'{"code":0}'})

    return app, received


@pytest.mark.parametrize("make", [wsgi_shop, asgi_shop])
def test_the_callback_reaches_the_shop(payletter, payletter_serve_app, make):
    app, received = make()
    url = payletter_serve_app(app)
    assert url.startswith("http://127.0.0.1:")
    fields = payletter.approve(request_payment(payletter, callback_url=url + "/payletter/callback"))["fields"]
    payletter.callbacks.wait(tid=fields["tid"], status="delivered")
    assert [(body["tid"], body["amount"]) for body in received] == [(fields["tid"], 1000)]
'''


def test_the_merchants_own_wsgi_and_asgi_apps_are_served_and_get_the_callbacks(pytester):
    pytester.makepyfile(test_shops=SHOPS)
    result = run(pytester, "--payletter-no-coverage")
    result.assert_outcomes(passed=2)


def test_an_asgi_app_without_uvicorn_is_told_what_to_install(pytester):
    pytester.makepyfile(test_asgi='''
import sys

def test_asgi(payletter_serve_app, monkeypatch):
    monkeypatch.setitem(sys.modules, "uvicorn", None)  # as if not installed

    async def app(scope, receive, send):
        pass

    payletter_serve_app(app)
''')
    result = run(pytester, "--payletter-no-coverage")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*RuntimeError: payletter_serve_app: an ASGI app is served with uvicorn, which is "
                                 "not installed: pip install uvicorn (a WSGI app needs nothing more)"])


# --- pytest-xdist ----------------------------------------------------------------------------------

PARALLEL = PRELUDE + '''
@pytest.mark.parametrize("n", range(6))
def test_card(payletter, n):
    payletter.approve(request_payment(payletter))


@pytest.mark.parametrize("n", range(2))
def test_mobile(payletter, n):
    payletter.approve(request_payment(payletter, pgcode="mobile"))
'''


def test_under_xdist_the_workers_coverage_is_one_merged_summary(pytester):
    pytester.makepyfile(test_parallel=PARALLEL)
    result = run(pytester, "-n", "2")
    result.assert_outcomes(passed=8)
    output = result.stdout.str()
    assert output.count("payletter coverage (") == 1, output
    result.stdout.fnmatch_lines([
        "*payletter coverage (2 emulators, one per pytest-xdist worker, merged)*",
        "endpoints: payments/request 8",
        "pgcodes: creditcard 6, mobile 2",
        "never exercised (endpoints): *payments/cancel*",
    ])
    never = re.search(r"never exercised \(pgcodes\): (.*)", output).group(1).split(", ")
    assert "mobile" not in never and "creditcard" not in never and "phonebill" in never  # what no worker did


def test_under_xdist_on_one_emulator_the_coverage_is_counted_once(pytester, tmp_path):
    pytester.makepyfile(test_parallel=PARALLEL)
    process = EmulatorProcess(tmp_path)
    try:
        result = run(pytester, "-n", "2", "--payletter-url", process.url)
        result.assert_outcomes(passed=8)
        result.stdout.fnmatch_lines([f"*payletter coverage ({process.url}, this run's counts only)*",
                                     "endpoints: payments/request 8"])
    finally:
        process.stop()


def test_reset_isolation_on_one_emulator_under_xdist_is_refused_at_start(pytester, emulator_process):
    pytester.makepyfile(test_parallel=PARALLEL)
    result = run(pytester, "-n", "2", "--payletter-url", emulator_process.url, "--payletter-isolation=reset")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--payletter-isolation=reset cannot work in parallel (pytest-xdist's -n) on one "
                                 "emulator (--payletter-url)*"])
    assert "passed" not in result.stdout.str() and "failed" not in result.stdout.str()


def test_reset_isolation_under_xdist_with_an_emulator_per_worker_works(pytester):
    pytester.makepyfile(test_two=TWO_TESTS)
    result = run(pytester, "-n", "2", "--payletter-isolation=reset", "--payletter-no-coverage")
    result.assert_outcomes(passed=2)


# --- keeping a failed test's sandbox ---------------------------------------------------------------

KEPT = PRELUDE + '''
def test_fails(payletter):
    request_payment(payletter, order_no="KEEP-ME")
    assert False, "the merchant's code went wrong"


def test_passes(payletter):
    request_payment(payletter, order_no="GONE")
'''


def test_a_failed_tests_sandbox_is_kept_and_named(pytester, emulator_process):
    pytester.makepyfile(test_kept=KEPT)
    result = run(pytester, "--payletter-url", emulator_process.url, "--payletter-keep-failed",
                 "--payletter-no-coverage")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines([
        "*payletter sandbox kept (payletter)*",
        f"sandbox sb*: {emulator_process.url}/_sandbox/sb*/_emulator/",
        "*pick sb* on the dashboard's sandbox picker*",
        "*payletter sandboxes kept (--payletter-keep-failed)*",
        f"test_kept.py::test_fails: sandbox sb*: {emulator_process.url}/_sandbox/sb*/_emulator/",
    ])
    [kept] = requests.get(emulator_process.url + "/_emulator/sandboxes", timeout=10).json()["sandboxes"]
    try:
        assert result.stdout.str().count(f"sandbox {kept['id']}: {kept['base_url']}/_emulator/") == 2
        payments = requests.get(kept["base_url"] + "/_emulator/payments", timeout=10).json()["payments"]
        assert [p["order_no"] for p in payments] == ["KEEP-ME"]
        assert requests.get(kept["base_url"] + "/_emulator/", timeout=10).status_code == 200
    finally:
        requests.delete(f"{emulator_process.url}/_emulator/sandboxes/{kept['id']}", timeout=10)


def test_without_the_option_a_failed_tests_sandbox_goes(pytester, emulator_process):
    pytester.makepyfile(test_kept=KEPT)
    result = run(pytester, "--payletter-url", emulator_process.url, "--payletter-no-coverage")
    result.assert_outcomes(passed=1, failed=1)
    assert "sandbox kept" not in result.stdout.str()
    assert requests.get(emulator_process.url + "/_emulator/sandboxes", timeout=10).json()["sandboxes"] == []


def test_a_kept_sandbox_of_an_emulator_the_run_started_opens_from_its_database(pytester, tmp_path):
    pytester.makepyfile(test_kept=KEPT)
    result = run(pytester, "--payletter-keep-failed", "--payletter-no-coverage")
    result.assert_outcomes(passed=1, failed=1)
    output = result.stdout.str()
    db = re.search(r"its data stays in (\S+emulator\.db)", output).group(1)
    sandbox = re.search(r"then open /_sandbox/(sb[0-9a-f]+)/_emulator/", output).group(1)
    # The run's emulator has stopped; a server started on its database has the sandbox.
    again = EmulatorProcess(tmp_path, db=db)
    try:
        payments = requests.get(f"{again.url}/_sandbox/{sandbox}/_emulator/payments", timeout=10).json()["payments"]
        assert [p["order_no"] for p in payments] == ["KEEP-ME"]
    finally:
        again.stop()


def test_keep_failed_with_reset_isolation_is_refused_at_start(pytester):
    pytester.makepyfile(test_kept=KEPT)
    result = run(pytester, "--payletter-keep-failed", "--payletter-isolation=reset")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--payletter-keep-failed keeps a failed test's sandbox: it needs "
                                 "--payletter-isolation=sandbox*"])


def test_the_docs_app_example_runs(pytester):
    pytester.makepyfile(test_docs_app=doc_block("serve-app-example").text)
    run(pytester, "--payletter-no-coverage").assert_outcomes(passed=1)
