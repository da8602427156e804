"""The merchant's own app served on a free port in a thread, so that the emulator's callbacks
reach it: the pytest plugin's `payletter_serve_app`, and `serve_app` for a session of one's own."""
from __future__ import annotations

import inspect
import socket
import threading
import time
from typing import Callable

READY_TIMEOUT = 30.0  # seconds uvicorn may take to start the app; and to stop a server
# Seconds between two looks of werkzeug's serving loop at whether it should stop: stop() waits for
# the next look (werkzeug's default, half a second, was lost at every test's teardown).
STOP_POLL = 0.01


def is_asgi(app) -> bool:
    """An ASGI app is a coroutine function (or an object whose __call__ is one): FastAPI,
    Starlette, Quart's asgi_app; anything else is called as WSGI (Flask, Django's WSGI handler)."""
    return inspect.iscoroutinefunction(app) or inspect.iscoroutinefunction(getattr(app, "__call__", None))


def serve_app(app, *, host: str = "127.0.0.1", asgi: bool | None = None) -> tuple[str, Callable[[], None]]:
    """Serve `app` on a free port of `host` in a thread: its base URL, and the function that
    stops it. WSGI with werkzeug's threaded server (Flask's own); ASGI with uvicorn (which
    `serve` runs on too)."""
    if not (is_asgi(app) if asgi is None else asgi):
        from werkzeug.serving import make_server

        server = make_server(host, 0, app, threaded=True)
        thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": STOP_POLL},
                                  name="payletter-serve-app", daemon=True)
        thread.start()

        def stop_wsgi() -> None:
            server.shutdown()
            server.server_close()
            thread.join(READY_TIMEOUT)

        return f"http://{host}:{server.server_port}", stop_wsgi
    try:
        import uvicorn
    except ImportError:
        raise RuntimeError("payletter_serve_app: an ASGI app is served with uvicorn, which is not installed: "
                           "pip install uvicorn (a WSGI app needs nothing more)") from None
    listener = socket.create_server((host, 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="auto"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listener]}, name="payletter-serve-app",
                              daemon=True)
    thread.start()
    deadline = time.monotonic() + READY_TIMEOUT
    while not server.started:  # the readiness uvicorn reports, not a guess
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            listener.close()
            raise RuntimeError("payletter_serve_app: uvicorn did not start the app (its log says why)")
        time.sleep(0.01)

    def stop_asgi() -> None:
        server.should_exit = True
        thread.join(READY_TIMEOUT)
        listener.close()

    return f"http://{host}:{listener.getsockname()[1]}", stop_asgi
