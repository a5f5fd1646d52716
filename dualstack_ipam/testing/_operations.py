"""The state machine's controller-operation rules: bulk load, reserved space,
reconcile, growing a family.

What a controller does besides creating and deleting (api-durable.md,
"Controller operations"), played by
:class:`~dualstack_ipam.testing.stateful.DualStackClusterMachine` through
:class:`ControllerOperationRules`: a restarting controller bulk-loads a
Service's addresses with ``occupy``; a range is reserved and unreserved
(refused over held space); an allocator drifts from the truth (a lost
release, a lost allocation) and ``reconcile`` repairs it; a family grows
by another range (``add_range``: refused for a family the cluster lacks and
for overlap). Each rule checks
the allocator against the :class:`~dualstack_ipam.testing.stateful.ReferenceModel`,
and that a refused call changed nothing.
"""

from __future__ import annotations

from typing import Any

import netaddr
from hypothesis.stateful import precondition, rule

from dualstack_ipam.cluster.config import ClusterConfig
from dualstack_ipam.cluster.nodes import NodeCIDRAllocator
from dualstack_ipam.errors import AlreadyAllocatedError, InvalidConfigError, PoolExhaustedError
from dualstack_ipam.net import IPFamily, make_address, usable_span
from dualstack_ipam.services.allocator import ServiceIPAllocator

from ._common import st
from ._model import ReferenceModel

__all__ = ["ControllerOperationRules"]


class ControllerOperationRules:
    """The controller-operation rules of the cluster state machine (a mixin).

    The machine sets ``config``, ``model``, ``services``, ``node_allocator``,
    ``service_allocator``, ``_reserving`` (False once an allocator said
    reserving is "not supported") and ``_growing`` (the same for
    ``add_range``) when it starts, and gives fresh names
    (``_fresh``) and the hooks ``on_service_occupied`` / ``on_reconciled`` /
    ``on_range_added``.
    """

    config: ClusterConfig
    model: ReferenceModel
    services: dict[str, dict[str, Any]]
    node_allocator: NodeCIDRAllocator
    service_allocator: ServiceIPAllocator
    _reserving: bool
    _growing: bool

    def _fresh(self, prefix: str) -> str:
        raise NotImplementedError

    def on_service_occupied(self, service: dict[str, Any]) -> None:
        raise NotImplementedError

    def on_reconciled(self) -> None:
        raise NotImplementedError

    def on_range_added(self, nodes: bool, cidr: netaddr.IPNetwork) -> None:
        raise NotImplementedError

    @rule(data=st.data())
    def occupy_service(self, data: st.DataObject) -> None:
        """A restarting controller bulk-loads a Service's addresses with ``occupy``.

        Refused, naming the holder, when another key holds one, and when one
        is reserved; nothing changes then.
        """
        families = [f for f in self.config.service_families if self._usable(f)]
        if not families:
            return
        count = data.draw(st.integers(1, len(families)), label="families")
        chosen = data.draw(st.permutations(families), label="order")[:count]
        ips = tuple(self._draw_service_ip(data, family) for family in chosen)
        name = self._fresh("occupied")
        key = f"default/{name}"
        before = self.service_allocator.snapshot()
        owners = {self.model.ip_owner(ip) for ip in ips} - {None}
        if owners or set(ips) & self.model.reserved_ips:
            error = None
            try:
                self.service_allocator.occupy(key, [str(ip) for ip in ips])
            except AlreadyAllocatedError as exc:
                error = exc
            assert error is not None, f"occupy {ips} for {key!r} was not refused"
            if owners and not set(ips) & self.model.reserved_ips:
                assert error.owner in owners, f"{error} names {error.owner!r}, not {owners}"
            assert self.service_allocator.snapshot() == before, "a refused occupy changed state"
            return
        assert self.service_allocator.occupy(key, [str(ip) for ip in ips]) == ips
        assert self.service_allocator.occupy(key, [str(ip) for ip in ips]) == ips, "not a no-op"
        self.model.add_service(key, ips)
        policy = "SingleStack" if len(ips) == 1 else "RequireDualStack"
        texts = [str(ip) for ip in ips]
        spec = {"clusterIP": texts[0], "clusterIPs": texts, "ipFamilyPolicy": policy}
        manifest = {"metadata": {"name": name}, "spec": spec}
        service = self.fresh_service_allocator().allocate_service(manifest)
        self.services[key] = service
        self.on_service_occupied(service)

    def fresh_service_allocator(self) -> ServiceIPAllocator:
        """An empty sequential Service allocator with the model's ranges (added ones too).

        Complexity:
            O(k) for k ranges, plus building the pools.
        """
        fresh = ServiceIPAllocator(self.config, strategy="sequential")
        for ranges in self.model.service_ranges.values():
            for cidr in ranges[1:]:
                fresh.add_range(cidr)
        return fresh

    def _usable(self, family: IPFamily) -> int:
        return sum(usable_span(family, c.prefixlen)[1] for c in self.model.service_ranges[family])

    def _service_range(self, data: st.DataObject, family: IPFamily) -> netaddr.IPNetwork:
        """One of ``family``'s Service ranges with a usable address."""
        ranges = [
            c for c in self.model.service_ranges[family] if usable_span(family, c.prefixlen)[1]
        ]
        if len(ranges) == 1:
            return ranges[0]
        return data.draw(st.sampled_from(ranges), label=f"{family} range")

    def _draw_service_ip(self, data: st.DataObject, family: IPFamily) -> netaddr.IPAddress:
        cidr = self._service_range(data, family)
        first, usable = usable_span(family, cidr.prefixlen)
        offset = data.draw(st.integers(0, usable - 1), label=f"{family} offset")
        return make_address(int(cidr.first) + first + offset, family)

    def _service_span(self, data: st.DataObject) -> tuple[str, set[netaddr.IPAddress]] | None:
        families = [f for f in self.config.service_families if self._usable(f)]
        if not families:
            return None
        family = data.draw(st.sampled_from(families), label="family")
        cidr = self._service_range(data, family)
        first, usable = usable_span(family, cidr.prefixlen)
        start = data.draw(st.integers(0, usable - 1), label="start")
        stop = min(usable, start + data.draw(st.integers(1, 3), label="length"))
        ips = {make_address(int(cidr.first) + first + i, family) for i in range(start, stop)}
        return f"{min(ips)}-{max(ips)}", ips

    def _node_span(self, data: st.DataObject) -> tuple[str, set[netaddr.IPNetwork]]:
        family = data.draw(st.sampled_from(self.config.families), label="family")
        ranges = self.model.cluster_ranges[family]
        cidr, mask = ranges[0], self.config.node_mask(family)
        if len(ranges) > 1:
            cidr = data.draw(st.sampled_from(ranges), label=f"{family} range")
        subnets = 1 << min(mask - cidr.prefixlen, 16)
        start = data.draw(st.integers(0, subnets - 1), label="start")
        stop = min(subnets, start + data.draw(st.integers(1, 2), label="length"))
        shift = family.width - mask
        nets = {
            netaddr.IPNetwork(f"{make_address(int(cidr.first) + (i << shift), family)}/{mask}")
            for i in range(start, stop)
        }
        low, high = min(nets), max(nets)
        return f"{low.network}-{make_address(int(high.last), family)}", nets

    def _unsupported(self, alloc: Any, call: Any, before: dict[str, Any]) -> bool:
        """Run ``call``; True if the allocator does not support it (nothing changed)."""
        try:
            call()
        except InvalidConfigError as exc:
            if "not supported" not in str(exc):
                raise
            assert alloc.snapshot() == before, "a refused reserve changed state"
            self._reserving = False
            return True
        return False

    @precondition(lambda self: self._reserving)
    @rule(data=st.data(), nodes=st.booleans(), reason=st.sampled_from(["", "racks"]))
    def reserve_space(self, data: st.DataObject, nodes: bool, reason: str) -> None:
        """A range is reserved: refused over held space (or the Service set-aside)."""
        alloc: Any = self.node_allocator if nodes else self.service_allocator
        span = self._node_span(data) if nodes else self._service_span(data)
        if span is None:
            return
        text, items = span
        if nodes:
            taken = any(self.model.cidr_owner(n) or self.model.set_aside(n) for n in items)
            reserved: set[Any] = self.model.reserved_cidrs
        else:
            taken = any(self.model.ip_owner(ip) for ip in items)
            reserved = self.model.reserved_ips
        before = alloc.snapshot()
        result: list[int] = []
        try:
            if self._unsupported(alloc, lambda: result.append(alloc.reserve(text, reason)), before):
                return
        except AlreadyAllocatedError:
            assert taken, f"reserve({text!r}) refused, but nothing there is held"
            assert alloc.snapshot() == before, "a refused reserve changed state"
            return
        assert not taken, f"reserve({text!r}) reserved held space"
        assert result == [len(items - reserved)], (text, result)
        reserved |= items

    @precondition(lambda self: self._reserving)
    @rule(data=st.data(), nodes=st.booleans())
    def unreserve_space(self, data: st.DataObject, nodes: bool) -> None:
        """A range is unreserved: only its reserved slots are freed."""
        alloc: Any = self.node_allocator if nodes else self.service_allocator
        span = self._node_span(data) if nodes else self._service_span(data)
        if span is None:
            return
        text, items = span
        reserved: set[Any] = self.model.reserved_cidrs if nodes else self.model.reserved_ips
        before = alloc.snapshot()
        result: list[int] = []
        try:
            if self._unsupported(alloc, lambda: result.append(alloc.unreserve(text)), before):
                return
        except InvalidConfigError:
            assert nodes, text
            assert any(self.model.set_aside(n) for n in items), text
            assert alloc.snapshot() == before, "a refused unreserve changed state"
            return
        assert result == [len(items & reserved)], (text, result)
        reserved -= items

    @precondition(lambda self: self._growing)
    @rule(data=st.data(), nodes=st.booleans())
    def add_range(self, data: st.DataObject, nodes: bool) -> None:
        """A family grows by another range, drawn near the ranges it has.

        Refused (nothing changes) for a family the allocator lacks, for
        overlap with a range of the family (or, for node CIDRs, with the
        Service range) and a node range longer than the node mask;
        otherwise the new range's room is the model's from now on.
        """
        alloc: Any = self.node_allocator if nodes else self.service_allocator
        ranges = self.model.cluster_ranges if nodes else self.model.service_ranges
        if sum(len(each) - 1 for each in ranges.values()) >= 3:
            return  # keep clusters small: exhaustion must stay reachable
        family = data.draw(st.sampled_from(list(IPFamily)), label="family")
        if family in ranges:
            anchor = data.draw(st.sampled_from(ranges[family]), label="near")
            if nodes:
                mask = self.config.node_mask(family)
                prefix = mask - data.draw(st.integers(-1, 2), label="subnets")
            else:
                prefix = family.width - data.draw(st.integers(2, 5), label="host bits")
            prefix = min(max(prefix, 0), family.width)
            size = 1 << (family.width - prefix)
            step = data.draw(st.integers(-3, 6), label="step")
            start = (int(anchor.first) // size + step) * size
            start = min(max(start, 0), (1 << family.width) - size)
            cidr = netaddr.IPNetwork(f"{make_address(start, family)}/{prefix}")
        else:  # the allocator has no range of that family: refused
            cidr = netaddr.IPNetwork("10.200.0.0/24" if family is IPFamily.IPv4 else "fd99::/120")
        why = self.model.range_refusal(cidr, nodes=nodes)
        before = alloc.snapshot()
        refused = ""
        try:
            added = alloc.add_range(str(cidr))
        except InvalidConfigError as exc:
            refused = str(exc)
        if refused:
            assert alloc.snapshot() == before, "a refused add_range changed state"
            if "not supported" in refused:
                self._growing = False
                return
            assert why is not None, f"add_range({cidr}) refused: {refused}"
            assert repr(str(cidr)) in refused, f"the message does not quote it: {refused}"
            return
        assert why is None, f"add_range({cidr}) accepted, but: {why}"
        assert added == cidr
        self.model.add_range(cidr, nodes=nodes)
        assert alloc.ranges(family) == ranges[family]
        self.on_range_added(nodes, cidr)

    @rule(data=st.data(), nodes=st.booleans(), grace=st.integers(1, 3))
    def drift_and_reconcile(self, data: st.DataObject, nodes: bool, grace: int) -> None:
        """The allocator lost a release and an allocation; ``reconcile`` repairs both.

        A key the truth has is released behind the model's back (missing),
        and a key the truth lacks takes a free address (leaked). A
        report-only call changes nothing; ``grace`` repairing calls release
        the leak and restore the missing key, and the report says so.
        """
        alloc: Any = self.node_allocator if nodes else self.service_allocator
        truth: dict[str, list[str]] = {
            key: [str(a) for a in held]
            for key, held in (self.model.nodes if nodes else self.model.services).items()
        }
        lost = data.draw(st.sampled_from(sorted(truth)), label="lost") if truth else None
        if lost is not None:
            alloc.release(lost)
        leaked = self._fresh("leaked")
        if not nodes:
            leaked = f"default/{leaked}"
        try:
            taken = alloc.allocate(leaked)
        except PoolExhaustedError:
            taken = None
        before = alloc.snapshot()
        report = alloc.reconcile(truth)
        assert alloc.snapshot() == before, "a report-only reconcile changed state"
        assert set(report.missing) == ({lost} if lost else set()), report
        assert set(report.leaked) == ({leaked} if taken is not None else set()), report
        for _ in range(grace):
            report = alloc.reconcile(truth, repair=True, leak_grace=grace)
        assert report.ok, report
        assert set(report.released) == ({leaked} if taken is not None else set()), report
        held = dict(alloc.items())
        assert held == dict(self.model.nodes if nodes else self.model.services), "not repaired"
        self.on_reconciled()
