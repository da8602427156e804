"""The Node shop's suite (examples/node-shop) runs against a live emulator through HTTP and the
command line only, as a suite in any language would."""
from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

from payletter_emulator.client import EmulatorClient

from .conftest import CLI

ROOT = Path(__file__).resolve().parent.parent


def test_the_node_shop_suite_passes_against_a_live_emulator(emulator_process, node):
    client = EmulatorClient(emulator_process.url)
    before = {s.id for s in client.sandboxes()}
    env = {key: value for key, value in os.environ.items() if not key.startswith("PAYLETTER_EMULATOR_")}
    env.update(PAYLETTER_EMULATOR_URL=emulator_process.url, PAYLETTER_EMULATOR_CLI=str(CLI))
    result = subprocess.run([node, "--test"], cwd=ROOT / "examples" / "node-shop", env=env,
                            capture_output=True, text=True, timeout=300)
    report = result.stdout + result.stderr
    assert result.returncode == 0, report
    counts = dict(re.findall(r"^# (tests|pass|fail) (\d+)$", result.stdout, re.M))
    assert counts == {"tests": "5", "pass": "5", "fail": "0"}, report
    # The suite worked in a sandbox of its own, and deleted it.
    assert {s.id for s in client.sandboxes()} == before
