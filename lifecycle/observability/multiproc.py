"""Prometheus multiprocess mode: counters that add up across gunicorn workers and Celery children.

prometheus-client keeps each process's values in files under PROMETHEUS_MULTIPROC_DIR, read when
it is imported. So `serve`, `worker` and `run` set that variable before they start their
processes: each command gets a folder of its own, `<METRICS_DIR>/<role>-<pid>`, emptied at start
(stale files from a previous run would be added to the new counts), and the folders of commands
that are no longer running are removed. /metrics on this machine merges every folder under
METRICS_DIR, so a worker started next to the web app is counted by the web app's /metrics; a
worker machine without the web app serves the same on METRICS_PORT (`serve_worker_metrics`).
"""

from __future__ import annotations

import glob
import os
import shutil
from collections.abc import Iterable
from pathlib import Path

ENV = "PROMETHEUS_MULTIPROC_DIR"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def prepare(role: str, root: Path, pid: int | None = None) -> Path:
    """An empty folder for this command's processes, named after the pid that execs them; sets ENV."""
    pid = pid or os.getpid()
    root.mkdir(parents=True, exist_ok=True)
    for folder in root.glob("*-*"):
        owner = folder.name.rsplit("-", 1)[1]
        if owner.isdigit() and int(owner) != pid and not _alive(int(owner)):
            shutil.rmtree(folder, ignore_errors=True)
    mine = root / f"{role}-{pid}"
    shutil.rmtree(mine, ignore_errors=True)
    mine.mkdir()
    os.environ[ENV] = str(mine)
    return mine


def machine_files(root: Path) -> list[str]:
    """Every process's value file on this machine (all commands' folders under METRICS_DIR)."""
    own = os.environ.get(ENV)
    files = glob.glob(str(root / "*-*" / "*.db"))
    if own and Path(own).parent != root:
        files += glob.glob(os.path.join(own, "*.db"))
    return files


class MachineCollector:
    """prometheus-client's MultiProcessCollector over the folders of every command on this machine."""

    def __init__(self, root: Path) -> None:
        self._root = root

    def collect(self) -> Iterable[object]:
        from prometheus_client.multiprocess import MultiProcessCollector

        return MultiProcessCollector.merge(machine_files(self._root), accumulate=True)


def serve_worker_metrics(port: int, root: Path) -> None:
    """For a worker machine without the web app: process metrics (no database gauges) on `port`."""
    from prometheus_client import CollectorRegistry, start_http_server

    registry = CollectorRegistry()
    registry.register(MachineCollector(root))  # type: ignore[arg-type]
    start_http_server(port, registry=registry)
