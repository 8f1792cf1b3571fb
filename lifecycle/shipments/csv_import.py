"""Streaming CSV import: rows are read, checked and queued 5,000 at a time.

Memory stays flat however long the file is: only the chunk being decided and the one being stored
are held, and bad lines are reported through a callback as they are met (with their line numbers)
rather than collected.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TextIO

from sqlalchemy.orm import Session

from config.settings import Settings
from lifecycle.shipments.registration import Outcome, Registration, RegistrationPlan, plan
from lifecycle.sqlutil import FreshStatistics

COLUMNS = ("number", "carrier", "lang", "tag")
CHUNK = 5000
# Each queued row adds a shipment (or re-registers one) and an operation.
GROWN_TABLES = ("shipments", "operations")
# A row as read: its line, the number as written, and the parsed request or why it is malformed.
Row = tuple[int, str, "Registration | str"]


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
        if not "".join(row).strip():
            continue  # blank line
        yield reader.line_num, row


def import_csv(
    handle: TextIO,
    session_factory: Callable[[], Session],
    on_problem: Callable[[int, str, str], None] = lambda line, number, message: None,
    on_chunk: Callable[[], None] = lambda: None,
    settings: Settings | None = None,
) -> ImportReport:
    """Queue every good row; report every bad one, in line order, with its line number.

    Each chunk is decided here while the one before it is being stored (ChunkWriter): the two
    halves of the work, Python's and the database's, overlap. A chunk that shares a number with
    the one being stored waits for it, so its decisions see every row before it, as one after
    the other would."""
    report = ImportReport()
    with ChunkWriter(session_factory, report, on_problem, on_chunk) as writer:
        for chunk in _chunks(handle, report):
            registrations = [parsed for _, _, parsed in chunk if isinstance(parsed, Registration)]
            keys = {_number_key(r.number) for r in registrations}
            if writer.storing_any(keys):
                writer.wait()
            with session_factory() as session:
                decided = plan(session, registrations, settings)
            writer.store(chunk, keys, decided)
    return report


def _chunks(handle: TextIO, report: ImportReport) -> Iterator[list[Row]]:
    chunk: list[Row] = []
    for line, row in _rows(handle):
        report.rows += 1
        try:
            chunk.append((line, row[0], _parse(row)))
        except ValueError as exc:
            chunk.append((line, row[0] if row else "", str(exc)))
        if len(chunk) >= CHUNK:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _number_key(number: str) -> str:
    """Equal for any two spellings a provider would store as one number (case, spaces, dashes),
    and sometimes for two it would not: a false match only makes a chunk wait."""
    return _NOT_ALPHANUMERIC.sub("", number.upper())


_NOT_ALPHANUMERIC = re.compile(r"[^0-9A-Z]")


class ChunkWriter:
    """Stores one planned chunk at a time on a background thread, each in its own transaction, and
    reports its outcomes (on the caller's thread, in line order) once it has committed."""

    def __init__(
        self,
        session_factory: Callable[[], Session],
        report: ImportReport,
        on_problem: Callable[[int, str, str], None],
        on_chunk: Callable[[], None],
    ) -> None:
        self.session_factory, self.report = session_factory, report
        self.on_problem, self.on_chunk = on_problem, on_chunk
        self.statistics = FreshStatistics(GROWN_TABLES)
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="csv-import")
        self.in_flight: tuple[Future[list[Outcome]], list[Row], set[str]] | None = None

    def __enter__(self) -> ChunkWriter:
        return self

    def __exit__(self, kind: type[BaseException] | None, *_: object) -> None:
        try:
            if kind is None:
                self.wait()
        finally:  # on an error or Ctrl-C the chunk being stored still commits or rolls back whole
            self.pool.shutdown(wait=True, cancel_futures=True)

    def storing_any(self, keys: set[str]) -> bool:
        return self.in_flight is not None and not keys.isdisjoint(self.in_flight[2])

    def store(self, chunk: list[Row], keys: set[str], decided: RegistrationPlan) -> None:
        self.wait()
        self.in_flight = (self.pool.submit(self._commit, decided), chunk, keys)

    def _commit(self, decided: RegistrationPlan) -> list[Outcome]:
        with self.session_factory() as session:
            with session.begin():
                outcomes = decided.store(session)
        self.statistics.refresh(self.session_factory)
        return outcomes

    def wait(self) -> None:
        """Wait for the chunk being stored (its error is raised here) and report it."""
        if self.in_flight is None:
            return
        future, chunk, _ = self.in_flight
        self.in_flight = None
        _report(chunk, iter(future.result()), self.report, self.on_problem)
        self.on_chunk()


def _report(
    chunk: list[Row],
    outcomes: Iterator[Outcome],
    report: ImportReport,
    on_problem: Callable[[int, str, str], None],
) -> None:
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
