"""What a merchant's suite feels of a checkout's emulator, served as shipped: `payletter-emulator
serve` (its default process count) and `serve --workers 1`, each checkout's console script on a free
port and a fresh SQLite file, the checkouts taking turns round after round (the first of each round
alternates), so that a run compares them on the same machine at the same minutes.

    python benchmarks/feel.py [--checkout [NAME=]DIR ...] [--python [NAME=]PATH ...] [--rounds 3]
        [--lifecycles 100] [--pending 10000] [--json FILE]

Figures, per checkout and configuration (latencies: p50 and p90 of every round's samples; the
others: the median of the rounds):
- lifecycle: payments/request, the control API's approve, the flush of its callback to a real
  receiver (benchmarks/receiver.py) and payments/cancel, with `requests`: a new connection per
  request (`requests.post`, as the README's examples) and over one keep-alive session, in turn;
- between two plugin tests: what the pytest plugin does per test, after a test's payment: a
  sandbox created and deleted (its default isolation), or the emulator reset and its scenario
  cleared (`--payletter-isolation=reset`), over a keep-alive session as its client sends them;
- startup: from spawning the command until it has printed its first startup line and the health
  route answers;
- idle RSS of the whole process tree (/proc), once started and again after the rounds above;
- idle CPU of the tree over `--idle-seconds` (default 5), in % of one core: with no callback
  pending, and with `--pending` (default 10,000) pending on a frozen clock, none of them due
  (seeded by the checkout's own interpreter, benchmarks/seed.py, to a closed port).
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

import checkouts  # noqa: E402  (benchmarks/checkouts.py)
import run  # noqa: E402
from latency import summary, timed  # noqa: E402
from seed import request_body  # noqa: E402

CONFIGURATIONS = {"serve": None, "serve --workers 1": 1}  # name: --workers (None: serve's default)
LATENCIES = ("lifecycle, new connection per request", "lifecycle, keep-alive session",
             "between tests, sandbox created and deleted", "between tests, reset and scenario cleared",
             "flush, nothing due, 0 pending", "flush, nothing due, --pending pending")
FLUSHES = 50  # timed flushes, keep-alive, on each server
STARTUP = "startup, to the first line and health"
RSS_STARTED, RSS_AFTER = "idle RSS of the tree, started", "idle RSS of the tree, after the rounds"
CPU_IDLE, CPU_PENDING = "idle CPU of the tree, 0 pending", "idle CPU of the tree, {pending:,} pending"
SINGLES = {STARTUP: "ms", RSS_STARTED: "MB", RSS_AFTER: "MB", CPU_IDLE: "% core", CPU_PENDING: "% core"}


class Gateway:
    """A merchant's HTTP client of one emulator at `base`, or of one sandbox of it (its base_url,
    payment key and client_id): with `keep_alive` one requests.Session for every request, else a new
    connection per request."""

    def __init__(self, base: str, keep_alive: bool, payment_key: str = run.PAYMENT_KEY, client_id: str = "pay_test"):
        self.base, self.payment_key, self.client_id = base, payment_key, client_id
        self.session = _session() if keep_alive else None

    def ok(self, method: str, path: str, body=None, key: str | None = None) -> dict:
        headers = {"Authorization": f"PLKEY {key}"} if key else {}
        if self.session is not None:
            answer = self.session.request(method, self.base + path, json=body, headers=headers, timeout=60)
        else:
            with _session() as session:  # what requests.post does, without the environment's proxies
                answer = session.request(method, self.base + path, json=body, headers=headers, timeout=60)
        if not 200 <= answer.status_code < 300:
            raise RuntimeError(f"{method} {path}: {answer.status_code} {answer.text[:300]}")
        return answer.json() if answer.content else {}

    def paid(self, callback_url: str) -> str:
        """payments/request, then approved by the payer, its callback flushed: the tid."""
        body = request_body(callback_url, client_id=self.client_id)
        token = self.ok("POST", "/v1.0/payments/request", body, self.payment_key)["token"]
        tid = self.ok("POST", f"/_emulator/payments/{token}/approve", {})["fields"]["tid"]
        flushed = self.ok("POST", "/_emulator/callbacks/flush", {"max_seconds": 30})
        if not flushed["idle"]:
            raise RuntimeError(f"the flush did not finish: {flushed}")
        return tid

    def lifecycle(self, callback_url: str) -> None:
        tid = self.paid(callback_url)
        self.ok("POST", "/v1.0/payments/cancel", {"pgcode": "creditcard", "client_id": self.client_id,
                                                  "user_id": "test_user_id", "tid": tid, "amount": 1000,
                                                  "ip_addr": "127.0.0.1"}, self.payment_key)

    def close(self) -> None:
        if self.session is not None:
            self.session.close()


def _session() -> requests.Session:
    session = requests.Session()
    session.trust_env = False  # no proxy of the environment between the benchmark and the emulator
    return session


def lifecycles(emulator: run.Emulator, receiver: run.Receiver, count: int, warmup: int) -> dict[str, list[float]]:
    """`count` lifecycles in each way of connecting, taking turns, after `warmup` of each untimed."""
    base = f"http://127.0.0.1:{emulator.port}"
    ways = {LATENCIES[0]: Gateway(base, keep_alive=False), LATENCIES[1]: Gateway(base, keep_alive=True)}
    samples: dict[str, list[float]] = {name: [] for name in ways}
    delivered_before = receiver.count()
    try:
        for number in range(warmup + count):
            for name, gateway in ways.items():
                took = timed(lambda: gateway.lifecycle(receiver.url))
                if number >= warmup:
                    samples[name].append(took)
    finally:
        for gateway in ways.values():
            gateway.close()
    delivered = receiver.count() - delivered_before
    if delivered != 2 * (warmup + count):
        raise RuntimeError(f"the receiver got {delivered} callbacks for {2 * (warmup + count)} approvals")
    return samples


def between_tests(emulator: run.Emulator, receiver: run.Receiver, count: int) -> dict[str, list[float]]:
    """What the plugin does between two tests (emulator/client/pytest_plugin.py, client_for and
    release), each time after a test's paid payment: timed alone."""
    root = Gateway(f"http://127.0.0.1:{emulator.port}", keep_alive=True)
    samples: dict[str, list[float]] = {LATENCIES[2]: [], LATENCIES[3]: []}
    try:
        for _ in range(count):
            made = {}
            samples[LATENCIES[2]].append(timed(lambda: made.update(root.ok("POST", "/_emulator/sandboxes", {}))))
            inside = Gateway(made["base_url"], keep_alive=True, payment_key=made["payment_key"],
                             client_id=made["client_id"])
            inside.paid(receiver.url)
            inside.close()
            samples[LATENCIES[2]][-1] += timed(lambda: root.ok("DELETE", f"/_emulator/sandboxes/{made['id']}"))

            root.paid(receiver.url)
            samples[LATENCIES[3]].append(timed(lambda: (root.ok("POST", "/_emulator/reset", {}),
                                                        root.ok("DELETE", "/_emulator/scenario"))))
    finally:
        root.close()
    return samples


def flushes(emulator: run.Emulator, count: int) -> list[float]:
    """`count` flushes with nothing due, one after another over a keep-alive session: what a
    merchant's suite pays per flush, against what is pending (issue 23: with 100,000 pending, at
    most 1.5 times the same flush with none)."""
    root = Gateway(f"http://127.0.0.1:{emulator.port}", keep_alive=True)
    try:
        return [timed(lambda: root.ok("POST", "/_emulator/callbacks/flush", {"max_seconds": 5})) for _ in range(count)]
    finally:
        root.close()


def idle_cpu(emulator: run.Emulator, seconds: float) -> float:
    """CPU time of the whole process tree over `seconds` of no requests, in % of one core."""
    pids = emulator.pids
    before = run.cpu_ticks(pids)
    time.sleep(seconds)  # the window measured, not a wait for readiness
    return round((run.cpu_ticks(pids) - before) / run.CLOCK_TICK / seconds * 100, 2)


class Round:
    """One checkout in one configuration, once: a fresh server for the figures, and one on the
    seeded file for the idle CPU with callbacks pending."""

    def __init__(self, checkout: checkouts.Checkout, configuration: str, workdir: Path, label: str):
        self.checkout, self.configuration, self.workdir, self.label = checkout, configuration, workdir, label

    def start(self, db: Path) -> run.Emulator:
        workers = CONFIGURATIONS[self.configuration]
        emulator = run.Emulator("serve --workers" if workers else "serve", str(db), self.workdir,
                                argparse.Namespace(workers=workers), f"{self.label}-{db.stem}",
                                source=None, python=self.checkout.python)
        emulator.settle(10)
        return emulator

    def measure(self, receiver: run.Receiver, seeded: Path, options: argparse.Namespace) -> tuple[dict, dict]:
        """(latency samples by figure, single values by figure)."""
        singles: dict[str, float] = {}
        emulator = self.start(self.workdir / f"{self.label}-fresh.db")
        try:
            singles[STARTUP] = round(max(emulator.startup, emulator.announced) * 1000, 1)
            singles[RSS_STARTED] = emulator.memory()["sum_mb"]
            singles[CPU_IDLE] = idle_cpu(emulator, options.idle_seconds)
            samples = lifecycles(emulator, receiver, options.lifecycles, options.warmup)
            samples.update(between_tests(emulator, receiver, options.between))
            samples[LATENCIES[4]] = flushes(emulator, FLUSHES)
            singles[RSS_AFTER] = emulator.memory()["sum_mb"]
        finally:
            emulator.stop()
        db = self.workdir / f"{self.label}-pending.db"
        shutil.copyfile(seeded, db)
        emulator = self.start(db)
        try:
            singles[CPU_PENDING.format(pending=options.pending)] = idle_cpu(emulator, options.idle_seconds)
            samples[LATENCIES[5]] = flushes(emulator, FLUSHES)
            backlog = run.call(emulator.port, "POST", "/_emulator/callbacks/flush", {"max_seconds": 5})[1]
            if backlog.get("pending") != options.pending:
                raise RuntimeError(f"{options.pending} callbacks seeded, the emulator has {backlog} pending")
        finally:
            emulator.stop()
        return samples, singles


def seed(checkout: checkouts.Checkout, db: Path, pending: int) -> None:
    """`pending` callbacks waiting on a frozen clock, written by the checkout's own code."""
    subprocess.run([checkout.python, str(BENCH / "seed.py"), str(db), "--held-callbacks", str(pending)],
                   check=True, env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"})


def measure(options: argparse.Namespace, chosen: list[checkouts.Checkout]) -> dict:
    configurations = options.configuration or list(CONFIGURATIONS)
    samples = {c: {k.name: {f: [] for f in LATENCIES} for k in chosen} for c in configurations}
    singles = {c: {k.name: {} for k in chosen} for c in configurations}
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="payletter-feel-") as folder:
        workdir = Path(folder)
        seeded = {}
        for index, checkout in enumerate(chosen):
            seeded[checkout.name] = workdir / f"seeded-{index}.db"
            seed(checkout, seeded[checkout.name], options.pending)
        receiver = run.Receiver(200, workdir)
        try:
            for round_ in range(options.rounds):
                for checkout in checkouts.turns(chosen, round_):
                    for configuration in configurations:
                        label = f"{round_}-{chosen.index(checkout)}-{configuration.replace(' ', '')}"
                        taken, values = Round(checkout, configuration, workdir, label).measure(
                            receiver, seeded[checkout.name], options)
                        for figure, values_ms in taken.items():
                            samples[configuration][checkout.name][figure] += values_ms
                        for figure, value in values.items():
                            singles[configuration][checkout.name].setdefault(figure, []).append(value)
                print(f"[{time.strftime('%H:%M:%S')}] round {round_ + 1} done", file=sys.stderr, flush=True)
        finally:
            receiver.stop()
    figures = {configuration: {name: {**{f: summary(s) for f, s in samples[configuration][name].items()},
                                      **{f: {"median": statistics.median(v), "rounds": v}
                                         for f, v in singles[configuration][name].items()}}
                               for name in samples[configuration]}
               for configuration in configurations}
    return {"figures": figures, "checkouts": {c.name: c.describe() for c in chosen},
            "rounds": options.rounds, "lifecycles": options.lifecycles, "pending": options.pending,
            "load_average": {"before": load_before, "after": os.getloadavg()}, "cores": os.cpu_count()}


def render(results: dict) -> str:
    names = list(results["checkouts"])
    lines = [f"{results['rounds']} rounds, {results['lifecycles']} lifecycles per way and round; "
             f"ratios: each checkout ÷ the first ({names[0]})",
             *(f"  {text}" for text in results["checkouts"].values())]
    ratios = [f"{n} ÷ {names[0]}" for n in names[1:]]
    header = f"{'figure':<46} {'stat':>6} " + " ".join(f"{n:>12}" for n in names) + \
        "".join(f" {r:>12}" for r in ratios)
    for configuration, by_checkout in results["figures"].items():
        lines += ["", configuration, header]
        rows = [(f, stat, "ms") for f in LATENCIES for stat in ("p50", "p90")]
        rows += [(f.format(pending=results["pending"]), "median", unit) for f, unit in SINGLES.items()]
        for figure, stat, unit in rows:
            values = [by_checkout[n][figure][stat] for n in names]
            lines.append(f"{figure:<46} {stat if unit == 'ms' else unit:>6} "
                         + " ".join(f"{v:>12.2f}" for v in values)
                         + "".join(f" {checkouts.ratio(v, values[0]):>{max(12, len(r))}}"
                                   for v, r in zip(values[1:], ratios)))
    load = results["load_average"]
    lines.append("load average (1, 5, 15 min) before: " + ", ".join(f"{v:.2f}" for v in load["before"])
                 + "; after: " + ", ".join(f"{v:.2f}" for v in load["after"]) + f"; {results['cores']} cores")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    checkouts.add_arguments(parser)
    parser.add_argument("--configuration", action="append", choices=list(CONFIGURATIONS),
                        help="measure only this configuration; repeatable [default: both]")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per checkout [default: 3]")
    parser.add_argument("--lifecycles", type=int, default=100, help="timed per way and round [default: 100]")
    parser.add_argument("--warmup", type=int, default=10, help="untimed lifecycles first [default: 10]")
    parser.add_argument("--between", type=int, default=30,
                        help="times the between-tests work is timed per round [default: 30]")
    parser.add_argument("--idle-seconds", type=float, default=5.0, help="idle CPU window [default: 5]")
    parser.add_argument("--pending", type=int, default=10_000, help="callbacks pending [default: 10,000]")
    parser.add_argument("--json", metavar="FILE", help="also write the figures to this file")
    options = parser.parse_args(argv)
    return checkouts.report(options, measure(options, checkouts.chosen(options)), render)


if __name__ == "__main__":
    sys.exit(main())
