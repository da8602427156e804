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
