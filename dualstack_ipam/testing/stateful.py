"""Check your controller against dualstack_ipam: a reference model and a state machine.

:class:`DualStackClusterMachine` is a Hypothesis ``RuleBasedStateMachine``
that plays a cluster's life: nodes join and leave, Services are created
(every kind :func:`~dualstack_ipam.testing.strategies.service_manifests`
draws), edited field by field, deleted, refused when
invalid, and the controller restarts from its snapshots. Our allocators do
the allocating and are checked, after every step, against
:class:`ReferenceModel`, which knows the rules in plain sets and dicts.

Your controller sees every step through hooks; override the ones you need
(all are no-ops by default)::

    class MyControllerMachine(DualStackClusterMachine):
        def setup_controller(self, config):      # once, before any step
            self.ctl = MyController(config)
        def on_node_added(self, node, cidrs):    # cidrs: one IPNetwork per family
            self.ctl.node_added(node, cidrs)
        def on_node_removed(self, node): ...
        def on_service_created(self, service): ...   # the manifest with its IPs
        def on_service_updated(self, old, new): ...
        def on_service_deleted(self, service): ...
        def on_restart(self): ...                # allocators were restored
        def check_controller(self):              # after every step
            assert self.ctl.routes() == dict(self.node_allocator.items())

    TestMyController = MyControllerMachine.TestCase

In the hooks, ``self.config``, ``self.node_allocator``,
``self.service_allocator``, ``self.model`` and ``self.services`` (key ->
the manifest as created) describe the cluster. Override ``configs`` (a
strategy of :class:`~dualstack_ipam.ClusterConfig`, with at least one
Service range) to test your own cluster shapes; the default keeps clusters
small (at most 16 nodes, 62 addresses per Service range) so that
exhaustion happens within a run. A subclass that defines ``__init__`` must
call ``super().__init__()``.
"""

from __future__ import annotations

import json
import random
from typing import Any, ClassVar

import netaddr

from dualstack_ipam import service_key
from dualstack_ipam.cluster.config import ClusterConfig
from dualstack_ipam.cluster.nodes import NodeCIDRAllocator
from dualstack_ipam.errors import IPAMError, PoolExhaustedError, ServiceValidationError
from dualstack_ipam.net import IPFamily, usable_span
from dualstack_ipam.services.allocator import ServiceIPAllocator

from ._common import st
from ._manifests import context
from ._updates import edit_service
from .strategies import cluster_configs, invalid_service_manifests, service_manifests

try:
    from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule
except ImportError as exc:  # pragma: no cover - _common already said it
    raise ImportError("dualstack_ipam.testing.stateful needs Hypothesis") from exc

__all__ = ["DualStackClusterMachine", "ReferenceModel"]


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

    # -- nodes

    def node_room(self, family: IPFamily | str) -> int:
        """Node CIDRs of ``family`` still free (Service set-aside excluded).

        Complexity:
            O(n) in the recorded node CIDRs.
        """
        version = IPFamily(family).version
        held = sum(1 for cidr in self._cidr_owner if cidr.version == version)
        return self.config.node_capacity(family) - held

    def can_add_node(self) -> bool:
        """Whether a new node must get CIDRs (every family has room).

        Complexity:
            O(n) in the recorded node CIDRs.
        """
        return all(self.node_room(family) > 0 for family in self.config.families)

    def add_node(self, node: str, cidrs: tuple[netaddr.IPNetwork, ...]) -> None:
        """Check and record the pod CIDRs ``node`` was given.

        Raises:
            AssertionError: the CIDRs break a rule (the message says which).

        Complexity:
            O(1) per CIDR.
        """
        config = self.config
        assert node not in self.nodes, f"node {node!r} added twice"
        assert len(cidrs) == len(config.families), f"node {node!r} got {cidrs}"
        for cidr, family in zip(cidrs, config.families, strict=True):
            assert cidr.version == family.version, f"node {node!r}: {cidr} is not {family}"
            assert cidr.prefixlen == config.node_mask(family), f"node {node!r}: mask of {cidr}"
            assert cidr in config.cluster_cidr(family), f"node {node!r}: {cidr} outside the cluster"
            assert cidr == cidr.cidr, f"node {node!r}: {cidr} has host bits"
            if family in config.service_families:
                service = config.service_cidr(family)
                assert not _overlaps(cidr, service), f"node {node!r}: {cidr} is set aside"
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
        usable = usable_span(fam, self.config.service_cidr(fam).prefixlen)[1]
        return usable - sum(1 for ip in self._ip_owner if ip.version == fam.version)

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
            cidr = self.config.service_cidr(family)
            assert ip in cidr, f"Service {key!r}: {ip} is outside {cidr}"
            assert ip != cidr.network, f"Service {key!r} got the network address {ip}"
            if family is IPFamily.IPv4:
                assert ip != cidr.broadcast, f"Service {key!r} got the broadcast address {ip}"
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


class DualStackClusterMachine(RuleBasedStateMachine):
    """A cluster's life, played on dualstack_ipam; subclass it to test your controller.

    Run as is, it tests dualstack_ipam itself against :class:`ReferenceModel`.
    The hooks below are the whole interface for subclasses; see the module
    docstring for an example.
    """

    configs: ClassVar[st.SearchStrategy[ClusterConfig]] = cluster_configs(
        min_service_ranges=1, max_nodes=16, max_service_ips=62
    )
    """The clusters to play; override with any strategy of configs with a Service range."""

    # -------------------------------------------------------------- hooks

    def setup_controller(self, config: ClusterConfig) -> None:
        """Create your controller for ``config``; called once, before any step."""

    def on_node_added(self, node: str, cidrs: tuple[netaddr.IPNetwork, ...]) -> None:
        """``node`` joined and got ``cidrs`` (one per family, primary first)."""

    def on_node_removed(self, node: str) -> None:
        """``node`` left; its CIDRs are free again."""

    def on_service_created(self, service: dict[str, Any]) -> None:
        """A Service was created: ``service`` is the manifest with its IP fields."""

    def on_service_updated(self, old: dict[str, Any], new: dict[str, Any]) -> None:
        """A Service was edited (any field; it may have gained or lost a family)."""

    def on_service_deleted(self, service: dict[str, Any]) -> None:
        """A Service was deleted (``service`` as last created or updated)."""

    def on_restart(self) -> None:
        """The allocators were rebuilt from JSON snapshots (a controller restart)."""

    def check_controller(self) -> None:
        """Assert that your controller agrees with the allocators; after every step."""

    # -------------------------------------------------------------- machinery

    def __init__(self) -> None:
        super().__init__()
        self._started = False
        self._count = 0

    @initialize(data=st.data())
    def _start(self, data: st.DataObject) -> None:
        config = data.draw(self.configs, label="config")
        if not isinstance(config, ClusterConfig) or not config.service_families:
            raise TypeError(f"configs must give ClusterConfigs with a Service range: {config!r}")
        self.config = config
        self.node_allocator = NodeCIDRAllocator(
            config, strategy=data.draw(st.sampled_from(["next-fit", "lowest"]), label="nodes")
        )
        self.service_allocator = ServiceIPAllocator(
            config,
            strategy=data.draw(st.sampled_from(["random", "sequential"]), label="services"),
            rng=data.draw(st.randoms(use_true_random=True), label="rng"),
        )
        self.model = ReferenceModel(config)
        self.services: dict[str, dict[str, Any]] = {}
        self.setup_controller(config)
        self._started = True

    def _fresh(self, prefix: str) -> str:
        self._count += 1
        return f"{prefix}-{self._count}"

    @rule()
    def add_node(self) -> None:
        """A node joins: it gets CIDRs exactly when every family has room."""
        node = self._fresh("node")
        if not self.model.can_add_node():
            before = self.node_allocator.snapshot()
            try:
                self.node_allocator.allocate(node)
            except PoolExhaustedError:
                assert self.node_allocator.snapshot() == before, "a failed allocate changed state"
                return
            raise AssertionError(f"{node!r} got CIDRs although a family is full")
        cidrs = self.node_allocator.allocate(node)
        self.model.add_node(node, cidrs)
        assert self.node_allocator.allocate(node) == cidrs, "allocate is not idempotent"
        self.on_node_added(node, cidrs)

    @precondition(lambda self: bool(self.model.nodes))
    @rule(data=st.data())
    def remove_node(self, data: st.DataObject) -> None:
        """A node leaves."""
        node = data.draw(st.sampled_from(sorted(self.model.nodes)), label="node")
        assert self.node_allocator.release(node)
        self.model.remove_node(node)
        assert not self.node_allocator.release(node)
        self.on_node_removed(node)

    @rule(data=st.data())
    def create_service(self, data: st.DataObject) -> None:
        """A valid Service of any kind is created."""
        manifest = data.draw(service_manifests(allocator=self.service_allocator), label="manifest")
        key = service_key(manifest)
        if key in self.services:  # a headless or ExternalName Service holds no address
            manifest["metadata"]["name"] = self._fresh(manifest["metadata"]["name"][:50])
            key = service_key(manifest)
        before = self.service_allocator.snapshot()
        try:
            service = self.service_allocator.allocate_service(manifest)
        except PoolExhaustedError:
            assert self.service_allocator.snapshot() == before, "a failed create changed state"
            full = [f for f in self.config.service_families if self.model.service_room(f) == 0]
            assert full, f"PoolExhaustedError with room in every range for {manifest}"
            return
        self._record(key, manifest, service)
        self.services[key] = service
        self.on_service_created(service)

    def _record(self, key: str, manifest: dict[str, Any], service: dict[str, Any]) -> None:
        held = self.service_allocator.get(key)
        spec = service["spec"]
        if spec.get("type") == "ExternalName" or spec.get("clusterIP") == "None":
            assert held is None, f"{key!r} holds {held} but gets no address"
            return
        assert held is not None, f"{key!r} got {spec.get('clusterIPs')} but holds nothing"
        assert [str(ip) for ip in held] == spec["clusterIPs"], (held, spec)
        families = ["IPv4" if ip.version == 4 else "IPv6" for ip in held]
        assert families == spec["ipFamilies"], (held, spec)
        asked = manifest.get("spec", {}).get("clusterIP")
        if asked:
            assert str(netaddr.IPAddress(asked)) == spec["clusterIP"], (asked, spec)
        self.model.add_service(key, held)

    @rule(data=st.data())
    def create_invalid_service(self, data: st.DataObject) -> None:
        """An invalid Service is refused with the right field, and nothing changes."""
        bad = data.draw(invalid_service_manifests(allocator=self.service_allocator), label="bad")
        before = self.service_allocator.snapshot()
        error = None
        try:
            self.service_allocator.allocate_service(bad.manifest)
        except ServiceValidationError as exc:
            error = exc
        assert error is not None, f"accepted an invalid manifest ({bad.field}): {bad.manifest}"
        assert error.field == bad.field, f"refused at {error.field!r}, expected {bad.field!r}"
        assert self.service_allocator.snapshot() == before, "a refused manifest changed state"

    @precondition(lambda self: bool(self.services))
    @rule(data=st.data())
    def update_service(self, data: st.DataObject) -> None:
        """A Service is edited: one field changes, as ``kubectl edit`` sends it.

        A refusal must name the changed field (or one Kubernetes ties to
        it) and change nothing; what is accepted must load back unchanged
        into a fresh allocator, as after a controller restart.
        """
        key = data.draw(st.sampled_from(sorted(self.services)), label="service")
        old = self.services[key]
        cluster = context(None, self.service_allocator)
        edit = data.draw(st.composite(edit_service)(old, cluster), label="edit")
        before = self.service_allocator.snapshot()
        refused: IPAMError | None = None
        try:
            new = self.service_allocator.update_service(old, edit.manifest)
        except (PoolExhaustedError, ServiceValidationError) as exc:
            refused = exc
        if refused is not None:
            assert self.service_allocator.snapshot() == before, "a failed update changed state"
            field = getattr(refused, "field", None)
            assert field is None or field in edit.fields, f"{edit.change}: {refused}"
            return
        held, was = self.service_allocator.get(key), self.model.services.get(key)
        if held and was:
            assert held[0] == was[0], "the primary IP changed"
        fresh = ServiceIPAllocator(self.config, strategy="sequential")
        assert fresh.allocate_service(new) == new, f"{new} does not load back"
        self.model.remove_service(key)
        self._record(key, {}, new)
        self.services[key] = new
        self.on_service_updated(old, new)

    @precondition(lambda self: bool(self.services))
    @rule(data=st.data())
    def delete_service(self, data: st.DataObject) -> None:
        """A Service is deleted; its addresses are free again."""
        key = data.draw(st.sampled_from(sorted(self.services)), label="service")
        service = self.services.pop(key)
        assert self.service_allocator.release_service(service) == self.model.remove_service(key)
        self.on_service_deleted(service)

    @rule(seed=st.integers(0, 2**32 - 1))
    def restart(self, seed: int) -> None:
        """The controller restarts: both allocators are rebuilt from JSON snapshots."""
        nodes = json.loads(json.dumps(self.node_allocator.snapshot()))
        services = json.loads(json.dumps(self.service_allocator.snapshot()))
        self.node_allocator = NodeCIDRAllocator.restore(nodes)
        self.service_allocator = ServiceIPAllocator.restore(services, rng=random.Random(seed))
        assert self.node_allocator.snapshot() == nodes
        assert self.service_allocator.snapshot() == services
        self.on_restart()

    @invariant()
    def _agrees_with_model(self) -> None:
        if not self._started:
            return
        self.node_allocator._check_invariants()
        self.service_allocator._check_invariants()
        assert dict(self.node_allocator.items()) == self.model.nodes
        assert dict(self.service_allocator.items()) == self.model.services
        for family in self.config.families:
            assert self.node_allocator.free(family) == self.model.node_room(family), family
        for family in self.config.service_families:
            assert self.service_allocator.free(family) == self.model.service_room(family), family
        self.check_controller()
