"""What the hosted-page tests share: a merchant's site (a real HTTP server that receives the
return POST and the cancel redirect), Debian's chromium driven by Playwright, screenshots under
test-artifacts/, and waiting for a callback without sleeping.

The browser is the system's chromium (a download is not possible in CI): .ci/run installs it. A
machine without it fails these tests with a message saying so; they are never skipped.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import threading
from dataclasses import dataclass, field
from html.parser import HTMLParser
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import pytest

from .conftest import PAYMENT_KEY, CallbackReceiver

ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts" / "pages"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
DESKTOP = {"viewport": {"width": 1280, "height": 900}}
PHONE = {"viewport": {"width": 390, "height": 844}, "device_scale_factor": 2, "is_mobile": True, "has_touch": True,
         "user_agent": "Mozilla/5.0 (Linux; Android 14; SM-S918N) AppleWebKit/537.36 (KHTML, like Gecko) "
                       "Chrome/150.0 Mobile Safari/537.36"}
WAIT = 15  # seconds a test waits for the browser to land or a callback to arrive


def payhash(user_id: str, amount, tid: str, key: str = PAYMENT_KEY) -> str:
    """What a merchant recomputes: sha256(user_id + amount + tid + PAYMENT key), uppercase hex."""
    return hashlib.sha256(f"{user_id}{int(amount)}{tid}{key}".encode("utf-8")).hexdigest().upper()


# --- the merchant's site ------------------------------------------------------------------------

@dataclass
class Arrival:
    method: str
    path: str
    query: dict
    headers: dict
    form: dict  # the POSTed fields, form-decoded (UTF-8), every value text


@dataclass
class Merchant:
    """return_url, cancel_url and app_return_url live here: every request is recorded, and the
    browser gets a small page that says it arrived."""

    url: str = ""
    arrivals: list[Arrival] = field(default_factory=list)
    changed: threading.Condition = field(default_factory=threading.Condition)

    def clear(self) -> None:
        with self.changed:
            self.arrivals.clear()

    def wait_for(self, path: str, timeout: float = WAIT) -> Arrival:
        with self.changed:
            found = self.changed.wait_for(lambda: [a for a in self.arrivals if a.path == path], timeout)
        assert found, f"nothing arrived at {path} within {timeout}s: {self.arrivals}"
        assert len(found) == 1, found
        return found[0]


@pytest.fixture(scope="session")
def merchant():
    site = Merchant()

    class Handler(BaseHTTPRequestHandler):
        def _record(self):
            length = int(self.headers.get("Content-Length", 0))
            body = self.rfile.read(length).decode("utf-8")
            split = urlsplit(self.path)
            arrival = Arrival(self.command, split.path, dict(parse_qsl(split.query)), dict(self.headers),
                              dict(parse_qsl(body, keep_blank_values=True)))
            with site.changed:
                site.arrivals.append(arrival)
                site.changed.notify_all()
            page = (f"<!doctype html><meta charset=utf-8><link rel=icon href='data:,'><title>Merchant</title>"
                    f"<h1 data-testid=merchant-landed>{self.command} {split.path}</h1>").encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(page)))
            self.end_headers()
            self.wfile.write(page)

        do_GET = do_POST = _record

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    site.url = f"http://127.0.0.1:{server.server_port}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield site
    server.shutdown()


@pytest.fixture
def shop(merchant):
    merchant.clear()
    return merchant


def wait_for_callback(receiver: CallbackReceiver, tid: str, timeout: float = WAIT) -> dict:
    """The callback of `tid`, once the receiver has it (it is sent in the background)."""
    def arrived():
        return [r.json() for r in receiver.received if r.json().get("tid") == tid]

    with receiver.event:
        bodies = receiver.event.wait_for(arrived, timeout)
    assert bodies, f"no callback for {tid} within {timeout}s"
    return bodies[-1]


# --- the browser ------------------------------------------------------------------------------

def chromium_path() -> str:
    found = os.environ.get("CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if not found or not os.access(found, os.X_OK):
        pytest.fail(f"the hosted-page tests need Debian's chromium ({found or 'not on PATH'}): "
                    "apt-get install chromium (.ci/run does), or set CHROMIUM to a Chromium binary", pytrace=False)
    return found


@pytest.fixture(scope="session")
def chromium(playwright):
    browser = playwright.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
    yield browser
    browser.close()


def _page(chromium, options: dict):
    """A fresh browser profile; after the test, no script error and no console error (a blocked
    asset, a Content-Security-Policy violation) may have happened on its pages."""
    context = chromium.new_context(locale="ko-KR", **options)
    context.set_default_timeout(WAIT * 1000)
    page = context.new_page()
    problems = []

    def console(message):
        # A page answered with its own status (409, 422, ...) is logged as a failed load: not a
        # problem, unless it is one of the page's assets.
        page_status = message.text.startswith("Failed to load resource") and \
            "/static/" not in (message.location or {}).get("url", "")
        if message.type == "error" and not page_status:
            problems.append(f"console: {message.text} {message.location}")

    page.on("pageerror", lambda error: problems.append(f"script error: {error}"))
    page.on("console", console)
    yield page
    context.close()
    assert problems == [], problems


@pytest.fixture
def desktop(chromium):
    yield from _page(chromium, DESKTOP)


@pytest.fixture
def phone(chromium):
    yield from _page(chromium, PHONE)


def screenshot(page, name: str) -> Path:
    """A full-page PNG a person can look at, kept by the test run."""
    path = ARTIFACTS / f"{name}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(path), full_page=True)
    return path


# --- reading a page without a browser -------------------------------------------------------------

class _Forms(HTMLParser):
    def __init__(self):
        super().__init__()
        self.forms: list[dict] = []
        self.testids: set[str] = set()

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if "data-testid" in attrs:
            self.testids.add(attrs["data-testid"])
        if tag == "form":
            self.forms.append({"action": attrs.get("action"), "testid": attrs.get("data-testid"), "fields": {}})
        elif tag == "input" and self.forms and attrs.get("name"):
            self.forms[-1]["fields"][attrs["name"]] = attrs.get("value", "")


def read_html(text: str) -> _Forms:
    """The forms (action, hidden and other inputs' values, unescaped) and data-testids of a page."""
    parser = _Forms()
    parser.feed(text)
    return parser
