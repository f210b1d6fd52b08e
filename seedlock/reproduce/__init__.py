"""``seedlock reproduce``: the thesis's experiments, rerun beside its tables.

One module per experiment (thesis table group), each with ``run(ctx) ->
Report``; :data:`EXPERIMENTS` is the table the CLI and the tests loop over.
"""

from __future__ import annotations

import importlib
import logging
import os
import shlex
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from seedlock.reproduce.report import Report

# name -> (module, thesis sections and tables, one line on what runs)
EXPERIMENTS: dict[str, tuple[str, str, str]] = {
    "bi-activation": ("seedlock.reproduce.bi_activation", "3.1, Tables 1-4",
                      "CNN-Large/Middle/Small/Little x ReLU/ELU/bi-ReLU/bi-ELU on real digits, with a parameter-matched control"),
    "seed-search": ("seedlock.reproduce.seed_search", "4.1, Tables 25-26",
                    "spread over seeds, short-trial vs full-run ranking (Spearman), batch-size sweep"),
    "fingerprints": ("seedlock.reproduce.fingerprints", "3.6, Tables 17-18",
                     "data settings I-IV with several GAN seeds, measures as seedlock and as the thesis define them"),
    "music": ("seedlock.reproduce.music", "3.7, Tables 20-24",
              "one-hot vs whole, bi-RNN vs bi-Seq2Seq vs adaptive L2, fixed L2 sweep, decoder placements, LSTM vs GRU"),
    "captioning": ("seedlock.reproduce.captioning", "4.2, Tables 27-30",
                   "the module grid and greedy vs beam, BLEU-1..4"),
    "segmentation": ("seedlock.reproduce.segmentation", "3.3, 3.5, 4.4, Table 31, Fig. 55",
                     "U-Net-BN vs U-Net x CE/focal x L1/L2, norms, Eq. 5; IoU with and without background"),
}  # fmt: skip
THESIS_SEEDS = (999, 500, 1)
log = logging.getLogger("seedlock.reproduce")


@dataclass
class RunContext:
    """What every experiment's ``run`` gets: the budget switch, seeds and where to write."""

    name: str
    out: Path
    quick: bool = False
    seeds: tuple[int, ...] = THESIS_SEEDS
    split_seed: int = 0  # data splits never follow the model seed
    command: str = ""
    log: Callable[[str], None] = field(default=log.info)

    def path(self, filename: str) -> Path:
        """Where a figure or side file of this experiment goes (created on demand)."""
        self.out.mkdir(parents=True, exist_ok=True)
        return self.out / filename


def command_line(name: str, quick: bool, seeds: tuple[int, ...], split_seed: int, out: Path) -> str:
    """The command a reader runs to remake the report (shown in it)."""
    parts = ["seedlock", "reproduce", name]
    if quick:
        parts.append("--quick")
    if tuple(seeds) != THESIS_SEEDS:
        parts += ["--seeds", ",".join(str(s) for s in seeds)]
    if split_seed:
        parts += ["--split-seed", str(split_seed)]
    parts += ["--out", str(out)]
    return " ".join(shlex.quote(p) for p in parts)


def run_experiment(ctx: RunContext) -> Path:
    """Run one experiment and write its report; returns ``NAME.md``'s path."""
    import time

    module = importlib.import_module(EXPERIMENTS[ctx.name][0])
    load_before = os.getloadavg()[0]
    started = time.time()
    ctx.command = ctx.command or command_line(ctx.name, ctx.quick, ctx.seeds, ctx.split_seed, ctx.out)
    report: Report = module.run(ctx)
    path = report.write(ctx.out, started, load_before)
    print(f"wrote {path}", file=sys.stderr)
    return path
