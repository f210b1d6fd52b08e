"""The README's "How close to the thesis" table quotes the committed results:
every seedlock figure in a row is in the report it links (docs/reproduction/),
and every report the experiments write is committed and linked."""

from __future__ import annotations

import json
import re
from pathlib import Path

from seedlock.reproduce import EXPERIMENTS
from seedlock.reproduce.report import Report

ROOT = Path(__file__).resolve().parents[1]
NUMBER = re.compile(r"-?\d+(?:\.\d+)?(?: ± \d+(?:\.\d+)?)?")


def _rows() -> list[list[str]]:
    text = (ROOT / "README.md").read_text()
    section = text.split("## How close to the thesis", 1)[1].split("\n## ", 1)[0]
    lines = [line for line in section.splitlines() if line.startswith("| ") and not line.startswith(("| thesis |", "| --- |"))]
    return [[c.strip() for c in line.strip("|").split(" | ")] for line in lines]


def test_every_seedlock_figure_in_the_readme_table_is_in_its_report():
    rows = _rows()
    assert len(rows) >= 12
    for _section, claim, thesis_fig, ours, verdict, link in rows:
        target = re.fullmatch(r"\[[\w-]+\]\((docs/reproduction/[\w-]+\.md)\)", link)
        assert target, f"row {claim!r}: the last cell must link a report, got {link!r}"
        report = (ROOT / target.group(1)).read_text()
        numbers = NUMBER.findall(ours)
        assert numbers, f"row {claim!r} quotes no seedlock figure"
        for number in numbers:
            assert number in report, f"row {claim!r}: {number} is not in {target.group(1)}"
        assert verdict.startswith(("yes", "no", "within noise", "the parameter-matched reading")), f"row {claim!r}: verdict {verdict!r}"
        assert thesis_fig.split(" vs ")[0].split(" / ")[0] in report, f"row {claim!r}: thesis figure not in its report"


def test_every_experiment_has_a_committed_full_result_linked_from_the_readme():
    readme = (ROOT / "README.md").read_text()
    for name in EXPERIMENTS:
        md, js = ROOT / "docs/reproduction" / f"{name}.md", ROOT / "docs/reproduction" / f"{name}.json"
        report = Report.from_json(json.loads(js.read_text()))
        assert report.render() == md.read_text(), f"{md} is not what {js.name} renders to"
        assert "--quick" not in report.command, f"{md} is a --quick run; commit the full one"
        assert f"seedlock reproduce {name}" in report.command
        for fig in report.figures:
            assert (md.parent / fig.filename).stat().st_size < 200_000, f"{fig.filename} is too large to commit"
        assert f"(docs/reproduction/{name}.md)" in readme
