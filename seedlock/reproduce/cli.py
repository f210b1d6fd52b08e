"""``seedlock reproduce NAME [--quick] [--seeds 999,500,1] [--out DIR]``."""

from __future__ import annotations

import argparse
from pathlib import Path

from seedlock.core.argtypes import int_at_least, output_dir, seed_list
from seedlock.reproduce import EXPERIMENTS, THESIS_SEEDS, RunContext, run_experiment


def register(sub: argparse._SubParsersAction) -> None:
    listing = "\n".join(f"  {name:<14} thesis {ref}: {what}" for name, (_, ref, what) in EXPERIMENTS.items())
    p = sub.add_parser(
        "reproduce",
        help="rerun a thesis experiment beside the thesis's table, with a verdict",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Rerun one of the thesis's experiments and write DIR/NAME.md (thesis and seedlock figures in "
        "adjacent columns, mean ± std over the seeds, a 'direction reproduced?' verdict), DIR/NAME.json (every figure, "
        "per seed) and PNGs.\n\nexperiments:\n" + listing + "\n  all            every experiment above, in order",
    )
    p.add_argument("name", choices=[*EXPERIMENTS, "all"], metavar="NAME", help="an experiment above, or all")
    p.add_argument("--quick", action="store_true", help="the short CI budget (each experiment under 4 minutes on 2 cores)")
    p.add_argument("--seeds", type=seed_list, default=list(THESIS_SEEDS),
                   help="model seeds, comma-separated (default: the thesis's 999,500,1)")  # fmt: skip
    p.add_argument("--split-seed", type=int_at_least(0), default=0, help="seed of the data splits, independent of the model seeds (default 0)")
    p.add_argument("--out", type=output_dir, default="runs/reproduce", help="output folder (default runs/reproduce)")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    names = list(EXPERIMENTS) if args.name == "all" else [args.name]
    for name in names:
        run_experiment(RunContext(name, Path(args.out), args.quick, tuple(args.seeds), args.split_seed))
    return 0
