"""The emulator's one source of time: real time by default, frozen, set or advanced by tests."""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

KST = timezone(timedelta(hours=9), "KST")


@dataclass(frozen=True)
class ClockState:
    """What is persisted: an offset from real time, or a frozen instant (epoch seconds)."""

    offset: float = 0.0
    frozen_at: float | None = None


class Clock:
    """Reads time for the whole emulator. Nothing else calls `datetime.now()`.

    `wall` is injectable so the clock itself can be tested with plain values.
    """

    def __init__(self, state: ClockState | None = None, wall=time.time):
        self._wall = wall
        self._lock = threading.Lock()
        self._state = state or ClockState()
        self._version = 0

    @property
    def state(self) -> ClockState:
        return self._state

    def load(self, state: ClockState, version: int = 0) -> None:
        """Take a stored state; one older than the last taken (`version`, counted by the store)
        is ignored, so a thread that read the store before a change cannot undo it."""
        with self._lock:
            if version >= self._version:
                self._state, self._version = state, version

    def timestamp(self) -> float:
        state = self._state
        if state.frozen_at is not None:
            return state.frozen_at
        return self._wall() + state.offset

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.timestamp(), KST)

    def wall(self) -> str:
        """Real time, whatever the emulator's time is: when something really happened."""
        return datetime.fromtimestamp(self._wall(), KST).isoformat(timespec="milliseconds")

    @property
    def frozen(self) -> bool:
        return self._state.frozen_at is not None

    def advance(self, seconds: float) -> ClockState:
        with self._lock:
            s = self._state
            if s.frozen_at is not None:
                self._state = ClockState(s.offset, s.frozen_at + seconds)
            else:
                self._state = ClockState(s.offset + seconds, None)
            return self._state

    def set(self, moment: datetime) -> ClockState:
        target = moment.timestamp()
        with self._lock:
            if self._state.frozen_at is not None:
                self._state = ClockState(0.0, target)
            else:
                self._state = ClockState(target - self._wall(), None)
            return self._state

    def real(self) -> ClockState:
        """Real time again: no offset, not frozen."""
        with self._lock:
            self._state = ClockState()
            return self._state

    def freeze(self, frozen: bool) -> ClockState:
        with self._lock:
            now = self.timestamp()
            if frozen:
                self._state = ClockState(0.0, now)
            else:
                self._state = ClockState(now - self._wall(), None)
            return self._state


def kst_datetime(dt: datetime) -> str:
    """The reference's `YYYY-MM-DD HH:MM:SS`, in KST."""
    return dt.astimezone(KST).strftime("%Y-%m-%d %H:%M:%S")


def parse_kst_datetime(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%d %H:%M:%S").replace(tzinfo=KST)


def kst_date(dt: datetime) -> str:
    """The reference's `YYYYMMDD`, in KST."""
    return dt.astimezone(KST).strftime("%Y%m%d")


def iso(dt: datetime) -> str:
    """ISO 8601 with the +09:00 offset, as the control API shows time."""
    return dt.astimezone(KST).isoformat(timespec="seconds")
