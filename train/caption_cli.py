"""``seedlock train caption [options] [--ablation]``: the image-caption generator (thesis 4.2).

The lead wires it in with ``register_train(train_subparsers)``. Option values
come from, in increasing priority: the CaptionConfig defaults (the demo),
``--config FILE.yaml``, then the flags given. torch is imported in the handler
only, so building the parser stays cheap.
"""

from __future__ import annotations

import argparse
from typing import Any

from seedlock.core.argtypes import int_at_least, non_negative_float, rgb_floats, seed_list

ENCODERS = ("resnet", "vgg")
CELLS = ("lstm", "gru")
DIRECTIONS = ("vanilla", "bi")
EMBEDDINGS = ("learned", "glove")
INITS = ("random-normal", "random-uniform", "he-normal", "he-uniform", "lecun-normal", "lecun-uniform")


def register_train(sub: Any) -> None:
    """Add ``caption`` to the ``seedlock train`` subparsers."""
    p = sub.add_parser(
        "caption",
        help="train the image-caption generator (thesis 4.2); --ablation compares its modules",
        description=(
            "Train a CNN + merge-RNN captioner on procedural scenes (default) or a Flickr8k token file / COCO "
            "captions JSON. Writes checkpoint.pt, config.json, vocab.json and metrics.json (BLEU-1..4 greedy "
            "and beam, next-word accuracy) to --out. --ablation trains one model per module variant of "
            "Tables 27-30 (and per --seeds seed) at the same budget and writes ablation.md."
        ),
    )
    S = argparse.SUPPRESS  # unset flags stay absent, so --config values are not overwritten by defaults
    g = p.add_argument_group("config")
    g.add_argument("--config", metavar="FILE", help="YAML/JSON file of options (a run's config.json works); flags override it")
    g.add_argument("--ablation", action="store_true", help="run the module comparison (Tables 27-30) and write ablation.md")
    g.add_argument("--seeds", type=seed_list, default=None, metavar="LIST",
                   help="with --ablation: model seeds, comma-separated, e.g. the thesis's 999,500,1 (mean ± std) [--seed]")  # fmt: skip
    g = p.add_argument_group("data")
    g.add_argument("--data", default=S, metavar="scenes|FILE", help="'scenes' (embedded) or a Flickr8k token file / COCO captions .json [scenes]")
    g.add_argument("--images", default=S, metavar="DIR", help="image folder for --data FILE [beside the file]")
    g.add_argument("--split", default=S, metavar="FILE", help="Flickr8k split file listing the images to use")
    g.add_argument("--size", type=int_at_least(32), default=S, help="square input side, a multiple of 8 [64]")
    g.add_argument("--n-train", type=int_at_least(1), default=S, help="training images (scenes: how many [1200]; file: a cap)")
    g.add_argument("--n-val", type=int_at_least(1), default=S, help="validation images (scenes [100]; file: 10%%, at most 1000)")
    g.add_argument("--data-seed", "--split-seed", dest="data_seed", type=int_at_least(0), default=S,
                   help="seed of the scenes / the validation split; independent of --seed [0]")
    g.add_argument("--min-count", type=int_at_least(1), default=S, help="vocabulary frequency threshold [2]")
    g.add_argument("--max-words", type=int_at_least(1), default=S, help="cut training captions to this many words [20]")
    g.add_argument("--mean", type=rgb_floats, default=S, metavar="R,G,B", help="normalization mean [ImageNet]")
    g.add_argument("--std", type=rgb_floats, default=S, metavar="R,G,B", help="normalization std [ImageNet]")
    g = p.add_argument_group("model (the thesis's five modules)")
    g.add_argument("--encoder", choices=ENCODERS, default=S, help="feature extraction CNN [resnet]")
    g.add_argument("--width", type=int_at_least(1), default=S, help="CNN channels of the first stage [12]")
    g.add_argument("--encoder-weights", default=S, metavar="FILE", help="user-supplied CNN weights (a state dict of the encoder)")
    g.add_argument("--freeze-encoder", action="store_true", default=S, help="do not train the CNN (with --encoder-weights)")
    g.add_argument("--cell", choices=CELLS, default=S, help="RNN cell [lstm]")
    g.add_argument("--direction", choices=DIRECTIONS, default=S, help="RNN over the prefix: vanilla or bi-directional [vanilla]")
    g.add_argument("--embedding", choices=EMBEDDINGS, default=S, help="word embedding: learned or from --glove [learned]")
    g.add_argument("--glove", default=S, metavar="FILE", help="GloVe text file (word v1 .. vD per line)")
    g.add_argument("--glove-trainable", action="store_true", default=S, help="fine-tune the GloVe vectors (frozen by default)")
    g.add_argument("--embed-dim", type=int_at_least(1), default=S, help="embedding size; must match the GloVe file [64]")
    g.add_argument("--hidden", type=int_at_least(1), default=S, help="RNN and merge size [96]")
    g.add_argument("--attention", action=argparse.BooleanOptionalAction, default=S, help="attention over the CNN regions [off]")
    g.add_argument("--init", choices=INITS, default=S, help="initialization of the sequential side [lecun-uniform]")
    g.add_argument("--dropout", type=non_negative_float, default=S, help="dropout before the merge and output layers [0.1]")
    g = p.add_argument_group("optimization")
    g.add_argument("--steps", type=int_at_least(1), default=S, help="total optimizer steps (overrides --epochs) [400]")
    g.add_argument("--epochs", type=int_at_least(1), default=S, help="epochs, when --steps is not set")
    g.add_argument("--batch-size", type=int_at_least(1), default=S, help="images per step, each with all its captions [12]")
    g.add_argument("--lr", type=non_negative_float, default=S, help="Adam learning rate (cosine decay to 10%%) [3e-3]")
    g.add_argument("--seed", type=int_at_least(0), default=S, help="training seed: weights and data order [777]")
    g = p.add_argument_group("evaluation and run")
    g.add_argument("--beam", type=int_at_least(1), default=S, help="beam size for the beam-search BLEU [3]")
    g.add_argument("--max-length", type=int_at_least(1), default=S, help="maximum caption length when decoding [20]")
    g.add_argument("--out", default=S, metavar="DIR", help="run folder [runs/caption]")
    g.add_argument("--threads", type=int_at_least(1), default=S, help="torch CPU threads (fix it for bit-identical reruns)")
    g.add_argument("--no-progress", dest="progress", action="store_false", default=S, help="no progress bar")
    p.set_defaults(func=run_train_caption)


def build_model(model_config: dict[str, Any], labels: list[str]) -> Any:
    from seedlock.train.captioner import build_from_config

    return build_from_config(model_config)


def run_train_caption(args: argparse.Namespace) -> int:
    from seedlock.train.caption_train import CaptionConfig, run_ablation, train_captioner
    from seedlock.train.config import config_from_args

    cfg = config_from_args(CaptionConfig, args)
    seeds = getattr(args, "seeds", None)
    if args.ablation:
        run_ablation(cfg, seeds=seeds)
    elif seeds:
        from seedlock.core.errors import UserError

        raise UserError("--seeds goes with --ablation; a single run takes --seed")
    else:
        train_captioner(cfg)
    return 0
