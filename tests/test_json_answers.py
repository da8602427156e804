"""Every JSON answer is written by orjson through the app's JSON provider, in the bytes the
standard library's json.dumps(ensure_ascii=False, separators=(",", ":")) wrote before: a day's
transaction/list with awkward text on both databases, the gateway's answers and errors over HTTP,
and what orjson leaves to the standard library."""
from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest
import requests

from payletter_emulator import create_app
from payletter_emulator.domain.fields import transaction_row
from payletter_emulator.domain.payment import Cancellation, Payment
from payletter_emulator.web.app import GatewayJSON

from .conftest import PAYMENT_KEY, SEARCH_KEY

LIST = "/v1.0/payments/transaction/list"
# Text that JSON must escape, or must leave as it is, in every column a row shows.
AWKWARD = ['say "hi"', "back\\slash", "line\nbreak\r\ttab", "\x01\x08\x0c\x1f\x7f", "한글 상품", "😀 \u2028\u2029",
           "&amp; ' / é </script>", "", "1234567890"]


def stdlib(value) -> bytes:
    """What the app's encoder wrote before orjson: json.dumps, compact, non-ASCII as it is."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode() + b"\n"


def test_transaction_list_answers_the_bytes_json_dumps_wrote(database):
    """Approved, partly and fully cancelled payments with awkward text in every text column, with
    and without the pgcode filter (the method's or the payer's pick): the answer is the domain's
    rows (domain.fields.transaction_row), in json.dumps's bytes, on SQLite and PostgreSQL alike."""
    app = create_app(db=database)
    try:
        _list_awkward_rows(app)
    finally:
        app.extensions["payletter"].close()  # its dispatcher, before the database goes


def _list_awkward_rows(app) -> None:
    client = app.test_client()
    storage = app.extensions["payletter"].storage
    cancelled = {0: (), 1: ((1000, "2026-11-29 18:00:00"),), 2: ((300, "2026-11-29 11:00:00"), (200, "2026-11-29 12:00:00"))}
    for token, text in enumerate(AWKWARD, start=1):
        tid = f"T{token}"
        storage.insert_payment(Payment(
            token=token, client_id="pay_test", pgcode="naverpay" if token % 2 else "creditcard",
            user_id=f"u{text}", user_name=f"n{text}", amount=1000, taxfree_amount=100 * (token % 3), tax_amount=82,
            product_name=text, order_no=f"o{text}", request={}, created_at="2026-11-29 09:00:00", status="approved",
            tid=tid, cid=text, paid_pgcode="naverpoint" if token % 2 else "creditcard",
            transaction_date=f"2026-11-29 {9 + token % 4:02d}:00:00", details={}))
        for amount, at in cancelled[token % 3]:
            storage.record_cancellation(Cancellation(tid=tid, amount=amount, taxfree_amount=amount // 10,
                                                     tax_amount=amount // 11, partial=amount < 1000, cancel_date=at))
    listed = storage.payments_made_on("pay_test", "2026-11-29", ("approved",))
    assert {p.list_status for p in listed} == {0, 1, 2}
    for pgcode, count in ((None, 9), ("naverpay", 5), ("naverpoint", 5), ("creditcard", 4), ("mobile", 0)):
        query = {"client_id": "pay_test", "date": "20261129", "date_type": "transaction",
                 **({"pgcode": pgcode} if pgcode else {})}
        answer = client.get(LIST, query_string=query, headers={"Authorization": f"PLKEY {SEARCH_KEY}"})
        assert answer.status_code == 200, answer.get_data(as_text=True)
        rows = [transaction_row(p) for p in listed if pgcode is None or pgcode in (p.pgcode, p.paid_pgcode)]
        assert len(rows) == count
        assert answer.get_data() == stdlib({"total_count": count, "list": rows})


def test_the_gateways_answers_over_http_are_json_dumps_bytes(api):
    """As a merchant reads them from `serve`: an answer, a Korean error envelope, a control view
    with nested values, the OpenAPI document."""
    paying = {"Authorization": f"PLKEY {PAYMENT_KEY}", "Content-Type": "application/json"}
    body = {"pgcode": "creditcard", "client_id": "pay_test", "user_id": "사용자 \"1\"", "amount": 1000,
            "product_name": "상품 \\ 😀", "return_url": "https://m.example/r", "callback_url": "http://127.0.0.1:9/c"}
    made = requests.post(f"{api.url}/v1.0/payments/request", data=json.dumps(body), headers=paying, timeout=30)
    refused = requests.post(f"{api.url}/v1.0/payments/request", data=json.dumps({**body, "amount": "열"}),
                            headers=paying, timeout=30)
    viewed = requests.get(f"{api.url}/_emulator/payments/{made.json()['token']}", timeout=30)
    document = requests.get(f"{api.url}/openapi.json", timeout=30)
    assert refused.status_code == 406 and not refused.json()["message"].isascii()
    assert viewed.json()["request"]["product_name"] == "상품 \\ 😀"
    for answer in (made, refused, viewed, document):
        assert answer.headers["Content-Type"] == "application/json"
        assert answer.content == stdlib(answer.json()), answer.url


def test_what_orjson_would_write_its_own_way_or_not_at_all_is_written_as_before():
    """Dates go through Flask's `default` (HTTP dates), as json.dumps sent them; integers past 64
    bits and keys that are not text are written by json.dumps itself. A float below 1e-4 is the one
    value orjson spells differently (1e-7, not 1e-07): the same number to any JSON reader."""
    app = create_app(db=":memory:")
    assert isinstance(app.json, GatewayJSON)
    with app.app_context():
        def sent(value) -> bytes:
            return app.json.response(value).get_data()

        moment = {"at": datetime(2026, 11, 29, 3, 0, tzinfo=timezone.utc), "한글": "값"}
        assert sent(moment) == b'{"at":"Sun, 29 Nov 2026 03:00:00 GMT","\xed\x95\x9c\xea\xb8\x80":"\xea\xb0\x92"}\n'
        assert sent(moment) == stdlib(json.loads(json.dumps(moment, default=app.json.default)))
        beyond = {"big": 2 ** 70, 7: "seven", "list": [1, 2]}
        assert sent(beyond) == stdlib(beyond) == b'{"big":1180591620717411303424,"7":"seven","list":[1,2]}\n'
        tiny = {"tiny": 1e-7}
        assert sent(tiny) == b'{"tiny":1e-7}\n' != stdlib(tiny)
        assert json.loads(sent(tiny)) == tiny
