"""`serve` refuses what it cannot serve with, before its startup lines: one line on stderr saying
what is wrong and what to do, exit status 1, no traceback, no worker restarted in a loop. A fresh
file is made by `serve` before its workers start, and the startup lines appear once every process
accepts connections."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import threading
from pathlib import Path

import pytest
import requests

from .conftest import piped_serve, run_cli, serving_processes



def serve(*args: str, env: dict | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return run_cli("serve", "--port", "0", *args, env={**os.environ, **(env or {})}, cwd=cwd)


def refused_with(done: subprocess.CompletedProcess, *said: str) -> str:
    """The one line `serve` refused with, once the refusal's shape is checked."""
    assert done.returncode == 1, (done.returncode, done.stderr)
    assert done.stdout == ""  # no startup line: nothing was served
    [line] = done.stderr.splitlines()
    assert line.startswith("Error: ") and "Traceback" not in done.stderr
    for part in said:
        assert part in line, line
    return line


def free_port() -> int:
    """A loopback port nothing listens on (bound, then let go)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.parametrize("workers", [(), ("--workers", "1"), ("--workers", "2")],
                         ids=["default", "one process", "two workers"])
def test_a_database_in_a_folder_that_does_not_exist_is_refused_in_one_line(tmp_path, workers):
    db = tmp_path / "missing" / "e.db"
    refused_with(serve("--db", str(db), *workers),
                 f"cannot use the database {db}: unable to open database file",
                 "check that its folder exists and is writable, or choose another --db")


@pytest.mark.parametrize("workers", [("--workers", "1"), ("--workers", "2")], ids=["one process", "two workers"])
def test_a_file_that_is_not_a_database_is_refused_in_one_line(tmp_path, workers):
    garbage = tmp_path / "notes.db"
    garbage.write_text("these are my notes, not a database\n" * 200)
    refused_with(serve("--db", str(garbage), *workers), "file is not a database",
                 "choose another --db, or add --fresh to delete it and start empty")
    assert garbage.read_text().startswith("these are my notes")  # left as it was


@pytest.mark.parametrize("workers", [(), ("--workers", "2")], ids=["default", "two workers"])
def test_a_database_where_no_file_may_be_made_is_refused_in_one_line(workers):
    """A folder nobody may write in, root included (the tests may run as root, whom file modes do
    not stop): /proc."""
    refused_with(serve("--db", "/proc/payletter-emulator.db", *workers),
                 "cannot use the database /proc/payletter-emulator.db: unable to open database file",
                 "check that its folder exists and is writable, or choose another --db")


def test_a_folder_given_as_the_database_is_refused_in_one_line(tmp_path):
    refused_with(serve("--db", str(tmp_path), "--workers", "2"), f"{tmp_path}: it is a folder")


def test_postgresql_without_psycopg_says_what_to_install(tmp_path):
    missing = tmp_path / "no-psycopg"
    missing.mkdir()
    (missing / "psycopg.py").write_text('raise ImportError("No module named \'psycopg\'")\n')  # as if not installed
    refused_with(serve("--db", "postgresql://emulator:pw@127.0.0.1:5432/payletter", "--workers", "2",
                       env={"PYTHONPATH": str(missing)}),
                 "a postgresql:// database needs psycopg, which is not installed: "
                 "pip install 'payletter-emulator[postgres]'")


@pytest.mark.parametrize("workers", [("--workers", "1"), ("--workers", "2")], ids=["one process", "two workers"])
def test_an_unreachable_postgresql_is_refused_in_one_line(workers):
    port = free_port()
    line = refused_with(serve("--db", f"postgresql://emulator:s3cret@127.0.0.1:{port}/payletter", *workers),
                        f"cannot use the database postgresql://emulator:***@127.0.0.1:{port}/payletter",
                        "check that PostgreSQL runs there and lets this user in, or choose another --db")
    assert "s3cret" not in line


def test_a_port_in_use_is_refused_in_one_line(tmp_path):
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        line = refused_with(serve("--db", str(tmp_path / "e.db"), "--port", str(port)),
                            f"cannot listen on 127.0.0.1:{port}", "choose another --port")
    assert "Errno" not in line


# A worker process that cannot open the database, though `serve` could a moment before (the file
# removed in between, say): sqlite3.connect fails in every process forked once `FAIL_AFTER_FORK`
# exists. Loaded through PYTHONPATH by every process `serve` starts.
FAULT = '''
import os, sqlite3

def _refused(*args, **kwargs):
    raise sqlite3.OperationalError("unable to open database file")

def _after_fork():
    if os.path.exists(os.environ["FAIL_AFTER_FORK"]):
        sqlite3.connect = _refused

os.register_at_fork(after_in_child=_after_fork)
'''


def faulty_environment(tmp_path: Path, code: str) -> dict:
    folder = tmp_path / "fault"
    folder.mkdir()
    (folder / "sitecustomize.py").write_text(code)
    return {"PYTHONPATH": str(folder), "FAIL_AFTER_FORK": str(tmp_path / "fail-after-fork")}


def test_a_worker_that_cannot_start_stops_serve_with_its_line(tmp_path):
    env = faulty_environment(tmp_path, FAULT)
    Path(env["FAIL_AFTER_FORK"]).touch()
    db = tmp_path / "e.db"
    line = refused_with(serve("--db", str(db), "--workers", "2", env=env),
                        f"cannot use the database {db}: unable to open database file")
    assert line.count("cannot use the database") == 1


def test_a_replacement_that_cannot_start_stops_serve_instead_of_restarting_forever(tmp_path):
    env = faulty_environment(tmp_path, FAULT)
    db = tmp_path / "e.db"
    with piped_serve("--db", str(db), "--workers", "2", env=env) as process:
        assert "listening on" in process.stdout.readline()
        first, second = serving_processes(process.pid)
        Path(env["FAIL_AFTER_FORK"]).touch()  # from now on a new worker cannot open the database
        os.kill(first, signal.SIGKILL)  # a worker crashes; its replacement cannot start
        assert process.wait(60) == 1
        errors = process.stderr.read()
    assert errors.count(f"(pid:{first}) was sent SIGKILL") == 1  # gunicorn's words: it replaced the worker, once
    assert errors.splitlines()[-1].startswith(f"Error: cannot use the database {db}: unable to open database file")
    assert "Traceback" not in errors
    assert not Path(f"/proc/{second}").exists()  # the worker still serving was stopped, and waited for


# The race a fresh file saw: two workers switching it to WAL at once, one refused with "database
# is locked". Here every worker's switch is refused so, as it was then.
LOCKED_SWITCH = '''
import os, sqlite3

_connect = sqlite3.connect

class _Refusing(sqlite3.Connection):
    def execute(self, sql, *args):
        if sql.replace(" ", "").upper() == "PRAGMAJOURNAL_MODE=WAL":
            raise sqlite3.OperationalError("database is locked")
        return super().execute(sql, *args)

def _after_fork():
    sqlite3.connect = lambda *args, **kwargs: _connect(*args, factory=_Refusing, **kwargs)

os.register_at_fork(after_in_child=_after_fork)
'''


def test_a_fresh_file_is_made_before_the_workers_start(tmp_path):
    env = faulty_environment(tmp_path, LOCKED_SWITCH)
    db = tmp_path / "fresh.db"
    with piped_serve("--db", str(db), "--workers", "2", env=env) as process:
        url = process.stdout.readline().split("listening on ")[1].split()[0]
        assert len(serving_processes(process.pid)) == 2
        assert requests.get(url + "/_emulator/health", timeout=30).status_code == 200
        process.send_signal(signal.SIGTERM)
        assert process.wait(60) == 0
        errors = process.stderr.read()
    assert "ended" not in errors and "Error" not in errors, errors  # no worker failed, none was replaced


# Workers slow to start: each, once forked, takes a second before it opens the database, then
# writes its pid down.
SLOW_START = '''
import os, sqlite3, time

_connect = sqlite3.connect

def _slow_first_connect(*args, **kwargs):
    sqlite3.connect = _connect
    time.sleep(1)
    with open(os.environ["OPENED"], "a") as opened:
        opened.write(f"{os.getpid()}\\n")
    return _connect(*args, **kwargs)

def _after_fork():
    sqlite3.connect = _slow_first_connect

os.register_at_fork(after_in_child=_after_fork)
'''


def test_every_process_answers_once_the_startup_lines_appear(tmp_path):
    env = faulty_environment(tmp_path, SLOW_START)
    opened = tmp_path / "opened"
    with piped_serve("--db", str(tmp_path / "e.db"), "--workers", "2", env={**env, "OPENED": str(opened)},
                     stderr=subprocess.DEVNULL) as process:
        url = process.stdout.readline().split("listening on ")[1].split()[0]
        assert sorted(map(int, opened.read_text().split())) == sorted(serving_processes(process.pid))
        start = threading.Barrier(48)
        answers, failures = [], []

        def dashboard() -> None:
            start.wait()
            try:  # each on a connection of its own, all at once, right after the line
                answers.append(requests.get(url + "/_emulator/", timeout=60).status_code)
            except requests.ConnectionError as error:
                failures.append(error)

        threads = [threading.Thread(target=dashboard) for _ in range(48)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert failures == [] and answers == [200] * 48
        process.terminate()
        process.wait(60)
