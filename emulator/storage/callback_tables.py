"""The callback outbox and its attempts: queued with a payment, claimed by one sender at a time
(in any process), recorded attempt by attempt, bounded to the last `callback_limit`."""
from __future__ import annotations

import json
import uuid

from .connection import _json, _where
from .schema import PENDING_CALLBACKS

CALLBACK_PRUNE_EVERY = 100  # callbacks a storage queues between two prunings of the finished ones

# Each look below is a min() or max() over an index, never EXISTS or LIMIT 1: PostgreSQL plans a
# min() as the index's first entry whatever its statistics say, where an EXISTS may be planned as a
# scan expected to stop at its first match, which (nothing due) reads every pending callback.
# The first callback due at emulator time ? that no live claim (at wall time ?) holds: NULL, none.
_FIRST_DUE = ("SELECT min(next_attempt_at) FROM callbacks WHERE status = 'pending' AND next_attempt_at <= ? "
              "AND (claim_expires IS NULL OR claim_expires < ?)")
UNKNOWN = ("outcome unknown: the process making this attempt stopped answering before it recorded the merchant's "
           "answer; the request may have reached the merchant")


class CallbackTables:
    def enqueue_callback(self, tid: str, url: str, body: dict, created_at: str, due: int | None,
                         warnings: list[str], fault: dict | None = None, status: str = "pending",
                         gateway: str = "domestic") -> int:
        """`due` None holds the callback until `release_held`. `gateway`: whose notification it is
        (domestic, or Payletter Global's), which says how it is sent and acknowledged. Its id (on
        PostgreSQL, read within the transaction: a round trip of its own)."""
        return self._insert_callback(tid, url, body, created_at, due, warnings, fault, status, gateway=gateway)()[0]

    def enqueue_claimed_callback(self, tid: str, url: str, body: dict, created_at: str, due: int,
                                 warnings: list[str], fault: dict, claim_expires: float, gateway: str = "domestic") -> dict:
        """A callback due at once, queued with a claim for its first attempt (good until wall time
        `claim_expires`): the callback as a claim gives it, its "id" there once the transaction
        has committed (before the hooks of `after_commit` given after this), so that on PostgreSQL
        nothing of it is read back before the COMMIT it travels with."""
        claim = uuid.uuid4().hex
        fault = fault or {}
        read_id = self._insert_callback(tid, url, body, created_at, due, warnings, fault, "pending", claim,
                                        claim_expires, gateway)
        claimed = {"id": None, "tid": tid, "url": url, "body": body, "status": "pending", "attempts_made": 0,
                   "next_attempt_at": due, "created_at": created_at, "warnings": list(warnings), "fault": fault,
                   "claimed_by": claim, "claim_expires": claim_expires, "gateway": gateway, "attempts": [],
                   "claim": claim}
        self.after_commit(lambda: claimed.update(id=read_id()[0]))
        return claimed

    def _insert_callback(self, tid: str, url: str, body: dict, created_at: str, due: int | None,
                         warnings: list[str], fault: dict | None, status: str, claim: str | None = None,
                         claim_expires: float | None = None, gateway: str = "domestic"):
        """The callback inserted (and counted if pending); a function that gives its row `(id,)`,
        read only when it is called (backends' `row_when_read`)."""
        with self.atomic():
            read_id = self._db.row_when_read(self._db.execute(
                "INSERT INTO callbacks (tid, url, body, status, attempts, next_attempt_at, created_at, "
                "warnings, fault, claimed_by, claim_expires, gateway) VALUES (?, ?, ?, ?, 0, ?, ?, ?, ?, ?, ?, ?) "
                "RETURNING id",
                (tid, url, _json(body), status, due, created_at, _json(warnings), _json(fault or {}),
                 claim, claim_expires, gateway)))
            if status == "pending":
                self._count_pending(+1)
            # Bounded every CALLBACK_PRUNE_EVERY callbacks this storage queues, by a statement that
            # reads nothing back.
            self._since_callback_prune += 1
            if self._since_callback_prune >= CALLBACK_PRUNE_EVERY:
                self._since_callback_prune = 0
                self._prune_callbacks()
            return read_id

    def _count_pending(self, change: int) -> None:
        self._db.execute("UPDATE counters SET value = value + ? WHERE name = ?", (change, PENDING_CALLBACKS))

    def _prune_callbacks(self) -> None:
        """Bounded like the journal: finished notifications older than the last `callback_limit`
        go, with their attempts; pending ones stay, however old."""
        last_kept = "(SELECT max(id) FROM callbacks) - ?"
        self._db.execute("DELETE FROM callback_attempts WHERE callback_id IN "
                         f"(SELECT id FROM callbacks WHERE id <= {last_kept} AND status <> 'pending')",
                         (self.callback_limit,))
        self._db.execute(f"DELETE FROM callbacks WHERE id <= {last_kept} AND status <> 'pending'",
                         (self.callback_limit,))

    def release_held(self, before_id: int, due: int) -> None:
        """Held callbacks queued before `before_id` fall due: they arrive after it."""
        self._run("UPDATE callbacks SET next_attempt_at = ? WHERE status = 'pending' AND next_attempt_at IS NULL "
                  "AND id < ?", (due, before_id))

    def callback(self, callback_id: int) -> dict | None:
        row = self._one("SELECT * FROM callbacks WHERE id = ?", (callback_id,))
        return _callback(row, self._attempts([callback_id])) if row else None

    def callbacks(self, *, tid: str | None = None, status: str | None = None, limit: int | None = None,
                  after: int | None = None, gateway: str | None = None) -> list[dict]:
        """Oldest first, from the first id after `after` (a page's cursor); `gateway`: one gateway's only."""
        where, args = _where(tid=tid, status=status, gateway=gateway, id__after=after)
        if limit is not None:
            where, args = f"{where} ORDER BY id LIMIT ?", (*args, limit)
        else:
            where += " ORDER BY id"
        rows = self._all(f"SELECT * FROM callbacks {where}", args)
        attempts = self._attempts([r["id"] for r in rows])
        return [_callback(r, attempts) for r in rows]

    def claim_due_callbacks(self, now: float, wall: float, lease: float, limit: int) -> list[dict]:
        """Take up to `limit` pending callbacks due at emulator time `now` that no live claim
        holds. Each gets a claim of its own, good until wall time `wall + lease`: whoever
        holds it makes the next attempt, so no attempt is made twice, by any process. When
        nothing is due (most looks), a read says so without taking the writer lock."""
        if self._one(_FIRST_DUE, (now, wall))[0] is None:
            return []
        with self.atomic(exclusive=False):
            rows = self._db.execute(
                "SELECT * FROM callbacks WHERE status = 'pending' AND next_attempt_at <= ? "
                "AND (claim_expires IS NULL OR claim_expires < ?) ORDER BY next_attempt_at, id LIMIT ?"
                + self._db.skip_locked, (now, wall, limit)).fetchall()
            return [self._claim(row, wall + lease) for row in rows]

    def claim_callback(self, callback_id: int, wall: float, lease: float) -> dict | None:
        """Claim one callback whatever its status (a resend); None while another claim holds it."""
        with self.atomic(exclusive=False):
            row = self._db.execute("SELECT * FROM callbacks WHERE id = ? "
                                   "AND (claim_expires IS NULL OR claim_expires < ?)" + self._db.skip_locked,
                                   (callback_id, wall)).fetchone()
            return self._claim(row, wall + lease) if row else None

    def _claim(self, row, expires: float) -> dict:
        """The callback with its new claim; `unknown`: the kinds of the attempts its lapsed claim's
        holder had started and never finished (it stopped, or stood still), now `unknown`."""
        claim = uuid.uuid4().hex
        self._db.execute("UPDATE callbacks SET claimed_by = ?, claim_expires = ? WHERE id = ?",
                         (claim, expires, row["id"]))
        unknown = []
        if row["claimed_by"] is not None:
            unknown = [attempt[0] for attempt in self._db.execute(
                "UPDATE callback_attempts SET state = 'unknown', error = ? WHERE callback_id = ? AND state = 'sending' "
                "RETURNING kind", (UNKNOWN, row["id"])).fetchall()]
        return {**_callback(row, {}), "claim": claim, "unknown": unknown}

    def start_attempt(self, callback_id: int, claim: str, attempt: dict, wall: float, lease: float) -> dict | None:
        """The attempt is about to start: it goes on the ledger first (state "sending", numbered
        after the ones before it) and the claim is good for `lease` more seconds. None, and nothing
        recorded, if the claim no longer holds."""
        with self.atomic():
            cur = self._db.execute("UPDATE callbacks SET claim_expires = ? WHERE id = ? AND claimed_by = ?",
                                   (wall + lease, callback_id, claim))
            if cur.rowcount != 1:
                return None
            return self._insert_attempt(callback_id, {**attempt, "http_status": None, "response_body": "",
                                                      "error": "", "latency_ms": 0.0}, "sending")

    def finish_attempt(self, callback_id: int, claim: str, attempt: dict | None, status: str, attempts_made: int,
                       next_attempt_at: float | None, extra: dict | None = None,
                       release_held_at: float | None = None) -> dict | None:
        """Record an attempt's outcome (and an `extra` one made under the same claim, a
        duplicate; or none, `attempt` None) and the callback's new state, if the claim still holds;
        a delivered callback stays delivered. An attempt already on the ledger (started) gets its
        outcome whatever the claim: it left. A claim lost meanwhile (a reset, or a lapse while this
        process stood still) leaves the callback alone, but for a delivery: it is delivered. None
        then. `release_held_at`: in the same transaction, the callbacks held before this one fall
        due at that moment (`release_held`).

        The claim is checked by the UPDATE that writes the new state, not by a read before it: on
        PostgreSQL a read takes no lock, so a claim taken over between the two would be
        overwritten, and the attempt recorded by both holders."""
        with self.atomic():
            for made in (attempt, extra):
                if made is not None and "id" in made:
                    self._complete_attempt(made)
            was = self._settle(callback_id, claim, status, attempts_made, next_attempt_at)
            if was is None:
                if status == "delivered":
                    self._deliver_unclaimed(callback_id)
                return None
            was_pending, status = was
            if was_pending != (status == "pending"):
                self._count_pending(+1 if status == "pending" else -1)
            if attempt is not None and "id" not in attempt:
                attempt = self._insert_attempt(callback_id, attempt)
            if extra is not None and "id" not in extra:
                self._insert_attempt(callback_id, extra)
            if release_held_at is not None:
                self.release_held(callback_id, release_held_at)
            if attempt is not None and attempt["kind"] in ("first", "retry") and status != "pending":
                self.count("callback", {"delivered": "first_try" if attempts_made == 1 else "retried"}.get(
                    status, "exhausted"))
            return attempt

    def _settle(self, callback_id: int, claim: str, status: str, attempts_made: int,
                next_attempt_at: float | None) -> tuple[bool, str] | None:
        """The callback's new state written and its claim let go, by UPDATEs that hold only while
        `claim` does: (whether it was pending, the status it has now), or None if the claim is lost.
        A pending callback (every scheduled attempt's) takes the first statement; one a resend
        found failed the second; one already delivered stays delivered."""
        claimed = "WHERE id = ? AND claimed_by = ?"
        if self._db.execute(
                "UPDATE callbacks SET status = ?, attempts = ?, next_attempt_at = ?, claimed_by = NULL, "
                f"claim_expires = NULL {claimed} AND status = 'pending'",
                (status, attempts_made, next_attempt_at, callback_id, claim)).rowcount == 1:
            return True, status
        if self._db.execute(
                "UPDATE callbacks SET status = ?, attempts = ?, next_attempt_at = ?, claimed_by = NULL, "
                f"claim_expires = NULL {claimed} AND status <> 'delivered'",
                (status, attempts_made, next_attempt_at, callback_id, claim)).rowcount == 1:
            return False, status
        if self._db.execute(
                "UPDATE callbacks SET attempts = ?, next_attempt_at = NULL, claimed_by = NULL, claim_expires = NULL "
                f"{claimed}", (attempts_made, callback_id, claim)).rowcount == 1:
            return False, "delivered"
        return None

    def _deliver_unclaimed(self, callback_id: int) -> None:
        """An acknowledgement read under a claim since lost: the callback is delivered all the same
        (its claim, if another holds one now, is left to lapse or end)."""
        if self._db.execute("UPDATE callbacks SET status = 'delivered', next_attempt_at = NULL "
                            "WHERE id = ? AND status = 'pending'", (callback_id,)).rowcount == 1:
            self._count_pending(-1)
            return
        self._db.execute("UPDATE callbacks SET status = 'delivered', next_attempt_at = NULL "
                         "WHERE id = ? AND status = 'failed'", (callback_id,))

    def _insert_attempt(self, callback_id: int, attempt: dict, state: str = "done") -> dict:
        """The attempt, numbered after the ones before it, with its id."""
        row = self._db.execute(
            "INSERT INTO callback_attempts (callback_id, number, kind, scheduled_at, at, wall_time, "
            "http_status, response_body, error, latency_ms, state) VALUES (?, "
            "(SELECT coalesce(max(number), 0) + 1 FROM callback_attempts WHERE callback_id = ?), "
            "?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id, number",
            (callback_id, callback_id, attempt["kind"], attempt["scheduled_at"], attempt["at"],
             attempt["wall_time"], attempt["http_status"], attempt["response_body"], attempt["error"],
             attempt["latency_ms"], state)).fetchone()
        return {**attempt, "id": row[0], "number": row[1], "state": state}

    def _complete_attempt(self, attempt: dict) -> None:
        self._db.execute(
            "UPDATE callback_attempts SET http_status = ?, response_body = ?, error = ?, latency_ms = ?, "
            "state = 'done' WHERE id = ?",
            (attempt["http_status"], attempt["response_body"], attempt["error"], attempt["latency_ms"], attempt["id"]))
        attempt["state"] = "done"

    def callback_backlog(self, now: float, wall: float) -> dict:
        """Pending callbacks: how many (kept as they change), whether any is due or being sent,
        and when the next one falls due; each found by an index, whatever the number pending."""
        row = self._one(
            "SELECT (SELECT value FROM counters WHERE name = ?) AS pending, "
            "((SELECT min(next_attempt_at) FROM callbacks WHERE status = 'pending' AND next_attempt_at <= ?) IS NOT NULL "
            "OR coalesce((SELECT max(claim_expires) FROM callbacks WHERE claim_expires IS NOT NULL) >= ?, FALSE)) AS busy, "
            "(SELECT min(next_attempt_at) FROM callbacks WHERE status = 'pending' AND next_attempt_at > ?) AS next_due",
            (PENDING_CALLBACKS, now, wall, now))
        return {"pending": row["pending"] or 0, "busy": bool(row["busy"]), "next_due": row["next_due"]}

    def next_callback_due(self, now: float) -> int | None:
        """When the next pending callback not yet due falls due (emulator milliseconds), if any."""
        return self._one("SELECT min(next_attempt_at) FROM callbacks WHERE status = 'pending' AND next_attempt_at > ?",
                         (now,))[0]

    def next_work(self, now: float, wall: float) -> tuple[bool, int | None, float | None]:
        """What a sender that is told of every change waits for, in one read: whether a callback
        is due now and claimable, when the next one falls due (emulator milliseconds), and when
        the first live claim lapses (wall time: its holder may have stopped). That claim may be a
        resend's, on a callback no longer pending: a look more, where asking for pending ones only
        had SQLite read every pending callback (the status's index chosen over the claims')."""
        row = self._one(
            f"SELECT ({_FIRST_DUE}) IS NOT NULL AS due_now, "
            "(SELECT min(next_attempt_at) FROM callbacks WHERE status = 'pending' AND next_attempt_at > ?) AS next_due, "
            "(SELECT min(claim_expires) FROM callbacks WHERE claim_expires >= ?) AS next_lapse",
            (now, wall, now, wall))
        return bool(row["due_now"]), row["next_due"], row["next_lapse"]

    def _attempts(self, ids: list[int]) -> dict[int, list[dict]]:
        if not ids:
            return {}
        marks = ", ".join("?" for _ in ids)
        grouped: dict[int, list[dict]] = {i: [] for i in ids}
        for row in self._all(f"SELECT * FROM callback_attempts WHERE callback_id IN ({marks}) ORDER BY id", ids):
            attempt = dict(row)
            grouped[attempt.pop("callback_id")].append(attempt)
        return grouped


def _callback(row, attempts: dict[int, list[dict]]) -> dict:
    callback = dict(row)
    callback["body"] = json.loads(callback["body"])
    callback["warnings"] = json.loads(callback["warnings"])
    callback["fault"] = json.loads(callback["fault"])
    callback["attempts_made"] = callback.pop("attempts")
    callback["attempts"] = attempts.get(row["id"], [])
    return callback
