"""Prometheus metrics for an allocator, with Kubernetes' names, labels and meanings.

:func:`register` adds a collector to a ``prometheus_client`` registry (the
``metrics`` extra: ``pip install dualstack-ipam[metrics]``). The collector
keeps nothing and counts nothing: at scrape time, and only then, it reads
``allocator.stats()`` (:data:`STATS_SHAPE`) and yields

- for Service addresses (:class:`~dualstack_ipam.ServiceIPAllocator`,
  :class:`~dualstack_ipam.services.loadbalancer.LoadBalancerIPAllocator`),
  the kube-apiserver's ``kube_apiserver_clusterip_allocator_*``:
  ``allocated_ips`` and ``available_ips`` (gauges, label ``cidr``: the
  family's ranges), ``allocation_total`` and ``allocation_errors_total``
  (counters, labels ``cidr`` — every range, as our totals are per allocator —
  and ``scope``: ``static`` for requested addresses, ``dynamic`` for chosen
  ones, or empty when ``stats()`` does not split them);
- for node CIDRs (:class:`~dualstack_ipam.NodeCIDRAllocator`), the
  kube-controller-manager's ``node_ipam_controller_cidrset_*``:
  ``usage_cidrs`` (gauge, the used fraction 0-1), ``cidrs_allocations_total``
  and ``cidrs_releases_total`` (counters), ``allocation_tries_per_request``
  (a histogram with Kubernetes' buckets 1, 5, 25, 125, 625: our bitmap finds a
  free CIDR in one try, so every allocation is one try), label
  ``clusterCIDR``.

Which set an allocator gets is decided by its class (a ``NodeCIDRAllocator``,
or a ``kind="node"`` argument, gets the node set), not by its ``stats()``,
whose shape is the same for both. Nothing is computed while no registry
scrapes.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from dualstack_ipam.errors import InvalidConfigError
from dualstack_ipam.net import IPFamily

if TYPE_CHECKING:
    from prometheus_client.metrics_core import Metric
    from prometheus_client.registry import CollectorRegistry

__all__ = ["STATS_SHAPE", "AllocatorCollector", "register"]

STATS_SHAPE = {
    "IPv4": {"capacity": 0, "used": 0, "free": 0, "reserved": 0, "cooling": 0},
    "IPv6": {"capacity": 0, "used": 0, "free": 0, "reserved": 0, "cooling": 0},
    "totals": {
        "allocations": 0,
        "releases": 0,
        "errors": {"exhausted": 0, "taken": 0, "invalid": 0},
        "scopes": {
            "static": {"allocations": 0, "errors": 0},
            "dynamic": {"allocations": 0, "errors": 0},
        },
    },
}
"""What ``stats()`` returns (api-durable.md, "Metrics"): one entry per
configured family, and ``totals`` counting this process's calls. ``scopes``
is optional (the load-balancer allocator gives it): without it the counters
carry ``scope=""``."""

_SERVICE = "kube_apiserver_clusterip_allocator_"
_NODE = "node_ipam_controller_cidrset_"
_TRY_BUCKETS = (1.0, 5.0, 25.0, 125.0, 625.0)


def _families(stats: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return [(name, entry) for name, entry in stats.items() if name in ("IPv4", "IPv6")]


def _ranges(allocator: Any, family: str, node: bool) -> str:
    """The label of a family: its ranges, comma-separated (the family if unknown)."""
    ranges = getattr(allocator, "ranges", None)
    if callable(ranges):
        return ",".join(map(str, ranges(family)))
    config = getattr(allocator, "config", None)
    if config is not None:
        cidr = config.cluster_cidr if node else config.service_cidr
        return str(cidr(IPFamily(family)))
    return family


def _is_node(allocator: Any) -> bool:
    from dualstack_ipam.cluster.nodes import NodeCIDRAllocator

    return isinstance(allocator, NodeCIDRAllocator)


class AllocatorCollector:
    """A ``prometheus_client`` collector reading one allocator's ``stats()`` per scrape.

    Args:
        allocator: anything with ``stats()`` (:data:`STATS_SHAPE`).
        kind: ``"node"`` or ``"service"``; None decides by class.

    Raises:
        InvalidConfigError: no ``stats()``, or another ``kind``.

    >>> from dualstack_ipam.services.loadbalancer import LoadBalancerIPAllocator
    >>> lb = LoadBalancerIPAllocator({"IPv4": "192.0.2.0/30"})
    >>> [m.name for m in AllocatorCollector(lb).collect()][:2]
    ['kube_apiserver_clusterip_allocator_allocated_ips', \
'kube_apiserver_clusterip_allocator_available_ips']
    """

    def __init__(self, allocator: Any, kind: str | None = None) -> None:
        if not callable(getattr(allocator, "stats", None)):
            raise InvalidConfigError(f"{allocator!r} has no stats() to collect", value=allocator)
        kind = kind or ("node" if _is_node(allocator) else "service")
        if kind not in ("node", "service"):
            raise InvalidConfigError(f"kind must be 'node' or 'service', got {kind!r}", value=kind)
        self.allocator, self.kind = allocator, kind

    def describe(self) -> list[Metric]:
        """Nothing: the registry must not call :meth:`collect` at registration.

        Complexity:
            O(1).
        """
        return []

    def collect(self) -> Iterator[Metric]:
        """The metrics of one ``stats()`` call.

        Complexity:
            O(families); ``stats()`` is O(1) per family.
        """
        stats = self.allocator.stats()
        if self.kind == "node":
            yield from self._node(stats)
        else:
            yield from self._service(stats)

    def _service(self, stats: dict[str, Any]) -> Iterator[Metric]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        allocated = GaugeMetricFamily(
            _SERVICE + "allocated_ips",
            "Gauge measuring the number of allocated IPs for Services",
            labels=["cidr"],
        )
        available = GaugeMetricFamily(
            _SERVICE + "available_ips",
            "Gauge measuring the number of available IPs for Services",
            labels=["cidr"],
        )
        labels = []
        for family, entry in _families(stats):
            cidr = _ranges(self.allocator, family, node=False)
            labels.append(cidr)
            allocated.add_metric([cidr], entry["used"])
            available.add_metric([cidr], entry["free"])
        yield allocated
        yield available
        totals, every = stats["totals"], ",".join(labels)
        allocations = CounterMetricFamily(
            _SERVICE + "allocation",
            "Number of Cluster IPs allocations",
            labels=["cidr", "scope"],
        )
        errors = CounterMetricFamily(
            _SERVICE + "allocation_errors",
            "Number of errors trying to allocate Cluster IPs",
            labels=["cidr", "scope"],
        )
        scopes = totals.get("scopes")
        if scopes:
            for scope, counts in scopes.items():
                allocations.add_metric([every, scope], counts["allocations"])
                errors.add_metric([every, scope], counts["errors"])
        else:
            allocations.add_metric([every, ""], totals["allocations"])
            errors.add_metric([every, ""], sum(totals["errors"].values()))
        yield allocations
        yield errors

    def _node(self, stats: dict[str, Any]) -> Iterator[Metric]:
        from prometheus_client.core import (
            CounterMetricFamily,
            GaugeMetricFamily,
            HistogramMetricFamily,
        )

        usage = GaugeMetricFamily(
            _NODE + "usage_cidrs",
            "Gauge measuring percentage of allocated CIDRs.",
            labels=["clusterCIDR"],
        )
        labels = []
        for family, entry in _families(stats):
            cidr = _ranges(self.allocator, family, node=True)
            labels.append(cidr)
            usage.add_metric([cidr], entry["used"] / entry["capacity"] if entry["capacity"] else 0)
        yield usage
        totals, every = stats["totals"], ",".join(labels)
        for name, key, text in (
            (
                "cidrs_allocations",
                "allocations",
                "Counter measuring total number of CIDR allocations.",
            ),
            ("cidrs_releases", "releases", "Counter measuring total number of CIDR releases."),
        ):
            counter = CounterMetricFamily(_NODE + name, text, labels=["clusterCIDR"])
            counter.add_metric([every], totals[key])
            yield counter
        tries = HistogramMetricFamily(
            _NODE + "allocation_tries_per_request",
            "Number of tries to find a free CIDR for a node (always one here)",
            labels=["clusterCIDR"],
        )
        count = totals["allocations"]
        tries.add_metric(
            [every], [(str(b), count) for b in _TRY_BUCKETS] + [("+Inf", count)], float(count)
        )
        yield tries


def register(
    allocator: Any, registry: CollectorRegistry | None = None, *, kind: str | None = None
) -> AllocatorCollector:
    """Register a collector of ``allocator``'s ``stats()`` (default registry if None).

    Args:
        allocator: a node, Service or load-balancer allocator.
        registry: a ``prometheus_client.CollectorRegistry``; None means
            ``prometheus_client.REGISTRY``.
        kind: ``"node"`` or ``"service"`` metric names; None decides by class.

    Returns:
        The collector (``registry.unregister(collector)`` removes it).

    Raises:
        ImportError: ``prometheus_client`` is not installed (the message
            names the ``metrics`` extra).
        InvalidConfigError: an allocator without ``stats()``, or a bad ``kind``.

    Complexity:
        O(1); each scrape costs one ``stats()`` call.

    >>> from prometheus_client import CollectorRegistry, generate_latest
    >>> from dualstack_ipam.services.loadbalancer import LoadBalancerIPAllocator
    >>> lb, registry = LoadBalancerIPAllocator({"IPv4": "192.0.2.0/30"}), CollectorRegistry()
    >>> _ = register(lb, registry)
    >>> line = b'kube_apiserver_clusterip_allocator_available_ips{cidr="192.0.2.0/30"} 4.0'
    >>> line in generate_latest(registry)
    True
    """
    try:
        import prometheus_client
    except ImportError as error:
        raise ImportError(
            "dualstack_ipam.metrics needs prometheus_client: pip install 'dualstack-ipam[metrics]'"
        ) from error
    collector = AllocatorCollector(allocator, kind)
    target = prometheus_client.REGISTRY if registry is None else registry
    target.register(collector)
    return collector
