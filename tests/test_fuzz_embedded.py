"""Fuzzing on the embedded default (issue 10): `manage.py run` (SQLite, the project's filesystem
broker, a real worker and beat under the supervisor) gets hypothesis-generated and mutated 17TRACK
pushes and CargoAi callbacks, validly signed, each between two genuine ones, from a few threads at
once, as tests/test_fuzz_webhooks.py posts them in-process (the same strategies).

Whatever came in: never a 500, no child of `run` ever exits (the supervisor logs each exit and each
start), every genuine event applied once, every stored row processed or failed with a readable
error. Providers are the project's simulators, so the worker's calls are real HTTP too.
"""

from __future__ import annotations

import contextlib
import signal
import sqlite3
import subprocess
import sys
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as hs

from simulators.cargoai import CargoAiSimulatorServer
from simulators.seventeentrack import SimulatorServer
from tests.helpers import wait_for
from tests.reliability_support.fuzz import CALLBACK, PUSH, fuzz_figures, genuine, mutated, readable, signed
from tests.test_cli_blackbox import KEY, ROOT, clean_env, free_port

CARGOAI_KEY = "embedded-fuzz-cargoai-key"
KEYS = {"17track": KEY, "cargoai": CARGOAI_KEY}
# Bad payloads, each posted between two genuine ones: 1,200 requests, ~25 s in all on a loaded 2-core box.
EXAMPLES = 400
THREADS = 4
CASES = hs.one_of(
    mutated(PUSH).map(lambda body: ("17track", body)), mutated(CALLBACK).map(lambda body: ("cargoai", body))
)


def _cases() -> list[tuple[str, bytes]]:
    """Hypothesis-generated bad payloads, drawn up front so they can be posted concurrently."""
    cases: list[tuple[str, bytes]] = []

    @settings(max_examples=EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(CASES)
    def collect(case: tuple[str, bytes]) -> None:
        cases.append(case)

    collect()
    return cases


class Poster:
    """Posts over real HTTP from several threads; keeps every answer and anything out of line."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.statuses: Counter[int] = Counter()
        self.genuine: list[str] = []
        self.problems: list[str] = []  # 5xx, a 4xx without a reason, a genuine payload refused
        self._lock = threading.Lock()
        self._local = threading.local()

    def post(self, provider: str, body: bytes) -> int:
        if not hasattr(self._local, "session"):
            self._local.session = requests.Session()
        answer = self._local.session.post(
            f"{self.base}/webhooks/{provider}",
            data=body,
            headers=signed(provider, body, KEYS[provider]),
            timeout=60,
        )
        with self._lock:
            self.statuses[answer.status_code] += 1
            if answer.status_code >= 500 or (answer.status_code >= 400 and not _reason(answer)):
                self.problems.append(f"{answer.status_code} {answer.text[:200]!r} for {body[:120]!r}")
        return answer.status_code

    def around(self, case: tuple[str, bytes]) -> None:
        provider, bad = case
        for part in ("before", "bad", "after"):
            if part == "bad":
                self.post(provider, bad)
                continue
            number, payload = genuine(provider)
            status = self.post(provider, payload)
            with self._lock:
                if status == 200:
                    self.genuine.append(number)
                else:
                    self.problems.append(f"genuine {number} answered {status}")


def _reason(answer: requests.Response) -> str:
    try:
        return str(answer.json().get("message") or "")
    except ValueError:
        return ""


def test_fuzzed_webhooks_on_the_embedded_default_never_kill_the_worker(tmp_path):
    var_dir = tmp_path / "var"
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with (
        SimulatorServer(KEY, step_seconds=None) as sim17,
        CargoAiSimulatorServer(CARGOAI_KEY, step_seconds=None) as sim_cargoai,
    ):
        env = clean_env(
            var_dir, SEVENTEENTRACK_API_URL=sim17.url, CARGOAI_API_URL=sim_cargoai.url,
            CARGOAI_API_KEY=CARGOAI_KEY, CARGOAI_CALLBACK_AUTH="hmac",
        )  # fmt: skip
        log_path = tmp_path / "run.log"
        with log_path.open("w") as log:
            process = subprocess.Popen([sys.executable, "manage.py", "run", "--port", str(port)], cwd=ROOT,
                                       env=env, stdout=log, stderr=subprocess.STDOUT)  # fmt: skip
        try:
            wait_for(lambda: _healthy(base), timeout=120, interval=0.3)
            poster, cases = Poster(base), _cases()
            with ThreadPoolExecutor(THREADS) as pool:
                list(pool.map(poster.around, cases))
            database = var_dir / "lifecycle.sqlite3"
            stored = poster.statuses[200]
            wait_for(lambda: _settled(database, stored, poster.genuine), timeout=180, interval=0.5)
            rows, history = _inbox(database), _history(database, poster.genuine)
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=90)
    output = log_path.read_text(errors="replace")
    failed = [error for status, error in rows if status == "failed"]
    figures = fuzz_figures(
        "fuzz embedded", poster.statuses.total(), stored, poster.genuine, history,
        answers=dict(sorted(poster.statuses.items())), stored=len(rows), failed=len(failed),
        worker_starts=output.count("started worker"), child_exits=output.count("exited with"),
    )  # fmt: skip
    assert poster.problems == [], poster.problems[:5]
    assert figures.extra["child_exits"] == 0 and figures.extra["worker_starts"] == 1, output[-3000:]
    assert "Unrecoverable" not in output, output[-3000:]
    assert (figures.acknowledged, figures.doubled, figures.lost) == (len(rows), 0, 0)
    assert figures.applied == len(poster.genuine) == 2 * len(cases)
    assert [status for status, _ in rows if status not in ("processed", "failed")] == []
    assert [error for error in failed if not readable(error)] == []


def _healthy(base: str) -> bool:
    try:
        return requests.get(f"{base}/healthz", timeout=2).ok
    except requests.RequestException:
        return False


def _read(database: Path) -> contextlib.closing[sqlite3.Connection]:
    """A read-only look at the service's SQLite file (WAL: it never blocks the writer)."""
    return contextlib.closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=30))


def _inbox(database: Path) -> list[tuple[str, str | None]]:
    with _read(database) as db:
        return db.execute("SELECT status, error FROM inbox").fetchall()


def _history(database: Path, numbers: list[str]) -> Counter[str]:
    """History rows of each genuine number, moved in transit (1 each when applied once)."""
    marks = ",".join("?" * len(numbers))
    query = (
        "SELECT s.number, count(t.id) FROM shipments s JOIN transitions t ON t.shipment_id = s.id"
        f" WHERE s.status = 'in_transit' AND s.number IN ({marks}) GROUP BY s.number"
    )
    with _read(database) as db:
        return Counter(dict(db.execute(query, numbers).fetchall()))


def _settled(database: Path, stored: int, numbers: list[str]) -> bool:
    """Every acknowledged body in the inbox and none pending, every genuine event applied."""
    rows = _inbox(database)
    pending = [status for status, _ in rows if status == "pending"]
    return len(rows) >= stored and not pending and len(_history(database, numbers)) == len(numbers)
