"""What a registration request is, and what became of it (shared by both providers)."""

from __future__ import annotations

from dataclasses import dataclass


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
