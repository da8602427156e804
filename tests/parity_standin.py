"""A stand-in for the real test gateway, for the parity tests only: it answers from stored real
answers (tests/parity_fixtures/, docs/fidelity.md's evidence), never from the emulator. A request
no capture covers gets 501 and a text body, so that the probe cannot mistake it for the gateway."""
from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from fnmatch import fnmatch
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

FIXTURES = Path(__file__).resolve().parent / "parity_fixtures"
NO_CAPTURE = b"the stand-in has no capture of this request"


def fixtures(folder: Path = FIXTURES) -> list[dict]:
    return [json.loads(path.read_text("utf-8")) | {"file": path.name} for path in sorted(folder.glob("*.json"))]


@dataclass
class StandIn:
    """The server's state: the fixtures it answers from, the keys it knows, what it was sent."""

    keys: dict[str, str]
    answers: list[dict] = field(default_factory=fixtures)
    received: list[dict] = field(default_factory=list)
    url: str = ""

    def answer(self, method: str, path: str, authorization: str | None, body: bytes) -> tuple[int, bytes, str]:
        auth = next((name for name, key in self.keys.items() if authorization == f"PLKEY {key}"),
                    "none" if authorization is None else "other")
        try:
            body.decode("utf-8")
            encoding = "utf-8"
        except UnicodeDecodeError:
            encoding = "not utf-8"
        for fixture in self.answers:
            match = fixture["match"]
            if (fnmatch(method, match["method"]) and fnmatch(path.rstrip("/"), match["path"])
                    and (match["auth"] in ("*", auth) or (match["auth"] == "either" and auth in self.keys))
                    and match["body"] in ("*", encoding)):
                return fixture["status"], fixture["body"].encode("utf-8"), "application/json; charset=utf-8"
        return 501, NO_CAPTURE, "text/plain"


def serve(stand_in: StandIn) -> ThreadingHTTPServer:
    """The stand-in on a loopback port, in a thread; shut the server down when done."""

    class Handler(BaseHTTPRequestHandler):
        def _any(self):
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            path = urlsplit(self.path).path
            stand_in.received.append({"method": self.command, "path": self.path, "headers": dict(self.headers),
                                      "body": body})
            status, answer, content_type = stand_in.answer(self.command, path, self.headers.get("Authorization"), body)
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _any

        def log_message(self, *args):
            pass

    class Server(ThreadingHTTPServer):
        daemon_threads = True

    server = Server(("127.0.0.1", 0), Handler)
    stand_in.url = f"http://127.0.0.1:{server.server_port}"
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server
