"""A/B runs of `payletter-emulator serve --tls`: variants of the emulator (copies of the repository)
taking turns (in reverse order every other round), a fresh server per variant in every round.
Prints, per variant, the median over the rounds of each round's median health round trip over
HTTPS, with a new connection (and handshake) per request and on one keep-alive connection, and how
long a stop (SIGTERM) takes with an idle keep-alive client; each as a ratio to the first variant.

    python benchmarks/https_ab.py --variant "before=/tmp/copy-at-the-last-commit" --variant "after=."

A variant is NAME=SOURCE: SOURCE's `emulator/` folder seen under the installed name
`payletter_emulator` (as benchmarks/ab.py runs its variants).
"""
from __future__ import annotations

import argparse
import http.client
import os
import signal
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import run  # noqa: E402
from ab import _as_installed  # noqa: E402

WAYS = ("new connection ms", "keep-alive ms", "stop s")


def serve(source: Path, workdir: Path) -> tuple[subprocess.Popen, int, ssl.SSLContext]:
    """The variant's `serve --tls --port 0`, once it has said its port and its CA."""
    environ = {key: value for key, value in os.environ.items() if not key.startswith("PAYLETTER_EMULATOR_")}
    environ["PYTHONPATH"] = str(source)
    process = subprocess.Popen([*run.emulator_command(), "serve", "--tls", "--port", "0", "--db", "e.db"],
                               cwd=workdir, env=environ, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    port = ca = None
    for line in process.stdout:
        if line.startswith("payletter-emulator listening on https://"):
            port = int(line.split()[3].rsplit(":", 1)[1])
        elif line.startswith("CA certificate: "):
            ca = line.split(": ", 1)[1].strip()
        if port and ca:
            return process, port, ssl.create_default_context(cafile=ca)
    raise RuntimeError(f"{source}: the server did not start")


def health(connection: http.client.HTTPSConnection) -> float:
    began = time.perf_counter()
    connection.request("GET", "/_emulator/health")
    answer = connection.getresponse()
    answer.read()
    assert answer.status == 200, answer.status
    return (time.perf_counter() - began) * 1000


def one_round(source: Path, workdir: Path, count: int) -> dict[str, float]:
    process, port, context = serve(source, workdir)
    try:
        fresh = []
        for _ in range(count + 20):  # the first 20 untimed
            connection = http.client.HTTPSConnection("127.0.0.1", port, context=context)
            fresh.append(health(connection))
            connection.close()
        kept = http.client.HTTPSConnection("127.0.0.1", port, context=context)
        held = [health(kept) for _ in range(count + 20)]
        began = time.perf_counter()  # the stop, with `kept` open and idle
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)
        stopped = time.perf_counter() - began
        kept.close()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    return {"new connection ms": statistics.median(fresh[20:]), "keep-alive ms": statistics.median(held[20:]),
            "stop s": stopped}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="A/B runs of serve --tls.")
    parser.add_argument("--variant", action="append", required=True, help="NAME=SOURCE")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--count", type=int, default=300, help="timed requests per way and round")
    options = parser.parse_args(argv)
    variants = dict(entry.split("=", 1) for entry in options.variant)
    taken: dict[str, list[dict[str, float]]] = {name: [] for name in variants}
    with tempfile.TemporaryDirectory(prefix="payletter-https-ab-") as folder:
        paths = {name: _as_installed(Path(source).resolve(), Path(folder) / f"path-{name}")
                 for name, source in variants.items()}
        for number in range(options.rounds):
            order = list(variants) if number % 2 == 0 else list(reversed(variants))
            for name in order:
                workdir = Path(folder) / f"{name}-{number}"
                workdir.mkdir()
                taken[name].append(one_round(paths[name], workdir, options.count))
    first = next(iter(variants))
    medians = {name: {way: statistics.median(r[way] for r in rounds) for way in WAYS} for name, rounds in taken.items()}
    for name, source in variants.items():
        print(f"{name}: commit {run.commit(Path(source).resolve())}")
        for way in WAYS:
            values = [r[way] for r in taken[name]]
            print(f"  {way:18} {medians[name][way]:8.2f}  (rounds {min(values):.2f}-{max(values):.2f})"
                  f"  / {first}: {medians[name][way] / medians[first][way]:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
