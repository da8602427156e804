"""payhash: the SHA-256 a merchant recomputes to trust the return and callback fields."""
from __future__ import annotations

import hashlib


def payhash(user_id: str, amount: int, tid: str, payment_key: str) -> str:
    """sha256(user_id + amount + tid + PAYMENT key), uppercase hex; amount as a plain integer."""
    return sha256_hex(f"{user_id}{int(amount)}{tid}{payment_key}")


def billkey_payhash(user_id: str, billkey: str, payment_key: str) -> str:
    """For verification-only automatic payment: sha256(user_id + billkey + PAYMENT key)."""
    return sha256_hex(f"{user_id}{billkey}{payment_key}")


def sha256_hex(text: str) -> str:
    """Uppercase hex SHA-256 of the UTF-8 text."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest().upper()
