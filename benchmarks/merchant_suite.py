"""A merchant's test suite on the pytest plugin, timed end to end: what `pytest` costs a merchant
whose suite is built the way the README shows, for each checkout of the repository under test.

The suite (written into a temporary folder) has `--tests` tests (default 200); each, on the
plugin's `payletter` fixture (a fresh sandbox of the emulator the plugin starts, by default):
requests a card payment through the gateway's API with `requests` (a new connection per request,
as the README's examples), approves it through the control client, waits for its callback to reach
the shop's own Flask app (served for the test by `payletter_serve_app`, the README's way) and
cancels it. Each checkout's virtualenv runs the suite with its own pytest and plugin, and the
pytest plugins a merchant's virtualenv would load: those of payletter-emulator's, pytest's and
pytest-xdist's runtime dependencies (xdist's), not those of the test extra (hypothesis,
schemathesis), which a merchant does not install. It runs in `--rounds`
rounds (default 3), the checkouts taking turns (the first of each round alternates); once as is and
once under pytest-xdist with `-n 2` (each worker starting its own emulator) unless `--no-xdist`.
Prints each run's wall time (from starting pytest to its exit), the median per checkout, and the
ratio to the first checkout.

    python benchmarks/merchant_suite.py [--checkout [NAME=]DIR ...] [--python [NAME=]PATH ...]
        [--tests 200] [--rounds 3] [--xdist 2 | --no-xdist] [--json FILE]
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import checkouts  # noqa: E402  (benchmarks/checkouts.py)

SUITE = '''\
"""A merchant's suite on the payletter plugin (benchmarks/merchant_suite.py wrote it)."""
import pytest
import requests
from flask import Flask, request

TESTS = {tests}

shop = Flask("shop")
called_back = []


@shop.post("/payletter/callback")
def callback():
    called_back.append(request.get_json()["tid"])
    return {{"code": 0}}


@pytest.mark.parametrize("number", range(TESTS))
def test_a_card_payment_is_paid_called_back_and_cancelled(payletter, payletter_serve_app, number):
    shop_url = payletter_serve_app(shop)
    headers = {{"Authorization": f"PLKEY {{payletter.payment_key}}"}}
    amount = 1000 + number
    requested = requests.post(f"{{payletter.url}}/v1.0/payments/request", headers=headers, json={{
        "pgcode": "creditcard", "client_id": payletter.client_id, "user_id": "u1", "amount": amount,
        "product_name": "mug", "order_no": f"A-{{number}}", "return_url": f"{{shop_url}}/return",
        "callback_url": f"{{shop_url}}/payletter/callback"}})
    assert requested.status_code == 200, requested.text

    tid = payletter.approve(requested.json()["token"])["fields"]["tid"]
    payletter.callbacks.wait(tid=tid, status="delivered")
    assert tid in called_back

    cancelled = requests.post(f"{{payletter.url}}/v1.0/payments/cancel", headers=headers, json={{
        "pgcode": "creditcard", "client_id": payletter.client_id, "user_id": "u1", "tid": tid,
        "amount": amount, "ip_addr": "127.0.0.1"}})
    assert cancelled.status_code == 200 and cancelled.json()["amount"] == amount, cancelled.text
'''


def write_suite(folder: Path, tests: int) -> Path:
    """The suite and a pytest.ini of its own (the folder is its rootdir, nothing above is read)."""
    (folder / "pytest.ini").write_text("[pytest]\n")
    suite = folder / "test_merchant.py"
    suite.write_text(SUITE.format(tests=tests))
    return suite


# Run by a checkout's interpreter: the names of the pytest plugins (entry points `pytest11`) of the
# distributions a merchant's virtualenv holds: payletter-emulator, pytest and pytest-xdist, and what
# they require (extras left out).
MERCHANT_PLUGINS = """
import importlib.metadata as metadata
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

def required(name, found):
    name = canonicalize_name(name)
    if name not in found:
        found.add(name)
        try:
            requirements = metadata.requires(name) or []
        except metadata.PackageNotFoundError:
            return found
        for text in requirements:
            requirement = Requirement(text)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                required(requirement.name, found)
    return found

held = set()
for top in ("payletter-emulator", "pytest", "pytest-xdist"):
    required(top, held)
print(" ".join(sorted({ep.name for ep in metadata.entry_points(group="pytest11")
                       if canonicalize_name(ep.dist.name) in held})))
"""


def merchant_plugins(checkout: checkouts.Checkout) -> list[str]:
    found = subprocess.run([checkout.python, "-c", MERCHANT_PLUGINS], capture_output=True, text=True, check=True)
    return found.stdout.split()


def suite_env() -> dict:
    """The environment of a merchant's shell: none of the benchmark's Python path, pytest's or the
    emulator's variables; pytest loads only the plugins it is given (`-p`)."""
    env = {key: value for key, value in os.environ.items()
           if key != "PYTHONPATH" and not key.startswith(("PYTEST_", "PAYLETTER_EMULATOR_"))}
    return {**env, "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}


def run_suite(checkout: checkouts.Checkout, plugins: list[str], suite: Path, tests: int, xdist: int) -> float:
    """One run of the suite by the checkout's pytest: its wall time in seconds."""
    command = [checkout.python, "-m", "pytest", "-q", "-p", "no:cacheprovider",
               *(arg for plugin in plugins for arg in ("-p", plugin)), suite.name,
               *(["-n", str(xdist)] if xdist else [])]
    started = time.perf_counter()
    finished = subprocess.run(command, cwd=suite.parent, env=suite_env(), capture_output=True, text=True,
                              timeout=1800, check=False)
    took = time.perf_counter() - started
    if finished.returncode != 0 or f"{tests} passed" not in finished.stdout:
        raise RuntimeError(f"{checkout.name}: `{' '.join(command)}` did not pass all {tests} tests "
                           f"(exit {finished.returncode}):\n{finished.stdout[-3000:]}\n{finished.stderr[-2000:]}")
    return took


def measure(options: argparse.Namespace, chosen: list[checkouts.Checkout]) -> dict:
    modes = {"pytest": 0, **({f"pytest -n {options.xdist}": options.xdist} if options.xdist else {})}
    plugins = {c.name: merchant_plugins(c) for c in chosen}
    if options.xdist:
        lacking = [name for name, names in plugins.items() if "xdist" not in names]
        if lacking:
            raise SystemExit(f"pytest-xdist is not installed for {', '.join(lacking)} (the test extra has it); "
                             f"install it, or pass --no-xdist")
    seconds = {mode: {c.name: [] for c in chosen} for mode in modes}
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="payletter-merchant-suite-") as folder:
        suite = write_suite(Path(folder), options.tests)
        for round_ in range(options.rounds):
            for checkout in checkouts.turns(chosen, round_):
                for mode, xdist in modes.items():
                    seconds[mode][checkout.name].append(
                        run_suite(checkout, plugins[checkout.name], suite, options.tests, xdist))
            print(f"[{time.strftime('%H:%M:%S')}] round {round_ + 1} done", file=sys.stderr, flush=True)
    return {"tests": options.tests, "rounds": options.rounds, "seconds": seconds,
            "checkouts": {c.name: c.describe() for c in chosen}, "plugins": plugins,
            "load_average": {"before": load_before, "after": os.getloadavg()}}


def render(results: dict) -> str:
    tests = results["tests"]
    lines = [f"merchant suite: {tests} tests (payments/request, approve, callback to the shop's app, cancel), "
             f"{results['rounds']} rounds, wall time of each pytest run",
             *(f"  {text}; pytest plugins: {', '.join(results['plugins'][name])}"
               for name, text in results["checkouts"].items()),
             f"{'run':<14} {'checkout':<20} {'median s':>9} {'ms/test':>8} {'÷ first':>8}  rounds (s)"]
    for mode, by_checkout in results["seconds"].items():
        first = statistics.median(next(iter(by_checkout.values())))
        for name, runs in by_checkout.items():
            median = statistics.median(runs)
            lines.append(f"{mode:<14} {name:<20} {median:>9.2f} {median * 1000 / tests:>8.1f} "
                         f"{checkouts.ratio(median, first):>8}  {', '.join(f'{s:.2f}' for s in runs)}")
    load = results["load_average"]
    lines.append("load average (1, 5, 15 min) before: " + ", ".join(f"{v:.2f}" for v in load["before"])
                 + "; after: " + ", ".join(f"{v:.2f}" for v in load["after"]))
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    checkouts.add_arguments(parser)
    parser.add_argument("--tests", type=int, default=200, help="tests in the suite [default: 200]")
    parser.add_argument("--rounds", type=int, default=3, help="runs per checkout and mode [default: 3]")
    parser.add_argument("--xdist", type=int, default=2, metavar="N",
                        help="also run the suite with pytest-xdist's -n N [default: 2]")
    parser.add_argument("--no-xdist", dest="xdist", action="store_const", const=0, help="only without -n")
    parser.add_argument("--json", metavar="FILE", help="also write the figures to this file")
    options = parser.parse_args(argv)
    return checkouts.report(options, measure(options, checkouts.chosen(options)), render)


if __name__ == "__main__":
    sys.exit(main())
