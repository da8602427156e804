"""Several serving processes (`serve --workers N`, N > 1): gunicorn's arbiter forks them, each
running uvicorn (uvicorn-worker's `UvicornWorker`), all accepting on the one listening socket
`serve` bound. Only their public faces are used: gunicorn's custom application
(`BaseApplication`, its settings and server hooks) and the worker's `CONFIG_KWARGS`.

What the emulator adds is what gunicorn cannot know: each worker says on a pipe that it has made
the app ("ready"), or the one line saying why it cannot ("refused ..."). `serve` prints its
startup lines once every worker is ready; a worker that cannot start leaves quietly while the
arbiter is stopped (gracefully, so gunicorn logs nothing), and its line is the refusal: restarting
it would only fail again. A worker's app is made in its event loop (the ASGI lifespan's startup),
which is first given to callback delivery. POSIX only, as gunicorn
is (`shareable()`)."""
from __future__ import annotations

import asyncio
import functools
import os
import signal
import threading

from .. import waits
from ..delivery import dispatcher
from ..storage import pg_news
from ..storage.journal_tables import write_all_held
from ..startup import Refusal

READY = b"ready"
REFUSED = b"refused "


def run(make_app, options: dict, sockets: list, count: int, grace: float, ready=lambda: None) -> None:
    """Serve with `count` processes until SIGTERM or SIGINT; `make_app(parent)` makes a worker's
    ASGI app (or raises `Refusal`), `options` are uvicorn's settings."""
    from gunicorn.app.base import BaseApplication
    from uvicorn_worker import UvicornWorker

    pg_news.share_with_forks()  # a change one worker commits is in force on the others at once
    said, hear = _pipe()
    # gunicorn closes the descriptors it is given; `serve` closes its own sockets
    bind = [f"fd://{os.dup(listener.fileno())}" for listener in sockets]
    refused: list[str] = []
    parent = os.getpid()

    class Worker(UvicornWorker):
        CONFIG_KWARGS = dict(options, lifespan="on")  # the app is made at its startup: `_Made`

    class Application(BaseApplication):
        def load_config(self) -> None:
            wanted = {
                "bind": bind, "workers": count, "worker_class": Worker,
                "graceful_timeout": grace, "keepalive": options["timeout_keep_alive"],
                "loglevel": "warning", "proc_name": "payletter-emulator",
                "control_socket_disable": True,  # gunicorn >= 25 opens a control socket by default
            }
            for key, value in wanted.items():
                if key in self.cfg.settings:  # gunicorn's own recipe for a custom application
                    self.cfg.set(key, value)

        def load(self):
            os.close(hear)
            return _Made(functools.partial(make_app, parent), said)

    threading.Thread(target=_listen, args=(hear, count, ready, refused), daemon=True,
                     name="workers-ready").start()
    try:
        Application().run()
    except SystemExit as exit:
        if os.getpid() != parent:  # a worker leaving: gunicorn ends a forked worker by SystemExit
            raise
        if refused:
            raise Refusal(refused[0]) from None
        if exit.code not in (0, None):
            raise Refusal(f"the serving processes stopped (status {exit.code}); the lines above say why") from None
    if os.getpid() == parent:
        os.close(said)


class _Made:
    """A worker's ASGI app, made at the lifespan's startup, in the worker's event loop: the loop is
    given to delivery first (its callback attempts are made there, and the lifespan's shutdown,
    once the last request is answered, lets those in flight end), then the app is made, and the
    worker says "ready" on the pipe, or its refusal."""

    def __init__(self, make, said: int):
        self.make, self.said, self.app = make, said, None

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "lifespan":
            await self.app(scope, receive, send)
            return
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                waits.serve_in(asyncio.get_running_loop())
                try:
                    self.app = self.make()
                except Refusal as refusal:
                    _say(self.said, REFUSED + str(refusal).encode())
                    os._exit(0)  # quietly: the arbiter, told by `_listen`, stops every worker
                _say(self.said, READY)
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await dispatcher.finish()
                write_all_held()  # the journal entries of the requests just drained
                await send({"type": "lifespan.shutdown.complete"})
                return


def _pipe() -> tuple[int, int]:
    hear, said = os.pipe()
    os.set_inheritable(said, True)
    return said, hear


def _say(said: int, word: bytes) -> None:
    os.write(said, word.replace(b"\n", b" ") + b"\n")


def _listen(hear: int, count: int, ready, refused: list[str]) -> None:
    """In the arbiter: once `count` workers are ready, `ready()`; a refusal is kept. Replacements
    of workers that died say "ready" too, and are not announced again."""
    answered = 0
    with os.fdopen(hear, "rb") as lines:
        for line in lines:
            if line.startswith(REFUSED):
                refused.append(line[len(REFUSED):].decode(errors="replace").strip())
                os.kill(os.getpid(), signal.SIGTERM)  # the arbiter stops them all: restarting would fail again
            elif line.strip() == READY:
                answered += 1
                if answered == count:
                    ready()
