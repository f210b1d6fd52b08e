"""``seedlock reproduce bi-activation --quick``: thesis 3.1, Tables 1-4."""

from __future__ import annotations

import json

import pytest
import reproduce_checks as rc

from seedlock.reproduce import bi_activation as bi
from seedlock.reproduce.report import Measured, Thesis, Verdict

NAME = "bi-activation"
SEEDS = [999, 500, 1]
LABELS = [bi.variant_label(a, m) for a, m in bi.VARIANTS]


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    return rc.run_and_check(tmp_path_factory, NAME, SEEDS)


def _cell(table, row, column) -> Measured:
    return row[table.columns.index(column)]


def _seed_value(cell: Measured, seed: int) -> float:
    return cell.values[cell.runs.index(f"seed {seed}")]


@pytest.mark.slow
@pytest.mark.reproduce
def test_tables_have_the_thesis_rows(quick):
    out, report = quick
    titles = [t.title for t in report.tables]
    assert [t.split(":")[0] for t in titles] == ["Figure 4/5 layer tables", "Table 1", "Table 2", "Table 3", "Table 4", "Product path"]
    t1 = rc.one_table(report, "Table 1")
    assert [(r[0], r[1]) for r in t1.rows] == [(bi.SIZE_LABEL[s], label) for s in bi.SIZES for label in LABELS]
    for row in t1.rows:
        tests = _cell(t1, row, "seedlock test acc")
        assert isinstance(tests, Measured) and len(tests.values) == len(SEEDS)
        assert isinstance(_cell(t1, row, "thesis test acc"), Thesis)
        verdict = _cell(t1, row, rc.VERDICT_COLUMN)
        assert isinstance(verdict, Verdict) == row[1].startswith("bi-")
    for ref, seed in zip(("Table 2", "Table 3", "Table 4"), SEEDS):
        t = rc.one_table(report, ref)
        assert f"seed {seed}" in t.title
        assert [r[0] for r in t.rows] == LABELS
        assert all(_cell(t, r, "seedlock test acc").runs == (f"seed {seed}",) for r in t.rows)
    readings = rc.one_table(report, "Figure 4/5")
    for row in readings.rows:
        printed, built = _cell(readings, row, "thesis FC in_features"), _cell(readings, row, "seedlock FC in_features")
        assert row[-1] == ("yes" if float(printed.text) == built.values[0] else "no")
        assert row[-1] == ("no" if "2×" in row[1] else "yes")  # only the doubled reading misses the printed width
    ex = rc.one_table(report, "Product path")
    (row,) = ex.rows
    assert row[2] == "6 + function" and row[3] == "360"
    assert _cell(ex, row, rc.VERDICT_COLUMN).result == "yes"
    assert _cell(ex, row, "seedlock argmax agreement").values == (1.0,) * len(SEEDS)
    assert [f.filename for f in report.figures] == [f"{NAME}_accuracy.png", f"{NAME}_curves.png"]
    assert (out / f"{NAME}.json").stat().st_size < 300_000


@pytest.mark.slow
@pytest.mark.reproduce
def test_runs_went_through_the_custom_op_and_the_stored_data_matches(quick):
    out, report = quick
    data = json.loads((out / f"{NAME}.json").read_text())["data"]
    runs = data["runs"]
    assert len(runs) == len(bi.SIZES) * len(bi.VARIANTS) * len(SEEDS)
    for r in runs:
        assert r["bi_activation_ops"] == (6 if r["activation"].startswith("bi-") else 0)
        assert len(r["history"]["val_acc"]) == bi.budget(quick=True).epochs
    t1 = rc.one_table(report, "Table 1")
    row = next(r for r in t1.rows if r[:2] == ["CNN-Small", "bi-ELU"])
    stored = [
        r["test_acc"] for s in SEEDS for r in runs if (r["size"], r["activation"], r["matched"], r["seed"]) == ("small", "bi-elu", False, s)
    ]
    assert list(_cell(t1, row, "seedlock test acc").values) == stored
    # the matched CNN-Large is the unmatched CNN-Small network: same seed, same figures
    large_m = next(r for r in t1.rows if r[:2] == ["CNN-Large", "bi-ELU (matched)"])
    assert _cell(t1, large_m, "seedlock test acc").values == _cell(t1, row, "seedlock test acc").values


@pytest.mark.slow
@pytest.mark.reproduce
def test_a_stored_value_is_what_the_code_computes(quick):
    from seedlock.export.common import TOLERANCE
    from seedlock.train.data.digits import load_digits

    _, report = quick
    digits = load_digits(0)
    b = bi.budget(quick=True)
    # Table 1, CNN-Little ReLU, seed 1
    t1 = rc.one_table(report, "Table 1")
    row = next(r for r in t1.rows if r[:2] == ["CNN-Little", "ReLU"])
    record, _ = bi.run_one(digits, "little", "relu", False, 1, b)
    assert record["test_acc"] == _seed_value(_cell(t1, row, "seedlock test acc"), 1)
    assert record["train_loss"] == _seed_value(_cell(t1, row, "seedlock train loss"), 1)
    # Table 4 (seed 1), CNN-Small bi-ELU, and its ONNX export
    t4 = rc.one_table(report, "Table 4")
    row = next(r for r in t4.rows if r[0] == "bi-ELU")
    record, model = bi.run_one(digits, "small", "bi-elu", False, 1, b)
    assert record["test_acc"] == _cell(t4, row, "seedlock test acc").values[0]
    assert record["test_acc_16"] == _cell(t4, row, "seedlock test acc (first 16 test digits)").values[0]
    parity = bi.export_parity(model, digits)
    assert parity["ok"] and parity["max_abs_diff"] <= TOLERANCE


def test_thesis_scale_builds_reproduce_the_printed_fc_widths():
    for size, (printed, _, _) in bi.THESIS_FC.items():
        assert bi.thesis_scale(size, "relu", False)["fc_in"] == int(printed)
        assert bi.thesis_scale(size, "bi-elu", True)["fc_in"] == int(printed)
        assert bi.thesis_scale(size, "bi-elu", False)["fc_in"] == 2 * int(printed)


def test_thesis_figures_are_transcribed_consistently():
    # Table 1 (c) is Table 2 (seed 999), and Table 1 (d) repeats (b), as printed
    assert bi.THESIS_TABLE1["small"] == bi.THESIS_SEED_TABLES[999][1]
    assert bi.THESIS_TABLE1["little"] == bi.THESIS_TABLE1["middle"]
    for table in (bi.THESIS_TABLE1, {s: t for s, (_, t) in bi.THESIS_SEED_TABLES.items()}):
        for row in table.values():
            assert set(row) == {"relu", "elu", "bi-relu", "bi-elu"}
            assert all(len(cells) == 3 for cells in row.values())


def test_budget_quick_is_smaller():
    assert bi.budget(quick=True).epochs < bi.budget(quick=False).epochs
