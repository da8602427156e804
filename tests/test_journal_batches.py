"""The journal holds entries back and writes them in batches, yet every read sees every answer
given before it: in one process, across connections, and across processes on one database."""
from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time

import pytest
import requests

from payletter_emulator.domain.errors import GatewayError
from payletter_emulator.storage import JOURNAL_BATCH, Storage

from . import test_storage
from .conftest import PAYMENT_KEY, EmulatorProcess

HEADERS = {"Authorization": f"PLKEY {PAYMENT_KEY}"}


def entry(i: int) -> dict:
    """test_storage's entry, with the coverage an API request's entry carries."""
    return {**test_storage.entry(i), "coverage": [("endpoint", "payments/request")]}


def rows(storage: Storage) -> int:
    return storage._all("SELECT count(*) FROM journal")[0][0]


def test_entries_are_held_back_then_written_together_and_a_read_sees_them_all(tmp_path):
    storage = Storage(str(tmp_path / "j.db"))
    for i in range(JOURNAL_BATCH - 1):
        storage.journal_append(entry(i))
    assert rows(storage) < JOURNAL_BATCH - 1  # held back (the writer thread may have written some)
    assert [e["request"]["i"] for e in storage.journal()] == list(range(JOURNAL_BATCH - 1))
    assert storage.coverage()["endpoint"]["payments/request"] == JOURNAL_BATCH - 1


def test_a_full_batch_is_written_with_the_transaction_under_way(tmp_path):
    storage, other = Storage(str(tmp_path / "j.db")), Storage(str(tmp_path / "j.db"))
    with storage.atomic():
        for i in range(JOURNAL_BATCH):
            storage.journal_append(entry(i))
        assert rows(other) == 0  # not before the commit
    assert rows(other) == JOURNAL_BATCH


def test_held_entries_reach_the_database_by_themselves(tmp_path):
    storage, other = Storage(str(tmp_path / "j.db")), Storage(str(tmp_path / "j.db"))
    storage.journal_append(entry(1))
    deadline = time.monotonic() + 5
    while rows(other) == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert rows(other) == 1


def test_entries_of_a_rolled_back_transaction_are_held_again_not_lost(tmp_path):
    storage = Storage(str(tmp_path / "j.db"))
    with pytest.raises(GatewayError):
        with storage.atomic():
            for i in range(JOURNAL_BATCH):  # the last one writes the batch into this transaction
                storage.journal_append(entry(i))
            raise GatewayError("already_cancelled", tid="t")
    assert len(storage.journal()) == JOURNAL_BATCH


def test_a_reader_on_another_connection_sees_what_this_one_holds(tmp_path):
    writer, reader = Storage(str(tmp_path / "j.db")), Storage(str(tmp_path / "j.db"))
    for i in range(5):
        writer.journal_append(entry(i))
    assert [e["request"]["i"] for e in reader.journal()] == list(range(5))


def test_a_reset_forgets_what_was_held_elsewhere_before_it(tmp_path):
    writer, resetter = Storage(str(tmp_path / "j.db")), Storage(str(tmp_path / "j.db"))
    for i in range(5):
        writer.journal_append(entry(i))
    resetter.reset()
    writer.journal_append(entry(99))
    assert [e["request"]["i"] for e in resetter.journal()] == [99]


def test_every_answer_of_two_processes_is_in_the_journal_either_reads(tmp_path):
    first = EmulatorProcess(tmp_path)
    other_dir = tmp_path / "b"
    other_dir.mkdir()
    second = EmulatorProcess(other_dir, db=first.db)
    try:
        body = {"pgcode": "creditcard", "client_id": "pay_test", "user_id": "u", "amount": 1000,
                "product_name": "p", "return_url": "https://m.example/r", "callback_url": "https://m.example/c"}
        tokens = []
        for i in range(10):
            server = (first, second)[i % 2]
            tokens.append(requests.post(f"{server.url}/v1.0/payments/request", headers=HEADERS,
                                        json={**body, "order_no": f"o{i}"}).json()["token"])
            for reader in (first, second):  # each answer is there at once, whichever process reads
                seen = [e["response"]["token"] for e in requests.get(f"{reader.url}/_emulator/requests").json()["requests"]]
                assert seen == tokens
    finally:
        first.stop()
        second.stop()


def test_a_reader_does_not_wait_for_a_process_that_was_killed_holding_entries(tmp_path, caplog):
    db = str(tmp_path / "j.db")
    script = ("import sys, time; from payletter_emulator import storage; from payletter_emulator.storage import journal_tables;"
              "journal_tables.JOURNAL_HOLD = 3600; s = storage.Storage(sys.argv[1]);"
              "s.journal_append({'at': '', 'method': 'POST', 'path': '/v1.0/x', 'query': '', 'client_id': '',"
              " 'request': '', 'status': 200, 'response': '', 'warnings': []});"
              "print('held', flush=True); time.sleep(60)")
    holder = subprocess.Popen([sys.executable, "-c", script, db], stdout=subprocess.PIPE)
    try:
        assert holder.stdout.readline().strip() == b"held"
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait(10)
        with caplog.at_level(logging.WARNING, logger="payletter_emulator"):
            assert Storage(db).journal() == []  # its held entry died with it
        # Not waited for: a reader that waits out another process says so when it gives up.
        assert "did not write its journal entries" not in caplog.text
    finally:
        if holder.poll() is None:
            holder.kill()
