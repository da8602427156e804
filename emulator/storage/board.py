"""A page of memory shared by every process on one SQLite database (the first 4 KiB of its
`<db>-lock` file, mapped by each): what processes tell each other without a transaction.

- The shared generation: a number that changes whenever one process has changed the clock,
  the scenario or the timed jobs, so the others know to read them again.
- The journal board: each process that holds journal entries back (to write them in
  batches, within a fraction of a second) has a slot with how many it has taken and how many
  it has written. A reader of the journal waits until each has written what it had taken
  when the reader looked.

A database of one process (memory) gets the same page in its own memory. On PostgreSQL the
processes of one `serve --workers N` share one for its generation alone (storage/pg_news.py)."""
from __future__ import annotations

import os
import secrets
import struct
import time

SIZE = 4096
_GENERATION = 0  # u64
_SLOTS = 64  # from here: SLOT_COUNT slots of (pid, taken, written), u64 each
_SLOT = struct.Struct("<QQQ")
SLOT_COUNT = (SIZE - _SLOTS) // _SLOT.size


class Board:
    def __init__(self, memory):
        self.memory = memory  # an mmap of the lock file, or a bytearray(SIZE)

    # --- the shared generation ---
    def generation(self) -> int:
        return struct.unpack_from("<Q", self.memory, _GENERATION)[0]

    def bump_generation(self) -> None:
        """A fresh random value, not an increment: two processes bumping together lose neither's news."""
        struct.pack_into("<Q", self.memory, _GENERATION, secrets.randbits(64))

    # --- the journal board ---
    def claim(self) -> int:
        """A slot for this process: a free one, or one whose process is gone. The caller holds
        the database's writer lock, so two processes never claim the same slot."""
        for index in range(SLOT_COUNT):
            pid = self._slot(index)[0]
            if pid == 0 or not _alive(pid):
                _SLOT.pack_into(self.memory, _offset(index), os.getpid(), 0, 0)
                return index
        raise RuntimeError(f"more than {SLOT_COUNT} processes keep journal entries for one database")

    def release(self, index: int) -> None:
        if not getattr(self.memory, "closed", False) and self._slot(index)[0] == os.getpid():
            _SLOT.pack_into(self.memory, _offset(index), 0, 0, 0)

    def progress(self, index: int, pid: int, taken: int, written: int) -> None:
        """Only the slot's own process writes it."""
        _SLOT.pack_into(self.memory, _offset(index), pid, taken, written)

    def wait_for_others(self, mine: int | None, timeout: float) -> bool:
        """Wait until every other slot's process has written as many journal entries as it had
        taken when this was called (a process that is gone is not waited for). False if
        `timeout` seconds passed first."""
        waiting = {index: (pid, taken) for index in range(SLOT_COUNT) if index != mine
                   for pid, taken, written in [self._slot(index)] if pid != 0 and written < taken}
        deadline = time.monotonic() + timeout
        while waiting:
            for index, (pid, taken) in list(waiting.items()):
                now_pid, _, written = self._slot(index)
                if now_pid != pid or written >= taken or not _alive(pid):
                    del waiting[index]
            if not waiting:
                break
            if time.monotonic() > deadline:
                return False
            time.sleep(0.001)
        return True

    def _slot(self, index: int) -> tuple[int, int, int]:
        return _SLOT.unpack_from(self.memory, _offset(index))


def _offset(index: int) -> int:
    return _SLOTS + index * _SLOT.size


def _alive(pid: int) -> bool:
    if os.name != "posix":  # no page is shared there (emulator/storage/backends.py): only this process
        return pid == os.getpid()  # (os.kill would end the process, not ask about it)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: alive
        return True
    return True
