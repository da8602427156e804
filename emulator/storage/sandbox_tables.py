"""What outlives a reset: the sandboxes of this server (kept in the root database) and the
coverage of what a run exercised."""
from __future__ import annotations


class SandboxTables:
    def insert_sandbox(self, row: dict) -> None:
        self._run("INSERT INTO sandboxes (id, payment_key, search_key, created_at, last_used, idle_seconds) "
                  "VALUES (?, ?, ?, ?, ?, ?)", (row["id"], row["payment_key"], row["search_key"],
                                               row["created_at"], row["last_used"], row["idle_seconds"]))

    def sandbox(self, sandbox_id: str) -> dict | None:
        row = self._one("SELECT * FROM sandboxes WHERE id = ?", (sandbox_id,))
        return dict(row) if row else None

    def sandbox_with_key(self, key: str) -> dict | None:
        row = self._one("SELECT * FROM sandboxes WHERE payment_key = ? OR search_key = ?", (key, key))
        return dict(row) if row else None

    def sandboxes(self) -> list[dict]:
        return [dict(r) for r in self._all("SELECT * FROM sandboxes ORDER BY created_at")]

    def touch_sandbox(self, sandbox_id: str, now: float) -> None:
        self._run("UPDATE sandboxes SET last_used = ? WHERE id = ?", (now, sandbox_id))

    def delete_sandbox(self, sandbox_id: str) -> bool:
        return self._run("DELETE FROM sandboxes WHERE id = ?", (sandbox_id,)).rowcount == 1

    def idle_sandboxes(self, now: float) -> list[str]:
        return [r["id"] for r in self._all("SELECT id FROM sandboxes WHERE last_used + idle_seconds < ?", (now,))]

    def count(self, kind: str, name: str, times: int = 1) -> None:
        """Added to this connection's shard of the count (storage/schema.py), so that requests of
        several processes do not wait for one another's COMMIT on one row."""
        with self.atomic():
            self._db.execute("INSERT INTO coverage (kind, name, shard, count) VALUES (?, ?, ?, ?) "
                             "ON CONFLICT (kind, name, shard) DO UPDATE SET count = coverage.count + excluded.count",
                             (kind, name, self._db.shard, times))

    def coverage(self) -> dict[str, dict[str, int]]:
        self.settle_journal()  # coverage of API requests is counted as their entries are written
        found: dict[str, dict[str, int]] = {}
        for row in self._all("SELECT kind, name, CAST(sum(count) AS BIGINT) AS count FROM coverage "
                             "GROUP BY kind, name ORDER BY kind, name"):
            found.setdefault(row["kind"], {})[row["name"]] = row["count"]
        return found

    def clear_coverage(self) -> None:
        self.settle_journal()
        self._run("DELETE FROM coverage")
