"""Fills an emulator's SQLite file before its server starts, through the emulator's own
service (its rooms, as the API calls them, without HTTP), many payments per transaction.
Imported by the benchmarks; run as a script by a checkout's own interpreter, it seeds with that
checkout's code (`python benchmarks/seed.py FILE --held-callbacks 10000`)."""
from __future__ import annotations

import sqlite3
from datetime import datetime, timedelta
from random import Random


from payletter_emulator.domain.clock import KST, Clock, ClockState
from payletter_emulator.config import Settings
from payletter_emulator.service import Service
from payletter_emulator.storage import Storage

BATCH = 2000  # payments per write transaction
BASE_URL = "http://127.0.0.1"


def request_body(callback_url: str, **overrides) -> dict:
    """A payments/request body as a merchant sends it (the tests' usual one)."""
    return {"pgcode": "creditcard", "client_id": "pay_test", "user_id": "test_user_id",
            "user_name": "tester", "service_name": "payletter", "order_no": "1234567890",
            "amount": 1000, "product_name": "test product", "custom_parameter": "this is custom parameter",
            "return_url": "https://merchant.example/result", "callback_url": callback_url,
            "cancel_url": "https://merchant.example/cancel", **overrides}


class Seeder:
    """`with Seeder(path) as seed: seed.approved(10_000, url)`; the clock is left at real time
    unless `hold_clock` says otherwise."""

    def __init__(self, path: str):
        self.path = path
        settings = Settings(db=path, faker_seed=7)
        self.storage = Storage(path)
        self.service = Service(self.storage, Clock(), settings, Random(settings.faker_seed))  # no dispatcher: nothing is sent
        self.client = self.service.context.clients["pay_test"]

    def __enter__(self) -> "Seeder":
        return self

    def __exit__(self, *exc) -> None:
        self.storage.close()

    def _freeze_at(self, moment: datetime) -> None:
        self.service.clock_jobs.set_clock({"freeze": True})
        self.service.clock_jobs.set_clock({"set": moment.isoformat()})

    def _request(self, callback_url: str) -> int:
        """A payments/request as the API makes it: its token."""
        return self.service.merchant_api.request_payment(self.client, request_body(callback_url), BASE_URL)["token"]

    def pending(self, count: int, callback_url: str) -> list[int]:
        """Payments requested and not yet paid: their tokens."""
        self.service.clock_jobs.set_clock({"freeze": False})
        tokens = []
        for start in range(0, count, BATCH):
            with self.storage.atomic():
                for _ in range(start, min(count, start + BATCH)):
                    tokens.append(self._request(callback_url))
        return tokens

    def approved(self, count: int, callback_url: str, *, first: datetime | None = None,
                 step_seconds: float = 1.0) -> list[str]:
        """Paid card payments, one every `step_seconds` of emulator time from `first` (default:
        `count` steps before now), each with its callback in the outbox: their tids."""
        step = timedelta(seconds=step_seconds)
        moment = first or datetime.now(KST) - step * count
        tids = []
        for start in range(0, count, BATCH):
            with self.storage.atomic():
                for _ in range(start, min(count, start + BATCH)):
                    self._freeze_at(moment)
                    tids.append(self.service.payer.approve(self._request(callback_url), {})["fields"]["tid"])
                    moment += step
        self.real_time()
        return tids

    def real_time(self) -> None:
        self.storage.save_clock_state(ClockState())

    def hold_clock_before_due(self, seconds: float) -> str:
        """Freeze the clock `seconds` before the earliest pending callback is due, so that
        nothing is sent until a test moves the clock; the frozen moment (ISO 8601)."""
        first_due = self.storage.callback_backlog(0, 0)["next_due"]
        moment = datetime.fromtimestamp(first_due / 1000 - seconds, KST)
        self._freeze_at(moment)
        return moment.isoformat()


def empty_outbox(path: str) -> None:
    """Mark every queued callback delivered (seeded history, not work for the server to do).
    A benchmark fixture: the emulator itself never does this."""
    with sqlite3.connect(path) as db:
        db.execute("UPDATE callbacks SET status = 'delivered', next_attempt_at = NULL")


def main() -> None:
    import argparse

    parser = argparse.ArgumentParser(description="Seed a SQLite file with callbacks that wait, pending.")
    parser.add_argument("db", help="the SQLite file (made if missing)")
    parser.add_argument("--held-callbacks", type=int, required=True, metavar="N",
                        help="N paid card payments whose callbacks (to a closed port, 127.0.0.1:9) are pending, "
                             "the clock frozen a minute before the first is due")
    options = parser.parse_args()
    with Seeder(options.db) as seed:
        # One payment per emulator millisecond, as a suite's payments come (a frozen instant would
        # take them all too: its tokens' serials carry into the milliseconds, docs/fidelity.md).
        seed.approved(options.held_callbacks, "http://127.0.0.1:9/callback", step_seconds=0.001)
        seed.hold_clock_before_due(60)


if __name__ == "__main__":  # run by a checkout's own interpreter (benchmarks/feel.py), its schema with it
    main()
