"""The gateway's identifier formats: token, tid, cid, billkey. Pure functions of their inputs."""
from __future__ import annotations

import re
from datetime import datetime

from .clock import KST

TOKEN_COUNTER_DIGITS = 5
TOKEN_DIGITS = 13 + TOKEN_COUNTER_DIGITS  # epoch milliseconds and the counter; longer ones do not fit SQLite
TID_SERIAL_DIGITS = 7
_TOKEN = re.compile(rf"[0-9]{{1,{TOKEN_DIGITS}}}")


def token(epoch_ms: int, counter: int, *, frozen: bool = False) -> int:
    """13-digit epoch milliseconds followed by a 5-digit counter (its last five digits): an 18-digit
    integer. On a `frozen` clock every token has the same milliseconds, so the counter carries into
    them instead (past 99,999 they read a millisecond later): serials never repeat, so neither do
    tokens, however many one frozen instant takes. On a running clock the counter's last digits
    keep tokens of processes holding far-apart blocks of serials apart."""
    if frozen:
        return epoch_ms * 10**TOKEN_COUNTER_DIGITS + counter
    return int(f"{epoch_ms:013d}{counter % 10**TOKEN_COUNTER_DIGITS:05d}")


def is_token(text: str) -> bool:
    """Whether `text` can name a token: plain ASCII digits, at most TOKEN_DIGITS of them
    (str.isdigit also passes '²', which int() cannot read)."""
    return _TOKEN.fullmatch(text) is not None


def tid(client_id: str, at: datetime, serial: int) -> str:
    """`t` + client_id + `-` + YYYYMMDD + 7 digits, as in `tpay_test-202003058157772`."""
    day = at.astimezone(KST).strftime("%Y%m%d")
    return f"t{client_id}-{day}{serial % 10**TID_SERIAL_DIGITS:07d}"


def cid(style: str, at: datetime, digits: str, tid: str) -> str:
    """Approval number: 7 digits (most methods); the tid's serial less one (a card on the test
    gateway: `tpay_test-202003058157772` has cid `8157771` in every capture; oncash in the
    reference's example: `tpay_test-201809142506687`, `2506686`); or YYYYMMDDHHMMSS + 6 digits
    (mobile)."""
    if style == "tid_serial":
        return f"{(int(tid[-TID_SERIAL_DIGITS:]) - 1) % 10**TID_SERIAL_DIGITS:07d}"
    if style == "datetime20":
        return at.astimezone(KST).strftime("%Y%m%d%H%M%S") + digits[:6].rjust(6, "0")
    return digits[:7].rjust(7, "0")


def billkey(client_id: str, at: datetime, serial: int) -> str:
    """`tb` + client_id + 14-digit timestamp + 4 digits."""
    stamp = at.astimezone(KST).strftime("%Y%m%d%H%M%S")
    return f"tb{client_id}{stamp}{serial % 10**4:04d}"


TID_PATTERN = re.compile(r"^t(?P<client_id>.+)-(?P<day>\d{8})\d{7}$")
