"""A newcomer's first run: what `make run` and `make test` install and check, the lines `serve`
starts with (each URL they name answers), `/` leading to the dashboard, `--fresh`, and a bad
environment variable named in the error."""
from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import requests

from payletter_emulator.config import PAY_TEST

from .conftest import NEEDS, PAYMENT_KEY, EmulatorProcess, run_cli
from .doc_blocks import doc_block

ROOT = Path(__file__).resolve().parent.parent
REQUEST = {"pgcode": "creditcard", "client_id": "pay_test", "user_id": "u", "amount": 1000,
           "product_name": "p", "return_url": "https://m.example/r", "callback_url": "http://127.0.0.1:9/cb"}
AUTH = {"Authorization": f"PLKEY {PAYMENT_KEY}"}


def make_dry_run(target: str) -> list[str]:
    """The commands `make <target>` runs on a fresh clone (-B: as if nothing were installed)."""
    # Run from `make test` too: a make inside make would print "Entering directory" lines.
    done = subprocess.run(["make", "--no-print-directory", "-n", "-B", target], cwd=ROOT, capture_output=True,
                          text=True, check=True)
    return done.stdout.splitlines()


def test_make_run_installs_what_serving_needs_and_make_test_the_test_extra():
    run = make_dry_run("run")
    assert any(line.endswith("pip install --quiet -e .") for line in run), run
    assert not any("[test]" in line for line in run), run
    assert run[-1].strip() == ".venv/bin/payletter-emulator serve"
    test = make_dry_run("test")
    assert test[0] == "./scripts/check-test-system"  # before the install and before pytest
    assert any(line.endswith("pip install --quiet -e '.[test]'") for line in test), test
    assert re.fullmatch(r"\.venv/bin/python -m pytest -n [1-4] --dist worksteal", test[-1]), test[-1]


def test_make_quick_runs_the_same_suite_less_what_needs_a_system_package():
    quick = make_dry_run("quick")
    assert "./scripts/check-test-system" not in quick
    command, _, expression = quick[-1].rpartition(" -m ")
    assert command == make_dry_run("test")[-1]
    markers = [line.split(":")[0] for line in tomllib.loads((ROOT / "pyproject.toml").read_text())
               ["tool"]["pytest"]["ini_options"]["markers"]]
    assert expression == '"' + " and ".join(f"not {name}" for name in NEEDS) + '"'
    assert set(NEEDS) <= set(markers)  # each described where the run's header finds why it is left out


# It checks that this machine has every system package: by hand, what the conftest hook marks by fixture.
@pytest.mark.browser
@pytest.mark.postgres
@pytest.mark.wrk
@pytest.mark.node
def test_the_system_check_names_each_missing_package(tmp_path):
    script = ROOT / "scripts" / "check-test-system"
    assert subprocess.run([script], capture_output=True, text=True).returncode == 0  # this machine has them all
    # A PATH without chromium and wrk (the fonts and PostgreSQL are found at their Debian paths).
    bare = tmp_path / "bin"
    bare.mkdir()
    for tool in ("ls", "grep", "fc-list", "node", "curl", "jq"):
        if found := subprocess.run(["sh", "-c", f"command -v {tool}"], capture_output=True, text=True).stdout.strip():
            (bare / tool).symlink_to(found)
    env = {key: value for key, value in os.environ.items() if key != "CHROMIUM"}
    done = subprocess.run(["/bin/sh", script], capture_output=True, text=True, env={**env, "PATH": str(bare)})
    assert done.returncode == 1
    assert "missing: chromium" in done.stderr and "missing: wrk" in done.stderr
    assert "missing: postgresql" not in done.stderr and "missing: fonts-noto-cjk" not in done.stderr
    assert "apt-get install --no-install-recommends chromium wrk" in done.stderr


def test_serve_says_where_the_dashboard_the_keys_the_api_description_and_the_data_are(tmp_path):
    server = EmulatorProcess(tmp_path, db=None, environ=dict(os.environ))  # the defaults, as `make run`
    try:
        # The README's lines, with this run's port and folder (and its number of processes: one per core).
        shown = doc_block("startup-lines").text.replace("http://127.0.0.1:8080", server.url).replace(
            "/home/you/shop", str(tmp_path)).splitlines()
        server.line("SEARCH key")
        assert [re.sub(r", \d+ workers\)", ")", line) for line in server.lines[:len(shown)]] == \
            [re.sub(r", \d+ workers\)", ")", line) for line in shown]
        assert server.line("dashboard") == f"{server.url}/_emulator/"
        assert server.line("API spec") == f"{server.url}/openapi.json"
        assert server.line("data") == f"{tmp_path / 'payletter-emulator.db'} (kept between runs; --fresh starts empty)"
        assert "pay_test (built in" in server.line("test client")
        assert server.line("PAYMENT key") == PAY_TEST.payment_key and server.line("SEARCH key") == PAY_TEST.search_key
        assert requests.get(server.line("dashboard"), timeout=10).headers["Content-Type"].startswith("text/html")
        assert requests.get(server.line("API spec"), timeout=10).json()["openapi"].startswith("3.1")
        paid = requests.post(server.url + "/v1.0/payments/request", json=REQUEST, timeout=10,
                             headers={"Authorization": f"PLKEY {PAY_TEST.payment_key}"})
        assert paid.status_code == 200  # the key as printed works
    finally:
        server.stop()


def test_serve_in_memory_and_behind_a_token_say_so(tmp_path):
    server = EmulatorProcess(tmp_path, "--control-token", "s3cret", db=":memory:")
    try:
        assert server.line("data") == "in memory (gone when the server stops)"
        assert server.line("dashboard") == f"{server.url}/_emulator/?token=<the control token>"
    finally:
        server.stop()


def test_the_front_page_leads_to_the_dashboard(api, emulator_process):
    answer = api.http.get(api.url + "/", allow_redirects=False, timeout=10)
    assert answer.status_code == 302 and answer.headers["Location"].endswith("/_emulator/")
    followed = api.http.get(api.url + "/", timeout=10)
    assert followed.url == api.url + "/_emulator/" and "data-testid" in followed.text
    sandbox = api.http.post(api.url + "/_emulator/sandboxes", json={}, timeout=10).json()["id"]
    inside = api.http.get(f"{api.url}/_sandbox/{sandbox}/?lang=ko", allow_redirects=False, timeout=10)
    api.http.delete(f"{api.url}/_emulator/sandboxes/{sandbox}", timeout=10)
    assert inside.headers["Location"].endswith(f"/_sandbox/{sandbox}/_emulator/?lang=ko")


def test_the_front_page_is_not_found_without_the_control_api(tmp_path):
    process = EmulatorProcess(tmp_path, "--no-control")
    try:
        answer = requests.get(process.url + "/", allow_redirects=False, timeout=10)
        assert answer.status_code == 404 and answer.json()["code"] == 996
    finally:
        process.stop()


def payments(url: str) -> list[str]:
    return [p["order_no"] for p in requests.get(url + "/_emulator/payments", timeout=10).json()["payments"]]


def test_fresh_starts_with_an_empty_database(tmp_path):
    db = str(tmp_path / "shop.db")
    first = EmulatorProcess(tmp_path, db=db)
    try:
        requests.post(first.url + "/v1.0/payments/request", json={**REQUEST, "order_no": "KEPT"}, headers=AUTH,
                      timeout=10)
        sandbox = requests.post(first.url + "/_emulator/sandboxes", json={}, timeout=10).json()["id"]
    finally:
        first.stop()
    assert (tmp_path / "shop.db.sandboxes" / f"{sandbox}.db").exists()
    again = EmulatorProcess(tmp_path, db=db)
    try:
        assert payments(again.url) == ["KEPT"]  # without the flag the data stays
    finally:
        again.stop()
    fresh = EmulatorProcess(tmp_path, "--fresh", db=db)
    try:
        assert payments(fresh.url) == []
        assert requests.get(fresh.url + "/_emulator/sandboxes", timeout=10).json()["sandboxes"] == []
    finally:
        fresh.stop()
    assert not (tmp_path / "shop.db.sandboxes").exists()


def test_fresh_refuses_a_postgresql_database(tmp_path):
    done = run_cli("serve", "--fresh", "--db", "postgresql://u:pw@h/db", cwd=tmp_path)
    assert done.returncode == 2
    assert "--fresh empties a SQLite file; for PostgreSQL, drop and create the database" in done.stderr


@pytest.mark.parametrize("name,value,expected", [
    ("PORT", "abc", "PAYLETTER_EMULATOR_PORT='abc' is not an integer"),
    ("CALLBACK_TIMEOUT", "soon", "PAYLETTER_EMULATOR_CALLBACK_TIMEOUT='soon' is not a number (seconds)"),
    ("TLS", "maybe", "PAYLETTER_EMULATOR_TLS='maybe' is not a boolean (1/true/yes/on or 0/false/no/off)"),
    ("CLIENTS", "shop:only-one-key", "PAYLETTER_EMULATOR_CLIENTS: client 'shop:only-one-key' is not"),
])
def test_a_bad_environment_variable_is_named_with_what_it_expects(tmp_path, name, value, expected):
    # As `python -m payletter_emulator`, the other way users start it.
    done = subprocess.run([sys.executable, "-m", "payletter_emulator", "serve", "--db", ":memory:"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=60,
                          env={**os.environ, f"PAYLETTER_EMULATOR_{name}": value})
    assert done.returncode == 1  # a refusal to start, as a database that cannot be opened
    assert f"Error: {expected}" in done.stderr
    assert "Traceback" not in done.stderr
