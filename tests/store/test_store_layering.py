"""The store layer knows records and bytes, not allocators (docs/architecture.md).

Its modules may import the standard library, attrs and, of ours, only
``dualstack_ipam.errors`` and each other.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

import dualstack_ipam.store

STORE = Path(dualstack_ipam.store.__file__).parent
ALLOWED_THIRD_PARTY = {"attrs"}


def imported(path: Path) -> set[str]:
    """Every module name ``path`` imports (absolute imports only)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
    return names


@pytest.mark.parametrize("path", sorted(STORE.glob("*.py")), ids=lambda p: p.name)
def test_store_imports_only_errors_of_ours(path: Path) -> None:
    for name in imported(path):
        top = name.split(".")[0]
        if top == "dualstack_ipam":
            assert name == "dualstack_ipam.errors" or name.startswith("dualstack_ipam.store"), name
        else:
            assert top in sys.stdlib_module_names or top in ALLOWED_THIRD_PARTY, name
