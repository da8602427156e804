"""Sandboxes: isolated emulators inside one server, each with its own client and keys, state,
clock, scenario and callbacks, so that parallel test runs can share a server without seeing
each other. The registry lives in the root database, so every worker process knows them."""
from __future__ import annotations

import os
import secrets
import threading
import time
from dataclasses import replace
from pathlib import Path

from .config import Client, GlobalStore
from .domain.global_rules import sandbox_store_key
from .instance import Emulator, build
from .storage.backends import POSTGRES_SCHEMES, SQLITE_FILES

IDLE_SECONDS = 3600.0  # a sandbox nobody used for an hour is deleted
TOUCH_EVERY = 10.0  # seconds between two writes of a sandbox's last use, per process
SWEEP_EVERY = 30.0


class Sandboxes:
    def __init__(self, root: Emulator, base_settings, wall=time.time):
        self.root = root
        self.base = base_settings  # the server's own settings, before any scenario
        self._wall = wall
        self._open: dict[str, Emulator] = {}
        self._touched: dict[str, float] = {}
        self._lock = threading.RLock()
        self._pid = None

    # --- life ---
    def create(self, scenario: dict | None = None, idle_seconds: float | None = None) -> dict:
        with self._lock:
            sandbox_id = self._new_id()
            client = Client(sandbox_id, secrets.token_urlsafe(24), secrets.token_urlsafe(24))
            instance = self._build(sandbox_id, client, scenario)
            now = self._wall()
            row = {"id": sandbox_id, "payment_key": client.payment_key, "search_key": client.search_key,
                   "created_at": now, "last_used": now, "idle_seconds": idle_seconds or IDLE_SECONDS}
            self.root.storage.insert_sandbox(row)
            self._open[sandbox_id] = instance
            return self.sandbox_view(row)

    def get(self, sandbox_id: str) -> Emulator | None:
        """The sandbox's emulator, opened in this process on first use; None once deleted."""
        with self._lock:
            row = self.root.storage.sandbox(sandbox_id)
            if row is None:
                self._forget(sandbox_id)
                return None
            return self._opened(row)

    def with_key(self, key: str) -> Emulator | None:
        with self._lock:
            row = self.root.storage.sandbox_with_key(key)
            return self._opened(row) if row else None

    def delete(self, sandbox_id: str) -> bool:
        """Gone for every process; what it exercised stays in the root's coverage."""
        with self._lock:
            instance = self.get(sandbox_id)
            if instance is None or not self.root.storage.delete_sandbox(sandbox_id):
                return False
            for kind, names in instance.storage.coverage().items():
                for name, count in names.items():
                    self.root.storage.count(kind, name, count)
            self._forget(sandbox_id)
            self._drop_data(sandbox_id)
            return True

    def list(self) -> list[dict]:
        return [self.sandbox_view(row) for row in self.root.storage.sandboxes()]

    def open_instances(self) -> list[Emulator]:
        with self._lock:
            return [self._opened(row) for row in self.root.storage.sandboxes()]

    def sweep(self) -> list[str]:
        """Delete the sandboxes idle for longer than their idle time."""
        return [sandbox_id for sandbox_id in self.root.storage.idle_sandboxes(self._wall())
                if self.delete(sandbox_id)]

    def start(self) -> None:
        """The sweeper of this process (again, in a forked worker)."""
        if self._pid == os.getpid():
            return
        self._pid = os.getpid()
        threading.Thread(target=self._sweep_forever, name="sandbox-sweeper", daemon=True).start()

    def _sweep_forever(self) -> None:
        while True:
            time.sleep(SWEEP_EVERY)
            try:
                self.sweep()
            except Exception:  # the sweeper must outlive a failed round
                pass

    @staticmethod
    def sandbox_view(row: dict) -> dict:
        return {"id": row["id"], "client_id": row["id"], "payment_key": row["payment_key"],
                "search_key": row["search_key"], "path": f"/_sandbox/{row['id']}",
                "idle_seconds": row["idle_seconds"],
                # Its Payletter Global store: the sandbox's id, a key made from its own secret.
                "global_store_id": row["id"], "global_key": sandbox_store_key(row["payment_key"])}

    # --- where a sandbox's data lives ---
    def _new_id(self) -> str:
        while True:
            sandbox_id = "sb" + secrets.token_hex(4)  # client_id holds 10 characters at most
            if self.root.storage.sandbox(sandbox_id) is None:
                return sandbox_id

    def _opened(self, row: dict) -> Emulator:
        """The emulator of a sandbox's stored row, opened in this process on first use (the
        caller holds the lock)."""
        sandbox_id = row["id"]
        instance = self._open.get(sandbox_id)
        if instance is None:
            client = Client(sandbox_id, row["payment_key"], row["search_key"])
            instance = self._open[sandbox_id] = self._build(sandbox_id, client, None)
        self._touch(sandbox_id)
        return instance

    def _location(self, sandbox_id: str) -> tuple[str, str | None]:
        """Where a sandbox's data lives: (database, PostgreSQL schema). A schema of the root's
        PostgreSQL database; a file in `<db>.sandboxes/` beside the root's SQLite file; memory."""
        db = self.base.db
        if db.startswith(POSTGRES_SCHEMES):
            return db, sandbox_id
        if db == ":memory:":
            return db, None
        return f"{db}.sandboxes/{sandbox_id}.db", None

    def _build(self, sandbox_id: str, client: Client, scenario: dict | None) -> Emulator:
        db, schema = self._location(sandbox_id)
        if schema is None and db != ":memory:":
            Path(db).parent.mkdir(exist_ok=True)
        settings = replace(self.base, db=db, clients=(client,), scenario=(),
                           global_stores=(GlobalStore(sandbox_id, sandbox_store_key(client.payment_key)),))
        return build(settings, sandbox=sandbox_id, schema=schema, scenario=scenario)

    def _touch(self, sandbox_id: str) -> None:
        now = self._wall()
        if now - self._touched.get(sandbox_id, 0.0) >= TOUCH_EVERY:
            self._touched[sandbox_id] = now
            self.root.storage.touch_sandbox(sandbox_id, now)

    def _forget(self, sandbox_id: str) -> None:
        instance = self._open.pop(sandbox_id, None)
        self._touched.pop(sandbox_id, None)
        if instance is not None:
            instance.close()

    def _drop_data(self, sandbox_id: str) -> None:
        db, schema = self._location(sandbox_id)
        if schema is not None:
            self.root.storage.drop_schema(schema)
        elif db != ":memory:":
            for suffix in SQLITE_FILES:
                Path(f"{db}{suffix}").unlink(missing_ok=True)
