"""What a request tells whoever serves it: that it waits for something outside the process
(`waiting`), or that it must be run again on a request thread (`MustWait`).

A serving process answers requests in its event loop (`in_loop`). A flush answered there hands the
loop what it waits for (`LATER`), and the loop finishes it before it reads the answer. A route that
always waits otherwise (a reset, a resend, the journal) says so (THREAD) and runs on a request
thread (serving/threads.py) from the start; a request that reaches a wait its route does not
declare (a scenario's latency) raises `MustWait` before it has changed anything, and is run again
on a request thread.

The interpreter runs one thread at a time, so more requests running at once do not finish more
work: they take turns at random, each waiting behind the others, which made the tail of
`payments/request` long (benchmarks/RESULTS.md, issue 14). But a request
that waits (a reset waiting for attempts, a scenario's latency, a resend's POST, the journal
of the other processes) must not hold up the others: a merchant's callback handler may call back
while its callback is being flushed. Such a wait is marked with `waiting()`, and while it lasts
another thread may run requests in its place (a managed block, as in Java's ForkJoinPool).

The bridge (serving/bridge.py) runs the app on those threads; in a thread of anything else
(another server, a test), `waiting` does nothing."""
from __future__ import annotations

import threading

this_thread = threading.local()  # `threads`: the RequestThreads running it (serving/threads.py); `in_loop`


class waiting:
    """Around a wait for something outside this process: another thread may run requests
    meanwhile."""

    __slots__ = ("threads",)

    def __enter__(self) -> None:
        self.threads = getattr(this_thread, "threads", None)
        if self.threads is not None:
            self.threads.begin_wait()

    def __exit__(self, *exc) -> None:
        if self.threads is not None:
            self.threads.end_wait()


ARRIVED = "payletter.arrived"  # environ key: time.monotonic() when the bridge had the request
# environ key: a task of the event loop that a request answered there waits for (a flush): the bridge
# awaits it, then reads the answer's body, which is made from it.
LATER = "payletter.later"


THREAD = "thread"  # a route that always waits (for callbacks, other processes): run on a request thread


def declared(view) -> str | None:
    """How a route's view declares it waits (THREAD), or None: most never wait."""
    return getattr(view, "waits", None)


class MustWait(BaseException):
    """A request answered in the event loop has reached a wait its route does not declare (a
    scenario's latency): it must be run again in a request thread, with `keep` (what it has
    decided already, such as the scenario rule it has counted) added to its environ. Raised before
    anything is written; a BaseException, so that Flask lets it through unanswered and
    unjournaled."""

    def __init__(self, keep: dict):
        super().__init__()
        self.keep = keep


# Seconds a request's write waits for a lock another process holds (SQLite's write lock, a
# PostgreSQL row): then it is refused, 503 with the gateway's code 999 (`database_locked`).
LOCK_WAIT = 5.0
RERUN = "rerun"  # a write that finds the lock held raises Busy: the request is run again later
REFUSE = "refuse"  # ... is refused at once (the last run, once LOCK_WAIT has passed)


class Busy(MustWait):
    """A write found the database locked by another process and gave up at once, having changed
    nothing (storage/connection.py), in a run of a request that may be run again (`attempt`):
    the bridge runs it again on a request thread, after a pause that holds nothing, until the
    lock is gone or LOCK_WAIT has passed. Waiting where it was would hold the event loop, or the
    process's one database connection, and so every other request."""

    def __init__(self):
        super().__init__({})


class attempt:
    """Around one run of a request by the bridge: what a write that finds the database locked by
    another process does (RERUN or REFUSE), until the run commits a write. After that, and outside
    any such run (another server, the dispatcher's threads), a write waits where it is, LOCK_WAIT
    at most: running the request again would do twice what was committed."""

    __slots__ = ("mode",)

    def __init__(self, mode: str = RERUN):
        self.mode = mode

    def __enter__(self) -> None:
        this_thread.on_lock = self.mode

    def __exit__(self, *exc) -> None:
        this_thread.on_lock = None


def on_lock() -> str | None:
    """RERUN, REFUSE, or None (wait where it is): see `attempt`."""
    return getattr(this_thread, "on_lock", None)


def committed() -> None:
    """A write has committed: from now on, this run of the request is not run again."""
    this_thread.on_lock = None


class in_loop:
    """Around a request answered in the event loop's thread, where nothing may wait."""

    __slots__ = ()

    def __enter__(self) -> None:
        this_thread.in_loop = True

    def __exit__(self, *exc) -> None:
        this_thread.in_loop = False


def answering_in_loop() -> bool:
    """Whether this thread is answering a request in the event loop (see `in_loop`)."""
    return getattr(this_thread, "in_loop", False)
