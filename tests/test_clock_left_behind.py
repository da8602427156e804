"""A clock an earlier run froze or moved stays so at the next start: the startup lines say so, and
`payletter-emulator clock real` returns to real time without a reset (issue 27)."""
from __future__ import annotations

import json
from datetime import datetime

from .conftest import Api, EmulatorProcess, run_cli


def test_a_clock_left_frozen_is_announced_and_real_time_comes_back_without_a_reset(tmp_path, callback_receiver):
    first = EmulatorProcess(tmp_path, db="kept.db")
    try:
        api = Api(first.url, callback_receiver.url)
        assert not any(line.strip().startswith("clock:") for line in first.lines)  # real time: nothing to say
        paid = api.pay()
        api.control("/clock", {"freeze": True})
        moved = api.control("/clock", {"advance_seconds": 86_400})
    finally:
        first.stop()

    again = EmulatorProcess(tmp_path, db="kept.db")
    try:
        said = again.line("clock")
        assert said.startswith(f"frozen at {moved['now']}") and "payletter-emulator clock real" in said
        back = run_cli("clock", "real", "--url", again.url)
        assert back.returncode == 0, back.stderr
        state = json.loads(back.stdout)
        assert state["frozen"] is False
        drift = abs((datetime.fromisoformat(state["now"]) - datetime.now().astimezone()).total_seconds())
        assert drift < 3600  # real time again, not a day ahead
        kept = Api(again.url, callback_receiver.url).control("/payments", method="GET")["payments"]
        assert [p["tid"] for p in kept] == [paid["tid"]]  # no reset: the payment is still there
    finally:
        again.stop()
