"""A minute of pushes and broker signals against `manage.py run` on the embedded default.

kombu's stock filesystem transport let a reader open a message file before the writer had finished
it; about one run in six the worker died with "Unrecoverable error" and took the service down. This
test drives the broker hard (the webhook's own signals plus a stream of extra ones from outside)
and checks that no child of `run` ever exits and that every acknowledged push is applied.
`STRESS_SECONDS` shortens it on a laptop (default 60).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from itertools import count

import requests
from celery import Celery

from config.settings import Settings
from lifecycle.celery import celery_config
from lifecycle.providers.seventeentrack import webhook as st
from simulators.seventeentrack import pushes
from tests.helpers import in_transit, wait_for
from tests.test_cli_blackbox import KEY, ROOT, clean_env, free_port, manage

SECONDS = float(os.environ.get("STRESS_SECONDS", "60"))
PUSHERS = 3
PUSHES_PER_SECOND_EACH = 15
SIGNALS_PER_SECOND = 40


def _push_for(seconds: float, base: str, numbers: count, acknowledged: list[str]) -> None:
    session = requests.Session()
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        number = f"ST{next(numbers):09d}CN"
        body = pushes.encode(in_transit(number))
        answer = session.post(f"{base}/webhooks/17track", data=body, headers={"sign": st.sign(body, KEY)})
        if answer.status_code == 200:
            acknowledged.append(number)
        time.sleep(1 / PUSHES_PER_SECOND_EACH)


def _signal_for(seconds: float, var_dir) -> int:  # type: ignore[no-untyped-def]
    """Extra drain and flush signals straight into the embedded broker, as other processes send them."""
    app = Celery("stress")
    app.conf.update(celery_config(Settings(var_dir=var_dir, _env_file=None)))  # type: ignore[call-arg]
    sent = 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        task = "lifecycle.inbox.drain" if sent % 2 else "lifecycle.operations.flush"
        app.send_task(task, retry=False)
        sent += 1
        time.sleep(1 / SIGNALS_PER_SECOND)
    return sent


def test_a_minute_of_pushes_and_signals_never_kills_the_worker(tmp_path):
    var_dir = tmp_path / "var"
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = clean_env(var_dir, SEVENTEENTRACK_API_URL=f"http://127.0.0.1:{free_port()}")
    log = (tmp_path / "run.log").open("w+")
    process = subprocess.Popen([sys.executable, "manage.py", "run", "--port", str(port)], cwd=ROOT, env=env,
                               stdout=log, stderr=subprocess.STDOUT)  # fmt: skip
    try:
        wait_for(lambda: _healthy(base), timeout=120, interval=0.3)
        acknowledged: list[str] = []
        numbers = count()
        pushers = [
            threading.Thread(target=_push_for, args=(SECONDS, base, numbers, acknowledged))
            for _ in range(PUSHERS)
        ]
        for thread in pushers:
            thread.start()
        signals = _signal_for(SECONDS, var_dir)
        for thread in pushers:
            thread.join()
        applied = wait_for(lambda: _all_applied(env, len(acknowledged)), timeout=300, interval=1)
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=90)
    log.seek(0)
    output = log.read()
    print(f"sent {len(acknowledged)} pushes and {signals} extra signals; applied {applied}")
    assert "exited with" not in output and "Unrecoverable" not in output, output[-3000:]
    assert applied == len(set(acknowledged)) > 0


def _healthy(base: str) -> bool:
    try:
        return requests.get(f"{base}/healthz", timeout=2).ok
    except requests.RequestException:
        return False


def _all_applied(env: dict[str, str], expected: int) -> int | None:
    inbox = json.loads(manage(env, "inbox", "--json").stdout)
    shipments = json.loads(manage(env, "shipments", "--json", "--limit", "1000000").stdout)["shipments"]
    done = inbox["counts"].get("processed", 0)
    if inbox["counts"].get("pending") or done < expected:
        return None
    return len({s["number"] for s in shipments if s["status"] == "in_transit"})
