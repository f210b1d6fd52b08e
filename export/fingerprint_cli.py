"""``seedlock export fingerprint-gan``: a fingerprint-DCGAN checkpoint -> model repository.

Wired by ``seedlock.export.cli`` through :func:`register_export`.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from seedlock.core.errors import UserError
from seedlock.core.argtypes import positive_int


def export_fingerprint_gan(args: argparse.Namespace) -> int:
    """Handler: export, verify against torch, write the version folder."""
    from seedlock.export.fingerprint import export_generator
    from seedlock.export.onnx_export import ExportError

    ckpt = Path(args.checkpoint)
    if not (ckpt.is_file() or (ckpt.is_dir() and (ckpt / "checkpoint.pt").is_file())):
        raise UserError(f"checkpoint {args.checkpoint} does not exist (give checkpoint.pt or its run folder)")
    try:
        export_generator(args.checkpoint, args.repository, name=args.name, version=args.version,
                         overwrite=args.overwrite, max_count=args.max_count)  # fmt: skip
    except ExportError as exc:
        raise UserError(str(exc)) from exc
    return 0


def register_export(export_subparsers: Any) -> None:
    """Add ``fingerprint-gan`` to ``seedlock export``'s subcommands."""
    p = export_subparsers.add_parser(
        "fingerprint-gan",
        help="fingerprint-DCGAN checkpoint -> <repository>/<name>/<version>/model.onnx + manifest.json",
        description="Export the generator(s) of a `seedlock train fingerprint-gan` checkpoint to ONNX "
        "(latent (N, Z) -> image (N, G, S, S)), check it against torch on seeded latents "
        "(max abs error <= 1e-4), and write config.pbtxt, model.onnx, manifest.json and a seeded "
        "reference input/output into the model repository. A failed check writes nothing.",
    )
    p.add_argument("checkpoint", help="checkpoint.pt (or its run folder) from `seedlock train fingerprint-gan`")
    p.add_argument("--repository", required=True, help="model repository folder (created if missing)")
    p.add_argument("--name", default="fingerprint-gan", help="model name in the repository (default: %(default)s)")
    p.add_argument("--version", type=positive_int, default=1, help="version folder number (default: %(default)s)")
    p.add_argument("--max-count", type=positive_int, default=64, help="most images one Generate request may ask for (default: %(default)s)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing version folder")
    p.set_defaults(func=export_fingerprint_gan)
