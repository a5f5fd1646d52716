"""The reference model: a cluster's allocations in plain dicts, and the rules they obey.

:class:`~dualstack_ipam.testing.stateful.DualStackClusterMachine` checks our
allocators against it after every step. It needs no Hypothesis: it is the
API contract written as sets and dicts, with no bitmap or cursor, so a test
can also drive it by hand.
"""

from __future__ import annotations

import netaddr

from dualstack_ipam.cluster.config import ClusterConfig
from dualstack_ipam.net import IPFamily, usable_span

__all__ = ["ReferenceModel"]


def _overlaps(a: netaddr.IPNetwork, b: netaddr.IPNetwork) -> bool:
    return bool(a.version == b.version and a.first <= b.last and b.first <= a.last)


class ReferenceModel:
    """A cluster's IP allocations in plain dicts, and the rules they obey.

    Knows nothing of bitmaps or cursors: it records what each node and each
    Service key holds, says how much room each family has left, and checks
    every new allocation against the rules of the API contract, raising
    ``AssertionError`` with the reason.

    >>> model = ReferenceModel(ClusterConfig("10.244.0.0/30", "10.96.0.0/30", node_mask_ipv4=31))
    >>> model.node_room("IPv4"), model.service_room("IPv4")
    (2, 2)
    >>> model.add_node("a", (netaddr.IPNetwork("10.244.0.0/31"),))
    >>> model.add_node("b", (netaddr.IPNetwork("10.244.0.0/31"),))  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    AssertionError: node 'b' got 10.244.0.0/31, which node 'a' holds...
    """

    def __init__(self, config: ClusterConfig) -> None:
        self.config = config
        self.nodes: dict[str, tuple[netaddr.IPNetwork, ...]] = {}
        self.services: dict[str, tuple[netaddr.IPAddress, ...]] = {}
        self._cidr_owner: dict[netaddr.IPNetwork, str] = {}
        self._ip_owner: dict[netaddr.IPAddress, str] = {}
        self.reserved_cidrs: set[netaddr.IPNetwork] = set()
        """Node CIDRs reserved (``reserve``), never handed out."""
        self.reserved_ips: set[netaddr.IPAddress] = set()
        """Service addresses reserved (``reserve``), never handed out."""
        self.cluster_ranges: dict[IPFamily, list[netaddr.IPNetwork]] = {
            family: [config.cluster_cidr(family)] for family in config.families
        }
        """Each family's cluster CIDRs: the configuration's, then those added."""
        self.service_ranges: dict[IPFamily, list[netaddr.IPNetwork]] = {
            family: [config.service_cidr(family)] for family in config.service_families
        }
        """Each family's Service ranges: the configuration's, then those added."""

    # -- ranges

    def range_refusal(self, cidr: netaddr.IPNetwork, *, nodes: bool) -> str | None:
        """Why ``add_range(cidr)`` must be refused (None: it must succeed).

        Complexity:
            O(k) in the family's ranges.
        """
        family = IPFamily.IPv4 if cidr.version == 4 else IPFamily.IPv6
        ranges = self.cluster_ranges if nodes else self.service_ranges
        if family not in ranges:
            return f"no {family} range"
        taken = list(ranges[family])
        if nodes:
            if cidr.prefixlen > self.config.node_mask(family):
                return "longer than the node mask"
            if family in self.config.service_families:
                taken.append(self.config.service_cidr(family))
        if any(_overlaps(cidr, other) for other in taken):
            return "overlap"
        return None

    def add_range(self, cidr: netaddr.IPNetwork, *, nodes: bool) -> None:
        """Record a range added to the node (``nodes``) or the Service allocator.

        Raises:
            AssertionError: the range should have been refused.

        Complexity:
            O(k) in the family's ranges.
        """
        why = self.range_refusal(cidr, nodes=nodes)
        assert why is None, f"add_range({cidr}) should have been refused: {why}"
        family = IPFamily.IPv4 if cidr.version == 4 else IPFamily.IPv6
        (self.cluster_ranges if nodes else self.service_ranges)[family].append(cidr)

    def node_capacity(self, family: IPFamily | str) -> int:
        """Node CIDRs of ``family`` in every range (the Service set-aside excluded).

        Complexity:
            O(k) in the family's ranges.
        """
        fam = IPFamily(family)
        mask = self.config.node_mask(fam)
        added = self.cluster_ranges[fam][1:]
        extra: int = sum(1 << (mask - int(cidr.prefixlen)) for cidr in added)
        return int(self.config.node_capacity(fam)) + extra

    # -- nodes

    def node_room(self, family: IPFamily | str) -> int:
        """Node CIDRs of ``family`` still free (Service set-aside and reservations excluded).

        Complexity:
            O(n) in the recorded and reserved node CIDRs.
        """
        version = IPFamily(family).version
        held = sum(1 for cidr in self._cidr_owner if cidr.version == version)
        reserved = sum(1 for cidr in self.reserved_cidrs if cidr.version == version)
        return self.node_capacity(family) - held - reserved

    def set_aside(self, cidr: netaddr.IPNetwork) -> bool:
        """Whether the node CIDR ``cidr`` overlaps its family's Service range.

        Complexity:
            O(1).
        """
        family = IPFamily.IPv4 if cidr.version == 4 else IPFamily.IPv6
        if family not in self.config.service_families:
            return False
        return _overlaps(cidr, self.config.service_cidr(family))

    def cidr_owner(self, cidr: netaddr.IPNetwork) -> str | None:
        """The node holding ``cidr``, or None.

        Complexity:
            O(1).
        """
        return self._cidr_owner.get(cidr)

    def can_add_node(self) -> bool:
        """Whether a new node must get CIDRs (every family has room).

        Complexity:
            O(n) in the recorded node CIDRs.
        """
        return all(self.node_room(family) > 0 for family in self.config.families)

    def add_node(
        self, node: str, cidrs: tuple[netaddr.IPNetwork, ...], *, partial: bool = False
    ) -> None:
        """Check and record the pod CIDRs ``node`` was given (``partial``: some
        families only, as ``occupy`` may record; still in the config's order).

        Raises:
            AssertionError: the CIDRs break a rule (the message says which).

        Complexity:
            O(1) per CIDR.
        """
        config = self.config
        assert node not in self.nodes, f"node {node!r} added twice"
        if partial:
            families = tuple(f for f in config.families if f.version in {c.version for c in cidrs})
        else:
            families = config.families
        assert len(cidrs) == len(families), f"node {node!r} got {cidrs}"
        for cidr, family in zip(cidrs, families, strict=True):
            assert cidr.version == family.version, f"node {node!r}: {cidr} is not {family}"
            assert cidr.prefixlen == config.node_mask(family), f"node {node!r}: mask of {cidr}"
            inside = any(cidr in each for each in self.cluster_ranges[family])
            assert inside, f"node {node!r}: {cidr} outside the cluster"
            assert cidr == cidr.cidr, f"node {node!r}: {cidr} has host bits"
            if family in config.service_families:
                service = config.service_cidr(family)
                assert not _overlaps(cidr, service), f"node {node!r}: {cidr} is set aside"
            assert cidr not in self.reserved_cidrs, f"node {node!r} got {cidr}, which is reserved"
            owner = self._cidr_owner.get(cidr)
            assert owner is None, f"node {node!r} got {cidr}, which node {owner!r} holds"
        self.nodes[node] = cidrs
        for cidr in cidrs:
            self._cidr_owner[cidr] = node

    def remove_node(self, node: str) -> bool:
        """Forget ``node``; True if it held CIDRs.

        Complexity:
            O(1) per CIDR.
        """
        cidrs = self.nodes.pop(node, None)
        for cidr in cidrs or ():
            del self._cidr_owner[cidr]
        return cidrs is not None

    # -- Services

    def service_room(self, family: IPFamily | str) -> int:
        """Addresses of ``family``'s Service range still free.

        Complexity:
            O(n) in the recorded addresses.
        """
        fam = IPFamily(family)
        usable = sum(usable_span(fam, c.prefixlen)[1] for c in self.service_ranges[fam])
        held = sum(1 for ip in self._ip_owner if ip.version == fam.version)
        return usable - held - sum(1 for ip in self.reserved_ips if ip.version == fam.version)

    def ip_owner(self, ip: netaddr.IPAddress) -> str | None:
        """The Service key holding ``ip``, or None.

        Complexity:
            O(1).
        """
        return self._ip_owner.get(ip)

    def add_service(self, key: str, addresses: tuple[netaddr.IPAddress, ...]) -> None:
        """Check and record the cluster IPs Service ``key`` was given.

        Raises:
            AssertionError: the addresses break a rule (the message says which).

        Complexity:
            O(1) per address.
        """
        assert key not in self.services, f"Service {key!r} added twice"
        assert 1 <= len(addresses) <= 2, f"Service {key!r} got {addresses}"
        families = {ip.version for ip in addresses}
        assert len(families) == len(addresses), f"Service {key!r}: one family twice: {addresses}"
        for ip in addresses:
            family = IPFamily.IPv4 if ip.version == 4 else IPFamily.IPv6
            assert family in self.config.service_families, f"{key!r}: {ip} of no Service range"
            inside = [cidr for cidr in self.service_ranges[family] if ip in cidr]
            assert inside, f"Service {key!r}: {ip} is outside {self.service_ranges[family]}"
            cidr = inside[0]
            assert ip != cidr.network, f"Service {key!r} got the network address {ip}"
            if family is IPFamily.IPv4:
                assert ip != cidr.broadcast, f"Service {key!r} got the broadcast address {ip}"
            assert ip not in self.reserved_ips, f"Service {key!r} got {ip}, which is reserved"
            owner = self._ip_owner.get(ip)
            assert owner is None, f"Service {key!r} got {ip}, which {owner!r} holds"
        self.services[key] = addresses
        for ip in addresses:
            self._ip_owner[ip] = key

    def remove_service(self, key: str) -> bool:
        """Forget Service ``key``; True if it held addresses.

        Complexity:
            O(1) per address.
        """
        addresses = self.services.pop(key, None)
        for ip in addresses or ():
            del self._ip_owner[ip]
        return addresses is not None
