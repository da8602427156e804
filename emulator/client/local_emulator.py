"""An emulator of one's own, started as users start it (`python -m payletter_emulator serve` on a
free port) and stopped at the end: the one server-start helper, shared by the pytest plugin and by
`payletter_emulator.running()` for unittest, behave or a plain script."""
from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Iterable, Iterator, NamedTuple

from .control_client import EmulatorClient, EmulatorError

PACKAGE = __name__.partition(".")[0]  # started as users start it: python -m payletter_emulator
READY_TIMEOUT = 30.0  # seconds for a spawned emulator to answer /_emulator/health
STOP_TIMEOUT = 10.0  # seconds a stopped emulator has to finish before it is killed


class Started(NamedTuple):
    """An emulator `start_emulator` started."""

    process: subprocess.Popen
    client: EmulatorClient  # of its main port (trusting its CA over HTTPS)
    log_path: Path
    proxy: str | None = None  # with `intercept`: the proxy's URL (`http://127.0.0.1:<port>`), for HTTPS_PROXY
    proxy_ca: str | None = None  # the CA the proxy's certificate for the gateway's hosts is signed by


def start_emulator(workdir: Path, *args: str, token: str | None = None, tls: bool = False,
                   intercept: bool = False) -> Started:
    """`python -m payletter_emulator serve --port 0` in `workdir` (with `--tls`, HTTPS; with
    `intercept`, `--intercept 0` too), once /_emulator/health answers."""
    from ..serving.tls import ca_path  # the server's CA, made by its first start, beside its database

    log_path, db = workdir / "emulator.log", str(workdir / "emulator.db")
    with open(log_path, "ab") as log:
        process = subprocess.Popen([sys.executable, "-m", PACKAGE, "serve", "--port", "0", "--db", db,
                                    *(["--tls"] if tls else []), *(["--intercept", "0"] if intercept else []),
                                    *args],
                                   stdout=subprocess.PIPE, stderr=log, cwd=workdir)
    line = process.stdout.readline().decode("utf-8", "replace")
    if "listening on " not in line:
        process.kill()
        process.wait()
        process.stdout.close()
        raise RuntimeError(f"the emulator did not start: {line.strip()!r}\n{log_path.read_text('utf-8', 'replace')}")
    proxy = _intercept_line(process.stdout) if intercept else None  # printed with the first, at once
    threading.Thread(target=_drain, args=(process.stdout, log_path), daemon=True).start()
    url = line.split("listening on ")[1].split()[0]
    client = EmulatorClient(url, control_token=token, verify=str(ca_path(db)) if tls else True)
    try:
        if intercept and proxy is None:
            raise RuntimeError("the emulator started with --intercept but printed no `intercept:` line")
        wait_ready(client, process)
    except RuntimeError:
        stop_emulator(process)
        raise
    return Started(process, client, log_path, proxy, str(ca_path(db)) if intercept else None)


def _intercept_line(stdout) -> str | None:
    """The proxy's URL, from the startup line `  intercept:   <url> ...`; None if the output ends first."""
    for raw in stdout:
        words = raw.decode("utf-8", "replace").split()
        if words[:1] == ["intercept:"]:
            return words[1]
    return None


def _drain(stream, log_path: Path) -> None:
    """Whatever else the server prints goes to its log (an unread pipe would fill and block it)."""
    with stream, open(log_path, "ab") as log:
        for line in stream:
            log.write(line)
            log.flush()


def wait_ready(client: EmulatorClient, process: subprocess.Popen | None = None) -> None:
    """Until /_emulator/health answers (the one poll a start makes)."""
    deadline = time.monotonic() + READY_TIMEOUT
    while True:
        try:
            client.health()
            return
        except (EmulatorError, OSError) as exc:
            if process is not None and process.poll() is not None:
                raise RuntimeError(f"the emulator exited with {process.returncode}") from exc
            if time.monotonic() > deadline:
                raise RuntimeError(f"the emulator at {client.base_url} never became healthy: {exc}") from exc
        time.sleep(0.02)


def stop_emulator(process: subprocess.Popen) -> None:
    """SIGTERM, and wait for it to finish (killed if it has not within STOP_TIMEOUT)."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@contextlib.contextmanager
def running(*serve_args: str, scenario: str | Iterable[str] = (), control_token: str | None = None,
            tls: bool = False, workdir: str | os.PathLike[str] | None = None) -> Iterator[EmulatorClient]:
    """`with running() as emulator:` an emulator on a free port for the block, then stopped.

    It is `payletter-emulator serve` in a subprocess, with `serve_args` (its options as on the
    command line, `"--strict"`), `scenario` (shipped names or files, merged in order) and
    `control_token`; `tls=True` serves HTTPS and the client trusts its CA. The block gets an
    EmulatorClient of it (`.url` for merchant code); on exit the server gets SIGTERM and is waited
    for. Its database and log live in `workdir` (kept), else in a temporary folder (removed).
    """
    names = [scenario] if isinstance(scenario, str) else list(scenario)
    flags = [*serve_args, *(arg for name in names for arg in ("--scenario", name)),
             *(["--control-token", control_token] if control_token else [])]
    with contextlib.ExitStack() as stack:
        folder = Path(workdir) if workdir is not None else \
            Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="payletter-emulator-")))
        process, client, *_ = start_emulator(folder, *flags, token=control_token, tls=tls)
        stack.callback(stop_emulator, process)
        stack.callback(client.close)
        yield client
