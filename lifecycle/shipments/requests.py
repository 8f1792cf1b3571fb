"""What a registration request is, and what became of it (shared by both providers)."""

from __future__ import annotations

from dataclasses import dataclass

from lifecycle.providers import awb


@dataclass(frozen=True)
class Registration:
    number: str
    carrier: int | None = None
    lang: str | None = None
    tag: str | None = None
    # None: an AWB-shaped number goes to CargoAi, anything else to 17TRACK.
    provider: str | None = None
    # CargoAi only: push (subscription) or pull (polled); emails and interline airline code.
    mode: str | None = None
    emails: tuple[str, ...] = ()
    airline_code: str | None = None

    @property
    def target(self) -> str:
        if self.provider:
            return self.provider
        return "cargoai" if awb.looks_like_awb(self.number) else "17track"


@dataclass(frozen=True)
class Outcome:
    number: str
    ok: bool
    message: str
    carrier: int | None = None

    def as_json(self) -> dict[str, object]:
        return {"number": self.number, "queued": self.ok, "message": self.message, "carrier": self.carrier}
