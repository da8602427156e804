"""Access logs never show a credential: the value of a query parameter named like one (the
control token's `token`, an `api_key`: plumbing.is_credential) in a logged line is replaced,
whichever server (uvicorn's with `serve --access-log`, or werkzeug's or gunicorn's serving
`payletter_emulator.serving.wsgi:app`) writes the line. The dashboard takes
`?token=` once, so the token would otherwise sit in every log of a request line."""
from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from urllib.parse import unquote_plus

from .plumbing import REDACTED, is_credential

LOGGERS = ("uvicorn.access", "uvicorn.error", "werkzeug", "gunicorn.access", "gunicorn.error")
_PARAMETER = re.compile(r"([?&;])([^=&;\s\"?]+)=([^&;\s\"]*)")


def redact(line: str) -> str:
    """`line` with the value of every parameter named like a credential (however it is
    percent-encoded) replaced."""
    def hide(match: re.Match) -> str:
        lead, name, value = match.groups()
        return f"{lead}{name}={REDACTED}" if is_credential(unquote_plus(name).strip()) else match.group(0)

    return _PARAMETER.sub(hide, line)


class RedactToken(logging.Filter):
    """Redacts the record's message and each of its arguments, keeping their shape: a formatter
    may read the arguments themselves (uvicorn's access formatter unpacks its five), so they are
    never replaced by the formatted line."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str) and "=" in record.msg:
            record.msg = redact(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(_hidden(value) for value in record.args)
        elif isinstance(record.args, Mapping):  # gunicorn's access line: its atoms by name
            record.args = {name: _hidden(value) for name, value in record.args.items()}
        return True


def _hidden(value):
    return redact(value) if isinstance(value, str) and "=" in value else value


def install() -> None:
    """On the servers' loggers, once per process."""
    for name in LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactToken) for f in logger.filters):
            logger.addFilter(RedactToken())
