"""Work a request starts that its answer need not wait for (a callback's first attempt): run once
the answer has left, where the server can tell (emulator/serving/bridge.py's bridge), at once otherwise.
Work may come with a coroutine function to run instead, as a task of the serving process's
event loop, where the server runs one.

The bridge collects on the thread that runs the app (`collecting`); code deep in the service
hands work over with `later`, whoever serves it."""
from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable

_local = threading.local()
_tasks: set[asyncio.Task] = set()  # this process's tasks (`start`) not yet finished


def later(work: Callable[[], None], in_loop: Callable[[], Awaitable[None]] | None = None) -> None:
    """Run `work` after this request's answer has been sent, or now where no server collects;
    where the server has an event loop, it runs `in_loop()` there instead, if given."""
    pending = getattr(_local, "pending", None)
    if pending is None:
        work()
    else:
        pending.append((work, in_loop))


def run_now() -> None:
    """Run what this request has handed over so far: before it waits for that work (a flush
    waiting for the callbacks it queued by running timed jobs)."""
    pending = getattr(_local, "pending", None)
    while pending:
        work, _ = pending.pop(0)
        work()


class collecting:
    """On the thread about to run the app: what `later` hands over, kept in `self.work` as
    (work, in_loop) pairs."""

    def __enter__(self) -> list[tuple[Callable[[], None], Callable[[], Awaitable[None]] | None]]:
        self.work = _local.pending = []
        return self.work

    def __exit__(self, *exc) -> None:
        _local.pending = None


def start(in_loop: Callable[[], Awaitable[None]]) -> None:
    """In the event loop: `in_loop()` as a task, known to `running` until it ends."""
    task = asyncio.get_running_loop().create_task(in_loop())
    _tasks.add(task)
    task.add_done_callback(_tasks.discard)


def running() -> bool:
    """Whether tasks started here are still running."""
    return bool(_tasks)


async def settled(timeout: float | None = None) -> None:
    """In the event loop: once every task started here so far has ended, or `timeout` seconds
    have passed."""
    if _tasks:
        await asyncio.wait(set(_tasks), timeout=timeout)
