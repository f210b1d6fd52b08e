"""``seedlock demo``: the main job end to end on the embedded defaults.

Each task of the task table (:data:`seedlock.core.tasks.TASKS`) is a stage,
its ``demo`` module providing ``train_and_export(out, repository, steps, log)
-> dict`` and ``call(server, out, run_client, log) -> dict``. The demo trains
and exports every stage into one model repository, starts one gRPC server on
it, calls each stage's client command against it, and writes ``summary.json``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from seedlock.core import tasks
from seedlock.core.argtypes import positive_int
from seedlock.core.errors import UserError

STAGES: dict[str, tasks.Task] = {task.stage: task for task in tasks.TASKS}


def _banner(text: str) -> None:
    print(f"\n== {text} " + "=" * max(0, 70 - len(text)), flush=True)


def _log(text: str) -> None:
    print(text, flush=True)


def run_client(*args: str) -> str:
    """Run ``seedlock client ARGS`` as a user would, echoing the command and its output."""
    print(f"$ seedlock client {' '.join(args)}", flush=True)
    proc = subprocess.run([sys.executable, "-m", "seedlock", "client", *args], capture_output=True, text=True, timeout=300)
    print(proc.stdout.rstrip(), flush=True)
    if proc.returncode != 0:
        raise UserError(f"`seedlock client {args[0]}` failed: {proc.stderr.strip()}")
    return proc.stdout


def _run(args: argparse.Namespace) -> int:
    names = list(STAGES) if not args.only else [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = [n for n in names if n not in STAGES]
    if unknown:
        raise UserError(f"unknown demo stage(s) {', '.join(unknown)}; choose from {', '.join(STAGES)}")
    out, repository = Path(args.out), Path(args.repository)
    t0 = time.perf_counter()
    summary: dict = {}
    stages = {name: STAGES[name].module("demo") for name in names}
    for i, (name, stage) in enumerate(stages.items(), 1):
        _banner(f"{i}/{len(stages)} train and export: {stage.TITLE}")
        folder = out / name
        folder.mkdir(parents=True, exist_ok=True)
        summary[name] = stage.train_and_export(folder, repository, args.steps, _log)

    from seedlock.serve.server import start_server

    _banner("serve the repository over gRPC and call it through the client CLI")
    server = start_server(repository, host="127.0.0.1", port=0)
    try:
        target = server.address
        print(f"server listening on {target}", flush=True)
        run_client("health", "--server", target)
        run_client("models", "--server", target)
        for name, stage in stages.items():
            summary[name].update(stage.call(target, out / name, run_client, _log))
    finally:
        server.stop(grace=2.0)

    summary["seconds"] = round(time.perf_counter() - t0, 1)
    (out / "summary.json").write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")
    _banner("done")
    print(f"demo finished in {summary['seconds']:.0f}s; summary in {out / 'summary.json'}; repository in {repository}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("demo", help="train, export, serve and call the demo models end to end",
                            description="Run the main job end to end on the embedded defaults: train each pipeline, "
                            "export it to one model repository, serve it over gRPC and call it with the client CLI.")
    parser.add_argument("--out", default="runs/demo", help="folder for runs and pictures (default: %(default)s)")
    parser.add_argument("--repository", default="repository", help="model repository to write (default: %(default)s)")
    parser.add_argument("--only", default=None, help=f"comma-separated stages to run (default: all of {', '.join(STAGES)})")
    parser.add_argument("--steps", type=positive_int, default=None, help="override every stage's training steps (default: calibrated budgets)")
    parser.set_defaults(func=_run)
