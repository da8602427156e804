"""Issue 25's target for several hosts: 10,000 callbacks fall due at once on 4 hosts sharing one
PostgreSQL database, and each is sent once. The callbacks are seeded (benchmarks/seed.py, through
the emulator's own service) with the clock frozen a minute before they are due; then 4
`payletter-emulator serve --workers 1` start on the database, the clock is moved on one of them,
and nobody flushes: every host hears the move (storage/pg_news.py) and sends. A receiver
(benchmarks/receiver.py) counts the POSTs; the ledger, read once all is done, must hold exactly
one attempt per callback, every one delivered, as many as the POSTs received.

    python benchmarks/pg_hosts_callbacks.py [--db postgresql://...] [--hosts 4] [--callbacks 10000]

Without --db it starts a throwaway PostgreSQL (the test suite's helper, tests/databases.py: needs
the `postgresql` server package). Prints one line per figure, then the JSON of the run; exits 1 if
any callback was sent twice, or not at all.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import run  # noqa: E402  (benchmarks/run.py; puts the repository and benchmarks/ on the path)
from seed import Seeder  # noqa: E402

HOLD_SECONDS = 60  # the clock is frozen this long before the callbacks are due


def ledger(port: int) -> list[dict]:
    """Every notification with its attempts, a page of 1,000 at a time."""
    found, after = [], None
    while True:
        status, page = run.call(port, "GET", "/_emulator/callbacks?limit=1000" + (f"&after={after}" if after else ""))
        if status != 200:
            raise RuntimeError(f"the ledger answered {status}: {page}")
        found += page["callbacks"]
        after = page["next"]
        if after is None:
            return found


def measure(db: str, hosts: int, callbacks: int, timeout: float) -> dict:
    with tempfile.TemporaryDirectory(prefix="pg-hosts-") as folder:
        workdir = Path(folder)
        receiver = run.Receiver(200, workdir)
        servers: list[run.Emulator] = []
        try:
            began = time.perf_counter()
            with Seeder(db) as seed:
                seed.approved(callbacks, receiver.url, step_seconds=0)
                seed.hold_clock_before_due(HOLD_SECONDS)
            seeded = time.perf_counter() - began
            options = argparse.Namespace(workers=1)
            with ThreadPoolExecutor(hosts) as pool:
                servers = list(pool.map(lambda index: run.Emulator("serve --workers", db, workdir, options,
                                                                   f"host-{index}"), range(hosts)))
            if receiver.count():
                raise RuntimeError("a callback left before the clock moved")
            moved = time.perf_counter()
            status, _ = run.call(servers[0].port, "POST", "/_emulator/clock", {"advance_seconds": HOLD_SECONDS})
            assert status == 200, status
            while receiver.count() < callbacks and time.perf_counter() - moved < timeout:
                time.sleep(0.05)
            sent_in = time.perf_counter() - moved
            for server in servers:  # whatever is left (nothing, if all went well)
                run.call(server.port, "POST", "/_emulator/callbacks/flush", {}, timeout=120)
            posts = receiver.count()
            notifications = ledger(servers[-1].port)
        finally:
            for server in servers:
                server.stop()
            receiver.stop()
    attempts = sum(len(n["attempts"]) for n in notifications)
    return {"hosts": hosts, "callbacks": callbacks, "posts_received": posts, "ledger_attempts": attempts,
            "delivered": sum(n["status"] == "delivered" for n in notifications),
            "with_more_than_one_attempt": sum(len(n["attempts"]) > 1 for n in notifications),
            "seconds_to_send_all": round(sent_in, 2), "per_second": round(posts / sent_in, 1),
            "seeded_in_seconds": round(seeded, 2), "commit": run.commit()}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", help="a PostgreSQL database URL (default: a throwaway server's fresh database)")
    parser.add_argument("--hosts", type=int, default=4)
    parser.add_argument("--callbacks", type=int, default=10_000)
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds to wait for every POST")
    options = parser.parse_args(argv)
    server = None
    db = options.db
    if db is None:
        from tests.databases import PostgresServer

        server = PostgresServer()
        db = server.new_database()
    try:
        result = measure(db, options.hosts, options.callbacks, options.timeout)
    finally:
        if server is not None:
            server.stop()
    once = (result["posts_received"] == result["ledger_attempts"] == result["delivered"] == options.callbacks
            and result["with_more_than_one_attempt"] == 0)
    print(f"{result['callbacks']} callbacks due at once on {result['hosts']} hosts: {result['posts_received']} POSTs "
          f"received, {result['ledger_attempts']} attempts on the ledger, {result['delivered']} delivered, "
          f"{result['with_more_than_one_attempt']} sent more than once")
    print(f"all sent in {result['seconds_to_send_all']} s ({result['per_second']}/s) after the clock moved on one host")
    print("each sent once: " + ("yes" if once else "NO"))
    print(json.dumps(result))
    return 0 if once else 1


if __name__ == "__main__":
    sys.exit(main())
