"""The threads that run requests in a serving process (emulator/waits.py): RUNNING at
once, and one more for each request that waits for something outside the process."""
from __future__ import annotations

import itertools
import threading
import time

import pytest

from payletter_emulator.serving.threads import RequestThreads
from payletter_emulator.waits import waiting

POOLS = itertools.count()


@pytest.fixture
def pool():
    threads = RequestThreads(running=1, name=f"pool{next(POOLS)}")
    yield threads
    threads.shutdown()


def threads_of(pool: RequestThreads) -> list[str]:
    """The live threads of `pool`, by the names it gives them (a thread is alive once started)."""
    return sorted(t.name for t in threading.enumerate() if t.name.startswith(pool.name + "_"))


def test_a_waiting_request_lets_another_run_in_its_place(pool):
    """One thread may run: a request waiting (marked) for what a later request does is not a
    deadlock, as a flush waiting for a callback whose merchant calls back is not."""
    called_back = threading.Event()

    def flush():
        with waiting():
            assert called_back.wait(10), "the request it waits for never ran"
        return "flushed"

    first = pool.submit(flush)
    second = pool.submit(called_back.set)
    assert second.result(10) is None
    assert first.result(10) == "flushed"


def test_no_more_than_running_at_once_when_nobody_waits(pool):
    at_once, most = [0], [0]
    lock = threading.Lock()

    def work():
        with lock:
            at_once[0] += 1
            most[0] = max(most[0], at_once[0])
        time.sleep(0.01)  # work that lasts: two running at once would overlap here
        with lock:
            at_once[0] -= 1

    for future in [pool.submit(work) for _ in range(20)]:
        future.result(10)
    assert most[0] == 1


def test_the_extra_thread_goes_once_the_wait_is_over(pool):
    release = threading.Event()

    def wait_a_while():
        with waiting():
            release.wait(10)

    first = pool.submit(wait_a_while)
    assert pool.submit(lambda: None).result(10) is None  # ran beside the waiting one
    assert len(threads_of(pool)) == 2
    release.set()
    first.result(10)
    deadline = time.monotonic() + 10
    while len(threads_of(pool)) > 1 and time.monotonic() < deadline:  # the one too many leaves at its next job
        pool.submit(lambda: None).result(10)
        time.sleep(0.01)
    assert len(threads_of(pool)) == 1


def test_an_exception_reaches_the_caller_and_the_thread_goes_on(pool):
    def broken():
        raise ValueError("boom")

    with pytest.raises(ValueError, match="boom"):
        pool.submit(broken).result(10)
    assert pool.submit(lambda: 7).result(10) == 7


def test_only_a_wait_on_the_pools_own_thread_makes_room(pool):
    """The same wait, marked on a thread of the pool, gives a queued job a thread at once (it runs
    while the wait lasts); marked on any other thread (a test's, another server's), it does
    nothing: the queued job waits its turn."""
    busy, release = threading.Event(), threading.Event()

    def hold(marked: bool):
        busy.set()
        if marked:
            with waiting():
                release.wait(30)
        else:
            release.wait(30)
        return "held"

    held = pool.submit(hold, False)  # the pool's one thread, busy and not marked as waiting
    assert busy.wait(10)
    with waiting():  # marked here, on the test's thread
        queued = pool.submit(lambda: "ran")
        assert threads_of(pool) == [f"{pool.name}_1"] and not queued.done()  # no thread for it
    release.set()
    assert (held.result(10), queued.result(10)) == ("held", "ran")

    busy.clear()
    release.clear()
    held = pool.submit(hold, True)  # now the wait is marked on the pool's thread
    assert busy.wait(10)
    assert pool.submit(lambda: "ran").result(10) == "ran" and not held.done()  # it ran during the wait
    release.set()
    assert held.result(10) == "held"
