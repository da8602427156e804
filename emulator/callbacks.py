"""Sends one callback over HTTP, as the gateway would, and says what happened."""
from __future__ import annotations

import threading
import time

from .domain.delivery import Outcome, acknowledged, host_allowed

RESPONSE_LIMIT = 4096  # bytes of the merchant's answer kept in the ledger
USER_AGENT = "payletter-emulator callback"

_sessions = threading.local()


def send(url: str, body: dict, *, timeout: float, allowed_hosts: tuple[str, ...] = ()) -> Outcome:
    """POST `body` as JSON to `url`: no redirects followed, the whole attempt bounded by
    `timeout`, at most RESPONSE_LIMIT bytes of the answer read."""
    import requests  # on first use: a server that sends no callback never pays for the import
    from urllib3.util import Timeout

    started = time.monotonic()
    if not host_allowed(url, allowed_hosts):
        return Outcome(None, "", "blocked: the host of callback_url is not in the callback allow-list",
                       0.0, acknowledged=False, blocked=True)
    status, answer, error = None, b"", ""
    try:
        with _session().post(url, json=body, timeout=Timeout(total=timeout), allow_redirects=False,
                             stream=True, headers={"User-Agent": USER_AGENT}) as response:
            status = response.status_code
            answer = _read_bounded(response, started + timeout)
    except requests.RequestException as exc:
        error = f"{type(exc).__name__}: {exc}"
    except TimeoutError as exc:
        error = f"Timeout: {exc}"
    latency = round((time.monotonic() - started) * 1000, 1)
    ok = error == "" and acknowledged(status, answer)
    if not error and not ok:
        error = 'not acknowledged: HTTP 200 with {"code": 0} expected'
    return Outcome(status, answer.decode("utf-8", "replace"), error, latency, acknowledged=ok)


def _read_bounded(response, deadline: float) -> bytes:
    answer = b""
    for chunk in response.iter_content(1024):
        answer += chunk
        if len(answer) >= RESPONSE_LIMIT:
            return answer[:RESPONSE_LIMIT]
        if time.monotonic() > deadline:
            raise TimeoutError("the answer took longer than the callback timeout")
    return answer


def _session():
    """One keep-alive session per sending thread."""
    import requests

    session = getattr(_sessions, "session", None)
    if session is None:
        session = _sessions.session = requests.Session()
        session.trust_env = False  # a proxy from the environment must not sit between us and the merchant
    return session
