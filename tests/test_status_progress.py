"""Progress bars on long CLI work: rate and ETA on a terminal; nothing in pipes or with --json."""

from __future__ import annotations

import json
import os
import pty
import select
import subprocess
import sys
from pathlib import Path

import pytest

from lifecycle.observability.progress import Progress
from tests.conftest import API_KEY

ROOT = Path(__file__).resolve().parent.parent
ROWS = 3000


@pytest.fixture
def embedded(tmp_path: Path) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key not in ("DATABASE_URL", "BROKER_URL")}
    env.update(VAR_DIR=str(tmp_path / "var"), SEVENTEENTRACK_API_KEY=API_KEY, COLUMNS="100")
    subprocess.run([sys.executable, "manage.py", "db", "upgrade"], cwd=ROOT, env=env, check=True, timeout=180)
    return env


@pytest.fixture
def numbers_csv(tmp_path: Path) -> Path:
    path = tmp_path / "numbers.csv"
    lines = ["number,carrier,lang,tag"] + [f"PG{i:08d}CN,3011,,batch-{i % 7}" for i in range(ROWS)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def on_a_terminal(args: list[str], env: dict[str, str]) -> tuple[str, str]:
    """Run a command with stdout and stderr on two pseudo-terminals; (stdout, stderr) as written."""
    out_leader, out_follower = pty.openpty()
    err_leader, err_follower = pty.openpty()
    child = subprocess.Popen([sys.executable, "manage.py", *args], cwd=ROOT, env=env,
                             stdin=subprocess.DEVNULL, stdout=out_follower, stderr=err_follower)  # fmt: skip
    os.close(out_follower)
    os.close(err_follower)
    written = {out_leader: b"", err_leader: b""}
    open_fds = set(written)
    while open_fds:
        for fd in select.select(list(open_fds), [], [], 60)[0]:
            try:
                chunk = os.read(fd, 65536)
            except OSError:  # EIO: the child closed its end
                chunk = b""
            if chunk:
                written[fd] += chunk
            else:
                open_fds.discard(fd)
                os.close(fd)
    out, err = (written[fd].decode(errors="replace") for fd in (out_leader, err_leader))
    assert child.wait(timeout=180) == 0, out + err
    return out, err


def test_import_shows_a_bar_with_rate_and_eta_on_a_terminal(embedded, numbers_csv):
    out, err = on_a_terminal(["import", str(numbers_csv)], embedded)
    assert "import" in err and "100%" in err and "B/s" in err
    assert out.strip() == f"{ROWS} rows: {ROWS} queued, 0 refused, 0 malformed"


def test_import_in_a_pipe_or_with_json_prints_only_its_result(embedded, numbers_csv):
    piped = subprocess.run([sys.executable, "manage.py", "import", str(numbers_csv)], cwd=ROOT, env=embedded,
                           capture_output=True, text=True, timeout=180)  # fmt: skip
    assert piped.returncode == 0, piped.stderr
    assert piped.stdout.strip() == f"{ROWS} rows: {ROWS} queued, 0 refused, 0 malformed"
    assert "%" not in piped.stderr
    out, err = on_a_terminal(["import", "--json", str(numbers_csv)], embedded)
    assert "%" not in err and json.loads(out)["rows"] == ROWS


def test_cleanup_of_every_job_shows_a_bar_on_a_terminal(embedded, sim):
    # The reconcile job asks 17TRACK for its list, even in a dry run: the simulator answers.
    out, err = on_a_terminal(["cleanup", "--dry-run"], {**embedded, "SEVENTEENTRACK_API_URL": sim.url})
    assert "cleanup" in err and "7/7" in err and "100%" in err
    assert "retention (dry run: nothing changed)" in out


def test_the_bar_is_silent_when_disabled_and_redraws_at_most_ten_times_a_second(capsys):
    with Progress("work", 1_000_000, "items", enabled=False) as bar:
        for _ in range(1_000_000):
            bar.advance()
    captured = capsys.readouterr()
    assert captured.out == captured.err == ""


def test_replay_shows_a_bar_once_it_knows_how_many_rows_it_replays(embedded):
    from sqlalchemy import insert

    from lifecycle.db import make_engine
    from lifecycle.inbox.models import InboxEvent
    from simulators.seventeentrack import pushes
    from tests.helpers import in_transit

    engine = make_engine(f"sqlite:///{Path(embedded['VAR_DIR']) / 'lifecycle.sqlite3'}")
    rows = [{"provider": "17track", "body": pushes.encode(in_transit(f"RP{i:06d}")), "status": "pending"}
            for i in range(1200)]  # fmt: skip
    with engine.begin() as connection:
        connection.execute(insert(InboxEvent), rows)
    engine.dispose()
    out, err = on_a_terminal(["replay"], embedded)
    assert "replay" in err and "1200/1200" in err and "100%" in err and "rows/s" in err
    assert "replayed 1200 inbox rows" in out
    out, err = on_a_terminal(["replay", "--json"], embedded)
    assert "%" not in err and json.loads(out)["inbox_rows"] == 1200
