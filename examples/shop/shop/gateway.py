"""Payletter's REST API as the shop calls it: request a payment, cancel it, check a payhash."""
from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

import requests


class GatewayRefused(Exception):
    """The gateway answered with its `{"code", "message"}` envelope instead of a result."""

    def __init__(self, status: int, code, message: str):
        self.status, self.code, self.message = status, code, message
        super().__init__(f"HTTP {status}, code {code}: {message}")


@dataclass(frozen=True)
class Gateway:
    """One merchant account at one gateway: the real one, its test environment or the emulator
    (only `base_url` changes)."""

    base_url: str
    client_id: str
    payment_key: str
    search_key: str
    timeout: float = 10.0

    def request_payment(self, **fields) -> dict:
        """POST /v1.0/payments/request: `{"token", "online_url", "mobile_url"}`."""
        return self._post("/v1.0/payments/request", {"client_id": self.client_id, **fields})

    def cancel(self, *, pgcode: str, user_id: str, tid: str, amount: int, ip_addr: str) -> dict:
        """POST /v1.0/payments/cancel: cancel what is left of a payment."""
        return self._post("/v1.0/payments/cancel", {"client_id": self.client_id, "pgcode": pgcode,
                                                    "user_id": user_id, "tid": tid, "amount": amount,
                                                    "ip_addr": ip_addr})

    def cancel_partial(self, *, pgcode: str, user_id: str, tid: str, amount: int, ip_addr: str) -> dict:
        """POST /v1.0/payments/cancel/partial: cancel part of a payment (less than what is left)."""
        return self._post("/v1.0/payments/cancel/partial", {"client_id": self.client_id, "pgcode": pgcode,
                                                            "user_id": user_id, "tid": tid, "amount": amount,
                                                            "ip_addr": ip_addr})

    def payhash(self, user_id: str, amount, tid: str) -> str:
        """sha256(user_id + amount + tid + PAYMENT key), uppercase hex."""
        text = f"{user_id}{amount}{tid}{self.payment_key}"
        return hashlib.sha256(text.encode("utf-8")).hexdigest().upper()

    def genuine(self, fields: dict) -> bool:
        """Whether a return POST or a callback was made by the gateway: its payhash matches the
        user_id, amount and tid it carries (compared in constant time)."""
        given = str(fields.get("payhash") or "")
        expected = self.payhash(fields.get("user_id", ""), fields.get("amount", ""), fields.get("tid", ""))
        return hmac.compare_digest(given.upper().encode(), expected.encode())

    def _post(self, path: str, body: dict) -> dict:
        answer = requests.post(self.base_url.rstrip("/") + path, json=body, timeout=self.timeout,
                               headers={"Authorization": f"PLKEY {self.payment_key}"})
        result = answer.json()
        if answer.status_code != 200:
            raise GatewayRefused(answer.status_code, result.get("code"), result.get("message", ""))
        return result
