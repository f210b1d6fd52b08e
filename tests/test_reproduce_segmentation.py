"""``seedlock reproduce segmentation --quick``: thesis 3.3 (Eq. 5), 3.5 (norms), 4.4 (Table 31, Fig. 55)."""

from __future__ import annotations

import json
import math
from dataclasses import asdict

import pytest
import reproduce_checks as rc
import torch

from seedlock.reproduce import segmentation as seg
from seedlock.reproduce.report import Measured, Thesis, Verdict

NAME = "segmentation"
SEEDS = [999, 500, 1]
TITLES = [
    "Table 31 (4.4): plain U-Net vs U-Net-BN",
    "Table 31 (4.4): precision and recall",
    "Headline (4.4)",
    "Loss and regularization claims",
    "Normalizations (3.5",
    "Eq. 5 nonlinear exponential regularization",
]


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    return rc.run_and_check(tmp_path_factory, NAME, SEEDS)


def _cell(table, row, column):
    return row[table.columns.index(column)]


@pytest.mark.slow
@pytest.mark.reproduce
def test_tables_have_the_thesis_rows(quick):
    out, report = quick
    assert len(report.tables) == len(TITLES)
    for t, prefix in zip(report.tables, TITLES):
        assert t.title.startswith(prefix)
    iou = rc.one_table(report, TITLES[0])
    assert len(iou.rows) == 16
    for row in iou.rows:
        model, loss = row[0].split(", ")[:2]
        assert isinstance(_cell(iou, row, "thesis IoU"), Thesis) == (loss == "focal")
        assert isinstance(_cell(iou, row, rc.VERDICT_COLUMN), Verdict) == (model == "U-Net-BN")
        for col in ("seedlock IoU, thesis reading", "seedlock IoU with background", "seedlock IoU without background"):
            cell = _cell(iou, row, col)
            assert isinstance(cell, Measured) and cell.runs == tuple(f"seed {s}" for s in SEEDS)
    row = rc.find_row(report, TITLES[0], "U-Net, focal, L1 0 L2 0 (i)")
    assert _cell(iou, row, "thesis IoU").text == "0.496 ± 0.0"
    assert _cell(iou, row, "seedlock IoU, thesis reading").mean > _cell(iou, row, "seedlock IoU without background").mean
    pr = rc.one_table(report, TITLES[1])
    assert [r[0] for r in pr.rows] == [r[0] for r in iou.rows]
    assert _cell(pr, rc.find_row(report, TITLES[1], "U-Net, focal, L1 0 L2 0 (i)"), "thesis recall").text == "0.0 ± 0.0"
    assert len(rc.one_table(report, TITLES[2]).rows) == 3 and len(rc.one_table(report, TITLES[3]).rows) == 8
    norms = rc.one_table(report, TITLES[4])
    assert [r[0] for r in norms.rows] == ["none", "IN", "BN", "GN", "BN+IN", "BN+GN"]
    assert [r[-1] is None for r in norms.rows] == [False, False, True, False, False, False]
    eq5 = rc.one_table(report, TITLES[5])
    assert [r[0][:3] for r in eq5.rows] == ["(a)", "(b)", "(c)", "(d)"]
    assert [f.filename for f in report.figures] == [f"{NAME}_predictions.png", f"{NAME}_iou.png"]
    for f in report.figures:
        assert (out / f.filename).stat().st_size < 150_000
    assert (out / f"{NAME}.json").stat().st_size < 300_000
    assert "--split-seed" not in report.command  # default data seed 0


@pytest.mark.slow
@pytest.mark.reproduce
def test_every_run_is_stored_and_one_recomputes_exactly(quick):
    out, report = quick
    data = json.loads((out / f"{NAME}.json").read_text())["data"]
    assert data["budget"] == asdict(seg.QUICK) and data["split_seed"] == 0
    settings = seg.grid_settings()
    assert sorted(data["runs"]) == sorted(s.key for s in settings) and len(settings) == 16 + 4 + 2
    for per_seed in data["runs"].values():
        assert sorted(per_seed) == sorted(str(s) for s in SEEDS)
        for res in per_seed.values():
            assert res["steps"] == seg.QUICK.steps and all(k in res for k in seg.MEASURES)
    # the headline cell is the per-seed value of its run
    iou = rc.one_table(report, TITLES[0])
    setting = seg.Setting("batch", "focal", 0.5, 0.0)
    cell = _cell(iou, rc.find_row(report, TITLES[0], "U-Net-BN, focal, L1 0.5 L2 0 (iii)"), "seedlock IoU without background")
    assert cell.values == tuple(data["runs"][setting.key][str(s)]["iou"] for s in SEEDS)
    # recomputed in this process, alone, it is bit-identical to the pooled run
    again = seg.train_run(setting, 500, seg.QUICK, split_seed=0)
    stored = data["runs"][setting.key]["500"]
    for k in seg.MEASURES:
        assert again[k] == stored[k] or (math.isnan(again[k]) and math.isnan(stored[k])), k


def test_grid_covers_the_thesis_settings():
    keys = {s.key for s in seg.grid_settings()}
    for norm in ("none", "batch"):
        for loss in ("ce", "focal"):
            for l1, l2 in seg.REGS:
                assert seg.Setting(norm, loss, l1, l2).key in keys
    for norm in ("none", "instance", "batch", "group", "ensemble-instance", "ensemble-group"):
        assert seg.Setting(norm, "focal", 0.5, 0.0).key in keys
    assert seg.Setting("batch", "ce", exp_reg=0.5).key in keys and seg.Setting("batch", "ce", 0.5, 0.5, 0.5).key in keys
    cfg = seg.segment_config(seg.Setting("ensemble-group", "ce", exp_reg=0.5), seg.FULL, 999, 3)
    assert (cfg.norm, cfg.exp_reg, cfg.seed, cfg.data_seed, cfg.threads) == ("ensemble-group", 0.5, 999, 3, 1)


def test_evaluate_adds_the_element_readings_only_when_asked():
    from torch.utils.data import DataLoader

    from seedlock.train.data.segmentation import SegmentationDataset, build_sources
    from seedlock.train.segment import IMAGENET_MEAN, IMAGENET_STD, evaluate
    from seedlock.train.unet import unet_bn

    torch.manual_seed(0)
    model = unet_bn(7, width=4, depth=2)
    _, val = build_sources("scenes", 32, 4, 4)
    loader = DataLoader(SegmentationDataset(val, IMAGENET_MEAN, IMAGENET_STD), batch_size=2)
    plain = evaluate(model, loader, 7)
    both = evaluate(model, loader, 7, element_threshold=0.5)
    assert "elements" not in plain and {k: v for k, v in both.items() if not k.startswith("elements")} == plain
    assert both["elements"]["threshold"] == 0.5
    am = both["elements_argmax"]
    assert am["precision"] == pytest.approx(plain["pixel_accuracy"]) and am["recall"] == pytest.approx(plain["pixel_accuracy"])
