"""``seedlock reproduce seed-search``: the quick run's report, one run recomputed, and the rank statistics."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from seedlock.reproduce.report import Measured, Thesis
from seedlock.reproduce.seed_search import QUICK, bootstrap_spearman, pool_seeds, rankdata, run_one, spearman

NAME = "seed-search"
SEEDS = [999, 500, 1]


# ----------------------------------------------------------------------------- statistics (fast)


def test_rankdata_averages_ties():
    assert rankdata([10, 20, 20, 5]).tolist() == [2.0, 3.5, 3.5, 1.0]
    assert rankdata([3, 3, 3]).tolist() == [2.0, 2.0, 2.0]


def test_spearman_extremes_and_constant_input():
    x = [0.1, 0.5, 0.3, 0.9]
    assert spearman(x, [1, 5, 3, 9]) == pytest.approx(1.0)
    assert spearman(x, [9, 5, 7, 1]) == pytest.approx(-1.0)
    assert math.isnan(spearman(x, [2, 2, 2, 2]))
    assert math.isnan(spearman([1.0], [2.0]))
    with pytest.raises(ValueError):
        spearman([1, 2], [1, 2, 3])


def test_spearman_matches_scipy_with_ties():
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(7)
    for _ in range(20):
        x = rng.integers(0, 6, 15)  # many ties, as accuracies on a few hundred images have
        y = x + rng.integers(-3, 4, 15)
        assert spearman(x, y) == pytest.approx(stats.spearmanr(x, y).statistic, abs=1e-12)


def test_bootstrap_is_seeded_and_bounded():
    x, y = np.arange(12.0), np.arange(12.0) + np.array([0, 3, -2, 1, 0, 4, -1, 2, 0, -3, 1, 0])
    a, b = bootstrap_spearman(x, y, 200, seed=3), bootstrap_spearman(x, y, 200, seed=3)
    assert np.array_equal(a, b) and len(a) > 150
    assert np.all((a >= -1 - 1e-12) & (a <= 1 + 1e-12))
    assert not np.array_equal(a, bootstrap_spearman(x, y, 200, seed=4))
    assert np.median(a) > 0.5  # a strongly monotone relation stays positive under resampling


def test_pool_puts_the_given_seeds_first():
    assert pool_seeds((999, 500, 1), 6) == [999, 500, 1, 2, 3, 4]
    assert pool_seeds((2, 3), 4) == [2, 3, 4, 5]
    assert pool_seeds((7, 8, 9), 2) == [7, 8, 9]


# ----------------------------------------------------------------------------- the quick run (slow)


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    import reproduce_checks

    out = tmp_path_factory.mktemp("seed-search")
    reproduce_checks.run_quick(NAME, out, ",".join(str(s) for s in SEEDS))
    report = reproduce_checks.check_report(out, NAME, SEEDS)
    return out, report, json.loads((out / f"{NAME}.json").read_text())


def _run(data: dict, act: str, seed: int, split: int, batch: int = 64) -> dict:
    [rec] = [r for r in data["data"]["runs"] if (r["activation"], r["seed"], r["split_seed"], r["batch"]) == (act, seed, split, batch)]
    return rec


@pytest.mark.slow
@pytest.mark.reproduce
def test_quick_report_has_every_table_and_row(quick):
    from reproduce_checks import find_row

    _, report, _ = quick
    titles = [t.title for t in report.tables]
    for prefix in ("Table 25", "Where the spread comes from", "Does a short trial rank", "Picking the seed", "Table 26"):
        assert any(t.startswith(prefix) for t in titles), prefix
    for act in ("ReLU", "ELU"):
        for seed, sub in ((999, "c"), (500, "b"), (1, "a")):
            row = find_row(report, "Table 25", f"{act}, seed {seed} ({sub})")
            assert isinstance(row[1], Thesis) and isinstance(row[2], Measured) and len(row[2].values) == QUICK.splits
        for batch in (128, 86, 64, 32):
            assert isinstance(find_row(report, "Table 26", f"{act}, batch {batch}")[6], Measured)
    thesis_t25 = find_row(report, "Table 25", "ReLU, seed 999 (c)")
    assert [thesis_t25[i].text for i in (1, 3, 5)] == ["0.142", "0.973", "0.875"]
    spread = next(t for t in report.tables if t.title.startswith("Where the spread"))
    reruns = [r for r in spread.rows if r[0].startswith("re-run")]
    assert len(reruns) == 2 and all(r[4] == "yes: bit-identical" and r[3].values == (0.0, 0.0, 0.0) for r in reruns)
    rank = next(t for t in report.tables if t.title.startswith("Does a short trial"))
    assert len(rank.rows) == 2 * (len(QUICK.short) + 2)
    assert (quick[0] / "seed-search_ranking.png").stat().st_size < 150_000


@pytest.mark.slow
@pytest.mark.reproduce
def test_stored_run_is_what_training_computes(quick):
    from reproduce_checks import find_row

    _, report, data = quick
    stored = _run(data, "relu", 1, 0)
    rec, _ = run_one("relu", 1, 0, QUICK.epochs)
    for key in ("train_loss", "train_acc", "test_loss", "test_acc", "val_acc"):
        assert stored[key] == rec[key], key
    assert stored["val_loss"][str(QUICK.epochs)] == rec["val_loss"][-1]
    # the table shows that run's numbers (split 0 is the first value of the seed's cell)
    row = find_row(report, "Table 25", "ReLU, seed 1 (a)")
    assert row[6].values[0] == rec["test_acc"] and row[2].values[0] == rec["train_loss"]
    # a short trial is the first epoch of the full run, bit for bit
    short, _ = run_one("relu", 1, 0, 1)
    assert short["val_acc"][0] == stored["val_acc"][0] and short["val_loss"][0] == stored["val_loss"]["1"]


@pytest.mark.slow
@pytest.mark.reproduce
def test_rho_and_selection_are_computed_from_the_stored_runs(quick):
    _, report, data = quick
    pool, splits, E = data["data"]["config"]["pool"], data["data"]["config"]["splits"], QUICK.epochs
    rank = next(t for t in report.tables if t.title.startswith("Does a short trial"))
    row = next(r for r in rank.rows if r[1] == "ReLU" and r[0] == f"val acc after 1 epoch -> test acc after {E}")
    for i, split in enumerate(splits):
        recs = [_run(data, "relu", s, split) for s in pool]
        assert row[3].values[i] == spearman([r["val_acc"][0] for r in recs], [r["test_acc"] for r in recs])
    # the data split follows --split-seed, not the model seed: the same seed on another split is another run
    assert _run(data, "relu", 1, splits[0])["val_acc"] != _run(data, "relu", 1, splits[1])["val_acc"]
    sel = data["data"]["selection"]["relu"]
    for i, split in enumerate(splits):
        recs = [_run(data, "relu", s, split) for s in pool]
        best = max(recs, key=lambda r: (r["val_acc"][-1], -r["val_loss"][str(E)]))
        assert sel["winners"][str(split)]["full"] == best["seed"] and sel["win_test"][i] == best["test_acc"]
