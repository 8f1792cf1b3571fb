"""What a registration request is, and what became of it (shared by both providers)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sqlalchemy.orm import Session


@dataclass(frozen=True)
class Registration:
    number: str
    carrier: int | None = None
    lang: str | None = None
    tag: str | None = None
    # None: the provider whose adapter claims the number (AWBs: CargoAi), else 17TRACK.
    provider: str | None = None
    # CargoAi only: push (subscription) or pull (polled); emails and interline airline code.
    mode: str | None = None
    emails: tuple[str, ...] = ()
    airline_code: str | None = None


@dataclass(frozen=True)
class Outcome:
    number: str
    ok: bool
    message: str
    carrier: int | None = None

    def as_json(self) -> dict[str, object]:
        return {"number": self.number, "queued": self.ok, "message": self.message, "carrier": self.carrier}


@dataclass(frozen=True)
class RegistrationPlan:
    """Registrations decided in one transaction and stored in a later one (or in the same).

    `store(session)` writes what was decided and returns one outcome per request, in order. A CSV
    import plans its next chunk while the previous one is being stored; an adapter that does not
    decide ahead simply does all its work in `store`."""

    store: Callable[[Session], list[Outcome]]

    @classmethod
    def decided(cls, outcomes: list[Outcome], save: Callable[[Session], None]) -> RegistrationPlan:
        def store(session: Session) -> list[Outcome]:
            save(session)
            return outcomes

        return cls(store)
