"""Resident memory of a process tree, sampled from /proc in a background thread.

psutil is not a dependency of the project, and /proc/<pid>/status has what is needed: VmRSS of each
process, and the parent pid to find a Celery worker's pool processes under its main process.
"""

from __future__ import annotations

import threading
from pathlib import Path


def _status(pid: int) -> dict[str, str]:
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except OSError:  # the process has just exited
        return {}
    return dict(line.split(":", 1) for line in lines if ":" in line)


def rss_kib(pid: int) -> int:
    value = _status(pid).get("VmRSS", "0 kB").split()
    return int(value[0]) if value else 0


def process_tree(root: int) -> list[int]:
    """`root` and its descendants (a prefork pool's processes are children of the worker)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            ppid = _status(int(entry.name)).get("PPid", "").strip()
            if ppid.isdigit():
                parents[int(entry.name)] = int(ppid)
    tree, frontier = [root], [root]
    while frontier:
        frontier = [pid for pid, parent in parents.items() if parent in frontier]
        tree += frontier
    return tree


class TreeSampler:
    """Samples the RSS of `root`'s process tree every `interval` seconds until `stop()`."""

    def __init__(self, root: int, interval: float = 0.25) -> None:
        self.root, self.interval = root, interval
        self.first_total_kib = 0
        self.peak_total_kib = 0  # all processes of the tree together
        self.peak_process_kib = 0  # the largest single process
        self.samples = 0
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def start(self) -> TreeSampler:
        self._thread.start()
        return self

    def _run(self) -> None:
        tree: list[int] = []
        while not self._stopped.is_set():
            if self.samples % 8 == 0:  # walking all of /proc costs more than reading a few statuses
                tree = process_tree(self.root)
            sizes = [rss_kib(pid) for pid in tree]
            total = sum(sizes)
            if total:
                self.first_total_kib = self.first_total_kib or total
                self.peak_total_kib = max(self.peak_total_kib, total)
                self.peak_process_kib = max(self.peak_process_kib, *sizes)
            self.samples += 1
            self._stopped.wait(self.interval)

    def stop(self) -> dict[str, int]:
        self._stopped.set()
        self._thread.join(timeout=5)
        return {
            "first_total_kib": self.first_total_kib,
            "peak_total_kib": self.peak_total_kib,
            "peak_process_kib": self.peak_process_kib,
            "samples": self.samples,
        }
