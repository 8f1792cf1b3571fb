"""Writers on the embedded SQLite database wait for each other in the kernel, not in SQLite's
busy handler (which sleeps up to 100 ms between tries: the embedded webhook p99 was over 1 s)."""

from __future__ import annotations

import fcntl
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import text

from lifecycle.db import make_engine
from lifecycle.sqlite_lock import connection_factory

HOLD = """
import sys, time
from sqlalchemy import text
from lifecycle.db import make_engine
engine = make_engine(sys.argv[1])
with engine.begin() as connection:
    connection.execute(text("INSERT INTO t VALUES (1)"))
    print("holding", flush=True)
    sys.stdin.readline()
"""


@pytest.fixture
def database(tmp_path: Path) -> Path:
    path = tmp_path / "lifecycle.sqlite3"
    with make_engine(f"sqlite:///{path}").begin() as connection:
        connection.execute(text("CREATE TABLE t (v INTEGER)"))
    return path


def lock_is_free(database: Path) -> bool:
    fd = os.open(f"{database}-writer.lock", os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False
    finally:
        os.close(fd)


@pytest.mark.parametrize("ending", ["commit", "rollback"])
def test_a_write_transaction_holds_the_lock_until_it_ends(database: Path, ending: str) -> None:
    engine = make_engine(f"sqlite:///{database}")
    with engine.connect() as connection:
        transaction = connection.begin()
        connection.execute(text("INSERT INTO t VALUES (1)"))
        assert not lock_is_free(database)
        getattr(transaction, ending)()
        assert lock_is_free(database)
    reader = make_engine(f"sqlite:///{database}", writes=False)
    with reader.begin() as connection:  # a read transaction never takes it
        connection.execute(text("SELECT count(*) FROM t")).scalar()
        assert lock_is_free(database)


def test_a_second_process_waits_in_the_kernel_and_writes_once_the_first_commits(database: Path) -> None:
    url = f"sqlite:///{database}"
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, url], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "holding"
        waiter = subprocess.Popen(
            [sys.executable, "-c", HOLD, url], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        inode = os.stat(f"{database}-writer.lock").st_ino
        deadline = time.monotonic() + 60
        # /proc/locks lists a process blocked in flock() with "->": it sleeps until the lock is free.
        while not any("-> FLOCK" in line and f":{inode} " in line for line in Path("/proc/locks").open()):
            assert time.monotonic() < deadline, "the second writer never waited for the lock"
            assert waiter.poll() is None
            time.sleep(0.05)
        holder.communicate("\n", timeout=60)
        assert waiter.stdout is not None and waiter.stdout.readline().strip() == "holding"
        waiter.communicate("\n", timeout=60)
    finally:
        for process in (holder, locals().get("waiter")):
            if process is not None and process.poll() is None:
                process.kill()
    with make_engine(url, writes=False).begin() as connection:
        assert connection.execute(text("SELECT count(*) FROM t")).scalar() == 2


def test_a_second_write_in_the_same_thread_fails_as_before_instead_of_hanging(database: Path) -> None:
    factory = connection_factory(str(database))
    first = sqlite3.connect(database, factory=factory, isolation_level=None)
    second = sqlite3.connect(database, factory=factory, isolation_level=None, timeout=0.2)
    try:
        first.lock_for_writing()
        first.execute("BEGIN IMMEDIATE")
        second.lock_for_writing()  # returns at once: this thread already holds the lock
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            second.execute("BEGIN IMMEDIATE")
        first.rollback()
        assert lock_is_free(database)
    finally:
        first.close()
        second.close()
