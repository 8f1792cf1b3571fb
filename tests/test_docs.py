"""The README and `.env.example` against the code: every variable, command and option they name exists.

The first wave's README named options that did not exist and left variables out of its table; these
checks make that drift fail the build.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import click
import pytest

from config.settings import Settings
from lifecycle.cli import cli
from lifecycle.providers.generic.config import GenericSettings

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")


def _readme_table_variables() -> set[str]:
    section = README.split("## Environment", 1)[1].split("\n## ", 1)[0]
    names: set[str] = set()
    for line in section.splitlines():
        if line.startswith("| `"):
            names.update(re.findall(r"`([A-Z][A-Z0-9_]+)`", line.split("|")[1]))
    return names


def _settings_variables() -> set[str]:
    # The generic provider reads its own settings class (GENERIC_*), kept inside its package.
    classes = (Settings, GenericSettings)
    return {
        (cls.model_config.get("env_prefix", "") + name).upper()
        for cls in classes
        for name in cls.model_fields
    }


def test_the_readme_table_lists_every_setting_and_nothing_else():
    table = _readme_table_variables()
    settings = _settings_variables()
    assert settings - table == set(), "settings missing from the README's Environment table"
    # PROMETHEUS_MULTIPROC_DIR is read by prometheus-client itself, not by our settings.
    assert table - settings - {"PROMETHEUS_MULTIPROC_DIR"} == set(), "README names variables we do not read"


def test_env_example_names_every_setting():
    example = (ROOT / ".env.example").read_text(encoding="utf-8")
    names = set(re.findall(r"^#?\s*([A-Z][A-Z0-9_]+)=", example, flags=re.M))
    assert _settings_variables() - names == set()
    assert names - _settings_variables() - {"PROMETHEUS_MULTIPROC_DIR"} == set()


def _readme_command_lines() -> list[list[str]]:
    """Every `manage.py …` invocation in the README's code blocks, as argument lists."""
    lines = []
    for block in re.findall(r"```sh\n(.*?)```", README, flags=re.S):
        for raw in block.splitlines():
            line = raw.split("  #", 1)[0].strip()
            if "manage.py " not in line:
                continue
            words = shlex.split(line.split("manage.py ", 1)[1].replace("…", ""))
            lines.append(words)
    return lines


def _resolve(words: list[str]) -> tuple[click.Command, list[str]]:
    command: click.Command = cli
    ctx = click.Context(cli)
    rest = list(words)
    while isinstance(command, click.Group) and rest and not rest[0].startswith("-"):
        sub = command.get_command(ctx, rest[0].split("|")[0])
        assert sub is not None, f"README names a command that does not exist: {rest[0]!r}"
        command, rest = sub, rest[1:]
    return command, rest


@pytest.mark.parametrize("words", _readme_command_lines(), ids=lambda words: " ".join(words)[:60])
def test_every_command_and_option_in_the_readme_exists(words):
    command, rest = _resolve(words)
    if command.context_settings.get("ignore_unknown_options"):
        return  # `worker` and `beat` pass their options on to Celery
    known = {opt for param in command.params for opt in getattr(param, "opts", [])}
    known |= {opt for param in command.params for opt in getattr(param, "secondary_opts", [])}
    named = {word.strip("[]").split("=")[0] for word in rest if word.strip("[]").startswith("--")}
    # `[--a|--b]` names two options.
    options = {part for word in named for part in word.split("|")}
    assert options - known - {"--help"} == set(), f"options the README shows but `{command.name}` lacks"


def test_the_readme_shows_commands_with_the_virtualenvs_python():
    assert ".venv/bin/python manage.py" in README
