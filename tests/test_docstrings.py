"""One docstring format for cost: every public callable states its complexity.

The format (``docs/architecture.md``): a Google-style ``Complexity:`` section,
alone on its line with the cost indented below it, after ``Args:`` /
``Returns:`` / ``Raises:`` and before the first ``>>>`` example.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Iterator
from typing import Any

import pytest

import dualstack_ipam

_SECTIONS_BEFORE = ("Args:", "Arguments:", "Returns:", "Yields:", "Raises:")
# Dunders that are part of the documented API (api.md: `node in alloc`,
# `len(alloc)`, iteration).
_PUBLIC_DUNDERS = ("__iter__", "__contains__", "__len__")


def _members(cls: type) -> Iterator[tuple[str, Any]]:
    # Inherited members count too (the pools share restore() and runs() from
    # their base), as long as the library defines them.
    seen: set[str] = set()
    for owner in cls.__mro__:
        if not owner.__module__.startswith("dualstack_ipam"):
            continue
        for name, value in vars(owner).items():
            if name not in seen:
                seen.add(name)
                yield from _member(cls, name, value)


def _member(cls: type, name: str, value: Any) -> Iterator[tuple[str, Any]]:
    if name.startswith("_") and name not in _PUBLIC_DUNDERS:
        return
    if isinstance(value, (staticmethod, classmethod)):
        value = value.__func__
    if isinstance(value, property):
        value = value.fget
    if inspect.isfunction(value):
        yield f"{cls.__name__}.{name}", value


# The public modules: the package itself and those users import by name.
MODULES = (
    "dualstack_ipam.reconcile",
    "dualstack_ipam.metrics",
    "dualstack_ipam.services.loadbalancer",
    "dualstack_ipam",
    "dualstack_ipam.viz",
    "dualstack_ipam.forecast",
    "dualstack_ipam.store",
)


def _public_callables() -> Iterator[tuple[str, Any]]:
    for module_name in MODULES:
        module = importlib.import_module(module_name)
        prefix = (
            "" if module is dualstack_ipam else module_name.removeprefix("dualstack_ipam.") + "."
        )
        for name, found in _exported(module):
            yield prefix + name, found


def _exported(module: Any) -> Iterator[tuple[str, Any]]:
    for name in module.__all__:
        obj = getattr(module, name)
        if inspect.isclass(obj):
            if issubclass(obj, BaseException):
                continue  # the error tree documents classes, not costs
            yield from _members(obj)
        elif inspect.isfunction(obj):
            yield name, obj


CALLABLES = dict(_public_callables())


def complexity_problem(doc: str | None) -> str | None:
    """What is wrong with ``doc``'s Complexity section, or None if it is right."""
    if not doc:
        return "no docstring"
    lines = [line.strip() for line in inspect.cleandoc(doc).splitlines()]
    if "Complexity:" not in lines:
        if any("Complexity:" in line for line in lines):
            return "Complexity is inline, not a section of its own"
        return "no Complexity section"
    at = lines.index("Complexity:")
    if at + 1 >= len(lines) or not lines[at + 1]:
        return "the Complexity section has no cost below it"
    if not lines[at + 1].startswith("O(") and "O(" not in lines[at + 1]:
        return f"the cost {lines[at + 1]!r} is not in O() notation"
    examples = [i for i, line in enumerate(lines) if line.startswith(">>>")]
    if examples and examples[0] < at:
        return "the Complexity section comes after the example"
    late = [s for s in _SECTIONS_BEFORE if s in lines[at:]]
    if late:
        return f"{late[0]} comes after the Complexity section"
    return None


def test_the_check_sees_every_allocator_method() -> None:
    for name in (
        "SubnetPool.allocate_next",
        "SubnetPool.restore",
        "ServiceIPAllocator.allocate",
        "NodeCIDRAllocator.items",
        "IPFamily.other",
    ):
        assert name in CALLABLES


@pytest.mark.parametrize("name", sorted(CALLABLES))
def test_complexity_section(name: str) -> None:
    problem = complexity_problem(CALLABLES[name].__doc__)
    assert problem is None, f"{name}: {problem}"


@pytest.mark.parametrize(
    ("doc", "problem"),
    [
        (None, "no docstring"),
        ("Take one. Complexity: O(1).", "Complexity is inline, not a section of its own"),
        ("Take one.\n\nComplexity:\n    O(1).\n\nRaises:\n    X: y.", "Raises: comes after"),
        ("Take one.\n\n>>> 1\n1\n\nComplexity:\n    O(1).", "comes after the example"),
        ("Take one.\n\nComplexity:\n    fast.", "not in O() notation"),
    ],
)
def test_the_check_catches(doc: str | None, problem: str) -> None:
    found = complexity_problem(doc)
    assert found is not None
    assert problem in found


def test_the_check_accepts_the_format() -> None:
    doc = """Take one.

    Raises:
        PoolExhaustedError: when full.

    Complexity:
        O(1) amortised.

    >>> 1
    1
    """
    assert complexity_problem(doc) is None
