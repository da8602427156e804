"""Which servers speaking PostgreSQL's protocol the emulator keeps its state on, judged from what
`SELECT version()` answers: PostgreSQL 10 or later; not CockroachDB nor YugabyteDB, whose locks
and notifications differ from PostgreSQL's (the evidence: docs/deploy-shared.md, Distributed SQL)."""
from __future__ import annotations

import re

OLDEST_POSTGRESQL = 10  # identity columns (every table's id), and psycopg 3's oldest server
SEE = "docs/deploy-shared.md#distributed-sql"
INSTEAD = f"use PostgreSQL {OLDEST_POSTGRESQL} or later ({SEE})"

# A distributed database that answers version() its own way: its name, how its answer reads (its
# release in the group), and what the emulator would miss there.
DISTRIBUTED = (
    # pkg/build/info.go's Short(): "CockroachDB CCL v24.3.17 (aarch64-unknown-linux-gnu, built ...)"
    ("CockroachDB", re.compile(r"^CockroachDB \S+ (v\S+)"),
     "no LISTEN/NOTIFY, and row locks that are best-effort under SERIALIZABLE"),
    # PostgreSQL's own form, its release carrying YugabyteDB's: "PostgreSQL 11.2-YB-2.21.0.1-b0 on ..."
    ("YugabyteDB", re.compile(r"^PostgreSQL [\d.]+-YB-(\d[\d.]*)"),
     "READ COMMITTED runs as snapshot isolation unless a server flag says otherwise, "
     "and LISTEN/NOTIFY is early access from 2025.2.3"),
)
_POSTGRESQL = re.compile(r"^PostgreSQL (\d+)(?:\.(\d+))?")


def why_unfit(version: str) -> str | None:
    """Why the server whose `SELECT version()` answered `version` cannot hold the emulator's state,
    and what to use instead; None when it can."""
    for name, answer, missing in DISTRIBUTED:
        if found := answer.match(version):
            return f"it is {name} {found.group(1)}, which the emulator does not run on ({missing}); {INSTEAD}"
    found = _POSTGRESQL.match(version)
    if found is None:
        return f"it answers SELECT version() with {_first_words(version)!r}, not as PostgreSQL does; {INSTEAD}"
    if int(found.group(1)) < OLDEST_POSTGRESQL:
        release = ".".join(filter(None, found.groups()))
        return (f"it is PostgreSQL {release}, older than PostgreSQL {OLDEST_POSTGRESQL}, the oldest the "
                f"emulator runs on; upgrade it, or {INSTEAD}")
    return None


def _first_words(version: str) -> str:
    """Enough of an unknown answer to name the product, not a paragraph of build details."""
    return " ".join(version.split()[:3])
