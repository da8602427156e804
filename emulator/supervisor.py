"""Several serving processes on one listening socket, forked from this one.

uvicorn's own supervisor spawns its workers (each imports Python, Flask and the emulator afresh,
which doubled the time to the first answer: benchmarks/RESULTS.md) and offers no public way to
fork them. This one forks: the app's modules are imported once, here, and each worker runs
uvicorn's public `Server` on the inherited socket. A worker that dies is replaced; SIGTERM or
SIGINT stops them all, each finishing the requests it holds (uvicorn's graceful stop). POSIX only:
`serving.shareable()` keeps a system that does not fork to one process, with no supervisor."""
from __future__ import annotations

import logging
import os
import signal
import socket
import time

import uvicorn

log = logging.getLogger("uvicorn.error")
RESTART_PAUSE = 0.5  # seconds between two replacements, so a worker that dies at start does not spin


class Supervisor:
    def __init__(self, config: uvicorn.Config, listener: socket.socket, count: int):
        self.config = config
        self.listener = listener
        self.count = count
        self.workers: set[int] = set()
        self.stopping = False

    def run(self) -> None:
        from .web import app  # noqa: F401  (imported before the fork: every worker starts with it)

        for _ in range(self.count):
            self._start()
        signal.signal(signal.SIGTERM, self._stop)
        signal.signal(signal.SIGINT, self._stop)
        while self.workers:
            try:
                pid, status = os.wait()
            except ChildProcessError:
                break
            if pid not in self.workers:
                continue
            self.workers.discard(pid)
            if not self.stopping:
                log.warning("worker %d ended (%s); starting another", pid, _how(status))
                time.sleep(RESTART_PAUSE)
                if not self.stopping:
                    self._start()

    def _start(self) -> None:
        pid = os.fork()
        if pid:
            self.workers.add(pid)
            return
        code = 0
        try:  # the worker: the supervisor's handlers are not its own; uvicorn installs its own
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            uvicorn.Server(self.config).run(sockets=[self.listener])
        except BaseException:  # noqa: BLE001  (a worker never returns into the supervisor's code)
            log.exception("worker %d failed", os.getpid())
            code = 1
        finally:
            os._exit(code)

    def _stop(self, signum, frame) -> None:
        self.stopping = True
        for pid in list(self.workers):
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass


def _how(status: int) -> str:
    if os.WIFSIGNALED(status):
        return f"signal {signal.Signals(os.WTERMSIG(status)).name}"
    return f"exit code {os.waitstatus_to_exitcode(status)}"
