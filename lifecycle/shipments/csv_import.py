"""Streaming CSV import: rows are read, checked and queued 5,000 at a time.

Memory stays flat however long the file is: only the current chunk is held, and bad lines are
reported through a callback as they are met (with their line numbers) rather than collected.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TextIO

from sqlalchemy.orm import Session

from config.settings import Settings
from lifecycle.shipments.registration import Registration, register

COLUMNS = ("number", "carrier", "lang", "tag")
CHUNK = 5000


@dataclass
class ImportReport:
    rows: int = 0
    queued: int = 0
    refused: int = 0
    malformed: int = 0
    # The first few problems, for JSON output; every one goes to the callback.
    problems: list[dict[str, object]] = field(default_factory=list)

    def note(self, line: int, number: str, message: str, limit: int = 100) -> None:
        if len(self.problems) < limit:
            self.problems.append({"line": line, "number": number, "message": message})


def _parse(row: list[str]) -> Registration:
    if not row or len(row) > len(COLUMNS):
        raise ValueError(f"expected up to {len(COLUMNS)} columns ({', '.join(COLUMNS)}), got {len(row)}")
    number, carrier, lang, tag = (row + ["", "", ""])[:4]
    try:
        carrier_id = int(carrier) if carrier.strip() else None
    except ValueError:
        raise ValueError(f"carrier must be a 17TRACK carrier number, got {carrier!r}") from None
    return Registration(number, carrier_id, lang.strip() or None, tag.strip() or None)


def _rows(handle: TextIO) -> Iterator[tuple[int, list[str]]]:
    reader = csv.reader(handle)
    for row in reader:
        if reader.line_num == 1 and row and row[0].strip().lower() == "number":
            continue  # header
        if not any(cell.strip() for cell in row):
            continue  # blank line
        yield reader.line_num, row


def import_csv(
    handle: TextIO,
    session_factory: Callable[[], Session],
    on_problem: Callable[[int, str, str], None] = lambda line, number, message: None,
    on_chunk: Callable[[], None] = lambda: None,
    settings: Settings | None = None,
) -> ImportReport:
    """Queue every good row; report every bad one, in line order, with its line number."""
    report = ImportReport()
    chunk: list[tuple[int, str, Registration | str]] = []
    for line, row in _rows(handle):
        report.rows += 1
        try:
            chunk.append((line, row[0], _parse(row)))
        except ValueError as exc:
            chunk.append((line, row[0] if row else "", str(exc)))
        if len(chunk) >= CHUNK:
            _flush(chunk, session_factory, report, on_problem, settings)
            on_chunk()
    _flush(chunk, session_factory, report, on_problem, settings)
    return report


def _flush(
    chunk: list[tuple[int, str, Registration | str]],
    session_factory: Callable[[], Session],
    report: ImportReport,
    on_problem: Callable[[int, str, str], None],
    settings: Settings | None,
) -> None:
    registrations = [parsed for _, _, parsed in chunk if isinstance(parsed, Registration)]
    if registrations:
        with session_factory() as session, session.begin():
            outcomes = iter(register(session, registrations, settings))
    for line, number, parsed in chunk:
        if isinstance(parsed, str):
            report.malformed += 1
            message = parsed
        else:
            outcome = next(outcomes)
            if outcome.ok:
                report.queued += 1
                continue
            report.refused += 1
            number, message = outcome.number, outcome.message
        report.note(line, number, message)
        on_problem(line, number, message)
    chunk.clear()
