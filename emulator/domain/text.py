"""What JSON may carry that text may not."""
from __future__ import annotations

import json


def is_text(value) -> bool:
    """False when a string in `value` holds half of a surrogate pair: JSON may escape one
    (\\ud800), but no UTF-8 text can hold it."""
    try:
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


NUL = "\x00"


def nul_field(value, path: str = "") -> str | None:
    """Where the first NUL character sits in `value`'s strings or keys (a dotted path), or None.
    PostgreSQL cannot keep NUL in text while SQLite can: refused everywhere, both answer alike."""
    if isinstance(value, str):
        return (path or "body") if NUL in value else None
    if isinstance(value, dict):
        for key, item in value.items():
            here = f"{path}.{key}" if path else str(key)
            found = here if NUL in str(key) else nul_field(item, here)
            if found:
                return found
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found = nul_field(item, f"{path}[{index}]")
            if found:
                return found
    return None
