"""``seedlock train compose``: train the composer (or run the ablation study).

The lead wires :func:`register_train` into ``seedlock train``. Flags fill
:class:`~seedlock.train.compose_train.ComposeConfig`; ``--config file.yaml``
supplies defaults that flags override; ``--demo`` starts from the short demo
budget instead of the thesis's (Adam, lr 0.01, seed 77, 100 epochs).
"""

from __future__ import annotations

import argparse
from dataclasses import fields, replace
from pathlib import Path
from typing import Any

from seedlock.core.errors import UserError

_FLAGS: dict[str, tuple[type, str]] = {
    "data": (str, "'corpus' (music21's, nine genres) or a folder of <genre>/<files>.mid|.musicxml"),
    "per_genre": (int, "corpus pieces per genre"),
    "window": (int, "input events per window"),
    "horizon": (int, "predicted events per window"),
    "encoding": (str, "onehot | whole (Table 20 ablation)"),
    "cell": (str, "gru | lstm"),
    "hidden": (int, "RNN width"),
    "decoder": (str, "multiway | vanilla"),
    "norm": (str, "instance | group | ensemble (multi-way decoder paths)"),
    "dropout": (float, "dropout before the decoder norms"),
    "epochs": (int, "training epochs"),
    "batch_size": (int, "windows per step"),
    "lr": (float, "Adam learning rate"),
    "seed": (int, "the one seed everything derives from"),
    "stride": (int, "events between window starts"),
    "max_train_windows": (int, "cap on training windows (seeded subset), 0 = all"),
    "l2": (str, "adaptive | none | a fixed coefficient in [0, 0.5]"),
    "l2_init": (float, "adaptive L2 starting coefficient"),
    "eval_windows": (int, "test windows continued by greedy generation"),
    "threads": (int, "torch intra-op threads (1: fastest for this small RNN on shared CPUs)"),
}


def register_train(train_subparsers: Any) -> argparse.ArgumentParser:
    p = train_subparsers.add_parser(
        "compose", help="train the music composer (one-hot bi-directional Seq2Seq, thesis 3.7)",
        description="Train the composer on the music21 corpus or your own MusicXML/MIDI folder.",
    )
    p.add_argument("--out", default=None, help="run folder (checkpoint.pt, config.json, metrics.json, pianoroll.png)")
    p.add_argument("--config", default=None, help="YAML file of ComposeConfig keys (flags override it)")
    p.add_argument("--demo", action="store_true", help="the short demo budget (~2-3 minutes on 2 cores)")
    p.add_argument("--ablation", action="store_true", help="run the Table 20-22 comparisons at equal budget -> ablation.md")
    p.add_argument("--genres", default=None, help="comma-separated genres (default: all)")
    p.add_argument("--per-genre-training", action="store_true", help="one model per genre (the thesis's setting)")
    p.add_argument("--no-conditioning", action="store_true", help="do not feed the genre to the model")
    p.add_argument("--unidirectional", action="store_true", help="uni-directional encoder (Table 21 ablation)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    for name, (typ, help_text) in _FLAGS.items():
        p.add_argument("--" + name.replace("_", "-"), dest=name, type=typ, default=None, help=help_text)
    p.set_defaults(func=handle_compose)
    return p


def config_from_args(args: argparse.Namespace):
    from seedlock.train import compose_train as ct

    if args.ablation:
        cfg = ct.ablation_config()
    elif args.demo:
        cfg = ct.demo_config()
    else:
        cfg = ct.ComposeConfig()
    if args.config:
        import yaml

        try:
            loaded = yaml.safe_load(Path(args.config).read_text()) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise UserError(f"cannot read config {args.config}: {exc}") from None
        if not isinstance(loaded, dict):
            raise UserError(f"{args.config} must hold a mapping of config keys")
        cfg = ct.ComposeConfig.from_dict({**cfg.to_dict(), **loaded})
    updates: dict[str, Any] = {k: getattr(args, k) for k in _FLAGS if getattr(args, k) is not None}
    if args.out:
        updates["out"] = args.out
    if args.genres:
        updates["genres"] = [g.strip() for g in args.genres.split(",") if g.strip()]
    if args.per_genre_training:
        updates["per_genre_training"] = True
    if args.no_conditioning:
        updates["conditioning"] = False
    if args.unidirectional:
        updates["bidirectional"] = False
    if args.no_progress:
        updates["progress"] = False
    names = {f.name for f in fields(ct.ComposeConfig)}
    assert set(updates) <= names
    try:
        cfg = replace(cfg, **updates)
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

    cfg = config_from_args(args)
    if args.ablation:
        ct.run_ablation(cfg)
    else:
        ct.train_compose(cfg)
    return 0
