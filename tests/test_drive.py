"""The commands that drive a running emulator from a shell (`payletter-emulator approve <token>`),
run as processes against a live emulator: one JSON document on stdout, or a JSON refusal on
stderr with exit status 1."""
from __future__ import annotations

import functools
import json
import os
import subprocess
import threading
from dataclasses import dataclass
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlparse

import click
import pytest

from payletter_emulator.config import ENV_PREFIX
from payletter_emulator.client.drive_options import Refused, default_url, default_verify, parse_duration

from .conftest import CLI, EmulatorProcess, freeze_at

SCENARIOS = Path(__file__).resolve().parent.parent / "scenarios"


@dataclass
class Run:
    status: int
    stdout: str
    stderr: str

    def json(self):
        assert self.status == 0 and self.stderr == "", self
        return json.loads(self.stdout)

    def refusal(self) -> dict:
        assert self.status == 1 and self.stdout == "", self
        return json.loads(self.stderr)


def run(*args: str, env: dict | None = None, stdin: str | None = None) -> Run:
    """The command with only the environment given (no PAYLETTER_EMULATOR_* of the caller's)."""
    environ = {key: value for key, value in os.environ.items() if not key.startswith(ENV_PREFIX)}
    done = subprocess.run([str(CLI), *args], env={**environ, **(env or {})}, input=stdin,
                          capture_output=True, text=True, timeout=120)
    return Run(done.returncode, done.stdout, done.stderr)


@pytest.fixture
def cli(api):
    """The command pointed at the clean session emulator by PAYLETTER_EMULATOR_URL."""
    return lambda *args, env=None, stdin=None: run(*args, env={ENV_PREFIX + "URL": api.url, **(env or {})},
                                                  stdin=stdin)


# --- the payer -------------------------------------------------------------------------------------

def test_approve_pays_the_token_and_flush_delivers_the_callback(api, cli, callback_receiver):
    token = api.request_payment(order_no="cli-1", amount=1500)
    answer = cli("approve", str(token)).json()
    fields = answer["fields"]
    assert (fields["code"], fields["order_no"], fields["amount"]) == ("0", "cli-1", "1500")
    assert answer["return_url"] == "https://merchant.example/result"

    flushed = cli("callbacks", "flush").json()
    assert flushed == {"idle": True, "pending": 0, "next_attempt_at": None}
    [notification] = cli("callbacks", "list", "--tid", fields["tid"]).json()["callbacks"]
    assert notification["status"] == "delivered" and notification["attempts"][0]["http_status"] == 200
    assert [c.json()["tid"] for c in callback_receiver.received] == [fields["tid"]]
    assert cli("callbacks", "list", "--status", "failed").json() == {"callbacks": []}


def test_approve_takes_the_payers_choices(api, cli):
    token = api.request_payment(pgcode="creditcard", amount=60000)
    fields = cli("approve", str(token), "--install-month", "03").json()["fields"]
    assert fields["install_month"] == "03"


def test_decline_and_abandon(api, cli, callback_receiver):
    declined = cli("decline", str(api.request_payment()), "--code", "6002", "--message", "no funds").json()
    assert (declined["fields"]["code"], declined["fields"]["message"]) == ("6002", "no funds")
    abandoned = cli("abandon", str(api.request_payment())).json()
    assert abandoned == {"redirect_url": "https://merchant.example/cancel"}
    assert sorted(p["status"] for p in cli("payments", "list").json()["payments"]) == ["abandoned", "failed"]
    cli("callbacks", "flush").json()
    assert callback_receiver.received == []


def test_a_refusal_is_the_emulators_envelope_as_json_on_stderr(cli):
    refusal = cli("approve", "100000000000000000").refusal()
    assert refusal == {"status": 404, "code": 4301, "message": "token 100000000000000000 is not a payment request",
                       "request": "POST /_emulator/payments/100000000000000000/approve",
                       "url": refusal["url"]}


def test_deposit_into_a_virtual_account_then_wait_for_its_callback(api, cli):
    issued = cli("approve", str(api.request_payment(pgcode="virtualaccount", amount=5000))).json()["fields"]
    tid = issued["tid"]
    assert cli("payments", "get", tid).json()["status"] == "awaiting_deposit"
    deposited = cli("deposit", tid).json()
    assert (deposited["status"], deposited["amount"]) == ("approved", 5000)
    waited = cli("callbacks", "wait", "--tid", tid).json()
    assert (waited["status"], waited["body"]["tid"]) == ("delivered", tid)
    assert [p["tid"] for p in cli("payments", "list", "--status", "approved").json()["payments"]] == [tid]


def test_callbacks_wait_fails_saying_what_happened_and_resend_delivers(api, cli, callback_receiver):
    callback_receiver.status = 500
    tid = cli("approve", str(api.request_payment())).json()["fields"]["tid"]
    refusal = cli("callbacks", "wait", "--tid", tid).refusal()
    assert "no delivered notification" in refusal["message"] and "pending, 1 attempt(s)" in refusal["message"]
    callback_receiver.status = 200
    [pending] = cli("callbacks", "list", "--tid", tid, "--status", "pending").json()["callbacks"]
    resent = cli("callbacks", "resend", str(pending["id"])).json()
    assert (resent["attempt"]["http_status"], resent["callback"]["status"]) == (200, "delivered")
    assert cli("callbacks", "resend", "999999").refusal()["code"] == 4308


# --- the clock, reset, payments -----------------------------------------------------------------------

def test_the_clock_freezes_moves_and_unfreezes(cli):
    assert cli("clock", "freeze").json()["frozen"] is True
    assert cli("clock", "set", "2026-01-01T09:00:00").json() == {"now": "2026-01-01T09:00:00+09:00", "frozen": True}
    assert cli("clock", "advance", "1h30m").json()["now"] == "2026-01-01T10:30:00+09:00"
    assert cli("clock", "advance", "90").json()["now"] == "2026-01-01T10:31:30+09:00"
    assert cli("clock", "get").json() == {"now": "2026-01-01T10:31:30+09:00", "frozen": True}
    assert cli("clock", "unfreeze").json()["frozen"] is False
    assert cli("clock", "set", "yesterday").refusal()["code"] == 4311


def test_a_duration_that_is_not_one_is_a_usage_error(cli):
    bad = cli("clock", "advance", "5x")
    assert bad.status == 2 and "is not a duration" in bad.stderr


@pytest.mark.parametrize(("text", "seconds"), [("300", 300), ("90s", 90), ("5m", 300), ("1h30m", 5400),
                                                ("3d", 259200), ("1.5h", 5400)])
def test_durations(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "m", "5x", "-5", "1h 30"])
def test_what_is_not_a_duration(text):
    with pytest.raises(click.BadParameter):
        parse_duration(text)


def test_reset_forgets_the_payments_and_returns_the_clock(api, cli):
    freeze_at(api, "2026-01-01T09:00:00")
    cli("approve", str(api.request_payment())).json()
    answer = cli("reset").json()
    assert answer["status"] == "reset" and answer["clock"]["frozen"] is False
    assert cli("payments", "list").json() == {"payments": []}


def test_payments_get_by_token_and_an_unknown_one(api, cli):
    token = api.request_payment(order_no="cli-get")
    assert cli("payments", "get", str(token)).json()["order_no"] == "cli-get"
    assert cli("payments", "get", "tnope").refusal()["status"] == 404


# --- sandboxes and scenarios --------------------------------------------------------------------------

def test_a_sandbox_is_created_driven_listed_and_deleted(api, cli):
    made = cli("sandbox", "create", "--scenario", "declined-cards", "--idle-seconds", "600").json()
    assert made["base_url"] == f"{api.url}/_sandbox/{made['id']}" and made["idle_seconds"] == 600
    sandbox = SandboxMerchant(made, api)
    token = sandbox.request_payment(amount=1013)
    # --sandbox (or PAYLETTER_EMULATOR_SANDBOX) drives the sandbox; the root sees nothing.
    assert cli("approve", token, "--sandbox", made["id"]).json()["fields"]["code"] == "6002"
    assert cli("scenario", "get", env={ENV_PREFIX + "SANDBOX": made["id"]}).json()["scenario"]["name"] == "declined-cards"
    assert cli("payments", "list").json() == {"payments": []}
    assert made["id"] in [s["id"] for s in cli("sandbox", "list").json()["sandboxes"]]

    assert cli("sandbox", "delete", made["id"]).json() == {"deleted": made["id"]}
    assert made["id"] not in [s["id"] for s in cli("sandbox", "list").json()["sandboxes"]]
    gone = cli("sandbox", "delete", made["id"]).refusal()
    assert (gone["status"], gone["code"]) == (404, 4601)
    assert cli("clock", "get", "--sandbox", made["id"]).refusal()["code"] == 4601


class SandboxMerchant:
    """A merchant of a sandbox: its keys, its base_url."""

    def __init__(self, sandbox: dict, root):
        self.sandbox, self.root = sandbox, root

    def request_payment(self, **overrides) -> str:
        body = self.root.request_body(client_id=self.sandbox["client_id"], **overrides)
        answer = self.root.http.post(self.sandbox["base_url"] + "/v1.0/payments/request", json=body, timeout=30,
                                     headers={"Authorization": f"PLKEY {self.sandbox['payment_key']}"})
        assert answer.status_code == 200, answer.text
        return str(answer.json()["token"])


def test_scenario_put_from_a_name_a_file_and_standard_input_then_clear(api, cli, tmp_path):
    assert cli("scenario", "put", "declined-cards").json()["scenario"]["name"] == "declined-cards"
    assert cli("approve", str(api.request_payment(amount=1013))).json()["fields"]["code"] == "6002"

    merged = cli("scenario", "put", str(SCENARIOS / "declined-cards.yaml"), "flaky-callbacks").json()
    assert merged["scenario"]["name"] == "declined-cards + flaky-callbacks"
    piped = cli("scenario", "put", "-", stdin="version: 1\nname: piped\nrules: []\n").json()
    assert piped["scenario"]["name"] == "piped" and cli("scenario", "get").json()["scenario"]["name"] == "piped"
    assert cli("scenario", "clear").json()["rules"] == []


def test_a_broken_scenario_is_refused_with_its_problems(cli, tmp_path):
    broken = tmp_path / "broken.yaml"
    broken.write_text("version: 1\nrules:\n  - name: r\n")
    local = cli("scenario", "put", str(broken)).refusal()
    assert any(str(broken) in problem and "then" in problem for problem in local["problems"])
    assert "no scenario of that name" in cli("scenario", "put", "no-such-scenario").refusal()["problems"][0]
    served = cli("scenario", "put", "-", stdin='{"version": 1, "rules": [{"name": "r"}]}').refusal()
    assert (served["status"], served["code"]) == (406, 4501) and "'then' is a required property" in served["message"]
    assert "holds no scenario" in cli("scenario", "put", "-", stdin="- a list\n").refusal()["message"]


# --- reaching the emulator: the URL, the token, HTTPS, health ------------------------------------------

def test_health_answers_while_the_server_does_and_fails_once_it_is_gone(tmp_path):
    server = EmulatorProcess(tmp_path)
    try:
        assert run("health", "--url", server.url).json() == {"status": "ok", "url": server.url}
        port = urlparse(server.url).port
        # The URL also comes from the settings the server reads (what the image's HEALTHCHECK uses).
        assert run("health", env={ENV_PREFIX + "PORT": str(port), ENV_PREFIX + "HOST": "0.0.0.0"}).json()["url"] \
            == f"http://127.0.0.1:{port}"
    finally:
        server.stop()
    gone = run("health", "--url", server.url, "--timeout", "2").refusal()
    assert gone["message"].startswith("cannot reach the emulator") and gone["url"] == server.url


def test_the_control_token_comes_from_the_option_or_the_environment(tmp_path):
    server = EmulatorProcess(tmp_path, "--control-token", "s3cret")
    try:
        refused = run("clock", "get", "--url", server.url).refusal()
        assert (refused["status"], refused["code"]) == (401, 4312)
        assert run("clock", "get", "--url", server.url, "--token", "s3cret").json()["frozen"] is False
        env = {ENV_PREFIX + "URL": server.url, ENV_PREFIX + "CONTROL_TOKEN": "s3cret"}
        assert run("sandbox", "list", env=env).json() == {"sandboxes": []}
        assert run("health", "--url", server.url).json()["status"] == "ok"  # health needs no token
    finally:
        server.stop()


def test_https_with_the_servers_own_ca_a_given_one_or_no_check(tmp_path):
    server = EmulatorProcess(tmp_path, "--tls")
    try:
        port = str(urlparse(server.url).port)
        # The settings of the server: its port, HTTPS, and the CA it made beside its database.
        settings = {ENV_PREFIX + "PORT": port, ENV_PREFIX + "TLS": "true", ENV_PREFIX + "DB": server.db}
        assert run("health", env=settings).json() == {"status": "ok", "url": f"https://127.0.0.1:{port}"}
        assert run("clock", "get", "--url", server.url, "--ca-file", server.ca).json()["frozen"] is False
        untrusted = run("health", "--url", server.url).refusal()
        assert "CERTIFICATE_VERIFY_FAILED" in untrusted["message"]
        assert run("health", "--url", server.url, "--insecure").json()["status"] == "ok"
    finally:
        server.stop()


def test_an_answer_that_is_not_json_is_said_to_be_so(tmp_path):
    (tmp_path / "_emulator").mkdir()
    (tmp_path / "_emulator" / "clock").write_text("<html>a web server, not the emulator</html>")
    handler = functools.partial(SimpleHTTPRequestHandler, directory=str(tmp_path))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        refusal = run("clock", "get", "--url", f"http://127.0.0.1:{server.server_port}").refusal()
        assert refusal["message"].startswith("the answer is not JSON")
    finally:
        server.shutdown()


def test_the_default_url_and_ca():
    assert default_url({}) == "http://127.0.0.1:8080"
    assert default_url({ENV_PREFIX + "URL": "http://emulator:9000"}) == "http://emulator:9000"
    assert default_url({ENV_PREFIX + "PORT": "9001", ENV_PREFIX + "TLS": "1"}) == "https://127.0.0.1:9001"
    assert default_url({ENV_PREFIX + "HOST": "::1"}) == "http://[::1]:8080"
    assert default_verify("http://127.0.0.1:8080", {}) is True
    assert default_verify("https://x", {ENV_PREFIX + "CA_FILE": "ca.pem"}) == "ca.pem"
    with pytest.raises(Refused, match="eighty"):
        default_url({ENV_PREFIX + "PORT": "eighty"})


def test_health_waits_for_a_server_that_is_starting(tmp_path):
    server = EmulatorProcess(tmp_path)
    port = urlparse(server.url).port
    server.stop()
    # Nothing answers: one question fails at once; --wait asks again until its time is up.
    waiting = subprocess.Popen([str(CLI), "health", "--url", server.url, "--wait", "60"], stdout=subprocess.PIPE,
                               env={k: v for k, v in os.environ.items() if not k.startswith(ENV_PREFIX)})
    assert run("health", "--url", server.url).status == 1
    assert waiting.poll() is None  # asked as well, and asks again
    (tmp_path / "again").mkdir()
    again = EmulatorProcess(tmp_path / "again", "--port", str(port))  # the last --port wins
    try:
        assert waiting.wait(60) == 0
        assert json.loads(waiting.stdout.read())["status"] == "ok"
    finally:
        again.stop()
