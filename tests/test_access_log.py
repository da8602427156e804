"""`serve --access-log`: a line on stderr for every request, the value of `token=` redacted, and
never a logging error in its place."""
from __future__ import annotations

import pytest
import requests

from .conftest import EmulatorProcess

SECRET = "s3cret-Token.42"


@pytest.mark.parametrize("workers", ["1", "2"])
def test_every_request_gets_its_line_with_the_token_redacted(tmp_path, workers):
    process = EmulatorProcess(tmp_path, "--access-log", "--workers", workers)
    paths = [f"/_emulator/health?token={SECRET}", f"/_emulator/clock?x=1&token={SECRET}",
             f"/_emulator/payments?TOKEN={SECRET}", "/_emulator/health?plain=1",
             f"/v1.0/payments/status?token={SECRET}"]
    try:
        statuses = [requests.get(process.url + path, timeout=30).status_code for path in paths]
    finally:
        process.stop()
    log = (tmp_path / "emulator.log").read_text()
    assert "Logging error" not in log and "Traceback" not in log
    assert SECRET not in log
    lines = [line for line in log.splitlines() if '"GET /_emulator/' in line or '"GET /v1.0/' in line]
    expected = [path.replace(SECRET, "[redacted]") for path in paths]
    for path, status in zip(expected, statuses):
        assert sum(f'"GET {path} HTTP/1.1" {status}' in line for line in lines) == 1, (path, lines)
