"""The threads that run requests in a serving process: RUNNING of them, plus one for each request
that is waiting for something outside the process. Requests are answered in the event loop
itself (`in_loop`); one that must wait (a reset, a resend, the journal, a scenario's latency, a
flush with more to wait for than the loop's own attempts) raises `MustWait` before it has changed
anything, and is run again on these threads.

The interpreter runs one thread at a time, so more requests running at once do not finish more
work: they take turns at random, each waiting behind the others, which made the tail of
`payments/request` several times the baseline's (benchmarks/RESULTS.md, issue 14). But a request
that waits (a flush waiting for an attempt, a scenario's latency, a resend's POST, the journal
of the other processes) must not hold up the others: a merchant's callback handler may call back
while its callback is being flushed. Such a wait is marked with `waiting()`, and while it lasts
another thread may run requests in its place (a managed block, as in Java's ForkJoinPool).

The bridge (emulator/serving.py) runs the app on these threads; in a thread of anything else
(another server, a test), `waiting` does nothing."""
from __future__ import annotations

import threading
from concurrent.futures import Executor, Future
from queue import SimpleQueue

RUNNING = 2  # per process: one runs while another's database work or answer is under way
MOST = 64  # threads at most, however many requests wait

_local = threading.local()


class RequestThreads(Executor):
    def __init__(self, running: int = RUNNING, most: int = MOST, name: str = "request"):
        self.running = running
        self.most = most
        self.name = name
        self._jobs: SimpleQueue = SimpleQueue()
        self._lock = threading.Lock()
        self._threads = 0  # alive
        self._idle = 0  # waiting for a job
        self._waiting = 0  # running a request that is waiting (`waiting`)
        self._closed = False

    def submit(self, fn, /, *args, **kwargs) -> Future:
        future: Future = Future()
        with self._lock:
            if self._closed:
                raise RuntimeError("cannot schedule new futures after shutdown")
            self._jobs.put((future, fn, args, kwargs))
            self._add_thread_if_short()
        return future

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        with self._lock:
            self._closed = True
            for _ in range(self._threads):
                self._jobs.put(None)

    def _add_thread_if_short(self) -> None:
        """Under the lock: a thread more if no idle one will take the job and fewer than
        `running` are running requests that are not waiting."""
        if self._idle == 0 and self._threads - self._waiting < self.running and self._threads < self.most:
            self._threads += 1
            threading.Thread(target=self._work, name=f"{self.name}_{self._threads}", daemon=True).start()

    def _work(self) -> None:
        _local.threads = self
        while True:
            with self._lock:
                if self._threads - self._waiting > self.running:  # a wait has ended: one too many
                    self._threads -= 1
                    return
                self._idle += 1
            job = self._jobs.get()
            with self._lock:
                self._idle -= 1
            if job is None:
                with self._lock:
                    self._threads -= 1
                return
            future, fn, args, kwargs = job
            if not future.set_running_or_notify_cancel():
                continue
            try:
                result = fn(*args, **kwargs)
            except BaseException as exc:  # noqa: BLE001  (handed to whoever waits on the future)
                future.set_exception(exc)
            else:
                future.set_result(result)
            del future, fn, args, kwargs, job

    def _begin_wait(self) -> None:
        with self._lock:
            self._waiting += 1
            if not self._jobs.empty():
                self._add_thread_if_short()

    def _end_wait(self) -> None:
        with self._lock:
            self._waiting -= 1


class waiting:
    """Around a wait for something outside this process: another thread may run requests
    meanwhile."""

    __slots__ = ("threads",)

    def __enter__(self) -> None:
        self.threads = getattr(_local, "threads", None)
        if self.threads is not None:
            self.threads._begin_wait()

    def __exit__(self, *exc) -> None:
        if self.threads is not None:
            self.threads._end_wait()


ARRIVED = "payletter.arrived"  # environ key: time.monotonic() when the bridge had the request


class MustWait(BaseException):
    """A request answered in the event loop has reached a wait: it must be run again in a
    request thread, with `keep` (what it has decided already, such as the scenario rule it has
    counted) added to its environ; `always`: its route waits every time (a resend), so the next
    request of the route may go to a thread at once; `until`: what it waits for is work of the
    event loop itself (a coroutine function), after which it is run in the loop again. Raised
    before anything is written; a BaseException, so that Flask lets it through unanswered and
    unjournaled."""

    def __init__(self, keep: dict, always: bool = False, until=None):
        super().__init__()
        self.keep = keep
        self.always = always
        self.until = until


class in_loop:
    """Around a request answered in the event loop's thread, where nothing may wait."""

    __slots__ = ()

    def __enter__(self) -> None:
        _local.in_loop = True

    def __exit__(self, *exc) -> None:
        _local.in_loop = False


def answering_in_loop() -> bool:
    """Whether this thread is answering a request in the event loop (see `in_loop`)."""
    return getattr(_local, "in_loop", False)
