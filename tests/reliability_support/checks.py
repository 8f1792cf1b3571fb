"""What the database and the provider say after a reliability test, and the figures each test
prints and asserts: sent, acknowledged, applied, doubled, lost.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import psycopg

from tests.reliability_support.pushes import Plan


def applied_counts(db: psycopg.Connection) -> Counter[tuple[str, datetime]]:
    """How many history rows each (number, event time) produced: 1 each when applied once."""
    rows = db.execute(
        "SELECT s.number, t.event_time, count(*) FROM transitions t JOIN shipments s ON s.id = t.shipment_id"
        " WHERE t.kind <> 'stopped' GROUP BY 1, 2"
    ).fetchall()
    return Counter({(number, when): n for number, when, n in rows})


def stoptrack_operations(db: psycopg.Connection) -> Counter[str]:
    rows = db.execute(
        "SELECT number, count(*) FROM operations WHERE kind = 'stoptrack' GROUP BY 1"
    ).fetchall()
    return Counter(dict(rows))


def inbox_states(db: psycopg.Connection) -> dict[str, int]:
    return dict(db.execute("SELECT status, count(*) FROM inbox GROUP BY 1").fetchall())


def inbox_drained(db: psycopg.Connection, total: int) -> bool:
    states = inbox_states(db)
    return states.get("pending", 0) == 0 and sum(states.values()) >= total


def stoptracks_settled(db: psycopg.Connection) -> bool:
    return not db.execute(
        "SELECT 1 FROM shipments WHERE tracking = 'stopping'"
        " UNION ALL SELECT 1 FROM operations WHERE status IN ('pending', 'in_flight') LIMIT 1"
    ).fetchall()


def final_states(db: psycopg.Connection) -> dict[str, tuple[str, datetime, str]]:
    rows = db.execute("SELECT number, status, last_event_at, tracking FROM shipments").fetchall()
    return {number: (status, when, tracking) for number, status, when, tracking in rows}


def wrong_final_states(db: psycopg.Connection, plan: Plan, delivered_as: str = "stopped") -> list[str]:
    """Numbers whose status or latest event is not their newest push's, or, if delivered, whose
    tracking is not `delivered_as` (stopped; stopping while no stoptrack is sent)."""
    got = final_states(db)
    problems = []
    for number, (status, when) in plan.final.items():
        state = got.get(number)
        want_tracking = delivered_as if status == "delivered" else "tracking"
        if state != (status, when, want_tracking):
            problems.append(f"{number}: {state}, want {(status, when, want_tracking)}")
    return problems


def resent_items(calls: list[dict[str, Any]], unrecorded: tuple[float, float] | None = None) -> list[str]:
    """Numbers sent again after a call of theirs was answered: a duplicate registration or stoptrack.

    A call that timed out, was reset or answered 429/5xx lost its answer: sending its numbers
    again is the retry, not a duplicate. So is a call made within `unrecorded` (wall-clock times),
    when the test took away the database the service records answers in.
    """
    answered: set[str] = set()
    doubled = []
    for call in sorted(calls, key=lambda c: c["at"]):
        lost = call.get("fault") is not None or call["status"] in (None, 429) or call["status"] >= 500
        lost = lost or (unrecorded is not None and unrecorded[0] <= call["at"] <= unrecorded[1])
        for number in call.get("numbers", []):
            if number in answered:
                doubled.append(number)
            if not lost:
                answered.add(number)
    return doubled


@dataclass
class Figures:
    """What a reliability test reports and asserts."""

    name: str
    sent: int
    acknowledged: int
    applied: int
    doubled: int
    lost: int
    extra: dict[str, Any] = field(default_factory=dict)

    def show(self) -> Figures:
        more = "".join(f", {key} {value}" for key, value in self.extra.items())
        print(
            f"\n[{self.name}] sent {self.sent}, acknowledged {self.acknowledged}, applied {self.applied},"
            f" doubled {self.doubled}, lost {self.lost}{more}"
        )
        return self


def event_figures(
    name: str, db: psycopg.Connection, sent: int, acknowledged: set[tuple[str, datetime]], **extra: Any
) -> Figures:
    """Applied / doubled / lost for events, with duplicate stoptrack operations counted as doubled."""
    applied = applied_counts(db)
    doubled = sum(n - 1 for n in applied.values() if n > 1)
    doubled += sum(n - 1 for n in stoptrack_operations(db).values() if n > 1)
    lost = len(acknowledged - set(applied))
    return Figures(name, sent, len(acknowledged), len(applied), doubled, lost, extra).show()
