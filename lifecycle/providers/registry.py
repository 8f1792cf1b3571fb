"""Provider name → adapter: the only place that lists the providers this service speaks to."""

from __future__ import annotations

from collections.abc import Callable

from lifecycle.providers.base import Provider
from lifecycle.providers.cargoai.adapter import ADAPTER as CARGOAI
from lifecycle.providers.generic.adapter import ADAPTER as GENERIC
from lifecycle.providers.seventeentrack.adapter import ADAPTER as SEVENTEENTRACK

# In routing order: a number with no provider named goes to the first adapter that claims it, and
# to the default (17TRACK) when none does.
ADAPTERS: dict[str, Provider] = {adapter.name: adapter for adapter in (CARGOAI, SEVENTEENTRACK, GENERIC)}
DEFAULT = SEVENTEENTRACK.name


def names() -> list[str]:
    return list(ADAPTERS)


def find(name: str | None) -> Provider | None:
    return ADAPTERS.get(name or "")


def get(name: str) -> Provider:
    """The adapter of a provider stored in a row; KeyError names the unknown provider."""
    try:
        return ADAPTERS[name]
    except KeyError:
        raise KeyError(f"no adapter for provider {name!r}") from None


def route(request: object) -> str:
    """The provider a registration request goes to: the one it names, else the one claiming it."""
    named = getattr(request, "provider", None)
    if named:
        return named
    number = getattr(request, "number", "")
    return next((a.name for a in ADAPTERS.values() if a.claims(number)), DEFAULT)


def normalise(provider: str | None, raw: str) -> str:
    """The stored form of `raw` for `provider`, or for the provider that would claim it."""
    adapter = find(provider) or get(route_number(raw))
    return adapter.normalise(raw)


def route_number(raw: str) -> str:
    return next((a.name for a in ADAPTERS.values() if a.claims(raw)), DEFAULT)


def stop_kinds() -> list[str]:
    return [a.stop_kind for a in ADAPTERS.values() if a.stop_kind]


def jobs() -> dict[str, Callable[..., None]]:
    """The providers' own scheduled jobs, by name (their intervals are in cleanup/schedule.py)."""
    return {name: job for adapter in ADAPTERS.values() for name, job in adapter.jobs().items()}
