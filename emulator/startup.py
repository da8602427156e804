"""What `serve` does before the first request: empty the database for `--fresh`, and the lines
that tell a newcomer where everything is (the dashboard, the keys, the API description, the data)."""
from __future__ import annotations

import shutil
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from .config import PAY_TEST, SETTINGS, Settings
from .storage.backends import POSTGRES_SCHEMES, SQLITE_FILES

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


def lines(settings: Settings, base_url: str, *, workers: int | None = None, ca_file=None) -> list[str]:
    """The startup lines; the first says where the server listens (tools read its URL from it),
    the second, over HTTPS with the emulator's CA, the CA's file (tools read it too)."""
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
    shown.append(f"  data:        {where_data_lives(settings.db)}")
    shown.append(f"  test client: {PAY_TEST.client_id} (built in, the reference's test keys)")
    shown.append(f"    PAYMENT key {PAY_TEST.payment_key}")
    shown.append(f"    SEARCH key  {PAY_TEST.search_key}")
    others = [client.client_id for client in settings.clients if client != PAY_TEST]
    if others:
        shown.append(f"  other clients: {', '.join(others)} (from {SETTINGS['clients'].variable})")
    return shown
