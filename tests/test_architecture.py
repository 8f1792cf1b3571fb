"""The dependency rules of DESIGN.md's layout, checked on the import graph (ast, every import
statement, also those inside functions): each provider in its own room, a core that knows providers
only through their interface, an accountant that reads no service of the other domains, and
simulators that share no code with the product they stand in front of."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CORE = ("inbox", "shipments", "operations", "accounting", "cleanup", "outbound", "observability")
ADAPTERS = ("seventeentrack", "cargoai", "generic")


def imports_of(path: Path) -> set[str]:
    """Every module a file imports, as absolute dotted names (`from a import b` gives a and a.b)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def files_under(*parts: str) -> list[Path]:
    return sorted((ROOT.joinpath(*parts)).rglob("*.py"))


def offending(files: list[Path], forbidden) -> list[str]:  # type: ignore[no-untyped-def]
    return [
        f"{path.name if ROOT not in path.parents else path.relative_to(ROOT)} imports {name}"
        for path in files
        for name in sorted(imports_of(path))
        if forbidden(name)
    ]


def test_the_core_reaches_providers_only_through_their_interface():
    core = [path for package in CORE for path in files_under("lifecycle", package)]
    core += [ROOT / "lifecycle" / name for name in ("jobs.py", "runtime.py", "health.py", "celery.py")]
    rooms = tuple(f"lifecycle.providers.{name}" for name in ADAPTERS)
    assert offending(core, lambda name: name.startswith(rooms)) == []


@pytest.mark.parametrize("room", ADAPTERS)
def test_each_provider_room_leans_on_no_other_room_and_on_no_edge(room):
    files = files_under("lifecycle", "providers", room)
    if not files:
        pytest.skip(f"no {room} adapter in this checkout")
    others = tuple(f"lifecycle.providers.{name}" for name in ADAPTERS if name != room)
    edges = ("lifecycle.web", "lifecycle.admin", "lifecycle.inbox.service", "lifecycle.jobs")
    assert offending(files, lambda name: name.startswith(others + edges)) == []
    # Its own commands (cli.py) are the one part of a room that is an edge itself.
    commands = [path for path in files if path.name != "cli.py"]
    assert offending(commands, lambda name: name.startswith("lifecycle.cli")) == []


def test_the_accountant_reads_other_domains_tables_but_calls_none_of_their_services():
    def forbidden(name: str) -> bool:
        other = name.startswith(("lifecycle.operations", "lifecycle.shipments", "lifecycle.inbox"))
        return other and not name.endswith((".models", ".models.Shipment")) and ".models" not in name

    assert offending(files_under("lifecycle", "accounting"), forbidden) == []
    providers = offending(
        files_under("lifecycle", "accounting"), lambda n: n.startswith("lifecycle.providers")
    )
    assert providers == []


def test_the_registry_is_the_one_place_that_lists_the_adapters():
    listing = [
        path
        for path in files_under("lifecycle")
        if "providers" not in path.parts and any(name.endswith(".adapter") for name in imports_of(path))
    ]
    assert listing == []


def test_simulators_share_no_code_with_the_product():
    files = files_under("simulators")
    assert files, "the simulators live at the top level, outside the product package"
    assert offending(files, lambda name: name == "lifecycle" or name.startswith("lifecycle.")) == []
    product = [p for p in files_under("lifecycle") if p.name != "simulate.py"]
    assert offending(product, lambda name: name.startswith("simulators")) == []


def test_a_leak_would_be_caught(tmp_path):
    """The checker itself: an import of a provider room from a function body is found."""
    leaky = tmp_path / "leaky.py"
    leaky.write_text("def f():\n    from lifecycle.providers.seventeentrack import webhook\n")
    assert offending([leaky], lambda name: name.startswith("lifecycle.providers.seventeentrack")) != []
