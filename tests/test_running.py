"""`payletter_emulator.running()` outside pytest's fixtures: from a unittest TestCase, and from a
plain script run as a subprocess (docs/pytest.md's); importing the package stays light."""
from __future__ import annotations

import subprocess
import sys
import unittest

import pytest
import requests

import payletter_emulator

from .doc_blocks import doc_block


def request_payment(emulator, amount: int) -> int:
    answer = requests.post(f"{emulator.url}/v1.0/payments/request", headers={
        "Authorization": f"PLKEY {emulator.payment_key}"}, json={
        "pgcode": "creditcard", "client_id": emulator.client_id, "user_id": "u1", "amount": amount,
        "product_name": "mug", "return_url": "https://shop.example/return",
        "callback_url": "http://127.0.0.1:9/callback"}, timeout=30)
    assert answer.status_code == 200, answer.text
    return answer.json()["token"]


class DeclinedCardsTest(unittest.TestCase):
    """A unittest suite's own emulator, for the class, with a scenario and a control token."""

    @classmethod
    def setUpClass(cls):
        cls.emulator = cls.enterClassContext(payletter_emulator.running(scenario="declined-cards",
                                                                        control_token="only-us"))

    def test_the_scenario_declines_an_amount_ending_in_13(self):
        token = request_payment(self.emulator, 1013)
        self.assertEqual(self.emulator.approve(token)["fields"]["code"], "6002")
        self.emulator.assert_requested("payments/request", amount=1013)

    def test_the_control_api_wants_the_token(self):
        answer = requests.get(f"{self.emulator.url}/_emulator/payments", timeout=30)
        self.assertEqual(answer.status_code, 401)
        self.assertEqual(set(answer.json()), {"code", "message"})


def test_the_docs_script_runs_and_its_emulator_is_stopped_at_the_end(tmp_path):
    (tmp_path / "script.py").write_text(doc_block("running-script").text, "utf-8")
    done = subprocess.run([sys.executable, "script.py"], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stderr == "", done.stderr
    [url] = done.stdout.split()
    assert url.startswith("http://127.0.0.1:")
    with pytest.raises(requests.ConnectionError):  # stopped, and waited for, before the script ended
        requests.get(f"{url}/_emulator/health", timeout=30)
    assert list(tmp_path.iterdir()) == [tmp_path / "script.py"]  # its folder went with it


def test_serve_options_and_a_kept_workdir(tmp_path):
    with payletter_emulator.running("--strict", workdir=tmp_path) as emulator:
        lenient = requests.post(f"{emulator.url}/v1.0/payments/request", headers={
            "Authorization": f"PLKEY {emulator.payment_key}"}, json={
            "pgcode": "creditcard", "client_id": emulator.client_id, "user_id": "u1", "amount": "1000",
            "product_name": "mug", "return_url": "https://shop.example/return",
            "callback_url": "http://127.0.0.1:9/callback"}, timeout=30)
        assert lenient.status_code == 406  # --strict: a string amount is refused
    assert {"emulator.db", "emulator.log"} <= {p.name for p in tmp_path.iterdir()}


def test_an_emulator_that_cannot_start_says_why():
    with pytest.raises(RuntimeError, match="the scenario cannot be used"):
        with payletter_emulator.running(scenario="no-such-scenario"):
            pass


def test_importing_the_package_starts_nothing_and_loads_no_client():
    done = subprocess.run([sys.executable, "-c", "import sys, payletter_emulator; print(sorted(m for m in "
                           "('requests', 'click', 'flask', 'payletter_emulator.client') if m in sys.modules))"],
                          capture_output=True, text=True, timeout=60)
    assert done.stdout == "[]\n", done.stderr
