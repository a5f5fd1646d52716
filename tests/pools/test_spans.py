"""SpanMap (tagged runs of slots) and the address ranges of reservations."""

from __future__ import annotations

import ipaddress

import netaddr
import pytest
from hypothesis import given
from hypothesis import strategies as st

from dualstack_ipam import AddressFormatError, InvalidConfigError
from dualstack_ipam.net import IPFamily
from dualstack_ipam.pools.ranges import parse_range, range_text, range_value
from dualstack_ipam.pools.spans import SpanMap

# ------------------------------------------------------------------ SpanMap

OPS = st.lists(
    st.tuples(
        st.sampled_from(["paint", "keep", "remove", "remove-tag"]),
        st.integers(0, 40),
        st.integers(0, 12),
        st.sampled_from(["a", "b", ""]),
    ),
    max_size=30,
)


def model_runs(model: dict[int, str]) -> list[tuple[int, int, str]]:
    runs: list[tuple[int, int, str]] = []
    for slot in sorted(model):
        if runs and runs[-1][1] == slot and runs[-1][2] == model[slot]:
            runs[-1] = (runs[-1][0], slot + 1, model[slot])
        else:
            runs.append((slot, slot + 1, model[slot]))
    return runs


@given(OPS)
def test_span_map_matches_a_dict_of_slots(ops: list[tuple[str, int, int, str]]) -> None:
    spans = SpanMap[str]()
    model: dict[int, str] = {}
    for op, start, length, tag in ops:
        stop = start + length
        covered = set(range(start, stop))
        if op in ("paint", "keep"):
            new = len(covered - model.keys())
            for slot in covered:
                if op == "paint" or slot not in model:
                    model[slot] = tag
            assert spans.paint(start, stop, tag, keep=op == "keep") == new
        else:
            only = tag if op == "remove-tag" else None
            gone = {s for s in covered & model.keys() if only is None or model[s] == only}
            removed = spans.remove(start, stop, only)
            assert sum(b - a for a, b, _ in removed) == len(gone)
            assert all(model[s] == t for a, b, t in removed for s in range(a, b))
            for slot in gone:
                del model[slot]
        spans.check_invariants()
        assert list(spans) == model_runs(model)
        assert spans.slots == len(model)
        assert bool(spans) == bool(model)
        for slot in range(0, 55, 3):
            assert spans.tag_at(slot) == model.get(slot)
            assert (spans.end_of_run(slot) > slot) == (slot in model)
            assert spans.overlaps(slot, slot + 3) == any(s in model for s in range(slot, slot + 3))
            nxt = min((a for a, _, _ in model_runs(model) if a > slot), default=60)
            assert spans.next_start(slot, 60) == nxt


def test_runs_of_one_tag_merge_and_others_stay_apart() -> None:
    spans = SpanMap[str]()
    spans.paint(0, 2, "a")
    spans.paint(4, 6, "a")
    spans.paint(2, 4, "a")
    assert list(spans) == [(0, 6, "a")]
    spans.paint(6, 8, "b")
    assert list(spans) == [(0, 6, "a"), (6, 8, "b")]
    assert spans.run_at(7) == (6, 8, "b")
    assert spans.overlapping(5, 7) == [(5, 6, "a"), (6, 7, "b")]


def test_an_empty_paint_changes_nothing() -> None:
    spans = SpanMap[str]()
    assert spans.paint(5, 5, "a") == 0
    assert list(spans) == []


def test_an_empty_remove_or_query_leaves_runs_whole() -> None:
    spans = SpanMap[str]()
    spans.paint(0, 2, "a")
    assert spans.remove(1, 1) == []
    assert spans.overlapping(1, 1) == []
    assert spans.overlaps(1, 1) is False
    assert list(spans) == [(0, 2, "a")]


def test_empty_maps_share_nothing_they_write() -> None:
    first, second = SpanMap[str](), SpanMap[str]()
    first.paint(0, 1, "x")
    assert list(second) == []
    second.check_invariants()


# ------------------------------------------------------------------- ranges


@pytest.mark.parametrize(
    ("value", "first", "last"),
    [
        ("10.0.0.10-10.0.0.20", 0x0A00000A, 0x0A000014),
        ("10.0.0.7", 0x0A000007, 0x0A000007),
        ("10.0.0.7-10.0.0.7", 0x0A000007, 0x0A000007),
        ("10.0.0.0/30", 0x0A000000, 0x0A000003),
        (netaddr.IPRange("10.0.0.1", "10.0.0.2"), 0x0A000001, 0x0A000002),
        (ipaddress.ip_network("10.0.0.0/31"), 0x0A000000, 0x0A000001),
        (netaddr.IPAddress("10.0.0.9"), 0x0A000009, 0x0A000009),
    ],
)
def test_parse_range_forms(value: object, first: int, last: int) -> None:
    span = parse_range(value)
    assert (span.first, span.last, span.family) == (first, last, IPFamily.IPv4)


def test_parse_range_ipv6() -> None:
    span = parse_range("fd00::1-fd00::ff")
    assert (span.last - span.first, span.family) == (254, IPFamily.IPv6)
    assert parse_range(netaddr.IPRange("fd00::", "fd00::1")).family is IPFamily.IPv6


@pytest.mark.parametrize(
    ("value", "error"),
    [
        ("10.0.0.1 - 10.0.0.2", AddressFormatError),
        ("10.0.0.1-", AddressFormatError),
        ("10.0.0.1-10.0.0.2-10.0.0.3", AddressFormatError),
        ("10.0.0.2-10.0.0.1", InvalidConfigError),
        ("10.0.0.1-::1", InvalidConfigError),
        ("fe80::1%eth0-fe80::2", AddressFormatError),
        (3.5, AddressFormatError),
    ],
)
def test_parse_range_refusals(value: object, error: type[Exception]) -> None:
    with pytest.raises(error):
        parse_range(value)


@given(st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1))
def test_range_text_reads_back_and_names_cidrs(a: int, b: int) -> None:
    first, last = min(a, b), max(a, b)
    text = range_text(first, last, IPFamily.IPv4)
    span = parse_range(text)
    assert (span.first, span.last) == (first, last)
    value = range_value(first, last, IPFamily.IPv4)
    assert (value.first, value.last) == (first, last)
    cidrs = netaddr.iprange_to_cidrs(netaddr.IPAddress(first), netaddr.IPAddress(last))
    assert isinstance(value, netaddr.IPNetwork) == (len(cidrs) == 1)
    assert ("/" in text) == (len(cidrs) == 1)
