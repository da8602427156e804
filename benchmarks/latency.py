"""The latencies a merchant's test suite feels, measured on the emulator as it ships, in each
shipped configuration: the `payletter-emulator serve` console script in a subprocess as the
README's quick start runs it, `serve --workers 2`, and the Docker image's CMD with the
Dockerfile's ENV (without Docker), each on a free port and a fresh SQLite file in a temporary
folder, with a real callback receiver (receiver.py).

    python benchmarks/latency.py [--rounds 200] [--json]

Figures, each the median and p90 of many rounds after a warm-up, against the issue's targets:
- flush: `POST /_emulator/callbacks/flush` right after an approval whose callback goes to the
  receiver (the time of the flush alone);
- lifecycle: payments/request, the control API's approve, the flush (the receiver acknowledges
  the callback) and payments/cancel, one after the other;
- transaction/list of 10,000 payments on one day (seeded before the server starts), until the
  whole answer is received (parsing it is the client's work, outside the figure);
- startup: from spawning the console script to the first healthy answer.
Every request goes over one keep-alive connection, as a merchant's HTTP client would send it.
"""
from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path[:0] = [str(BENCH.parent), str(BENCH)]

from run import CONFIGURATIONS, Emulator, Receiver, commit  # noqa: E402
from seed import Seeder, empty_outbox, request_body  # noqa: E402

PAYMENT_KEY = "MTFBNTAzNTEwNDAxQUIyMjlCQzgwNTg1MkU4MkZENDA="
SEARCH_KEY = "MUI3MjM0RUExQTgyRDA1ODZGRDUyOEM4OTY2QTVCN0Y="
DAY_PAYMENTS = 10_000
TARGETS = {  # figure: (statistic compared, bound in ms)
    "flush of one local callback": ("p50", 3.0),
    "lifecycle (request, approve, flush, cancel)": ("p50", 6.0),
    f"transaction/list, {DAY_PAYMENTS:,} on the day": ("p50", 150.0),
    "startup to the first healthy answer": ("p50", 600.0),
}



WORKERS = 2  # N of `serve --workers N`, as benchmarks/run.py measures it


def label(configuration: str) -> str:
    return f"serve --workers {WORKERS}" if configuration == "serve --workers" else configuration


class Connection:
    """One keep-alive HTTP/1.1 connection to the emulator; `call` answers (status, JSON)."""

    def __init__(self, port: int):
        self.http = http.client.HTTPConnection("127.0.0.1", port, timeout=60)

    def call(self, method: str, path: str, body=None, key: str | None = None) -> tuple[int, dict]:
        status, raw = self.send(method, path, body, key)
        return status, json.loads(raw or b"null")

    def send(self, method: str, path: str, body=None, key: str | None = None) -> tuple[int, bytes]:
        """The answer's status and body, as received (not parsed)."""
        headers = {"Content-Type": "application/json"} if body is not None else {}
        if key:
            headers["Authorization"] = f"PLKEY {key}"
        self.http.request(method, path, None if body is None else json.dumps(body), headers)
        response = self.http.getresponse()
        return response.status, response.read()

    def ok(self, method: str, path: str, body=None, key: str | None = None) -> dict:
        status, answer = self.call(method, path, body, key)
        if status != 200:
            raise RuntimeError(f"{method} {path}: {status} {answer}")
        return answer

    def close(self) -> None:
        self.http.close()


def start(db: Path, configuration: str = "serve") -> Emulator:
    """The emulator in a shipped configuration, as benchmarks/run.py starts it (`serve --port P
    --db FILE`, with `--workers 2`, or the image's CMD with the Dockerfile's ENV), its log beside
    the database."""
    return Emulator(configuration, str(db), db.parent, argparse.Namespace(workers=WORKERS), db.stem)


def timed(action) -> float:
    started = time.perf_counter()
    action()
    return (time.perf_counter() - started) * 1000


def summary(samples: list[float]) -> dict:
    ordered = sorted(samples)
    return {"p50": round(statistics.median(ordered), 2),
            "p90": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.9))], 2),
            "rounds": len(ordered)}


def lifecycle_rounds(emulator: Emulator, receiver: Receiver, rounds: int, warmup: int) -> tuple[dict, dict]:
    """The flush alone and the whole lifecycle, each `rounds` times after `warmup` untimed."""
    connection = Connection(emulator.port)
    flushes, lifecycles = [], []
    delivered_before = receiver.count()
    try:
        for number in range(warmup + rounds):
            steps = {}

            def lifecycle():
                token = connection.ok("POST", "/v1.0/payments/request", request_body(receiver.url),
                                      PAYMENT_KEY)["token"]
                tid = connection.ok("POST", f"/_emulator/payments/{token}/approve", {})["fields"]["tid"]
                steps["flush"] = timed(lambda: _flushed(connection))
                connection.ok("POST", "/v1.0/payments/cancel", {
                    "pgcode": "creditcard", "client_id": "pay_test", "user_id": "test_user_id", "tid": tid,
                    "amount": 1000, "ip_addr": "127.0.0.1"}, PAYMENT_KEY)

            total = timed(lifecycle)
            if number >= warmup:
                flushes.append(steps["flush"])
                lifecycles.append(total)
    finally:
        connection.close()
    delivered = receiver.count() - delivered_before
    if delivered != warmup + rounds:
        raise RuntimeError(f"the receiver got {delivered} callbacks for {warmup + rounds} approvals")
    return summary(flushes), summary(lifecycles)


def _flushed(connection: Connection) -> None:
    answer = connection.ok("POST", "/_emulator/callbacks/flush", {"max_seconds": 30})
    if not answer["idle"]:
        raise RuntimeError(f"the flush did not finish: {answer}")


def health_rounds(emulator: Emulator, rounds: int) -> dict:
    """The reference beside the figures: the health route over the same kind of connection (what
    the machine's load does to the cheapest answer)."""
    connection = Connection(emulator.port)
    try:
        connection.ok("GET", "/_emulator/health")
        return summary([timed(lambda: connection.ok("GET", "/_emulator/health")) for _ in range(rounds)])
    finally:
        connection.close()


def interpreter_start() -> float:
    """The reference beside startup: a bare `python -c pass`, in ms."""
    return timed(lambda: subprocess.run([sys.executable, "-c", "pass"], check=True))


def transaction_list(emulator: Emulator, rounds: int, warmup: int) -> dict:
    connection = Connection(emulator.port)
    path = "/v1.0/payments/transaction/list?client_id=pay_test&date=20260305&date_type=transaction"
    samples = []
    try:
        for number in range(warmup + rounds):
            received = []  # the answer is parsed after the clock stops: that is the client's work
            took = timed(lambda: received.append(connection.send("GET", path, key=SEARCH_KEY)))
            status, raw = received[0]
            answer = json.loads(raw)
            if status != 200 or answer["total_count"] != DAY_PAYMENTS:
                raise RuntimeError(f"the list has {answer['total_count']} rows, not {DAY_PAYMENTS}")
            if number >= warmup:
                samples.append(took)
    finally:
        connection.close()
    return summary(samples)


def seed_day(db: Path, callback_url: str) -> None:
    from datetime import datetime

    from payletter_emulator.domain.clock import KST

    with Seeder(str(db)) as seed:
        seed.approved(DAY_PAYMENTS, callback_url, first=datetime(2026, 3, 5, 0, 0, tzinfo=KST), step_seconds=8.0)
    empty_outbox(str(db))


def measure(options: argparse.Namespace) -> dict:
    """Every figure for each configuration, one configuration after the other."""
    folder = Path(tempfile.mkdtemp(prefix="latency-"))
    receiver = Receiver(200, folder)
    figures: dict[str, dict] = {}
    references: dict[str, dict] = {}
    try:
        seed_day(folder / "day.db", receiver.url)
        references["python -c pass"] = summary([interpreter_start() for _ in range(options.startups)])
        for configuration in CONFIGURATIONS:
            name = label(configuration)
            startups = []
            for number in range(options.startups):
                emulator = start(folder / f"startup-{name.replace(' ', '_')}-{number}.db", configuration)
                startups.append(emulator.startup * 1000)
                emulator.stop()
            emulator = start(folder / f"lifecycle-{name.replace(' ', '_')}.db", configuration)
            try:
                flush, lifecycle = lifecycle_rounds(emulator, receiver, options.rounds, options.warmup)
                references[f"health route (GET /_emulator/health), {name}"] = health_rounds(emulator, options.rounds)
            finally:
                emulator.stop()
            figures[f"flush of one local callback, {name}"] = flush
            figures[f"lifecycle (request, approve, flush, cancel), {name}"] = lifecycle
            day = folder / f"day-{name.replace(' ', '_')}.db"
            shutil.copyfile(folder / "day.db", day)
            emulator = start(day, configuration)
            try:
                figures[f"transaction/list, {DAY_PAYMENTS:,} on the day, {name}"] = transaction_list(
                    emulator, options.list_rounds, 3)
            finally:
                emulator.stop()
            figures[f"startup to the first healthy answer, {name}"] = summary(startups)
    finally:
        receiver.stop()
        shutil.rmtree(folder, ignore_errors=True)
    for name, figure in figures.items():
        statistic, bound = TARGETS[name.rsplit(", ", 1)[0]]
        figure.update(target_ms=bound, met=figure[statistic] <= bound)
    return {"figures": figures, "references": references, "load": os.getloadavg(), "cores": os.cpu_count(),
            "commit": commit()}


def render(results: dict) -> str:
    lines = [f"commit {results['commit']}",
             f"{'figure':<66} {'p50 ms':>9} {'p90 ms':>9} {'target':>10}  met",
             *(f"{name:<66} {f['p50']:>9.2f} {f['p90']:>9.2f} {'<= ' + format(f['target_ms'], 'g'):>10}  "
               f"{'met' if f['met'] else 'NOT met'}" for name, f in results["figures"].items()),
             "same-run references (no target):",
             *(f"{name:<66} {f['p50']:>9.2f} {f['p90']:>9.2f}" for name, f in results["references"].items()),
             "load average (1, 5, 15 min) at the end: " + ", ".join(f"{v:.2f}" for v in results["load"])]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=200, help="timed lifecycles [default: 200]")
    parser.add_argument("--warmup", type=int, default=20, help="untimed lifecycles first [default: 20]")
    parser.add_argument("--list-rounds", type=int, default=20, help="timed transaction/list calls [default: 20]")
    parser.add_argument("--startups", type=int, default=5, help="fresh starts timed [default: 5]")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    options = parser.parse_args()
    results = measure(options)
    print(json.dumps(results, indent=2) if options.json else render(results))
    return 0 if all(f["met"] for f in results["figures"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
