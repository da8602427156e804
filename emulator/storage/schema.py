"""Every table and index of the emulator, in one place: what a new database is made with, and
the columns an older one gains."""
from __future__ import annotations

SCHEMA = """
CREATE TABLE IF NOT EXISTS payments (
    token INTEGER PRIMARY KEY,
    client_id TEXT NOT NULL,
    pgcode TEXT NOT NULL,
    kind TEXT NOT NULL,
    status TEXT NOT NULL,
    user_id TEXT NOT NULL,
    user_name TEXT NOT NULL,
    order_no TEXT NOT NULL,
    service_name TEXT NOT NULL,
    product_name TEXT NOT NULL,
    custom_parameter TEXT NOT NULL,
    amount INTEGER NOT NULL,
    taxfree_amount INTEGER NOT NULL,
    tax_amount INTEGER NOT NULL,
    disposable_cup_deposit INTEGER NOT NULL,
    request TEXT NOT NULL,
    created_at TEXT NOT NULL,
    tid TEXT,
    cid TEXT NOT NULL,
    paid_pgcode TEXT NOT NULL,
    transaction_date TEXT NOT NULL,
    billkey TEXT NOT NULL,
    details TEXT NOT NULL,
    cancelled_amount INTEGER NOT NULL,
    cancelled_taxfree_amount INTEGER NOT NULL,
    cancelled_tax_amount INTEGER NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS payments_by_tid ON payments (tid) WHERE tid IS NOT NULL;
-- A day's payments of a client already in the order transaction/list shows them (no sort).
DROP INDEX IF EXISTS payments_by_day;
CREATE INDEX IF NOT EXISTS payments_listed ON payments (client_id, substr(transaction_date, 1, 10), transaction_date, token)
    WHERE tid IS NOT NULL;
CREATE INDEX IF NOT EXISTS payments_by_order ON payments (client_id, order_no);
CREATE INDEX IF NOT EXISTS payments_by_billkey ON payments (billkey) WHERE tid IS NOT NULL;
CREATE TABLE IF NOT EXISTS cancellations (
    id INTEGER PRIMARY KEY,
    tid TEXT NOT NULL,
    amount INTEGER NOT NULL,
    taxfree_amount INTEGER NOT NULL,
    tax_amount INTEGER NOT NULL,
    partial INTEGER NOT NULL,
    cancel_date TEXT NOT NULL,
    ip_addr TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS cancellations_by_tid ON cancellations (tid);
CREATE INDEX IF NOT EXISTS cancellations_by_day ON cancellations (substr(cancel_date, 1, 10));
CREATE TABLE IF NOT EXISTS billkeys (
    billkey TEXT PRIMARY KEY,
    client_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    pgcode TEXT NOT NULL,
    issued_at TEXT NOT NULL,
    amount INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS cash_receipts (
    token INTEGER PRIMARY KEY,
    tid TEXT NOT NULL,
    client_id TEXT NOT NULL,
    type TEXT NOT NULL,
    tax_flag TEXT NOT NULL,
    return_url TEXT NOT NULL,
    status TEXT NOT NULL,
    details TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS callbacks (
    id INTEGER PRIMARY KEY,
    tid TEXT NOT NULL,
    url TEXT NOT NULL,
    body TEXT NOT NULL,
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    next_attempt_at INTEGER,
    created_at TEXT NOT NULL,
    warnings TEXT NOT NULL DEFAULT '[]',
    claimed_by TEXT,
    claim_expires REAL,
    fault TEXT NOT NULL DEFAULT '{}',
    gateway TEXT NOT NULL DEFAULT 'domestic'
);
CREATE INDEX IF NOT EXISTS callbacks_due ON callbacks (status, next_attempt_at);
CREATE INDEX IF NOT EXISTS callbacks_by_tid ON callbacks (tid);
CREATE TABLE IF NOT EXISTS callback_attempts (
    id INTEGER PRIMARY KEY,
    callback_id INTEGER NOT NULL,
    number INTEGER NOT NULL DEFAULT 0,
    kind TEXT NOT NULL DEFAULT 'first',
    scheduled_at TEXT,
    at TEXT NOT NULL,
    wall_time TEXT NOT NULL,
    http_status INTEGER,
    response_body TEXT NOT NULL,
    error TEXT NOT NULL,
    latency_ms REAL NOT NULL,
    state TEXT NOT NULL DEFAULT 'done'
);
CREATE INDEX IF NOT EXISTS attempts_by_callback ON callback_attempts (callback_id);
CREATE TABLE IF NOT EXISTS journal (
    id INTEGER PRIMARY KEY,
    at TEXT NOT NULL,
    method TEXT NOT NULL,
    path TEXT NOT NULL,
    query TEXT NOT NULL,
    client_id TEXT NOT NULL,
    request TEXT NOT NULL,
    status INTEGER NOT NULL,
    response TEXT NOT NULL,
    warnings TEXT NOT NULL,
    error TEXT NOT NULL,
    rule TEXT,
    taken INTEGER
);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
-- What a run exercised: a count per (kind, name) is the sum over its shards (COVERAGE_REMADE).
CREATE TABLE IF NOT EXISTS coverage (kind TEXT NOT NULL, name TEXT NOT NULL, shard INTEGER NOT NULL DEFAULT 0,
                                     count INTEGER NOT NULL, PRIMARY KEY (kind, name, shard));
CREATE TABLE IF NOT EXISTS sandboxes (
    id TEXT PRIMARY KEY,
    payment_key TEXT NOT NULL UNIQUE,
    search_key TEXT NOT NULL UNIQUE,
    created_at REAL NOT NULL,
    last_used REAL NOT NULL,
    idle_seconds REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS scenario (id INTEGER PRIMARY KEY CHECK (id = 1), document TEXT, version INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS rule_hits (rule TEXT PRIMARY KEY, hits INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS jobs (
    id INTEGER PRIMARY KEY,
    due_at INTEGER NOT NULL,
    kind TEXT NOT NULL,
    params TEXT NOT NULL,
    origin TEXT NOT NULL,
    done INTEGER NOT NULL DEFAULT 0,
    result TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS jobs_due ON jobs (done, due_at);
-- Payletter Global: a payment by its token, its paytoken once paid, amounts in the smallest unit
-- of the currency, and as the merchant wrote it (the notification echoes that text).
CREATE TABLE IF NOT EXISTS global_payments (
    token TEXT PRIMARY KEY,
    store_id TEXT NOT NULL,
    currency TEXT NOT NULL,
    order_no TEXT NOT NULL,
    amount TEXT NOT NULL,
    amount_units INTEGER NOT NULL,
    refunded_units INTEGER NOT NULL DEFAULT 0,
    pginfo TEXT NOT NULL,
    service_name TEXT NOT NULL,
    status TEXT NOT NULL,
    request TEXT NOT NULL,
    created_at TEXT NOT NULL,
    paytoken TEXT,
    trantime TEXT NOT NULL DEFAULT '',
    poqtoken TEXT NOT NULL DEFAULT '',
    card_kind TEXT NOT NULL DEFAULT '',
    card_no TEXT NOT NULL DEFAULT ''
);
CREATE UNIQUE INDEX IF NOT EXISTS global_payments_by_paytoken ON global_payments (paytoken) WHERE paytoken IS NOT NULL;
CREATE TABLE IF NOT EXISTS global_refunds (
    id INTEGER PRIMARY KEY,
    paytoken TEXT NOT NULL,
    amount TEXT NOT NULL,
    amount_units INTEGER NOT NULL,
    generation TEXT NOT NULL,
    trantime TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS global_refunds_by_paytoken ON global_refunds (paytoken);
CREATE TABLE IF NOT EXISTS clock (id INTEGER PRIMARY KEY CHECK (id = 1), "offset" REAL NOT NULL, frozen_at REAL,
                                  version INTEGER NOT NULL DEFAULT 0);
"""

# Columns added after the first release, with their declarations as in SCHEMA.
ADDED_COLUMNS = {
    "callbacks": {"warnings": "TEXT NOT NULL DEFAULT '[]'", "claimed_by": "TEXT", "claim_expires": "REAL",
                  "fault": "TEXT NOT NULL DEFAULT '{}'", "gateway": "TEXT NOT NULL DEFAULT 'domestic'"},
    "journal": {"rule": "TEXT", "taken": "INTEGER"},
    "clock": {"version": "INTEGER NOT NULL DEFAULT 0"},
    "callback_attempts": {"number": "INTEGER NOT NULL DEFAULT 0", "kind": "TEXT NOT NULL DEFAULT 'first'",
                          "scheduled_at": "TEXT", "state": "TEXT NOT NULL DEFAULT 'done'"},
}
# A coverage table made before its counts were kept per connection (issue 25: every request of every
# process added to one row, and waited for the one before it to commit): made again with `shard` in
# its key, its counts kept as shard 0. PostgreSQL counts each connection's in shards of its own
# (storage/pg_sessions.py); SQLite, one writer at a time, in shard 0.
COVERAGE_REMADE = (
    "ALTER TABLE coverage RENAME TO coverage_unsharded",
    """CREATE TABLE coverage (kind TEXT NOT NULL, name TEXT NOT NULL, shard INTEGER NOT NULL DEFAULT 0,
                                     count INTEGER NOT NULL, PRIMARY KEY (kind, name, shard))""",
    "INSERT INTO coverage (kind, name, shard, count) SELECT kind, name, 0, count FROM coverage_unsharded",
    "DROP TABLE coverage_unsharded",
)
# Indexes on columns of ADDED_COLUMNS: made once those columns exist.
ADDED_INDEXES = (
    "CREATE INDEX IF NOT EXISTS callbacks_claimed ON callbacks (claim_expires) WHERE claim_expires IS NOT NULL",
)
# Counters are not state: they keep counting across resets, so a merchant's database never
# sees the same tid or token twice from one emulator (but PENDING_CALLBACKS, which counts state,
# is zeroed with it). Coverage and sandboxes outlive resets too.
PENDING_CALLBACKS = "pending_callbacks"  # the callbacks pending, kept as they change: no count over them
STATE_TABLES = ("payments", "cancellations", "billkeys", "cash_receipts", "callbacks",
                "callback_attempts", "journal", "clock", "rule_hits", "jobs", "global_payments", "global_refunds")
