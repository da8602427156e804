"""The tools a shell or any-language CI uses beside the drive commands, run as users run them:
`listen` (a callback sink, or a relay to the merchant), `pay`, `requests` and `callbacks tail`
(JSON lines, --follow), `coverage`; and `assert_requested` as a pytest suite meets it."""
from __future__ import annotations

import json
import os
import queue
import signal
import socket
import subprocess
import threading
from datetime import datetime

import pytest
import requests

from payletter_emulator.config import ENV_PREFIX

from .conftest import CLI, ONLY_OUR_PLUGIN, Answer
from .test_drive import run

pytest_plugins = ["pytester"]

LINE_TIMEOUT = 60  # seconds before a line that never comes fails the test instead of hanging it


class Command:
    """A command that runs until stopped, its stdout read line by line as it prints."""

    def __init__(self, *args: str, env: dict | None = None):
        environ = {key: value for key, value in os.environ.items() if not key.startswith(ENV_PREFIX)}
        self.process = subprocess.Popen([str(CLI), *args], env={**environ, **(env or {})}, stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE, text=True)
        self.lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.process.stdout:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def line(self) -> str:
        try:
            line = self.lines.get(timeout=LINE_TIMEOUT)
        except queue.Empty:
            self.process.kill()
            raise AssertionError(f"no line came: {self.process.stderr.read()}") from None
        assert line is not None, f"it ended with {self.process.wait()}: {self.process.stderr.read()}"
        return line

    def json_line(self) -> dict:
        return json.loads(self.line())

    def stop(self, sig: int = signal.SIGTERM) -> tuple[int, str]:
        """The exit status and stderr once `sig` has ended it; no line was left unread."""
        self.process.send_signal(sig)
        status = self.process.wait(LINE_TIMEOUT)
        assert self.lines.get(timeout=LINE_TIMEOUT) is None, "a line was left unread"
        return status, self.process.stderr.read()


class Listener(Command):
    def __init__(self, *args: str):
        super().__init__("listen", "--port", "0", *args)
        self.port = int(self.line())
        self.url = f"http://127.0.0.1:{self.port}/callback"


@pytest.fixture
def cli(api):
    return lambda *args, env=None: run(*args, env={ENV_PREFIX + "URL": api.url, **(env or {})})


def closed_port() -> int:
    """A port where nothing listens (bound, then let go)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def callback_of(api, tid: str) -> dict:
    [callback] = [c for c in api.control("/callbacks", method="GET")["callbacks"] if c["tid"] == tid]
    return callback


# --- listen ----------------------------------------------------------------------------------------

def test_listen_prints_each_callback_as_a_json_line_and_acknowledges_it(api):
    listener = Listener()
    fields = api.pay(callback_url=listener.url + "?shop=7")
    line = listener.json_line()
    assert (line["method"], line["path"]) == ("POST", "/callback?shop=7")
    assert line["body"]["tid"] == fields["tid"] and line["body"]["payhash"] == fields["payhash"]
    assert datetime.fromisoformat(line["received_at"]).utcoffset().total_seconds() == 9 * 3600
    [attempt] = callback_of(api, fields["tid"])["attempts"]
    assert (attempt["http_status"], json.loads(attempt["response_body"])) == (200, {"code": 0})
    assert callback_of(api, fields["tid"])["status"] == "delivered"
    # A second one: a line each, in the order they came.
    second = api.pay(callback_url=listener.url, order_no="second")
    assert listener.json_line()["body"]["tid"] == second["tid"]
    status, stderr = listener.stop(signal.SIGINT)
    assert status == 0 and "Traceback" not in stderr, stderr
    assert f"listening for callbacks on http://127.0.0.1:{listener.port}/" in stderr


def test_listen_forwards_to_the_merchant_and_answers_with_the_merchants_answer(api, callback_receiver):
    callback_receiver.script.append(Answer(503, b'{"code": 1, "message": "busy"}'))
    listener = Listener("--forward-to", callback_receiver.url)
    fields = api.pay(callback_url=listener.url)
    line = listener.json_line()
    assert line["body"]["tid"] == fields["tid"]
    assert line["forwarded"]["url"] == callback_receiver.url
    assert (line["forwarded"]["status"], line["forwarded"]["body"]) == (503, {"code": 1, "message": "busy"})
    # The merchant got the body as the emulator sent it; the emulator got the merchant's refusal.
    [received] = callback_receiver.received
    assert received.json() == line["body"] and received.headers["Content-Type"] == "application/json"
    callback = callback_of(api, fields["tid"])
    assert (callback["status"], callback["attempts"][0]["http_status"]) == ("pending", 503)
    assert json.loads(callback["attempts"][0]["response_body"]) == {"code": 1, "message": "busy"}

    api.advance(seconds=300)  # the retry is due: the merchant acknowledges it this time
    api.flush()
    line = listener.json_line()
    assert (line["forwarded"]["status"], line["forwarded"]["body"]) == (200, {"code": 0, "message": "success"})
    assert callback_of(api, fields["tid"])["status"] == "delivered"
    status, stderr = listener.stop(signal.SIGTERM)
    assert status == 0 and "Traceback" not in stderr, stderr


def test_listen_answers_502_with_an_envelope_when_the_merchant_does_not_answer(api):
    nowhere = f"http://127.0.0.1:{closed_port()}/callback"
    listener = Listener("--forward-to", nowhere)
    fields = api.pay(callback_url=listener.url)
    line = listener.json_line()
    assert line["forwarded"]["url"] == nowhere and "did not answer" in line["forwarded"]["error"]
    attempt = callback_of(api, fields["tid"])["attempts"][0]
    envelope = json.loads(attempt["response_body"])
    assert attempt["http_status"] == 502 and set(envelope) == {"code", "message"}
    assert envelope["message"] == line["forwarded"]["error"]
    assert listener.stop()[0] == 0


def test_listen_refuses_what_is_not_a_callback_with_an_envelope():
    listener = Listener()
    answer = requests.get(listener.url, timeout=30)
    assert answer.status_code == 405 and set(answer.json()) == {"code", "message"}
    assert listener.stop() == (0, f"listening for callbacks on http://127.0.0.1:{listener.port}/\n")


def test_listen_on_a_taken_port_or_to_no_url_is_refused():
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        refused = run("listen", "--port", str(port)).refusal()
    assert refused["message"].startswith(f"cannot listen on 127.0.0.1:{port}: ")
    usage = run("listen", "--port", "0", "--forward-to", "localhost:3000/callback")
    assert usage.status == 2 and "is not an http:// or https:// URL" in usage.stderr, usage


# --- pay -------------------------------------------------------------------------------------------

def test_pay_requests_and_approves_and_the_callback_follows(api, cli, callback_receiver):
    done = cli("pay", "--pgcode", "creditcard", "--amount", "1500", "--callback-url", callback_receiver.url,
               "--order-no", "A-7", "--product-name", "mug", "--user-id", "u7")
    assert done.status == 0 and done.stderr == "", done
    [summary] = done.stdout.splitlines()
    assert summary.startswith("approved: creditcard 1500 tid ")
    tid = summary.split(" tid ")[1].split()[0]
    payment = api.control(f"/payments/{tid}", method="GET")
    assert (payment["order_no"], payment["product_name"], payment["user_id"], payment["client_id"]) == \
        ("A-7", "mug", "u7", "pay_test")
    assert summary.endswith(f"(token {payment['token']})")
    api.flush()
    assert [c.json()["tid"] for c in callback_receiver.received] == [tid]
    # It went through the gateway's API, as the merchant's request does.
    [entry] = api.control("/requests", method="GET")["requests"]
    assert (entry["path"], entry["status"], entry["request"]["amount"]) == ("/v1.0/payments/request", 200, 1500)


def test_pay_declines_and_prints_the_payment_as_json(api, cli, callback_receiver):
    payment = cli("pay", "--pgcode", "creditcard", "--amount", "1000", "--callback-url", callback_receiver.url,
                  "--decline", "6002", "--json").json()
    assert payment == api.control(f"/payments/{payment['token']}", method="GET")
    assert payment["status"] == "failed"
    summary = cli("pay", "--pgcode", "creditcard", "--amount", "1000", "--callback-url", callback_receiver.url,
                  "--decline", "6001")
    assert summary.stdout.startswith("failed: creditcard 1000 (token ") and ", code 6001 " in summary.stdout
    api.flush()
    assert callback_receiver.received == []  # a declined payment calls nobody back


def test_pay_refused_by_the_gateway_prints_its_envelope_and_exits_1(api, cli, callback_receiver):
    refused = cli("pay", "--pgcode", "creditcard", "--amount", "-5", "--callback-url",
                  callback_receiver.url).refusal()
    assert (refused["status"], refused["code"]) == (406, 2005)
    assert refused["request"] == "POST /v1.0/payments/request" and refused["url"] == api.url
    # A key from the environment, the gateway's 401 for a wrong one.
    wrong = cli("pay", "--pgcode", "creditcard", "--amount", "1000", "--callback-url", callback_receiver.url,
                env={ENV_PREFIX + "PAYMENT_KEY": "bm90LWEta2V5"}).refusal()
    assert (wrong["status"], wrong["code"]) == (401, 998)
    assert api.control("/payments", method="GET")["payments"] == []


def test_pay_in_a_sandbox_uses_the_sandboxs_keys(api, cli, callback_receiver):
    sandbox = cli("sandbox", "create").json()
    try:
        payment = cli("pay", "--sandbox", sandbox["id"], "--pgcode", "creditcard", "--amount", "1000",
                      "--callback-url", callback_receiver.url, "--json").json()
        assert (payment["client_id"], payment["status"]) == (sandbox["client_id"], "approved")
        assert api.control("/payments", method="GET")["payments"] == []
    finally:
        cli("sandbox", "delete", sandbox["id"]).json()


# --- requests, callbacks tail, coverage --------------------------------------------------------------

def test_requests_prints_the_journal_filtered_and_counts(api, cli):
    api.request_payment(amount=1000)
    api.request_payment(amount=2000)
    api.post("/v1.0/payments/request", api.request_body(amount=None))  # 406: amount is required
    api.post("/v1.0/payments/cancel", {"client_id": "pay_test"}, key=None)  # 401: no key
    entries = [json.loads(line) for line in cli("requests").stdout.splitlines()]
    assert [e["status"] for e in entries] == [200, 200, 406, 401]
    assert [e["id"] for e in entries] == sorted(e["id"] for e in entries)
    assert cli("requests", "--path", "payments/request", "--count").stdout == "3\n"
    [refused] = [json.loads(line) for line in
                 cli("requests", "--path", "/v1.0/payments/request", "--status", "4xx").stdout.splitlines()]
    assert refused["response"]["code"] == 2001
    assert json.loads(cli("requests", "--status", "401").stdout)["path"] == "/v1.0/payments/cancel"
    assert cli("requests", "--status", "2xx", "--count").stdout == "2\n"
    assert cli("requests", "--path", "payments/status").stdout == ""
    for wrong in (("--status", "4x"), ("--count", "--follow")):
        usage = cli("requests", *wrong)
        assert usage.status == 2 and "Traceback" not in usage.stderr, usage


def test_requests_reads_every_page_of_a_long_journal(api, cli):
    for n in range(450):  # more than two of the pages it asks for
        api.post("/v1.0/payments/status", {"client_id": "pay_test", "order_no": f"o-{n}"})
    entries = [json.loads(line) for line in cli("requests").stdout.splitlines()]
    assert [e["request"]["order_no"] for e in entries] == [f"o-{n}" for n in range(450)]
    assert cli("requests", "--path", "payments/status", "--count").stdout == "450\n"


def test_requests_follow_prints_each_new_request_until_interrupted(api):
    api.request_payment(order_no="before")
    follow = Command("requests", "--follow", "--path", "payments/request", "--interval", "0.1",
                     env={ENV_PREFIX + "URL": api.url})
    assert json.loads(follow.line())["request"]["order_no"] == "before"
    api.request_payment(order_no="one")
    assert json.loads(follow.line())["request"]["order_no"] == "one"
    api.get("/v1.0/payments/transaction/list", {"client_id": "pay_test", "date": "20260101"})  # another path
    api.post("/v1.0/payments/request", api.request_body(order_no="two", amount=None))  # refused, still a request
    line = json.loads(follow.line())
    assert (line["request"]["order_no"], line["status"]) == ("two", 406)
    api.control("/reset")  # the journal starts again, and so do its ids
    api.request_payment(order_no="after the reset")
    assert json.loads(follow.line())["request"]["order_no"] == "after the reset"
    status, stderr = follow.stop(signal.SIGINT)
    assert (status, stderr) == (0, "")


def test_callbacks_tail_follows_each_attempt_as_it_is_recorded(api, callback_receiver):
    callback_receiver.status = 500  # the merchant refuses the first attempt
    tail = Command("callbacks", "tail", "--follow", "--interval", "0.1", env={ENV_PREFIX + "URL": api.url})
    fields = api.pay()
    first = json.loads(tail.line())
    assert (first["tid"], first["kind"], first["number"], first["http_status"], first["callback_status"]) == \
        (fields["tid"], "first", 1, 500, "pending")
    assert first["url"] == callback_receiver.url and first["state"] == "done"
    callback_receiver.status = 200
    api.advance(seconds=300)
    api.flush()
    retry = json.loads(tail.line())
    assert (retry["callback_id"], retry["kind"], retry["number"], retry["http_status"]) == \
        (first["callback_id"], "retry", 2, 200)
    status, stderr = tail.stop(signal.SIGTERM)
    assert (status, stderr) == (0, "")
    # Without --follow: what the ledger holds, and its count.
    env = {ENV_PREFIX + "URL": api.url}
    assert [json.loads(line)["number"] for line in run("callbacks", "tail", env=env).stdout.splitlines()] == [1, 2]
    assert run("callbacks", "tail", "--count", "--tid", fields["tid"], env=env).stdout == "2\n"
    assert run("callbacks", "tail", "--tid", "t-nobody", env=env).stdout == ""


def test_coverage_as_text_and_as_json(api, cli):
    before = cli("coverage", "--json").json()
    api.pay(pgcode="creditcard")
    after = cli("coverage", "--json").json()
    assert after["pgcodes"]["creditcard"] == before["pgcodes"].get("creditcard", 0) + 1
    assert after["endpoints"]["payments/request"] == before["endpoints"].get("payments/request", 0) + 1
    text = cli("coverage")
    assert text.status == 0 and text.stderr == ""
    lines = text.stdout.splitlines()
    assert lines[0].startswith("endpoints: ") and f"creditcard {after['pgcodes']['creditcard']}" in lines[1]
    # a line for what nothing exercised yet, if anything (the module's emulator is shared)
    assert any(line.startswith("never exercised (endpoints): ") for line in lines) == bool(after["never"]["endpoints"])


# --- assert_requested, as a pytest suite meets it ------------------------------------------------------

ASSERTING = '''
import requests


def pay(client, **overrides):
    body = {"pgcode": "creditcard", "client_id": client.client_id, "user_id": "u1", "amount": 1000,
            "product_name": "p", "return_url": "https://merchant.example/result",
            "callback_url": "http://127.0.0.1:9/callback", **overrides}
    token = client.gateway.post("/v1.0/payments/request", body).json()["token"]
    return client.approve(token)["fields"]["tid"]


def cancel(client, tid, amount, partial=False):
    path = "/v1.0/payments/cancel/partial" if partial else "/v1.0/payments/cancel"
    return client.gateway.post(path, {"pgcode": "creditcard", "client_id": client.client_id, "user_id": "u1",
                                      "tid": tid, "amount": amount, "ip_addr": "127.0.0.1"})


def test_found(payletter):
    tid = pay(payletter)
    cancel(payletter, tid, 1000)
    [entry] = payletter.assert_requested("payments/cancel", times=1, tid=tid, amount=1000)
    assert entry["status"] == 200
    payletter.assert_requested("/v1.0/payments/request", amount=1000, pgcode="creditcard")
    payletter.assert_requested("payments/cancel/partial", times=0)


def test_a_field_differs(payletter):
    tid = pay(payletter)
    cancel(payletter, tid, 300, partial=True)
    cancel(payletter, tid, "700")
    payletter.assert_requested("payments/cancel", tid=tid, amount=700)


def test_too_many(payletter_app):
    pay(payletter_app)
    pay(payletter_app, amount=2000)
    payletter_app.assert_requested("payments/request", times=1)


def test_nothing_like_it(payletter_app):
    pay(payletter_app)
    payletter_app.assert_requested("cashreceipt/issue", tid="x")
'''


def test_assert_requested_passes_and_a_miss_shows_the_closest_requests(pytester):
    pytester.makepyfile(ASSERTING)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", *ONLY_OUR_PLUGIN, "--payletter-no-coverage")
    result.assert_outcomes(passed=1, failed=3)
    result.stdout.fnmatch_lines([
        "*AssertionError: expected at least one request to payments/cancel with tid='t*', amount=700; "
        "the journal holds 0 (of 3 gateway API requests)",
        "*the closest requests in the journal:",
        "*#3 * POST /v1.0/payments/cancel -> 200",
        "*amount: sent '700', expected 700",
        "*#2 * POST /v1.0/payments/cancel/partial -> 200 (another path)",
        "*amount: sent 300, expected 700",
    ])
    result.stdout.fnmatch_lines([
        "*AssertionError: expected 1 request to payments/request; the journal holds 2 (of 2 gateway API requests)",
        "*the ones that match:",
        "*#1 * POST /v1.0/payments/request -> 200",
        "*#2 * POST /v1.0/payments/request -> 200",
    ])
    result.stdout.fnmatch_lines([
        "*AssertionError: expected at least one request to cashreceipt/issue with tid='x'; the journal holds 0 "
        "(of 1 gateway API request)",
        "*nothing to cashreceipt/issue or a path like it; the journal holds: payments/request (1)",
    ])
