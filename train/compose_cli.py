"""``seedlock train compose``: train the composer (or run the ablation study),
and the builder ``load_checkpoint`` uses to rebuild a composition checkpoint's model.

Option values come from, in increasing priority: the thesis's budget (Adam,
lr 0.01, seed 77, 100 epochs) or, with ``--demo`` / ``--ablation``, the short
demo / ablation budget; ``--config FILE.yaml``; then the flags given on the
command line (:func:`seedlock.train.config.config_from_args`). Every flag's
``dest`` is a :class:`~seedlock.train.compose_train.ComposeConfig` field.
"""

from __future__ import annotations

import argparse
from typing import Any

from seedlock.core.argtypes import int_at_least
from seedlock.core.errors import UserError

# The imports of torch-backed modules stay inside the handlers: building the
# parser (``seedlock --help``) must work without torch (the serving image).


def genre_list(text: str) -> list[str]:
    """``--genres bach,essen`` -> ``["bach", "essen"]``."""
    genres = [g.strip() for g in text.split(",") if g.strip()]
    if not genres:
        raise argparse.ArgumentTypeError("name at least one genre (comma-separated), or leave --genres out for all")
    return genres


def register_train(train_subparsers: Any) -> argparse.ArgumentParser:
    p = train_subparsers.add_parser(
        "compose", help="train the music composer (one-hot bi-directional Seq2Seq, thesis 3.7)",
        description="Train the composer on the music21 corpus or your own MusicXML/MIDI folder.",
    )  # fmt: skip
    S = argparse.SUPPRESS  # unset flags stay absent, so --config values are not overwritten by defaults
    p.add_argument("--out", default=S, help="run folder (checkpoint.pt, config.json, metrics.json, pianoroll.png)")
    p.add_argument("--config", default=None, help="YAML file of ComposeConfig keys (flags override it)")
    p.add_argument("--demo", action="store_true", help="the short demo budget (~2-3 minutes on 2 cores)")
    p.add_argument("--ablation", action="store_true", help="run the Table 20-22 comparisons at equal budget -> ablation.md")
    p.add_argument("--genres", type=genre_list, default=S, help="comma-separated genres (default: all)")
    p.add_argument("--per-genre-training", action="store_true", default=S, help="one model per genre (the thesis's setting)")
    p.add_argument("--no-conditioning", dest="conditioning", action="store_false", default=S,
                   help="do not feed the genre to the model")
    p.add_argument("--unidirectional", dest="bidirectional", action="store_false", default=S,
                   help="uni-directional encoder (Table 21 ablation)")
    p.add_argument("--no-progress", dest="progress", action="store_false", default=S, help="no progress bar")
    p.add_argument("--data", default=S, help="'corpus' (music21's, nine genres) or a folder of <genre>/<files>.mid|.musicxml")
    p.add_argument("--per-genre", type=int, default=S, help="corpus pieces per genre")
    p.add_argument("--window", type=int, default=S, help="input events per window")
    p.add_argument("--horizon", type=int, default=S, help="predicted events per window")
    p.add_argument("--encoding", default=S, help="onehot | whole (Table 20 ablation)")
    p.add_argument("--cell", default=S, help="gru | lstm")
    p.add_argument("--hidden", type=int, default=S, help="RNN width")
    p.add_argument("--decoder", default=S, help="multiway | vanilla | none (none: bi-directional RNN alone, Table 21 (a); not exportable)")
    p.add_argument("--encoder", default=S, help="plain | multiway (the multi-way scheme in the encoder too, Table 24)")
    p.add_argument("--norm", default=S, help="instance | group | ensemble (multi-way decoder paths)")
    p.add_argument("--dropout", type=float, default=S, help="dropout before the decoder norms")
    p.add_argument("--epochs", type=int, default=S, help="training epochs")
    p.add_argument("--batch-size", type=int, default=S, help="windows per step")
    p.add_argument("--lr", type=float, default=S, help="Adam learning rate")
    p.add_argument("--seed", type=int, default=S, help="the model's seed: weight initialization, dropout and batch order")
    p.add_argument("--split-seed", type=int_at_least(0), default=S,
                   help="the data's seed: the train/validation/test split by piece and the --max-train-windows subset (default 0)")
    p.add_argument("--stride", type=int, default=S, help="events between window starts")
    p.add_argument("--max-train-windows", type=int, default=S, help="cap on training windows (a subset drawn from --split-seed), 0 = all")
    p.add_argument("--l2", default=S, help="adaptive | none | a fixed coefficient in [0, 0.5]")
    p.add_argument("--l2-init", type=float, default=S, help="adaptive L2 starting coefficient")
    p.add_argument("--eval-windows", type=int, default=S, help="test windows continued by greedy generation")
    p.add_argument("--threads", type=int, default=S, help="torch intra-op threads (1: fastest for this small RNN on shared CPUs)")
    p.set_defaults(func=handle_compose)
    return p


def compose_config(args: argparse.Namespace) -> Any:
    """The run's :class:`ComposeConfig`, checked before any data is loaded."""
    from seedlock.train import compose_train as ct
    from seedlock.train.config import config_from_args

    base = ct.ablation_config() if args.ablation else ct.demo_config() if args.demo else ct.ComposeConfig()
    cfg = config_from_args(ct.ComposeConfig, args, base=base)
    try:
        ct.make_l2(cfg)
        cfg.model_config(9)  # validates the model choices now, not after loading data
    except ValueError as exc:
        raise UserError(str(exc)) from None
    return cfg


def build_model(model_config: dict[str, Any], labels: list[str]) -> Any:
    from seedlock.train.composer import build_composer

    return build_composer(model_config)


def handle_compose(args: argparse.Namespace) -> int:
    from seedlock.train import compose_train as ct

    cfg = compose_config(args)
    if args.ablation:
        ct.run_ablation(cfg)
    else:
        ct.train_compose(cfg)
    return 0
