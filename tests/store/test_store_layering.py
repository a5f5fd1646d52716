"""The store layer knows records and bytes, not allocators (docs/architecture.md).

Its modules may import the standard library, attrs and, of ours, only
``dualstack_ipam.errors`` and each other. The etcd modules may also import
their client, etcd3gw, and ``requests`` (under it), inside the functions that
send requests, so that the package imports without the ``etcd`` extra.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

import dualstack_ipam.store

STORE = Path(dualstack_ipam.store.__file__).parent
ALLOWED_THIRD_PARTY = {"attrs"}
ETCD_CLIENT = {"etcd3gw", "requests"}


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
            allowed = ALLOWED_THIRD_PARTY | (ETCD_CLIENT if path.stem.startswith("etcd") else set())
            assert top in sys.stdlib_module_names or top in allowed, name


@pytest.mark.parametrize("path", sorted(STORE.glob("etcd*.py")), ids=lambda p: p.name)
def test_the_etcd_client_is_imported_only_inside_functions(path: Path) -> None:
    tree = ast.parse(path.read_text())
    for node in tree.body:
        if isinstance(node, ast.Import | ast.ImportFrom):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module]
            assert not any((n or "").split(".")[0] in ETCD_CLIENT for n in names), names
