"""What `serve` does before the first request and after the last: empty the database for
`--fresh`, open it once (or refuse, in one line, a database it cannot use), the lines that tell a
newcomer where everything is (the dashboard, the keys, the API description, the data), and the
SQLite files made whole at a clean stop."""
from __future__ import annotations

import shutil
from datetime import datetime
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from .config import PAY_TEST, SETTINGS, Settings
from .domain.clock import KST, ClockState, iso
from .domain.endpoints import GATEWAY_HOSTS
from .storage import Storage
from .storage.backends import POSTGRES_SCHEMES, SQLITE_FILES, DriverMissing, checkpoint


class Refusal(Exception):
    """What stops `serve` before it serves: one line saying what is wrong and what to do."""


# --fresh deletes a SQLite database's files (SQLITE_FILES) and its sandboxes' files
# (emulator/sandboxes.py); the TLS CA beside it is kept, so a client's trust stays.


def empty_database(db: str) -> list[Path]:
    """`--fresh`: delete what a SQLite file held (with its sandboxes), so the server starts empty;
    the files deleted. `:memory:` is always fresh; a PostgreSQL database is not dropped from here."""
    if db == ":memory:":
        return []
    if db.startswith(POSTGRES_SCHEMES):
        raise ValueError("--fresh empties a SQLite file; for PostgreSQL, drop and create the database, "
                         "or use --db :memory: for a throwaway run")
    deleted = []
    for suffix in SQLITE_FILES:
        path = Path(f"{db}{suffix}").expanduser()
        if path.is_file():
            path.unlink()
            deleted.append(path)
    sandboxes = Path(f"{db}.sandboxes").expanduser()
    if sandboxes.is_dir():
        shutil.rmtree(sandboxes)
        deleted.append(sandboxes)
    return deleted


def where_data_lives(db: str) -> str:
    if db == ":memory:":
        return "in memory (gone when the server stops)"
    if db.startswith(POSTGRES_SCHEMES):
        return f"{hide_password(db)} (kept between runs)"
    return f"{Path(db).expanduser().resolve()} (kept between runs; --fresh starts empty)"


def hide_password(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def lines(settings: Settings, base_url: str, *, workers: int | None = None, ca_file=None,
          clock: ClockState | None = None, intercept: tuple[str, Path] | None = None) -> list[str]:
    """The startup lines; the first says where the server listens (tools read its URL from it),
    the second, over HTTPS with the emulator's CA, the CA's file (tools read it too). `intercept`:
    the `--intercept` proxy's URL and the CA its certificate is signed by, said on the `intercept:`
    line (tools read the URL from it)."""
    extra = f", {workers} workers" if workers else ""
    shown = [f"payletter-emulator listening on {base_url} (db: {hide_password(settings.db)}{extra})"]
    if ca_file:
        shown.append(f"CA certificate: {ca_file}")
    if not settings.control:
        shown.append("  dashboard:   off (--no-control)")
    elif settings.control_token is not None:
        shown.append(f"  dashboard:   {base_url}/_emulator/?token=<the control token>")
    else:
        shown.append(f"  dashboard:   {base_url}/_emulator/")
    shown.append(f"  API spec:    {base_url}/openapi.json")
    if intercept is not None:
        proxy, proxy_ca = intercept
        shown.append(f"  intercept:   {proxy} (HTTPS_PROXY) answers as {', '.join(GATEWAY_HOSTS)}; "
                     f"trust the CA certificate {proxy_ca}")
    shown.append(f"  data:        {where_data_lives(settings.db)}")
    if clock is not None and (clock.frozen_at is not None or clock.offset):
        shown.append(f"  clock:       {_clock_left(clock)}, as an earlier run left it; "
                     f"`payletter-emulator clock real` returns to real time")
    shown.append(f"  test client: {PAY_TEST.client_id} (built in, the reference's test keys)")
    shown.append(f"    PAYMENT key {PAY_TEST.payment_key}")
    shown.append(f"    SEARCH key  {PAY_TEST.search_key}")
    others = [client.client_id for client in settings.clients if client != PAY_TEST]
    if others:
        shown.append(f"  other clients: {', '.join(others)} (from {SETTINGS['clients'].variable})")
    return shown


def _clock_left(clock: ClockState) -> str:
    if clock.frozen_at is not None:
        return f"frozen at {iso(datetime.fromtimestamp(clock.frozen_at, KST))}"
    return f"{abs(clock.offset):,.0f} s {'ahead of' if clock.offset > 0 else 'behind'} real time"


def open_database(db: str) -> ClockState | None:
    """Open the database once, before any process serves: its tables are made (and a SQLite file
    is put in WAL mode) here, so that workers starting together never race on a fresh file, and a
    database that cannot be used is refused once, in one line, instead of by every worker. The
    clock an earlier run left in it, if any."""
    if db == ":memory:":  # each process's own, made when it starts
        return None
    try:
        storage = Storage(db)
    except Exception as error:  # whatever the driver raised, the user reads one line and acts on it
        raise refusal(db, error) from None
    try:
        return storage.shared_state()[0]
    finally:
        storage.close()


# What to do about a SQLite file the emulator cannot use, by SQLite's name for what went wrong.
_SQLITE_ADVICE = {
    "SQLITE_CANTOPEN": "check that its folder exists and is writable, or choose another --db",
    "SQLITE_NOTADB": "it is not a SQLite database: choose another --db, or add --fresh to delete it and start empty",
    "SQLITE_READONLY": "make it and its folder writable, or choose another --db",
    "SQLITE_BUSY": "another program holds it: stop that program, or choose another --db",
}


def refusal(db: str, error: BaseException) -> Refusal:
    """`error`, raised opening `db`, as one line: what is wrong and what to do."""
    if isinstance(error, (Refusal, DriverMissing)):  # their message already says what to do
        return Refusal(str(error))
    said = next((line.strip() for line in str(error).splitlines() if line.strip()), type(error).__name__)
    if db.startswith(POSTGRES_SCHEMES):
        return Refusal(f"cannot use the database {hide_password(db)}: {said}; check that PostgreSQL runs "
                       f"there and lets this user in, or choose another --db")
    if Path(db).expanduser().is_dir():
        return Refusal(f"cannot use the database {Path(db).expanduser()}: it is a folder; give --db a file's path")
    advice = _SQLITE_ADVICE.get(getattr(error, "sqlite_errorname", None) or "",
                                "check that its folder exists and is writable, or choose another --db")
    return Refusal(f"cannot use the database {Path(db).expanduser()}: {said}; {advice}")


def make_whole(db: str) -> None:
    """At a clean stop, once every process has answered its last request: each SQLite file (the
    database, its sandboxes' files) holds every commit by itself, with nothing left in its `-wal`."""
    if db == ":memory:" or db.startswith(POSTGRES_SCHEMES):
        return
    root = Path(db).expanduser()
    for path in [root, *sorted(Path(f"{root}.sandboxes").glob("*.db"))]:
        if path.is_file():
            checkpoint(str(path))
