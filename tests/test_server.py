"""`payletter-emulator serve`: settings from flags and the environment, state that survives a restart."""
from __future__ import annotations

import requests

from .conftest import PAYMENT_KEY, EmulatorProcess, run_cli

REQUEST = {"pgcode": "creditcard", "client_id": "pay_test", "user_id": "u", "amount": 1000,
           "product_name": "p", "return_url": "https://m.example/r", "callback_url": "http://127.0.0.1:9/cb"}
AUTH = {"Authorization": f"PLKEY {PAYMENT_KEY}"}


def test_public_url_and_strict_from_the_environment(tmp_path):
    process = EmulatorProcess(tmp_path, env={"PAYLETTER_EMULATOR_PUBLIC_URL": "https://pg.example.test/",
                                             "PAYLETTER_EMULATOR_STRICT": "true"})
    try:
        body = requests.post(process.url + "/v1.0/payments/request", json=REQUEST, headers=AUTH).json()
        assert body["online_url"].startswith("https://pg.example.test/pgsvc/hub.asp?location=online&token=")
        strict = requests.post(process.url + "/v1.0/payments/request", json={**REQUEST, "amount": "1000"}, headers=AUTH)
        assert strict.json()["code"] == 2007
    finally:
        process.stop()


def test_flags_win_over_the_environment(tmp_path):
    process = EmulatorProcess(tmp_path, "--public-url", "http://flag.example.test",
                              env={"PAYLETTER_EMULATOR_PUBLIC_URL": "https://env.example.test"})
    try:
        body = requests.post(process.url + "/v1.0/payments/request", json=REQUEST, headers=AUTH).json()
        assert body["mobile_url"].startswith("http://flag.example.test/pgsvc/hub.asp?location=mobile")
    finally:
        process.stop()


def test_state_and_clock_survive_a_restart_on_the_same_database(tmp_path):
    first = EmulatorProcess(tmp_path)
    try:
        token = requests.post(first.url + "/v1.0/payments/request", json=REQUEST, headers=AUTH).json()["token"]
        requests.post(first.url + "/_emulator/clock", json={"freeze": True})
        requests.post(first.url + "/_emulator/clock", json={"set": "2027-02-03T04:05:06+09:00"})
    finally:
        first.stop()
    second = EmulatorProcess(tmp_path)
    try:
        payment = requests.get(f"{second.url}/_emulator/payments/{token}").json()
        assert payment["status"] == "created" and payment["amount"] == 1000
        assert requests.get(second.url + "/_emulator/clock").json() == {"now": "2027-02-03T04:05:06+09:00",
                                                                        "frozen": True}
    finally:
        second.stop()


def test_memory_database_and_bad_client_setting(tmp_path):
    process = EmulatorProcess(tmp_path, db=":memory:")
    try:
        assert requests.get(process.url + "/_emulator/health").status_code == 200
    finally:
        process.stop()
    bad = run_cli("serve", "--port", "0", env={"PAYLETTER_EMULATOR_CLIENTS": "only_an_id", "PATH": ""}, cwd=tmp_path)
    assert bad.returncode == 1  # a variable out of range: a refusal to start
    assert "client 'only_an_id' is not id:payment_key:search_key" in bad.stderr


def test_control_api_behind_a_token(tmp_path):
    process = EmulatorProcess(tmp_path, "--control-token", "s3cret")
    try:
        assert requests.get(process.url + "/_emulator/health").json() == {"status": "ok"}
        refused = requests.post(process.url + "/_emulator/reset")
        assert refused.status_code == 401 and refused.json()["code"] == 4312
        wrong = requests.get(process.url + "/_emulator/clock", headers={"X-Emulator-Token": "guess"})
        assert wrong.status_code == 401
        right = requests.get(process.url + "/_emulator/clock", headers={"X-Emulator-Token": "s3cret"})
        assert right.status_code == 200 and right.json()["frozen"] is False
        # The gateway's own API does not care about the control token.
        assert requests.post(process.url + "/v1.0/payments/request", json=REQUEST, headers=AUTH).status_code == 200
    finally:
        process.stop()


def test_control_api_switched_off(tmp_path):
    process = EmulatorProcess(tmp_path, env={"PAYLETTER_EMULATOR_CONTROL": "false"})
    try:
        assert requests.get(process.url + "/_emulator/health").status_code == 200
        off = requests.get(process.url + "/_emulator/payments")
        assert off.status_code == 404 and off.json()["code"] == 996
    finally:
        process.stop()


def test_an_open_control_api_beyond_loopback_is_warned_about(tmp_path):
    exposed = EmulatorProcess(tmp_path, "--host", "0.0.0.0", db=":memory:")
    exposed.stop()
    log = (tmp_path / "emulator.log").read_text()
    assert "warning: the control API (/_emulator/...) is open to anyone who reaches 0.0.0.0" in log
    (tmp_path / "token").mkdir()
    guarded = EmulatorProcess(tmp_path / "token", "--host", "0.0.0.0", "--control-token", "s3cret", db=":memory:")
    guarded.stop()
    local = (tmp_path / "token" / "emulator.log").read_text()
    assert "listening on" not in local and "warning" not in local


def test_an_empty_control_token_is_no_token(tmp_path):
    exposed = EmulatorProcess(tmp_path, "--host", "0.0.0.0", env={"PAYLETTER_EMULATOR_CONTROL_TOKEN": ""}, db=":memory:")
    exposed.stop()
    assert "warning: the control API (/_emulator/...) is open" in (tmp_path / "emulator.log").read_text()
