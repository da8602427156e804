"""CPU per `payments/request` of the app alone (`create_app`, Flask's test client: no server, no
client in the way), in this process, and of the PostgreSQL server's processes when the database is
PostgreSQL on this machine. One line per database given, each on a fresh database:

    python benchmarks/in_process.py --db sqlite --db postgresql://postgres@127.0.0.1:5432/postgres

Run with a copy of the repository first on the path (`PYTHONPATH=/tmp/copy-folder`, whose
`payletter_emulator` is that copy's `emulator/`, as benchmarks/ab.py arranges) to measure another
commit the same way. The figures are CPU time (user and system): read them as ratios to the first
database's line of the same run.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import run  # noqa: E402  (benchmarks/run.py)


def measure(db: str, requests: int, warmup: int, server_pids) -> tuple[float, float]:
    """(the process's CPU µs per request, the database server's)."""
    from payletter_emulator.web.app import create_app

    app = create_app(db=db)
    client = app.test_client()
    body = json.dumps(run.request_body("http://127.0.0.1:9/callback"))
    headers = {"Authorization": f"PLKEY {run.PAYMENT_KEY}", "Content-Type": "application/json"}
    for _ in range(warmup):
        client.post("/v1.0/payments/request", data=body, headers=headers)
    pids = server_pids()
    server, started = run.cpu_ticks(pids), time.process_time()
    for _ in range(requests):
        answer = client.post("/v1.0/payments/request", data=body, headers=headers)
        assert answer.status_code == 200, answer.get_data(as_text=True)
    process = (time.process_time() - started) / requests * 1e6
    server = (run.cpu_ticks(pids) - server) / run.CLOCK_TICK / requests * 1e6
    app.extensions["payletter"].close()  # its dispatcher and connections, before the database goes
    return process, server


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="CPU per payments/request of the app alone.")
    parser.add_argument("--db", action="append", required=True,
                        help="sqlite (a fresh file), or a PostgreSQL server's URL (a fresh database there)")
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--warmup", type=int, default=300)
    options = parser.parse_args(argv)
    import payletter_emulator

    print(f"payletter_emulator from {Path(payletter_emulator.__file__).resolve().parent}")
    first = None
    for db in options.db:
        with tempfile.TemporaryDirectory(prefix="payletter-in-process-") as folder:
            database = None if db == "sqlite" else run.FreshDatabase(db, "in_process")
            try:
                target = str(Path(folder) / "emulator.db") if database is None else database.url
                process, server = measure(target, options.requests, options.warmup,
                                          database.pids if database is not None else list)
            finally:
                if database is not None:
                    database.drop()
        first = first or process + server
        print(f"{'sqlite' if database is None else 'postgresql':<11} process {process:6.0f} us/req, "
              f"database server {server:5.0f} us/req, together {(process + server) / first:5.2f} of the first")
    return 0


if __name__ == "__main__":
    sys.exit(main())
