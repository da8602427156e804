"""The benchmark scripts run end to end in their smallest forms and produce every figure.
Nothing here is timed: the figures are checked for presence, not for speed."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CASE_FIGURES = ("req_s", "p50_ms", "p99_ms", "cpu_us_per_request")


@pytest.mark.slow
def test_quick_benchmark_produces_every_figure(tmp_path, wrk):
    out = tmp_path / "figures.json"
    run = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "run.py"), "--quick", "--json", str(out)],
                         capture_output=True, text=True, timeout=600, cwd=tmp_path, check=False)
    assert run.returncode == 0, run.stderr[-3000:]
    results = json.loads(out.read_text())

    cases = results["cases"]
    shipped = ["serve", "serve --workers 2", "docker"]  # each as users start it
    assert results["configurations"] == shipped
    assert set(cases) == {"baseline: payments/request", *(f"payments/request: {c}" for c in shipped),
                          "payments/request: serve, 2,000 stored", "approve + callback", "cancel",
                          "transaction/list, 300 on the day"}
    for name, case in cases.items():
        assert all(case[figure] > 0 for figure in CASE_FIGURES), (name, case)
        assert case["errors"] == 0 and not case["ran_out"], (name, case)
        if name != "baseline: payments/request":
            assert set(results["ratios"][name]) == {"req_s", "p50", "p99", "cpu_per_request"}
    approve = cases["approve + callback"]
    assert approve["flush_idle"] and approve["callbacks_delivered"] >= approve["approvals"]

    for name in ("baseline", "baseline (fresh starts)", *shipped, *(f"{c} (fresh starts)" for c in shipped)):
        server = results["servers"][name]
        # the sum over its processes; one process (serve's default) is its own largest
        assert server["startup_s"] > 0 and server["idle_rss"]["sum_mb"] >= server["idle_rss"]["largest_mb"] > 0
    assert results["servers"]["serve"]["peak_rss"]["sum_mb"] > 0

    deliveries = results["callbacks"]["deliveries"]
    assert deliveries["delivered"] == deliveries["callbacks"] and deliveries["deliveries_s"] > 0
    policy = results["callbacks"]["retry policy"]
    assert policy["attempts"] == policy["attempts_expected"] == policy["received"] and policy["all_failed"]

    assert len(results["targets"]) == 3 * len(shipped) + 3  # req/s, p99 and startup for each
    assert all(isinstance(target["met"], bool) for target in results["targets"].values())
    for line in ("targets:", "callback deliveries:", "retry policy", "startup s"):
        assert line in run.stdout


@pytest.mark.slow
def test_the_latency_benchmark_runs_against_the_shipped_server_and_names_every_figure():
    """benchmarks/latency.py end to end, few rounds: every figure for every shipped configuration with its target, the references
    beside them, and an exit code that says whether every target was met (not checked: speed)."""
    run = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "latency.py"), "--rounds", "3", "--warmup", "1",
                          "--list-rounds", "1", "--startups", "1", "--json"],
                         capture_output=True, text=True, timeout=600, check=False)
    assert run.returncode in (0, 1), run.stderr[-3000:]
    results = json.loads(run.stdout)
    figures = results["figures"]
    shipped = ("serve", "serve --workers 2", "docker")  # every configuration the README and the image ship
    assert set(figures) == {f"{figure}, {configuration}" for configuration in shipped for figure in (
        "flush of one local callback", "lifecycle (request, approve, flush, cancel)",
        "transaction/list, 10,000 on the day", "startup to the first healthy answer")}
    assert all(f["p50"] > 0 and f["p90"] >= f["p50"] and "met" in f and f["target_ms"] > 0 for f in figures.values())
    assert set(results["references"]) == {"python -c pass", *(f"health route (GET /_emulator/health), {c}" for c in shipped)}
    assert results["commit"] != "unknown"
    assert run.returncode == (0 if all(f["met"] for f in figures.values()) else 1)


@pytest.mark.slow
def test_the_lifecycle_ab_runs_each_variant_and_prints_every_step():
    """benchmarks/ab_lifecycle.py, one round of a few lifecycles with this repository as both
    variants: a line per variant, every step with a figure and its range."""
    run = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "ab_lifecycle.py"), "--variant", f"a={ROOT}",
                          "--variant", f"b={ROOT}", "--rounds", "1", "--lifecycles", "5", "--warmup", "1"],
                         capture_output=True, text=True, timeout=300, check=False)
    assert run.returncode == 0, run.stderr[-3000:]
    lines = run.stdout.splitlines()
    assert lines[0].startswith("1 rounds x 5 lifecycles")
    for name, line in zip("ab", lines[1:]):
        assert line.split()[0] == name
        for step in ("request", "approve", "flush", "cancel", "lifecycle", "health"):
            figure = float(line.split(f" {step} ")[1].split()[0])
            assert figure > 0


@pytest.mark.slow
def test_the_merchant_suite_runs_on_the_plugin_as_is_and_under_xdist(tmp_path):
    """benchmarks/merchant_suite.py in its smallest form: a suite of 5 tests, one round, as is and
    under `-n 2`, for this repository; each run passes (else the script fails) and has its time, its
    median and its ratio to the first checkout (not checked: speed; two checkouts in turn: the
    feel.py test below)."""
    out = tmp_path / "suite.json"
    run = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "merchant_suite.py"), "--python",
                          f"a={sys.executable}", "--tests", "5", "--rounds", "1", "--json", str(out)],
                         capture_output=True, text=True, timeout=300, check=False)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    results = json.loads(out.read_text())
    assert results["tests"] == 5
    assert list(results["seconds"]) == ["pytest", "pytest -n 2"]
    for runs in results["seconds"].values():
        assert list(runs) == ["a"] and len(runs["a"]) == 1 and runs["a"][0] > 0
    # A merchant's plugins: the emulator's and those of its and pytest-xdist's dependencies, no test extra's.
    assert {"payletter_emulator", "xdist"} <= set(results["plugins"]["a"])
    assert not {"hypothesispytest", "schemathesis"} & set(results["plugins"]["a"])
    rows = {tuple(line.split()[:-4]): line.split()[-4:] for line in run.stdout.splitlines()
            if line.startswith("pytest ")}
    assert set(rows) == {("pytest", "a"), ("pytest", "-n", "2", "a")}
    assert all(float(median) > 0 and ratio == "1.000" for median, _, ratio, _ in rows.values())


FEEL_LATENCIES = ("lifecycle, new connection per request", "lifecycle, keep-alive session",
                  "between tests, sandbox created and deleted", "between tests, reset and scenario cleared")


@pytest.mark.slow
def test_feel_measures_every_figure_of_each_checkout_in_both_configurations(tmp_path):
    """benchmarks/feel.py in its smallest form: 3 lifecycles each way, 20 pending callbacks, short
    idle windows, two checkouts (this repository's interpreter twice, `a` and `b`), `serve` and
    `serve --workers 1`: every figure for each, printed with its ratio (not checked: speed)."""
    out = tmp_path / "feel.json"
    run = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "feel.py"), "--python", f"a={sys.executable}",
                          "--python", f"b={sys.executable}", "--rounds", "1",
                          "--lifecycles", "3", "--warmup", "1", "--between", "2", "--idle-seconds", "0.3",
                          "--pending", "20", "--json", str(out)],
                         capture_output=True, text=True, timeout=300, check=False)
    assert run.returncode == 0, run.stderr[-3000:]
    results = json.loads(out.read_text())
    assert list(results["figures"]) == ["serve", "serve --workers 1"]
    for configuration, by_checkout in results["figures"].items():
        assert list(by_checkout) == ["a", "b"]
        for figures in by_checkout.values():
            for name in FEEL_LATENCIES:
                assert figures[name]["p90"] >= figures[name]["p50"] > 0, (configuration, name)
            assert figures["startup, to the first line and health"]["median"] > 0
            assert figures["idle RSS of the tree, after the rounds"]["median"] > 0
            assert figures["idle RSS of the tree, started"]["median"] > 0
            assert figures["idle CPU of the tree, 0 pending"]["median"] >= 0
            assert figures["idle CPU of the tree, 20 pending"]["median"] >= 0
    printed = run.stdout.splitlines()
    for name in FEEL_LATENCIES:
        rows = [line for line in printed if line.startswith(name)]
        assert len(rows) == 4, name  # p50 and p90, in each configuration
        assert all(len(line[len(name):].split()) == 4 for line in rows)  # the statistic, a, b, b ÷ a
    assert sum(line.startswith("idle CPU of the tree, 20 pending") for line in printed) == 2


@pytest.mark.slow
def test_the_hosts_callbacks_benchmark_sends_each_once(postgres_server):
    """benchmarks/pg_hosts_callbacks.py in a small form: 50 callbacks due at once on 2 hosts."""
    run = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "pg_hosts_callbacks.py"),
                          "--db", postgres_server.new_database(), "--hosts", "2", "--callbacks", "50"],
                         capture_output=True, text=True, timeout=300, check=False)
    assert run.returncode == 0, run.stdout + run.stderr[-3000:]
    result = json.loads(run.stdout.splitlines()[-1])
    assert result["posts_received"] == result["ledger_attempts"] == result["delivered"] == 50
    assert "each sent once: yes" in run.stdout
