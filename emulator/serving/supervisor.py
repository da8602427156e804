"""Several serving processes, forked from this one, and the connections dealt out among them.

uvicorn's own supervisor spawns its workers (each imports Python, Flask and the emulator afresh,
which slowed the first answer: benchmarks/RESULTS.md) and offers no public way to
fork them. This one forks: the app's modules are imported once, here, and each worker runs
uvicorn's public `Server`. A worker that dies is replaced; SIGTERM or SIGINT stops them all, each
finishing the requests it holds (uvicorn's graceful stop). POSIX only: `serving.shareable()` keeps
a system that does not fork to one process, with no supervisor.

The supervisor accepts the connections itself and hands each one (its descriptor, over a UNIX
socket) to the worker holding the fewest. Workers sharing the listening socket took them by
chance instead: one wakes first and takes every connection waiting, so eight connections opened
together were often split unevenly, and an uneven split serves far slower (benchmarks/RESULTS.md)."""
from __future__ import annotations

import asyncio
import logging
import mmap
import os
import signal
import socket
import threading
import time

import uvicorn

log = logging.getLogger("uvicorn.error")
RESTART_PAUSE = 0.5  # seconds between two replacements, so a worker that dies at start does not spin
HAND_OVER_WAIT = 10.0  # seconds a connection waits for a worker to take it (all busy, or restarting)
BATCH = 64  # descriptors a worker takes in one read of its channel


class Loads:
    """What each worker holds, in a page shared across the fork: per worker, the connections it
    holds (open, or being opened) and how many it has taken from its channel. Each worker writes
    only its own pair; the supervisor only reads."""

    FIELDS = 2  # held, taken

    def __init__(self, count: int):
        self.page = mmap.mmap(-1, 8 * self.FIELDS * count)  # anonymous and shared: forked workers see it
        self.cells = memoryview(self.page).cast("q")

    def held(self, slot: int) -> int:
        return self.cells[slot * self.FIELDS]

    def taken(self, slot: int) -> int:
        return self.cells[slot * self.FIELDS + 1]

    def publish(self, slot: int, held: int, taken: int) -> None:
        self.cells[slot * self.FIELDS + 1] = taken
        self.cells[slot * self.FIELDS] = held

    def clear(self, slot: int) -> None:
        self.publish(slot, 0, 0)


class Supervisor:
    def __init__(self, config: uvicorn.Config, listener: socket.socket, count: int):
        self.config = config
        self.listener = listener
        self.count = count
        self.loads = Loads(count)
        self.channels: list[socket.socket | None] = [None] * count  # the supervisor's end, per worker
        self.sent = [0] * count  # connections handed to each worker (its current process)
        self.workers: dict[int, int] = {}  # pid: slot
        self.lock = threading.Lock()
        self.last = -1
        self.stopping = False

    def run(self) -> None:
        from ..web import app  # noqa: F401  (imported before the fork: every worker starts with it)

        for slot in range(self.count):
            self._start(slot)
        signal.signal(signal.SIGTERM, self._stop)
        signal.signal(signal.SIGINT, self._stop)
        threading.Thread(target=self._accept, name="accept", daemon=True).start()
        while self.workers:
            try:
                pid, status = os.wait()
            except ChildProcessError:
                break
            slot = self.workers.pop(pid, None)
            if slot is None:
                continue
            if not self.stopping:
                log.warning("worker %d ended (%s); starting another", pid, _how(status))
                time.sleep(RESTART_PAUSE)
                if not self.stopping:
                    self._start(slot)

    def _start(self, slot: int) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        with self.lock:
            old, self.channels[slot] = self.channels[slot], None
            self.sent[slot] = 0
            self.loads.clear(slot)
        if old is not None:
            old.close()
        pid = os.fork()
        if pid:
            theirs.close()
            ours.setblocking(False)
            with self.lock:
                self.channels[slot] = ours
            self.workers[pid] = slot
            return
        code = 0
        try:  # the worker: the supervisor's handlers and sockets are not its own
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            self.listener.close()
            ours.close()
            for channel in self.channels:
                if channel is not None:
                    channel.close()
            Worker(self.config, theirs, self.loads, slot).run(sockets=[])
        except BaseException:  # noqa: BLE001  (a worker never returns into the supervisor's code)
            log.exception("worker %d failed", os.getpid())
            code = 1
        finally:
            os._exit(code)

    def _accept(self) -> None:
        """The supervisor's one thread: takes each connection and hands it to a worker."""
        while not self.stopping:
            try:
                connection, _ = self.listener.accept()
            except OSError as error:
                if self.stopping:
                    return
                log.warning("accepting a connection failed: %s", error)  # out of descriptors, say
                time.sleep(0.05)
                continue
            with connection:
                if connection.family in (socket.AF_INET, socket.AF_INET6):
                    connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                self._hand_over(connection)

    def _hand_over(self, connection: socket.socket) -> None:
        deadline = time.monotonic() + HAND_OVER_WAIT
        while not self.stopping and time.monotonic() < deadline:
            for slot in self._by_load():
                channel = self.channels[slot]
                if channel is None:
                    continue
                try:
                    socket.send_fds(channel, [b"c"], [connection.fileno()])
                except OSError:  # its channel is full (the worker is stuck), or the worker is gone
                    continue
                with self.lock:
                    if self.channels[slot] is channel:
                        self.sent[slot] += 1
                self.last = slot
                return
            time.sleep(0.01)
        # no worker took it: the connection closes, and the client sees it closed

    def _by_load(self) -> list[int]:
        """The workers, the one holding the fewest connections first (of equals, the one after
        the last chosen: turns)."""
        loads = self.loads

        def load(slot: int) -> tuple[int, int]:
            waiting = self.sent[slot] - loads.taken(slot)  # handed over, not yet taken
            return loads.held(slot) + max(waiting, 0), (slot - self.last - 1) % self.count

        return sorted(range(self.count), key=load)

    def _stop(self, signum, frame) -> None:
        self.stopping = True
        try:
            self.listener.shutdown(socket.SHUT_RDWR)  # ends the blocked accept(); new clients are refused
        except OSError:
            pass
        for pid in list(self.workers):
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass


class Worker(uvicorn.Server):
    """uvicorn's server in a worker process: its connections come over `channel`, from the
    supervisor, instead of from a listening socket."""

    def __init__(self, config: uvicorn.Config, channel: socket.socket, loads: Loads, slot: int):
        super().__init__(config)
        self.channel = channel
        self.loads = loads
        self.slot = slot
        self.taken = 0
        self.opening = 0
        self.pending: set[asyncio.Task] = set()
        self.server_state.connections = _Connections(self._publish)

    async def startup(self, sockets=None) -> None:
        await super().startup(sockets=[])
        self.channel.setblocking(False)
        asyncio.get_running_loop().add_reader(self.channel.fileno(), self._take)

    async def shutdown(self, sockets=None) -> None:
        asyncio.get_running_loop().remove_reader(self.channel.fileno())
        await super().shutdown(sockets=[])

    def _take(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                data, descriptors, _, _ = socket.recv_fds(self.channel, BATCH, BATCH)
            except (BlockingIOError, InterruptedError):
                return
            if not data:  # the supervisor is gone: stop, as on SIGTERM
                loop.remove_reader(self.channel.fileno())
                self.should_exit = True
                return
            for descriptor in descriptors:
                self.taken += 1
                self.opening += 1
                task = loop.create_task(self._open(socket.socket(fileno=descriptor)))
                self.pending.add(task)
                task.add_done_callback(self.pending.discard)
            self._publish()

    async def _open(self, connection: socket.socket) -> None:
        config = self.config
        try:
            await asyncio.get_running_loop().connect_accepted_socket(
                lambda: config.http_protocol_class(config=config, server_state=self.server_state,
                                                   app_state=self.lifespan.state),
                connection)
        except OSError:  # the client left before its connection was set up
            connection.close()
        finally:
            self.opening -= 1
            self._publish()

    def _publish(self) -> None:
        self.loads.publish(self.slot, len(self.server_state.connections) + self.opening, self.taken)


class _Connections(set):
    """uvicorn's set of a server's open connections, which says when it changes."""

    def __init__(self, changed):
        super().__init__()
        self.changed = changed

    def add(self, connection) -> None:
        super().add(connection)
        self.changed()

    def discard(self, connection) -> None:
        super().discard(connection)
        self.changed()


def _how(status: int) -> str:
    if os.WIFSIGNALED(status):
        return f"signal {signal.Signals(os.WTERMSIG(status)).name}"
    return f"exit code {os.waitstatus_to_exitcode(status)}"
