"""The generic provider's own configuration: GENERIC_WEBHOOK_SECRET and GENERIC_STATUS_MAP.

Read by its own settings class (not config/settings.py), so the provider stays in its package.
"""

from __future__ import annotations

import json
from functools import cache
from typing import Annotated, Any

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from lifecycle.status import STATUSES

ENV_PREFIX = "GENERIC_"


class GenericConfigError(ValueError):
    """GENERIC_* is set to something this provider cannot use; the message names the variable."""


def _identity_map() -> dict[str, str]:
    return {status: status for status in STATUSES}


def status_key(word: str) -> str:
    """How a sender's status word is looked up: case and surrounding spaces do not matter."""
    return word.strip().casefold()


class GenericSettings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_file=".env", extra="ignore", case_sensitive=False
    )

    # Signs every push (X-Signature: sha256=<hex>); empty refuses them all (fail closed).
    webhook_secret: SecretStr = SecretStr("")
    # The sender's status words → ours, as a JSON object; by default our own names map to themselves.
    status_map: Annotated[dict[str, str], NoDecode] = Field(default_factory=_identity_map)

    @field_validator("status_map", mode="before")
    @classmethod
    def _decode(cls, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        try:
            return json.loads(value)
        except ValueError as exc:
            raise ValueError(
                f'not JSON ({exc}); expected an object such as {{"done": "delivered"}}'
            ) from None

    @field_validator("status_map")
    @classmethod
    def _known_targets(cls, value: dict[str, str]) -> dict[str, str]:
        unknown = sorted({target for target in value.values() if target not in STATUSES})
        if unknown:
            raise ValueError(f"maps to {', '.join(map(repr, unknown))}, not among {', '.join(STATUSES)}")
        if any(not status_key(word) for word in value):
            raise ValueError("has an empty status word")
        return {status_key(word): target for word, target in value.items()}


def load() -> GenericSettings:
    """The settings from the environment (and .env), or GenericConfigError naming the variable."""
    try:
        return GenericSettings()
    except ValidationError as exc:
        raise GenericConfigError("; ".join(map(_problem, exc.errors(include_url=False)))) from None


def _problem(error: Any) -> str:
    """`GENERIC_STATUS_MAP at 'done': Input should be a valid string`: the variable, then what."""
    variable, *inside = error["loc"]
    where = f" at {'.'.join(map(repr, inside))}" if inside else ""
    return f"{ENV_PREFIX}{str(variable).upper()}{where}: {error['msg'].removeprefix('Value error, ')}"


@cache
def current() -> GenericSettings:
    """Read once per process; `current.cache_clear()` re-reads the environment."""
    return load()
