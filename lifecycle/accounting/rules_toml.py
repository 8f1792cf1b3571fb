"""Where a value is in a rule file, and typed reads of it that fail as `file:line: <what> <problem>`.

tomllib reports no line numbers, so `Locator` finds the lines of tables and keys by scanning the raw
text; `Where` is one table's place, and the `read_*` helpers check a key's type against it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from config.settings import PROJECT_ROOT
from lifecycle.accounting.rules import UNKNOWN, RulesError

REQUIRED: Any = object()


def display_path(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(PROJECT_ROOT))
    except ValueError:
        return str(path)


def _normalise(dotted: str) -> str:
    return ".".join(part.strip().strip("\"'") for part in dotted.split("."))


class Locator:
    """Line numbers of tables and keys, found by scanning the raw text (tomllib reports none)."""

    _HEADER = re.compile(r"^\[\[?(?P<name>[^\[\]]+)\]\]?\s*(#.*)?$")
    _KEY = re.compile(r"^(?P<key>[\w\-.\"' ]+?)\s*=")

    def __init__(self, path: Path, text: str) -> None:
        self.name = display_path(path)
        self.tables: dict[str, list[int]] = {"": [1]}
        self.keys: dict[tuple[str, int, str], int] = {}
        table, occurrence, in_multiline_string = "", 0, False
        for number, line in enumerate(text.splitlines(), start=1):
            skip = in_multiline_string
            if (line.count('"""') + line.count("'''")) % 2:
                in_multiline_string = not in_multiline_string
            if skip:
                continue
            if header := self._HEADER.match(line.strip()):
                table = _normalise(header["name"])
                self.tables.setdefault(table, []).append(number)
                occurrence = len(self.tables[table]) - 1
            elif key := self._KEY.match(line.strip()):
                self.keys.setdefault((table, occurrence, _normalise(key["key"])), number)

    def line(self, table: str, occurrence: int = 0, key: str | None = None) -> int:
        if key is not None and (table, occurrence, key) in self.keys:
            return self.keys[(table, occurrence, key)]
        if table in self.tables:
            lines = self.tables[table]
            return lines[min(occurrence, len(lines) - 1)]
        # Not a [header]: an inline table (`key = {...}`) or one only implied by its children.
        parent, _, last = table.rpartition(".")
        return self.keys.get((parent, 0, last)) or self.line(parent)


@dataclass(frozen=True)
class Where:
    """A table's place in its file, so an error can say `file:line: <label> <problem>`."""

    locator: Locator
    table: str
    label: str
    occurrence: int = 0

    def error(self, problem: str, key: str | None = None) -> RulesError:
        line = self.locator.line(self.table, self.occurrence, key)
        return RulesError(f"{self.locator.name}:{line}: {self.label} {problem}")


def read_value(
    raw: Mapping[str, Any],
    key: str,
    where: Where,
    types: tuple[type, ...],
    what: str,
    default: Any = REQUIRED,
) -> Any:
    if key not in raw:
        if default is REQUIRED:
            raise where.error(f"is missing required key '{key}'")
        return default
    value = raw[key]
    if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
        raise where.error(f"has {key} = {value!r}: expected {what}", key)
    return value


def read_count(raw: Mapping[str, Any], key: str, where: Where, minimum: int = 0) -> int:
    value = read_value(raw, key, where, (int,), "a whole number")
    if value < minimum:
        raise where.error(f"has negative {key}" if minimum == 0 else f"has {key} below {minimum}", key)
    return value


def read_text(raw: Mapping[str, Any], key: str, where: Where, default: Any = REQUIRED) -> str:
    value = read_value(raw, key, where, (str,), "a string", default)
    if default is REQUIRED and not value.strip():
        raise where.error(f"has an empty {key}", key)
    return value


def read_money(raw: Mapping[str, Any], key: str, where: Where) -> Decimal | None:
    if isinstance(raw.get(key), float):
        raise where.error(f"has a float {key} ({raw[key]!r}): write money as a quoted string", key)
    value = read_value(raw, key, where, (str,), f'a quoted decimal string or "{UNKNOWN}"')
    if value == UNKNOWN:
        return None
    try:
        amount = Decimal(value)
    except InvalidOperation:
        raise where.error(f"has non-numeric {key} {value!r}", key) from None
    if not amount.is_finite() or amount < 0:
        raise where.error(f"has {key} {value!r}: money must be finite and not negative", key)
    return amount


def check_keys(raw: Any, allowed: frozenset[str], where: Where) -> None:
    if not isinstance(raw, dict):
        raise where.error(f"must be a table, not {raw!r}")
    for key in raw:
        if key not in allowed:
            raise where.error(f"has unknown key '{key}' (allowed: {', '.join(sorted(allowed))})", key)
