"""Demo stage for the segmenter: train on embedded scenes, export, run the
exported model on a held-out scene, then call the server through the client CLI
and check the served mask equals the in-process one, byte for byte."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

import numpy as np

from seedlock.core.errors import UserError

TITLE = "U-Net-BN segmenter"
MODEL_NAME = "segmenter"
# Scenes past every train/val index: never seen in training or validation.
HELDOUT_INDEX = 1_000_000


def train_and_export(out: Path, repository: Path, steps: int | None, log: Callable[[str], None]) -> dict:
    from seedlock.core.imaging import overlay, write_png
    from seedlock.core.metrics import confusion_matrix, scores_from_confusion
    from seedlock.core.repository import load_version
    from seedlock.core.segmentation import SegmentationSpec
    from seedlock.core.sessions import create_session
    from seedlock.export.segmenter import export_segmenter
    from seedlock.train.data.scenes import make_scene
    from seedlock.train.segment import demo_config, train_segmenter

    cfg = demo_config(out=str(out / "run"), **({"steps": steps} if steps else {}))
    run_dir = train_segmenter(cfg)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    val = metrics["val"]
    log(f"run folder: {run_dir}  (checkpoint.pt, config.json, metrics.json, val_prediction.png)")
    log(f"validation mean IoU (foreground classes): {val['mean_iou']:.3f}   mean F1: {val['mean_f1']:.3f}   "
        f"train time: {metrics['timing']['train_seconds']:.0f}s")

    result = export_segmenter(run_dir / "checkpoint.pt", repository, name=MODEL_NAME, version=1, overwrite=True, log=log)

    # A scene at the training scale, cropped non-square so the letterbox pads it.
    scene, truth = make_scene(cfg.data_seed, HELDOUT_INDEX, cfg.size)
    keep = cfg.size * 3 // 4
    image, truth = scene[:, :keep].copy(), truth[:, :keep].copy()
    mv = load_version(repository, MODEL_NAME)
    spec = SegmentationSpec.from_manifest(mv.manifest)
    session = create_session(mv.path())  # as the server builds it
    mask = spec.segment(image, lambda x: session.run([spec.output_name], {spec.input_name: x})[0])
    labels = list(spec.labels)
    heldout = scores_from_confusion(confusion_matrix(mask, truth, len(labels)), labels)
    write_png(out / "heldout.png", image)
    write_png(out / "heldout_mask_inprocess.png", mask)
    write_png(out / "heldout_overlay.png", overlay(image, mask, len(labels)))
    log(f"exported model on a held-out {image.shape[1]}x{image.shape[0]} scene (ONNX Runtime, in process): "
        f"mean IoU {heldout['mean_iou']:.3f}; wrote {out / 'heldout_overlay.png'}")
    return {
        "run_dir": str(run_dir),
        "val_mean_iou": val["mean_iou"],
        "heldout_mean_iou": heldout["mean_iou"],
        "model_digest": result.manifest.digest,
    }


def call(server: str, out: Path, client: Callable[..., str], log: Callable[[str], None]) -> dict:
    from seedlock.core.imaging import read_image

    client("segment", str(out / "heldout.png"), "--out", str(out / "served_mask.png"),
           "--overlay", str(out / "served_overlay.png"), "--server", server)
    served = read_image(out / "served_mask.png")[..., 0]
    expected = read_image(out / "heldout_mask_inprocess.png")[..., 0]
    same = bool(np.array_equal(served, expected))
    log(f"served mask == in-process mask: {same}")
    if not same:
        raise UserError("the served mask differs from the in-process one: the seed-lock is broken")
    return {"served_mask_matches_in_process": same}
