"""The package imports and serves where POSIX-only modules are missing (Windows laptops): `serve`
in a process where `fcntl`, `resource` and uvloop cannot be imported and `os` has no fork, on a SQLite
file, drives a payment from request to cancel, and says it serves with one process."""
from __future__ import annotations

import subprocess
import sys

from .conftest import Api, EmulatorProcess

# Run before the package is imported: what a Windows Python does not have, it cannot import here.
BOOTSTRAP = """
import os, sys
for name in ("fcntl", "resource", "uvloop"):
    sys.modules[name] = None  # `import fcntl` raises ImportError (uvloop: not built for Windows)
for name in ("fork", "register_at_fork", "forkpty"):
    if hasattr(os, name):
        delattr(os, name)
from payletter_emulator.client.cli import main
sys.argv[0] = "payletter-emulator"
main()
"""


def test_serve_without_fcntl_takes_a_payment_through(tmp_path, callback_receiver):
    process = EmulatorProcess(tmp_path, argv=[sys.executable, "-c", BOOTSTRAP, "serve", "--port", "0", "--db",
                                              str(tmp_path / "emulator.db")])
    try:
        assert "workers" not in process.lines[0]  # one process: workers are forked, and nothing forks here
        api = Api(process.url, callback_receiver.url)
        fields = api.pay(amount=1000)
        assert fields["code"] == "0"
        cancelled = api.cancel(fields, amount=1000)
        assert cancelled.status_code == 200, cancelled.text
        payment = api.control(f"/payments/{fields['tid']}", method="GET")
        assert payment["cancelled_amount"] == 1000
        journal = api.control("/requests", method="GET")["requests"]
        assert [entry["path"] for entry in journal][-2:] == ["/v1.0/payments/request", "/v1.0/payments/cancel"]
    finally:
        process.stop()


def test_several_processes_are_refused_where_nothing_forks(tmp_path):
    refused = subprocess.run([sys.executable, "-c", BOOTSTRAP, "serve", "--port", "0", "--workers", "2", "--db",
                              str(tmp_path / "emulator.db")], capture_output=True, text=True, cwd=tmp_path, timeout=60)
    assert refused.returncode == 2 and "--workers above 1 needs a system that forks processes" in refused.stderr
