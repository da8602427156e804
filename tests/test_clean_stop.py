"""A clean stop (SIGTERM, Ctrl-C's SIGINT) exits 0 in every configuration and leaves the SQLite
file whole: copied alone, without its `-wal`, it holds the run. And the merchant's app served for
a test (`payletter_serve_app`) stops at once."""
from __future__ import annotations

import shutil
import signal
import socket
import sqlite3
import threading

import pytest
import requests

from payletter_emulator.client.app_server import serve_app

from .conftest import PAYMENT_KEY, piped_serve

REQUEST = {"pgcode": "creditcard", "client_id": "pay_test", "user_id": "u", "amount": 1000, "product_name": "p",
           "return_url": "https://m.example/r", "callback_url": "http://127.0.0.1:9/cb"}


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_clean_stop_exits_0_and_leaves_the_file_alone_holding_the_run(tmp_path, workers, stop):
    db = tmp_path / "payletter-emulator.db"
    with piped_serve("--db", str(db), "--workers", workers) as process:
        url = process.stdout.readline().split("listening on ")[1].split()[0]
        orders = [f"kept-{n}" for n in range(5)]
        for order_no in orders:
            answer = requests.post(url + "/v1.0/payments/request", json={**REQUEST, "order_no": order_no},
                                   headers={"Authorization": f"PLKEY {PAYMENT_KEY}"}, timeout=30)
            assert answer.status_code == 200, answer.text
        process.send_signal(stop)
        assert process.wait(60) == 0
        assert "Traceback" not in process.stderr.read()
    artifact = tmp_path / "artifact"
    artifact.mkdir()
    shutil.copy(db, artifact / db.name)  # the file alone, as `docker cp` or a CI artifact takes it
    copy = sqlite3.connect(artifact / db.name)
    try:
        assert sorted(row[0] for row in copy.execute("SELECT order_no FROM payments")) == orders
    finally:
        copy.close()


def test_the_merchants_app_stops_at_once(monkeypatch):
    from werkzeug.serving import BaseWSGIServer

    looks = []  # how often the serving loop looks whether it should stop: stop() waits for the next look
    serve_forever = BaseWSGIServer.serve_forever

    def recorded(server, poll_interval=0.5):
        looks.append(poll_interval)
        serve_forever(server, poll_interval)

    monkeypatch.setattr(BaseWSGIServer, "serve_forever", recorded)

    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"shop"]

    url, stop = serve_app(app)  # what the plugin's payletter_serve_app (and the example shop) serve with
    assert requests.get(url, timeout=30).text == "shop"
    [thread] = [t for t in threading.enumerate() if t.name == "payletter-serve-app"]
    stop()
    assert not thread.is_alive()  # stop() returned once the serving loop had ended
    assert looks and looks[0] <= 0.05  # so stop() waits 50 ms at most (werkzeug's default: half a second)
    port = int(url.rsplit(":", 1)[1])
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=30)
