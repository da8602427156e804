"""The callback sender itself (h11, in an event loop), on asyncio's loop and on uvloop's (the one
`serve` runs). Each case is a real merchant on a port, scripted byte by byte."""
from __future__ import annotations

import asyncio
import json
import socket
import threading
import time

import pytest

from payletter_emulator.delivery import sender as callbacks
from payletter_emulator.delivery.sender import RESPONSE_LIMIT
from payletter_emulator.domain.callback_policy import Listening

from .conftest import RawMerchant

ACK = b'{"code": 0, "message": "success"}'


def _uvloop_runner():
    uvloop = pytest.importorskip("uvloop")  # not on Windows, where serve runs asyncio's loop
    return lambda: asyncio.Runner(loop_factory=uvloop.new_event_loop)


def _in_a_loop_of_its_own(make_runner, url: str, body: dict, loops: list | None = None, **options):
    """send in a fresh event loop, on a thread of its own (a loop other tests leave marked running
    on the main thread, as Playwright's does, would refuse a second one there); the loop is put in
    `loops`, if given."""
    done = {}

    def run():
        with make_runner() as runner:
            if loops is not None:
                loops.append(runner.get_loop())
            done["outcome"] = runner.run(callbacks.send(url, body, **options))

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    return done["outcome"]


def in_asyncio(url: str, body: dict, **options):
    return _in_a_loop_of_its_own(asyncio.Runner, url, body, **options)


def in_uvloop(url: str, body: dict, **options):
    return _in_a_loop_of_its_own(_uvloop_runner(), url, body, **options)


@pytest.fixture(params=[in_asyncio, in_uvloop], ids=["asyncio", "uvloop"])
def sender(request):
    return request.param


@pytest.fixture
def merchant():
    made = []

    def make(behave):
        made.append(RawMerchant(behave))
        return made[-1]

    yield make
    for each in made:
        each.close()


def answer(status: int, body: bytes, *, length: bool = True):
    def behave(connection, request):
        head = f"HTTP/1.1 {status} X\r\nContent-Type: application/json\r\n"
        head += f"Content-Length: {len(body)}\r\n" if length else "Connection: close\r\n"
        connection.sendall(head.encode() + b"\r\n" + body)
    return behave


def test_an_acknowledged_post_as_the_gateway_sends_it(sender, merchant):
    shop = merchant(answer(200, ACK))
    outcome = sender(shop.url, {"tid": "t-1", "product_name": "상품"}, timeout=2)
    assert outcome.acknowledged and outcome.http_status == 200 and outcome.error == ""
    assert outcome.response_body == ACK.decode()
    [request] = shop.requests
    head, body = request.split(b"\r\n\r\n", 1)
    lines = head.decode().split("\r\n")
    assert lines[0] == "POST /callback?shop=7 HTTP/1.1"
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    assert headers["host"] == shop.url.split("/")[2]
    assert headers["content-type"] == "application/json" and headers["user-agent"].startswith("payletter-emulator")
    assert json.loads(body.decode("utf-8")) == {"tid": "t-1", "product_name": "상품"}


@pytest.mark.parametrize("status, body, expected", [
    (500, ACK, 'not acknowledged'), (200, b'{"code": 1}', 'not acknowledged'), (200, b"<html>", 'not acknowledged')])
def test_what_does_not_acknowledge(sender, merchant, status, body, expected):
    outcome = sender(merchant(answer(status, body)).url, {}, timeout=2)
    assert not outcome.acknowledged and outcome.http_status == status and expected in outcome.error


def test_an_answer_read_to_the_end_of_the_connection(sender, merchant):
    outcome = sender(merchant(answer(200, ACK, length=False)).url, {}, timeout=2)
    assert outcome.acknowledged and outcome.response_body == ACK.decode()


def test_only_the_first_bytes_of_a_long_answer_are_kept(sender, merchant):
    outcome = sender(merchant(answer(500, b"x" * 1_000_000)).url, {}, timeout=5)
    assert outcome.response_body == "x" * RESPONSE_LIMIT and outcome.http_status == 500


def test_a_merchant_that_hangs_up_without_a_word(sender, merchant):
    outcome = sender(merchant(lambda connection, request: None).url, {}, timeout=2)
    assert outcome.error.startswith("ConnectionError") and outcome.http_status is None


def test_nobody_listening(sender):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    outcome = sender(f"http://127.0.0.1:{port}/", {}, timeout=2)
    assert outcome.error.startswith("ConnectionError") and "refused" in outcome.error.lower()


def test_a_silent_merchant_ends_the_attempt_at_the_timeout(sender, merchant):
    silent = merchant(lambda connection, request: time.sleep(3))  # the merchant says nothing: the case under test
    started = time.monotonic()
    outcome = sender(silent.url, {}, timeout=0.5)
    assert outcome.error.startswith("Timeout") and outcome.http_status is None
    assert time.monotonic() - started >= 0.498  # not before the timeout (an event loop's timer: whole ms)


def test_a_dribbling_merchant_cannot_stretch_the_attempt(sender, merchant):
    """One byte every 50 ms, each within any per-read timeout: the deadline is for the whole
    answer, so the sender hangs up on the merchant before the answer is whole."""
    def dribble(connection, request):
        for byte in b"HTTP/1.1 200 OK\r\nContent-Length: 33\r\n\r\n" + ACK:
            time.sleep(0.05)  # the merchant dribbles: the case under test
            connection.sendall(bytes([byte]))

    shop = merchant(dribble)
    started = time.monotonic()
    outcome = sender(shop.url, {}, timeout=0.6)
    assert outcome.error.startswith("Timeout") and time.monotonic() - started >= 0.598
    assert shop.wait_ended(1) == 1 and shop.cut_off == 1  # hung up on mid-answer, not read to the end


def test_a_stall_of_the_process_is_not_held_against_the_merchant(sender, merchant):
    """The merchant answers in 0.3 s while the process stands still for 3 s (its loop blocked, as
    a process stopped and continued): its answer is read, not cut off by the 1 s timeout."""
    loops = []

    def late(connection, request):
        loops[0].call_soon_threadsafe(time.sleep, 3.0)  # the sender's process stands still: the case under test
        time.sleep(0.3)  # the merchant thinks
        answer(200, ACK)(connection, request)

    outcome = sender(merchant(late).url, {}, timeout=1, loops=loops)
    assert outcome.acknowledged and outcome.http_status == 200, outcome
    assert outcome.latency_ms >= 3000  # the time it took, stall and all


def test_the_emulator_itself_is_never_sent_to(sender, merchant):
    """A connection whose peer is where the emulator listens (reached by a name) is closed before
    a byte is sent on it."""
    shop = merchant(answer(200, ACK))
    port = int(shop.url.split(":")[2].split("/")[0])
    outcome = sender(shop.url.replace("127.0.0.1", "localhost"), {}, timeout=2,
                     listening=Listening("0.0.0.0", (port,)))
    assert outcome.blocked and not outcome.acknowledged and outcome.http_status is None
    assert outcome.error.startswith("blocked: callback_url reaches the emulator itself") and f":{port}," in outcome.error
    assert shop.wait_ended(1) == 1 and shop.requests == []  # closed with nothing sent


def test_a_url_that_is_not_http(sender):
    outcome = sender("ftp://merchant.example/callback", {}, timeout=2)
    assert outcome.error.startswith("ConnectionError: ValueError") and not outcome.acknowledged


def test_a_host_off_the_allow_list_is_never_contacted(sender, merchant):
    shop = merchant(answer(200, ACK))
    outcome = sender(shop.url, {}, timeout=2, allowed_hosts=("*.merchant.example",))
    assert outcome.blocked and shop.requests == []


@pytest.fixture
def tls_merchant(merchant):
    """An HTTPS merchant whose certificate a test CA (trustme) signed for 127.0.0.1."""
    import ssl

    import trustme

    authority = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert("127.0.0.1").configure_cert(server_context)

    def behave(connection, request):
        answer(200, ACK)(connection, request)

    class TLSMerchant(RawMerchant):
        def _one(self, connection):
            try:
                wrapped = server_context.wrap_socket(connection, server_side=True)
            except (ssl.SSLError, OSError):  # the sender refused the certificate
                connection.close()
                return
            super()._one(wrapped)

    shop = TLSMerchant(behave)
    shop.url = shop.url.replace("http://", "https://")
    yield shop, authority
    shop.close()


def test_https_with_a_certificate_the_sender_trusts(sender, tls_merchant, monkeypatch):
    import ssl

    shop, authority = tls_merchant
    trusting = ssl.create_default_context()
    authority.configure_trust(trusting)
    monkeypatch.setattr(callbacks, "_tls", trusting)
    outcome = sender(shop.url, {"tid": "t-1"}, timeout=3)
    assert outcome.acknowledged and outcome.http_status == 200
    assert len(shop.requests) == 1


def test_https_with_a_certificate_nobody_vouches_for(sender, tls_merchant):
    shop, _ = tls_merchant
    outcome = sender(shop.url, {"tid": "t-1"}, timeout=3)
    assert outcome.error.startswith("ConnectionError") and "CERTIFICATE_VERIFY_FAILED" in outcome.error
    assert shop.requests == []


# --- through a serving emulator: what the ledger says ---------------------------------------------

@pytest.fixture(scope="module")
def server(tmp_path_factory):
    from .conftest import EmulatorProcess

    process = EmulatorProcess(tmp_path_factory.mktemp("sender"), "--workers", "1", "--callback-timeout", "2")
    yield process
    process.stop()


def _approved(server, callback_url: str) -> tuple:
    """A payment approved with `callback_url`, on a frozen clock; (the client, the tid)."""
    from .conftest import Api

    api = Api(server.url, callback_url)
    api.control("/reset")
    api.control("/clock", {"freeze": True})
    token = api.request_payment()
    return api, api.control(f"/payments/{token}/approve")["fields"]["tid"]


def test_a_merchant_dribbling_a_byte_each_half_second_is_cut_off_at_the_deadline(server, merchant):
    """The answer comes one byte every 0.5 s: the attempt ends at the 2 s deadline, the ledger says
    it timed out, and the merchant is hung up on mid-answer."""
    def dribble(connection, request):
        for byte in b"HTTP/1.1 200 OK\r\nContent-Length: 33\r\n\r\n" + ACK:
            connection.sendall(bytes([byte]))
            time.sleep(0.5)  # the merchant dribbles: the case under test

    shop = merchant(dribble)
    api, tid = _approved(server, shop.url)
    api.flush()
    [callback] = api.control(f"/callbacks?tid={tid}", method="GET")["callbacks"]
    [attempt] = callback["attempts"]
    assert attempt["state"] == "done" and attempt["error"].startswith("Timeout") and attempt["http_status"] is None
    # the deadline (the loop's timer may fire a fraction of a millisecond early), not the 36 s of the whole answer
    assert 1990 <= attempt["latency_ms"] < 6000
    assert callback["status"] == "pending" and callback["attempts_made"] == 1
    assert shop.wait_ended(1) == 1 and shop.cut_off == 1


def test_every_post_the_merchant_receives_is_an_attempt_on_the_ledger(server):
    """A refusal, a dropped connection, an answer too late, an acknowledgement, then a resend: as
    many attempts on the ledger as POSTs received, each recorded as the merchant answered it."""
    from .conftest import Answer, CallbackReceiver, serve_receiver

    receiver = CallbackReceiver()
    listener = serve_receiver(receiver)
    try:
        receiver.script.extend([Answer(status=500), Answer(drop=True), Answer(delay=3), Answer()])
        api, tid = _approved(server, receiver.url)
        api.flush()
        for _ in range(3):
            api.advance(seconds=300)
            api.flush()
        [callback] = api.control(f"/callbacks?tid={tid}", method="GET")["callbacks"]
        api.control(f"/callbacks/{callback['id']}/resend")
        [callback] = api.control(f"/callbacks?tid={tid}", method="GET")["callbacks"]
        attempts = callback["attempts"]
        assert len(attempts) == len(receiver.wait_for(5)) == 5
        assert [(a["kind"], a["http_status"], a["error"].split(":")[0]) for a in attempts] == [
            ("first", 500, "not acknowledged"), ("retry", None, "ConnectionError"), ("retry", None, "Timeout"),
            ("retry", 200, ""), ("resend", 200, "")]
        assert callback["status"] == "delivered" and {a["state"] for a in attempts} == {"done"}
    finally:
        listener.shutdown()
