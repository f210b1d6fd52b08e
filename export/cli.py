"""``seedlock export``: checkpoints -> model repository, and verification."""

from __future__ import annotations

import argparse
from pathlib import Path

from seedlock.core.errors import UserError

# Exports of the other pipelines: each module provides ``register_export(export_subparsers)``.
EXPORT_MODULES: tuple[str, ...] = (
    "seedlock.export.caption_cli",
    "seedlock.export.compose_cli",
    "seedlock.export.fingerprint_cli",
)


def _export_onnx(args: argparse.Namespace) -> int:
    from seedlock.export.errors import ExportError
    from seedlock.export.segmenter import export_segmenter

    if not Path(args.checkpoint).is_file():
        raise UserError(f"checkpoint {args.checkpoint} does not exist")
    if args.version < 1:
        raise UserError("--version must be a positive integer (Triton version folders start at 1)")
    try:
        export_segmenter(args.checkpoint, args.repository, name=args.name, version=args.version,
                         overwrite=args.overwrite, size=args.size)
    except ExportError as exc:
        raise UserError(str(exc)) from exc
    return 0


def _verify(args: argparse.Namespace) -> int:
    from seedlock.export.errors import ExportError
    from seedlock.export.verify import verify_backends, verify_model

    if not Path(args.model).is_dir():
        raise UserError(f"{args.model} is not a model folder (expected REPOSITORY/NAME)")
    try:
        if args.backends:
            if args.checkpoint:
                raise UserError("--checkpoint compares against torch; it cannot be combined with --backends")
            verify_backends(args.model, args.backends, version=args.version)
        else:
            verify_model(args.model, version=args.version, checkpoint=args.checkpoint)
    except ExportError as exc:
        raise UserError(str(exc)) from exc
    print("verify: PASS")
    return 0


def _export_trt(args: argparse.Namespace) -> int:
    from seedlock.export.errors import ExportError
    from seedlock.export.tensorrt_engine import EngineOptions, export_engines

    if not Path(args.model).is_dir():
        raise UserError(f"{args.model} is not a model folder (expected REPOSITORY/NAME)")
    try:
        options = EngineOptions(fp16=args.fp16, workspace_mib=args.workspace, min_batch=args.min_batch,
                                opt_batch=args.opt_batch, max_batch=args.max_batch)
        export_engines(args.model, options, version=args.version)
    except ExportError as exc:
        raise UserError(str(exc)) from exc
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("export", help="export a checkpoint to a model repository, build engines, verify",
                            description="Export checkpoints to a Triton-style model repository (ONNX), build "
                            "TensorRT engines for them, and verify exports.")
    cmds = parser.add_subparsers(dest="export_command", metavar="SUBCOMMAND", required=True)

    onnx_p = cmds.add_parser(
        "onnx",
        help="segmentation checkpoint -> <repository>/<name>/<version>/model.onnx + manifest.json",
        description="Export a training checkpoint to ONNX, check it against torch (max abs error <= 1e-4), "
        "and write config.pbtxt, model.onnx and manifest.json into the model repository. "
        "A failed check writes nothing.",
    )
    onnx_p.add_argument("checkpoint", help="checkpoint.pt written by `seedlock train`")
    onnx_p.add_argument("--repository", required=True, help="model repository folder (created if missing)")
    onnx_p.add_argument("--name", default="segmenter", help="model name in the repository (default: %(default)s)")
    onnx_p.add_argument("--version", type=int, default=1, help="version folder number (default: %(default)s)")
    onnx_p.add_argument("--overwrite", action="store_true", help="replace an existing version folder")
    onnx_p.add_argument("--size", type=int, default=None,
                        help="square input size the server letterboxes images to (default: the training size)")
    onnx_p.set_defaults(func=_export_onnx)

    verify_p = cmds.add_parser(
        "verify",
        help="re-check an exported model's digests and ONNX Runtime parity",
        description="Check that every file of a model version matches its manifest digest and that ONNX Runtime "
        "reproduces the reference output recorded at export time; with --checkpoint, re-run torch too.",
    )
    verify_p.add_argument("model", help="REPOSITORY/NAME folder")
    verify_p.add_argument("--version", type=int, default=None, help="version to check (default: the highest)")
    verify_p.add_argument("--checkpoint", default=None, help="also compare against this torch checkpoint")
    verify_p.add_argument("--backends", default=None, metavar="A,B[,C]",
                          help="instead, run every graph on these backends and compare each with the first: "
                          "onnxruntime, onnxruntime-cuda, tensorrt (e.g. onnxruntime,tensorrt)")
    verify_p.set_defaults(func=_verify)

    trt_p = cmds.add_parser(
        "trt",
        help="build TensorRT engines (model.plan) for an exported model version",
        description="Build one TensorRT engine per graph of REPOSITORY/NAME (next to its .onnx file), with "
        "bi-activation as a fused plugin kernel and an optimization profile over the batch axis, and record "
        "them with the TensorRT/CUDA versions and GPU in manifest.json. Needs the gpu and engines extras and an "
        "NVIDIA GPU; the engine only runs on the same TensorRT release and GPU model.",
    )
    trt_p.add_argument("model", help="REPOSITORY/NAME folder")
    trt_p.add_argument("--version", type=int, default=None, help="version to build for (default: the highest)")
    trt_p.add_argument("--fp16", action="store_true", help="compute in float16 (inputs and outputs stay float32)")
    trt_p.add_argument("--workspace", type=int, default=1024, metavar="MIB",
                       help="builder workspace limit in MiB (default: %(default)s)")
    trt_p.add_argument("--min-batch", type=int, default=1, help="smallest batch the engine accepts (default: %(default)s)")
    trt_p.add_argument("--opt-batch", type=int, default=1, help="batch the engine is tuned for (default: %(default)s)")
    trt_p.add_argument("--max-batch", type=int, default=8, help="largest batch the engine accepts (default: %(default)s)")
    trt_p.set_defaults(func=_export_trt)

    import importlib

    for module in EXPORT_MODULES:
        importlib.import_module(module).register_export(cmds)
