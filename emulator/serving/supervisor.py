"""Several serving processes, forked from this one, and the connections dealt out among them.

uvicorn's own supervisor spawns its workers (each imports Python, Flask and the emulator afresh,
which slowed the first answer: benchmarks/RESULTS.md) and offers no public way to
fork them. This one forks: the app's modules are imported once, here, and each worker runs
uvicorn's public `Server`. Each worker says, on a pipe of its own, that it accepts connections, or
the one line saying why it cannot start; `serve` says it listens once every worker has said so, and
a worker that cannot start stops them all (its line is the refusal), where restarting it would only
fail again. A worker that dies after it started is replaced; SIGTERM or SIGINT stops them all, each
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
import selectors
import signal
import socket
import threading
import time

import uvicorn

from ..startup import Refusal
from .bridge import Server

log = logging.getLogger("uvicorn.error")
READY = b"ready"  # what a worker says on its report pipe once it accepts connections
RESTART_PAUSE = 0.5  # seconds between two replacements, so a worker that keeps dying does not spin
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
    def __init__(self, config: uvicorn.Config, listener: socket.socket, count: int, ready=lambda: None):
        self.config = config
        self.listener = listener
        self.count = count
        self.ready = ready
        self.loads = Loads(count)
        self.channels: list[socket.socket | None] = [None] * count  # the supervisor's end, per worker
        self.reports: list[int | None] = [None] * count  # the read end of each worker's report pipe
        self.started = [False] * count  # whether each worker (its current process) said READY
        self.last_words = [b""] * count  # what each said on its pipe
        self.sent = [0] * count  # connections handed to each worker (its current process)
        self.workers: dict[int, int] = {}  # pid: slot
        self.lock = threading.Lock()
        self.last = -1
        self.stopping = False
        self.signalled = False  # stopped by SIGTERM or SIGINT, not by a worker that could not start

    def run(self) -> None:
        """Serve until SIGTERM or SIGINT, once every worker has started; raises `Refusal` if one
        cannot start (the others stopped first)."""
        from ..web import app  # noqa: F401  (imported before the fork: every worker starts with it)

        for slot in range(self.count):
            self._start(slot)
        signal.signal(signal.SIGTERM, self._stop)
        signal.signal(signal.SIGINT, self._stop)
        failed = self._first_words()
        if failed is None and not self.stopping:
            self.ready()
            threading.Thread(target=self._accept, name="accept", daemon=True).start()
        while self.workers:
            if failed is not None:
                self._stop_all()
            try:
                pid, status = os.wait()
            except ChildProcessError:
                break
            slot = self.workers.pop(pid, None)
            if slot is None or self.stopping:
                continue
            if not self.started[slot] and self._said(slot) != READY:  # another would fail as it did
                failed = self._refusal(slot, status)
                continue
            log.warning("worker %d ended (%s); starting another", pid, _how(status))
            time.sleep(RESTART_PAUSE)
            if not self.stopping:
                self._start(slot)
        if failed is not None and not self.signalled:
            raise Refusal(failed)

    def _first_words(self) -> str | None:
        """Waits until every worker has said it accepts connections (None), or one has said why
        it cannot start, or has ended without a word (what it said, or how it ended)."""
        with selectors.DefaultSelector() as waiting:
            for slot, report in enumerate(self.reports):
                waiting.register(report, selectors.EVENT_READ, slot)
            while waiting.get_map():
                for key, _ in waiting.select():
                    waiting.unregister(key.fd)
                    if self._said(key.data) != READY:
                        return self._refusal(key.data, None)
                    self.started[key.data] = True
        return None

    def _refusal(self, slot: int, status: int | None) -> str:
        """The line `serve` refuses with when the worker of `slot` could not start."""
        said = self.last_words[slot]
        if said:
            return said.decode(errors="replace")
        how = f" ({_how(status)})" if status is not None else ""
        return f"a serving process ended before it could serve{how}"

    def _said(self, slot: int) -> bytes:
        """What the worker of `slot` said on its pipe: READY, its refusal, or nothing (it ended
        without a word); kept in `last_words`."""
        try:
            said = os.read(self.reports[slot], 4096).strip()
        except BlockingIOError:  # alive, and silent so far
            said = b""
        self.last_words[slot] = said
        return said

    def _start(self, slot: int) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        said, report = os.pipe()
        os.set_blocking(said, False)
        with self.lock:
            old, self.channels[slot] = self.channels[slot], None
            self.sent[slot] = 0
            self.loads.clear(slot)
        if old is not None:
            old.close()
        if self.reports[slot] is not None:
            os.close(self.reports[slot])
        self.reports[slot] = said
        self.started[slot] = False
        pid = os.fork()
        if pid:
            theirs.close()
            os.close(report)
            ours.setblocking(False)
            with self.lock:
                self.channels[slot] = ours
            self.workers[pid] = slot
            return
        code = 0
        worker = None
        try:  # the worker: the supervisor's handlers and sockets are not its own
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            self.listener.close()
            ours.close()
            for channel in self.channels:
                if channel is not None:
                    channel.close()
            for read_end in self.reports:
                if read_end is not None:
                    os.close(read_end)
            worker = Worker(self.config, theirs, self.loads, slot, report)
            worker.run(sockets=[])  # the app first: a refusal goes to the supervisor, which stops them all
        except BaseException as error:  # noqa: BLE001  (a worker never returns into the supervisor's code)
            code = 1
            if worker is None or not worker.say(str(error) if isinstance(error, Refusal) else
                                                f"a serving process could not start: {error!r}"):
                log.exception("worker %d failed", os.getpid())
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
        """SIGTERM or SIGINT: every worker finishes what it holds, and `serve` ends."""
        self.signalled = True
        self._stop_all()

    def _stop_all(self) -> None:
        if self.stopping:
            return
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


class Worker(Server):
    """uvicorn's server in a worker process: its connections come over `channel`, from the
    supervisor, instead of from a listening socket."""

    def __init__(self, config: uvicorn.Config, channel: socket.socket, loads: Loads, slot: int, report: int):
        super().__init__(config)
        self.channel = channel
        self.loads = loads
        self.slot = slot
        self.report: int | None = report  # the pipe this worker says its first word on
        self.taken = 0
        self.opening = 0
        self.pending: set[asyncio.Task] = set()
        self.server_state.connections = _Connections(self._publish)

    async def startup(self, sockets=None) -> None:
        await super().startup(sockets=[])
        self.channel.setblocking(False)
        asyncio.get_running_loop().add_reader(self.channel.fileno(), self._take)
        self.say(READY.decode())

    def say(self, word: str) -> bool:
        """Its first word to the supervisor, once (READY, or one line on why it cannot start);
        False if it has spoken already."""
        if self.report is None:
            return False
        os.write(self.report, " ".join(word.split()).encode() + b"\n")  # one line, in one write
        os.close(self.report)
        self.report = None
        return True

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
