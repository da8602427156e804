"""The threads that run a serving process's requests: RUNNING of them, plus one for each request
that is waiting (payletter_emulator/waits.py says when)."""
from __future__ import annotations

import threading
from concurrent.futures import Executor, Future
from queue import SimpleQueue

from ..waits import this_thread

RUNNING = 2  # per process: one runs while another's database work or answer is under way
MOST = 64  # threads at most, however many requests wait


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
        this_thread.threads = self
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

    def begin_wait(self) -> None:
        with self._lock:
            self._waiting += 1
            if not self._jobs.empty():
                self._add_thread_if_short()

    def end_wait(self) -> None:
        with self._lock:
            self._waiting -= 1
