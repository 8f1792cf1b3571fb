"""Progress of long CLI work: a bar with rate and ETA on a terminal, nothing anywhere else.

The bar goes to stderr and only when both stdout and stderr are terminals and `--json` was not
asked for, so piped or scripted output stays exactly what it was. Updates are folded into one
redraw every REDRAW_SECONDS: a loop may call `advance` a million times without paying for it.
"""

from __future__ import annotations

import os
import stat
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import TracebackType
from typing import Any

import click

REDRAW_SECONDS = 0.1


def on_terminal(as_json: bool = False) -> bool:
    return not as_json and sys.stdout.isatty() and sys.stderr.isatty()


class Progress:
    """`with Progress("importing", total, unit="B", enabled=on_terminal(as_json)) as bar: bar.advance(n)`"""

    def __init__(self, label: str, total: int, unit: str = "", enabled: bool = True) -> None:
        self._label, self._total, self._unit = label, max(total, 1), unit
        self._bar: Any = None
        self._enabled = enabled
        self._done = self._shown = 0
        self._started = self._drawn = time.monotonic()

    def __enter__(self) -> Progress:
        if self._enabled:
            self._bar = click.progressbar(
                length=self._total, label=self._label, file=sys.stderr,
                show_eta=True, show_pos=True, show_percent=True, item_show_func=lambda rate: rate,
            )  # fmt: skip
            self._bar.__enter__()
        return self

    def advance(self, amount: int = 1) -> None:
        self._done += amount
        self._redraw()

    def update_to(self, done: int) -> None:
        """Set the position (for work measured from outside, e.g. rows settled so far)."""
        self._done = done
        self._redraw()

    def _redraw(self, force: bool = False) -> None:
        now = time.monotonic()
        if self._bar is None or (not force and now - self._drawn < REDRAW_SECONDS):
            return
        elapsed = max(now - self._started, 1e-6)
        step = min(self._done, self._total) - self._shown
        self._bar.update(step, f"{self._done / elapsed:,.0f} {self._unit}/s".replace(" /s", "/s"))
        self._shown += step
        self._drawn = now

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        if self._bar is not None:
            self._redraw(force=True)
            self._bar.__exit__(kind, error, trace)


def file_size(handle: Any) -> int:
    """Bytes in a regular file behind `handle`; 0 for a pipe or stdin (no bar then)."""
    try:
        info = os.fstat(handle.fileno())
    except (AttributeError, OSError, ValueError):
        return 0
    return info.st_size if stat.S_ISREG(info.st_mode) else 0


def counted_lines(handle: Any, bar: Progress) -> Any:
    """The lines of `handle`, advancing `bar` by each line's length (characters ≈ bytes for a CSV)."""
    for line in handle:
        bar.advance(len(line))
        yield line


@contextmanager
def reported(label: str, unit: str, enabled: bool) -> Iterator[Callable[[int, int], None]]:
    """A `(done, total)` callback for work that learns its total on the way (the bar opens then).
    Done going back or a new total starts a new bar: work that makes several passes (a cleanup
    job over each of its rules) shows one bar per pass."""
    bar: Progress | None = None
    last = (0, 0)

    def report(done: int, total: int) -> None:
        nonlocal bar, last
        if bar is not None and (done < last[0] or total != last[1]):
            bar.__exit__(None, None, None)
            bar = None
        if bar is None:
            bar = Progress(label, total, unit, enabled).__enter__()
        last = (done, total)
        bar.update_to(done)

    try:
        yield report
    finally:
        if bar is not None:
            bar.__exit__(None, None, None)
