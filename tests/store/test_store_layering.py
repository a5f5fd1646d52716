"""The store layer knows records and bytes, not allocators (docs/architecture.md).

Its modules may import the standard library, attrs and, of ours, only
``dualstack_ipam.errors`` and each other. The etcd modules may also import
their client, etcd3gw, and ``requests`` and ``urllib3`` (under it), inside
the functions that send requests, so that the package imports without the
``etcd`` extra; ``etcd_http`` (the requests session) imports ``requests`` at
its top, and is itself imported only inside such a function.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

import dualstack_ipam.store

STORE = Path(dualstack_ipam.store.__file__).parent
ALLOWED_THIRD_PARTY = {"attrs"}
ETCD_CLIENT = {"etcd3gw", "requests", "urllib3"}
ONLY_WITH_THE_EXTRA = {"etcd_http"}


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


def top_level_imports(path: Path) -> list[str]:
    names: list[str] = []
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            names.append(node.module or "")
    return names


@pytest.mark.parametrize(
    "path",
    sorted(p for p in STORE.glob("etcd*.py") if p.stem not in ONLY_WITH_THE_EXTRA),
    ids=lambda p: p.name,
)
def test_the_etcd_client_is_imported_only_inside_functions(path: Path) -> None:
    names = top_level_imports(path)
    assert not any(n.split(".")[0] in ETCD_CLIENT for n in names), names


@pytest.mark.parametrize("path", sorted(STORE.glob("*.py")), ids=lambda p: p.name)
def test_the_modules_that_need_the_extra_are_imported_inside_functions(path: Path) -> None:
    names = top_level_imports(path)
    assert not any(n.rsplit(".", 1)[-1] in ONLY_WITH_THE_EXTRA for n in names), names
