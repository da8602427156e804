"""The threads that run requests in a serving process (emulator/waits.py): RUNNING at
once, and one more for each request that waits for something outside the process."""
from __future__ import annotations

import threading
import time

import pytest

from payletter_emulator.serving.threads import RequestThreads
from payletter_emulator.waits import waiting


@pytest.fixture
def pool():
    threads = RequestThreads(running=1)
    yield threads
    threads.shutdown()


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
        time.sleep(0.01)
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
    release.set()
    first.result(10)
    for _ in range(10):
        pool.submit(lambda: None).result(10)
    deadline = time.monotonic() + 10
    while pool._threads > 1 and time.monotonic() < deadline:
        pool.submit(lambda: None).result(10)
        time.sleep(0.01)
    assert pool._threads == 1


def test_an_exception_reaches_the_caller_and_the_thread_goes_on(pool):
    def broken():
        raise ValueError("boom")

    with pytest.raises(ValueError, match="boom"):
        pool.submit(broken).result(10)
    assert pool.submit(lambda: 7).result(10) == 7


def test_waiting_outside_the_pool_does_nothing():
    with waiting():
        pass
