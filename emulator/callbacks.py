"""Sends a queued callback once and writes the attempt to the ledger."""
from __future__ import annotations

import json
import time

import requests

from .clock import Clock, iso
from .storage import Storage

RESPONSE_LIMIT = 4096  # bytes of the merchant's answer kept in the ledger
RETRY_INTERVAL = 300  # the documented policy: retries every 5 minutes (delivered by the dispatcher)


def acknowledged(status: int, body: bytes) -> bool:
    """Only HTTP 200 with a JSON body whose code is 0 (number or "0") acknowledges."""
    if status != 200:
        return False
    try:
        answer = json.loads(body)
    except ValueError:
        return False
    code = answer.get("code") if isinstance(answer, dict) else None
    return code == "0" or (type(code) is int and code == 0)


def attempt(storage: Storage, clock: Clock, callback_id: int, timeout: float) -> dict:
    """POST the callback body to its URL; record what happened; return the attempt."""
    callback = storage.callback(callback_id)
    started = time.monotonic()
    record = {"at": iso(clock.now()), "wall_time": clock.wall(),
              "http_status": None, "response_body": "", "error": ""}
    ok = False
    try:
        with requests.post(callback["url"], json=callback["body"], timeout=timeout,
                           allow_redirects=False, stream=True) as response:
            body = response.raw.read(RESPONSE_LIMIT, decode_content=True)
            record["http_status"] = response.status_code
            record["response_body"] = body.decode("utf-8", "replace")
            ok = acknowledged(response.status_code, body)
            if not ok:
                record["error"] = "not acknowledged: HTTP 200 with {\"code\": 0} expected"
    except requests.RequestException as exc:
        record["error"] = f"{type(exc).__name__}: {exc}"
    record["latency_ms"] = round((time.monotonic() - started) * 1000, 1)
    storage.record_attempt(callback_id, record, "delivered" if ok else "pending", None if ok else clock.timestamp() + RETRY_INTERVAL)
    return record
