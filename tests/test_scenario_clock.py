"""A scenario's clock `{start, frozen: true}` stands at its start exactly, however long putting it in
force takes: a clock set, then frozen a moment later, stood that moment after its start (25 ms on
a busy machine), and the same scenario gave other tokens (their first 13 digits are the clock's
epoch milliseconds)."""
from __future__ import annotations

from datetime import datetime
from random import Random

from payletter_emulator.config import Settings
from payletter_emulator.domain.clock import Clock
from payletter_emulator.service import Service
from payletter_emulator.storage import Storage

START = "2026-11-29T10:00:00+09:00"


def test_a_frozen_start_is_the_instant_the_clock_stands_at():
    wall = [1_000.0]

    def ticking() -> float:  # a wall clock a second later at every reading
        wall[0] += 1.0
        return wall[0]

    storage = Storage(":memory:")
    try:
        clock = Clock(wall=ticking)
        service = Service(storage, clock, Settings(db=":memory:"), Random(7))
        service.clock_jobs.install_scenario({"version": 1, "settings": {"clock": {"start": START, "frozen": True}}})
        assert clock.timestamp() == datetime.fromisoformat(START).timestamp()
        assert clock.frozen
        # Thawed at a start: it runs from the start on, the wall's seconds after it.
        service.clock_jobs.install_scenario({"version": 1, "settings": {"clock": {"start": START, "frozen": False}}})
        assert not clock.frozen
        assert clock.timestamp() - datetime.fromisoformat(START).timestamp() == 1.0
    finally:
        storage.close()
