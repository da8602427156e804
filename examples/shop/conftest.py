"""Fixtures of the shop's tests. The emulator comes from payletter-emulator's pytest plugin:
`payletter` is a sandbox of its own for each test (its own keys, payments, clock, scenario and
callbacks). The shop runs on a real port, because the emulator calls it back over HTTP."""
from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

sys.path.insert(0, str(Path(__file__).resolve().parent))  # `import shop`, wherever pytest starts

from shop import Config, configure, create_app  # noqa: E402


@dataclass
class PaymentPage:
    """Where the buyer was sent: the page's URL, and its token (what the control API takes)."""

    online_url: str
    token: str


@dataclass
class RunningShop:
    """The shop on a free port, and a browser's way of using it."""

    url: str
    app: object
    browser: requests.Session

    def checkout(self, product: str = "mug", pgcode: str = "creditcard") -> "PaymentPage":
        """Press "Pay": the payment page the shop sends the buyer to."""
        answer = self.browser.post(f"{self.url}/checkout", data={"product": product, "pgcode": pgcode},
                                   allow_redirects=False)
        assert answer.status_code == 303, answer.text
        online_url = answer.headers["Location"]
        return PaymentPage(online_url, parse_qs(urlsplit(online_url).query)["token"][0])

    def come_back(self, result: dict) -> requests.Response:
        """The browser POSTs the payment page's result (control API approve/decline) to return_url."""
        return self.browser.post(result["return_url"], data=result["fields"])

    def order(self, order_no: str) -> dict:
        answer = self.browser.get(f"{self.url}/orders/{order_no}")
        assert answer.status_code == 200, answer.text
        return answer.json()

    def cancel(self, order_no: str, amount: int | None = None) -> requests.Response:
        return self.browser.post(f"{self.url}/orders/{order_no}/cancel",
                                 data={} if amount is None else {"amount": amount})

    def configure(self, **changes) -> None:
        configure(self.app, **changes)


@pytest.fixture
def shop(payletter, payletter_serve_app, tmp_path):
    """The shop, configured as its environment would configure it, against this test's sandbox,
    and served on a free port by the plugin (stopped after the test)."""
    app = create_app(Config(payletter_url=payletter.url, client_id=payletter.client_id,
                            payment_key=payletter.payment_key, search_key=payletter.search_key,
                            database=str(tmp_path / "shop.db")))
    url = payletter_serve_app(app)
    configure(app, public_url=url)  # before any buyer arrives: its return and callback URLs
    return RunningShop(url, app, requests.Session())
