"""Several hosts on one PostgreSQL database (issue 25): writes lock the rows they change, not the
database; a payments/request is one transaction of a few round trips; and a server that stops
and comes back is connected to again, with nothing answered before lost."""
from __future__ import annotations

import json
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from .conftest import PAYMENT_KEY, Api, EmulatorProcess, ok, refused, run_cli
from .databases import PostgresServer, RoundTrips
from .doc_blocks import doc_block

# The shared_state read every request makes first (storage/clock_job_tables.py), as
# pg_stat_statements writes it: the callback dispatcher makes it too, on the same connection.
SHARED_STATE = 'SELECT (SELECT "offset" FROM clock WHERE id = $1) AS clock_offset%'
BACK_WITHIN = 5.0  # seconds after PostgreSQL is back by which every request is answered again
pytestmark = pytest.mark.postgres  # a server of its own, from the same system binaries


@pytest.fixture(scope="module")
def own_postgres():
    """A PostgreSQL server of this module's own, which a test may stop (the session's serves
    other tests), with pg_stat_statements to count what each request runs, and no autovacuum
    (whose ANALYZE would take transaction ids of its own)."""
    server = PostgresServer("shared_preload_libraries=pg_stat_statements", "autovacuum=off")
    yield server
    server.stop()


def test_a_payment_request_is_one_transaction_of_at_most_four_round_trips(own_postgres, tmp_path,
                                                                           callback_receiver):
    import psycopg

    url = own_postgres.new_database()
    proxy = RoundTrips(own_postgres.port)
    process = EmulatorProcess(tmp_path, "--workers", "1", db=url.replace(f":{own_postgres.port}/", f":{proxy.port}/"))
    watcher = psycopg.connect(url, autocommit=True)  # straight to the server: not counted
    try:
        watcher.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        api = Api(process.url, callback_receiver.url)
        for _ in range(10):  # past the preparing of statements (at their second use) and the first token block
            api.request_payment()

        def shared_state_reads() -> int:
            row = watcher.execute("SELECT coalesce(sum(calls), 0) FROM pg_stat_statements WHERE query LIKE %s "
                                  "AND dbid = (SELECT oid FROM pg_database WHERE datname = current_database())",
                                  (SHARED_STATE,)).fetchone()
            return int(row[0])

        def next_transaction_id() -> int:  # assigned to a transaction once it writes; reading assigns none
            return int(watcher.execute("SELECT pg_snapshot_xmax(pg_current_snapshot())").fetchone()[0])

        windows = []
        first_transaction = next_transaction_id()
        for _ in range(20):
            reads, before = shared_state_reads(), proxy.snapshot()
            api.request_payment()
            after = proxy.snapshot()
            # The dispatcher's own reads of the shared state (every 0.2 s, on the request's
            # connection) are not the request's: each is one round trip, counted by the server.
            windows.append((before, after, shared_state_reads() - reads - 1))
        assert next_transaction_id() - first_transaction == 20  # one write transaction each
        start, end = windows[0][0], windows[-1][1]
        requests_connection = max(end, key=lambda number: end[number] - start.get(number, 0))
        trips = [after[requests_connection] - before.get(requests_connection, 0) - others
                 for before, after, others in windows]
        assert max(trips) <= 4, trips
    finally:
        watcher.close()
        process.stop()
        proxy.close()


def test_it_answers_503_while_postgresql_is_down_and_again_once_it_is_back(own_postgres, tmp_path,
                                                                            callback_receiver):
    process = EmulatorProcess(tmp_path, "--workers", "1", db=own_postgres.new_database())
    try:
        api = Api(process.url, callback_receiver.url)
        paid = api.pay()  # answered before the outage: still there after it
        cancelled = ok(api.cancel(paid, amount=100, partial=True))
        own_postgres.pause()
        try:
            refused(api.post("/v1.0/payments/request", api.request_body()), 503, 999)
            # What docs/deploy-shared.md shows, `...` standing for the driver's words.
            for line in doc_block("pg-down-answers").text.splitlines():
                method, path, status, shown = line.split(" ", 3)
                answer = (api.post(path, api.request_body()) if method == "POST"
                          else requests.get(process.url + path, timeout=30))
                assert answer.status_code == int(status), answer.text
                expected, said = json.loads(shown), answer.json()
                assert set(said) == set(expected), said
                for key, value in expected.items():
                    pattern = ".*".join(map(re.escape, value.split("..."))) if isinstance(value, str) else None
                    assert re.fullmatch(pattern, said[key]) if pattern else said[key] == value, (key, said)
            # The readiness check compose.shared.yaml gives each host (the image's own): not ready.
            assert run_cli("health", "--url", process.url, "--timeout", "2").returncode == 1
        finally:
            own_postgres.resume()
        back = time.monotonic() + BACK_WITHIN
        while api.post("/v1.0/payments/request", api.request_body()).status_code != 200:
            assert time.monotonic() < back, "not answering 5 s after PostgreSQL came back"
        assert requests.get(f"{process.url}/_emulator/health", timeout=30).json() == {"status": "ok"}
        assert run_cli("health", "--url", process.url, "--timeout", "2").returncode == 0  # ready again
        payment = api.control(f"/payments/{paid['tid']}", method="GET")
        assert payment["status"] == "approved" and payment["cancelled_amount"] == cancelled["amount"] == 100
        ok(api.cancel(paid, amount=100, partial=True))  # and it goes on from there
    finally:
        process.stop()


def test_four_hosts_never_cancel_one_payment_past_its_amount(postgres_server, tmp_path, callback_receiver):
    """Four `serve --workers 1` (four hosts' stand-ins) on one database, 400 partial cancels of one
    payment at once spread over them: exactly as many go through as the amount allows, each one
    recorded, and no other answer but a refusal. Then docs/deploy-shared.md's example, on two of them."""
    url = postgres_server.new_database()
    hosts = []
    for number in range(4):
        folder = tmp_path / f"host{number}"
        folder.mkdir()
        hosts.append(EmulatorProcess(folder, "--workers", "1", db=url))
    try:
        paid = Api(hosts[0].url, callback_receiver.url).pay(amount=10_000)
        cancel = {"pgcode": "creditcard", "client_id": "pay_test", "user_id": paid["user_id"], "tid": paid["tid"],
                  "amount": 150, "ip_addr": "127.0.0.1"}
        local = threading.local()

        def send(number: int) -> tuple[int, dict]:
            if not hasattr(local, "session"):
                local.session = requests.Session()
            answer = local.session.post(f"{hosts[number % 4].url}/v1.0/payments/cancel/partial", json=cancel,
                                        headers={"Authorization": f"PLKEY {PAYMENT_KEY}"}, timeout=60)
            return answer.status_code, answer.json()

        with ThreadPoolExecutor(32) as pool:
            answers = list(pool.map(send, range(400)))
        accepted = [body for status, body in answers if status == 200]
        assert {(status, body["code"]) for status, body in answers if status != 200} <= {(406, 4009), (503, 999)}
        assert len(accepted) == 10_000 // 150  # 66: the 67th would leave less than nothing
        payment = requests.get(f"{hosts[1].url}/_emulator/payments/{paid['tid']}", timeout=30).json()
        assert len(payment["cancellations"]) == len(accepted)
        assert payment["cancelled_amount"] == sum(c["amount"] for c in payment["cancellations"]) == 150 * len(accepted)
        assert payment["remaining"] == 10_000 - 150 * len(accepted) >= 0
        example = doc_block("shared-cancels").text.replace(
            '["http://host-a:8080", "http://host-b:8080"]', repr([hosts[2].url, hosts[3].url]))
        exec(compile(example, "docs/deploy-shared.md", "exec"), {})
    finally:
        for host in hosts:
            host.stop()
