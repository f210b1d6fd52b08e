"""The reproduction report: cells, verdicts, and the markdown/JSON round trip."""

from __future__ import annotations

import json
import time

import pytest

from seedlock.reproduce.report import Measured, Report, Thesis, Verdict


def test_measured_cell_is_mean_and_sample_std():
    m = Measured((0.5, 0.7, 0.9), ("seed 1", "seed 2", "seed 3"))
    assert m.render() == "0.700 ± 0.200"
    assert Measured((0.25,)).render() == "0.250"
    with pytest.raises(ValueError):
        Measured(())
    with pytest.raises(ValueError):
        Measured((1.0, 2.0), ("one",))


@pytest.mark.parametrize(
    "ours, base, higher, expected",
    [
        ((0.9, 0.91, 0.92), (0.5, 0.51, 0.52), True, "yes"),
        ((0.5, 0.51, 0.52), (0.9, 0.91, 0.92), True, "no"),
        ((0.5, 0.51, 0.52), (0.9, 0.91, 0.92), False, "yes"),  # lower is better (a loss)
        ((0.5, 0.9, 0.1), (0.55, 0.2, 0.8), True, "within noise"),
        ((0.6,), (0.5,), True, "yes (1 run)"),
        ((0.5,), (0.5,), True, "within noise"),
    ],
)
def test_verdict_counts_a_difference_only_beyond_two_standard_errors(ours, base, higher, expected):
    assert Verdict(Measured(ours), Measured(base), higher).result == expected


def test_verdict_against_a_threshold():
    assert Verdict(Measured((0.4, 0.5, 0.6)), 0.0).result == "yes"
    assert Verdict(Measured((-0.4, 0.5, 0.1)), 0.0).result == "within noise"


def test_report_markdown_is_what_its_json_renders(tmp_path):
    report = Report("demo-exp", "A demo", "9.9, Table 99", "seedlock reproduce demo-exp --quick", "2 epochs", [1, 2])
    report.summary = "One line."
    t = report.table("Table 99", ["setting", "thesis acc", "seedlock acc", "direction reproduced?"], note="note")
    a, b = Measured((0.8, 0.9), ("seed 1", "seed 2")), Measured((0.1, 0.2))
    t.add("bi", Thesis("0.312"), a, Verdict(a, b))
    t.add("plain", Thesis("X"), b, None)
    report.notes.append("a note")
    path = report.write(tmp_path, time.time() - 1, 0.5)
    data = json.loads((tmp_path / "demo-exp.json").read_text())
    assert Report.from_json(data).render() == path.read_text()
    text = path.read_text()
    assert "| bi | 0.312 | 0.850 ± 0.071 | yes |" in text and "| plain | X | 0.150 ± 0.071 | — |" in text
    assert data["tables"][0]["rows"][0][2]["values"] == [0.8, 0.9]


def test_report_refuses_a_missing_figure(tmp_path):
    from seedlock.reproduce.report import Figure

    report = Report("x", "x", "1", "c", "b", [1], figures=[Figure("x_curves.png", "curves")])
    with pytest.raises(FileNotFoundError):
        report.write(tmp_path, time.time(), 0.0)


def test_reproduce_help_lists_the_six_experiments():
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "seedlock", "reproduce", "--help"], capture_output=True, text=True, check=True).stdout
    for name in ("bi-activation", "seed-search", "fingerprints", "music", "captioning", "segmentation"):
        assert f"  {name} " in out


def test_a_pipe_inside_a_cell_does_not_split_it():
    report = Report("p", "p", "1", "c", "b", [1])
    report.table("T", ["max |Δ|", "direction reproduced?"]).add(Measured((1.0,)), "yes")
    text = report.render()
    assert "| max \\|Δ\\| | direction reproduced? |" in text


def test_a_non_finite_value_is_shown_not_averaged():
    m = Measured((1.0, float("inf")))
    assert m.render() == "n/a (1.000, inf)" and m.std != m.std
