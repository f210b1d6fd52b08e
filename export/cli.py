"""``seedlock export``: checkpoints -> model repository, TensorRT engines, verification.

    seedlock export onnx CHECKPOINT --repository DIR     any task: dispatches on the checkpoint's task
    seedlock export TASK CHECKPOINT --repository DIR     the same, refusing a checkpoint of another task
    seedlock export verify REPOSITORY/NAME               digests + stored reference parity
    seedlock export trt REPOSITORY/NAME                  TensorRT engines (GPU hosts)

Every export takes the same arguments (``--name``, ``--version``,
``--overwrite``) plus its task's own options, from the task's export module
(:data:`seedlock.core.tasks.TASKS`). Building the parser imports no torch.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from seedlock.core import tasks
from seedlock.core.argtypes import positive_int
from seedlock.core.errors import UserError


def _export(args: argparse.Namespace) -> int:
    from seedlock.export.common import export_checkpoint
    from seedlock.export.errors import ExportError

    if not Path(args.checkpoint).exists():
        raise UserError(f"checkpoint {args.checkpoint} does not exist")
    options = {k: getattr(args, k) for t in args.export_tasks for k in t.module("export").OPTIONS}
    try:
        export_checkpoint(args.checkpoint, args.repository, name=args.name, version=args.version,
                          overwrite=args.overwrite, task=args.expect_task, intra_op_threads=args.intra_op_threads,
                          precision=args.precision, **options)  # fmt: skip
    except ExportError as exc:
        raise UserError(str(exc)) from None
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
        raise UserError(str(exc)) from None
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
        raise UserError(str(exc)) from None
    return 0


def _add_export(cmds: argparse._SubParsersAction, command: str, chosen: list[tasks.Task], help_text: str) -> None:
    p = cmds.add_parser(
        command, help=help_text,
        description="Export a training checkpoint to ONNX, check ONNX Runtime against torch (max abs error <= 1e-4; "
        "end to end for the sequence tasks), and write config.pbtxt, the graphs, manifest.json and a seeded "
        "reference into <repository>/<name>/<version>/. A failed check writes nothing; the same checkpoint "
        "always exports to the same bytes.",
    )  # fmt: skip
    p.add_argument("checkpoint", help="checkpoint.pt written by `seedlock train` (or the run folder holding it)")
    p.add_argument("--repository", required=True, help="model repository folder (created if missing)")
    default = chosen[0].model_name if len(chosen) == 1 else "the task's: " + ", ".join(t.model_name for t in chosen)
    p.add_argument("--name", default=None, help=f"model name in the repository (default: {default})")
    p.add_argument("--version", type=positive_int, default=1, help="version folder number (default: %(default)s)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing version folder")
    p.add_argument("--intra-op-threads", type=positive_int, default=None, metavar="N",
                   help="threads per ONNX Runtime session the model's answers are pinned to; servers scale by running "
                   "more instances, never by changing it. 1 (the default) lets the server batch requests; more cut "
                   "one request's latency and usually cost batching")
    p.add_argument("--precision", choices=("fp32", "bf16", "int8"), default="fp32",
                   help="arithmetic the version serves in: fp32 (ONNX Runtime, the default); bf16 or int8 (OpenVINO on the "
                   "CPU; int8 statically quantized, calibrated on a seeded sample of the training split). A bf16/int8 "
                   "version is written only when its task's answers agree with fp32 above the gate (segmentation: "
                   ">= 99.5%% of mask pixels; fingerprints: PSNR >= 35 dB; captioning and composition: >= 95%% identical "
                   "greedy captions / first 32 events, falling back to the encoder alone when the decoder step fails); "
                   "the agreement table is printed")
    for task in chosen:
        task.module("export").add_arguments(p.add_argument_group(f"{task.name} options") if len(chosen) > 1 else p)
    p.set_defaults(func=_export, export_tasks=chosen, expect_task=chosen[0].name if len(chosen) == 1 else None)


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("export", help="export a checkpoint to a model repository, build engines, verify",
                            description="Export checkpoints to a Triton-style model repository (ONNX), build "
                            "TensorRT engines for them, and verify exports.")
    cmds = parser.add_subparsers(dest="export_command", metavar="SUBCOMMAND", required=True)
    _add_export(cmds, "onnx", list(tasks.TASKS), f"any checkpoint ({tasks.commands()}) -> <repository>/<name>/<version>/")
    for task in tasks.TASKS:
        _add_export(cmds, task.command, [task], f"a {task.title} checkpoint -> the model repository (as `export onnx`)")

    verify_p = cmds.add_parser(
        "verify",
        help="re-check an exported model's digests and ONNX Runtime parity",
        description="Check that every file of a model version matches its manifest digest and that ONNX Runtime "
        "reproduces the reference recorded at export time (every graph's outputs, and for sequence tasks the "
        "whole pipeline's answer); with --checkpoint, re-run torch too.",
    )
    verify_p.add_argument("model", help="REPOSITORY/NAME folder")
    verify_p.add_argument("--version", type=positive_int, default=None, help="version to check (default: the highest)")
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
    trt_p.add_argument("--version", type=positive_int, default=None, help="version to build for (default: the highest)")
    trt_p.add_argument("--fp16", action="store_true", help="compute in float16 (inputs and outputs stay float32)")
    trt_p.add_argument("--workspace", type=positive_int, default=1024, metavar="MIB",
                       help="builder workspace limit in MiB (default: %(default)s)")
    trt_p.add_argument("--min-batch", type=positive_int, default=1, help="smallest batch the engine accepts (default: %(default)s)")
    trt_p.add_argument("--opt-batch", type=positive_int, default=1, help="batch the engine is tuned for (default: %(default)s)")
    trt_p.add_argument("--max-batch", type=positive_int, default=8, help="largest batch the engine accepts (default: %(default)s)")
    trt_p.set_defaults(func=_export_trt)
