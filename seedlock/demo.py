"""``seedlock demo``: the main job end to end on the embedded defaults.

For the segmenter: train a small U-Net-BN on procedural scenes, export it into
a model repository (verified against torch), run the exported model on a
held-out scene, then start the gRPC server and call it through the client CLI,
checking the served mask is the in-process one, byte for byte.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

import numpy as np

from seedlock.core.errors import UserError

# Scenes past every train/val index: never seen in training or validation.
HELDOUT_INDEX = 1_000_000


def _banner(text: str) -> None:
    print(f"\n== {text} " + "=" * max(0, 70 - len(text)), flush=True)


def _client(*args: str) -> str:
    proc = subprocess.run([sys.executable, "-m", "seedlock", "client", *args], capture_output=True, text=True, timeout=120)
    print(f"$ seedlock client {' '.join(args)}")
    print(proc.stdout.rstrip())
    if proc.returncode != 0:
        raise UserError(f"`seedlock client {args[0]}` failed: {proc.stderr.strip()}")
    return proc.stdout


def segmentation_demo(out: Path, repository: Path, steps: int | None, log: Callable[[str], None] = print) -> dict:
    import onnxruntime as ort

    from seedlock.core import segmentation
    from seedlock.core.imaging import overlay, write_png
    from seedlock.core.metrics import confusion_matrix, scores_from_confusion
    from seedlock.core.repository import load_version
    from seedlock.export.segmenter import export_segmenter
    from seedlock.train.data.scenes import make_scene
    from seedlock.train.segment import demo_config, train_segmenter

    _banner("1/4 train the U-Net-BN segmenter on embedded scenes")
    overrides = {"steps": steps} if steps else {}
    cfg = demo_config(out=str(out / "segment"), **overrides)
    run_dir = train_segmenter(cfg)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    val = metrics["val"]
    log(f"run folder: {run_dir}  (checkpoint.pt, config.json, metrics.json, val_prediction.png)")
    log(f"validation mean IoU (foreground classes): {val['mean_iou']:.3f}   "
        f"mean F1: {val['mean_f1']:.3f}   train time: {metrics['timing']['train_seconds']:.0f}s")

    _banner("2/4 export to ONNX into the model repository")
    result = export_segmenter(run_dir / "checkpoint.pt", repository, name="segmenter", version=1, overwrite=True, log=log)

    _banner("3/4 run the exported model on a held-out scene (ONNX Runtime, in process)")
    scene, truth = make_scene(cfg.data_seed, HELDOUT_INDEX, 160)
    image, truth = scene[:, :120].copy(), truth[:, :120].copy()  # non-square: exercises the letterbox
    mv = load_version(repository, "segmenter")
    session = ort.InferenceSession(str(mv.path()), providers=["CPUExecutionProvider"])
    mask = segmentation.segment(image, mv.manifest.preprocess, lambda x: session.run(None, {"image": x})[0])
    labels = mv.manifest.labels
    heldout = scores_from_confusion(confusion_matrix(mask, truth, len(labels)), labels)
    write_png(out / "heldout.png", image)
    write_png(out / "heldout_overlay.png", overlay(image, mask, len(labels)))
    log(f"held-out scene {image.shape[1]}x{image.shape[0]}: mean IoU {heldout['mean_iou']:.3f}; "
        f"wrote {out / 'heldout.png'} and {out / 'heldout_overlay.png'}")

    served = _serve_and_call(repository, out, mask)
    return {
        "run_dir": str(run_dir),
        "val_mean_iou": val["mean_iou"],
        "heldout_mean_iou": heldout["mean_iou"],
        "model_digest": result.manifest.digest,
        "served_mask_matches_in_process": served,
    }


def _serve_and_call(repository: Path, out: Path, expected_mask: np.ndarray) -> bool:
    from seedlock.core.imaging import read_image
    from seedlock.serve.server import start_server

    _banner("4/4 serve the repository over gRPC and call it through the client CLI")
    server = start_server(repository, host="127.0.0.1", port=0)
    try:
        target = f"127.0.0.1:{server.port}"
        print(f"server listening on {target}")
        _client("health", "--server", target)
        _client("models", "--server", target)
        _client("segment", str(out / "heldout.png"), "--out", str(out / "served_mask.png"),
                "--overlay", str(out / "served_overlay.png"), "--server", target)
    finally:
        server.stop(grace=2.0)
    served = read_image(out / "served_mask.png")[..., 0]
    same = bool(np.array_equal(served, expected_mask))
    print(f"served mask == in-process mask: {same}")
    if not same:
        raise UserError("the served mask differs from the in-process one: seed-lock broken")
    return same


def _run(args: argparse.Namespace) -> int:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    repository = Path(args.repository)
    t0 = time.perf_counter()
    summary = {"segmentation": segmentation_demo(out, repository, args.steps)}
    summary["seconds"] = round(time.perf_counter() - t0, 1)
    (out / "summary.json").write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")
    _banner("done")
    print(f"demo finished in {summary['seconds']:.0f}s; summary in {out / 'summary.json'}; repository in {repository}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("demo", help="train, export, serve and call the demo models end to end",
                            description="Run the main job end to end on the embedded defaults: train, export to a "
                            "model repository, run the exported model, serve it over gRPC and call it with the client.")
    parser.add_argument("--out", default="runs/demo", help="folder for runs and pictures (default: %(default)s)")
    parser.add_argument("--repository", default="repository", help="model repository to write (default: %(default)s)")
    parser.add_argument("--steps", type=int, default=None, help="override the training steps (default: the calibrated demo budget)")
    parser.set_defaults(func=_run)
