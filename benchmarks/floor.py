"""The floor of a merchant test's lifecycle on this machine: the same four requests and one
callback, made by the same client (`requests`, as benchmarks/feel.py makes them), against a
server that does nothing else: a bare ASGI app under uvicorn with httptools and uvloop (as `serve`
runs), which keeps no state, checks nothing and writes nothing; its flush posts the callback to
the receiver and waits for its answer, as the emulator's flush waits for the attempt. What the
emulator spends beyond it is its own work; a target under the floor cannot be met by any server.

    python benchmarks/floor.py [--rounds 5] [--lifecycles 100]

Prints, per round and way of connecting, the lifecycle's p50 on the floor and on `serve` (this
repository's, a fresh SQLite file), measured in turn, and their ratio.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
from pathlib import Path
from urllib.parse import urlsplit

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

import feel  # noqa: E402  (benchmarks/feel.py)
import run  # noqa: E402

ANSWERS = {"request": {"token": 1, "online_url": "", "mobile_url": ""}, "approve": {"fields": {"tid": "t"}},
           "flush": {"idle": True}, "cancel": {"tid": "t"}, "health": {"status": "ok"}}
callback_url: list[str] = []


async def app(scope, receive, send) -> None:
    """The floor: each route's fixed answer; payments/request keeps the callback_url, the flush
    posts to it and waits for the answer."""
    if scope["type"] != "http":
        return
    body, more = b"", True
    while more:
        message = await receive()
        body, more = body + message.get("body", b""), message.get("more_body", False)
    path = scope["path"]
    step = next(name for name in ANSWERS if name in path.replace("payments/request", "request"))
    if step == "request":
        callback_url[:] = [json.loads(body)["callback_url"]]
    elif step == "flush" and callback_url:
        await _post(callback_url.pop())
    content = json.dumps(ANSWERS[step]).encode()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(content)).encode())]})
    await send({"type": "http.response.body", "body": content})


async def _post(url: str) -> None:
    parts = urlsplit(url)
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    form = b"code=0"
    writer.write(b"POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/x-www-form-urlencoded\r\n"
                 b"Content-Length: %d\r\n\r\n%s" % (parts.path.encode(), parts.netloc.encode(),
                                                                          len(form), form))
    head = await reader.readuntil(b"\r\n\r\n")  # the receiver's answer
    length = next(int(line.split(b":")[1]) for line in head.lower().split(b"\r\n") if line.startswith(b"content-length"))
    await reader.readexactly(length)
    writer.close()


class Floor(run.Server):
    def __init__(self, workdir: Path):
        self.port = run.free_port()
        command = [sys.executable, "-m", "uvicorn", "--port", str(self.port), "--http", "httptools",
                   "--loop", "auto", "--log-level", "warning", "--no-access-log", "floor:app"]
        super().__init__(command, workdir, {"PYTHONPATH": str(BENCH), "PATH": ""}, "floor", 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--lifecycles", type=int, default=100)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        workdir = Path(folder)
        receiver = run.Receiver(200, workdir)
        figures: dict[tuple[str, str], list[float]] = {}
        try:
            for number in range(options.rounds):
                servers = [("floor", lambda: Floor(workdir)),
                           ("serve", lambda: run.Emulator("serve", str(workdir / f"e{number}.db"), workdir,
                                                          argparse.Namespace(workers=1), "serve", source=None))]
                for name, start in servers if number % 2 == 0 else servers[::-1]:
                    server = start()
                    server.settle(10)  # as benchmarks/feel.py: measured once it has finished starting
                    try:
                        for way, samples in feel.lifecycles(server, receiver, options.lifecycles, 10).items():
                            figures.setdefault((name, way), []).append(statistics.median(samples))
                    finally:
                        server.stop()
                print(f"round {number + 1} done", file=sys.stderr)
        finally:
            receiver.stop()
    print(f"{'lifecycle p50, ms (median of the rounds; range)':58} {'floor':>16} {'serve':>16} {'serve ÷ floor':>14}")
    for way in feel.LATENCIES[:2]:
        cells = [figures[(name, way)] for name in ("floor", "serve")]
        shown = [f"{statistics.median(c):.2f} ({min(c):.2f}-{max(c):.2f})" for c in cells]
        print(f"{way:58} {shown[0]:>16} {shown[1]:>16} {statistics.median(cells[1]) / statistics.median(cells[0]):14.2f}")


if __name__ == "__main__":
    main()
