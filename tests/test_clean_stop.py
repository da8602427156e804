"""A clean stop (SIGTERM, Ctrl-C's SIGINT) exits 0 in every configuration and leaves the SQLite
file whole: copied alone, without its `-wal`, it holds the run."""
from __future__ import annotations

import shutil
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from .conftest import PAYMENT_KEY

CLI = str(Path(sys.executable).parent / "payletter-emulator")
REQUEST = {"pgcode": "creditcard", "client_id": "pay_test", "user_id": "u", "amount": 1000, "product_name": "p",
           "return_url": "https://m.example/r", "callback_url": "http://127.0.0.1:9/cb"}


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_clean_stop_exits_0_and_leaves_the_file_alone_holding_the_run(tmp_path, workers, stop):
    db = tmp_path / "payletter-emulator.db"
    process = subprocess.Popen([CLI, "serve", "--port", "0", "--db", str(db), "--workers", workers],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        url = process.stdout.readline().split("listening on ")[1].split()[0]
        orders = [f"kept-{n}" for n in range(5)]
        for order_no in orders:
            answer = requests.post(url + "/v1.0/payments/request", json={**REQUEST, "order_no": order_no},
                                   headers={"Authorization": f"PLKEY {PAYMENT_KEY}"}, timeout=30)
            assert answer.status_code == 200, answer.text
        process.send_signal(stop)
        assert process.wait(60) == 0
        assert "Traceback" not in process.stderr.read()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        process.stdout.close()
        process.stderr.close()
    artifact = tmp_path / "artifact"
    artifact.mkdir()
    shutil.copy(db, artifact / db.name)  # the file alone, as `docker cp` or a CI artifact takes it
    copy = sqlite3.connect(artifact / db.name)
    try:
        assert sorted(row[0] for row in copy.execute("SELECT order_no FROM payments")) == orders
    finally:
        copy.close()

