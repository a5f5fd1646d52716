"""dualstack_ipam.owners: the owner table and the surface both allocators share."""

from __future__ import annotations

from typing import Any

import netaddr
import pytest
from hypothesis import given
from hypothesis import strategies as st

from dualstack_ipam import (
    ClusterConfig,
    FamilyNotConfiguredError,
    InvalidConfigError,
    NodeCIDRAllocator,
    ServiceIPAllocator,
    SnapshotError,
)
from dualstack_ipam.net import IPFamily
from dualstack_ipam.owners import Address, OwnerTable, check_key

V4, V6 = IPFamily.IPv4, IPFamily.IPv6


def table() -> OwnerTable:
    return OwnerTable((V4, V6), "key", "Service range")


def held(table: OwnerTable) -> set[Address]:
    return {address for _, addresses in table.items() for address in addresses}


def always(address: Address) -> bool:
    return True


# ------------------------------------------------------------ keys and families


@pytest.mark.parametrize("key", ["a", "default/web", "Node_1", " ", "ü", "x" * 1000])
def test_any_non_empty_str_is_a_key(key: str) -> None:
    assert check_key(key) == key


@pytest.mark.parametrize("key", ["", None, 7, b"a", ["a"], ("a",)])
def test_other_keys_are_refused_quoting_them(key: Any) -> None:
    with pytest.raises(InvalidConfigError, match="node name must be a non-empty str") as info:
        check_key(key, "node name")
    assert repr(key) in str(info.value)


def test_family_lookup() -> None:
    single = OwnerTable((V6,), "node name", "cluster CIDR")
    assert single.family("IPv6") is V6
    with pytest.raises(FamilyNotConfiguredError, match="no IPv4 cluster CIDR") as info:
        single.family(V4)
    assert info.value.family is V4
    with pytest.raises(InvalidConfigError):
        single.family("IPv5")


# ------------------------------------------------------------ both directions


def test_put_get_owner_count_and_pop() -> None:
    t = table()
    t.put("web", ((V4, 7), (V6, 9)))
    assert t.get("web") == ((V4, 7), (V6, 9))
    assert (t.owner((V4, 7)), t.owner((V6, 9)), t.owner((V4, 9))) == ("web", "web", None)
    assert (t.count(V4), t.count(V6), len(t)) == (1, 1, 1)
    t.put("web", ((V4, 8),))  # replaces: the secondary is dropped
    assert (t.owner((V4, 7)), t.owner((V6, 9)), t.count(V6)) == (None, None, 0)
    assert t.pop("web") == ((V4, 8),)
    assert (t.pop("web"), len(t), t.get("web"), list(t)) == (None, 0, None, [])
    t._check_invariants(always)


def test_iteration_is_sorted_by_key_not_by_arrival() -> None:
    t = table()
    for key, value in (("c", 1), ("a", 2), ("b", 3)):
        t.put(key, ((V4, value),))
    assert list(t) == ["a", "b", "c"]
    assert [key for key, _ in t.items()] == ["a", "b", "c"]
    assert list(t.dump(lambda a: str(a[1]))) == ["a", "b", "c"]


# ------------------------------------------------------------ load


def load(entries: Any, allocated: Any = always, in_family_order: bool = False) -> OwnerTable:
    t = table()

    def read(key: str, text: str) -> Address:
        family, _, value = text.partition(":")
        return IPFamily(family), int(value)

    t.load("Kind", entries, read, allocated, in_family_order=in_family_order)
    return t


def test_load_round_trips_dump() -> None:
    t = load({"b": ["IPv6:1", "IPv4:2"], "a": ["IPv4:1"]})
    assert t.dump(lambda a: f"{a[0]}:{a[1]}") == {"a": ["IPv4:1"], "b": ["IPv6:1", "IPv4:2"]}
    t._check_invariants(always)


@pytest.mark.parametrize(
    ("entries", "message"),
    [
        ([], "must be a mapping"),
        ({"": ["IPv4:1"]}, "bad key ''"),
        ({"a": []}, "non-empty list"),
        ({"a": "IPv4:1"}, "non-empty list"),
        ({"a": ["IPv4:1", 5]}, "non-empty list"),
        ({"a": ["IPv4:1", "IPv4:2"]}, "two IPv4"),
        ({"a": ["IPv4:1"], "b": ["IPv6:1", "IPv4:1"]}, "held twice"),
    ],
)
def test_load_refuses_bad_entries(entries: Any, message: str) -> None:
    with pytest.raises(SnapshotError, match=message):
        load(entries)


def test_load_checks_the_pools_and_the_order() -> None:
    with pytest.raises(SnapshotError, match="which is free"):
        load({"a": ["IPv4:1"]}, allocated=lambda a: False)
    with pytest.raises(SnapshotError, match="family order"):
        load({"a": ["IPv6:1", "IPv4:1"]}, in_family_order=True)


def test_invariants_catch_a_stray_owner_and_a_free_address() -> None:
    t = table()
    t.put("a", ((V4, 1),))
    with pytest.raises(AssertionError):
        t._check_invariants(lambda a: False)
    t._owners[(V6, 3)] = "a"
    with pytest.raises(AssertionError):
        t._check_invariants(always)


@given(
    st.lists(
        st.tuples(
            st.sampled_from("abcdef"),
            st.lists(st.tuples(st.sampled_from([V4, V6]), st.integers(0, 5)), max_size=2),
        ),
        max_size=40,
    )
)
def test_the_table_agrees_with_a_dict(ops: list[tuple[str, list[Address]]]) -> None:
    t, model = table(), {}
    for key, wanted in ops:
        addresses = tuple(dict(wanted).items())  # one per family
        if any(t.owner(a) not in (None, key) for a in addresses):
            continue  # the allocators never put what another key holds
        t.put(key, addresses)
        if addresses:
            model[key] = addresses
        else:
            model.pop(key, None)
        t._check_invariants(always)
    assert t.items() == sorted(model.items())
    assert {a: k for k, v in model.items() for a in v} == {a: t.owner(a) for a in held(t)}
    assert [t.count(f) for f in (V4, V6)] == [
        sum(a[0] is f for v in model.values() for a in v) for f in (V4, V6)
    ]


@given(
    st.lists(
        st.tuples(st.sampled_from("abcdefgh"), st.booleans(), st.booleans()),
        max_size=60,
    )
)
def test_the_key_order_survives_changes_between_iterations(
    ops: list[tuple[str, bool, bool]],
) -> None:
    # Keys added and removed since the last iteration wait to be merged into
    # the sorted list; add, remove and add again before one iteration too.
    t, model = table(), set()
    for slot, (key, hold, look) in enumerate(ops):
        t.put(key, ((V4, slot),) if hold else ())
        if hold:
            model.add(key)
        else:
            model.discard(key)
        if look:
            assert list(t) == sorted(model)
    assert list(t) == sorted(model)
    assert [key for key, _ in t.items()] == sorted(model)
    assert list(t.dump(str)) == sorted(model)


# ------------------------------------------------------------ both allocators


CONFIG = ClusterConfig("10.244.0.0/16,fc00::/24", "10.96.0.0/24,fd00::/120")


@pytest.mark.parametrize("kind", ["nodes", "services"])
def test_both_allocators_iterate_sorted_by_key(kind: str) -> None:
    alloc: NodeCIDRAllocator | ServiceIPAllocator
    alloc = NodeCIDRAllocator(CONFIG) if kind == "nodes" else ServiceIPAllocator(CONFIG)
    for key in ("node-b", "node-10", "node-a", "node-2"):
        alloc.allocate(key)
    expected = ["node-10", "node-2", "node-a", "node-b"]
    assert list(alloc) == [key for key, _ in alloc.items()] == expected
    alloc.release("node-2")
    assert list(alloc) == ["node-10", "node-a", "node-b"]
    assert list(alloc.snapshot()["nodes" if kind == "nodes" else "services"]) == list(alloc)


@pytest.mark.parametrize("kind", ["nodes", "services"])
def test_owner_of_both_ways(kind: str) -> None:
    alloc: NodeCIDRAllocator | ServiceIPAllocator
    alloc = NodeCIDRAllocator(CONFIG) if kind == "nodes" else ServiceIPAllocator(CONFIG)
    alloc.allocate("a")
    alloc.allocate("b")
    addresses = alloc.get("a")
    assert addresses
    assert [alloc.owner_of(a) for a in addresses] == ["a"] * len(addresses)
    alloc.release("a")
    assert [alloc.owner_of(a) for a in addresses] == [None] * len(addresses)


def test_bulk_load_into_an_empty_table_takes_a_cooling_slot() -> None:
    # A durable side's first load can meet a slot that this process saw
    # released (cooling) and another process took: the bulk path must take
    # it as the per-key path does, not call it "allocated for something else".
    now = [0.0]
    alloc = ServiceIPAllocator(
        ClusterConfig("10.244.0.0/16", "10.96.0.0/24"), cooldown=30, clock=lambda: now[0]
    )
    alloc.allocate("a", ip="10.96.0.7")
    state = alloc._key_state("a")
    assert state is not None
    alloc.release("a")
    assert alloc.stats()["IPv4"]["cooling"] == 1
    alloc._load_states([("b", state)])
    assert alloc.get("b") == (netaddr.IPAddress("10.96.0.7"),)
    assert alloc.stats()["IPv4"]["cooling"] == 0
    alloc._check_invariants()
