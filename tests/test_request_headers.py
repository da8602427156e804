"""The headers a payment keeps for scenario rules are werkzeug's reading of the request's
headers, lower-cased, without credentials, each cut at 200 characters."""
from __future__ import annotations

from flask import Flask, request

from payletter_emulator.web.gateway_api import request_headers


def test_the_headers_kept_are_werkzeugs_reading_without_credentials():
    app = Flask(__name__)
    sent = {"X-Emulator-Scenario": "declined-card", "Authorization": "PLKEY secret", "Cookie": "session=1",
            "User-Agent": "merchant/1.0", "X-Long": "v" * 500, "Accept-Encoding": "gzip"}
    with app.test_request_context("/v1.0/payments/request", method="POST", headers=sent, data=b"{}",
                                  content_type="application/json"):
        expected = {name.lower(): value[:200] for name, value in request.headers.items()
                    if name.lower() not in ("authorization", "cookie")}
        kept = request_headers()
        assert kept == expected
        assert kept["x-emulator-scenario"] == "declined-card"
        assert kept["content-type"] == "application/json" and kept["x-long"] == "v" * 200
        assert "authorization" not in kept and "cookie" not in kept
        assert request_headers() is kept  # made once per request


def test_a_request_without_a_body_has_no_content_headers():
    app = Flask(__name__)
    with app.test_request_context("/v1.0/receipt/info/t", headers={"X-Emulator-Scenario": "a"}):
        assert request_headers() == {name.lower(): value for name, value in request.headers.items()}
        assert "content-type" not in request_headers()
