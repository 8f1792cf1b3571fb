"""Streaming CSV import: rows are read, checked and queued 5,000 at a time.

Memory stays flat however long the file is: only the chunk being decided and those being stored
(two on PostgreSQL) are held, and bad lines are reported through a callback as they are met (with
their line numbers) rather than collected.
"""

from __future__ import annotations

import csv
import re
from collections import deque
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
# Chunks stored at once on PostgreSQL (ChunkWriter says why two).
POSTGRESQL_WRITERS = 2
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

    Each chunk is decided here while those before it are being stored (ChunkWriter): the two
    halves of the work, Python's and the database's, overlap. A chunk that shares a number with
    one being stored waits for it, so its decisions see every row before it, as one after the
    other would."""
    report = ImportReport()
    with session_factory() as session:  # SQLite has one writer at a time: more would only queue
        writers = POSTGRESQL_WRITERS if session.get_bind().dialect.name == "postgresql" else 1
    with ChunkWriter(session_factory, report, on_problem, on_chunk, writers) as writer:
        for chunk in _chunks(handle, report):
            registrations = [parsed for _, _, parsed in chunk if isinstance(parsed, Registration)]
            keys = {_number_key(r.number) for r in registrations}
            while writer.storing_any(keys):
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


@dataclass
class _Flight:
    """A chunk handed to a writer: its future outcomes, its rows (to report) and its numbers' keys."""

    future: Future[list[Outcome]]
    chunk: list[Row]
    keys: set[str]


class ChunkWriter:
    """Stores planned chunks on background threads, each in its own transaction, and reports their
    outcomes (on the caller's thread, in line order) once they have committed.

    `writers` chunks are stored at once, on as many connections. One chunk's statement keeps one
    PostgreSQL backend busy while the other core idles (the planning thread needs about half a
    core); two measured 1.3-1.4x the rows/s of one, three no more than two. Chunks still commit in
    file order: each waits for the one before it to commit and rolls back if that one failed, so
    what an interrupted or failed import leaves stored is always the file up to a chunk boundary."""

    def __init__(
        self,
        session_factory: Callable[[], Session],
        report: ImportReport,
        on_problem: Callable[[int, str, str], None],
        on_chunk: Callable[[], None],
        writers: int = 1,
    ) -> None:
        self.session_factory, self.report = session_factory, report
        self.on_problem, self.on_chunk = on_problem, on_chunk
        self.statistics = FreshStatistics(GROWN_TABLES)
        self.writers = writers
        self.pool = ThreadPoolExecutor(max_workers=writers, thread_name_prefix="csv-import")
        self.in_flight: deque[_Flight] = deque()

    def __enter__(self) -> ChunkWriter:
        return self

    def __exit__(self, kind: type[BaseException] | None, *_: object) -> None:
        try:
            while kind is None and self.in_flight:
                self.wait()
        finally:  # on an error or Ctrl-C every chunk handed over still commits or rolls back whole
            self.pool.shutdown(wait=True)

    def storing_any(self, keys: set[str]) -> bool:
        return any(not keys.isdisjoint(flight.keys) for flight in self.in_flight)

    def store(self, chunk: list[Row], keys: set[str], decided: RegistrationPlan) -> None:
        while len(self.in_flight) >= self.writers:
            self.wait()
        before = self.in_flight[-1].future if self.in_flight else None
        self.in_flight.append(_Flight(self.pool.submit(self._commit, decided, before), chunk, keys))

    def _commit(self, decided: RegistrationPlan, before: Future[list[Outcome]] | None) -> list[Outcome]:
        with self.session_factory() as session:
            with session.begin():
                outcomes = decided.store(session)
                if before is not None:  # its error, if any, is this chunk's too: it rolls back
                    before.result()
        self.statistics.refresh(self.session_factory)
        return outcomes

    def wait(self) -> None:
        """Wait for the oldest chunk in flight (its error is raised here) and report it."""
        if not self.in_flight:
            return
        flight = self.in_flight.popleft()
        _report(flight.chunk, iter(flight.future.result()), self.report, self.on_problem)
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
