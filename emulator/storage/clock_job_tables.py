"""The state every process reads before a request: the clock, the scenario in force with its
rules' counts, and its timed jobs; and the shared generation that tells a process to read them
again."""
from __future__ import annotations

import json

from ..domain.clock import ClockState


class ClockAndJobTables:
    def shared_generation(self) -> int | tuple[int, int] | None:
        """Changes whenever the shared state below does (None: unknown, read it): SQLite's page of
        memory (storage/board.py), or what PostgreSQL tells this process with what this host's
        processes say on their page (storage/pg_news.py)."""
        if self._board is not None:
            return self._board.generation()
        return None if self._db.news is None else self._db.news.generation()

    def hears_every_change(self) -> bool:
        """Whether every change of the clock, the scenario, the timed jobs and the callbacks, by any
        process, is told to this one as it commits (PostgreSQL, while this process listens):
        then nothing needs reading again in case it was missed, and nothing needs polling."""
        return self._db.news is not None and self._db.news.hearing()

    def on_news(self, handler) -> None:
        """`handler(table)` is called when another process (or this one) has changed `table` (one
        of storage/pg_news.py's TOLD_TABLES; None: anything may have changed), on the thread that
        hears it; where nothing is heard (SQLite), never."""
        if self._db.news is not None:
            self._db.news.on_news(handler)

    def _shared_state_changed(self) -> None:
        if self._board is not None:
            self.after_commit(self._board.bump_generation)
        elif self._db.news is not None:  # other processes hear it from PostgreSQL; this one at once
            self.after_commit(self._db.news.changed_here)

    def shared_state(self) -> tuple[ClockState | None, int, int, int | None]:
        """In one read: the clock and its version, the scenario's version, and when the next
        timed job is due (what every request brings up to date before it is handled)."""
        row = self._one('SELECT (SELECT "offset" FROM clock WHERE id = 1) AS clock_offset, '
                        '(SELECT frozen_at FROM clock WHERE id = 1) AS frozen_at, '
                        '(SELECT version FROM clock WHERE id = 1) AS clock_version, '
                        '(SELECT version FROM scenario WHERE id = 1) AS version, '
                        '(SELECT min(due_at) FROM jobs WHERE done = 0) AS next_job')
        clock = None if row["clock_offset"] is None else ClockState(row["clock_offset"], row["frozen_at"])
        return clock, row["clock_version"] or 0, row["version"] or 0, row["next_job"]

    def save_clock_state(self, state: ClockState) -> int:
        """Store the clock for every process; its version (counted across resets too)."""
        with self.atomic():
            version = self.next_value("clock")
            self._shared_state_changed()
            self._db.execute('INSERT INTO clock (id, "offset", frozen_at, version) VALUES (1, ?, ?, ?) '
                             'ON CONFLICT (id) DO UPDATE SET "offset" = excluded."offset", '
                             'frozen_at = excluded.frozen_at, version = excluded.version',
                             (state.offset, state.frozen_at, version))
            return version

    def scenario_document(self) -> dict | None:
        row = self._one("SELECT document FROM scenario WHERE id = 1")
        return json.loads(row["document"]) if row and row["document"] else None

    def save_scenario(self, document: dict | None) -> int:
        """Install a scenario for every process: a new version, every rule's count at zero."""
        with self.atomic():
            row = self._db.execute(
                "INSERT INTO scenario (id, document, version) VALUES (1, ?, 1) ON CONFLICT (id) DO UPDATE "
                "SET document = excluded.document, version = scenario.version + 1 RETURNING version",
                (json.dumps(document, ensure_ascii=False) if document else None,)).fetchone()
            self._db.execute("DELETE FROM rule_hits")
            self._shared_state_changed()
            return row[0]

    def take_rule_hit(self, rule: str, limit: int | None) -> bool:
        """Count one application of `rule`, unless it has had `limit` already."""
        with self.atomic():
            self._db.execute("INSERT INTO rule_hits (rule, hits) VALUES (?, 0) ON CONFLICT (rule) DO NOTHING", (rule,))
            cur = self._db.execute("UPDATE rule_hits SET hits = hits + 1 WHERE rule = ? "
                                   "AND (CAST(? AS INTEGER) IS NULL OR hits < ?)",
                                   (rule, limit, limit))
            if cur.rowcount == 1:
                self.count("rule", rule)
            return cur.rowcount == 1

    def rule_hits(self) -> dict[str, int]:
        return {r["rule"]: r["hits"] for r in self._all("SELECT rule, hits FROM rule_hits")}

    def add_job(self, due_at: int, kind: str, params: dict, origin: str) -> int:
        with self.atomic():
            self._shared_state_changed()
            return self._db.execute("INSERT INTO jobs (due_at, kind, params, origin) VALUES (?, ?, ?, ?) RETURNING id",
                                    (due_at, kind, json.dumps(params, ensure_ascii=False), origin)).fetchone()[0]

    def take_due_job(self, now: int) -> dict | None:
        """The earliest job due at `now`, taken by this caller alone: its row stays locked until
        the transaction that runs it ends, and another host that finds it locked waits, then sees
        it done (and its effect)."""
        with self.atomic():
            row = self._db.execute("SELECT * FROM jobs WHERE done = 0 AND due_at <= ? ORDER BY due_at, id LIMIT 1"
                                   + self._db.for_update, (now,)).fetchone()
            if row is None:
                return None
            self._db.execute("UPDATE jobs SET done = 1 WHERE id = ?", (row["id"],))
            self._shared_state_changed()
            return {**dict(row), "params": json.loads(row["params"])}

    def drop_pending_jobs(self) -> None:
        with self.atomic():
            self._db.execute("DELETE FROM jobs WHERE done = 0")
            self._shared_state_changed()

    def finish_job(self, job_id: int, result: str) -> None:
        self._run("UPDATE jobs SET result = ? WHERE id = ?", (result, job_id))

    def jobs(self) -> list[dict]:
        return [{**dict(r), "params": json.loads(r["params"]), "done": bool(r["done"])}
                for r in self._all("SELECT * FROM jobs ORDER BY due_at, id")]

    def jobs_due(self, now: int) -> int:
        return self._one("SELECT count(*) FROM jobs WHERE done = 0 AND due_at <= ?", (now,))[0]
