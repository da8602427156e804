"""Access logs never show the control token: the value of a `token` query parameter in a logged
line is replaced, whichever server (uvicorn's with `serve --access-log`, or werkzeug's or gunicorn's
serving `payletter_emulator.serving.wsgi:app`) writes the line. The dashboard takes
`?token=` once, so the token would otherwise sit in every log of a request line."""
from __future__ import annotations

import logging
import re
from urllib.parse import unquote_plus

LOGGERS = ("uvicorn.access", "uvicorn.error", "werkzeug", "gunicorn.access", "gunicorn.error")
REDACTED = "[redacted]"
_PARAMETER = re.compile(r"([?&;])([^=&;\s\"?]+)=([^&;\s\"]*)")


def redact(line: str) -> str:
    """`line` with the value of every `token=` parameter (however it is percent-encoded) replaced."""
    def hide(match: re.Match) -> str:
        lead, name, value = match.groups()
        return f"{lead}{name}={REDACTED}" if unquote_plus(name).strip().lower() == "token" else match.group(0)

    return _PARAMETER.sub(hide, line)


class RedactToken(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "=" in message:
            hidden = redact(message)
            if hidden != message:
                record.msg, record.args = hidden, ()
        return True


def install() -> None:
    """On the servers' loggers, once per process."""
    for name in LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactToken) for f in logger.filters):
            logger.addFilter(RedactToken())
