"""The simulators stand in for the providers, so they must not borrow the product's code.

A simulator that signed pushes with the service's own `sign`, or answered with the service's own
error codes, would agree with a bug there instead of exposing it. Every module under
`simulators/` is read (not imported) and may not import `lifecycle` in any form.
"""

from __future__ import annotations

import ast
from pathlib import Path

SIMULATORS = Path(__file__).resolve().parent.parent / "simulators"


def _imported_modules(source: str) -> set[str]:
    modules: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            modules.add(node.module)
    return modules


def test_simulators_import_nothing_from_the_product() -> None:
    files = sorted(SIMULATORS.rglob("*.py"))
    assert len(files) > 10, "the simulators package moved; update SIMULATORS"
    leaks = {
        str(path.relative_to(SIMULATORS)): sorted(m for m in modules if m.split(".")[0] == "lifecycle")
        for path in files
        if (modules := _imported_modules(path.read_text(encoding="utf-8")))
    }
    assert {name: found for name, found in leaks.items() if found} == {}


def test_the_check_sees_every_import_form() -> None:
    source = "import lifecycle\nfrom lifecycle.providers import x\nif True:\n    import lifecycle.web as w\n"
    assert _imported_modules(source) == {"lifecycle", "lifecycle.providers", "lifecycle.web"}
