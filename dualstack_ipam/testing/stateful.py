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

The allocators the machine drives come from two factories, so that the
system under test can be your own allocator (a subclass of ours that your
controller allocates through, or a durable cluster's side) rather than a
mirror of the machine's::

    class MyAllocatorMachine(DualStackClusterMachine):
        def make_node_allocator(self, config):
            return MyController(config).nodes      # a NodeCIDRAllocator (or subclass)
        def make_service_allocator(self, config):
            return MyController(config).services   # a ServiceIPAllocator (or subclass)

The defaults build our classes with a drawn ``strategy`` (and ``rng``):
``self.node_strategy``, ``self.service_strategy``, ``self.service_rng``.
A restart rebuilds them from their JSON snapshots through
``restore_node_allocator(data)`` / ``restore_service_allocator(data, rng)``
(our classes' ``restore`` by default; override to reopen your store). An
allocator that refuses ``reserve`` with an ``InvalidConfigError`` saying it
is "not supported" (a durable side, for now) is allowed to: the machine
checks that nothing changed and goes on; the same for ``add_range``.

Besides nodes and Services coming and going, the machine bulk-loads keys
with ``occupy``, reserves and unreserves space (never handed out
afterwards), drifts an allocator from the truth (a lost release, a lost
allocation) before repairing it with ``reconcile``, and grows a family with
another cluster CIDR or Service range (``add_range``).

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

import contextlib
import json
import random
from typing import Any, ClassVar

import netaddr

from dualstack_ipam import service_key
from dualstack_ipam.cluster.config import ClusterConfig
from dualstack_ipam.cluster.nodes import NodeCIDRAllocator
from dualstack_ipam.errors import (
    IPAMError,
    PoolExhaustedError,
    ServiceValidationError,
)
from dualstack_ipam.services.allocator import ServiceIPAllocator

from ._common import st
from ._manifests import context
from ._model import ReferenceModel
from ._operations import ControllerOperationRules
from ._updates import edit_service
from .strategies import cluster_configs, invalid_service_manifests, service_manifests

try:
    from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule
except ImportError as exc:  # pragma: no cover - _common already said it
    raise ImportError("dualstack_ipam.testing.stateful needs Hypothesis") from exc

__all__ = ["DualStackClusterMachine", "ReferenceModel"]


class DualStackClusterMachine(ControllerOperationRules, RuleBasedStateMachine):
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

    def on_service_occupied(self, service: dict[str, Any]) -> None:
        """A Service's addresses were bulk-loaded with ``occupy`` (``service`` as created).

        By default the same as :meth:`on_service_created`: to a controller
        that watches Services, one appeared.
        """
        self.on_service_created(service)

    def on_reconciled(self) -> None:
        """An allocator drifted from the truth and ``reconcile`` repaired it."""

    def on_range_added(self, nodes: bool, cidr: netaddr.IPNetwork) -> None:
        """A family grew by ``cidr``: a cluster CIDR (``nodes``) or a Service range."""

    # -------------------------------------------------------------- factories

    def make_node_allocator(self, config: ClusterConfig) -> NodeCIDRAllocator:
        """The node allocator under test (ours, with ``self.node_strategy``, by default)."""
        return NodeCIDRAllocator(config, strategy=self.node_strategy)

    def make_service_allocator(self, config: ClusterConfig) -> ServiceIPAllocator:
        """The Service allocator under test (ours, with the drawn strategy and rng)."""
        return ServiceIPAllocator(config, strategy=self.service_strategy, rng=self.service_rng)

    def restore_node_allocator(self, data: dict[str, Any]) -> NodeCIDRAllocator:
        """The node allocator rebuilt from its snapshot ``data`` at a restart."""
        return NodeCIDRAllocator.restore(data)

    def restore_service_allocator(
        self, data: dict[str, Any], rng: random.Random
    ) -> ServiceIPAllocator:
        """The Service allocator rebuilt from its snapshot ``data`` at a restart."""
        return ServiceIPAllocator.restore(data, rng=rng)

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
        self.node_strategy = data.draw(st.sampled_from(["next-fit", "lowest"]), label="nodes")
        self.service_strategy = data.draw(
            st.sampled_from(["random", "sequential"]), label="services"
        )
        self.service_rng = data.draw(st.randoms(use_true_random=True), label="rng")
        self.node_allocator = self.make_node_allocator(config)
        self.service_allocator = self.make_service_allocator(config)
        self._reserving = True
        self._growing = True
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
        asked = {netaddr.IPAddress(ip) for ip in _requested(manifest)}
        if asked & self.model.reserved_ips:
            with_reason = None
            try:
                self.service_allocator.allocate_service(manifest)
            except ServiceValidationError as exc:
                with_reason = exc
            assert with_reason is not None, f"a reserved address was given: {manifest}"
            assert self.service_allocator.snapshot() == before, "a refused create changed state"
            return
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
        fresh = self.fresh_service_allocator()
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
        self.node_allocator = self.restore_node_allocator(nodes)
        self.service_allocator = self.restore_service_allocator(services, random.Random(seed))
        assert self.node_allocator.snapshot() == nodes
        assert self.service_allocator.snapshot() == services
        self.on_restart()

    @invariant()
    def _agrees_with_model(self) -> None:
        if not self._started:
            return
        for alloc in (self.node_allocator, self.service_allocator):
            check = getattr(alloc, "_check_invariants", None)
            if check is not None:
                check()
        assert dict(self.node_allocator.items()) == self.model.nodes
        assert dict(self.service_allocator.items()) == self.model.services
        for family in self.config.families:
            assert self.node_allocator.free(family) == self.model.node_room(family), family
        for family in self.config.service_families:
            assert self.service_allocator.free(family) == self.model.service_room(family), family
        self.check_controller()


def _requested(manifest: dict[str, Any]) -> list[str]:
    """The addresses a manifest asks for (``clusterIP`` / ``clusterIPs``), parseable ones."""
    spec = manifest.get("spec") or {}
    asked = [spec.get("clusterIP"), *(spec.get("clusterIPs") or [])]
    result = []
    for value in asked:
        if isinstance(value, str) and value and value != "None":
            with contextlib.suppress(netaddr.AddrFormatError, ValueError, TypeError):
                result.append(str(netaddr.IPAddress(value)))
    return result
