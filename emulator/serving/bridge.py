"""How `payletter-emulator serve` serves: uvicorn, in one process (or, with `--workers N`,
several on one database: emulator/serving/workers.py).

uvicorn reads every request (headers and body) in the process's event loop, so a client that
sends nothing, or dribbles its headers, costs little memory and no thread. A whole request is run
once: in the loop when it is alone and short (no hand-over), else on a thread of a plain executor
(two threads; routes declared long have their own). A handler
that must wait (a flush, a reset, a resend, a scenario's latency) hands the loop what it waits for
(emulator/waits.py): the loop awaits it, holding no thread, then sends the answer. The loop also
makes the process's callback attempts (emulator/delivery/dispatcher.py), and a stop lets those in
flight end. Where several processes serve, each runs the same app (and its own callback
dispatcher, which claims work so that no attempt is made twice). The choice: docs/decisions.md
("Serving"); its figures: benchmarks/RESULTS.md; a drawing: docs/architecture.md."""
from __future__ import annotations

import asyncio
import contextlib
import copy
import functools
import io
import json
import logging
import os
import random
import signal
import socket
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from urllib.parse import unquote_to_bytes

import uvicorn

from ..config import Settings
from ..delivery import dispatcher
from ..storage.journal_tables import write_all_held
from ..startup import refusal
from ..domain.errors import GatewayError
from .. import waits
from ..waits import ARRIVED, LATER, LOCK_WAIT, LONG, REFUSE, RERUN, Busy, attempt
from ..web.app import BODY_LIMIT, create_app, route_work
from .heads import bounded

KEEPALIVE = 75  # seconds an idle client connection stays open between requests
GRACE = 5  # seconds a stopping process gives the requests in progress
DROP = "payletter.drop"  # environ key: call it to end the connection with no answer
# A request whose write finds the database locked by another process, or whose transaction
# PostgreSQL ended in a conflict with another (waits.Busy), is run again after these pauses
# (doubling, each drawn between half and one and a half of it, so that hosts that met do not meet
# again in step), awaited in the loop, until LOCK_WAIT after it arrived.
LOCKED_PAUSE_FIRST, LOCKED_PAUSE_MOST = 0.01, 0.2
# Seconds a thread holds the interpreter while another waits for it (Python's default: 0.005). A
# request thread's long Python work (a scenario checked, a page of a thousand payments built)
# would make the event loop wait up to that each of the few dozen times a request in the loop
# takes the interpreter back (after each database call, each socket read): a payments/request took
# 0.1-0.15 s beside a scenario's check at 5 ms, under 0.1 s at 1 ms (benchmarks/faults.py measures
# health during each fault).
SWITCH_INTERVAL = 0.001
RUNNING, LONG_RUNNING = 2, 8  # threads that run requests, and requests of routes declared long
# Bytes of request bodies a process holds while they arrive (64 bodies at the 1 MiB limit), and
# the seconds a body may take to arrive whole: then its request is given up, its bytes let go.
BODIES_HELD, BODY_SECONDS = 64 * 1024 * 1024, 30


def processes(settings: Settings) -> int:
    """How many processes serve: --workers, or one. One process answers a merchant's suite
    sooner and in a third of the memory (docs/decisions.md, "One serving process by default")."""
    return settings.workers or 1


def shareable() -> bool:
    """Whether several processes can serve here: gunicorn forks them (emulator/serving/workers.py),
    and they tell each other's liveness by pid (emulator/storage/board.py)."""
    return os.name == "posix" and hasattr(os, "fork")


def serve(settings: Settings, listener: socket.socket, certificates=None, count: int = 1,
          ready=lambda: None, intercept: socket.socket | None = None, gateway=None) -> None:
    """Serve on `listener` (bound by the caller, so `--port 0` can say its port) until SIGTERM or
    SIGINT, and return once the last request is answered; with `intercept` (a bound socket), the
    `--intercept` proxy there too, answering the gateway's hosts with `gateway` (tls.Certificates).
    `ready` is called once every process has made its app; a process that cannot start raises
    `startup.Refusal` (one line)."""
    settings = replace(settings, port=listener.getsockname()[1])  # the port it got: no callback may lead there
    _raise_file_limit()  # here, before any worker process starts: they inherit it
    options = uvicorn_options(settings, certificates, intercept, gateway)
    sockets = [listener, intercept] if intercept is not None else [listener]
    if count > 1:
        from .workers import run

        run(functools.partial(_application, settings, certificates, gateway=gateway), options, sockets, count,
            GRACE, ready)
        return
    # The app is made by Server.run, once its loop is given to delivery (a factory for uvicorn).
    app = functools.partial(_application, settings, certificates, None, gateway)
    server = _Server(uvicorn.Config(app, factory=True, **options), ready)
    with _graceful_stop(server):
        server.run(sockets=sockets)


class Server(uvicorn.Server):
    """uvicorn's server in a serving process, whose event loop also makes the process's callback
    attempts: made first, before the app (the loop is given to delivery, then the app is built: a
    refusal leaves before anything serves); a stop lets the attempts in flight end."""

    def run(self, sockets=None) -> None:
        with asyncio.Runner(loop_factory=self.config.get_loop_factory()) as runner:
            waits.serve_in(runner.get_loop())
            if not self.config.loaded:
                self.config.load()
            runner.run(self.serve(sockets=sockets))

    async def shutdown(self, sockets=None) -> None:
        await super().shutdown(sockets=sockets)
        await dispatcher.finish()
        write_all_held()  # the journal entries of the requests just drained


class _Server(Server):
    """The one serving process, which says when it accepts connections."""

    def __init__(self, config: uvicorn.Config, ready):
        super().__init__(config)
        self.ready = ready

    async def startup(self, sockets=None) -> None:
        await super().startup(sockets=sockets)
        if self.started:
            self.ready()


@contextlib.contextmanager
def _graceful_stop(server: uvicorn.Server):
    """uvicorn stops gracefully on SIGTERM or SIGINT, then raises the signal again with the
    handler it found, so that the process ends as that handler says: by default SIGTERM's death
    (exit status 143). The handler it finds is this one, so a graceful stop returns (exit 0)."""
    if threading.current_thread() is not threading.main_thread():  # only the main thread has signals
        yield
        return

    def stop(signum, frame) -> None:
        server.should_exit = True  # a signal before uvicorn listens for its own still stops it

    previous = {number: signal.signal(number, stop) for number in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


def _raise_file_limit() -> None:
    """Every connection is a descriptor: take the hard limit, not the usual soft 1,024."""
    try:
        import resource
    except ImportError:  # Windows: no such limit to raise
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        hard = max(soft, 65536)
    if soft != resource.RLIM_INFINITY and soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (ValueError, OSError):
            pass


def _application(settings: Settings, certificates, parent: int | None, gateway=None) -> "Bridge":
    """Run in each serving process before it serves; `parent`: the arbiter's pid, for a worker
    process. An app that cannot be made is refused in one line."""
    try:
        app = create_app(settings)
    except Exception as error:  # a database gone since `serve` opened it, say: one line, not a traceback
        raise refusal(settings.db, error) from None
    # The CA's certificate is served where the emulator's CA is used: by --tls, or by --intercept.
    signed = next((c for c in (certificates, gateway) if c is not None and c.ca_file is not None), None)
    if signed:
        from .tls import install

        install(app, signed)
    if parent is not None:
        _leave_with_parent(parent)
    sys.setswitchinterval(SWITCH_INTERVAL)
    return Bridge(app)


def _leave_with_parent(parent: int) -> None:
    """A worker process whose parent is gone (killed, maybe before this one had loaded the app)
    stops too."""
    if os.name != "posix":
        return

    def watch():
        while os.getppid() == parent:
            time.sleep(1)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def uvicorn_options(settings: Settings, certificates, intercept: socket.socket | None = None,
                    gateway=None) -> dict:
    """uvicorn's settings for the emulator, the same in every serving process.

    Its HTTP protocol is httptools' (in C; h11's, in Python, where httptools is not installed),
    with a request's head bounded (serving/heads.py). HTTPS is uvicorn's own, with emulator.tls's
    context (TLS 1.2 at least, as at the gateway). With `--intercept`, the connections to its port
    are told apart from the others by the port they came to, and TLS is started by the protocol
    (serving/intercept.py): on both ports with `--tls` too, on asyncio's loop then, since uvloop
    hands a new connection's first bytes to the protocol before TLS can be started on it."""
    options = dict(
        http=bounded(_protocol_class()), loop="auto", lifespan="off", log_level=None,
        access_log=settings.access_log, log_config=_logging(settings.access_log), server_header=False,
        proxy_headers=False,
        timeout_keep_alive=KEEPALIVE, timeout_graceful_shutdown=GRACE, backlog=2048)
    if intercept is not None:
        from .intercept import Front
        from .tls import server_context

        main = server_context(certificates) if certificates else None
        options["http"] = functools.partial(Front, options["http"], intercept.getsockname()[1],
                                            server_context(gateway), main)
        options["loop"] = "asyncio" if certificates else "auto"
    elif certificates:
        from .tls import uvicorn_options as https

        options.update(https(certificates))
    return options


def _logging(access_log: bool) -> dict:
    """uvicorn's logging: warnings and errors, and with `--access-log` a line per request (at INFO),
    on stderr as its help says (uvicorn's own default is stdout, which carries the startup lines
    tools read)."""
    config = copy.deepcopy(uvicorn.config.LOGGING_CONFIG)
    config["handlers"]["access"]["stream"] = "ext://sys.stderr"
    config["loggers"]["uvicorn.error"]["level"] = "WARNING"
    config["loggers"]["uvicorn.access"]["level"] = "INFO" if access_log else "WARNING"
    return config


def _protocol_class():
    """uvicorn's HTTP protocol: httptools' where it is installed, else h11's (as its "auto")."""
    try:
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
    except ImportError:
        from uvicorn.protocols.http.h11_impl import H11Protocol

        return H11Protocol
    return HttpToolsProtocol


class Bridge:
    """The ASGI app uvicorn serves: the Flask (WSGI) app, called once per request, with the whole
    request read in the event loop: in the loop itself when no other request is running and its
    route is short, else on a thread of a plain executor; its answer sent from the loop, once what
    it waits for (waits.LATER) is done. A general WSGI adapter such as a2wsgi
    hands over to a thread for every read and write (measured in benchmarks/RESULTS.md)."""

    def __init__(self, app):
        self.app = app
        # Two threads run the requests: one runs while the other's database work or answer is
        # under way; more would only take turns at the interpreter and lengthen the tail
        # (benchmarks/RESULTS.md). Routes declared long (waits.LONG) have threads of their own, so
        # a page of a thousand entries holds up nobody.
        self.short = ThreadPoolExecutor(RUNNING, thread_name_prefix="request")
        self.long = ThreadPoolExecutor(LONG_RUNNING, thread_name_prefix="long-request")
        self.bodies = _Bodies(BODIES_HELD)
        self.running = 0  # requests being run, here or on a thread

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return
        environ = _environ(scope)
        environ[ARRIVED] = time.monotonic()
        environ[LATER] = None  # here, a handler may hand the loop what its answer waits for
        length = environ.get("CONTENT_LENGTH")
        unread = bool(length and length.isdigit() and int(length) > BODY_LIMIT)
        async with self.bodies.holding() as held:
            if unread:
                body = b""  # the app answers 413 from the length alone; the connection closes after
            else:
                body = await held.read(receive, BODY_LIMIT + 1)
                if body is None:
                    return  # the client left, or took too long, before its request was whole
                if not length:
                    environ["CONTENT_LENGTH"] = str(len(body))
            dropped = []
            environ[DROP] = lambda: dropped.append(True)
            long = route_work(self.app, environ["REQUEST_METHOD"], environ["PATH_INFO"]) == LONG
            self.running += 1
            try:
                # Alone, a short request is answered here, in the loop: a hand-over to a thread and
                # back would cost as much as its work (docs/decisions.md, "Every request runs once").
                answer = self.call(dict(environ), body, RERUN) if self.running == 1 and not long else None
                if answer is None:  # others are running, the work is long, or a write met a lock
                    answer = await self._run(self.long if long else self.short, environ, body)
            finally:
                self.running -= 1
            status, headers, content, later = answer
        if later is not None:
            status, headers, content = await _answer_later(later, status, headers, content)
        if dropped:
            _abort(send)
            return
        if unread:
            headers.append((b"connection", b"close"))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": content})

    async def _run(self, executor, environ: dict, body: bytes):
        """The request, run once; run again, after a pause that holds no thread, only where a
        write found the database locked by another process or ended in a conflict (waits.Busy:
        nothing was written), until LOCK_WAIT after it arrived; then once more, where a lock still
        held is refused (503, `database_locked`; a conflict, `database_conflict`)."""
        loop = asyncio.get_running_loop()
        deadline = environ[ARRIVED] + LOCK_WAIT
        pause = LOCKED_PAUSE_FIRST
        while True:
            mode = REFUSE if time.monotonic() >= deadline else RERUN
            answer = await loop.run_in_executor(executor, self.call, dict(environ), body, mode)
            if answer is not None:
                return answer
            await asyncio.sleep(max(0.0, min(pause * random.uniform(0.5, 1.5), deadline - time.monotonic())))
            pause = min(pause * 2, LOCKED_PAUSE_MOST)

    def call(self, environ: dict, body: bytes, mode: str):
        """In the loop (a short request alone) or on an executor's thread: the app's answer
        (status, headers, body, and the waits.Later it waits for), or None where the database
        refused a write (waits.Busy)."""
        started = []

        def start_response(status, headers, exc_info=None):
            started[:] = [int(status[:3]), [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers]]
            return _no_write

        environ["wsgi.input"] = io.BytesIO(body)
        try:
            with attempt(mode):
                content = _read(self.app(environ, start_response))
        except Busy:
            return None
        return started[0], started[1], content, environ[LATER]


class _Bodies:
    """The bytes of request bodies held by a process while they arrive, bounded in total: a
    request that would pass the bound waits, unread (its client is held back by TCP), until
    others have ended; a body that takes longer than BODY_SECONDS to arrive is given up. So a few
    hundred stalled uploads cost at most the bound, not their sum."""

    def __init__(self, most: int):
        self.most = most
        self.held = 0
        self.room = asyncio.Condition()

    @contextlib.asynccontextmanager
    async def holding(self):
        held = _Held(self)
        try:
            yield held
        finally:
            if held.size:
                async with self.room:
                    self.held -= held.size
                    self.room.notify_all()


class _Held:
    def __init__(self, bodies: _Bodies):
        self.bodies = bodies
        self.size = 0

    async def read(self, receive, limit: int) -> bytes | None:
        """The request's body, at most `limit` bytes of it; None if the client went away first,
        or took longer than BODY_SECONDS."""
        try:
            async with asyncio.timeout(BODY_SECONDS):
                return await self._read(receive, limit)
        except TimeoutError:
            return None

    async def _read(self, receive, limit: int) -> bytes | None:
        chunks, bodies = [], self.bodies
        while self.size < limit:
            message = await receive()
            if message["type"] != "http.request":
                return None
            chunk = message.get("body", b"")
            if chunk:
                async with bodies.room:
                    await bodies.room.wait_for(lambda: bodies.held + len(chunk) <= bodies.most or not bodies.held)
                    bodies.held += len(chunk)
                self.size += len(chunk)
                chunks.append(chunk)
            if not message.get("more_body"):
                break
        return b"".join(chunks)


async def _answer_later(later, status: int, headers: list, content: bytes) -> tuple[int, list, bytes]:
    """The answer once `later` (waits.Later) is done: the handler's, or the one made from the
    future's result; what failed in it answers as any unexpected failure does (500, the gateway's
    envelope)."""
    try:
        result = await asyncio.wrap_future(later.future)
        if later.answer is None:
            return status, headers, content
        status, content = later.answer(result)
    except Exception:
        logging.getLogger("payletter_emulator").exception("an answer waiting for the event loop failed")
        error = GatewayError("internal")
        status, content = error.status, json.dumps(error.body()).encode()
    return status, [(b"content-type", b"application/json"), (b"content-length", str(len(content)).encode())], content


def _read(result) -> bytes:
    try:
        return b"".join(result)
    finally:
        close = getattr(result, "close", None)
        if close is not None:
            close()


def _no_write(data: bytes) -> None:
    raise NotImplementedError("the emulator's app returns its body; it never calls write()")


def _environ(scope: dict) -> dict:
    """The WSGI environ of an ASGI request, as gunicorn and werkzeug make it."""
    path = unquote_to_bytes(scope.get("raw_path") or scope["path"].encode()).decode("latin-1")
    server = scope.get("server") or ("localhost", 80)
    environ = {
        "REQUEST_METHOD": scope["method"], "SCRIPT_NAME": "", "PATH_INFO": path,
        "QUERY_STRING": scope["query_string"].decode("latin-1"),
        "SERVER_NAME": server[0], "SERVER_PORT": str(server[1]),
        "SERVER_PROTOCOL": f"HTTP/{scope['http_version']}",
        "wsgi.version": (1, 0), "wsgi.url_scheme": scope.get("scheme", "http"), "wsgi.errors": sys.stderr,
        "wsgi.multithread": True, "wsgi.multiprocess": True, "wsgi.run_once": False,
        "wsgi.input_terminated": True,
    }
    client = scope.get("client")
    if client:
        environ["REMOTE_ADDR"], environ["REMOTE_PORT"] = client[0], str(client[1])
    for name, value in scope["headers"]:
        key = _HEADER_KEYS.get(name) or _header_key(name)
        value = value.decode("latin-1")
        environ[key] = f"{environ[key]},{value}" if key in environ else value
    return environ


_HEADER_KEYS = {b"content-length": "CONTENT_LENGTH", b"content-type": "CONTENT_TYPE"}


@functools.lru_cache(maxsize=512)
def _header_key(name: bytes) -> str:
    return "HTTP_" + name.decode("latin-1").upper().replace("-", "_")


def _abort(send) -> None:
    """End the connection with no answer. ASGI has no word for it: uvicorn's `send` belongs to
    the request's cycle, which holds the connection's transport."""
    transport = getattr(getattr(send, "__self__", None), "transport", None)
    if transport is not None:
        transport.abort()
