"""Work a request starts that its answer need not wait for (a callback's first attempt): run once
the answer has left, where the server can tell (emulator/serving.py's bridge), at once otherwise.

The bridge collects on the thread that runs the app (`collecting`); code deep in the service
hands work over with `later`, whoever serves it."""
from __future__ import annotations

import threading
from collections.abc import Callable

_local = threading.local()


def later(work: Callable[[], None]) -> None:
    """Run `work` after this request's answer has been sent, or now where no server collects."""
    pending = getattr(_local, "pending", None)
    if pending is None:
        work()
    else:
        pending.append(work)


def run_now() -> None:
    """Run what this request has handed over so far: before it waits for that work (a flush
    waiting for the callbacks it queued by running timed jobs)."""
    pending = getattr(_local, "pending", None)
    while pending:
        pending.pop(0)()


class collecting:
    """On the thread about to run the app: what `later` hands over, kept in `self.work`."""

    def __enter__(self) -> list[Callable[[], None]]:
        self.work = _local.pending = []
        return self.work

    def __exit__(self, *exc) -> None:
        _local.pending = None
