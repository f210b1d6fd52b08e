"""One reproduction report: thesis figures beside seedlock's, with a verdict.

An experiment builds a :class:`Report` out of typed cells, and the cell type
says where a number came from:

* :class:`Thesis` — a figure as the thesis prints it (the only place a typed-in
  number may appear);
* :class:`Measured` — what this run computed, one value per seed or repeat,
  shown as mean ± std;
* :class:`Verdict` — whether the thesis's claimed direction holds in the
  measured cells it names: ``yes``, ``no`` or ``within noise``.

``Report.write`` renders ``NAME.md`` from the same data it stores in
``NAME.json``, so a test can re-render the JSON and compare it with the
markdown byte for byte, recompute every mean, std and verdict from the stored
per-seed values, and so prove that no seedlock figure was typed in.
"""

from __future__ import annotations

import json
import math
import os
import platform
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union

# Two standard errors of the difference of means: closer than that is noise.
NOISE_SIGMAS = 2.0
VERDICTS = ("yes", "no", "within noise")


@dataclass(frozen=True)
class Thesis:
    """A figure as printed in the thesis (``text``), e.g. ``"0.312"``, ``"X"``, ``"0.682 ± 0.219"``."""

    text: str

    def render(self) -> str:
        return self.text


@dataclass(frozen=True)
class Measured:
    """Values computed in this run, one per seed or repeat (``runs`` labels them)."""

    values: tuple[float, ...]
    runs: tuple[str, ...] = ()
    digits: int = 3

    def __post_init__(self) -> None:
        if not self.values:
            raise ValueError("a measured cell needs at least one value")
        if self.runs and len(self.runs) != len(self.values):
            raise ValueError(f"{len(self.values)} values but {len(self.runs)} run labels")
        object.__setattr__(self, "values", tuple(float(v) for v in self.values))
        object.__setattr__(self, "runs", tuple(str(r) for r in self.runs))

    @property
    def mean(self) -> float:
        return statistics.fmean(self.values)

    @property
    def std(self) -> float:
        """Sample standard deviation (0 for one value; NaN when a value is not finite)."""
        if not all(math.isfinite(v) for v in self.values):
            return math.nan
        return statistics.stdev(self.values) if len(self.values) > 1 else 0.0

    def render(self) -> str:
        if any(not math.isfinite(v) for v in self.values):
            return "n/a (" + ", ".join(f"{v:.{self.digits}f}" for v in self.values) + ")"
        if len(self.values) == 1:
            return f"{self.mean:.{self.digits}f}"
        return f"{self.mean:.{self.digits}f} ± {self.std:.{self.digits}f}"


@dataclass(frozen=True)
class Verdict:
    """Does ``ours`` beat ``baseline`` in the thesis's direction?

    ``higher_is_better`` says which way the thesis claims the difference goes
    (accuracy: True; loss: False). ``baseline`` may be a number (a threshold,
    e.g. 0 for a correlation). The difference counts only when it exceeds
    :data:`NOISE_SIGMAS` standard errors of the difference; with one value on
    both sides there is no noise estimate, and the verdict says ``(1 run)``.
    """

    ours: Measured
    baseline: Union[Measured, float]
    higher_is_better: bool = True

    @property
    def result(self) -> str:
        a = self.ours
        b = self.baseline if isinstance(self.baseline, Measured) else Measured((float(self.baseline),))
        diff = a.mean - b.mean
        if not math.isfinite(diff):
            return "no"
        n_a, n_b = len(a.values), len(b.values)
        noise = NOISE_SIGMAS * math.sqrt(a.std**2 / n_a + (b.std**2 / n_b if n_b > 1 else 0.0))
        if diff == 0 or abs(diff) <= noise:
            return "within noise"
        better = diff > 0 if self.higher_is_better else diff < 0
        word = "yes" if better else "no"
        return word if n_a > 1 else f"{word} (1 run)"

    def render(self) -> str:
        return self.result


Cell = Union[str, Thesis, Measured, Verdict, None]


@dataclass
class Table:
    """A markdown table. ``note`` (markdown) is printed above it."""

    title: str
    columns: list[str]
    rows: list[list[Cell]] = field(default_factory=list)
    note: str = ""

    def add(self, *cells: Cell) -> None:
        if len(cells) != len(self.columns):
            raise ValueError(f"table {self.title!r}: {len(cells)} cells for {len(self.columns)} columns")
        self.rows.append(list(cells))

    def render(self) -> str:
        lines = [f"## {self.title}", ""]
        if self.note:
            lines += [self.note, ""]
        lines.append("| " + " | ".join(_escape(c) for c in self.columns) + " |")
        lines.append("|" + "|".join(" --- " for _ in self.columns) + "|")
        for row in self.rows:
            lines.append("| " + " | ".join(_escape(_render(c)) for c in row) + " |")
        return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class Figure:
    """A PNG the experiment wrote next to the report."""

    filename: str
    caption: str


@dataclass
class Report:
    """Everything ``NAME.md`` and ``NAME.json`` say."""

    name: str
    title: str
    thesis_ref: str
    command: str
    budget: str
    seeds: list[int]
    summary: str = ""
    tables: list[Table] = field(default_factory=list)
    figures: list[Figure] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)  # every further figure, JSON-able
    run: dict[str, Any] = field(default_factory=dict)  # host, versions, timing (filled by write)

    def table(self, title: str, columns: list[str], note: str = "") -> Table:
        t = Table(title, list(columns), note=note)
        self.tables.append(t)
        return t

    def render(self) -> str:
        r = self.run
        head = [
            f"# Reproduction: {self.title} (thesis {self.thesis_ref})",
            "",
            f"Command: `{self.command}`  ",
            f"Budget: {self.budget}  ",
            f"Seeds: {', '.join(str(s) for s in self.seeds)}  ",
            f"Run: {r.get('seconds', 0):.0f} s on {r.get('cpus', '?')} CPUs (load average before {r.get('load_before', '?')}), "
            f"seedlock {r.get('seedlock', '?')}, torch {r.get('torch', '?')}, {r.get('date', '?')}",
            "",
            "Cells: thesis figures as printed; seedlock figures are mean ± std over the seeds (or repeats) "
            f"computed by this run; a verdict is `yes`/`no` when the difference exceeds {NOISE_SIGMAS:g} standard "
            "errors, else `within noise`.",
            "",
        ]
        if self.summary:
            head += [self.summary.strip(), ""]
        body = [t.render() for t in self.tables]
        figs = [f"![{f.caption}]({f.filename})\n\n*{f.caption}*\n" for f in self.figures]
        notes = ["## Notes", "", *[f"- {n}" for n in self.notes], ""] if self.notes else []
        return "\n".join(head) + "\n" + "\n".join(body + figs) + ("\n" + "\n".join(notes) if notes else "")

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name, "title": self.title, "thesis_ref": self.thesis_ref, "command": self.command,
            "budget": self.budget, "seeds": self.seeds, "summary": self.summary, "notes": self.notes,
            "tables": [{"title": t.title, "columns": t.columns, "note": t.note, "rows": [[_cell_json(c) for c in row] for row in t.rows]}
                       for t in self.tables],
            "figures": [{"filename": f.filename, "caption": f.caption} for f in self.figures],
            "data": self.data, "run": self.run,
        }  # fmt: skip

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Report:
        report = cls(data["name"], data["title"], data["thesis_ref"], data["command"], data["budget"], list(data["seeds"]),
                     data.get("summary", ""), notes=list(data.get("notes", [])), data=data.get("data", {}), run=data.get("run", {}))  # fmt: skip
        for t in data["tables"]:
            report.tables.append(Table(t["title"], list(t["columns"]), [[_cell_from_json(c) for c in row] for row in t["rows"]], t.get("note", "")))
        report.figures = [Figure(f["filename"], f["caption"]) for f in data["figures"]]
        return report

    def write(self, out: Path, started: float, load_before: float) -> Path:
        """Write ``out/NAME.md`` and ``out/NAME.json``; returns the markdown's path."""
        out.mkdir(parents=True, exist_ok=True)
        for fig in self.figures:
            if not (out / fig.filename).is_file():
                raise FileNotFoundError(f"figure {fig.filename} was not written to {out}")
        self.run.update(host_facts())
        self.run.update({"seconds": round(time.time() - started, 1), "load_before": round(load_before, 2)})
        (out / f"{self.name}.json").write_text(json.dumps(self.to_json(), indent=1, sort_keys=True) + "\n")
        path = out / f"{self.name}.md"
        path.write_text(self.render())
        return path


def host_facts() -> dict[str, Any]:
    from seedlock import __version__

    facts: dict[str, Any] = {"cpus": os.cpu_count(), "seedlock": __version__, "python": platform.python_version(),
                             "date": time.strftime("%Y-%m-%d"), "load_after": round(os.getloadavg()[0], 2)}  # fmt: skip
    try:
        import torch

        facts["torch"] = torch.__version__
    except ModuleNotFoundError:
        pass
    return facts


def _escape(text: str) -> str:
    """A table cell's text: a ``|`` inside it (e.g. ``|Δ|``) would split the cell."""
    return text.replace("|", "\\|").replace("\n", " ")


def _render(cell: Cell) -> str:
    if cell is None:
        return "—"
    return cell if isinstance(cell, str) else cell.render()


def _measured_json(m: Measured) -> dict[str, Any]:
    return {"kind": "measured", "values": list(m.values), "runs": list(m.runs), "digits": m.digits,
            "mean": m.mean, "std": m.std, "text": m.render()}  # fmt: skip


def _cell_json(cell: Cell) -> Any:
    if cell is None or isinstance(cell, str):
        return cell
    if isinstance(cell, Thesis):
        return {"kind": "thesis", "text": cell.text}
    if isinstance(cell, Measured):
        return _measured_json(cell)
    base = _measured_json(cell.baseline) if isinstance(cell.baseline, Measured) else float(cell.baseline)
    return {"kind": "verdict", "ours": _measured_json(cell.ours), "baseline": base,
            "higher_is_better": cell.higher_is_better, "result": cell.result}  # fmt: skip


def _measured_from_json(d: dict[str, Any]) -> Measured:
    return Measured(tuple(d["values"]), tuple(d.get("runs", ())), int(d.get("digits", 3)))


def _cell_from_json(d: Any) -> Cell:
    if d is None or isinstance(d, str):
        return d
    kind = d["kind"]
    if kind == "thesis":
        return Thesis(d["text"])
    if kind == "measured":
        return _measured_from_json(d)
    if kind == "verdict":
        base = d["baseline"]
        return Verdict(_measured_from_json(d["ours"]), _measured_from_json(base) if isinstance(base, dict) else float(base),
                       bool(d["higher_is_better"]))  # fmt: skip
    raise ValueError(f"unknown cell kind {kind!r}")
