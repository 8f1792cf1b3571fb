"""Provider name → adapter: the only place that lists the providers this service speaks to.

The names are a plain tuple, importable for nothing; an adapter module (its payload models, its
rules, its client) is imported only when that provider's adapter is asked for. A read command that
only lists shipments, or a page that only shows provider names, never pays for the adapters.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from lifecycle.providers.base import Provider

# Provider name (as stored in rows) → its room under lifecycle/providers/, in routing order: a
# number with no provider named goes to the first adapter that claims it, and to the default
# (17TRACK) when none does.
ROOMS: dict[str, str] = {"cargoai": "cargoai", "17track": "seventeentrack", "generic": "generic"}
NAMES: tuple[str, ...] = tuple(ROOMS)
DEFAULT = "17track"

_loaded: dict[str, Provider] = {}


def _adapter(name: str) -> Provider:
    adapter = _loaded.get(name)
    if adapter is None:
        module = importlib.import_module(f"lifecycle.providers.{ROOMS[name]}.adapter")
        adapter = _loaded[name] = module.ADAPTER
    return adapter


def _all() -> tuple[Provider, ...]:
    global _every
    if _every is None:  # built once: routing asks for every adapter once per number
        _every = tuple(_adapter(name) for name in NAMES)
    return _every


_every: tuple[Provider, ...] | None = None


def names() -> list[str]:
    return list(NAMES)


def find(name: str | None) -> Provider | None:
    # Names come from requests too: anything but a known name (a dict, say) is simply not one.
    return _adapter(name) if isinstance(name, str) and name in ROOMS else None


def get(name: str) -> Provider:
    """The adapter of a provider stored in a row; KeyError names the unknown provider."""
    if name not in ROOMS:
        raise KeyError(f"no adapter for provider {name!r}")
    return _adapter(name)


def route(request: object) -> str:
    """The provider a registration request goes to: the one it names, else the one claiming it."""
    named = getattr(request, "provider", None)
    if named:
        return named
    return route_number(getattr(request, "number", ""))


def normalise(provider: str | None, raw: str) -> str:
    """The stored form of `raw` for `provider`, or for the provider that would claim it."""
    adapter = find(provider) or get(route_number(raw))
    return adapter.normalise(raw)


def route_number(raw: str) -> str:
    return next((a.name for a in _all() if a.claims(raw)), DEFAULT)


def stop_kinds() -> list[str]:
    return [a.stop_kind for a in _all() if a.stop_kind]


def jobs() -> dict[str, Callable[..., None]]:
    """The providers' own scheduled jobs, by name (their intervals are in cleanup/schedule.py)."""
    return {name: job for adapter in _all() for name, job in adapter.jobs().items()}
