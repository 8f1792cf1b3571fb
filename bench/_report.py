"""Figures as data: one `Row` per target of issue 11's table, printed as a table and written as JSON.

Each bench script builds its rows with `row()` and hands them to `emit()`, which prints them and,
with `--json PATH`, writes them for `bench/run_all.py`. A row compares `ours` with a `reference`
(bare Flask, the provider's limit, ...) or with a fixed figure; `check` says which of the two the
target applies to. The load average around the measurement goes with every row: on a shared
machine it tells a slow figure from a busy one.
"""

from __future__ import annotations

import argparse
import json
import math
import operator
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

Load = tuple[float, float, float]
_OPS = {">=": operator.ge, "<=": operator.le, "<": operator.lt}


def load() -> Load:
    one, five, fifteen = os.getloadavg()
    return (round(one, 2), round(five, 2), round(fifteen, 2))


@dataclass
class Row:
    metric: str
    ours: float
    unit: str
    reference: float | None = None  # what ours is compared with, in the same unit
    check: Literal["ratio", "ours", ""] = ""  # which figure the target applies to ("": none, stated)
    op: str = ""
    threshold: float | None = None
    load_before: Load | None = None
    load_after: Load | None = None
    note: str = ""
    source: str = ""  # the bench script that measured it
    ratio: float | None = field(default=None, init=False)
    target: str = field(default="", init=False)
    met: bool | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        if self.reference:
            self.ratio = self.ours / self.reference
        if not self.check:
            self.target = "stated"
            return
        self.target = (
            "completes" if self.threshold == math.inf else f"{self.check} {self.op} {self.threshold:g}"
        )
        figure = self.ratio if self.check == "ratio" else self.ours
        # A figure that could not be measured (NaN) misses its target.
        self.met = figure is not None and not math.isnan(figure) and _OPS[self.op](figure, self.threshold)


def row(metric: str, ours: float, unit: str, during: tuple[Load, Load], **kwargs: object) -> Row:
    """A row measured between two `load()` readings (`during=(before, after)`)."""
    return Row(metric, float(ours), unit, load_before=during[0], load_after=during[1], **kwargs)  # type: ignore[arg-type]


def failed_row(metric: str, note: str, source: str) -> Row:
    """A measurement that did not complete: shown as a missed target, never silently dropped."""
    now = load()
    return Row(metric, math.nan, "", check="ours", op=">=", threshold=math.inf, load_before=now,
               load_after=now, note=note, source=source)  # fmt: skip


def _figure(value: float | None) -> str:
    if value is None:
        return "-"
    if math.isnan(value):
        return "n/a"
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}"


def _met(value: bool | None) -> str:
    return {True: "yes", False: "NO", None: "-"}[value]


def table(rows: list[Row]) -> str:
    header = ("metric", "ours", "reference", "ratio", "target", "met?", "load before→after")
    lines = [
        (
            r.metric,
            f"{_figure(r.ours)} {r.unit if math.isfinite(r.ours) else ''}".strip(),
            _figure(r.reference),
            _figure(r.ratio),
            r.target,
            _met(r.met),
            f"{r.load_before[0]:.2f}→{r.load_after[0]:.2f}" if r.load_before and r.load_after else "",
        )
        for r in rows
    ]
    widths = [max(len(str(x)) for x in column) for column in zip(header, *lines, strict=True)]
    out = ["  ".join(str(x).ljust(w) for x, w in zip(line, widths, strict=True)).rstrip()
           for line in (header, *lines)]  # fmt: skip
    out.insert(1, "  ".join("-" * w for w in widths))
    notes = [f"  {r.metric}: {r.note}" for r in rows if r.note]
    return "\n".join(out + (["notes:", *notes] if notes else []))


def as_dicts(rows: list[Row]) -> list[dict]:
    # NaN/inf are not JSON: a figure that could not be measured is null.
    def clean(value: object) -> object:
        return None if isinstance(value, float) and not math.isfinite(value) else value

    return [{k: clean(v) for k, v in asdict(r).items()} for r in rows]


def arguments(doc: str | None, smoke: str) -> argparse.ArgumentParser:
    """The options every bench script has (`--smoke`, what it shrinks to; `--json PATH`, for the
    runner), under the script's docstring; each script adds its own."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help=smoke)
    parser.add_argument(
        "--json", metavar="PATH", help="also write the figures as JSON rows (bench/_report.py)"
    )
    return parser


def emit(rows: list[Row], json_path: str | None, source: str) -> None:
    """Print the rows as a table; with a path, also write them as JSON for the runner."""
    for r in rows:
        r.source = r.source or source
    print(f"\n{table(rows)}")
    if json_path:
        Path(json_path).write_text(json.dumps(as_dicts(rows), indent=2))


def from_dicts(items: list[dict]) -> list[Row]:
    """Rows back from `as_dicts()` (the derived fields are recomputed)."""
    rows = []
    for item in items:
        fields = {k: v for k, v in item.items() if k not in ("ratio", "target", "met")}
        fields["ours"] = math.nan if fields["ours"] is None else fields["ours"]
        for key in ("load_before", "load_after"):
            fields[key] = tuple(fields[key]) if fields[key] else None
        if fields["check"] and fields["threshold"] is None:  # failed_row()'s infinity
            fields["threshold"] = math.inf
        rows.append(Row(**fields))
    return rows
