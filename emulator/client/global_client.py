"""Payletter Global for a test (the pytest plugin's `payletter_global`): the Global store of the
emulator a client talks to (a sandbox's own store, or the built-in `global_test` on the root), its
key, and what a test does to a Global payment through the control API. The formulas a merchant
checks (the notification's and the hosted form's hash) are here too, so a test can sign the hosted
form the way the WooCommerce plugin does."""
from __future__ import annotations

import hashlib
import time
from typing import Any

from .control_client import EmulatorClient, EmulatorError

BUILT_IN = ("global_test", "global_test")  # the root's test store: its key is its id, as in Payletter's samples
HASHED = ("storeid", "currency", "storeorderno", "payamt", "payerid", "timestamp")


def signed_hash(fields: dict, key: str) -> str:
    """SHA-256 in lower-case hex of storeid, currency, storeorderno, payamt, payerid and timestamp
    as they travel, then the key: the notification's `hash`, and the hosted form's."""
    return hashlib.sha256(("".join(str(fields.get(name, "")) for name in HASHED) + key).encode("utf-8")).hexdigest()


class PayletterGlobal:
    """A Global store of `client`'s emulator. Give merchant code `url` (the API's base, and the
    hosted page's: `{url}/Web/Payment.aspx`), `store_id` and `key` (GPLKEY, the POQAPI signature
    and the hashes alike)."""

    def __init__(self, client: EmulatorClient):
        self.client = client
        self.store_id, self.key = self._store()

    def __repr__(self) -> str:
        return f"PayletterGlobal({self.url!r}, store_id={self.store_id!r})"

    @property
    def url(self) -> str:
        return self.client.url

    @property
    def page_url(self) -> str:
        """Where the hosted form is POSTed on a computer (`/Smart/Payment.aspx` on a phone)."""
        return f"{self.url}/Web/Payment.aspx"

    def _store(self) -> tuple[str, str]:
        if not self.client.sandbox:
            return BUILT_IN
        listed = self.client.control("GET", "/sandboxes", root=True)
        for sandbox in listed["sandboxes"] if isinstance(listed, dict) else listed:
            if sandbox["id"] == self.client.sandbox:
                return sandbox["global_store_id"], sandbox["global_key"]
        raise EmulatorError("GET", "/_emulator/sandboxes", 404, None, f"no sandbox {self.client.sandbox}")

    # --- the payer, through the control API ---
    def approve(self, token: str, card_number: str | None = None) -> dict:
        """The payer pays the payment of `token` (a Visa test card unless `card_number` says
        otherwise; a number that is no test card declines it); the notification is queued. The
        payment as the control API shows it: `status`, `paytoken`, `card_kind`, ..."""
        body = {"card_number": card_number} if card_number else {}
        return self.client.control("POST", f"/global/payments/{token}/approve", body)

    def decline(self, token: str) -> dict:
        return self.client.control("POST", f"/global/payments/{token}/decline")

    def payments(self, status: str | None = None) -> list[dict]:
        """This store's Global payments with their refunds, in the order they were requested."""
        return self.client.pages("/global/payments", "payments", {"store_id": self.store_id, "status": status})

    def payment(self, token_or_paytoken: str) -> dict:
        for payment in self.payments():
            if token_or_paytoken in (payment["token"], payment["paytoken"]):
                return payment
        raise EmulatorError("GET", "/_emulator/global/payments", 404, None,
                            f"no Global payment of store {self.store_id} has token or paytoken {token_or_paytoken!r}")

    def refund(self, token: str, amount: str | None = None) -> dict:
        """Refund the paid payment of `token` as the merchant's server would (`amount` as written,
        default what is left); its notification (notifytype 2) is queued. The refund's answer."""
        return self.client.control("POST", f"/global/payments/{token}/refund", {"amount": amount} if amount else {})

    def notifications(self, paytoken: str | None = None) -> list[dict]:
        """Global notifications in the ledger (of `paytoken`), each with its `body` (the form's
        fields) and attempts; `client.callbacks.wait(tid=paytoken)` waits for one."""
        return self.client.pages("/global/notifications", "notifications", {"paytoken": paytoken} if paytoken else {})

    # --- what merchant code signs ---
    def hosted_form(self, **fields: Any) -> dict:
        """The hosted form as the WooCommerce plugin posts it to `page_url` without an API call:
        `fields` (storeorderno, payamt as text, returnurl, notiurl, ...) with this store's id, a
        `timestamp` (now, unless given) and the `hash` over them with this store's key."""
        form = {"storeid": self.store_id, "currency": "USD", "payerid": "payer", "payeremail": "payer@example.com",
                "pginfo": "PLCreditCard", "timestamp": str(int(time.time())),
                **{name: str(value) for name, value in fields.items()}}
        form["hash"] = signed_hash(form, self.key)
        return form

    def check_hash(self, fields: dict) -> bool:
        """Whether a notification's (or the return POST's) `hash` is this store's, as a merchant checks it."""
        return str(fields.get("hash", "")).lower() == signed_hash(fields, self.key)
