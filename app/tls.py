"""HTTPS (issue #26): the start-time checks of the certificate files, and the client
certificate a TLS connection presented.

``check_files`` refuses a start in one line naming the variable and the reason: a file
missing or unreadable, a certificate that is not PEM, expired or not yet valid, a key that
does not belong to the certificate, is encrypted, or can be read by others (as ``ssh``
refuses such a key). It never quotes a key's content.

How the app learns the peer's certificate: Hypercorn 0.18 does not implement the ASGI TLS
extension (``scope["extensions"]["tls"]``; its issue #62 is open), so the SSL context
Hypercorn builds gets ``sslobject_class = PeerRecordingSSLObject`` (``SSLContext``'s
documented hook for a custom ``SSLObject``). When its handshake completes, the object puts
the verified peer certificate in the ``PEER`` context variable. asyncio runs a
connection's transport callbacks (the handshake among them) in a context of that
connection's own, and the tasks Hypercorn starts for the connection (its requests, HTTP/2
streams, a WebSocket) copy it when they are created, after the handshake: each request
sees its own connection's certificate and no other's. ``tests/test_tls.py`` pins this
(concurrent connections with different certificates, a connection without one after one
with one, HTTP/2 and a WebSocket).
"""

from __future__ import annotations

import os
import ssl
import stat
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from cryptography import x509
from cryptography.x509.oid import NameOID

from app.config import Config
from app.errors import StartupError


@dataclass(slots=True)
class Peer:
    """A verified client certificate of one TLS connection."""

    der: bytes
    names: tuple[str, ...] = ()  # its DNS SANs, then its subject CN
    audited: bool = False  # the connection's first authentication is written down
    checked: bool = field(default=False, repr=False)


PEER: ContextVar[Peer | None] = ContextVar("sovd_tls_peer", default=None)


class PeerRecordingSSLObject(ssl.SSLObject):
    """Records the verified peer certificate of its connection when the handshake ends."""

    def do_handshake(self) -> None:
        super().do_handshake()
        der = self.getpeercert(binary_form=True)
        if der:
            PEER.set(Peer(der))


def peer() -> Peer | None:
    """The current connection's verified client certificate, its names read once."""
    found = PEER.get()
    if found is not None and not found.checked:
        found.names = certificate_names(found.der)
        found.checked = True
    return found


def certificate_names(der: bytes) -> tuple[str, ...]:
    """The DNS names of a certificate's subjectAltName, then its subject's CN."""
    cert = x509.load_der_x509_certificate(der)
    names: list[str] = []
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        names += san.get_values_for_type(x509.DNSName)
    except x509.ExtensionNotFound:
        pass
    for attribute in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME):
        value = attribute.value
        names.append(value if isinstance(value, str) else value.decode("utf-8", "replace"))
    return tuple(dict.fromkeys(names))


# -- the start-time checks --------------------------------------------------------------


def _read(path: Path, variable: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise StartupError(
            f"{variable}: cannot read {path}: {exc.strerror or exc}; set {variable} to a"
            " readable PEM file"
        ) from None


def _certificates(data: bytes, path: Path, variable: str) -> list[x509.Certificate]:
    try:
        found = x509.load_pem_x509_certificates(data)
    except ValueError:
        found = []
    if not found:
        raise StartupError(f"{variable}: {path} holds no PEM certificate")
    return found


def _in_date(cert: x509.Certificate, path: Path, variable: str, now: datetime) -> None:
    if cert.not_valid_after_utc <= now:
        raise StartupError(
            f"{variable}: the certificate in {path} expired on"
            f" {cert.not_valid_after_utc:%Y-%m-%d %H:%M} UTC; renew it"
        )
    if cert.not_valid_before_utc > now:
        raise StartupError(
            f"{variable}: the certificate in {path} is not valid before"
            f" {cert.not_valid_before_utc:%Y-%m-%d %H:%M} UTC"
        )


def _private(path: Path) -> None:
    try:
        mode = stat.S_IMODE(os.stat(path).st_mode)
    except OSError as exc:
        raise StartupError(f"SOVD_TLS_KEY: cannot read {path}: {exc.strerror or exc}") from None
    if mode & 0o077:
        raise StartupError(
            f"SOVD_TLS_KEY: {path} can be read by others (mode {mode:04o}); a private key"
            f" must be the service's alone: chmod 600 {path}"
        )


def _no_password() -> bytes:
    raise ValueError("encrypted")


def _matching(cert: Path, key: Path) -> None:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(cert, key, password=_no_password)
    except ValueError:
        raise StartupError(
            f"SOVD_TLS_KEY: {key} is encrypted; give the service an unencrypted key (kept"
            " private by its file mode)"
        ) from None
    except ssl.SSLError as exc:
        if "KEY_VALUES_MISMATCH" in str(exc):
            raise StartupError(
                f"SOVD_TLS_KEY: the key in {key} does not belong to the certificate in {cert}"
                " (SOVD_TLS_CERT)"
            ) from None
        raise StartupError(
            f"SOVD_TLS_KEY: {key} is not a PEM private key ({exc.reason or 'unreadable'})"
        ) from None


def check_files(config: Config, now: datetime | None = None) -> None:
    """Refuse the start (StartupError, one line) unless the TLS files are usable."""
    cert, key, ca = config.tls_cert, config.tls_key, config.tls_client_ca
    if cert is None or key is None:
        return
    when = now or datetime.now(UTC)
    chain = _certificates(_read(cert, "SOVD_TLS_CERT"), cert, "SOVD_TLS_CERT")
    _in_date(chain[0], cert, "SOVD_TLS_CERT", when)
    _private(key)
    _read(key, "SOVD_TLS_KEY")
    _matching(cert, key)
    if ca is not None:
        authorities = _certificates(_read(ca, "SOVD_TLS_CLIENT_CA"), ca, "SOVD_TLS_CLIENT_CA")
        if all(c.not_valid_after_utc <= when for c in authorities):
            raise StartupError(
                f"SOVD_TLS_CLIENT_CA: every certificate in {ca} has expired; no client"
                " certificate could verify"
            )
