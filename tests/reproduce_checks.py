"""What every ``seedlock reproduce NAME --quick`` test checks of the report it wrote.

The markdown must be exactly what the JSON renders to, every seedlock figure a
mean ± std of per-run values stored in the JSON (recomputed here), every
verdict recomputed from its cells, every table set thesis beside seedlock with
a "direction reproduced?" column, and every figure a PNG on disk. That a stored
per-run value is what the code computes for that seed is each experiment
test's own check (it recomputes one).
"""

from __future__ import annotations

import json
import math
import statistics
import subprocess
import sys
from pathlib import Path

from seedlock.reproduce.report import VERDICTS, Measured, Report, Thesis, Verdict

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
VERDICT_COLUMN = "direction reproduced?"


def run_quick(name: str, out: Path, seeds: str = "999,500,1", timeout: float = 600) -> subprocess.CompletedProcess:
    """``seedlock reproduce NAME --quick`` in a real process, as a user runs it."""
    cmd = [sys.executable, "-m", "seedlock", "reproduce", name, "--quick", "--seeds", seeds, "--out", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{' '.join(cmd)} failed:\n{proc.stderr[-4000:]}"
    return proc


def run_and_check(tmp_path_factory, name: str, seeds: list[int]) -> tuple[Path, Report]:
    """The module fixture of every experiment test: one quick run, checked."""
    out = tmp_path_factory.mktemp(name)
    run_quick(name, out, ",".join(str(s) for s in seeds))
    return out, check_report(out, name, seeds)


def one_table(report: Report, prefix: str):
    """The one table whose title starts with ``prefix``."""
    tables = [t for t in report.tables if t.title.startswith(prefix)]
    assert len(tables) == 1, f"want one table {prefix!r}, found {len(tables)}"
    return tables[0]


def check_report(out: Path, name: str, seeds: list[int]) -> Report:
    md = (out / f"{name}.md").read_text()
    data = json.loads((out / f"{name}.json").read_text())
    report = Report.from_json(data)
    assert report.render() == md, "the markdown is not what the JSON renders to"
    assert report.name == name and report.seeds == seeds
    assert f"reproduce {name}" in report.command and "--quick" in report.command
    assert report.budget.strip() and report.run.get("seconds", 0) > 0
    assert report.tables, "no tables"
    measured_cells = 0
    for t in report.tables:
        assert any(isinstance(c, Thesis) for row in t.rows for c in row), f"table {t.title!r} shows no thesis figure"
        assert VERDICT_COLUMN in t.columns, f"table {t.title!r} has no {VERDICT_COLUMN!r} column"
        v_col = t.columns.index(VERDICT_COLUMN)
        assert t.rows, f"table {t.title!r} is empty"
        for row in t.rows:
            assert len(row) == len(t.columns)
            cell = row[v_col]
            if isinstance(cell, Verdict):
                assert cell.result.split(" (")[0] in VERDICTS
            for c in row:
                if isinstance(c, Measured):
                    measured_cells += 1
                    assert all(isinstance(v, float) for v in c.values)
    assert measured_cells, "no seedlock figure in any table"
    # stored mean/std/verdict text equals what the stored values give
    for t_json in data["tables"]:
        for row in t_json["rows"]:
            for c in row:
                if isinstance(c, dict) and c["kind"] == "measured":
                    _check_measured(c)
                if isinstance(c, dict) and c["kind"] == "verdict":
                    _check_measured(c["ours"])
                    if isinstance(c["baseline"], dict):
                        _check_measured(c["baseline"])
    for fig in report.figures:
        assert (out / fig.filename).read_bytes()[:8] == PNG_MAGIC, f"{fig.filename} is not a PNG"
        assert fig.filename.startswith(name), "figure names start with the experiment's name (they share docs/reproduction/)"
    return report


def _check_measured(c: dict) -> None:
    values = c["values"]
    assert values and all(math.isfinite(v) for v in values) or c["text"].startswith("n/a")
    if all(math.isfinite(v) for v in values):
        assert math.isclose(c["mean"], statistics.fmean(values), rel_tol=1e-12, abs_tol=1e-12)
        assert math.isclose(c["std"], statistics.stdev(values) if len(values) > 1 else 0.0, rel_tol=1e-9, abs_tol=1e-12)


def measured_cells(report: Report) -> list[Measured]:
    return [c for t in report.tables for row in t.rows for c in row if isinstance(c, Measured)]


def find_row(report: Report, table_prefix: str, first_cell: str) -> list:
    """The row of the table whose title starts with ``table_prefix`` whose first cell is ``first_cell``."""
    for t in report.tables:
        if t.title.startswith(table_prefix):
            for row in t.rows:
                if row[0] == first_cell:
                    return row
    raise AssertionError(f"no row {first_cell!r} in a table {table_prefix!r}")
