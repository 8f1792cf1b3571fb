"""The deployment files name commands that exist: every Procfile process and every systemd unit's
ExecStart is a `manage.py` command line that `manage.py … --help` accepts as written (its command and
every option click parses), so a renamed command or option breaks the build, not a deployment."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
UNITS = sorted((ROOT / "deploy" / "systemd").glob("*.service"))


def procfile_processes(text: str) -> dict[str, str]:
    """`name: command` lines, comments and blank lines left out."""
    processes = {}
    for line in text.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, command = line.split(":", 1)
            processes[name.strip()] = command.strip()
    return processes


def manage_arguments(command: str) -> list[str]:
    """The arguments after `manage.py`, with `${VAR:-default}` and systemd's %i/%h/%% filled in."""
    command = re.sub(r"\$\{[A-Z_]+:-([^}]*)\}", r"\1", command)
    command = command.replace("%%", "%").replace("%i", "1").replace("%h", "host")
    words = shlex.split(command)
    assert Path(words[0]).name == "python" and words[1] == "manage.py", command
    return words[2:]


def accepted(arguments: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "manage.py", *arguments, "--help"], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)  # fmt: skip


def assert_accepted(arguments: list[str]) -> None:
    result = accepted(arguments)
    assert result.returncode == 0 and "Usage: manage.py" in result.stdout, (arguments, result.stderr)


def test_every_procfile_process_is_an_existing_manage_py_command():
    processes = procfile_processes((ROOT / "Procfile").read_text(encoding="utf-8"))
    assert set(processes) == {"release", "web", "worker", "beat"}
    for command in processes.values():
        assert_accepted(manage_arguments(command))


@pytest.mark.parametrize("unit", UNITS, ids=lambda path: path.name)
def test_every_systemd_unit_runs_an_existing_manage_py_command(unit):
    [command] = re.findall(r"^ExecStart=(.+)$", unit.read_text(encoding="utf-8"), flags=re.M)
    assert_accepted(manage_arguments(command))


def test_a_command_or_option_that_does_not_exist_is_caught():
    for wrong in (["serve", "--listen", "0.0.0.0"], ["migrate"], ["db", "upgrades"]):
        result = accepted(wrong)
        assert result.returncode != 0, wrong
