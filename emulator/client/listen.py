"""`payletter-emulator listen`: a callback sink for a shell or a CI job, like Stripe CLI's `listen`.
Each callback is printed as one JSON line (its path, when it came, its body) and acknowledged with
`{"code": 0}`; with `--forward-to` it is relayed to the merchant's endpoint, whose answer is
printed in the line and given back to the emulator."""
from __future__ import annotations

import json
import os
import socket
import sys
import threading
import time
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

import click

from ..domain.clock import KST
from .drive_options import fail, stopped_by_signals

ACKNOWLEDGED = b'{"code": 0}'  # what acknowledges a Payletter callback (with HTTP 200)
UNREACHABLE = 502  # the merchant's endpoint gave no answer: the emulator counts the attempt as failed
FORWARD_TIMEOUT = 30.0  # seconds the merchant's endpoint has to answer a relayed callback


def register(main: click.Group) -> None:
    main.add_command(listen)


@click.command()
@click.option("--port", type=click.IntRange(0, 65535), required=True,
              help="The port to listen on; 0 picks a free one and prints it first, on a line of its own.")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="The address to listen on (0.0.0.0 for an emulator in a container).")
@click.option("--forward-to", metavar="URL",
              help="Relay each callback to this URL (your app's endpoint) and answer with its answer.")
def listen(port: int, host: str, forward_to: str | None):
    """Receive callbacks: each one a JSON line on stdout, {"received_at", "method", "path", "body"} (with
    --forward-to, also "forwarded": the merchant's "status" and "body", or the "error"), answered
    {"code": 0} (or with the merchant's answer). Runs until Ctrl-C or SIGTERM, then exits 0."""
    if forward_to and urlsplit(forward_to).scheme not in ("http", "https"):
        raise click.BadParameter(f"{forward_to!r} is not an http:// or https:// URL", param_hint="'--forward-to'")
    sink = Sink(forward_to)
    try:
        server = (_Server6 if ":" in host else _Server)((host, port), sink.handler())
    except OSError as exc:  # the port is taken, or the address is not this machine's
        fail({"status": None, "code": None, "message": f"cannot listen on {host}:{port}: {exc}"})
    with server, stopped_by_signals():
        bound = server.server_address[1]
        if port == 0:
            sink.write(str(bound))
        shown = f"[{host}]" if ":" in host else host
        click.echo(f"listening for callbacks on http://{shown}:{bound}/"
                   + (f", relaying them to {forward_to}" if forward_to else ""), err=True)
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass
    sink.close()


class _Server(ThreadingHTTPServer):
    daemon_threads = True  # a callback being relayed does not hold up the end


class _Server6(_Server):
    address_family = socket.AF_INET6


class Sink:
    """What `listen` does with each request: the line it prints and the answer it gives. When
    nobody reads its lines any more (stdout closed), it stops."""

    def __init__(self, forward_to: str | None):
        self.forward_to = forward_to
        self.lock = threading.Lock()  # one line at a time from the request threads
        self.broken = False  # stdout was closed by its reader
        self.session = None
        if forward_to:
            import requests

            self.session = requests.Session()
            self.session.trust_env = False  # a CI proxy must not sit between the sink and the merchant

    def write(self, text: str) -> None:
        with self.lock:
            try:
                sys.stdout.write(text + "\n")
                sys.stdout.flush()
            except (BrokenPipeError, ValueError):  # nobody reads any more: stop, without a traceback
                self.broken = True
                os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # for what is left to flush

    def close(self) -> None:
        if self.session is not None:
            self.session.close()

    def answer(self, method: str, path: str, headers, body: bytes) -> tuple[int, dict[str, str], bytes]:
        """The status, headers and body to answer with, once the line is printed."""
        line: dict[str, Any] = {"received_at": _now(), "method": method, "path": path, "body": _decoded(body)}
        if self.session is None:
            status, answer_headers, answer = 200, {"Content-Type": "application/json"}, ACKNOWLEDGED
        else:
            status, answer_headers, answer, line["forwarded"] = self._relay(headers, body)
        self.write(json.dumps(line, ensure_ascii=False, separators=(",", ":")))
        return status, answer_headers, answer

    def _relay(self, headers, body: bytes) -> tuple[int, dict[str, str], bytes, dict]:
        import requests

        sent = {name: value for name, value in headers.items() if name.lower() in ("content-type", "user-agent")}
        started = time.monotonic()
        try:
            reply = self.session.post(self.forward_to, data=body, headers=sent, timeout=FORWARD_TIMEOUT,
                                      allow_redirects=False)
        except requests.RequestException as exc:
            message = f"the merchant's endpoint {self.forward_to} did not answer: {type(exc).__name__}: {exc}"
            envelope = json.dumps({"code": UNREACHABLE, "message": message}, ensure_ascii=False).encode()
            return UNREACHABLE, {"Content-Type": "application/json"}, envelope, \
                {"url": self.forward_to, "error": message}
        kept = {"Content-Type": reply.headers.get("Content-Type", "application/octet-stream")}
        return reply.status_code, kept, reply.content, \
            {"url": self.forward_to, "status": reply.status_code, "body": _decoded(reply.content),
             "latency_ms": round((time.monotonic() - started) * 1000, 1)}

    def handler(self) -> type[BaseHTTPRequestHandler]:
        sink = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                try:
                    length = int(self.headers.get("Content-Length") or 0)
                except ValueError:
                    return self._send(400, {"Content-Type": "application/json"},
                                      b'{"code": 400, "message": "Content-Length is not a number"}')
                body = self.rfile.read(length)
                self._send(*sink.answer("POST", self.path, self.headers, body))

            def _refuse(self):
                self._send(405, {"Content-Type": "application/json", "Allow": "POST"},
                           b'{"code": 405, "message": "a callback is a POST"}')

            do_GET = do_PUT = do_PATCH = do_DELETE = do_HEAD = _refuse

            def _send(self, status: int, headers: dict[str, str], body: bytes) -> None:
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)
                if sink.broken:  # the reader of stdout has gone: so does the sink
                    threading.Thread(target=self.server.shutdown, daemon=True).start()

            def log_message(self, *args):  # stdout holds the lines only; stderr stays quiet
                pass

        return Handler


def _decoded(body: bytes) -> Any:
    """A body as JSON when it is JSON, else as text."""
    text = body.decode("utf-8", "replace")
    try:
        return json.loads(text)
    except ValueError:
        return text


def _now() -> str:
    """The moment a callback came, on this machine's clock (the sink has no emulator clock), in KST
    as the ledger's wall_time is."""
    return datetime.fromtimestamp(time.time(), KST).isoformat(timespec="milliseconds")
