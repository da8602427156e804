"""The servers the emulator keeps its state on: PostgreSQL 10 or later; CockroachDB, YugabyteDB,
an older PostgreSQL or anything else are refused at start, in one line (docs/deploy-shared.md,
Distributed SQL). The verdict is judged from `SELECT version()`'s answer, so the answers of the
databases this project cannot run are quoted from public evidence; a real PostgreSQL passes, and
one made to answer as CockroachDB does is refused by `serve` before it makes a table."""
from __future__ import annotations

import os
import time

import psycopg
import pytest

from payletter_emulator.storage import Storage
from payletter_emulator.storage.capabilities import why_unfit

from .conftest import run_cli
from .doc_blocks import doc_block

# CockroachDB: the form of Short() in cockroachdb/cockroach pkg/build/info.go (commit 3f1ba2a), as
# `SELECT version()` and the sql shell's "Server version" show it (docs v26.1, cockroach-sql.md).
COCKROACH = [
    "CockroachDB CCL v24.3.17 (aarch64-unknown-linux-gnu, built 2025/07/31 21:20:24, go1.22.8 X:nocoverageredesign)",
    "CockroachDB CCL v21.1.0 (x86_64-unknown-linux-gnu, built 2021/05/17 13:49:40, go1.15.11)",
    "CockroachDB CCL v26.1.0-beta.3 (x86_64-apple-darwin19, built 2024/01/01 00:00:00, go1.21.5)",
]
# YugabyteDB: PostgreSQL's own form with YugabyteDB's release in it (as `ysqlsh (15.2-YB-2025.2.1.0-b0)`
# on docs.yugabyte.com's ysqlsh page shows the server's), before and after the switch to PostgreSQL 15.
YUGABYTE = [
    ("PostgreSQL 11.2-YB-2.21.0.1-b0 on x86_64-pc-linux-gnu, compiled by clang version 16.0.6 "
     "(https://github.com/yugabyte/llvm-project.git 1e6329f40e5c531c09ade7015278078682293ebd), 64-bit", "2.21.0.1"),
    ("PostgreSQL 11.2-YB-2.1.6.0-b0 on x86_64-pc-linux-gnu, compiled by gcc (Homebrew gcc 5.5.0_4) 5.5.0, 64-bit",
     "2.1.6.0"),
    ("PostgreSQL 15.2-YB-2025.1.2.0-b0 on x86_64-pc-linux-gnu", "2025.1.2.0"),
]
POSTGRESQL = [
    "PostgreSQL 10.6 (Ubuntu 10.6-1.pgdg14.04+1) on x86_64-pc-linux-gnu, compiled by gcc "
    "(Ubuntu 4.8.4-2ubuntu1~14.04.4) 4.8.4, 64-bit",
    "PostgreSQL 12.2",
    "PostgreSQL 16.4 on x86_64-pc-linux-gnu",
    "PostgreSQL 18.6 (Debian 18.6-1.pgdg12+2) on x86_64-pc-linux-gnu",
]


@pytest.mark.parametrize("version", COCKROACH)
def test_cockroachdb_is_refused_with_its_release_and_what_to_use(version):
    release = version.split()[2]
    assert why_unfit(version) == (
        f"it is CockroachDB {release}, which the emulator does not run on (no LISTEN/NOTIFY, and row locks "
        "that are best-effort under SERIALIZABLE); use PostgreSQL 10 or later (docs/deploy-shared.md#distributed-sql)")


@pytest.mark.parametrize(("version", "release"), YUGABYTE)
def test_yugabytedb_is_refused_though_it_answers_as_postgresql(version, release):
    said = why_unfit(version)
    assert said.startswith(f"it is YugabyteDB {release}, which the emulator does not run on (READ COMMITTED")
    assert said.endswith("; use PostgreSQL 10 or later (docs/deploy-shared.md#distributed-sql)")


@pytest.mark.parametrize("version", POSTGRESQL)
def test_postgresql_10_or_later_is_used(version):
    assert why_unfit(version) is None


def test_a_postgresql_older_than_10_is_refused():
    assert why_unfit("PostgreSQL 9.6.24 on x86_64-pc-linux-gnu") == (
        "it is PostgreSQL 9.6, older than PostgreSQL 10, the oldest the emulator runs on; upgrade it, "
        "or use PostgreSQL 10 or later (docs/deploy-shared.md#distributed-sql)")


def test_an_answer_not_shaped_as_postgresql_is_refused_by_its_first_words():
    said = why_unfit("KaiwuDB 3.2.2 (x86_64-linux-gnu, built 2025/06/01)")
    assert said.startswith("it answers SELECT version() with 'KaiwuDB 3.2.2 (x86_64-linux-gnu,', not as PostgreSQL")


def test_the_refusals_on_the_page_are_what_the_check_says():
    lines = doc_block("distsql-refusals").text.splitlines()
    pairs = list(zip(lines[::2], lines[1::2]))
    assert len(pairs) == 3 and len(lines) == 6
    for version, said in pairs:
        assert said.startswith("→ ")
        assert why_unfit(version) == said.removeprefix("→ ")


def test_a_real_postgresql_passes_the_check(postgres_server):
    url = postgres_server.new_database()
    with psycopg.connect(url) as connection:
        version = connection.execute("SELECT version()").fetchone()[0]
    assert why_unfit(version) is None, version
    storage = Storage(url)  # what `serve` opens: the check, then the tables
    try:
        assert storage.payments() == []
    finally:
        storage.close()


def test_the_probes_pass_on_a_real_postgresql(postgres_server):
    url = postgres_server.new_database()
    Storage(url).close()  # the tables the probes read
    with psycopg.connect(url, autocommit=True) as one, psycopg.connect(url, autocommit=True) as other:
        for statement in doc_block("distsql-probes").text.split(";"):
            if statement.strip():
                one.execute(statement)
        # Row locks: a row one connection holds is skipped by the other's SKIP LOCKED.
        with one.transaction(), other.transaction():
            held = one.execute("SELECT name FROM counters ORDER BY name LIMIT 1 FOR UPDATE").fetchone()[0]
            skipped = other.execute("SELECT name FROM counters WHERE name = %s FOR UPDATE SKIP LOCKED", (held,))
            assert skipped.fetchall() == []
        # Advisory locks: one holder at a time.
        with one.transaction(), other.transaction():
            assert one.execute("SELECT pg_try_advisory_xact_lock(7420611003)").fetchone()[0] is True
            assert other.execute("SELECT pg_try_advisory_xact_lock(7420611003)").fetchone()[0] is False
        # LISTEN/NOTIFY: a notification reaches the other connection, within seconds.
        heard = []
        other.add_notify_handler(lambda notify: heard.append((notify.channel, notify.payload)))
        other.execute("LISTEN payletter_emulator_probe")
        one.execute("SELECT pg_notify('payletter_emulator_probe', 'moved')")
        deadline = time.monotonic() + 5.0
        while not heard and time.monotonic() < deadline:
            other.execute("SELECT 1")  # a round trip delivers what arrived meanwhile
        assert heard == [("payletter_emulator_probe", "moved")]


def test_serve_refuses_a_database_answering_as_cockroachdb_before_making_a_table(postgres_server):
    """A real PostgreSQL whose `version()` answers as CockroachDB's does (a function ahead of
    pg_catalog on the database's search_path): `serve` says why in one line and makes nothing."""
    url = postgres_server.new_database()
    name = url.rsplit("/", 1)[1]
    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute("CREATE SCHEMA banner")
        connection.execute(f"CREATE FUNCTION banner.version() RETURNS text LANGUAGE sql AS $$ SELECT '{COCKROACH[0]}' $$")
        connection.execute(f"ALTER DATABASE {name} SET search_path = banner, pg_catalog, public")
    done = run_cli("serve", "--port", "0", "--db", url, "--workers", "2", env={**os.environ})
    assert (done.returncode, done.stdout) == (1, "")
    [line] = done.stderr.splitlines()
    assert line == (f"Error: cannot use the database at 127.0.0.1:{postgres_server.port}/{name}: "
                    f"it is CockroachDB v24.3.17, which the emulator does not run on (no LISTEN/NOTIFY, and row "
                    "locks that are best-effort under SERIALIZABLE); use PostgreSQL 10 or later "
                    "(docs/deploy-shared.md#distributed-sql)")
    with psycopg.connect(url) as connection:
        assert connection.execute("SELECT to_regclass('public.payments')").fetchone()[0] is None
