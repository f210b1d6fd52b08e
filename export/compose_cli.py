"""``seedlock export compose CHECKPOINT --repository DIR``: the lead wires
:func:`register_export` into ``seedlock export``."""

from __future__ import annotations

import argparse
from typing import Any

from seedlock.core.errors import UserError


def register_export(export_subparsers: Any) -> argparse.ArgumentParser:
    p = export_subparsers.add_parser(
        "compose", help="export a composer checkpoint (encoder + decoder step), verified against torch",
        description="Export to ONNX, check parity and same-seed-same-melody against torch, write the model repository.",
    )
    p.add_argument("checkpoint", help="checkpoint.pt or the run folder holding it")
    p.add_argument("--repository", required=True, help="model repository folder")
    p.add_argument("--name", default="composer", help="model name in the repository")
    p.add_argument("--version", type=int, default=1, help="model version (a positive integer)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing version")
    p.set_defaults(func=handle_export_compose)
    return p


def handle_export_compose(args: argparse.Namespace) -> int:
    from seedlock.export.compose import export_composer
    from seedlock.export.onnx_export import ExportError

    if args.version < 1:
        raise UserError("--version must be a positive integer")
    try:
        export_composer(args.checkpoint, args.repository, name=args.name, version=args.version, overwrite=args.overwrite)
    except ExportError as exc:
        raise UserError(str(exc)) from None
    return 0
