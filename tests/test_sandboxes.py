"""Sandboxes: isolated emulators in one server (own client and keys, state, clock, scenario,
callbacks), reached by key, by path prefix or by header; deleted on request or when idle;
on SQLite and PostgreSQL, across worker processes. And the coverage report of a run."""
from __future__ import annotations

import requests
import pytest

from payletter_emulator import create_app
from .conftest import Api, EmulatorProcess, ok, refused

T0 = "2026-11-29T10:00:00+09:00"


@pytest.fixture
def server(tmp_path, database, callback_receiver):
    process = EmulatorProcess(tmp_path, "--workers", "2", db=database)
    callback_receiver.clear()
    yield process
    process.stop()
    callback_receiver.clear()


def new_sandbox(url: str, **body) -> dict:
    response = requests.post(url + "/_emulator/sandboxes", json=body, timeout=30)
    assert response.status_code == 201, response.text
    return response.json()


class SandboxApi(Api):
    """The merchant's code pointed at the root URL with the sandbox's keys (no header: the key
    routes the request); the test's control calls carry the sandbox header."""

    def __init__(self, url: str, callback_url: str, sandbox: dict):
        super().__init__(url, callback_url)
        self.sandbox = sandbox

    def control(self, path: str, body=None, method: str = "POST") -> dict:
        response = self.http.request(method, self.url + "/_emulator" + path, json=body, timeout=30,
                                     headers={"X-Emulator-Sandbox": self.sandbox["id"]})
        assert response.status_code == 200, response.text
        return response.json()

    def post(self, path, body=None, *, key=None, **kwargs):
        return super().post(path, body, key=key or self.sandbox["payment_key"], **kwargs)

    def get(self, path, params=None, *, key=None):
        return super().get(path, params, key=key or self.sandbox["search_key"])

    def request_body(self, **overrides):
        return super().request_body(**{"client_id": self.sandbox["client_id"], **overrides})


def test_a_sandbox_keeps_its_payments_to_itself(server, callback_receiver):
    root = Api(server.url, callback_receiver.url)
    sandbox = new_sandbox(server.url)
    assert sandbox["client_id"] == sandbox["id"] and len(sandbox["id"]) <= 10
    assert sandbox["base_url"] == f"{server.url}/_sandbox/{sandbox['id']}"
    api = SandboxApi(server.url, callback_receiver.url, sandbox)
    fields = api.pay(amount=5000)
    assert fields["code"] == "0"
    assert [p["tid"] for p in api.control("/payments", method="GET")["payments"]] == [fields["tid"]]
    assert root.control("/payments", method="GET")["payments"] == []
    by_prefix = requests.get(f"{sandbox['base_url']}/_emulator/payments/{fields['tid']}", timeout=10).json()
    assert by_prefix["amount"] == 5000
    assert [r.json()["tid"] for r in callback_receiver.received] == [fields["tid"]]
    ok(api.cancel(fields, client_id=sandbox["client_id"]))
    # The sandbox's keys do not open the root's client, nor the root's keys the sandbox's.
    refused(api.post("/v1.0/payments/request", api.request_body(client_id="pay_test")), 403, 993)
    refused(root.post("/v1.0/payments/request", root.request_body(client_id=sandbox["client_id"])), 403, 993)


def test_handed_out_urls_lead_back_into_the_sandbox(server, callback_receiver):
    sandbox = new_sandbox(server.url)
    api = SandboxApi(server.url, callback_receiver.url, sandbox)
    answer = ok(api.post("/v1.0/payments/request", api.request_body()))
    assert answer["online_url"].startswith(sandbox["base_url"] + "/pgsvc/hub.asp?")
    page = requests.get(answer["online_url"], timeout=10)
    assert page.status_code == 200 and 'data-testid="pay-button"' in page.text
    assert requests.get(f"{server.url}/pgsvc/hub.asp?location=online&token={answer['token']}",
                        timeout=10).status_code == 404


def test_each_sandbox_has_its_own_clock_and_scenario(server, callback_receiver):
    root = Api(server.url, callback_receiver.url)
    first = SandboxApi(server.url, callback_receiver.url, new_sandbox(server.url, scenario="declined-cards"))
    second = SandboxApi(server.url, callback_receiver.url, new_sandbox(server.url))
    first.control("/clock", {"freeze": True})
    first.set_clock(T0)
    assert first.control("/clock", method="GET")["now"] == T0
    assert second.control("/clock", method="GET")["frozen"] is False
    assert root.control("/clock", method="GET")["frozen"] is False
    assert first.pay(amount=1013)["code"] == "6002"  # declined-cards: an amount ending in 13
    assert second.pay(amount=1013)["code"] == "0"
    assert root.control("/scenario", method="GET")["rules"] == []
    second.control("/reset")
    assert first.control("/payments", method="GET")["payments"] != []


def test_a_deleted_sandbox_is_gone_for_every_worker(server, callback_receiver):
    sandbox = new_sandbox(server.url)
    api = SandboxApi(server.url, callback_receiver.url, sandbox)
    api.pay()
    listed = requests.get(server.url + "/_emulator/sandboxes", timeout=10).json()["sandboxes"]
    assert [s["id"] for s in listed] == [sandbox["id"]]
    assert requests.delete(f"{server.url}/_emulator/sandboxes/{sandbox['id']}", timeout=10).json() == {
        "deleted": sandbox["id"]}
    for _ in range(4):  # whichever worker answers
        refused(api.http.get(f"{sandbox['base_url']}/_emulator/payments", timeout=10), 404, 4601)
        refused(api.post("/v1.0/payments/request", api.request_body()), 401, 998)
    refused(requests.delete(f"{server.url}/_emulator/sandboxes/{sandbox['id']}", timeout=10), 404, 4601)


def test_a_sandbox_with_an_invalid_scenario_is_refused(server):
    response = requests.post(server.url + "/_emulator/sandboxes", json={"scenario": {"version": 2}}, timeout=10)
    assert "version: 1 was expected" in refused(response, 406, 4501)["message"]
    response = requests.post(server.url + "/_emulator/sandboxes", json={"scenario": "no-such-one"}, timeout=10)
    assert "no scenario of that name" in refused(response, 406, 4501)["message"]
    assert requests.get(server.url + "/_emulator/sandboxes", timeout=10).json()["sandboxes"] == []


def test_idle_sandboxes_are_swept(tmp_path):
    app = create_app(db=str(tmp_path / "root.db"))
    sandboxes = app.extensions["payletter_sandboxes"]
    now = [1_000_000.0]
    sandboxes._wall = lambda: now[0]
    kept = sandboxes.create(idle_seconds=600)
    idle = sandboxes.create(idle_seconds=60)
    now[0] += 120
    sandboxes.get(kept["id"])
    assert sandboxes.sweep() == [idle["id"]]
    assert [s["id"] for s in sandboxes.list()] == [kept["id"]]
    assert not (tmp_path / "root.db.sandboxes" / f"{idle['id']}.db").exists()
    assert list((tmp_path / "root.db.sandboxes").glob(f"{idle['id']}.db*")) == []  # its WAL and lock files too
    client = app.test_client()
    assert client.get(f"/_sandbox/{idle['id']}/_emulator/clock").json["code"] == 4601


def test_coverage_counts_what_the_run_exercised(server, callback_receiver):
    root = Api(server.url, callback_receiver.url)
    requests.delete(server.url + "/_emulator/coverage", timeout=10)
    root.pay(pgcode="mobile")
    refused(root.post("/v1.0/payments/request", root.request_body(amount=-1)))
    sandbox = new_sandbox(server.url, scenario="declined-cards")
    api = SandboxApi(server.url, callback_receiver.url, sandbox)
    api.pay(amount=1013, pgcode="creditcard")
    callback_receiver.status = 500
    api.control("/clock", {"freeze": True})
    api.pay(pgcode="naverpay", approve={"option": "naverpoint"})
    api.advance(seconds=6000)
    api.flush()
    root.control("/reset")
    requests.delete(f"{server.url}/_emulator/sandboxes/{sandbox['id']}", timeout=10)

    coverage = requests.get(server.url + "/_emulator/coverage", timeout=10).json()
    assert coverage["endpoints"]["payments/request"] == 4
    assert coverage["error_codes"] == {"2005": 1}
    assert coverage["pgcodes"] == {"mobile": 1, "naverpoint": 1}  # the declined card never paid
    assert coverage["rules"] == {"insufficient funds": 1}
    assert coverage["callbacks"] == {"first_try": 1, "retried": 0, "exhausted": 1}
    assert "payments/cancel" in coverage["never"]["endpoints"]
    assert "creditcard" in coverage["never"]["pgcodes"] and "mobile" not in coverage["never"]["pgcodes"]
