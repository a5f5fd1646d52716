"""Cluster.forecast(): rates measured from the journal, on memory:// and a SQLite file."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import dualstack_ipam
from dualstack_ipam import ClusterConfig, InvalidConfigError
from dualstack_ipam.durable import Cluster, JournalEntry
from dualstack_ipam.durable.growth import measure

SEED = ClusterConfig("10.244.0.0/16,fc00::/24", "10.96.0.0/12,fd00:10:96::/112")
# IPv4 node CIDRs: 16 /28s less the one holding the Service range = 15;
# Service IPs: 10.0.0.32/29 has 6 usable addresses.
TINY = ClusterConfig(
    "10.0.0.0/24,fd00::/120", "10.0.0.32/29", node_mask_ipv4=28, node_mask_ipv6=124
)


@pytest.fixture(params=["memory", "sqlite"])
def opener(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    opened: list[Cluster] = []

    def make(config: ClusterConfig = TINY) -> Cluster:
        url = "memory://"
        if request.param == "sqlite":
            url = f"sqlite://{tmp_path}/f{len(opened)}.db?synchronous=NORMAL"
        cluster = dualstack_ipam.open(url, config, service_strategy="sequential")
        opened.append(cluster)
        return cluster

    yield make
    for cluster in opened:
        cluster.close()


def entries(cluster: Cluster) -> list[JournalEntry]:
    return list(cluster.journal())


def test_empty_journal_never_runs_out(opener: Any) -> None:
    result = opener(SEED).forecast()
    assert len(result.ranges) == 4
    assert all(entry.rate == 0 and entry.when == "never" for entry in result)
    assert result.first is None


def test_rates_and_dates_by_hand(opener: Any) -> None:
    cluster = opener()
    for name in "abcd":
        cluster.nodes.allocate(name)
    for name in ("s1", "s2", "s3"):
        cluster.services.allocate_service({"metadata": {"name": name}})
    first = entries(cluster)[0].time
    now = first + timedelta(days=2)  # the journal starts inside the window: 2 days measured
    result = cluster.forecast(now=now)
    nodes = result.get("IPv4", "node_cidrs")
    # 4 nodes in 2 days = 2/day; 15 - 4 = 11 free -> floor(11 / 2) = 5 days.
    assert (nodes.capacity, nodes.used, nodes.rate, nodes.days_left) == (15, 4, 2.0, 5)
    assert nodes.runs_out == now.date() + timedelta(days=5)
    assert result.get("IPv6", "node_cidrs").rate == 2.0
    services = result.get("IPv4", "service_ips")
    # 3 addresses in 2 days = 1.5/day; 6 - 3 = 3 free -> 2 days.
    assert (services.used, services.rate, services.days_left) == (3, 1.5, 2)
    assert result.today == now.date()
    assert result == TINY.forecast(
        nodes_per_day=2.0, services_per_day={"IPv4": 1.5}, now=now.date(),
        used=[cluster.nodes, cluster.services],
    )  # fmt: skip


def test_releases_reduce_growth(opener: Any) -> None:
    cluster = opener()
    for name in "abcd":
        cluster.nodes.allocate(name)
    cluster.nodes.release("a")
    cluster.nodes.release("b")
    now = entries(cluster)[0].time + timedelta(days=1)
    assert cluster.forecast(now=now).get("IPv4", "node_cidrs").rate == 2.0


def test_shrinking_cluster_never_runs_out(opener: Any) -> None:
    cluster = opener()
    for name in "abc":
        cluster.nodes.allocate(name)
    cluster.nodes.release("a")
    cluster.nodes.release("b")
    start = entries(cluster)[3].time  # the first release opens the window
    result = cluster.forecast(window=timedelta(days=2), now=start + timedelta(days=2))
    entry = result.get("IPv4", "node_cidrs")
    assert (entry.used, entry.rate, entry.when) == (1, 0, "never")


def test_window_excludes_old_entries(opener: Any) -> None:
    cluster = opener()
    for name in "abcd":
        cluster.nodes.allocate(name)
    last = entries(cluster)[-1].time
    result = cluster.forecast(window=timedelta(days=1), now=last + timedelta(days=10))
    assert result.get("IPv4", "node_cidrs").rate == 0
    assert result.get("IPv4", "node_cidrs").used == 4
    # Entries after ``now`` are not growth either.
    early = cluster.forecast(now=entries(cluster)[0].time - timedelta(days=1))
    assert early.get("IPv4", "node_cidrs").rate == 0


def test_under_an_hour_of_history_measures_nothing(opener: Any) -> None:
    cluster = opener()
    cluster.nodes.allocate("a")
    now = entries(cluster)[0].time + timedelta(minutes=59)
    assert cluster.forecast(now=now).get("IPv4", "node_cidrs").when == "never"


def test_compacted_journal_measures_what_is_kept(opener: Any) -> None:
    cluster = opener()
    for name in "abcd":
        cluster.nodes.allocate(name)
    kept = entries(cluster)
    cluster.compact_journal(kept[1].revision)
    now = kept[2].time + timedelta(days=1)  # c and d, over one day
    assert cluster.forecast(now=now).get("IPv4", "node_cidrs").rate == 2.0


def test_import_is_not_growth(opener: Any) -> None:
    source = opener()
    for name in "abc":
        source.nodes.allocate(name)
    cluster = opener()
    cluster.import_(source.export())
    cluster.nodes.allocate("d")
    now = entries(cluster)[0].time + timedelta(days=1)
    entry = cluster.forecast(now=now).get("IPv4", "node_cidrs")
    assert (entry.used, entry.rate) == (4, 1.0)


@pytest.mark.parametrize(
    ("window", "now"),
    [
        (timedelta(0), None),
        (timedelta(days=-1), None),
        (7, None),
        (None, None),
        (timedelta(days=7), datetime(2026, 1, 1)),  # naive
        (timedelta(days=7), date(2026, 1, 1)),
        (timedelta(days=7), "2026-01-01T00:00:00+00:00"),
    ],
)
def test_bad_arguments(opener: Any, window: Any, now: Any) -> None:
    cluster = opener()
    cluster.nodes.allocate("a")
    before = entries(cluster)
    with pytest.raises(InvalidConfigError):
        cluster.forecast(window=window, now=now)
    assert entries(cluster) == before


def test_huge_window_reaches_all_history(opener: Any) -> None:
    cluster = opener()
    cluster.nodes.allocate("a")
    now = datetime.now(UTC) + timedelta(days=1)
    rate = cluster.forecast(window=timedelta.max, now=now).get("IPv4", "node_cidrs").rate
    assert 0 < rate <= 1.0


T0 = datetime(2026, 1, 1, tzinfo=UTC)


@given(st.lists(st.tuples(st.sampled_from("abcde"), st.booleans()), max_size=40))
def test_growth_over_all_history_is_what_is_held(steps: list[tuple[str, bool]]) -> None:
    journal: list[JournalEntry] = []
    held: set[str] = set()
    for i, (key, allocate) in enumerate(steps):
        addresses = (f"10.0.{ord(key)}.0/24", f"fd00:{ord(key):x}::/64") if allocate else ()
        if allocate:
            held.add(key)
        else:
            held.discard(key)
        journal.append(
            JournalEntry(i + 1, T0 + timedelta(hours=i), "t", "x", "node", key, addresses)
        )
    growth = measure(journal, start=T0, now=T0 + timedelta(days=30))
    assert growth.nodes == {family: len(held) for family in growth.nodes}
    assert growth.entries == len(steps)
