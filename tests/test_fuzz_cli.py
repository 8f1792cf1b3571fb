"""Fuzzing what a user types: `register` arguments and CSV files of any shape, on both backends.

Whatever the input, a command answers with a reason and an exit code (0 or 1), never a traceback
and never a database error for the whole batch.
"""

from __future__ import annotations

import json

from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lifecycle.cli import cli

FUZZ = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
texts = st.text(st.characters(blacklist_categories=("Cs",)), max_size=200)
# Mostly well-formed numbers, so the other fields reach the database rather than stop at the number.
numbers = st.one_of(
    st.from_regex(r"[A-Z]{2}[0-9]{9}[A-Z]{2}", fullmatch=True), st.just("RR123456789CN"), texts
)
carriers = st.one_of(
    st.none(), st.integers(-10, 10**6), st.sampled_from([2**31, 2**63, -(2**31) - 1]), st.integers()
)


@FUZZ
@given(number=numbers, carrier=carriers, tag=st.one_of(st.none(), texts), lang=st.one_of(st.none(), texts))
def test_register_answers_every_argument_with_a_reason(cli_env, number, carrier, tag, lang):
    args = ["register", "--json", "--", number] if number.startswith("-") else ["register", "--json", number]
    for option, value in (("--carrier", carrier), ("--tag", tag), ("--lang", lang)):
        if value is not None:
            args[1:1] = [option, str(value)]
    result = CliRunner().invoke(cli, args)
    if result.exit_code == 2:  # click's own usage error (an option value it cannot parse)
        assert "Error" in result.output
        return
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    assert result.exit_code in (0, 1), result.output
    outcome = json.loads(result.output.split("\nwarning:")[0])["results"][0]
    assert outcome["queued"] or outcome["message"]


@FUZZ
@given(rows=st.lists(st.lists(texts, max_size=6), max_size=20))
def test_import_reports_every_row_of_any_csv(cli_env, tmp_path_factory, rows):
    path = tmp_path_factory.mktemp("csv") / "numbers.csv"
    lines = [
        "number,carrier,lang,tag",
        *(",".join(c.replace(",", " ").replace("\n", " ") for c in r) for r in rows),
    ]
    path.write_text("\n".join(lines), encoding="utf-8")
    result = CliRunner().invoke(cli, ["import", "--json", str(path)])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    assert result.exit_code == 0, result.output
    report = json.loads(result.output.split("\nwarning:")[0])
    assert report["rows"] == report["queued"] + report["refused"] + report["malformed"]


def _threads_value(raw: str) -> int | None:
    """What `serve --threads` accepts: an integer (as Python's int() reads it) from 1 to 512."""
    try:
        value = int(raw)
    except ValueError:
        return None
    return value if 1 <= value <= 512 else None


@FUZZ
@given(raw=st.one_of(st.integers().map(str), st.sampled_from(["0", "512", "513", " 7 ", "+3", "١٢"]), texts))
def test_serve_threads_is_checked_before_anything_starts(cli_env, monkeypatch, raw):
    from lifecycle.cli import processes

    started: list[list[str]] = []
    monkeypatch.setattr(processes, "_check_port", lambda host, port: None)
    monkeypatch.setattr(processes, "_database_ready", lambda upgrade_embedded: None)
    monkeypatch.setattr(processes, "_metrics_folder", lambda name: None)
    monkeypatch.setattr(processes.os, "execv", lambda path, args: started.append(args))
    result = CliRunner().invoke(cli, ["serve", f"--threads={raw}"])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    expected = _threads_value(raw)
    if expected is None:  # a usage error naming the option; gunicorn never started
        assert (result.exit_code, started) == (2, []), result.output
        assert "--threads" in result.output
    else:
        assert result.exit_code == 0, result.output
        assert started and f"WEB_THREADS={expected}" in started[0]
