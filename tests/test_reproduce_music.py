"""``seedlock reproduce music --quick``: Tables 20-24 beside the thesis, every figure computed in the run."""

import pytest
from reproduce_checks import check_report, find_row, run_quick

from seedlock.reproduce import music

pytestmark = [pytest.mark.slow, pytest.mark.reproduce]
SEEDS = [999, 500, 1]


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    out = tmp_path_factory.mktemp("music")
    run_quick("music", out)
    return out, check_report(out, "music", SEEDS)


def test_tables_rows_and_mapping(quick):
    _, report = quick
    titles = [t.title for t in report.tables]
    assert titles == [
        "Table 20: one-hot vs whole input, total error",
        "Table 21: (a) bi-RNN, (b) bi-Seq2Seq, (c) bi-Seq2Seq + adaptive L2 (one-hot)",
        "Table 22 (pitch; thesis 'Duration'): fixed L2 sweep on one-hot bi-Seq2Seq",
        "Table 22 (duration; thesis 'Pitch'): fixed L2 sweep on one-hot bi-Seq2Seq",
        "Table 23 (pitch; thesis 'Loss of Duration'): decoder cells, top-1 error",
        "Table 23 (duration; thesis 'Loss of Pitch'): decoder cells, top-1 error",
        "Table 24 (pitch; thesis 'Duration'): where the multi-way scheme sits, top-1 error",
        "Table 24 (duration; thesis 'Pitch'): where the multi-way scheme sits, top-1 error",
    ]
    rows = {t.title.split(":")[0]: [r[0] for r in t.rows] for t in report.tables}
    assert len(rows["Table 20"]) == 4 and len(rows["Table 21"]) == 16
    assert [r.split(" (")[0] for r in rows["Table 22 (pitch; thesis 'Duration')"]] == ["none", "0.1", "0.2", "0.25", "0.3", "0.4", "0.5"]
    assert len(rows["Table 23 (pitch; thesis 'Loss of Duration')"]) == 9 and len(rows["Table 24 (pitch; thesis 'Duration')"]) == 4
    # the swapped labels: the thesis's 'Duration' (mean ~72, a MIDI pitch) sits beside seedlock's pitch
    row = find_row(report, "Table 21", "pitch: generated μ ('Duration')")
    assert row[1].text == "72.0" and 40 < row[2].mean < 100
    assert any(n.startswith("Label mapping") and "are pitches" in n for n in report.notes) and "thesis: 100" in report.budget
    # every variant ran on every seed, one model per genre
    runs = report.data["runs"]
    assert set(runs) == set(music.VARIANTS)
    assert all([r["seed"] for r in runs[k]] == SEEDS for k in runs)
    assert all(set(r["per_genre"]) == set(music.QUICK_GENRES) for k in runs for r in runs[k])
    assert report.data["config"]["split_seed"] == 0 and report.data["config"]["per_genre_training"] is True
    assert [f.filename for f in report.figures] == ["music_variants.png"]


def test_a_stored_figure_is_what_the_code_computes(quick):
    """Rerun one (variant, seed) in this process: the per-seed value equals the stored one exactly."""
    _, report = quick
    row = music.variant_result("rnn-onehot", 500, quick=True, split_seed=0)
    cell = find_row(report, "Table 20", "bi-RNN (no decoder): pitch total error ('Duration')")[4]
    assert cell.runs[1] == "seed 500" and cell.values[1] == row["pitch_total_error"]
    top1 = find_row(report, "Table 21", "duration: train loss, last epoch ('Pitch' loss of 90)")[2]
    assert top1.values[1] == row["history"][-1]["train_loss_duration"]
