"""Quick read commands import only what they use (issue 9: start-up time).

`manage.py shipments` took 0.64 s on an empty database because listing shipments imported the
provider registry, and with it every adapter: the CargoAi payload models, the accountant's rules,
pydantic schemas. The registry now imports an adapter only when one is asked for. Measured by
bench/cli_startup.py; checked here by the modules a command actually loaded.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from lifecycle import migrate

ROOT = Path(__file__).resolve().parent.parent
# Whole subsystems a listing never needs: the web framework, the task queue, migrations, HTTP
# clients, the provider adapters (their payloads, clients, webhooks) and the accountant's rules.
HEAVY = (
    "flask", "werkzeug", "celery", "kombu", "alembic", "requests",
    "lifecycle.providers.cargoai", "lifecycle.providers.seventeentrack", "lifecycle.providers.generic",
    "lifecycle.accounting",
)  # fmt: skip


@pytest.fixture(scope="module")
def empty_database(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    var_dir = tmp_path_factory.mktemp("imports") / "var"
    migrate.upgrade(f"sqlite:///{var_dir / 'lifecycle.sqlite3'}")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_URL", "BROKER_URL", "VAR_DIR"))}
    return {**env, "VAR_DIR": str(var_dir)}


# `manage.py ARGS` as a user runs it, writing the names in sys.modules to a file when it exits
# (-X importtime would miss modules imported by importlib, as the CLI imports its commands).
RUN_AND_LIST_MODULES = """
import atexit, runpy, sys
out, sys.argv = sys.argv[1], ["manage.py", *sys.argv[2:]]
atexit.register(lambda: open(out, "w").write("\\n".join(sorted(sys.modules))))
runpy.run_path("manage.py", run_name="__main__")
"""


def imported_by(env: dict[str, str], tmp_path: Path, *args: str) -> set[str]:
    listing = tmp_path / "modules.txt"
    result = subprocess.run([sys.executable, "-c", RUN_AND_LIST_MODULES, str(listing), *args], cwd=ROOT,
                            env=env, capture_output=True, text=True, timeout=120)  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    return set(listing.read_text().splitlines())


def heavy(modules: set[str]) -> list[str]:
    return sorted(m for m in modules if any(m == h or m.startswith(h + ".") for h in HEAVY))


@pytest.mark.parametrize("args", [("shipments",), ("shipments", "--json"), ("operations",)], ids=" ".join)
def test_listing_commands_load_no_adapter_no_rules_no_web_framework(empty_database, tmp_path, args):
    modules = imported_by(empty_database, tmp_path, *args)
    assert "sqlalchemy" in modules and "lifecycle.cli.data" in modules  # the check itself can fail
    assert heavy(modules) == []


def test_provider_names_are_known_without_importing_an_adapter():
    code = (
        "import sys; from lifecycle.providers import registry; "
        "print(','.join(registry.NAMES)); "
        "print(sorted(m for m in sys.modules if m.endswith('.adapter')))"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                            timeout=60)  # fmt: skip
    assert result.stdout.splitlines() == ["cargoai,17track,generic", "[]"], result.stderr


def test_an_adapter_is_imported_when_asked_for_and_routing_still_claims_awbs():
    from lifecycle.providers import registry

    assert registry.get("cargoai").name == "cargoai"
    assert registry.route_number("176-12345675") == "cargoai"
    assert registry.route_number("RR123456789CN") == registry.DEFAULT == "17track"
    assert registry.find("nope") is None and registry.find(None) is None
    with pytest.raises(KeyError, match="no adapter for provider 'nope'"):
        registry.get("nope")
