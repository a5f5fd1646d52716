"""The exhaustion forecast: hand-checked dates, the inputs it takes, and its properties."""

from __future__ import annotations

import datetime
import json
import math
from fractions import Fraction
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dualstack_ipam import (
    ClusterConfig,
    FamilyNotConfiguredError,
    InvalidConfigError,
    IPFamily,
    NodeCIDRAllocator,
    ServiceIPAllocator,
)
from dualstack_ipam.forecast import Forecast, RangeForecast, forecast
from dualstack_ipam.testing.strategies import cluster_configs

DAY = datetime.date(2026, 1, 1)
SEED = ClusterConfig("10.244.0.0/16,fc00::/24", "10.96.0.0/12,fd00:10:96::/112")


def entry(result: Forecast, family: str, kind: str) -> RangeForecast:
    return result.get(family, kind)


# ------------------------------------------------------------------ examples


def test_the_seed_cluster_by_hand() -> None:
    result = forecast(SEED, nodes_per_day=10, services_per_day=100, now=DAY)
    nodes_v4 = entry(result, "IPv4", "node_cidrs")
    # 256 node subnets at 10 a day last 25.6 days: the last is taken on day 25.
    assert (nodes_v4.capacity, nodes_v4.used, nodes_v4.days_left) == (256, 0, 25)
    assert nodes_v4.runs_out == datetime.date(2026, 1, 26)
    nodes_v6 = entry(result, "IPv6", "node_cidrs")
    assert nodes_v6.capacity == 2**40
    assert nodes_v6.days_left == 2**40 // 10
    assert nodes_v6.runs_out is None  # after 9999-12-31
    ips_v4 = entry(result, "IPv4", "service_ips")
    # 2**20 - 2 addresses at 100 a day: 10,485 days (28 years to 2054-01-01 are 10,227).
    assert (ips_v4.capacity, ips_v4.days_left) == (1_048_574, 10_485)
    assert ips_v4.runs_out == datetime.date(2054, 9, 16)
    ips_v6 = entry(result, "IPv6", "service_ips")
    assert (ips_v6.capacity, ips_v6.rate, ips_v6.days_left, ips_v6.runs_out) == (
        65535,
        0,
        None,
        None,
    )
    assert result.first is nodes_v4


def test_the_table_says_never_at_rate_zero() -> None:
    text = str(forecast(SEED, nodes_per_day=10, now=DAY))
    lines = text.splitlines()
    assert lines[0] == "Forecast from 2026-01-01 at constant rates per day (linear model)"
    assert lines[1].split() == [
        "FAMILY", "RANGE", "CIDR", "CAPACITY", "USED", "PER", "DAY", "DAYS", "LEFT", "RUNS", "OUT",
    ]  # fmt: skip
    assert lines[2].split() == [
        "IPv4", "node", "CIDRs", "10.244.0.0/16", "256", "0", "10", "25", "2026-01-26",
    ]  # fmt: skip
    assert lines[3].endswith("  after 9999-12-31")
    assert lines[4].split()[-2:] == ["-", "never"]
    assert lines[5].split()[-2:] == ["-", "never"]


def test_a_fractional_rate_and_a_small_cluster() -> None:
    config = ClusterConfig("10.0.0.0/24", "10.0.0.0/28", node_mask_ipv4=28)
    result = forecast(config, nodes_per_day=1.5, services_per_day=0.25, now=DAY)
    nodes = entry(result, "IPv4", "node_cidrs")
    # 16 subnets less the one the Service range takes: 15 / 1.5 = 10 days.
    assert (nodes.capacity, nodes.days_left) == (15, 10)
    ips = entry(result, "IPv4", "service_ips")
    # A /28 has 14 usable addresses: 14 / 0.25 = 56 days.
    assert (ips.capacity, ips.days_left, ips.runs_out) == (14, 56, datetime.date(2026, 2, 26))


def test_a_full_range_runs_out_today_whatever_the_rate() -> None:
    config = ClusterConfig("10.0.0.0/24", node_mask_ipv4=26)
    for rate in (0, 3):
        nodes = entry(
            forecast(config, nodes_per_day=rate, now=DAY, used={"IPv4": {"node_cidrs": 4}}),
            "IPv4",
            "node_cidrs",
        )
        assert (nodes.free, nodes.days_left, nodes.runs_out) == (0, 0, DAY)


def test_a_number_of_services_counts_the_primary_service_family() -> None:
    config = ClusterConfig("10.0.0.0/16,fc00::/24", "fd00::/120,10.96.0.0/24")
    result = forecast(config, services_per_day=5, now=DAY)
    assert entry(result, "IPv6", "service_ips").rate == 5
    assert entry(result, "IPv4", "service_ips").rate == 0
    assert [(e.family, e.kind) for e in result] == [
        (IPFamily.IPv4, "node_cidrs"),
        (IPFamily.IPv6, "node_cidrs"),
        (IPFamily.IPv6, "service_ips"),
        (IPFamily.IPv4, "service_ips"),
    ]


def test_a_mapping_of_services_by_family() -> None:
    result = forecast(SEED, services_per_day={"IPv6": 3, IPFamily.IPv4: 2.5}, now=DAY)
    assert entry(result, "IPv4", "service_ips").rate == 2.5
    assert entry(result, "IPv6", "service_ips").days_left == 65535 // 3
    only_v6 = forecast(SEED, services_per_day={"IPv6": 1}, now=DAY)
    assert entry(only_v6, "IPv4", "service_ips").runs_out is None


def test_used_from_the_allocators() -> None:
    nodes = NodeCIDRAllocator(SEED)
    services = ServiceIPAllocator(SEED)
    for name in ("a", "b", "c"):
        nodes.allocate(name)
    services.allocate("dns")
    services.allocate("web", family="IPv6")
    result = forecast(SEED, nodes_per_day=1, now=DAY, used=(nodes, services))
    assert entry(result, "IPv4", "node_cidrs").used == 3
    assert entry(result, "IPv4", "node_cidrs").days_left == 253
    assert entry(result, "IPv6", "service_ips").used == 1
    assert entry(forecast(SEED, now=DAY, used=nodes), "IPv6", "node_cidrs").used == 3


def test_used_takes_the_usage_object_of_show_json() -> None:
    usage: dict[str, Any] = {
        "IPv4": {
            "node_cidrs": {"capacity": "256", "reserved": "0", "used": "7", "free": "249"},
            "service_ips": None,
        },
        "IPv6": {"node_cidrs": {"used": 7}, "service_ips": {"used": "12"}},
    }
    result = forecast(SEED, now=DAY, used=usage)
    assert entry(result, "IPv4", "node_cidrs").used == 7
    assert entry(result, "IPv4", "service_ips").used == 0
    assert entry(result, "IPv6", "service_ips").used == 12


def test_now_may_be_a_datetime_and_defaults_to_utc_today() -> None:
    moment = datetime.datetime(2026, 5, 4, 23, 59, tzinfo=datetime.UTC)
    assert forecast(SEED, now=moment).today == datetime.date(2026, 5, 4)
    before = datetime.datetime.now(datetime.UTC).date()
    today = forecast(SEED).today
    assert before <= today <= datetime.datetime.now(datetime.UTC).date()


def test_to_dict_is_json_with_big_counts_as_text() -> None:
    data = forecast(SEED, nodes_per_day=10, now=DAY).to_dict()
    assert json.loads(json.dumps(data)) == data
    v6 = data["ranges"][1]
    assert v6 == {
        "family": "IPv6",
        "kind": "node_cidrs",
        "cidr": "fc00::/24",
        "capacity": 2**40,
        "used": 0,
        "rate_per_day": 10,
        "days_left": 2**40 // 10,
        "runs_out": None,
    }
    assert data["ranges"][0]["runs_out"] == "2026-01-26"
    assert data["today"] == "2026-01-01"
    # From 2**53 up, counts are strings, as in snapshots, so JSON tools lose nothing.
    big = forecast(ClusterConfig("fc00::/24", "fd00::/64"), services_per_day=1, now=DAY)
    ips = big.to_dict()["ranges"][1]
    assert (ips["capacity"], ips["days_left"]) == (str(2**64 - 1), str(2**64 - 1))


def test_get_an_absent_range() -> None:
    result = forecast(ClusterConfig("10.0.0.0/16"), now=DAY)
    with pytest.raises(FamilyNotConfiguredError, match="IPv4 range of kind 'service_ips'"):
        result.get("IPv4", "service_ips")
    assert result.first is None


# ------------------------------------------------------------------ errors


@pytest.mark.parametrize("rate", [-1, math.nan, math.inf, True, "5", None])
def test_a_bad_rate_is_refused(rate: Any) -> None:
    with pytest.raises(InvalidConfigError) as info:
        forecast(SEED, nodes_per_day=rate)
    assert repr(rate) in str(info.value)
    with pytest.raises(InvalidConfigError):
        forecast(SEED, services_per_day={"IPv4": rate})


def test_services_without_a_service_range() -> None:
    config = ClusterConfig("10.0.0.0/16")
    assert len(forecast(config, services_per_day=0).ranges) == 1
    with pytest.raises(InvalidConfigError, match="services_per_day=3"):
        forecast(config, services_per_day=3)
    with pytest.raises(FamilyNotConfiguredError, match="'IPv6'") as info:
        forecast(ClusterConfig("10.0.0.0/16", "10.96.0.0/24"), services_per_day={"IPv6": 1})
    assert info.value.family is IPFamily.IPv6


@pytest.mark.parametrize(
    ("used", "error", "text"),
    [
        ({"IPv4": {"node_cidrs": 257}}, InvalidConfigError, "used=257"),
        ({"IPv4": {"node_cidrs": -1}}, InvalidConfigError, "-1"),
        ({"IPv4": {"node_cidrs": "3x"}}, InvalidConfigError, "'3x'"),
        ({"IPv4": {"pods": 1}}, InvalidConfigError, "'pods'"),
        ({"IPv4": 3}, InvalidConfigError, "3"),
        ({"IPv5": {}}, InvalidConfigError, "IPv5"),
        ({"IPv4", "IPv6"}, InvalidConfigError, "used="),
        ([object()], InvalidConfigError, "object"),
    ],
)
def test_bad_usage_is_refused(used: Any, error: type[Exception], text: str) -> None:
    with pytest.raises(error, match=text.replace("(", r"\(")):
        forecast(SEED, used=used)


def test_usage_of_a_range_the_cluster_lacks() -> None:
    config = ClusterConfig("10.0.0.0/16", "10.96.0.0/24")
    with pytest.raises(FamilyNotConfiguredError, match="IPv6"):
        forecast(config, used={"IPv6": {"node_cidrs": 1}})


def test_an_allocator_of_another_cluster_is_refused() -> None:
    other = NodeCIDRAllocator(ClusterConfig("10.1.0.0/16"))
    with pytest.raises(InvalidConfigError, match="another cluster"):
        forecast(SEED, used=other)


def test_now_must_be_a_date() -> None:
    with pytest.raises(InvalidConfigError, match="'2026-01-01'"):
        forecast(SEED, now="2026-01-01")  # type: ignore[arg-type]


# ------------------------------------------------------------------ properties

rates = st.one_of(
    st.integers(0, 10**6),
    st.floats(0, 1e6, allow_nan=False, allow_infinity=False),
)


def _runs_out(result: Forecast) -> list[datetime.date | None]:
    return [e.runs_out for e in result]


@given(
    cluster_configs(),
    rates,
    rates,
    st.dates(datetime.date(2000, 1, 1), datetime.date(2100, 1, 1)),
)
def test_properties(config: ClusterConfig, low: float, high: float, today: datetime.date) -> None:
    low, high = min(low, high), max(low, high)
    has_services = bool(config.service_families)
    slow = forecast(config, nodes_per_day=low, services_per_day=low * has_services, now=today)
    fast = forecast(config, nodes_per_day=high, services_per_day=high * has_services, now=today)
    for a, b in zip(slow, fast, strict=True):
        # Never before today; a faster rate never runs out later.
        for e in (a, b):
            assert e.runs_out is None or e.runs_out >= today
        if a.runs_out is not None:
            assert b.runs_out is not None
            assert b.runs_out <= a.runs_out
        if a.days_left is not None and b.days_left is not None:
            assert b.days_left <= a.days_left
        # Exactly floor(free / rate), the rate taken as the exact value of the float.
        for e in (a, b):
            if e.rate and e.free:
                assert e.days_left == math.floor(Fraction(e.free) / Fraction(e.rate))
            if e.rate == 0 and e.free:
                assert (e.days_left, e.runs_out) == (None, None)
        assert a.runs_out is None or a.runs_out == today + datetime.timedelta(a.days_left or 0)


@given(cluster_configs())
def test_rate_zero_is_never_for_every_range_with_room(config: ClusterConfig) -> None:
    result = forecast(config, nodes_per_day=0, services_per_day=0, now=DAY)
    assert all(e.runs_out is None for e in result if e.free)
    assert "never" in str(result) or not any(e.free for e in result)


# ------------------------------------------------------------------ grown ranges


def test_a_grown_node_range_counts_in_the_capacity() -> None:
    config = ClusterConfig("10.0.0.0/24", node_mask_ipv4=28)  # 16 subnets
    nodes = NodeCIDRAllocator(config)
    nodes.add_range("10.0.1.0/24")  # 16 more
    for n in range(20):  # more than the configured range holds
        nodes.allocate(f"n{n}")
    got = entry(forecast(config, nodes_per_day=4, now=DAY, used=nodes), "IPv4", "node_cidrs")
    assert (got.capacity, got.used, got.free) == (32, 20, 12)
    assert got.days_left == 3  # 12 left at 4 a day
    assert str(got.cidr) == "10.0.0.0/24"  # the configuration's range


def test_a_grown_service_range_counts_in_the_capacity() -> None:
    config = ClusterConfig("10.0.0.0/16", "10.96.0.0/29,fd00::/125")
    services = ServiceIPAllocator(config)
    services.add_range("10.97.0.0/29")
    capacity = {e.family: e.capacity for e in forecast(config, used=services, now=DAY)}
    plain = {e.family: e.capacity for e in forecast(config, now=DAY)}
    assert capacity[IPFamily.IPv4] == plain[IPFamily.IPv4] * 2  # two /29 alike
    assert capacity[IPFamily.IPv6] == plain[IPFamily.IPv6]


def test_counts_given_as_a_mapping_keep_the_configured_capacity() -> None:
    config = ClusterConfig("10.0.0.0/24", node_mask_ipv4=28)
    with pytest.raises(InvalidConfigError, match="exceeds the capacity 16"):
        forecast(config, used={"IPv4": {"node_cidrs": 20}}, now=DAY)


def test_a_durable_cluster_forecasts_with_its_grown_ranges() -> None:
    import dualstack_ipam

    config = ClusterConfig("10.0.0.0/24", node_mask_ipv4=28)
    with dualstack_ipam.open("memory://", config) as cluster:
        cluster.nodes.add_range("10.0.1.0/24")
        for n in range(20):
            cluster.nodes.allocate(f"n{n}")
        got = cluster.forecast().get("IPv4", "node_cidrs")
        assert (got.capacity, got.used) == (32, 20)
