"""transaction/list in the app alone: a day of 10,000 paid payments (seeded once into a SQLite
file), answered through Flask's test client, without HTTP. Prints the p50 of the timed answers and
the answer's size and SHA-256, so two checkouts run on the same file can be compared for speed
and for bytes.

    python benchmarks/list_answer.py --db /tmp/list.db            # seeds the file if it is new
"""
from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import statistics
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from payletter_emulator import create_app  # noqa: E402
from payletter_emulator.domain.clock import KST  # noqa: E402

DAY_PAYMENTS = 10_000
DAY = datetime(2026, 3, 5, 0, 0, tzinfo=KST)
PATH = f"/v1.0/payments/transaction/list?client_id=pay_test&date={DAY:%Y%m%d}&date_type=transaction"
SEARCH_KEY = "MUI3MjM0RUExQTgyRDA1ODZGRDUyOEM4OTY2QTVCN0Y="  # the default client's (config.py)


def seed(db: Path) -> None:
    from seed import Seeder, empty_outbox

    with Seeder(str(db)) as seeder:
        seeder.approved(DAY_PAYMENTS, "http://127.0.0.1:9/callback", first=DAY, step_seconds=8.0)
    empty_outbox(str(db))


def measure(db: Path, rounds: int, warmup: int) -> dict:
    with tempfile.TemporaryDirectory() as folder:
        copy = Path(folder) / "list.db"
        shutil.copy(db, copy)  # the app writes (its clock, the journal): each run starts from the seeded file
        client = create_app(db=str(copy)).test_client()
        headers = {"Authorization": f"PLKEY {SEARCH_KEY}"}
        samples, body = [], b""
        for number in range(warmup + rounds):
            started = time.perf_counter()
            answer = client.get(PATH, headers=headers)
            elapsed = (time.perf_counter() - started) * 1000
            body = answer.get_data()
            if answer.status_code != 200 or json.loads(body)["total_count"] != DAY_PAYMENTS:
                raise RuntimeError(f"unexpected answer {answer.status_code}: {body[:200]!r}")
            if number >= warmup:
                samples.append(elapsed)
    return {"p50_ms": round(statistics.median(samples), 1), "min_ms": round(min(samples), 1),
            "bytes": len(body), "sha256": hashlib.sha256(body).hexdigest()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", type=Path, required=True, help="the seeded SQLite file (made if missing)")
    parser.add_argument("--rounds", type=int, default=10, help="timed answers [default: 10]")
    parser.add_argument("--warmup", type=int, default=3, help="answers before the timed ones [default: 3]")
    options = parser.parse_args()
    if not options.db.exists():
        seed(options.db)
    print(json.dumps(measure(options.db, options.rounds, options.warmup)))


if __name__ == "__main__":
    main()
