"""``seedlock train segment`` and ``seedlock train evaluate``: the U-Net-BN
segmenter's training commands, and the builder ``load_checkpoint`` uses to
rebuild a segmentation checkpoint's model.

Option values come from, in increasing priority: the SegmentConfig defaults,
``--config FILE.yaml``, then the flags given on the command line.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

from seedlock.core.argtypes import non_negative_float, non_negative_int, positive_float, positive_int, rgb_floats
from seedlock.core.errors import UserError

# The imports of torch-backed modules stay inside the handlers: building the
# parser (``seedlock --help``) must work without torch (the serving image).

ACTIVATIONS = ("relu", "elu", "bi-relu", "bi-elu")
NORMS = ("batch", "instance", "group", "none", "ensemble-instance", "ensemble-group")


def register_train(sub: Any) -> None:
    _add_segment(sub)
    _add_evaluate(sub)


def build_model(model_config: dict[str, Any], labels: list[str]) -> Any:
    from seedlock.train.unet import UNet, UNetConfig

    return UNet(UNetConfig.from_dict(model_config))


def _add_segment(sub: Any) -> None:
    p = sub.add_parser(
        "segment",
        help="train the U-Net-BN segmenter (thesis 4.4)",
        description=(
            "Train a U-Net with a normalization after every conv on procedural scenes (default) or a "
            "VOC/ATR folder. Writes checkpoint.pt, config.json, metrics.json and val_prediction.png to --out. "
            "Run it under `torchrun --nproc_per_node=N` for DistributedDataParallel."
        ),
    )
    S = argparse.SUPPRESS  # unset flags stay absent, so --config values are not overwritten by defaults
    g = p.add_argument_group("config")
    g.add_argument("--config", metavar="FILE", help="YAML/JSON file of options (a run's config.json works); flags override it")
    g = p.add_argument_group("data")
    g.add_argument("--data", default=S, metavar="scenes|DIR", help="'scenes' (embedded, procedural) or a VOC/ATR folder [scenes]")
    g.add_argument("--size", type=positive_int, default=S, help="square input side in pixels, a multiple of 2**depth [96]")
    g.add_argument("--n-train", type=positive_int, default=S, help="training samples (scenes: how many to draw [1024]; folder: a cap)")
    g.add_argument("--n-val", type=positive_int, default=S, help="validation samples (scenes [32]; folder: a cap)")
    g.add_argument("--data-seed", "--split-seed", dest="data_seed", type=non_negative_int, default=S,
                   help="seed of the embedded scenes and of any split; independent of --seed [0]")
    g.add_argument("--mean", type=rgb_floats, default=S, metavar="R,G,B", help="normalization mean [ImageNet]")
    g.add_argument("--std", type=rgb_floats, default=S, metavar="R,G,B", help="normalization std [ImageNet]")
    g = p.add_argument_group("model")
    g.add_argument("--width", type=positive_int, default=S, help="filters in the first stage (doubling per stage) [16]")
    g.add_argument("--depth", type=positive_int, default=S, help="number of down-sampling stages [3]")
    g.add_argument("--activation", choices=ACTIVATIONS, default=S, help="activation; bi-* is the thesis's bi-activation [relu]")
    g.add_argument("--alpha", type=positive_float, default=S, help="ELU alpha for elu / bi-elu [1.0]")
    g.add_argument("--norm", choices=NORMS, default=S, help="normalization after every 3x3 conv; ensemble-* = (BN + other)/2 [batch]")
    g.add_argument("--groups", type=positive_int, default=S, help="groups for group norm [4]")
    g = p.add_argument_group("loss")
    g.add_argument("--loss", choices=("ce", "focal"), default=S, help="cross-entropy or focal loss [focal]")
    g.add_argument("--gamma", type=non_negative_float, default=S, help="focal loss gamma [2.0]")
    g.add_argument("--l1", type=non_negative_float, default=S, help="weight of mean |onehot - softmax| (prediction error) [0.5]")
    g.add_argument("--l2", type=non_negative_float, default=S, help="weight of mean (onehot - softmax)^2 [0.0]")
    g.add_argument("--exp-reg", type=non_negative_float, default=S, help="weight of the exponential regularizer mean|e|*exp(-mean e^2) [0.0]")
    g = p.add_argument_group("optimization")
    g.add_argument("--epochs", type=positive_int, default=S, help="epochs when --steps is not set [5]")
    g.add_argument("--steps", type=positive_int, default=S, help="total optimizer steps (overrides --epochs) [400]")
    g.add_argument("--batch-size", type=positive_int, default=S, help="images per step (per process under torchrun) [4]")
    g.add_argument("--lr", type=positive_float, default=S, help="Adam learning rate [0.001]")
    g.add_argument("--seed", type=non_negative_int, default=S, help="training seed: weight init and data order [777]")
    g.add_argument("--seed-search", type=non_negative_int, default=S, metavar="K", help="try K seeds in short runs, train the best (by val mean IoU) [0]")
    g.add_argument("--search-steps", type=positive_int, default=S, help="steps per seed-search trial [a fifth of the run]")
    g = p.add_argument_group("run")
    g.add_argument("--out", default=S, metavar="DIR", help="run folder to write [runs/segment]")
    g.add_argument("--threads", type=positive_int, default=S, help="torch CPU threads [torch default]")
    g.add_argument("--device", choices=("cpu", "cuda", "auto"), default=S, help="where to train [cpu]")
    g.add_argument("--no-progress", dest="progress", action="store_false", default=S, help="no progress bar")
    p.set_defaults(func=_segment)


def _add_evaluate(sub: Any) -> None:
    p = sub.add_parser(
        "evaluate",
        help="validation metrics of a segmentation checkpoint",
        description="Load a checkpoint (or run folder) and score it on the validation split of its data.",
    )
    p.add_argument("checkpoint", help="checkpoint.pt or the run folder holding it")
    p.add_argument("--data", help="scenes or a VOC/ATR folder [the checkpoint's]")
    p.add_argument("--n-val", type=positive_int, help="validation samples [the checkpoint's]")
    p.add_argument("--json", action="store_true", help="print the full metrics as JSON")
    p.set_defaults(func=_evaluate)


def _segment(args: argparse.Namespace) -> int:
    from seedlock.train.config import config_from_args
    from seedlock.train.segment import SegmentConfig, train_segmenter

    cfg = config_from_args(SegmentConfig, args)
    try:
        run_dir = train_segmenter(cfg)
    except FileNotFoundError as exc:
        raise UserError(str(exc)) from None
    if os.environ.get("RANK", "0") == "0":  # under torchrun only rank 0 reports
        _print_summary(run_dir, json.loads((run_dir / "metrics.json").read_text()))
    return 0


def _fmt(v: Any) -> str:
    return "n/a" if v is None else f"{v:.3f}"


def _print_summary(run_dir: Path, m: dict[str, Any]) -> None:
    val = m["val"]
    t = m["timing"]
    print(f"trained U-Net segmenter: {m['steps']} steps, seed {m['seed']}, world size {m['world_size']}, {t['train_seconds']:.1f} s")
    print(
        f"validation ({m['n_val']} images): mean IoU {_fmt(val['mean_iou'])}, F1 {_fmt(val['mean_f1'])}, "
        f"precision {_fmt(val['mean_precision'])}, recall {_fmt(val['mean_recall'])} "
        f"(background excluded; with background mean IoU {_fmt(val['mean_iou_with_background'])}), "
        f"pixel accuracy {_fmt(val['pixel_accuracy'])}"
    )
    names = val.get("class_names") or [str(i) for i in range(val["num_classes"])]
    print("per-class IoU: " + ", ".join(f"{n} {_fmt(v)}" for n, v in zip(names, val["per_class"]["iou"])))
    print(f"run folder: {run_dir}  (checkpoint.pt, config.json, metrics.json, val_prediction.png)")


def _evaluate(args: argparse.Namespace) -> int:
    from torch.utils.data import DataLoader

    from seedlock.train.checkpoint import load_checkpoint
    from seedlock.train.data.segmentation import SegmentationDataset, build_sources
    from seedlock.train.determinism import deterministic
    from seedlock.train.segment import SCENE_DEFAULTS, evaluate

    ckpt = load_checkpoint(args.checkpoint)
    if ckpt.task != "segmentation":
        raise UserError(f"{args.checkpoint} holds a {ckpt.task!r} model, not a segmenter")
    cfg = ckpt.config
    pre = ckpt.preprocess
    data = args.data or cfg.get("data", "scenes")
    n_val = args.n_val or cfg.get("n_val") or (SCENE_DEFAULTS["n_val"] if data == "scenes" else 0)
    _, val_src = build_sources(data, int(pre["size"]), 1, n_val, int(cfg.get("data_seed", 0)))
    val_ds = SegmentationDataset(val_src, pre["mean"], pre["std"], cache=False)
    if len(val_ds.labels) != len(ckpt.labels):
        raise UserError(f"the data has {len(val_ds.labels)} classes but the checkpoint was trained on {len(ckpt.labels)}")
    with deterministic():
        metrics = evaluate(ckpt.model, DataLoader(val_ds, batch_size=8), len(ckpt.labels), ckpt.labels)
    if args.json:
        print(json.dumps(metrics, indent=2, sort_keys=True))
    else:
        print(
            f"{ckpt.path}: mean IoU {_fmt(metrics['mean_iou'])}, F1 {_fmt(metrics['mean_f1'])}, "
            f"pixel accuracy {_fmt(metrics['pixel_accuracy'])} on {len(val_ds)} validation images"
        )
    return 0
