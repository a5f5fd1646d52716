"""Snapshots of ServiceIPAllocator that do not pause allocating threads.

What makes a snapshot stall other threads is checked by what it builds, not
by timing: no object per Service that the cyclic garbage collector tracks
(version 2 of the format), the key order taken under the lock without a
sort, and version 1 (what earlier releases wrote) still restoring.
"""

from __future__ import annotations

import copy
import gc
import json
import tracemalloc
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dualstack_ipam import ClusterConfig, ServiceIPAllocator, SnapshotError
from dualstack_ipam.net import IPFamily
from dualstack_ipam.owners import OwnerTable
from dualstack_ipam.owners import table as table_module
from dualstack_ipam.services import service_snapshots
from dualstack_ipam.services.service_snapshots import joined, text

CONFIG = ClusterConfig("10.244.0.0/16,fc00::/24", "10.96.0.0/28,fd00:10:96::/124")
POOLS = {
    "IPv4": {
        "kind": "ServiceIPPool",
        "version": 1,
        "used": 2,
        "cidr": "10.96.0.0/28",
        "strategy": "sequential",
        "allocated": {"chunk_bits": 4, "full": [], "partial": [0], "bits": "eJwTYAIAACQAEw=="},
    },
    "IPv6": {
        "kind": "ServiceIPPool",
        "version": 1,
        "used": 2,
        "cidr": "fd00:10:96::/124",
        "strategy": "sequential",
        "allocated": {"chunk_bits": 4, "full": [], "partial": [0], "bits": "eJxzYgAAAIYAQw=="},
    },
}
# Written by the release before version 2 (the code at the commit before it).
VERSION_1: dict[str, Any] = {
    "kind": "ServiceIPAllocator",
    "version": 1,
    "used": 4,
    "strategy": "sequential",
    "config": CONFIG.to_dict(),
    "pools": POOLS,
    "services": {
        "default/v6": ["fd00:10:96::2"],
        "default/web": ["10.96.0.5", "fd00:10:96::7"],
        "kube-system/dns": ["10.96.0.10"],
    },
}


def filled() -> ServiceIPAllocator:
    alloc = ServiceIPAllocator(CONFIG, strategy="sequential")
    alloc.allocate_service(
        {
            "metadata": {"name": "web"},
            "spec": {
                "ipFamilyPolicy": "RequireDualStack",
                "clusterIP": "10.96.0.5",
                "clusterIPs": ["10.96.0.5", "fd00:10:96::7"],
            },
        }
    )
    alloc.allocate("kube-system/dns", ip="10.96.0.10")
    alloc.allocate("default/v6", ip="fd00:10:96::2")
    return alloc


def test_version_2_holds_one_text_per_service() -> None:
    data = filled().snapshot()
    assert data["version"] == service_snapshots.VERSION == 2
    assert data["services"] == {
        "default/v6": "fd00:10:96::2",
        "default/web": "10.96.0.5,fd00:10:96::7",
        "kube-system/dns": "10.96.0.10",
    }
    assert {key: value for key, value in data.items() if key != "services"} == {
        **{key: value for key, value in VERSION_1.items() if key != "services"},
        "version": 2,
    }


def test_version_1_still_restores_to_the_same_state() -> None:
    restored = ServiceIPAllocator.restore(copy.deepcopy(VERSION_1))
    restored._check_invariants()
    assert restored.items() == filled().items()
    assert restored.snapshot() == filled().snapshot()


def test_version_2_round_trips_through_json() -> None:
    data = filled().snapshot()
    again = ServiceIPAllocator.restore(json.loads(json.dumps(data)))
    again._check_invariants()
    assert again.snapshot() == data


@pytest.mark.parametrize(
    ("version", "services"),
    [
        (2, {"kube-system/dns": ["10.96.0.10"]}),  # version 1's form in version 2
        (1, {"kube-system/dns": "10.96.0.10"}),  # and the other way round
        (2, {"kube-system/dns": ""}),
        (2, {"kube-system/dns": "10.96.0.10,"}),
        (2, {"kube-system/dns": " 10.96.0.10"}),
        (2, {"kube-system/dns": "10.96.0.10,10.96.0.5"}),  # two IPv4
        (2, {"kube-system/dns": 5}),
        (2, {"kube-system/dns": None}),
        (2, ["kube-system/dns"]),
        (3, {"kube-system/dns": "10.96.0.10"}),
    ],
)
def test_each_version_refuses_the_other_form(version: int, services: Any) -> None:
    alloc = ServiceIPAllocator(CONFIG, strategy="sequential")
    alloc.allocate("kube-system/dns", ip="10.96.0.10")
    data = {**alloc.snapshot(), "version": version, "services": services}
    with pytest.raises(SnapshotError):
        ServiceIPAllocator.restore(data)


def test_a_snapshot_builds_no_tracked_object_per_service() -> None:
    # Lists, one per Service, were what started full collections of the
    # whole heap in the allocating thread: none may come back.
    alloc = ServiceIPAllocator(ClusterConfig("10.244.0.0/16", "10.96.0.0/20,fd00::/112"))
    for i in range(300):
        alloc.allocate_service(
            {"metadata": {"name": f"s{i}"}, "spec": {"ipFamilyPolicy": "RequireDualStack"}}
        )
    services = alloc.snapshot()["services"]
    assert len(services) == 300
    assert not gc.is_tracked(services)
    assert not any(gc.is_tracked(value) for value in services.values())


def test_services_past_one_chunk_are_all_written_in_order(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(service_snapshots, "CHUNK", 3)
    alloc = ServiceIPAllocator(CONFIG, strategy="sequential")
    for name in ("k", "b", "z", "a", "m", "c", "q"):
        alloc.allocate(name)
    data = alloc.snapshot()
    assert list(data["services"]) == sorted(data["services"]) == list(alloc)
    assert ServiceIPAllocator.restore(data).items() == alloc.items()


@given(st.integers(0, 2**32 - 1), st.integers(0, 2**128 - 1))
def test_joined_is_the_text_of_each_address(ipv4: int, ipv6: int) -> None:
    both = ((IPFamily.IPv4, ipv4), (IPFamily.IPv6, ipv6))
    assert joined(both) == f"{text(both[0])},{text(both[1])}"
    assert joined(both[1:]) == text(both[1])


OPS = st.lists(st.tuples(st.sampled_from("abcdefgh"), st.booleans()), max_size=30)


@given(OPS, OPS)
def test_the_key_order_is_the_one_of_its_instant(before: Any, after: Any) -> None:
    table = OwnerTable((IPFamily.IPv4,), "key", "Service range")
    slots = {key: number for number, key in enumerate("abcdefgh")}

    def apply(ops: Any) -> None:
        for key, holds in ops:
            table.put(key, ((IPFamily.IPv4, slots[key]),) if holds else ())

    apply(before[: len(before) // 2])
    list(table)  # merged here: the rest waits in the pending sets
    apply(before[len(before) // 2 :])
    order = table.order_copy()
    expected = sorted(key for key in "abcdefgh" if table.get(key))
    apply(after)
    assert order.sorted() == expected
    # Handed back, the merged order keeps what changed since as pending.
    assert table.adopt(order)
    table._check_invariants(lambda address: True)
    assert list(table) == sorted(key for key in "abcdefgh" if table.get(key))


def test_an_order_is_not_adopted_once_the_table_merged() -> None:
    table = OwnerTable((IPFamily.IPv4,), "key", "Service range")
    table.put("b", ((IPFamily.IPv4, 2),))
    order = table.order_copy()
    assert not table.adopt(order)  # not sorted yet
    assert order.sorted() == ["b"]
    table.put("a", ((IPFamily.IPv4, 1),))
    assert list(table) == ["a", "b"]  # the table merged: its list is another one
    assert not table.adopt(order)
    assert list(table) == ["a", "b"]


def test_a_snapshot_hands_its_merged_order_to_the_table() -> None:
    alloc = ServiceIPAllocator(CONFIG, strategy="sequential")
    for name in ("k", "b", "z"):
        alloc.allocate(name)
    alloc.snapshot()
    assert alloc._table.order_copy().sorted() is alloc._table.order_copy().base
    alloc.allocate("a")
    assert list(alloc.snapshot()["services"]) == ["a", "b", "k", "z"]


@pytest.mark.parametrize("count", [0, 1, 5, 6, 7, 40])
def test_many_added_keys_are_sorted_by_slices(count: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(table_module, "_SLICE", 3)
    table = OwnerTable((IPFamily.IPv4,), "key", "Service range")
    names = [f"k{(i * 7919) % 101:03}" for i in range(count)]
    for number, name in enumerate(names):
        table.put(name, ((IPFamily.IPv4, number),))
    assert table.order_copy().sorted() == sorted(names) == list(table)


def test_cached_texts_follow_every_change_and_are_pruned(monkeypatch: pytest.MonkeyPatch) -> None:
    # A text is reused only while its key holds the very tuple it was made
    # from: a change, a release and a new key all show in the next snapshot.
    monkeypatch.setattr(service_snapshots, "CHUNK", 4)
    alloc = ServiceIPAllocator(ClusterConfig("10.244.0.0/16", "10.96.0.0/20,fd00::/112"))
    for i in range(20):
        alloc.allocate(f"ns/s{i}", ip=f"10.96.0.{i + 10}")
    first = alloc.snapshot()["services"]
    assert first["ns/s3"] == "10.96.0.13"
    alloc.release("ns/s3")
    alloc.occupy("ns/s3", ["10.96.0.13", "fd00::3"])  # the same key gains a family
    alloc.release("ns/s4")
    alloc.allocate("ns/s4", ip="10.96.0.99")  # same key, another address
    alloc.release("ns/s5")
    second = alloc.snapshot()["services"]
    assert second["ns/s3"] == "10.96.0.13,fd00::3"
    assert second["ns/s4"] == "10.96.0.99"
    assert "ns/s5" not in second
    assert second == {key: joined(held) for key, held in alloc._table.items()}
    for i in range(6, 20):
        alloc.release(f"ns/s{i}")
    third = alloc.snapshot()["services"]
    assert set(third) == {"ns/s0", "ns/s1", "ns/s2", "ns/s3", "ns/s4"}
    assert len(alloc._texts) <= 2 * len(third) + service_snapshots.CHUNK
    assert ServiceIPAllocator.restore(alloc.snapshot()).snapshot() == alloc.snapshot()


# ---------------------------------------------------------------- held views
# A snapshot copies nothing per Service under the lock: it opens a view of
# the owner map there, and every change made while the snapshot reads it
# first records, in the view, what the changed key held at its instant.

SLOTS = {key: number for number, key in enumerate("abcdefgh")}
CHANGES = st.lists(
    st.tuples(st.sampled_from("abcdefgh"), st.sampled_from([None, 0, 1])), max_size=30
)


def _put(table: OwnerTable, key: str, change: int | None) -> None:
    # None releases; 0 or 1 holds one of two slots (a change of address).
    slot = SLOTS[key] + 8 * (change or 0)
    table.put(key, () if change is None else ((IPFamily.IPv4, slot),))


@given(CHANGES, CHANGES, CHANGES, st.booleans())
def test_a_view_reads_each_key_as_at_its_instant(
    before: Any, between: Any, after: Any, close_first: bool
) -> None:
    table = OwnerTable((IPFamily.IPv4,), "key", "Service range")
    for key, change in before:
        _put(table, key, change)
    first, at_first = table.held_view(), {key: table.get(key) for key in SLOTS}
    for key, change in between:
        _put(table, key, change)
    second, at_second = table.held_view(), {key: table.get(key) for key in SLOTS}
    if close_first:
        table.close_view(first)
    for key, change in after:
        _put(table, key, change)
    assert {key: second.get(key) for key in SLOTS} == at_second
    if not close_first:
        assert {key: first.get(key) for key in SLOTS} == at_first
    for key, held in at_second.items():
        if held is None:
            with pytest.raises(KeyError):
                second[key]
        else:
            assert second[key] is held
    assert second.changed == len({key for key, _ in after})
    table.close_view(second)
    if not close_first:
        table.close_view(first)
    assert table._views == ()
    table._check_invariants(lambda address: True)


def test_a_snapshot_is_its_instant_while_other_calls_change_the_allocator(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    alloc = filled()
    alloc.allocate("default/gone", ip="10.96.0.3")
    expected = alloc.snapshot()
    texts = service_snapshots._texts

    def changing_meanwhile(*args: Any) -> dict[str, str]:
        # What another thread may do once the lock is released: release,
        # re-address, allocate anew (a key the order does not have).
        alloc.release("default/gone")
        alloc.release("kube-system/dns")
        alloc.allocate("kube-system/dns", ip="10.96.0.11")
        alloc.occupy("default/v6", ["fd00:10:96::2", "10.96.0.12"])
        alloc.allocate("default/new")
        return texts(*args)

    monkeypatch.setattr(service_snapshots, "_texts", changing_meanwhile)
    data = alloc.snapshot()
    # The pools were captured at the same instant: the snapshot restores.
    assert data["services"] == expected["services"]
    assert data == expected
    ServiceIPAllocator.restore(data)._check_invariants()
    assert alloc._table._views == ()
    monkeypatch.setattr(service_snapshots, "_texts", texts)
    assert alloc.snapshot()["services"]["kube-system/dns"] == "10.96.0.11"
    alloc._check_invariants()


def test_a_failed_snapshot_closes_its_view(monkeypatch: pytest.MonkeyPatch) -> None:
    alloc = filled()

    def failing(*args: Any) -> dict[str, str]:
        raise MemoryError("out of memory while encoding")

    monkeypatch.setattr(service_snapshots, "_texts", failing)
    with pytest.raises(MemoryError):
        alloc.snapshot()
    assert alloc._table._views == ()


class _MeasuredLock:
    """The allocator's lock, recording the memory allocated while it is held."""

    def __init__(self, lock: Any) -> None:
        self._lock, self._depth, self._start, self.most = lock, 0, 0, 0

    def __enter__(self) -> None:
        self._lock.__enter__()
        self._depth += 1
        if self._depth == 1:
            tracemalloc.reset_peak()
            self._start = tracemalloc.get_traced_memory()[0]

    def __exit__(self, *exc: object) -> None:
        self._depth -= 1
        if self._depth == 0:
            self.most = max(self.most, tracemalloc.get_traced_memory()[1] - self._start)
        self._lock.__exit__(*exc)


def test_nothing_per_service_is_copied_under_the_lock() -> None:
    # 3,000 dual-stack Services, 2,000 left: a copy of the owner map alone is ~70 KB.
    # Under the lock only each pool's flat capture may allocate, ~1 byte a
    # slot: ~10 KB for these ranges (two of 4,096), whatever the number of
    # Services.
    alloc = ServiceIPAllocator(ClusterConfig("10.244.0.0/16", "10.96.0.0/20,fd00::/116"))
    for i in range(3000):
        alloc.allocate_service(
            {"metadata": {"name": f"s{i}"}, "spec": {"ipFamilyPolicy": "RequireDualStack"}}
        )
    for i in range(0, 3000, 3):  # holes in the map: its copy is the slow one
        alloc.release(f"default/s{i}")
    measured = _MeasuredLock(alloc._lock)
    alloc._lock = measured  # type: ignore[assignment]
    tracemalloc.start()
    try:
        alloc.snapshot()
        alloc.snapshot()
        held = alloc._table._held
        with measured:  # the measure itself sees a copy of the map
            dict(held)
        copy_size = measured.most
    finally:
        tracemalloc.stop()
    alloc._lock = measured._lock
    assert copy_size > 40_000
    measured.most = 0
    tracemalloc.start()
    try:
        alloc._lock = measured  # type: ignore[assignment]
        alloc.snapshot()
    finally:
        tracemalloc.stop()
        alloc._lock = measured._lock
    assert measured.most < 16_000, measured.most


KEYS = st.sets(st.text("abc", min_size=1, max_size=3), max_size=40)


@pytest.mark.parametrize("few", [0, 32, 1000])
@given(KEYS, KEYS, st.data())
def test_the_merge_places_changed_keys_as_a_full_sort_would(
    few: int, keys: set[str], fresh: set[str], data: st.DataObject
) -> None:
    # By bisection for a few changes, by a pass over all keys for many.
    removed = data.draw(st.sets(st.sampled_from(sorted(keys)))) if keys else set()
    added = fresh - keys
    base = sorted(keys)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(table_module, "_FEW", few)
        merged = table_module._merge(base, added, removed)
    assert merged == sorted((keys - removed) | added)
    assert base == sorted(keys)  # the shared list is never changed in place
    if not added and not removed:
        assert merged is base
