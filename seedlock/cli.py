"""The ``seedlock`` command line.

Each layer registers its own subcommands (``register(subparsers)`` in its
``cli.py``); this module only wires them together and turns user errors into
one line on stderr. Layers are imported lazily, per command, so ``seedlock
serve`` and ``seedlock client`` never import torch.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys

from seedlock import __version__
from seedlock.core import tasks
from seedlock.core.errors import UserError
from seedlock.serve.startup import command_of, exit_while_starting

# command -> (module providing register(), one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "train": ("seedlock.train.cli", f"train a model ({tasks.commands()}) on embedded or your own data"),
    "export": ("seedlock.export.cli", "export a checkpoint to a model repository, build engines, verify"),
    "serve": ("seedlock.serve.cli", "serve a model repository over gRPC"),
    "client": ("seedlock.clients.cli", "call a running server (the task commands, health, models)"),
    "similarity": ("seedlock.train.similarity_cli", "compare two sets of images with the thesis's four similarity measures"),
    "reproduce": ("seedlock.reproduce.cli", "rerun a thesis experiment beside the thesis's table, with a verdict"),
    "bench": ("seedlock.bench", "measure latency and throughput, JSON out"),
    "demo": ("seedlock.demo", "train, export, serve and call the demo models end to end"),
}


# What the serving install leaves out, and the extra that brings it.
TRAINING_STACK = {"torch": "train", "onnx": "train", "onnxscript": "train", "matplotlib": "train", "tensorrt": "gpu", "triton": "engines"}


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="seedlock",
        description="Train, export and serve seed-locked models: same model, request and seed, same bytes.",
    )
    parser.add_argument("--version", action="version", version=f"seedlock {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module, help_text) in COMMANDS.items():
        if name == command:
            # Import only the module for the command being run (torch-free paths stay torch-free).
            importlib.import_module(module).register(sub)
        else:
            sub.add_parser(name, help=help_text)
    return parser


def main(argv: list[str] | None = None) -> int:
    # OpenMP threads that spin while waiting collapse when another process
    # shares the cores (3.2 s instead of 0.2 s per U-Net step on 2 busy cores);
    # sleeping waiters cost little when the machine is idle. Set before any
    # command imports torch.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    argv = sys.argv[1:] if argv is None else argv
    command = command_of(argv)
    if command == "serve":  # the `seedlock` script's earliest moment (python -m seedlock's is in __main__)
        exit_while_starting()
    parser = build_parser(command if command in COMMANDS else None)
    if command == "serve":  # --config FILE: its settings go in as flags, before the command line's
        from seedlock.serve.config_file import expand, subparser

        try:
            argv = expand(subparser(parser, "serve"), argv, "serve")
        except UserError as exc:
            print(f"seedlock serve: error: {exc}", file=sys.stderr)
            return exc.exit_code
    args = parser.parse_args(argv)
    # Our own loggers speak at INFO; third-party libraries (onnxscript's
    # rewriter, grpc) only when something is wrong.
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("seedlock").setLevel(logging.DEBUG if args.verbose else logging.INFO)
    if not hasattr(args, "func"):
        (parser.parse_args([args.command, "--help"]) if args.command else parser.print_help())
        return 0 if args.command is None else 2
    try:
        return int(args.func(args) or 0)
    except UserError as exc:
        print(f"seedlock {args.command}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except ModuleNotFoundError as exc:
        extra = TRAINING_STACK.get((exc.name or "").split(".")[0])
        if extra is None:
            raise
        print(f"seedlock {args.command}: error: this needs {exc.name}, which this install lacks "
              f"(the serving install has no training stack); install it with: pip install 'seedlock[{extra}]'",
              file=sys.stderr)  # fmt: skip
        return 2
    except KeyboardInterrupt:
        print("seedlock: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
