"""``seedlock client``: call a running server from the shell.

    seedlock client segment IMAGE --out mask.png [--overlay overlay.png] [--server host:port]
    seedlock client caption IMAGE [--beam 3] [--n 3]
    seedlock client compose --genre bach --length 96 --seed 7 --out song.musicxml [--midi song.mid]
    seedlock client fingerprints generate --count 16 --seed 3 --out DIR
    seedlock client fingerprints compare DIR_A DIR_B
    seedlock client health [--model NAME]
    seedlock client models [--json]
"""

from __future__ import annotations

import argparse
import json

from seedlock.core import tasks
from seedlock.core.errors import UserError


def _fail(server: str, exc: Exception) -> UserError:
    """One actionable line for a failed call."""
    from seedlock.clients.errors import SeedlockError, Unavailable

    if isinstance(exc, Unavailable):
        return UserError(f"cannot reach a seedlock server at {server} ({exc.message}); is `seedlock serve` running there?")
    if isinstance(exc, SeedlockError):
        return UserError(f"server at {server} answered {exc.code.name}: {exc.message}")
    return UserError(str(exc))


def _health(args: argparse.Namespace) -> int:
    from seedlock.clients.base import BaseClient
    from seedlock.clients.errors import NotFound, SeedlockError

    with BaseClient(args.server, timeout=args.timeout) as client:
        try:
            status = client.health(args.model or "")
        except NotFound:
            raise UserError(f"server at {client.server} has no model {args.model!r}") from None
        except SeedlockError as exc:
            raise _fail(client.server, exc) from None
    print(f"{args.model or 'server'}: {status}")
    return 0 if status == "SERVING" else 1


def _models(args: argparse.Namespace) -> int:
    from seedlock.clients.base import BaseClient
    from seedlock.clients.errors import SeedlockError

    with BaseClient(args.server, timeout=args.timeout) as client:
        try:
            listing = client.list_models()
        except SeedlockError as exc:
            raise _fail(client.server, exc) from None
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
    common.add_argument("--server", default=None, help="host:port of the server (default: $SEEDLOCK_SERVER or localhost:8001)")
    common.add_argument("--timeout", type=float, default=30.0, help="seconds per call (default: %(default)s)")
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
