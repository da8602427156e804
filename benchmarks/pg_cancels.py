"""Issue 25's target for hosts sharing one PostgreSQL database: 4 hosts (`payletter-emulator
serve --workers 1`, each on its own port, as separate hosts would run it) and 2,500 concurrent
partial cancels of one payment sent to each, all at once: no payment is ever cancelled past its
amount, and exactly the cancels answered 200 are recorded. Prints what each answer was, what the
database holds, and whether anything was overdrawn (exit status 1 if so).

    python benchmarks/pg_cancels.py --db postgresql://postgres@127.0.0.1:5432/postgres

`--db`: a PostgreSQL server where the run makes a database of its own (dropped after). The
payment's amount is smaller than the cancels' sum (1,000,000 against 10,000 x 150 by default), so
that the last cancels must be refused. tests/test_shared_postgres.py runs the same at 4 x 100.
"""
from __future__ import annotations

import argparse
import asyncio
import collections
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import run  # noqa: E402  (benchmarks/run.py)

USER = "cancel_user"


class Host(run.Server):
    """`payletter-emulator serve --workers 1` on a free port and the run's database."""

    announcement = run.Emulator.announcement

    def __init__(self, number: int, db: str, workdir: Path):
        self.port = run.free_port()
        env = {key: value for key, value in os.environ.items() if not key.startswith("PAYLETTER_EMULATOR_")}
        command = [*run.emulator_command(), "serve", "--workers", "1", "--port", str(self.port), "--db", db]
        super().__init__(command, workdir, env, f"host{number}", 1)


async def cancel(port: int, body: bytes) -> tuple[int, int | None, int]:
    """One partial cancel on a connection of its own: (status, the error's code, the amount)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(b"POST /v1.0/payments/cancel/partial HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                     b"Content-Type: application/json\r\nAuthorization: PLKEY " + run.PAYMENT_KEY.encode()
                     + b"\r\nConnection: close\r\nContent-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
        await writer.drain()
        answer = await reader.read()
    finally:
        writer.close()
    head, _, content = answer.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    parsed = json.loads(content)
    return status, parsed.get("code") if status != 200 else None, parsed.get("amount", 0) if status == 200 else 0


async def all_at_once(hosts: list[Host], body: bytes, per_host: int) -> list[tuple[int, int | None, int]]:
    tasks = [cancel(host.port, body) for _ in range(per_host) for host in hosts]
    return await asyncio.gather(*tasks, return_exceptions=True)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Concurrent partial cancels of one payment over several hosts.")
    parser.add_argument("--db", required=True, help="a PostgreSQL server's URL (the run makes its database there)")
    parser.add_argument("--hosts", type=int, default=4)
    parser.add_argument("--per-host", type=int, default=2500, help="concurrent partial cancels sent to each host")
    parser.add_argument("--amount", type=int, default=1_000_000, help="the payment's amount")
    parser.add_argument("--cancel", type=int, default=150, help="each partial cancel's amount")
    options = parser.parse_args(argv)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # a socket per cancel in flight
    database = run.FreshDatabase(options.db, "pg_cancels")
    hosts: list[Host] = []
    try:
        with tempfile.TemporaryDirectory(prefix="payletter-cancels-") as folder:
            try:
                for number in range(options.hosts):
                    hosts.append(Host(number, database.url, Path(folder)))
                receiver = "http://127.0.0.1:9/callback"  # a closed port: the callback fails, the payment stays paid
                body = run.request_body(receiver, user_id=USER, amount=options.amount)
                token = _post(hosts[0].port, "/v1.0/payments/request", body)["token"]
                status, approved = run.call(hosts[-1].port, "POST", f"/_emulator/payments/{token}/approve", {})
                tid = approved["fields"]["tid"]
                cancel_body = json.dumps({"pgcode": "creditcard", "client_id": "pay_test", "user_id": USER, "tid": tid,
                                          "amount": options.cancel, "ip_addr": "127.0.0.1"}).encode()
                started = time.monotonic()
                answers = asyncio.run(all_at_once(hosts, cancel_body, options.per_host))
                took = time.monotonic() - started
                status, payment = run.call(hosts[1 % len(hosts)].port, "GET", f"/_emulator/payments/{tid}")
            finally:
                for host in hosts:
                    host.stop()
    finally:
        database.drop()
    failed = [a for a in answers if isinstance(a, BaseException)]
    kinds = collections.Counter((a[0], a[1]) for a in answers if not isinstance(a, BaseException))
    accepted = [a for a in answers if not isinstance(a, BaseException) and a[0] == 200]
    recorded = payment["cancellations"]
    overdrawn = payment["cancelled_amount"] > options.amount
    consistent = (len(recorded) == len(accepted) and payment["cancelled_amount"] == sum(c["amount"] for c in recorded)
                  == sum(a[2] for a in accepted))
    print(f"{options.hosts} hosts x {options.per_host} concurrent partial cancels of {options.cancel} on one payment "
          f"of {options.amount} (at most {(options.amount - 1) // options.cancel} can go through), in {took:.1f} s")
    for (status, code), count in sorted(kinds.items(), key=lambda item: (item[0][0], item[0][1] or 0)):
        print(f"  HTTP {status}{f', code {code}' if code is not None else ''}: {count}")
    if failed:
        print(f"  no answer (connection failed): {len(failed)}, e.g. {failed[0]!r}")
    print(f"recorded: {len(recorded)} cancellations, {payment['cancelled_amount']} cancelled, "
          f"{payment['remaining']} remaining; answered 200: {len(accepted)}")
    print(f"overdrawn: {1 if overdrawn else 0}; records match the answers: {'yes' if consistent else 'NO'}")
    return 0 if not overdrawn and consistent else 1


def _post(port: int, path: str, body: dict) -> dict:
    import http.client

    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request("POST", path, json.dumps(body), {"Content-Type": "application/json",
                                                            "Authorization": f"PLKEY {run.PAYMENT_KEY}"})
        response = connection.getresponse()
        answer = json.loads(response.read())
        if response.status != 200:
            raise RuntimeError(f"{path} answered {response.status}: {answer}")
        return answer
    finally:
        connection.close()


if __name__ == "__main__":
    sys.exit(main())
