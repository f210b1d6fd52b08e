"""``seedlock export caption CHECKPOINT --repository DIR [--name --version --overwrite]``.

The lead wires it in with ``register_export(export_subparsers)``.
"""

from __future__ import annotations

import argparse
from typing import Any
from seedlock.core.argtypes import positive_int


def register_export(sub: Any) -> None:
    """Add ``caption`` to the ``seedlock export`` subparsers."""
    p = sub.add_parser(
        "caption",
        help="export a captioning checkpoint (encoder + decoder step) to a model repository",
        description=(
            "Export the image encoder and one decoder step to ONNX, check them against torch (max abs error "
            "<= 1e-4) and check that greedy and beam-search captions are identical via ONNX Runtime and torch, "
            "then write <repository>/<name>/<version>/. Nothing is written if a check fails."
        ),
    )
    p.add_argument("checkpoint", metavar="CHECKPOINT", help="checkpoint.pt (or the run folder holding it)")
    p.add_argument("--repository", required=True, metavar="DIR", help="model repository root")
    p.add_argument("--name", default="captioner", help="model name in the repository [captioner]")
    p.add_argument("--version", type=positive_int, default=1, help="model version [1]")
    p.add_argument("--overwrite", action="store_true", help="replace an existing version")
    p.set_defaults(func=run_export_caption)


def run_export_caption(args: argparse.Namespace) -> int:
    from seedlock.export.caption import export_captioner
    from seedlock.export.onnx_export import ExportError
    from seedlock.core.errors import UserError

    try:
        export_captioner(args.checkpoint, args.repository, name=args.name, version=args.version, overwrite=args.overwrite)
    except ExportError as exc:
        raise UserError(str(exc)) from None
    return 0
