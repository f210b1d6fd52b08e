"""``seedlock client``: call a running server from the shell.

    seedlock client segment IMAGE --out mask.png [--overlay overlay.png] [--server host:port]
    seedlock client caption IMAGE [--beam 3] [--n 3]
    seedlock client compose --genre bach --length 96 --seed 7 --out song.musicxml [--midi song.mid]
    seedlock client fingerprints generate --count 16 --seed 3 --out DIR
    seedlock client fingerprints compare DIR_A DIR_B
    seedlock client health [--model NAME]
    seedlock client models [--json]

Every command takes --server, --timeout, and for a server with TLS or tokens
--tls-ca (--tls-cert/--tls-key for mutual TLS) and --token-file (or $SEEDLOCK_TOKEN).
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

from seedlock.core import tasks
from seedlock.core.argtypes import positive_float
from seedlock.core.errors import UserError


def _fail(server: str, exc: Exception, tls: bool | None = None) -> UserError:
    """One actionable line for a failed call. ``tls``: whether the client spoke
    TLS (None: unknown), for the hint when the connection itself failed."""
    from seedlock.clients.errors import SeedlockError, Unavailable

    if isinstance(exc, Unavailable):
        return UserError(f"cannot reach a seedlock server at {server} ({exc.message}); {_connection_hint(exc.message, tls)}")
    if isinstance(exc, SeedlockError):
        return UserError(f"server at {server} answered {exc.code.name}: {exc.message}")
    return UserError(str(exc))


def _connection_hint(message: str, tls: bool | None) -> str:
    """What to try when a connection failed, read from gRPC's message: a TLS
    mismatch fails the handshake, or the server closes the socket."""
    if "WRONG_VERSION_NUMBER" in message:
        return "the server does not speak TLS there: drop --tls/--tls-ca (or start it with --tls-cert/--tls-key)"
    if "CERTIFICATE_VERIFY_FAILED" in message or "certificate" in message.lower():
        return ("its certificate was not accepted: give the CA that signed it with --tls-ca, and --tls-server-name "
                "when the certificate is for another name than --server's host")
    if "Socket closed" in message and tls is False:
        return "if it serves TLS, pass --tls-ca FILE (and --tls-cert/--tls-key when it requires client certificates)"
    if "Socket closed" in message and tls:
        return "if it requires client certificates (mutual TLS), pass --tls-cert FILE --tls-key FILE"
    return "is `seedlock serve` running there?"


def read_input(path: str | Path, what: str = "image") -> bytes:
    """The bytes of an input file, or one line saying why not."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"{what} {path} does not exist")
    if not path.is_file():
        raise UserError(f"{what} {path} is not a file")
    try:
        return path.read_bytes()
    except OSError as exc:
        raise UserError(f"cannot read {what} {path}: {exc.strerror or exc}") from None


def write_output(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` (parent folders created); a failure is one
    line. The flag's type (``argtypes.output_file``) refused what it could see
    before any work; this catches the rest (a disk that filled meanwhile)."""
    out = Path(path)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(data)
    except OSError as exc:
        raise UserError(f"cannot write {out}: {exc.strerror or exc}") from None
    return out


def connection(args: argparse.Namespace) -> dict[str, Any]:
    """The TLS and token keyword arguments of any seedlock client class, from
    the flags every ``seedlock client`` command has (see :func:`add_connection_arguments`)."""
    from seedlock.clients.base import default_token
    from seedlock.core.credentials import read_token

    token_file = getattr(args, "token_file", None)
    return {
        "tls": getattr(args, "tls", False),
        "tls_ca": getattr(args, "tls_ca", None),
        "tls_cert": getattr(args, "tls_cert", None),
        "tls_key": getattr(args, "tls_key", None),
        "tls_server_name": getattr(args, "tls_server_name", None),
        "token": read_token(token_file) if token_file else default_token(),
    }


def add_connection_arguments(parser: argparse.ArgumentParser) -> None:
    """--server, --timeout and the TLS / token flags; the TLS ones default to
    $SEEDLOCK_TLS_CA, $SEEDLOCK_TLS_CERT, $SEEDLOCK_TLS_KEY, $SEEDLOCK_TLS_SERVER_NAME."""
    env = os.environ.get
    parser.add_argument("--server", default=None, help="host:port of the server (default: $SEEDLOCK_SERVER or localhost:8001)")
    parser.add_argument("--timeout", type=positive_float, default=30.0, help="seconds per call, > 0 (default: %(default)s)")
    group = parser.add_argument_group("TLS and authentication")
    group.add_argument("--tls", action="store_true", help="connect over TLS, verifying the server with the system's CAs")
    group.add_argument("--tls-ca", metavar="FILE", default=env("SEEDLOCK_TLS_CA") or None,
                       help="connect over TLS, verifying the server with the CA certificates in this PEM file (default: $SEEDLOCK_TLS_CA)")
    group.add_argument("--tls-cert", metavar="FILE", default=env("SEEDLOCK_TLS_CERT") or None,
                       help="client certificate (PEM) for a server that requires one (mutual TLS; default: $SEEDLOCK_TLS_CERT)")
    group.add_argument("--tls-key", metavar="FILE", default=env("SEEDLOCK_TLS_KEY") or None,
                       help="the client certificate's private key (default: $SEEDLOCK_TLS_KEY)")
    group.add_argument("--tls-server-name", metavar="NAME", default=env("SEEDLOCK_TLS_SERVER_NAME") or None,
                       help="check the server's certificate for this name instead of --server's host (default: $SEEDLOCK_TLS_SERVER_NAME)")
    group.add_argument("--token-file", metavar="FILE", default=None,
                       help="send the bearer token in this file (its one non-comment line) as 'authorization: Bearer <token>' "
                       "(default: $SEEDLOCK_TOKEN, if set)")


def _health(args: argparse.Namespace) -> int:
    from seedlock.clients.base import BaseClient
    from seedlock.clients.errors import NotFound, SeedlockError

    with BaseClient(args.server, timeout=args.timeout, **connection(args)) as client:
        try:
            status = client.health(args.model or "")
        except NotFound:
            raise UserError(f"server at {client.server} has no model {args.model!r}") from None
        except SeedlockError as exc:
            raise _fail(client.server, exc, tls=client.tls) from None
    print(f"{args.model or 'server'}: {status}")
    return 0 if status == "SERVING" else 1


def _models(args: argparse.Namespace) -> int:
    from seedlock.clients.base import BaseClient
    from seedlock.clients.errors import SeedlockError

    with BaseClient(args.server, timeout=args.timeout, **connection(args)) as client:
        try:
            listing = client.list_models()
        except SeedlockError as exc:
            raise _fail(client.server, exc, tls=client.tls) from None
    if args.json:
        from google.protobuf.json_format import MessageToDict

        print(json.dumps(MessageToDict(listing, preserving_proto_field_name=True, always_print_fields_with_no_presence=True), indent=2))
        return 0
    rows = []
    for model in listing.models:
        for v in model.versions:
            if v.ready:
                batching = f"{v.batching} <= {v.max_batch_size}" if v.batching != "off" else "off"
                rows.append((model.name, str(v.version), "ready", v.task, v.digest[:16], batching,
                             f"{v.instances} x {v.intra_op_threads}t", "yes" if v.bit_exact_with_export else "no",
                             ",".join(p.removesuffix("ExecutionProvider") for p in v.providers)))  # fmt: skip
            else:
                rows.append((model.name, str(v.version or "-"), "REFUSED", "", "", "", "", "", v.reason))
    header = ("model", "version", "state", "task", "digest", "batching", "instances", "bit-exact", "provider / reason")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header) - 1)]
    for r in [header, *rows]:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)) + "  " + r[-1])
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "client", help="call a running server (the task commands, health, models)",
        description="Call a running seedlock server. --server defaults to $SEEDLOCK_SERVER or localhost:8001.",
    )
    common = argparse.ArgumentParser(add_help=False)
    add_connection_arguments(common)
    sub = parser.add_subparsers(dest="client_command", metavar="COMMAND", required=True)
    for task in tasks.TASKS:
        task.module("cli").register_client(sub, common)

    health = sub.add_parser("health", parents=[common], help="the server's (or one model's) health; exit 0 when SERVING")
    health.add_argument("--model", default=None, help="a model name (default: the whole server)")
    health.set_defaults(func=_health)

    models = sub.add_parser(
        "models", parents=[common], help="list models: versions, task, digest, batching, instances, proofs, provider",
        description="List the server's models. batching: the load-time proof's outcome (dynamic / padded / off) and "
        "max_batch_size; instances: model calls at once x intra-op threads per call; bit-exact: the manifest's "
        "reference input gave the export host's bytes here (--json has the reasons).",
    )
    models.add_argument("--json", action="store_true", help="print the whole ListModels answer as JSON")
    models.set_defaults(func=_models)
