"""How often a request waits for PostgreSQL (issue 25), counted by a TCP proxy in front of a real
server (tests/databases.py's RoundTrips), once the statements are prepared: payments/request one
round trip, every one of them (the process's next block of tokens is asked for within one); an approval (control API), a cancel and a partial cancel two, the row their rule reads
(locked) and then everything they write with the COMMIT; a payment on the hosted page three, the
page's read of the payment before them. Counted, not timed."""
from __future__ import annotations

import pytest

from payletter_emulator.storage import TOKEN_BLOCK

from .conftest import Api, EmulatorProcess, ok
from .databases import RoundTrips

pytestmark = pytest.mark.postgres
CARD = {"action": "pay", "card_number": "4579730000001235", "card_expiry": "12/39", "install_month": "00"}
EXPECTED = {"payments/request": 1, "approve": 2, "payments/cancel/partial": 2, "payments/cancel": 2,
            "the page's pay button": 3}


def test_each_request_waits_for_postgresql_as_few_times_as_its_rule_needs(postgres_server, tmp_path,
                                                                           callback_receiver):
    url = postgres_server.new_database()
    proxy = RoundTrips(postgres_server.port)
    process = EmulatorProcess(tmp_path, "--workers", "1",
                              db=url.replace(f":{postgres_server.port}/", f":{proxy.port}/"))
    try:
        api = Api(process.url, callback_receiver.url)
        counted: dict[str, list[int]] = {name: [] for name in EXPECTED}

        def trips(name: str, run):
            """`run()`, its round trips on the connection requests use (the callback senders and the
            listener have their own) counted under `name`; its result."""
            before = proxy.snapshot()
            result = run()
            after = proxy.snapshot()
            moved = {number: after[number] - before.get(number, 0) for number in after}
            counted[name].append(moved[requests_connection])
            return result

        # The statements of each kind of request prepared (at their second use), the first tid
        # counted, the connection requests use found.
        for _ in range(3):
            paid = api.pay(amount=100_000)
            ok(api.cancel(paid, amount=100, partial=True))
            ok(api.cancel(paid, amount=99_900))
            page = api.post("/v1.0/payments/request", api.request_body()).json()["online_url"]
            assert api.http.post(page, data=CARD, timeout=30).status_code == 200
        before = proxy.snapshot()
        for _ in range(2 * TOKEN_BLOCK):  # past two blocks of tokens: the next block's statement prepared too
            api.request_payment()
        after = proxy.snapshot()  # the senders' connection may have moved too, by their last looks
        requests_connection = max(after, key=lambda number: after[number] - before.get(number, 0))

        for _ in range(5):
            token = trips("payments/request", lambda: api.request_payment(amount=100_000))
            fields = trips("approve", lambda: api.control(f"/payments/{token}/approve", {})["fields"])
            api.flush()
            trips("payments/cancel/partial", lambda: ok(api.cancel(fields, amount=100, partial=True)))
            trips("payments/cancel", lambda: ok(api.cancel(fields, amount=99_900)))
            page = api.post("/v1.0/payments/request", api.request_body()).json()["online_url"]
            paid_on_page = trips("the page's pay button", lambda: api.http.post(page, data=CARD, timeout=30))
            assert paid_on_page.status_code == 200 and "data-testid=return-form" in paid_on_page.text.replace('"', "")
        assert counted == {name: [count] * 5 for name, count in EXPECTED.items()}
        counted["payments/request"] = []
        for _ in range(2 * TOKEN_BLOCK):  # two blocks of tokens used up, and more asked for
            trips("payments/request", api.request_payment)
        assert counted["payments/request"] == [1] * 2 * TOKEN_BLOCK
        payment = api.control(f"/payments/{fields['tid']}", method="GET")  # and they did what they say
        assert payment["remaining"] == 0 and [c["amount"] for c in payment["cancellations"]] == [100, 99_900]
    finally:
        process.stop()
        proxy.close()
