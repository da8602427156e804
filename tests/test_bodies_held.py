"""The bytes of request bodies a serving process holds while they arrive are bounded in total
(serving/bridge.py's BODIES_HELD): a hundred uploads stalled one byte short of whole cost the
bound, not their sum, the process answers meanwhile, and the memory goes back once they close."""
from __future__ import annotations

import socket

import requests

from .conftest import EmulatorProcess, until

BODY = 1024 * 1024  # the gateway's body limit: each upload as large as a request may be
UPLOADS = 100  # 100 MiB in all, past the 64 MiB bound


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS:")) / 1024


def test_stalled_uploads_hold_no_more_than_the_bound(tmp_path):
    process = EmulatorProcess(tmp_path)
    uploads = []
    try:
        before = rss_mb(process.process.pid)
        chunk = b"x" * (BODY - 1)
        for n in range(UPLOADS):
            upload = socket.create_connection(("127.0.0.1", process.port))
            upload.sendall(b"POST /v1.0/payments/request HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                           b"Content-Length: %d\r\n\r\n" % BODY)
            upload.setblocking(False)
            try:
                upload.send(chunk)  # as much as the server takes: past the bound it reads no more
            except BlockingIOError:
                pass
            uploads.append(upload)
        # every upload has been offered its megabyte; the server answers others meanwhile
        assert requests.get(process.url + "/_emulator/health", timeout=10).status_code == 200
        held = rss_mb(process.process.pid) - before
        assert held < 64 + 32, f"{held:.0f} MB held for {UPLOADS} stalled uploads of 1 MiB"
        for upload in uploads:
            upload.close()
        # once the uploads have closed, their bytes go back to the system
        until(lambda: rss_mb(process.process.pid) - before < 32, 30, "the held bodies' memory returned")
    finally:
        for upload in uploads:
            upload.close()
        process.stop()
