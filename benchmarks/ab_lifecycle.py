"""A/B runs of a merchant test's lifecycle (payments/request, the control API's approve, the flush
of its callback to a real receiver, payments/cancel) and of each of its steps: variants of the
emulator (copies of the repository) served as `payletter-emulator serve` ships, a fresh server
(and database) per variant in every round, the variants taking turns (in reverse order every
other round), so that the machine's slow minutes fall on all of them alike. Prints, per variant,
each step's median over the rounds (the median of each round's lifecycles after a warm-up) with
the rounds' range.

    python benchmarks/ab_lifecycle.py --variant "before=/tmp/copy-at-the-last-commit" --variant "after=."

A variant is NAME=SOURCE: SOURCE first on the Python path, its `emulator/` folder seen under the
installed name `payletter_emulator` (as benchmarks/ab.py runs its variants).
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import latency  # noqa: E402  (benchmarks/latency.py)
import run  # noqa: E402
from ab import _as_installed  # noqa: E402

STEPS = ("request", "approve", "flush", "cancel", "lifecycle", "health")


def lifecycles(emulator: run.Emulator, receiver: run.Receiver, count: int, warmup: int) -> dict[str, float]:
    """The median of each step over `count` lifecycles after `warmup` untimed, in ms; the health
    route's round trip after each lifecycle, as the machine's reference."""
    connection = latency.Connection(emulator.port)
    taken: dict[str, list[float]] = {step: [] for step in STEPS}
    cancel = {"pgcode": "creditcard", "client_id": "pay_test", "user_id": "test_user_id", "amount": 1000,
              "ip_addr": "127.0.0.1"}
    try:
        for number in range(warmup + count):
            steps = {}
            began = time.perf_counter()
            steps["request"] = latency.timed(lambda: steps.update(token=connection.ok(
                "POST", "/v1.0/payments/request", latency.request_body(receiver.url), latency.PAYMENT_KEY)["token"]))
            steps["approve"] = latency.timed(lambda: steps.update(tid=connection.ok(
                "POST", f"/_emulator/payments/{steps['token']}/approve", {})["fields"]["tid"]))
            steps["flush"] = latency.timed(lambda: latency._flushed(connection))
            steps["cancel"] = latency.timed(lambda: connection.ok(
                "POST", "/v1.0/payments/cancel", {**cancel, "tid": steps["tid"]}, latency.PAYMENT_KEY))
            steps["lifecycle"] = (time.perf_counter() - began) * 1000
            steps["health"] = latency.timed(lambda: connection.ok("GET", "/_emulator/health"))
            if number >= warmup:
                for step in STEPS:
                    taken[step].append(steps[step])
    finally:
        connection.close()
    return {step: statistics.median(values) for step, values in taken.items()}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variant", action="append", required=True, help="NAME=SOURCE")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--lifecycles", type=int, default=200, help="timed per round [default: 200]")
    parser.add_argument("--warmup", type=int, default=30, help="untimed first, per round [default: 30]")
    options = parser.parse_args(argv)
    variants = dict(item.split("=", 1) for item in options.variant)
    with tempfile.TemporaryDirectory(prefix="payletter-ab-lifecycle-") as folder:
        workdir = Path(folder)
        receiver = run.Receiver(200, workdir)
        paths = {name: _as_installed(Path(source).resolve(), workdir / f"path-{index}")
                 for index, (name, source) in enumerate(variants.items())}
        rounds: dict[str, list[dict]] = {name: [] for name in variants}
        try:
            for round_ in range(options.rounds):
                order = list(enumerate(variants))
                for index, name in order if round_ % 2 == 0 else order[::-1]:  # first in turn, too
                    emulator = run.Emulator("serve", str(workdir / f"{round_}-{index}.db"), workdir,
                                            argparse.Namespace(workers=latency.WORKERS), f"{round_}-{index}",
                                            source=paths[name])
                    try:
                        rounds[name].append(lifecycles(emulator, receiver, options.lifecycles, options.warmup))
                    finally:
                        emulator.stop()
        finally:
            receiver.stop()
    print(f"{options.rounds} rounds x {options.lifecycles} lifecycles; ms, median of the rounds [range]")
    for name, figures in rounds.items():
        print(f"{name:>12}  " + "  ".join(
            f"{step} {statistics.median(f[step] for f in figures):.2f} "
            f"[{min(f[step] for f in figures):.2f}-{max(f[step] for f in figures):.2f}]" for step in STEPS))
    return 0


if __name__ == "__main__":
    sys.exit(main())
