"""Dead ends a new user met driving the payer without a browser: what the payment page refuses,
the control API, the client and the CLI refuse too, with the gateway's envelope; and what a
refusal says is enough to go on (issue 27)."""
from __future__ import annotations

import os
import subprocess

import pytest

from payletter_emulator.client import CallbackWaitError, EmulatorClient, EmulatorError
from payletter_emulator.config import ENV_PREFIX

from .conftest import CLI, ONLY_OUR_PLUGIN, refused
from .test_drive import Run

pytest_plugins = ["pytester"]

MISTYPED_DECLINE_CARD = "4000000000000003"  # 4000000000000002 (declines) with its last digit wrong
DECLINE_CARD = "4000000000000002"


@pytest.fixture
def cli(api):
    """`payletter-emulator ARGS` pointed at the clean session emulator, with no other settings."""
    environ = {key: value for key, value in os.environ.items() if not key.startswith(ENV_PREFIX)}

    def run(*args: str) -> Run:
        done = subprocess.run([str(CLI), *args], env={**environ, ENV_PREFIX + "URL": api.url},
                              capture_output=True, text=True, timeout=120)
        return Run(done.returncode, done.stdout, done.stderr)

    return run


@pytest.fixture
def client(api):
    made = EmulatorClient(api.url)
    yield made
    made.close()


def approve_raw(api, token: int, body: dict):
    return api.http.post(f"{api.url}/_emulator/payments/{token}/approve", json=body, timeout=30)


# --- 1. a card number the page refuses is refused by approve too -----------------------------------

def test_approve_refuses_a_card_number_that_fails_the_luhn_check(api):
    token = api.request_payment()
    body = refused(approve_raw(api, token, {"card_number": MISTYPED_DECLINE_CARD}), 406, 2004)
    assert "card_number" in body["message"] and "Luhn" in body["message"], body
    assert MISTYPED_DECLINE_CARD in body["message"]
    assert api.control(f"/payments/{token}", method="GET")["status"] == "created"  # still to be paid
    declined = api.control(f"/payments/{token}/approve", {"card_number": DECLINE_CARD})
    assert declined["fields"]["code"] == "6001"  # the decline card, typed right, declines as on the page


def test_the_client_and_the_cli_refuse_a_mistyped_decline_card(api, client, cli):
    token = api.request_payment()
    with pytest.raises(EmulatorError) as refusal:
        client.approve(token, card_number=MISTYPED_DECLINE_CARD)
    assert refusal.value.status == 406 and refusal.value.code == 2004
    assert "card_number" in refusal.value.message and "Luhn" in refusal.value.message
    shown = cli("approve", str(token), "--card-number", MISTYPED_DECLINE_CARD).refusal()
    assert shown["status"] == 406 and shown["code"] == 2004 and "Luhn" in shown["message"], shown
    assert cli("approve", str(token), "--card-number", "4111111111111111").json()["fields"]["code"] == "0"


# --- 2. approve after the page expired: refused unless asked ---------------------------------------

def test_approve_after_the_page_expired_is_refused_unless_asked(api):
    token = api.request_payment()
    api.advance(seconds=31 * 60)
    body = refused(approve_raw(api, token, {}), 410, 4402)
    assert "expired" in body["message"] and "ignore_expiry" in body["message"], body
    assert api.control(f"/payments/{token}", method="GET")["status"] == "created"
    approved = approve_raw(api, token, {"ignore_expiry": True})
    assert approved.status_code == 200 and approved.json()["fields"]["code"] == "0", approved.text
    refused(approve_raw(api, api.request_payment(), {"ignore_expiry": "yes"}), 406)  # a flag, not text


def test_approve_within_the_page_lifetime_needs_nothing(api):
    token = api.request_payment()
    api.advance(seconds=29 * 60)
    assert approve_raw(api, token, {}).json()["fields"]["code"] == "0"


def test_the_client_and_the_cli_approve_an_expired_payment_only_when_asked(api, client, cli):
    by_client, by_cli = api.request_payment(), api.request_payment()
    api.advance(seconds=31 * 60)
    with pytest.raises(EmulatorError) as refusal:
        client.approve(by_client)
    assert refusal.value.status == 410 and refusal.value.code == 4402
    assert client.approve(by_client, ignore_expiry=True)["fields"]["code"] == "0"
    shown = cli("approve", str(by_cli)).refusal()
    assert shown["status"] == 410 and "--ignore-expiry" in shown["message"], shown
    assert cli("approve", str(by_cli), "--ignore-expiry").json()["fields"]["code"] == "0"


# --- 3. a merchant's refusal is shown, and the way on is the CLI's own command ----------------------

MERCHANT_REFUSAL = b'{"error": "payhash mismatch"}'


@pytest.fixture
def refusing_merchant(callback_receiver):
    """The merchant's callback endpoint answers 400 with its reason."""
    callback_receiver.clear()
    callback_receiver.status, callback_receiver.answer = 400, MERCHANT_REFUSAL
    yield callback_receiver
    callback_receiver.clear()


def test_callbacks_wait_shows_the_merchants_answer_and_how_to_move_the_clock(api, client, refusing_merchant):
    tid = client.approve(api.request_payment())["fields"]["tid"]
    with pytest.raises(CallbackWaitError) as refusal:
        client.callbacks.wait(tid=tid)
    message = str(refusal.value)
    assert "last attempt: HTTP 400 " + MERCHANT_REFUSAL.decode() in message, message
    assert "clock.advance(minutes=5)" in message and 240 < refusal.value.retry_in <= 300
    client.clock.advance(minutes=5)
    assert client.callbacks.wait(tid=tid, status="pending")["attempts_made"] == 2


def test_the_cli_shows_the_merchants_answer_and_its_own_clock_command(api, cli, refusing_merchant):
    token = api.request_payment()
    tid = cli("approve", str(token)).json()["fields"]["tid"]
    message = cli("callbacks", "wait", "--tid", tid).refusal()["message"]
    assert "last attempt: HTTP 400 " + MERCHANT_REFUSAL.decode() in message, message
    assert "clock.advance" not in message
    hint = message.rsplit("advance it (", 1)[1].split(")", 1)[0]
    assert hint == "payletter-emulator clock advance 5m", message
    cli(*hint.split()[1:]).json()  # the hint is a command the CLI runs
    assert cli("callbacks", "wait", "--tid", tid, "--status", "pending").json()["attempts_made"] == 2


def test_the_plugins_report_shows_the_merchants_answer(pytester, refusing_merchant):
    pytester.makepyfile(f'''
import requests


def test_fails(payletter):
    body = {{"pgcode": "creditcard", "client_id": payletter.client_id, "user_id": "u1", "amount": 1000,
            "product_name": "p", "return_url": "https://merchant.example/result",
            "callback_url": {refusing_merchant.url!r}}}
    token = requests.post(payletter.url + "/v1.0/payments/request", json=body,
                          headers={{"Authorization": "PLKEY " + payletter.payment_key}}).json()["token"]
    tid = payletter.approve(token)["fields"]["tid"]
    payletter.callbacks.wait(tid=tid)
''')
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", *ONLY_OUR_PLUGIN, "--payletter-no-coverage")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([
        "*payletter callbacks (payletter)*",
        "*1. first at *: HTTP 400 " + MERCHANT_REFUSAL.decode() + " (not acknowledged*",
    ])


# --- 4. a decline code given as a number -----------------------------------------------------------

def test_the_client_sends_a_numeric_decline_code_as_the_text_the_control_api_takes(api, client):
    declined = client.decline(api.request_payment(), code=6002)
    assert declined["fields"]["code"] == "6002"
    as_text = api.http.post(f"{api.url}/_emulator/payments/{api.request_payment()}/decline",
                            json={"code": "6003"}, timeout=30)
    assert as_text.status_code == 200 and as_text.json()["fields"]["code"] == "6003", as_text.text
    with pytest.raises(EmulatorError) as refusal:
        client.decline(api.request_payment(), code=0)  # 0 is an approval's code, not a failure's
    assert refusal.value.status == 406


# --- 5. an unknown status is refused alike by payments and callbacks --------------------------------

@pytest.mark.parametrize("path", ["/payments", "/callbacks"])
def test_the_control_api_refuses_an_unknown_status(api, path):
    body = refused(api.http.get(f"{api.url}/_emulator{path}", params={"status": "aproved"}, timeout=30), 406, 4314)
    assert "'aproved' is not one of" in body["message"], body


def test_payments_status_filter_names_its_choices(api, client):
    body = refused(api.http.get(f"{api.url}/_emulator/payments", params={"status": "aproved"}, timeout=30), 406)
    for status in ("created", "page_entered", "awaiting_deposit", "approved", "verified", "failed", "abandoned"):
        assert status in body["message"], body
    token = api.request_payment()
    approved = client.approve(api.request_payment())["fields"]["tid"]
    assert [p["tid"] for p in client.payments(status="approved")] == [approved]
    assert [p["token"] for p in client.payments(status="created")] == [token]


@pytest.mark.parametrize("command", [("payments", "list"), ("callbacks", "list")])
def test_the_cli_refuses_an_unknown_status_as_a_usage_error(cli, command):
    done = cli(*command, "--status", "aproved")
    assert done.status == 2 and done.stdout == "", done
    assert "'aproved' is not one of" in done.stderr, done
    assert cli(*command, "--status", "failed").status == 0


# --- 6. one set of decline codes: the built-in test cards and the declined-cards scenario -----------

def _cause(message: str) -> str:
    """The English cause a failure message ends with: '잔액이 부족합니다. (insufficient funds)'."""
    return message.rsplit("(", 1)[-1].rstrip(")")


def test_the_declined_cards_scenario_and_the_built_in_cards_use_one_code_per_cause():
    import yaml

    from payletter_emulator.engines.checkout import test_inputs
    from payletter_emulator.resources import scenarios_dir

    inputs = test_inputs()
    built_in = [*inputs.cards.values(), *inputs.auth_codes.values(), *inputs.pins.values(), inputs.app_decline]
    by_code = {failure.code: failure.message for failure in built_in}
    by_cause = {_cause(failure.message): failure.code for failure in built_in}
    scenario = yaml.safe_load((scenarios_dir() / "declined-cards.yaml").read_text("utf-8"))
    declines = [rule["then"]["decline"] for rule in scenario["rules"] if "decline" in rule["then"]]
    assert len(declines) == 4
    shared = 0
    for decline in declines:
        if decline["code"] in by_code or _cause(decline["message"]) in by_cause:
            assert by_code.get(decline["code"]) == decline["message"], decline  # same cause, same code and words
            shared += 1
    assert shared == 3  # declined, insufficient funds, expired card; suspected fraud has no test card


def test_a_scenario_decline_and_its_test_card_reach_return_url_alike(api, client):
    client.use_scenario("declined-cards")
    by_scenario = client.approve(api.request_payment(amount=1013))["fields"]  # an amount ending in 13
    by_card = client.approve(api.request_payment(), card_number="4000000000009995")["fields"]
    assert (by_scenario["code"], by_scenario["message"]) == (by_card["code"], by_card["message"]) == (
        "6002", "잔액이 부족합니다. (insufficient funds)")
