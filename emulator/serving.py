"""Serving with gunicorn: several worker processes on one database, each running the same
app (and its own callback dispatcher, which claims work so that no attempt is made twice)."""
from __future__ import annotations

import socket

from gunicorn.app.base import BaseApplication

from .config import Settings

THREADS = 8  # per worker: a flush or a slow scenario answer must not hold up other requests
KEEPALIVE = 75  # seconds an idle client connection stays open


class Gunicorn(BaseApplication):
    def __init__(self, settings: Settings, listener: socket.socket, certificates=None):
        self.settings = settings
        self.listener = listener
        self.certificates = certificates  # emulator.tls.Certificates for HTTPS, else None
        host, port = listener.getsockname()[:2]  # read here: a worker has the listener as gunicorn's
        self.address = f"{'127.0.0.1' if host in ('0.0.0.0', '::', '') else host}:{port}"
        super().__init__()

    def load_config(self) -> None:
        self.cfg.set("bind", f"fd://{self.listener.fileno()}")
        self.cfg.set("workers", self.settings.workers)
        self.cfg.set("worker_class", "gthread")
        self.cfg.set("threads", THREADS)
        self.cfg.set("graceful_timeout", 5)
        # Test clients keep connections open between calls; closing them after gunicorn's
        # default 2 s races with the next request on them (connection reset).
        self.cfg.set("keepalive", KEEPALIVE)
        self.cfg.set("proc_name", "payletter-emulator")
        if "control_socket_disable" in self.cfg.settings:  # gunicorn 25+: no runtime control socket
            self.cfg.set("control_socket_disable", True)
        if self.certificates:
            from .tls import gunicorn_context

            self.cfg.set("certfile", str(self.certificates.cert_file))
            self.cfg.set("keyfile", str(self.certificates.key_file))
            self.cfg.set("ssl_context", gunicorn_context)

    def load(self):
        # Called in each worker after the fork: its own database connection, threads and clock.
        from .web.app import create_app

        app = create_app(self.settings)
        if self.certificates:
            from .tls import hint_gunicorn_log, install

            install(app, self.certificates)
            hint_gunicorn_log(self.address)
        return app


def serve(settings: Settings, listener: socket.socket, certificates=None) -> None:
    listener.set_inheritable(True)
    Gunicorn(settings, listener, certificates).run()
