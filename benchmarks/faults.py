"""How long health and payments/request take while one request does something slow, against the
same probes with nothing going on, in the same run: issue 23's faults, each against `serve` as it
ships (one process, a fresh SQLite file, a new server each round). tests/test_faults.py checks
that the probes are answered during each fault; this script says how fast.

    python benchmarks/faults.py [--rounds 3] [--probes 200] [--json FILE]

The probes, in turn: /_emulator/health over one keep-alive session, /_emulator/health on a new
connection each time, and payments/request over the keep-alive session. The faults:
- regex: payments/request against a scenario rule `^(a+)+$` with 27 a's and a '!' (6.8 s in
  Python's re), over and over;
- scenario: PUT of a 250 KiB YAML scenario (the most is 256 KiB), over and over;
- page: GET /_emulator/payments?limit=1000 of 1,100 payments, over and over;
- lock: another program holds SQLite's write lock while a payment waits for it (5 s, then 503);
  health alone is probed, since every payment waits for that lock too;
- bodies: 100 connections each declaring a 1 MiB body and holding it back half-sent; the
  process's RSS is reported before, while they are held, and after they closed.
Figures: p50, p90 and the largest of each probe's latencies (ms), and p50 / calm p50.
"""
from __future__ import annotations

import argparse
import math
import os
import socket
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

import requests

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

import checkouts  # noqa: E402  (benchmarks/checkouts.py)
import run  # noqa: E402
from seed import request_body  # noqa: E402

PROBES = ("health, keep-alive", "health, new connection", "payments/request, keep-alive")
FAULTS = ("calm", "regex", "scenario", "page", "lock", "bodies")
CATASTROPHIC = "^(a+)+$"
HELD_BODIES, BODY = 100, 1024 * 1024


class Probes:
    """The three probes against one emulator, each timed (ms)."""

    def __init__(self, base: str):
        self.base = base
        self.session = requests.Session()
        self.session.trust_env = False
        self.key = {"Authorization": f"PLKEY {run.PAYMENT_KEY}"}
        self.body = request_body("http://127.0.0.1:9/cb")

    def round(self, into: dict[str, list[float]], names=PROBES) -> None:
        for name in names:
            started = time.perf_counter()
            if name == "health, keep-alive":
                answer = self.session.get(self.base + "/_emulator/health", timeout=60)
            elif name == "health, new connection":
                with requests.Session() as fresh:
                    fresh.trust_env = False
                    answer = fresh.get(self.base + "/_emulator/health", timeout=60)
            else:
                answer = self.session.post(self.base + "/v1.0/payments/request", json=self.body, headers=self.key,
                                           timeout=60)
            into[name].append((time.perf_counter() - started) * 1000)
            if answer.status_code != 200:
                raise RuntimeError(f"{name}: {answer.status_code} {answer.text[:200]}")


def scenario_yaml(size: int) -> bytes:
    rules, length, index = [], 0, 0
    while length < size:
        rule = (f"  - name: rule {index}\n    when: {{user_id: {{regex: \"^user-{index}-\"}}, "
                f"amount: {{min: 100, max: 2000}}}}\n    then: {{decline: {{code: \"6001\", message: declined}}}}\n")
        rules.append(rule)
        length += len(rule)
        index += 1
    return ("version: 1\nname: large\nrules:\n" + "".join(rules)).encode()


class Fault:
    """One fault on a thread of its own, repeated until `stop` (a one-shot fault ends by itself)."""

    def __init__(self, name: str, base: str, db: str):
        self.name, self.base, self.db = name, base, db
        self.http = requests.Session()
        self.http.trust_env = False
        self.stop = threading.Event()
        self.rss: dict[str, float] = {}

    def prepare(self) -> None:
        if self.name == "regex":
            self._ok(self.http.put(self.base + "/_emulator/scenario", timeout=60, json={"version": 1, "rules": [
                {"name": "only a's", "when": {"user_id": {"regex": CATASTROPHIC}},
                 "then": {"api_error": {"status": 406, "code": 5999, "message": "only a's"}}}]}))
        elif self.name == "page":
            body = request_body("http://127.0.0.1:9/cb")
            for index in range(1100):
                self._ok(self.http.post(self.base + "/v1.0/payments/request", json={**body, "order_no": f"o{index}"},
                                        headers={"Authorization": f"PLKEY {run.PAYMENT_KEY}"}, timeout=60))

    def run(self, pid: int) -> None:
        if self.name == "regex":
            body = {**request_body("http://127.0.0.1:9/cb"), "user_id": "a" * 27 + "!"}
            while not self.stop.is_set():
                self._ok(self.http.post(self.base + "/v1.0/payments/request", json=body,
                                        headers={"Authorization": f"PLKEY {run.PAYMENT_KEY}"}, timeout=60))
        elif self.name == "scenario":
            document = scenario_yaml(250 * 1024)
            while not self.stop.is_set():
                self._ok(self.http.put(self.base + "/_emulator/scenario", data=document, timeout=60,
                                       headers={"Content-Type": "application/yaml"}))
        elif self.name == "page":
            while not self.stop.is_set():
                self._ok(self.http.get(self.base + "/_emulator/payments?limit=1000", timeout=60))
        elif self.name == "lock":
            other = sqlite3.connect(self.db, isolation_level=None)
            other.execute("BEGIN IMMEDIATE")
            try:
                answer = self.http.post(self.base + "/v1.0/payments/request", json=request_body("http://127.0.0.1:9/cb"),
                                        headers={"Authorization": f"PLKEY {run.PAYMENT_KEY}"}, timeout=60)
                if answer.status_code != 503:
                    raise RuntimeError(f"lock: {answer.status_code} {answer.text[:200]}")
            finally:
                other.execute("ROLLBACK")
                other.close()
        elif self.name == "bodies":
            self._bodies(pid)

    def _bodies(self, pid: int) -> None:
        address = self.base.split("//")[1]
        host, port = address.split(":")
        head = (f"POST /v1.0/payments/request HTTP/1.1\r\nHost: {address}\r\nContent-Type: application/json\r\n"
                f"Authorization: PLKEY {run.PAYMENT_KEY}\r\nContent-Length: {BODY}\r\n\r\n").encode()
        self.rss["before"] = run.memory_kb(pid, "VmRSS") / 1024
        connections = []
        try:
            for _ in range(HELD_BODIES):
                connection = socket.create_connection((host, int(port)), timeout=60)
                connection.setblocking(False)
                connections.append(connection)
                rest = memoryview(head + b" " * (BODY - 1))
                try:
                    while rest:
                        rest = rest[connection.send(rest):]
                except BlockingIOError:
                    pass
            self.rss["held"] = run.memory_kb(pid, "VmRSS") / 1024
            self.stop.wait(120)
        finally:
            for connection in connections:
                connection.close()

    @staticmethod
    def _ok(answer: requests.Response) -> None:
        if answer.status_code != 200:
            raise RuntimeError(f"{answer.request.method} {answer.url}: {answer.status_code} {answer.text[:200]}")


def one_round(options, workdir: Path, number: int) -> tuple[dict, dict]:
    """A fresh server; the calm probes, then each fault with the probes during it."""
    latencies: dict[str, dict[str, list[float]]] = {}
    rss: dict[str, float] = {}
    for fault_name in FAULTS:
        db = str(workdir / f"round{number}-{fault_name}.db")
        emulator = run.Emulator("serve", db, workdir, options, f"round{number}-{fault_name}")
        try:
            base = f"http://127.0.0.1:{emulator.port}"
            probes, samples = Probes(base), {name: [] for name in PROBES}
            for _ in range(options.warmup):
                probes.round({name: [] for name in PROBES})
            if fault_name == "calm":
                for _ in range(options.probes):
                    probes.round(samples)
            else:
                fault = Fault(fault_name, base, db)
                fault.prepare()
                failures: list[BaseException] = []

                def go(fault=fault, failures=failures):
                    try:
                        fault.run(emulator.process.pid)
                    except BaseException as error:  # noqa: BLE001  (raised below, in this thread)
                        failures.append(error)

                thread = threading.Thread(target=go, daemon=True)
                thread.start()
                # SQLite's write lock held holds every payment back: only health is probed then
                names = PROBES[:2] if fault_name == "lock" else PROBES
                for _ in range(options.probes):
                    probes.round(samples, names)
                    if not thread.is_alive():
                        break
                fault.stop.set()
                thread.join(120)
                if failures:
                    raise failures[0]
                if fault_name == "bodies":
                    rss.update(fault.rss, after=run.memory_kb(emulator.process.pid, "VmRSS") / 1024)
            latencies[fault_name] = samples
        finally:
            emulator.stop()
    return latencies, rss


def figures(samples: list[float]) -> dict:
    ordered = sorted(samples)
    return {"p50": round(statistics.median(ordered), 2),
            "p90": round(ordered[min(len(ordered) - 1, math.floor(len(ordered) * 0.9))], 2),
            "max": round(ordered[-1], 2), "count": len(ordered)}


def render(results: dict) -> str:
    lines = [f"commit {results['commit']}, {results['when']}, load average at start {results['load']}, "
             f"{results['rounds']} rounds, `serve` (one process), SQLite", "",
             "| fault | probe | p50 ms | p90 ms | max ms | probes | p50 ÷ calm p50 |", "|---|---|---|---|---|---|---|"]
    calm = results["figures"]["calm"]
    for fault in FAULTS:
        for probe in PROBES:
            cell = results["figures"][fault].get(probe)
            if cell is None:
                continue
            ratio = cell["p50"] / calm[probe]["p50"]
            lines.append(f"| {fault} | {probe} | {cell['p50']:.2f} | {cell['p90']:.2f} | {cell['max']:.2f} | "
                         f"{cell['count']} | {ratio:.2f} |")
    rss = results["rss"]
    lines += ["", "RSS of the process with 100 bodies of 1 MiB held half-sent (median of the rounds, MB): "
              + ", ".join(f"{key} {value:.1f}" for key, value in rss.items())]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="rounds, a fresh server for each fault [default: 3]")
    parser.add_argument("--probes", type=int, default=200, help="rounds of the three probes per fault [default: 200]")
    parser.add_argument("--warmup", type=int, default=20, help="untimed rounds of probes first [default: 20]")
    parser.add_argument("--workers", type=int, default=2, help=argparse.SUPPRESS)  # run.Emulator reads it
    parser.add_argument("--json", help="write the figures to this file too")
    options = parser.parse_args()
    load = os.getloadavg()[0]
    merged: dict[str, dict[str, list[float]]] = {fault: {probe: [] for probe in PROBES} for fault in FAULTS}
    rss_rounds: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory(prefix="payletter-faults-") as folder:
        for number in range(options.rounds):
            latencies, rss = one_round(options, Path(folder), number)
            for fault, samples in latencies.items():
                for probe, values in samples.items():
                    merged[fault][probe] += values
            for key, value in rss.items():
                rss_rounds.setdefault(key, []).append(value)
    results = {"commit": run.commit(run.ROOT), "when": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
               "load": round(load, 2), "rounds": options.rounds,
               "figures": {fault: {probe: figures(values) for probe, values in samples.items() if values}
                           for fault, samples in merged.items()},
               "rss": {key: round(statistics.median(values), 1) for key, values in rss_rounds.items()}}
    return checkouts.report(options, results, render)


if __name__ == "__main__":
    sys.exit(main())
