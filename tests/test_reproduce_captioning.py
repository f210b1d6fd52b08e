"""``seedlock reproduce captioning --quick``: the report's structure, and one per-seed figure recomputed.

Plus fast unit tests of the shared grid (``run_grid``: the one implementation
behind this experiment and ``seedlock train caption --ablation``) and of the
measures the report adds (mean BLEU, relative change).
"""

from __future__ import annotations

import math

import pytest
import reproduce_checks as rc

from seedlock.reproduce import captioning as cap
from seedlock.reproduce.report import Measured, Thesis, Verdict

NAME = "captioning"
SEEDS = [999, 500, 1]
TABLES = (
    "Table 27: sequential module",
    "Table 28: embedding module",
    "Table 29: attention module",
    "Table 30: search module",
    "Feature extraction (Fig. 44",
    "Initial seed module (Fig. 45",
)


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    return rc.run_and_check(tmp_path_factory, NAME, SEEDS)


@pytest.mark.slow
@pytest.mark.reproduce
def test_quick_report_structure(quick):
    out, report = quick
    titles = [t.title for t in report.tables]
    assert len(titles) == len(TABLES) and all(t.startswith(p) for t, p in zip(titles, TABLES))
    t27 = report.tables[0]
    assert [r[0] for r in t27.rows] == ["LSTM, vanilla", "GRU, vanilla", "LSTM, bi-directional", "GRU, bi-directional",
                                        "GRU, bi-directional (again: vs GRU, vanilla)"]  # fmt: skip
    # thesis beside seedlock for every BLEU, and the thesis figures exactly as printed
    for n in range(1, 5):
        i = t27.columns.index(f"thesis BLEU-{n}")
        assert t27.columns[i + 1] == f"seedlock BLEU-{n}"
    assert t27.rows[0][2] == Thesis("0.5872") and t27.rows[3][2] == Thesis("0.2921")
    assert all(isinstance(c, Measured) and len(c.values) == len(SEEDS) for c in t27.rows[0][3:11:2])
    assert isinstance(t27.rows[1][-1], Verdict) and t27.rows[0][-1] is None
    # GloVe rows: thesis figures, no seedlock figure (no GloVe file offline), said so
    t28 = report.tables[1]
    glove = [r for r in t28.rows if r[0].startswith("GloVe")]
    assert len(glove) == 2 and all("not run" in r[0] and r[3] is None and r[-1] is None for r in glove)
    # Table 30: eight rows, greedy/beam pairs of the same model, each beam row with a verdict
    t30 = report.tables[3]
    assert [r[0] for r in t30.rows] == ["greedy", "beam"] * 4
    assert all(isinstance(r[-1], Verdict) for r in t30.rows[1::2]) and all(r[-1] is None for r in t30.rows[0::2])
    inits = [r[0] for r in report.tables[5].rows]
    assert inits == ["random-normal", "random-uniform", "he-normal", "he-uniform", "lecun-normal", "lecun-uniform"]
    # the same model in several tables holds the same per-seed figures (trained once per seed)
    base = rc.find_row(report, "Table 27", "LSTM, vanilla")[3]
    assert rc.find_row(report, "Table 29", "off, vanilla")[3] == base == rc.find_row(report, "Table 28", "learned, vanilla")[3]
    assert base.runs == tuple(f"seed {s}" for s in SEEDS)
    # the grid in the JSON is the CLI ablation's
    grid = report.data["grid"]
    assert [(g["module"], g["variant"]) for g in grid] == [(m, v) for m, v, _ in cap.variants()]
    assert report.data["config"]["data_seed"] == 0  # the split seed, not a model seed
    assert {f.filename for f in report.figures} == {"captioning_bleu.png", "captioning_samples.png"}
    for f in report.figures:
        assert (out / f.filename).stat().st_size < 150_000
    assert "Flickr8k" in report.summary and any("seedlock train caption --ablation --data" in n for n in report.notes)


@pytest.mark.slow
@pytest.mark.reproduce
def test_a_per_seed_figure_is_what_the_code_computes(quick):
    """Retrain one (variant, seed) in process: the stored per-seed BLEU and accuracy are exactly its."""
    _, report = quick
    seed = SEEDS[2]
    metrics = cap.measure("sequential (T27)", "GRU, vanilla", seed, quick=True, split_seed=0)
    row = rc.find_row(report, "Table 27", "GRU, vanilla")
    t27 = report.tables[0]
    k = SEEDS.index(seed)
    for n in range(1, 5):
        assert row[t27.columns.index(f"seedlock BLEU-{n}")].values[k] == metrics[cap.TABLE_MODE][f"bleu{n}"]
    assert row[t27.columns.index("seedlock next-word acc")].values[k] == metrics["next_word_accuracy"]
    greedy = rc.find_row(report, "Table 30", "greedy")  # i) vanilla = the base model
    base = cap.measure("sequential (T27)", "LSTM, vanilla", seed, quick=True, split_seed=0)
    assert greedy[report.tables[3].columns.index("seedlock BLEU-1")].values[k] == base["greedy"]["bleu1"]


# -- fast unit tests -------------------------------------------------------------------------------------------


def test_mean_bleu_and_relative_change():
    m = {"beam": {"bleu1": 0.5872, "bleu2": 0.3626, "bleu3": 0.1939, "bleu4": 0.1041}}
    g = {"beam": {"bleu1": 0.6343, "bleu2": 0.4029, "bleu3": 0.2277, "bleu4": 0.1082}}
    assert cap.mean_bleu(m, "beam") == pytest.approx(0.31195)
    # the thesis's "+10.1%" for GRU over LSTM (vanilla) is this measure on its printed rows
    assert cap.relative_change(cap.mean_bleu(g, "beam"), cap.mean_bleu(m, "beam")) == pytest.approx(10.04, abs=0.1)
    assert math.isnan(cap.relative_change(1.0, 0.0))
    assert cap.percent_cell((1.0, math.nan), ("a", "b")) is None
    assert cap.percent_cell((1.0, 2.0), ("a", "b")).values == (1.0, 2.0)


def test_thesis_row_mapping_matches_its_stated_percentages():
    """The rows are identified by the text's percentages; check them against the printed BLEU."""

    def mean(rows, variant):
        bleu = next(r[2] for r in rows if r[0] == variant)
        return sum(float(b) for b in bleu) / 4

    for rows, claims in ((cap.T27, cap.T27_CLAIMS), (cap.T28, cap.T28_CLAIMS), (cap.T29, cap.T29_CLAIMS)):
        for variant, other, text, higher in claims:
            change = cap.relative_change(mean(rows, variant), mean(rows, other))
            assert abs(change - float(text.rstrip("%"))) < 0.1, (variant, other, change, text)
            assert (change > 0) == higher


def test_grid_trains_each_model_once_per_seed_and_split_is_independent_of_seed(tmp_path):
    from seedlock.train.caption_train import CaptionConfig, run_grid

    cfg = CaptionConfig(out=str(tmp_path), size=32, n_train=8, n_val=3, min_count=1, width=4, embed_dim=8, hidden=16,
                        batch_size=4, steps=2, beam=2, max_length=8, threads=1, progress=False)  # fmt: skip
    variants = [
        ("sequential (T27)", "LSTM, vanilla", {"cell": "lstm"}),
        ("attention (T29)", "off, vanilla", {"attention": False}),  # the same model
        ("embedding (T28)", "GloVe, vanilla", {"embedding": "glove"}),
    ]
    logged: list[str] = []
    rows = run_grid(cfg, variants, [3, 4], log=logged.append)
    assert sum("[ablation]" in line for line in logged) == 2  # one training per seed, shared by both rows
    assert rows[0]["per_seed"] == rows[1]["per_seed"] and [m["seed"] for m in rows[0]["per_seed"]] == [3, 4]
    assert rows[0]["per_seed"][0]["run"] is None and not (tmp_path / "runs").exists()  # nothing written
    assert "skipped" in rows[2]
    # model seed 3 alone gives the same figures as in the two-seed grid (data does not follow the seed)
    again = run_grid(cfg, variants[:1], [3], log=lambda _: None)[0]["per_seed"][0]
    assert (
        again["greedy"] == rows[0]["per_seed"][0]["greedy"] and again["next_word_accuracy"] == rows[0]["per_seed"][0]["next_word_accuracy"]
    )


def test_ablation_cli_takes_seeds(tmp_path):
    import argparse
    import json

    from seedlock.core.errors import UserError
    from seedlock.train.caption_cli import register_train

    parser = argparse.ArgumentParser()
    register_train(parser.add_subparsers())
    args = parser.parse_args(["caption", "--ablation", "--seeds", "999,500,1"])
    assert args.seeds == [999, 500, 1]
    assert parser.parse_args(["caption"]).seeds is None
    with pytest.raises(SystemExit):
        parser.parse_args(["caption", "--seeds", "1,1"])
    with pytest.raises(UserError, match="--ablation"):
        args = parser.parse_args(["caption", "--seeds", "1,2", "--out", str(tmp_path / "x")])
        args.func(args)
    # two seeds through run_ablation: mean ± std in ablation.md, per-seed rows in ablation.json
    from seedlock.train.caption_train import CaptionConfig, run_ablation

    cfg = CaptionConfig(out=str(tmp_path / "abl"), size=32, n_train=8, n_val=2, min_count=1, width=4, embed_dim=8, hidden=16,
                        batch_size=4, steps=2, beam=2, max_length=8, threads=1, progress=False)  # fmt: skip
    rows = run_ablation(cfg, log=lambda _: None, variants=[("sequential (T27)", "LSTM, vanilla", {})], seeds=[5, 6])
    assert len(rows[0]["runs"]) == 2 and all((tmp_path / "abl" / "runs" / f"{r.split('/')[-1]}").is_dir() for r in rows[0]["runs"])
    md = (tmp_path / "abl" / "ablation.md").read_text()
    assert "seeds 5, 6 (mean ± std)" in md and " ± " in md.split("| LSTM, vanilla |")[1]
    data = json.loads((tmp_path / "abl" / "ablation.json").read_text())
    assert data["seeds"] == [5, 6] and [p["seed"] for p in data["rows"][0]["per_seed"]] == [5, 6]
