"""Reading TLS and bearer-token files, shared by the server and the clients.

Every file is read the way the repository's are (:mod:`seedlock.core.files`:
a regular file, opened without blocking, at most :data:`MAX_CREDENTIAL_BYTES`), and every fault is a
:class:`UserError` naming the file and what to do, never echoing a secret.
PEM files are parsed here (with the standard library's ``ssl``) so a wrong
file is refused when it is named, not later as an opaque handshake failure.
"""

from __future__ import annotations

import re
import ssl
from dataclasses import dataclass
from pathlib import Path

from seedlock.core.errors import UserError
from seedlock.core.files import UnreadableFile, read_bytes

MAX_CREDENTIAL_BYTES = 1 << 20  # certificate chains and token lists are far smaller

_PEM_BLOCK = re.compile(rb"-----BEGIN ([A-Z0-9 ]+)-----")
# What gRPC may send as a metadata value, minus whitespace, which would make
# "Bearer <token>" ambiguous.
_TOKEN = re.compile(r"[\x21-\x7e]+")


def read_file(path: str | Path, what: str) -> bytes:
    """The bytes of the regular file ``path``; ``what`` names it in errors ("TLS key")."""
    try:
        return read_bytes(path, MAX_CREDENTIAL_BYTES)
    except FileNotFoundError:
        raise UserError(f"{what} {path} does not exist") from None
    except UnreadableFile as exc:  # a folder, a FIFO, too large, a hung mount
        raise UserError(f"{what} {exc}") from None
    except OSError as exc:
        raise UserError(f"cannot read {what} {path}: {exc.strerror or exc}") from None


# -- PEM -------------------------------------------------------------------------
def _labels(data: bytes) -> list[str]:
    return [m.decode() for m in _PEM_BLOCK.findall(data)]


def check_certificates(data: bytes, where: str) -> None:
    """``data`` holds one or more PEM certificates that parse."""
    if "CERTIFICATE" not in _labels(data):
        raise UserError(f"{where} holds no PEM certificate (-----BEGIN CERTIFICATE-----)")
    try:
        ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT).load_verify_locations(cadata=data.decode("ascii"))
    except (ssl.SSLError, UnicodeDecodeError, ValueError) as exc:
        raise UserError(f"{where}: a certificate in it does not parse ({getattr(exc, 'reason', None) or exc})") from None


def check_private_key(data: bytes, where: str) -> None:
    """``data`` holds an unencrypted PEM private key (gRPC cannot ask for a passphrase)."""
    labels = _labels(data)
    if "ENCRYPTED PRIVATE KEY" in labels or b"Proc-Type: 4,ENCRYPTED" in data:
        raise UserError(f"{where} is encrypted; give an unencrypted key (e.g. openssl pkey -in KEY -out plain.key)")
    if not any(label.endswith("PRIVATE KEY") for label in labels):
        raise UserError(f"{where} holds no PEM private key (-----BEGIN PRIVATE KEY-----)")


def check_key_pair(cert_path: str | Path, key_path: str | Path) -> None:
    """The key in ``key_path`` belongs to the (first) certificate in ``cert_path``."""

    def no_passphrase() -> str:
        raise UserError(f"TLS key {key_path} is encrypted; give an unencrypted key")

    try:
        ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT).load_cert_chain(cert_path, key_path, password=no_passphrase)
    except ssl.SSLError as exc:
        if exc.reason == "KEY_VALUES_MISMATCH":
            raise UserError(f"TLS key {key_path} does not belong to the certificate in {cert_path}") from None
        raise UserError(f"TLS certificate {cert_path} and key {key_path} do not load together ({exc.reason or exc})") from None


@dataclass(frozen=True)
class TLSFiles:
    """PEM bytes, checked: a certificate chain and its key (either both or
    neither), and the certificates that verify the other side (``ca``)."""

    cert_chain: bytes | None = None
    private_key: bytes | None = None
    ca: bytes | None = None


def load_tls_files(cert: str | Path | None, key: str | Path | None, ca: str | Path | None,
                   cert_flag: str = "--tls-cert", key_flag: str = "--tls-key", ca_flag: str = "--tls-ca") -> TLSFiles:
    """Read and check TLS files named on a command line (the flags name them in errors)."""
    if (cert is None) != (key is None):
        raise UserError(f"{cert_flag} and {key_flag} go together: give both (the certificate and its private key) or neither")
    chain = private = roots = None
    if cert is not None and key is not None:
        chain = read_file(cert, "TLS certificate")
        check_certificates(chain, f"TLS certificate {cert} ({cert_flag})")
        private = read_file(key, "TLS key")
        check_private_key(private, f"TLS key {key} ({key_flag})")
        check_key_pair(cert, key)
    if ca is not None:
        roots = read_file(ca, "CA certificate")
        check_certificates(roots, f"CA certificate {ca} ({ca_flag})")
    return TLSFiles(chain, private, roots)


# -- bearer tokens ----------------------------------------------------------------
def check_token(token: str, where: str) -> str:
    """``token`` stripped of surrounding whitespace; refused (without echoing it)
    when empty or holding characters a gRPC header cannot carry."""
    token = token.strip()
    if not token:
        raise UserError(f"{where} is empty")
    if not _TOKEN.fullmatch(token):
        raise UserError(f"{where} holds a space or a character other than printable ASCII; a bearer token cannot")
    return token


def parse_tokens(text: bytes, where: str) -> tuple[str, ...]:
    """One token per line; blank lines and lines starting with # are ignored."""
    try:
        lines = text.decode("ascii").splitlines()
    except UnicodeDecodeError:
        raise UserError(f"{where} is not ASCII text; tokens are printable ASCII, one per line") from None
    tokens = []
    for number, line in enumerate(lines, 1):
        if line.strip() and not line.strip().startswith("#"):
            tokens.append(check_token(line, f"line {number} of {where}"))
    if not tokens:
        raise UserError(f"{where} holds no token (one per line; blank lines and # comments are ignored)")
    return tuple(tokens)


def read_tokens(path: str | Path) -> tuple[str, ...]:
    """Every token of a token file (the server accepts any of them)."""
    return parse_tokens(read_file(path, "token file"), f"token file {path}")


def read_token(path: str | Path) -> str:
    """The one token of a client's token file."""
    tokens = read_tokens(path)
    if len(tokens) != 1:
        raise UserError(f"token file {path} holds {len(tokens)} tokens; a client sends one (put just yours in its file)")
    return tokens[0]
