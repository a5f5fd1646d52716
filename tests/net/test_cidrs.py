"""Tests for dualstack_ipam.net.cidrs: the one reader of "a list of CIDRs"."""

from __future__ import annotations

import ipaddress
from collections import OrderedDict, deque
from collections.abc import Callable
from typing import Any

import netaddr
import pytest
from hypothesis import given
from hypothesis import strategies as st

from dualstack_ipam.errors import InvalidConfigError
from dualstack_ipam.net import split_cidrs


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("10.0.0.0/8", ["10.0.0.0/8"]),
        ("10.0.0.0/8,fd00::/64", ["10.0.0.0/8", "fd00::/64"]),
        (" 10.0.0.0/8 ,  fd00::/64 ", ["10.0.0.0/8", "fd00::/64"]),
        ("", []),
        ("   ", []),
        ("a,,b", ["a", "", "b"]),
        (["x", 1], ["x", 1]),
        (("x", "y"), ["x", "y"]),
        ([], []),
        ((), []),
        (deque(["x"]), ["x"]),
    ],
)
def test_accepted_forms(value: Any, expected: list[Any]) -> None:
    assert split_cidrs(value, "cidrs") == expected


@pytest.mark.parametrize(
    "network",
    [
        netaddr.IPNetwork("10.0.0.0/8"),
        netaddr.IPNetwork("::/0"),
        ipaddress.ip_network("10.0.0.0/8"),
        ipaddress.ip_network("::/0"),
    ],
)
def test_one_network_object_stands_for_itself(network: Any) -> None:
    # A network is iterable over its addresses; ::/0 would never finish.
    assert split_cidrs(network, "cidrs") == [network]


def test_a_new_list_each_time() -> None:
    items = ["10.0.0.0/8"]
    result = split_cidrs(items, "cidrs")
    assert result == items
    assert result is not items


def _generator() -> Any:
    return (x for x in ["10.0.0.0/8"])


REFUSED: list[tuple[str, Callable[[], Any]]] = [
    # Defect 5: each of these used to be iterated address by address, or to
    # raise IndexError, or to give a primary family that depends on hashing.
    ("IPRange", lambda: netaddr.IPRange("10.0.0.0", "10.15.255.255")),
    ("IPRange v6", lambda: netaddr.IPRange("::", "ffff::")),
    ("IPGlob", lambda: netaddr.IPGlob("10.*.*.*")),
    ("IPSet", lambda: netaddr.IPSet(["::/0"])),
    ("IPSet small", lambda: netaddr.IPSet(["10.0.0.0/8"])),
    ("set", lambda: {"10.0.0.0/8", "fd00::/64"}),
    ("frozenset", lambda: frozenset({"10.0.0.0/8"})),
    ("dict", lambda: {"10.0.0.0/8": 1}),
    ("OrderedDict", lambda: OrderedDict({"10.0.0.0/8": 1})),
    ("dict keys", lambda: {"10.0.0.0/8": 1}.keys()),
    ("generator", _generator),
    ("iterator", lambda: iter(["10.0.0.0/8"])),
    ("map", lambda: map(str, ["10.0.0.0/8"])),
    ("bytes", lambda: b"10.0.0.0/8"),
    ("bytearray", lambda: bytearray(b"10.0.0.0/8")),
    ("memoryview", lambda: memoryview(b"10.0.0.0/8")),
    ("range", lambda: range(10**30)),
    ("int", lambda: 5),
    ("None", lambda: None),
    ("address", lambda: netaddr.IPAddress("10.0.0.1")),
    ("ipaddress address", lambda: ipaddress.ip_address("10.0.0.1")),
]


@pytest.mark.parametrize(("name", "make"), REFUSED, ids=[name for name, _ in REFUSED])
def test_refused_forms(name: str, make: Callable[[], Any]) -> None:
    value = make()
    with pytest.raises(InvalidConfigError, match="--cluster-cidr must be") as info:
        split_cidrs(value, "--cluster-cidr")
    assert info.value.value is value
    assert "sequence of CIDRs" in str(info.value)


def test_refusal_does_not_iterate() -> None:
    consumed: list[str] = []

    def lazy() -> Any:
        for item in ["10.0.0.0/8", "fd00::/64"]:
            consumed.append(item)
            yield item

    gen = lazy()
    with pytest.raises(InvalidConfigError):
        split_cidrs(gen, "cidrs")
    assert consumed == []
    assert next(gen) == "10.0.0.0/8"


def test_refusal_quotes_the_value() -> None:
    with pytest.raises(InvalidConfigError) as info:
        split_cidrs(netaddr.IPGlob("10.*.*.*"), "cidrs")
    assert "IPGlob('10.*.*.*')" in str(info.value)
    with pytest.raises(InvalidConfigError) as info:
        split_cidrs({"10.0.0.0/8"}, "cidrs")
    assert "{'10.0.0.0/8'}" in str(info.value)
    assert "order" in str(info.value)


def test_large_unordered_values_are_summarised() -> None:
    big = {f"10.0.{i}.0/24" for i in range(100)}
    with pytest.raises(InvalidConfigError, match="a set of 100 items"):
        split_cidrs(big, "cidrs")


@given(st.lists(st.from_regex(r"[0-9a-f.:/]{1,12}", fullmatch=True), min_size=1, max_size=5))
def test_comma_joined_text_splits_back(parts: list[str]) -> None:
    assert split_cidrs(",".join(parts), "cidrs") == parts
    assert split_cidrs(" , ".join(parts), "cidrs") == parts
    assert split_cidrs(parts, "cidrs") == parts
    assert split_cidrs(tuple(parts), "cidrs") == parts
