"""`manage.py run`'s process supervisor, in the manner of honcho and supervisord.

A child that dies is logged with its exit code and started again after a back-off (1 s, doubling
to 30 s; reset once it has stayed up for a while). Only Ctrl-C, SIGTERM or SIGHUP (the terminal
closing) stop the group, and then every child and its own children are stopped with it: nothing
is left holding the port. If the supervisor itself is killed outright, the kernel sends each child
SIGTERM (Linux's parent-death signal), so children are not orphaned either.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

BACKOFF_FIRST_SECONDS = 1.0
BACKOFF_MAX_SECONDS = 30.0
# A child that ran this long before dying is restarted after the first back-off step again.
STABLE_AFTER_SECONDS = 30.0
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def port_problem(host: str, port: int) -> str | None:
    """Why the web server could not listen on host:port, in words, or None if it can."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            return (
                f"cannot listen on {host}:{port}: {exc.strerror or exc} — is another `manage.py run` "
                f"(or another server) using it? Stop it, or choose another port with --port {port + 1}"
            )
    return None


@dataclass
class Child:
    name: str
    command: list[str]
    process: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    failures_in_a_row: int = 0
    restart_at: float | None = None
    history: list[int] = field(default_factory=list)


class Supervisor:
    def __init__(self, children: dict[str, list[str]], cwd: Path, echo: Callable[[str], None],
                 grace_seconds: float = 20.0) -> None:  # fmt: skip
        self.children = [Child(name, command) for name, command in children.items()]
        self.cwd, self.echo, self.grace_seconds = cwd, echo, grace_seconds
        self.stop_signal: int | None = None

    def run(self) -> int:
        for number in STOP_SIGNALS:
            signal.signal(number, self._request_stop)
        for child in self.children:
            self._start(child)
        while self.stop_signal is None:
            self._tend()
            time.sleep(0.2)
        self.echo(f"lifecycle: {signal.Signals(self.stop_signal).name} received, stopping everything")
        self._stop_all()
        return 0

    def _request_stop(self, signum: int, _frame: object) -> None:
        self.stop_signal = signum

    def _start(self, child: Child) -> None:
        child.process = subprocess.Popen(
            child.command, cwd=self.cwd, start_new_session=True, preexec_fn=_die_with_parent
        )
        child.started_at, child.restart_at = time.monotonic(), None
        self.echo(f"lifecycle: started {child.name} (pid {child.process.pid})")

    def _tend(self) -> None:
        now = time.monotonic()
        for child in self.children:
            if child.restart_at is not None:
                if now >= child.restart_at:
                    self._start(child)
                continue
            code = child.process.poll() if child.process else None
            if code is None:
                continue
            child.history.append(code)
            # What the dead child started (celery's embedded beat, gunicorn's workers) goes with it,
            # or it would hold the port or the schedule against the restarted child.
            _signal_group(child.process, signal.SIGKILL)  # type: ignore[arg-type]
            stable = now - child.started_at >= STABLE_AFTER_SECONDS
            child.failures_in_a_row = 1 if stable else child.failures_in_a_row + 1
            delay = min(BACKOFF_MAX_SECONDS, BACKOFF_FIRST_SECONDS * 2 ** (child.failures_in_a_row - 1))
            child.restart_at = now + delay
            self.echo(f"lifecycle: {child.name} exited with {_describe(code)}; restarting in {delay:.0f} s")

    def _stop_all(self) -> None:
        running = [c.process for c in self.children if c.process and c.process.poll() is None]
        for process in running:
            _signal_group(process, signal.SIGTERM)
        deadline = time.monotonic() + self.grace_seconds
        for process in running:
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                _signal_group(process, signal.SIGKILL)
                process.wait()
            # Grandchildren (gunicorn's workers) may outlive their parent by a moment.
            _signal_group(process, signal.SIGKILL)


def _signal_group(process: subprocess.Popen[bytes], signum: int) -> None:
    try:
        os.killpg(process.pid, signum)
    except (ProcessLookupError, PermissionError):
        pass


def _describe(code: int) -> str:
    if code < 0:
        return f"signal {signal.Signals(-code).name}"
    return f"exit code {code}"
