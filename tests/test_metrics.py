"""metrics.register: Kubernetes' names and labels, scraped with prometheus_client's parser."""

from __future__ import annotations

from typing import Any

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from dualstack_ipam import ClusterConfig, NodeCIDRAllocator
from dualstack_ipam.errors import InvalidConfigError, PoolExhaustedError
from dualstack_ipam.metrics import STATS_SHAPE, register
from dualstack_ipam.services.loadbalancer import LoadBalancerIPAllocator


def scrape(registry: CollectorRegistry) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = generate_latest(registry).decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def shape(value: Any) -> Any:
    return {k: shape(v) for k, v in value.items()} if isinstance(value, dict) else 0


def test_lb_stats_have_the_documented_shape() -> None:
    lb = LoadBalancerIPAllocator({"IPv4": "192.0.2.0/30", "IPv6": "2001:db8::/126"})
    assert shape(lb.stats()) == STATS_SHAPE


def test_service_metrics() -> None:
    lb = LoadBalancerIPAllocator({"IPv4": "192.0.2.0/31, 192.0.2.8-192.0.2.8"})
    registry = CollectorRegistry()
    register(lb, registry)
    svc = {
        "metadata": {"name": "a"},
        "spec": {"type": "LoadBalancer", "loadBalancerIP": "192.0.2.8"},
    }
    lb.allocate_service(svc)
    lb.allocate_service({"metadata": {"name": "b"}, "spec": {"type": "LoadBalancer"}})
    lb.allocate_service({"metadata": {"name": "c"}, "spec": {"type": "LoadBalancer"}})
    with pytest.raises(PoolExhaustedError):
        lb.allocate_service({"metadata": {"name": "d"}, "spec": {"type": "LoadBalancer"}})
    cidr = "192.0.2.0/31,192.0.2.8/32"
    samples = scrape(registry)
    prefix = "kube_apiserver_clusterip_allocator_"
    assert samples[(prefix + "allocated_ips", (("cidr", cidr),))] == 3
    assert samples[(prefix + "available_ips", (("cidr", cidr),))] == 0
    assert samples[(prefix + "allocation_total", (("cidr", cidr), ("scope", "static")))] == 1
    assert samples[(prefix + "allocation_total", (("cidr", cidr), ("scope", "dynamic")))] == 2
    errors = prefix + "allocation_errors_total"
    assert samples[(errors, (("cidr", cidr), ("scope", "dynamic")))] == 1
    assert samples[(errors, (("cidr", cidr), ("scope", "static")))] == 0
    text = generate_latest(registry).decode()
    assert f"# TYPE {prefix}allocated_ips gauge" in text
    assert f"# TYPE {prefix}allocation_total counter" in text


def test_node_metrics() -> None:
    alloc = NodeCIDRAllocator(ClusterConfig("10.244.0.0/22"))
    if not hasattr(alloc, "stats"):
        pytest.skip("NodeCIDRAllocator.stats() is not there yet (W9a)")
    registry = CollectorRegistry()
    register(alloc, registry)
    alloc.allocate("n1")
    samples = scrape(registry)
    label = (("clusterCIDR", "10.244.0.0/22"),)
    assert samples[("node_ipam_controller_cidrset_usage_cidrs", label)] == 0.25
    assert samples[("node_ipam_controller_cidrset_cidrs_allocations_total", label)] == 1
    assert samples[("node_ipam_controller_cidrset_cidrs_releases_total", label)] == 0
    tries = "node_ipam_controller_cidrset_allocation_tries_per_request"
    assert samples[(tries + "_count", label)] == 1


class CountedNodes:
    """A real NodeCIDRAllocator with the stats() it lacks today, counted by this wrapper."""

    def __init__(self, config: ClusterConfig) -> None:
        self.alloc = NodeCIDRAllocator(config)
        self.config = config
        self.allocations = self.releases = 0

    def allocate(self, node: str) -> None:
        self.alloc.allocate(node)
        self.allocations += 1

    def release(self, node: str) -> None:
        self.releases += self.alloc.release(node)

    def stats(self) -> dict[str, Any]:
        result: dict[str, Any] = {
            str(f): {
                "capacity": self.alloc.capacity(f),
                "used": self.alloc.used(f),
                "free": self.alloc.free(f),
                "reserved": 0,
                "cooling": 0,
            }
            for f in self.config.families
        }
        errors = {"exhausted": 0, "taken": 0, "invalid": 0}
        result["totals"] = {
            "allocations": self.allocations,
            "releases": self.releases,
            "errors": errors,
        }
        return result


def test_node_metrics_through_a_stats_wrapper() -> None:
    nodes = CountedNodes(ClusterConfig("10.244.0.0/22,fd00::/62"))
    registry = CollectorRegistry()
    register(nodes, registry, kind="node")
    for name in ("a", "b", "c"):
        nodes.allocate(name)
    nodes.release("b")
    samples = scrape(registry)
    v4, v6 = (("clusterCIDR", "10.244.0.0/22"),), (("clusterCIDR", "fd00::/62"),)
    every = (("clusterCIDR", "10.244.0.0/22,fd00::/62"),)
    assert samples[("node_ipam_controller_cidrset_usage_cidrs", v4)] == 0.5
    assert samples[("node_ipam_controller_cidrset_usage_cidrs", v6)] == 0.5
    assert samples[("node_ipam_controller_cidrset_cidrs_allocations_total", every)] == 3
    assert samples[("node_ipam_controller_cidrset_cidrs_releases_total", every)] == 1
    tries = "node_ipam_controller_cidrset_allocation_tries_per_request"
    assert samples[(tries + "_bucket", (*every, ("le", "1.0")))] == 3
    assert samples[(tries + "_sum", every)] == 3


def test_service_names_without_scopes_use_an_empty_scope() -> None:
    nodes = CountedNodes(ClusterConfig("10.244.0.0/22", "10.96.0.0/24"))
    registry = CollectorRegistry()
    register(nodes, registry, kind="service")
    nodes.allocate("a")
    samples = scrape(registry)
    name = "kube_apiserver_clusterip_allocator_allocation_total"
    assert samples[(name, (("cidr", "10.96.0.0/24"), ("scope", "")))] == 1


def test_node_names_for_any_allocator_with_kind() -> None:
    lb = LoadBalancerIPAllocator({"IPv4": "192.0.2.0/30"})
    registry = CollectorRegistry()
    register(lb, registry, kind="node")
    lb.occupy("a", ["192.0.2.1"])
    samples = scrape(registry)
    label = (("clusterCIDR", "192.0.2.0/30"),)
    assert samples[("node_ipam_controller_cidrset_usage_cidrs", label)] == 0.25
    assert (
        samples[
            (
                "node_ipam_controller_cidrset_allocation_tries_per_request_bucket",
                (("clusterCIDR", "192.0.2.0/30"), ("le", "1.0")),
            )
        ]
        == 0
    )


class CountingAllocator:
    """A real allocator whose stats() calls are counted (no mock: it delegates)."""

    def __init__(self) -> None:
        self.inner = LoadBalancerIPAllocator({"IPv4": "192.0.2.0/30"})
        self.calls = 0

    def ranges(self, family: str) -> tuple[str, ...]:
        return self.inner.ranges(family)

    def stats(self) -> dict[str, Any]:
        self.calls += 1
        return self.inner.stats()


def test_nothing_is_computed_until_a_scrape() -> None:
    alloc = CountingAllocator()
    registry = CollectorRegistry()
    collector = register(alloc, registry)
    for i in range(50):
        alloc.inner.occupy(f"k{i % 4}", [f"192.0.2.{i % 4}"])
    assert alloc.calls == 0
    generate_latest(registry)
    assert alloc.calls == 1
    registry.unregister(collector)
    generate_latest(registry)
    assert alloc.calls == 1


def test_bad_arguments() -> None:
    with pytest.raises(InvalidConfigError):
        register(object(), CollectorRegistry())
    with pytest.raises(InvalidConfigError):
        register(LoadBalancerIPAllocator({"IPv4": "192.0.2.0/30"}), CollectorRegistry(), kind="x")
