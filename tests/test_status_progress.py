"""Progress bars on long CLI work: rate and ETA on a terminal; nothing in pipes or with --json."""

from __future__ import annotations

import io
import json
import os
import pty
import select
import signal
import socket
import sqlite3
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from lifecycle.observability.progress import Progress
from tests.helpers import wait_for

ROOT = Path(__file__).resolve().parent.parent
ROWS = 3000


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


def test_the_bar_is_silent_when_disabled(capsys):
    with Progress("work", 1_000_000, "items", enabled=False) as bar:
        for _ in range(1_000_000):
            bar.advance()
    captured = capsys.readouterr()
    assert captured.out == captured.err == ""


class FakeTerminal(io.StringIO):
    """stderr as click sees a terminal: it draws the bar, each redraw starting with a carriage return."""

    def isatty(self) -> bool:
        return True


def test_an_enabled_bar_redraws_at_most_ten_times_a_second(monkeypatch):
    from lifecycle.observability import progress

    terminal, clock = FakeTerminal(), [1000.0]
    monkeypatch.setattr(sys, "stderr", terminal)
    monkeypatch.setattr(progress, "time", SimpleNamespace(monotonic=lambda: clock[0]))
    steps = 30_000  # one every 0.1 ms: three seconds of work on the bar's clock
    with Progress("work", steps, "items", enabled=True) as bar:
        for _ in range(steps):
            clock[0] += 0.0001
            bar.advance()
    redraws = terminal.getvalue().count("\r")
    # 3 s at most ten a second, plus the first draw (0/30000) and the last one (30000/30000).
    assert 25 <= redraws <= 3 * 10 + 2, terminal.getvalue()[-500:]
    assert "30000/30000" in terminal.getvalue() and "items/s" in terminal.getvalue()


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


SIMULATE = ["simulate", "--count", "6", "--step-seconds", "0.3"]


# Run in a fresh interpreter: what `simulate` has imported when its interruptible part begins.
LOADED_WHEN_INTERRUPTIBLE = """
import sys
from contextlib import contextmanager
from lifecycle.cli import simulate

@contextmanager
def interruptible():
    print(sorted(m for m in ("sqlalchemy.orm", "lifecycle.shipments.models",
                             "lifecycle.observability.progress") if m in sys.modules))
    raise SystemExit(0)
    yield

simulate._sigterm_as_interrupt = interruptible
simulate.simulate.main(["--json"], standalone_mode=False)
"""


def test_simulate_loads_what_its_result_needs_before_a_signal_can_interrupt_it(embedded):
    """SIGTERM and Ctrl-C end the demo as KeyboardInterrupt. One that landed inside a first import
    left that package half-initialised, and the result's summary then failed with "module
    'sqlalchemy.sql' has no attribute 'base'" (exit 1, no JSON; seen once in CI)."""
    shown = subprocess.run([sys.executable, "-c", LOADED_WHEN_INTERRUPTIBLE], cwd=ROOT, env=embedded,
                           capture_output=True, text=True, timeout=120)  # fmt: skip
    assert shown.returncode == 0, shown.stderr
    loaded = ["lifecycle.observability.progress", "lifecycle.shipments.models", "sqlalchemy.orm"]
    assert shown.stdout.strip() == repr(loaded)


def test_simulate_on_a_terminal_shows_its_bars_then_its_result(embedded):
    out, err = on_a_terminal([*SIMULATE, "--until-settled", "--timeout", "240"], embedded)
    assert "registering" in err and "6/6" in err and "settled" in err and "shipments/s" in err
    lines = out.strip().splitlines()
    assert lines[0].startswith("simulator at http://127.0.0.1:") and "service.log" in lines[0]
    assert " of 6 shipments settled after " in lines[-1] and "(settled)" in lines[-1]
    # The service's own log lines went to its log file, not through the bars.
    assert "celery" not in err and "gunicorn" not in err


def _registered(var_dir: Path) -> int:
    try:
        with sqlite3.connect(var_dir / "simulate" / "lifecycle.sqlite3", timeout=5) as connection:
            return connection.execute("SELECT count(*) FROM shipments").fetchone()[0]
    except sqlite3.Error:
        return 0


def test_simulate_with_json_prints_one_object_when_stopped_and_stops_its_service(embedded):
    demo = subprocess.Popen([sys.executable, "manage.py", *SIMULATE, "--json"], cwd=ROOT, env=embedded,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        wait_for(lambda: _registered(Path(embedded["VAR_DIR"])) == 6, timeout=180, interval=0.3)
        demo.send_signal(signal.SIGTERM)  # what a script or a supervisor stops it with
        out, err = demo.communicate(timeout=120)
    finally:
        demo.kill()
    assert demo.returncode == 0, err
    assert err == ""  # quiet: no status lines, no bar, none of the service's log lines
    [line] = out.splitlines()
    result = json.loads(line)
    assert (result["ended"], result["shipments"], result["settled"]) == ("interrupted", 6, False)
    assert sum(result["statuses"].values()) == 6 and result["api_calls"]["register"] == 1
    port = int(result["service"].rsplit(":", 1)[1])
    with socket.socket() as probe:  # the service it started is gone with it
        assert probe.connect_ex(("127.0.0.1", port)) != 0


def _simulate_json(env: dict[str, str], *args: str) -> tuple[subprocess.CompletedProcess[str], dict]:
    """`manage.py simulate --json` run as a script runs it, in a pipe: the finished process and the
    one JSON object that must be all of its stdout."""
    done = subprocess.run([sys.executable, "manage.py", "simulate", "--count", "2", *args, "--json"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=420)  # fmt: skip
    [line] = done.stdout.splitlines()  # exactly one line, and nothing else on stdout
    return done, json.loads(line)


def test_simulate_until_settled_with_json_exits_0_with_one_settled_object(embedded):
    # The README's script form (`--until-settled --timeout 300 --json`), with fast parcels.
    done, result = _simulate_json(embedded, "--step-seconds", "0.3", "--until-settled", "--timeout", "240")
    assert done.returncode == 0, done.stdout + done.stderr
    assert (result["ended"], result["settled"], result["shipments"]) == ("settled", True, 2)
    assert result["settled_shipments"] == 2 and "stopping" not in result["tracking"]
    assert result["api_calls"]["register"] == 1


def test_simulate_until_settled_that_times_out_exits_1_with_one_timeout_object(embedded):
    # Parcels that move once an hour cannot settle within the 1 s the watch is given.
    done, result = _simulate_json(embedded, "--step-seconds", "3600", "--until-settled", "--timeout", "1")
    assert done.returncode == 1, done.stdout + done.stderr
    assert (result["ended"], result["settled"], result["settled_shipments"]) == ("timeout", False, 0)
    assert sum(result["statuses"].values()) == 2  # it did register and watch before giving up
    assert "not settled within 1 s" in done.stderr and "Traceback" not in done.stderr


def test_simulate_refuses_a_taken_port_in_a_plain_sentence():
    import click

    from lifecycle.cli.simulate import _choose_port

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(click.ClickException) as refused:
            _choose_port(port)
    message = refused.value.message
    assert message.startswith(f"cannot listen on 127.0.0.1:{port}: ")
    assert message.endswith(
        "The demo starts a service of its own and never shares a port: leave out --port to let it "
        f"pick a free one, or choose another with --port {port + 1}."
    )


def test_reported_starts_a_new_bar_for_each_pass(monkeypatch):
    # A cleanup job over several rules reports (done, total) per pass: each pass gets its own bar,
    # so the second pass does not show as 2/7 of the first one's total.
    from lifecycle.observability.progress import reported

    terminal = FakeTerminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    with reported("cleanup mirror", "rows", enabled=True) as rows:
        for done in (3, 7):
            rows(done, 7)
        for done in (2, 4):
            rows(done, 4)
    shown = terminal.getvalue()
    assert "7/7" in shown and "4/4" in shown
    assert "2/7" not in shown and "4/7" not in shown
