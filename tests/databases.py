"""Real databases for the tests: a SQLite file, or a database on a throwaway PostgreSQL server
that the test run starts itself from the system's PostgreSQL binaries (Debian's `postgresql`)."""
from __future__ import annotations

import collections
import glob
import itertools
import os
import pwd
import re
import shutil
import socket
import subprocess
import tempfile
import threading
from pathlib import Path

BACKENDS = ("sqlite", "postgresql")


def _binaries() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    initdb = found[-1] if found else shutil.which("initdb")
    if not initdb:
        raise RuntimeError("the PostgreSQL tests need the PostgreSQL server: apt-get install postgresql")
    return Path(initdb).parent


class PostgresServer:
    """initdb + pg_ctl in a temporary folder, on a free loopback port; as the `postgres` user
    when the tests run as root, since PostgreSQL refuses to run as root. `settings`: more
    `-c name=value` for the server (a library to preload). `pause` stops it as an administrator
    would (`pg_ctl stop -m fast`: every connection ended), `resume` starts it again on its port."""

    def __init__(self, *settings: str):
        self.bin = _binaries()
        self.folder = Path(tempfile.mkdtemp(prefix="payletter-pg-"))
        self.data = self.folder / "data"
        self.user = None
        if os.geteuid() == 0:
            self.user = pwd.getpwnam("postgres")
            os.chown(self.folder, self.user.pw_uid, self.user.pw_gid)
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8")
        self.options = (f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 -c fsync=off "
                        f"-c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
                        + "".join(f" -c {setting}" for setting in settings))
        self.resume()
        self._names = itertools.count(1)

    def resume(self) -> None:
        """Started (again), once it accepts connections (`pg_ctl -w`)."""
        self._run("pg_ctl", "-D", str(self.data), "-o", self.options, "-l", str(self.folder / "server.log"), "-w",
                  "start")

    def pause(self) -> None:
        """Stopped as an administrator stops it: every client's connection is ended."""
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")

    def _run(self, program: str, *args: str) -> None:
        command = [str(self.bin / program), *args]
        if self.user is not None:
            command = ["runuser", "-u", "postgres", "--", *command]
        subprocess.run(command, check=True, capture_output=True, timeout=120)

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def new_database(self) -> str:
        """A fresh, empty database; its URL."""
        import psycopg

        name = f"test_{os.getpid()}_{next(self._names)}"
        with psycopg.connect(self.url(), autocommit=True) as connection:
            connection.execute(f"CREATE DATABASE {name}")
        return self.url(name)

    def log_statements(self, url: str) -> None:
        """Every statement of the connections made to `url`'s database from now on goes to the
        server's log (`log_statement = all`, for that database alone)."""
        import psycopg

        with psycopg.connect(self.url(), autocommit=True) as connection:
            connection.execute(f"ALTER DATABASE {url.rsplit('/', 1)[1]} SET log_statement = 'all'")

    def log_size(self) -> int:
        return (self.folder / "server.log").stat().st_size

    def statements_since(self, offset: int) -> list[str]:
        """The statements logged after `offset` bytes of the server's log: each simple query
        (`statement:`) and each execution of an extended-protocol one (`execute ...:`)."""
        with open(self.folder / "server.log", "rb") as log:
            log.seek(offset)
            text = log.read().decode("utf-8", "replace")
        return [line for line in text.splitlines() if re.search(r"LOG:  (statement|execute [^:]*): ", line)]

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "stop")
        shutil.rmtree(self.folder, ignore_errors=True)


class RoundTrips:
    """A TCP proxy in front of PostgreSQL that counts, for each connection through it, the
    client's round trips: each time the client sends after the server has answered is one
    (whatever it sends before the next answer counts once)."""

    def __init__(self, port: int):
        self.target = port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.counts: collections.Counter[int] = collections.Counter()
        self._lock = threading.Lock()
        self._last_sender: dict[int, str] = {}
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        for number in range(1, 10_000):
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            server = socket.create_connection(("127.0.0.1", self.target))
            self._last_sender[number] = "server"
            for source, target, side in ((client, server, "client"), (server, client, "server")):
                threading.Thread(target=self._pump, args=(number, source, target, side), daemon=True).start()

    def _pump(self, number: int, source: socket.socket, target: socket.socket, side: str) -> None:
        try:
            while data := source.recv(65536):
                with self._lock:
                    if side == "client" and self._last_sender[number] == "server":
                        self.counts[number] += 1
                    self._last_sender[number] = side
                target.sendall(data)
        except OSError:
            pass
        finally:
            for end in (source, target):
                try:
                    end.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def snapshot(self) -> dict[int, int]:
        with self._lock:
            return dict(self.counts)

    def close(self) -> None:
        self.listener.close()
