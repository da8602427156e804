"""payletter_emulator.client: the control API from Python, against a live emulator (each test in a
sandbox of its own) and in-process."""
from __future__ import annotations

from datetime import timedelta

import pytest

from payletter_emulator.client import CallbackWaitError, EmulatorClient, EmulatorError, Sandbox
from payletter_emulator.engines.scenario import ScenarioError

from .conftest import EmulatorProcess


@pytest.fixture
def live(emulator_process):
    root = EmulatorClient(emulator_process.url)
    client = root.new_sandbox()
    yield client
    root.delete_sandbox(client.sandbox)


def request_payment(client: EmulatorClient, callback_url: str, **overrides) -> int:
    answer = client.gateway.post("/v1.0/payments/request", {
        "pgcode": "creditcard", "client_id": client.client_id, "user_id": "u1", "amount": 1000,
        "product_name": "p", "order_no": "A-1", "return_url": "https://merchant.example/result",
        "callback_url": callback_url, **overrides})
    assert answer.status_code == 200, answer.text
    return answer.json()["token"]


def test_a_payment_approved_and_called_back(live, callback_receiver):
    callback_receiver.clear()
    fields = live.approve(request_payment(live, callback_receiver.url))["fields"]
    delivered = live.callbacks.wait(tid=fields["tid"])
    assert delivered["status"] == "delivered" and delivered["attempts"][0]["http_status"] == 200
    assert [c["id"] for c in live.callbacks.list(status="delivered")] == [delivered["id"]]
    assert live.payment(fields["tid"])["status"] == "approved"
    assert [p["tid"] for p in live.payments(status="approved")] == [fields["tid"]]
    [entry] = live.requests()
    assert (entry["path"], entry["status"]) == ("/v1.0/payments/request", 200)


def test_wait_says_why_nothing_was_delivered_and_how_to_move_on(live):
    fields = live.approve(request_payment(live, "http://127.0.0.1:9/callback"))["fields"]
    with pytest.raises(CallbackWaitError) as refused:
        live.callbacks.wait(tid=fields["tid"])
    message = str(refused.value)
    assert f"no delivered notification for tid {fields['tid']}" in message
    assert "pending, 1 attempt(s); last attempt: ConnectionError" in message
    assert "clock.advance(minutes=5)" in message
    live.clock.advance(minutes=5)
    assert live.callbacks.wait(tid=fields["tid"], status="pending")["attempts_made"] == 2
    with pytest.raises(CallbackWaitError, match="nothing was queued"):
        live.callbacks.wait(tid="no-such-tid")


def test_resend_makes_one_more_attempt(live, callback_receiver):
    callback_receiver.clear()
    fields = live.approve(request_payment(live, callback_receiver.url))["fields"]
    first = live.callbacks.wait(tid=fields["tid"])
    again = live.callbacks.resend(first["id"])
    assert again["attempt"]["kind"] == "resend"
    assert len(live.callbacks.get(first["id"])["attempts"]) == 2


def test_the_clock(live):
    start = live.clock.freeze()
    assert live.clock.frozen is True and live.clock.now() == start
    assert live.clock.advance(minutes=5, seconds=30) - start == timedelta(minutes=5, seconds=30)
    assert live.clock.advance(timedelta(days=1), hours=1) - start == timedelta(days=1, hours=1, minutes=5, seconds=30)
    assert live.clock.set("2030-01-02T03:04:05").isoformat() == "2030-01-02T03:04:05+09:00"
    assert live.clock.set(start) == start
    live.clock.unfreeze()
    assert live.clock.frozen is False


def test_decline_abandon_and_deposit(live):
    declined = live.decline(request_payment(live, "http://127.0.0.1:9/cb"), code="6002", message="no funds")
    assert (declined["fields"]["code"], declined["fields"]["message"]) == ("6002", "no funds")
    assert live.abandon(request_payment(live, "http://127.0.0.1:9/cb", cancel_url="https://m.example/c")) == {
        "redirect_url": "https://m.example/c"}
    issued = live.approve(request_payment(live, "http://127.0.0.1:9/cb", pgcode="virtualaccount"))["fields"]
    assert live.deposit(issued["tid"])["status"] == "approved"


def test_a_refusal_carries_the_envelope(live):
    with pytest.raises(EmulatorError) as refused:
        live.approve(123)
    error = refused.value
    assert (error.status, error.code) == (404, 4301)
    assert error.message == "token 123 is not a payment request"
    assert str(error) == "POST /_emulator/payments/123/approve: HTTP 404, code 4301: token 123 is not a payment request"


def test_scenarios_by_name_file_document_and_merged(live, tmp_path):
    assert live.use_scenario("flaky-callbacks")["scenario"]["name"] == "flaky-callbacks"
    mine = tmp_path / "mine.yaml"
    mine.write_text("version: 1\nname: mine\nrules: []\n")
    assert live.use_scenario(mine)["scenario"]["name"] == "mine"
    assert live.use_scenario({"version": 1, "name": "inline", "rules": []})["scenario"]["name"] == "inline"
    merged = live.use_scenario("flaky-callbacks", "declined-cards")
    assert merged["scenario"]["name"] == "flaky-callbacks + declined-cards"
    assert live.clear_scenario()["rules"] == []
    with pytest.raises(ScenarioError, match="no-such: no such file"):
        live.use_scenario("no-such")
    with pytest.raises(EmulatorError) as refused:
        live.use_scenario({"version": 1, "rules": [{"then": {"nonsense": True}}]})
    assert refused.value.code == 4501


def test_sandboxes_are_separate_and_deleted(emulator_process):
    root = EmulatorClient(emulator_process.url)
    one, two = root.new_sandbox(), root.new_sandbox("declined-cards")
    assert isinstance(one._sandbox_info, Sandbox) and one.client_id != two.client_id
    request_payment(one, "http://127.0.0.1:9/cb")
    assert len(one.payments()) == 1 and two.payments() == []
    assert two.scenario()["scenario"]["name"] == "declined-cards"
    # Bound by id alone, a client finds its keys.
    by_id = EmulatorClient(emulator_process.url, sandbox=one.sandbox)
    assert (by_id.url, by_id.payment_key) == (one.url, one.payment_key)
    assert {one.sandbox, two.sandbox} <= {s.id for s in root.sandboxes()}
    root.delete_sandbox(one.sandbox)
    root.delete_sandbox(two._sandbox_info)
    assert not {one.sandbox, two.sandbox} & {s.id for s in root.sandboxes()}
    with pytest.raises(EmulatorError) as gone:
        one.payments()
    assert gone.value.status == 404


def test_health_coverage_and_reset_at_the_root(emulator_process):
    root = EmulatorClient(emulator_process.url)
    assert root.health() == {"status": "ok"}
    assert {"endpoints", "pgcodes", "error_codes", "callbacks", "never"} <= set(root.coverage())
    assert (root.url, root.client_id) == (emulator_process.url, "pay_test")


def test_in_process(payletter_app):
    client = payletter_app
    assert client.app is not None and client.test_client is not None
    token = request_payment(client, "http://127.0.0.1:9/cb")
    fields = client.approve(token)["fields"]
    assert client.payment(token)["tid"] == fields["tid"]
    assert client.gateway.get("/v1.0/payments/transaction/list", {
        "client_id": "pay_test", "date": fields["transaction_date"][:10].replace("-", ""),
        "date_type": "transaction"}).json()["total_count"] == 1
    assert client.reset()["status"] == "reset" and client.payments() == []


def test_in_process_requests_keep_their_query_and_name_the_clients_host():
    from payletter_emulator import create_app

    app = create_app(db=":memory:")
    try:
        client = EmulatorClient.for_app(app, base_url="http://127.0.0.1:8080")
        # A query written in the path goes as over the network (it was dropped in process).
        refused = client.send("GET", "/_emulator/callbacks?status=sent", root=True)
        assert (refused.status_code, refused.json()["code"]) == (406, 4314)
        # The URLs the app hands out start with the client's base URL, as a server's do.
        answer = client.gateway.post("/v1.0/payments/request", {
            "pgcode": "creditcard", "client_id": "pay_test", "user_id": "u1", "amount": 1000, "product_name": "p",
            "return_url": "https://merchant.example/result", "callback_url": "http://127.0.0.1:9/cb"})
        assert answer.json()["online_url"].startswith("http://127.0.0.1:8080/pgsvc/hub.asp?")
    finally:
        app.extensions["payletter"].dispatcher.stop()


def test_a_control_token_is_sent(tmp_path):
    process = EmulatorProcess(tmp_path, "--control-token", "s3cret")
    try:
        with pytest.raises(EmulatorError) as refused:
            EmulatorClient(process.url).payments()
        assert refused.value.status == 401
        assert EmulatorClient(process.url, control_token="s3cret").payments() == []
    finally:
        process.stop()
