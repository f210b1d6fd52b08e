import json
import re
import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch

from seedlock.core.errors import UserError
from seedlock.train.checkpoint import FORMAT, load_checkpoint
from seedlock.train.data.scenes import SCENE_CLASSES, make_scene
from seedlock.train.segment import SegmentConfig, _seed_trials, demo_config, evaluate, predict_masks, train_segmenter

torch.set_num_threads(1)

TINY = dict(size=32, width=4, depth=2, n_train=8, n_val=4, steps=4, threads=1, progress=False)


def _tiny(tmp_path, name="run", **kw):
    return SegmentConfig(out=str(tmp_path / name), **{**TINY, **kw})


def _cli(*args, timeout=120):
    return subprocess.run([sys.executable, "-m", "seedlock", *args], capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("seg")
    return train_segmenter(_tiny(tmp, "run", activation="bi-relu")), tmp


def test_run_writes_every_artifact(tiny_run):
    run, _ = tiny_run
    for name in ("checkpoint.pt", "config.json", "metrics.json", "val_prediction.png"):
        assert (run / name).is_file(), name
    cfg = json.loads((run / "config.json").read_text())
    assert SegmentConfig.from_dict(cfg).activation == "bi-relu" and cfg["n_train"] == 8 and cfg["seed"] == 777
    m = json.loads((run / "metrics.json").read_text())
    assert m["world_size"] == 1 and m["steps"] == 4 and m["seed"] == 777
    assert [e["epoch"] for e in m["epochs"]] == [1, 2] and all(np.isfinite(e["train_loss"]) for e in m["epochs"])
    assert m["val"]["num_classes"] == len(SCENE_CLASSES) and m["val"]["pixels"] == 4 * 32 * 32
    assert 0 <= m["val"]["pixel_accuracy"] <= 1 and "mean_iou" in m["val"] and "mean_iou_with_background" in m["val"]
    assert m["timing"]["train_seconds"] >= 0
    panel = cv2.imread(str(run / "val_prediction.png"))
    assert panel.shape == (4 * 32 + 3 * 2, 3 * 32 + 2 * 2, 3)  # 4 rows of image | truth | prediction


def test_checkpoint_round_trip_and_evaluate_agree(tiny_run):
    run, _ = tiny_run
    raw = torch.load(run / "checkpoint.pt", weights_only=True)
    assert raw["format"] == FORMAT and raw["task"] == "segmentation"
    ckpt = load_checkpoint(run)  # a run folder works too
    assert ckpt.labels == list(SCENE_CLASSES) and ckpt.seed == 777 and not ckpt.model.training
    assert ckpt.preprocess == {"size": 32, "mean": pytest.approx([0.485, 0.456, 0.406]), "std": pytest.approx([0.229, 0.224, 0.225]), "divisor": 4}
    assert ckpt.model_config["activation"] == "bi-relu"
    from torch.utils.data import DataLoader

    from seedlock.train.data.segmentation import SegmentationDataset, build_sources

    _, val = build_sources("scenes", 32, 8, 4)
    ds = SegmentationDataset(val, ckpt.preprocess["mean"], ckpt.preprocess["std"])
    again = evaluate(ckpt.model, DataLoader(ds, batch_size=2), len(ckpt.labels), ckpt.labels)
    assert again == json.loads((run / "metrics.json").read_text())["val"] == ckpt.metrics


def test_predict_masks_maps_back_to_the_image_size(tiny_run):
    ckpt = load_checkpoint(tiny_run[0])
    img, _ = make_scene(0, 1 << 32, 32)
    single = predict_masks(ckpt.model, img, ckpt.preprocess)
    assert single.shape == (32, 32) and single.dtype == np.uint8 and single.max() < len(SCENE_CLASSES)
    with torch.no_grad():
        from seedlock.core.imaging import normalize

        x = torch.from_numpy(normalize(img, ckpt.preprocess["mean"], ckpt.preprocess["std"]))
        assert np.array_equal(single, ckpt.model(x).argmax(1)[0].numpy())
    wide = np.zeros((20, 48, 3), np.uint8)
    assert predict_masks(ckpt.model, np.stack([wide, wide]), ckpt.preprocess).shape == (2, 20, 48)


def _state(run):
    return torch.load(run / "checkpoint.pt", weights_only=True)["state_dict"]


def test_same_seed_gives_bit_identical_weights_and_other_seed_differs(tmp_path):
    torch.use_deterministic_algorithms(False)  # the caller's setting, whatever earlier tests left
    a = _state(train_segmenter(_tiny(tmp_path, "a")))
    b = _state(train_segmenter(_tiny(tmp_path, "b")))
    c = _state(train_segmenter(_tiny(tmp_path, "c", seed=778)))
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert any(not torch.equal(a[k], c[k]) for k in a if a[k].is_floating_point())
    assert not torch.are_deterministic_algorithms_enabled()  # the caller's setting is restored


def test_seed_search_records_every_trial_and_trains_the_winner(tmp_path):
    run = train_segmenter(_tiny(tmp_path, seed_search=3, search_steps=2))
    s = json.loads((run / "seed_search.json").read_text())
    assert [t["seed"] for t in s["trials"]] == _seed_trials(777, 3) and s["trials"][0]["seed"] == 777
    assert len(set(t["seed"] for t in s["trials"])) == 3 and all(t["steps"] == 2 for t in s["trials"])
    scores = [t["val_mean_iou"] for t in s["trials"]]
    assert s["winner"]["val_mean_iou"] == max(scores) and s["winner"]["seed"] == s["trials"][scores.index(max(scores))]["seed"]
    assert load_checkpoint(run).seed == s["winner"]["seed"]
    assert json.loads((run / "metrics.json").read_text())["seed"] == s["winner"]["seed"]
    # the winner's full run is the same as training that seed directly
    direct = train_segmenter(_tiny(tmp_path, "direct", seed=s["winner"]["seed"]))
    a, b = _state(run), _state(direct)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_bad_options_are_user_errors(tmp_path):
    with pytest.raises(UserError, match="multiple of 2\\*\\*depth"):
        train_segmenter(_tiny(tmp_path, size=30))
    with pytest.raises(UserError, match="groups"):
        train_segmenter(_tiny(tmp_path, norm="group", width=6, groups=4))
    with pytest.raises(UserError, match="unknown segment config key"):
        SegmentConfig.from_dict({"widht": 3})


def test_cli_trains_from_yaml_with_flag_overrides_then_evaluates(tmp_path):
    (tmp_path / "cfg.yaml").write_text("size: 32\nwidth: 4\ndepth: 2\nn_train: 8\nn_val: 4\nsteps: 2\nlr: 0.01\nnorm: group\n")
    out = tmp_path / "cli-run"
    proc = _cli("train", "segment", "--config", str(tmp_path / "cfg.yaml"), "--steps", "3", "--threads", "1", "--no-progress", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    assert "mean IoU" in proc.stdout and str(out) in proc.stdout
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["steps"] == 3 and cfg["lr"] == 0.01 and cfg["norm"] == "group" and cfg["width"] == 4
    proc = _cli("train", "evaluate", str(out / "checkpoint.pt"), "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == json.loads((out / "metrics.json").read_text())["val"]


@pytest.mark.parametrize("content", [None, b"garbage, not a checkpoint", "truncated"])
def test_cli_bad_checkpoint_is_one_line_error(tmp_path, tiny_run, content):
    bad = tmp_path / "bad.pt"
    if content == "truncated":
        data = (tiny_run[0] / "checkpoint.pt").read_bytes()
        bad.write_bytes(data[: len(data) // 2])
    elif content is not None:
        bad.write_bytes(content)
    proc = _cli("train", "evaluate", str(bad))
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode != 0 and len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    assert ("not found" if content is None else "corrupt or truncated") in lines[0]


def test_cli_rejects_bad_values(tmp_path):
    proc = _cli("train", "segment", "--norm", "layer")
    assert proc.returncode == 2 and "invalid choice" in proc.stderr
    proc = _cli("train", "segment", "--size", "36", "--depth", "3", "--out", str(tmp_path / "x"))
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1 and "multiple" in proc.stderr


def test_help_defaults_match_the_config():
    from seedlock.cli import build_parser

    parser = build_parser("train")
    sub = next(a for a in parser._actions if a.dest == "command").choices["train"]
    seg = next(a for a in sub._actions if a.dest == "train_command").choices["segment"]
    cfg = SegmentConfig()
    checked = 0
    for action in seg._actions:
        name = action.dest
        m = re.search(r"\[([^\]]+)\]$", action.help or "")
        if m and hasattr(cfg, name) and isinstance(getattr(cfg, name), (int, float, str)) and not isinstance(getattr(cfg, name), bool):
            assert str(getattr(cfg, name)) == m.group(1), name
            checked += 1
    assert checked >= 15


def test_demo_config_is_valid():
    cfg = demo_config()
    cfg.validate()
    assert cfg.norm == "batch" and cfg.loss == "focal" and cfg.l1 == 0.5 and cfg.seed == 777 and cfg.batch_size == 4
