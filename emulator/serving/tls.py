"""HTTPS like the gateway's: a CA kept beside the database, a certificate it signs for the hosts
the server answers as, server contexts that refuse anything older than TLS 1.2, and uvicorn's
options that serve them."""
from __future__ import annotations

import asyncio
import hashlib
import ipaddress
import os
import re
import socket
import ssl
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from ..config import Settings
from ..domain.endpoints import GATEWAY_HOSTS
from ..storage.backends import POSTGRES_SCHEMES

MINIMUM_VERSION = ssl.TLSVersion.TLSv1_2  # the gateway's own floor
# Seconds a closing HTTPS connection waits for the client's close_notify: an idle keep-alive client
# never sends it, and a stop waited for it until uvicorn's graceful-stop time ran out (30 s is the
# event loop's default). HTTP needs none: its answers are framed.
TLS_SHUTDOWN = 1.0
CA_FILE = "payletter-emulator-ca.pem"  # what clients trust: the CA's certificate alone
CA_KEY_FILE = "payletter-emulator-ca.key"  # the CA's key with its certificate; stays on this machine
CA_PATH = "/_emulator/ca.pem"
_WILDCARDS = ("", "0.0.0.0", "::")
_DNS_LABEL = re.compile(r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?")


@dataclass(frozen=True)
class Certificates:
    """What a server loads: its certificate chain and key (one file may hold both), and the CA
    that signed it, when the emulator made it (None for one's own certificate)."""

    cert_file: Path
    key_file: Path
    ca_file: Path | None = None


def enabled(settings: Settings) -> bool:
    """HTTPS is on with `--tls`, or with one's own certificate."""
    return bool(settings.tls or settings.tls_cert)


def scheme(settings: Settings) -> str:
    return "https" if enabled(settings) else "http"


def data_folder(db: str) -> Path:
    """Where the CA lives: beside a SQLite file; the working folder for `:memory:` and PostgreSQL."""
    if db == ":memory:" or db.startswith(POSTGRES_SCHEMES):
        return Path.cwd()
    return Path(db).expanduser().resolve().parent


def ca_path(db: str) -> Path:
    """The CA certificate that a server started with `--tls` and this database uses (made by
    its first start): what a client passes as `verify=`."""
    return data_folder(db) / CA_FILE


def hosts(settings: Settings) -> list[str]:
    """The names the certificate is made for: loopback, the address listened on (this machine's
    name when that is every address), and the host of the public URL."""
    names = ["localhost", "127.0.0.1", "::1"]
    if settings.host in _WILDCARDS:
        names.append(socket.gethostname())
    else:
        names.append(settings.host)
    if settings.public_url and (public := urlsplit(settings.public_url).hostname):
        names.append(public)
    return list(dict.fromkeys(name for name in names if _usable(name)))


def prepare(settings: Settings) -> Certificates:
    """The files a server with these settings loads: one's own (`--tls-cert`, `--tls-key`), or
    a certificate for `hosts(settings)` signed by the data folder's CA, both made if missing."""
    if settings.tls_cert:
        return Certificates(Path(settings.tls_cert), Path(settings.tls_key or settings.tls_cert))
    return signed(settings.db, hosts(settings))


def gateway_certificates(db: str) -> Certificates:
    """What `--intercept` answers the gateway's hosts with: a certificate for them signed by the
    same CA (beside `db`), whether or not `--tls` is on."""
    return signed(db, list(GATEWAY_HOSTS))


def signed(db: str, names: list[str]) -> Certificates:
    """A certificate for `names` signed by the data folder's CA, both made if missing."""
    folder = data_folder(db)
    folder.mkdir(parents=True, exist_ok=True)
    key_pem, ca_cert = _split(_create_once(folder / CA_KEY_FILE, _new_ca))
    _write_if_changed(folder / CA_FILE, ca_cert)
    digest = hashlib.sha256(ca_cert + "\n".join(names).encode()).hexdigest()[:12]
    # Named after the CA and the hosts: a new CA or another --host gets its own file.
    server = folder / f"payletter-emulator-tls-{digest}.pem"
    _create_once(server, lambda: _issue(key_pem, ca_cert, names))
    return Certificates(server, server, folder / CA_FILE)


def server_context(certificates: Certificates) -> ssl.SSLContext:
    """The server's context: TLS 1.2 at least, said here rather than left to Python's default."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = MINIMUM_VERSION
    context.load_cert_chain(certificates.cert_file, certificates.key_file)
    return context


def uvicorn_options(certificates: Certificates) -> dict:
    """uvicorn's options for HTTPS on the port it serves, through its public settings: the context
    is `server_context`'s (`ssl_context_factory`), the loop `event_loop` (an import string)."""
    return {"ssl_context_factory": lambda config, default: server_context(certificates),
            "loop": f"{__name__}:event_loop"}


def event_loop() -> asyncio.AbstractEventLoop:
    """The loop uvicorn picks by default (uvloop where installed, else asyncio's), whose TLS servers
    wait TLS_SHUTDOWN for a client's close_notify: uvicorn has no setting for it."""
    try:
        from uvloop import Loop as base
    except ImportError:
        base = asyncio.ProactorEventLoop if sys.platform == "win32" else asyncio.SelectorEventLoop

    class Loop(base):
        async def create_server(self, *args, **kwargs):
            if kwargs.get("ssl") is not None:
                kwargs.setdefault("ssl_shutdown_timeout", TLS_SHUTDOWN)
            return await super().create_server(*args, **kwargs)

    return Loop()


def install(app, certificates: Certificates) -> None:
    """Serve the CA's certificate at GET /_emulator/ca.pem, open like health: it is public, and a
    client needs it before it can trust anything else the server says."""
    if certificates.ca_file is None:
        return
    ca_file = certificates.ca_file

    def ca_pem():
        return ca_file.read_bytes(), 200, {"Content-Type": "application/x-pem-file"}

    app.add_url_rule(CA_PATH, "tls_ca_pem", ca_pem, methods=["GET"])


def _new_ca() -> bytes:
    import trustme  # only a server that makes a certificate pays for the import

    ca = trustme.CA(organization_name="payletter-emulator", organization_unit_name="local CA")
    return ca.private_key_pem.bytes() + ca.cert_pem.bytes()


def _issue(key_pem: bytes, cert_pem: bytes, names: list[str]) -> bytes:
    """A certificate for `names` signed by the CA, with its key."""
    import trustme

    ca = trustme.CA.from_pem(cert_pem, key_pem)
    return ca.issue_cert(*names, common_name=names[0], organization_name="payletter-emulator") \
        .private_key_and_cert_chain_pem.bytes()


def _split(pem: bytes) -> tuple[bytes, bytes]:
    """The key and the certificate of the CA's file."""
    start = pem.index(b"-----BEGIN CERTIFICATE-----")
    return pem[:start], pem[start:]


def _create_once(path: Path, make) -> bytes:
    """The file's bytes; made by `make` if it does not exist. Servers starting together on one
    folder agree: the first file linked into place wins, and is never rewritten."""
    if path.exists():
        return path.read_bytes()
    data = make()
    temporary = _temporary(path.parent, data, mode=0o600)
    try:
        os.link(temporary, path)
    except FileExistsError:
        pass
    except OSError:  # a file system without hard links: whole files still, the last one wins
        os.replace(temporary, path)
    finally:
        Path(temporary).unlink(missing_ok=True)
    return path.read_bytes()


def _write_if_changed(path: Path, data: bytes) -> None:
    if path.exists() and path.read_bytes() == data:
        return
    os.replace(_temporary(path.parent, data, mode=0o644), path)


def _temporary(folder: Path, data: bytes, mode: int) -> str:
    descriptor, name = tempfile.mkstemp(dir=folder, prefix=".payletter-emulator-")
    with os.fdopen(descriptor, "wb") as file:
        file.write(data)
    os.chmod(name, mode)
    return name


def _usable(name: str) -> bool:
    """An IP address or a DNS name a certificate can carry (a machine's name may be neither)."""
    try:
        ipaddress.ip_address(name)
        return True
    except ValueError:
        return 0 < len(name) <= 253 and all(_DNS_LABEL.fullmatch(label) for label in name.rstrip(".").split("."))
