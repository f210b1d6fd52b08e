"""``seedlock reproduce fingerprints``: the quick run's report, and one GAN seed recomputed in-process."""

from __future__ import annotations

import json

import pytest
from reproduce_checks import check_report, find_row, one_table, run_quick

from seedlock.reproduce.fingerprints import (
    COMPARISONS,
    MEASURES,
    QUICK,
    SETTING_LABEL,
    SETTINGS,
    THESIS_T18,
    _claims,
    run_seed,
    seed_values,
)
from seedlock.reproduce.report import Measured, Thesis, Verdict

NAME = "fingerprints"
SEEDS = [999, 500, 1]
T17, T18, CLAIMS = "Table 17: data settings", "Table 18: similarity of each setting", "Table 18: the thesis's claims"

pytestmark = [pytest.mark.slow, pytest.mark.reproduce]


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    out = tmp_path_factory.mktemp(NAME)
    run_quick(NAME, out, ",".join(map(str, SEEDS)))
    report = check_report(out, NAME, SEEDS)
    return out, report, json.loads((out / f"{NAME}.json").read_text())["data"]


def test_tables_have_the_thesis_rows(quick):
    _, report, _ = quick
    t17 = one_table(report, T17)
    assert [r[0] for r in t17.rows] == [SETTING_LABEL[s] for s in SETTINGS]
    assert t17.rows[1][1] == Thesis("600*4") and t17.rows[1][3] == Thesis("200*4")
    assert t17.rows[0][-1] is None and all(isinstance(r[-1], Verdict) for r in t17.rows[1:])
    # settings of QUICK.total images; II and III hold the actual fraction, IV none
    assert [r[8] for r in t17.rows] == [str(QUICK.total)] * 4
    assert t17.rows[1][6] == t17.rows[2][6] == str(QUICK.total // 5) and t17.rows[3][6] == "0"

    t18 = one_table(report, T18)
    assert [r[0] for r in t18.rows] == list(MEASURES.values())
    assert t18.columns[1:-1] == [f"{who} {c}" for c in COMPARISONS for who in ("thesis", "seedlock")]
    mhd = find_row(report, T18, MEASURES["hamming"])
    assert [mhd[1 + 2 * k].text for k in range(4)] == [THESIS_T18["hamming"][c] for c in COMPARISONS]
    for row in t18.rows:
        assert all(isinstance(row[2 + 2 * k], Measured) and len(row[2 + 2 * k].values) == len(SEEDS) for k in range(4))

    claims = one_table(report, CLAIMS)
    assert len(claims.rows) == len(_claims())
    assert all(isinstance(r[-1], Verdict) for r in claims.rows)
    assert {r[1] for r in claims.rows} == {MEASURES[m] for m in ("hamming", "hamming_over_union", "pearson", "iou", "iou_with_background")}
    assert [f.filename for f in report.figures] == [f"{NAME}_samples.png", f"{NAME}_mean_std.png"]


def test_the_setting_i_comparison_does_not_depend_on_the_gan_seed(quick):
    _, report, data = quick
    values = {s: data["per_seed"][str(s)]["comparisons"]["I-I"] for s in SEEDS}
    assert values[999] == values[500] == values[1]  # set I is actual images only
    assert {data["per_seed"][str(s)]["comparisons"]["I-IV"]["hamming"] for s in SEEDS} != {values[999]["hamming"]}


def test_one_gan_seed_recomputes_exactly(quick, tmp_path):
    _, report, data = quick
    run, _ = run_seed(QUICK, 500, 0, tmp_path, log=lambda m: None)
    fresh = json.loads(json.dumps(seed_values(run)))  # as the report stores it
    assert fresh == data["per_seed"]["500"]
    # and the table cells carry those values under "seed 500"
    k = SEEDS.index(500)
    row = find_row(report, T18, MEASURES["iou_with_background"])
    assert row[4].runs[k] == "seed 500" and row[4].values[k] == fresh["comparisons"]["I-II"]["iou_with_background"]
    row = find_row(report, T17, SETTING_LABEL["IV"])
    assert row[9].values[k] == fresh["settings"]["IV"]["image_mean"]
