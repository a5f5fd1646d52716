"""dualstack_ipam.testing.stateful: the reference model, and the machine users subclass.

The machine runs as is (dualstack_ipam against the model), with a correct
controller (which must pass) and with buggy ones (which it must catch).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

import netaddr
import pytest
from hypothesis import HealthCheck, Phase, find, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import run_state_machine_as_test

import dualstack_ipam
from dualstack_ipam import (
    ClusterConfig,
    IPAMError,
    NodeCIDRAllocator,
    ServiceIPAllocator,
    ServiceValidationError,
)
from dualstack_ipam.testing._manifests import context
from dualstack_ipam.testing._updates import EDITS, Edit, edit_service
from dualstack_ipam.testing.stateful import DualStackClusterMachine, ReferenceModel
from dualstack_ipam.testing.strategies import service_manifests

FAST = settings(
    max_examples=15,
    stateful_step_count=25,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
CONFIG = ClusterConfig(
    "10.244.0.0/28,fc00::/126", "10.244.0.0/30,fd00::/126", node_mask_ipv4=30, node_mask_ipv6=127
)

# ------------------------------------------------------------ the model


def net(text: str) -> netaddr.IPNetwork:
    return netaddr.IPNetwork(text)


def ip(text: str) -> netaddr.IPAddress:
    return netaddr.IPAddress(text)


def test_model_counts_room_after_the_set_aside() -> None:
    model = ReferenceModel(CONFIG)
    assert (model.node_room("IPv4"), model.node_room("IPv6")) == (3, 2)
    assert (model.service_room("IPv4"), model.service_room("IPv6")) == (2, 3)
    model.add_node("a", (net("10.244.0.4/30"), net("fc00::/127")))
    model.add_service("default/web", (ip("fd00::1"), ip("10.244.0.1")))
    assert (model.node_room("IPv4"), model.node_room("IPv6")) == (2, 1)
    assert model.service_room("IPv4") == 1
    assert model.can_add_node()
    model.add_node("b", (net("10.244.0.8/30"), net("fc00::2/127")))
    assert not model.can_add_node()
    assert model.remove_node("a")
    assert not model.remove_node("a")
    assert model.remove_service("default/web")
    assert not model.remove_service("default/web")
    assert model.service_room("IPv4") == 2


@pytest.mark.parametrize(
    ("cidrs", "message"),
    [
        (("10.244.0.4/30",), "got"),  # one family missing
        (("fc00::/127", "10.244.0.4/30"), "is not IPv4"),
        (("10.244.0.4/31", "fc00::/127"), "mask"),
        (("10.245.0.4/30", "fc00::/127"), "outside the cluster"),
        (("10.244.0.0/30", "fc00::/127"), "set aside"),
        (("10.244.0.8/30", "fc00::/127"), "which node 'a' holds"),
    ],
)
def test_model_refuses_wrong_node_cidrs(cidrs: tuple[str, ...], message: str) -> None:
    model = ReferenceModel(CONFIG)
    model.add_node("a", (net("10.244.0.8/30"), net("fc00::2/127")))
    with pytest.raises(AssertionError, match=message):
        model.add_node("b", tuple(net(c) for c in cidrs))
    assert list(model.nodes) == ["a"]


@pytest.mark.parametrize(
    ("addresses", "message"),
    [
        (("10.244.0.0",), "network address"),
        (("10.244.0.3",), "broadcast"),
        (("fd00::",), "network address"),
        (("10.96.0.1",), "outside"),
        (("10.244.0.1", "10.244.0.2"), "one family twice"),
        (("fd00::3",), "which 'default/a' holds"),
        (("192.168.0.1",), "outside"),
    ],
)
def test_model_refuses_wrong_service_addresses(addresses: tuple[str, ...], message: str) -> None:
    model = ReferenceModel(CONFIG)
    model.add_service("default/a", (ip("fd00::3"),))
    with pytest.raises(AssertionError, match=message):
        model.add_service("default/b", tuple(ip(a) for a in addresses))
    assert list(model.services) == ["default/a"]


def test_model_refuses_a_family_without_a_service_range() -> None:
    model = ReferenceModel(ClusterConfig("10.244.0.0/16,fc00::/24", "10.96.0.0/24"))
    with pytest.raises(AssertionError, match="no Service range"):
        model.add_service("default/a", (ip("fd00::1"),))


# ------------------------------------------------------------ the machine


# Typed here: older Hypothesis releases leave run_state_machine_as_test untyped.
_run_machine: Callable[..., None] = run_state_machine_as_test


def run(machine: type[DualStackClusterMachine], **overrides: Any) -> None:
    _run_machine(machine, settings=settings(FAST, **overrides))


class Controller:
    """A toy controller: routes to pod CIDRs, DNS records for Services."""

    def __init__(self, config: ClusterConfig) -> None:
        self.config = config
        self.routes: dict[netaddr.IPNetwork, str] = {}
        self.records: dict[str, list[str]] = {}

    def node_added(self, node: str, cidrs: tuple[netaddr.IPNetwork, ...]) -> None:
        for cidr in cidrs:
            self.routes[cidr] = node

    def node_removed(self, node: str) -> None:
        self.routes = {cidr: owner for cidr, owner in self.routes.items() if owner != node}

    def service_changed(self, service: dict[str, Any]) -> None:
        meta = service["metadata"]
        ips = service["spec"].get("clusterIPs") or []
        self.records[f"{meta.get('namespace') or 'default'}/{meta['name']}"] = [
            ip for ip in ips if ip != "None"
        ]

    def service_deleted(self, service: dict[str, Any]) -> None:
        meta = service["metadata"]
        del self.records[f"{meta.get('namespace') or 'default'}/{meta['name']}"]


CALLS: Counter[str] = Counter()


class ControllerMachine(DualStackClusterMachine):
    def setup_controller(self, config: ClusterConfig) -> None:
        assert not hasattr(self, "ctl"), "setup_controller called twice"
        self.ctl = Controller(config)
        CALLS["setup"] += 1

    def on_node_added(self, node: str, cidrs: tuple[netaddr.IPNetwork, ...]) -> None:
        self.ctl.node_added(node, cidrs)
        CALLS["node_added"] += 1

    def on_node_removed(self, node: str) -> None:
        self.ctl.node_removed(node)
        CALLS["node_removed"] += 1

    def on_service_created(self, service: dict[str, Any]) -> None:
        self.ctl.service_changed(service)
        CALLS["service_created"] += 1

    def on_service_updated(self, old: dict[str, Any], new: dict[str, Any]) -> None:
        assert old["metadata"]["name"] == new["metadata"]["name"]
        self.ctl.service_changed(new)
        CALLS["service_updated"] += 1

    def on_service_deleted(self, service: dict[str, Any]) -> None:
        self.ctl.service_deleted(service)
        CALLS["service_deleted"] += 1

    def on_restart(self) -> None:
        CALLS["restart"] += 1

    def check_controller(self) -> None:
        routes = {cidr: node for node, cidrs in self.node_allocator.items() for cidr in cidrs}
        assert self.ctl.routes == routes
        held = {
            key: [str(a) for a in addresses] for key, addresses in self.service_allocator.items()
        }
        assert {k: v for k, v in self.ctl.records.items() if v} == held
        assert set(self.ctl.records) == set(self.services)
        CALLS["check"] += 1


def test_a_correct_controller_passes_and_every_hook_is_called() -> None:
    CALLS.clear()
    run(ControllerMachine, max_examples=25)
    assert CALLS["setup"] >= 25
    for hook in (
        "node_added",
        "node_removed",
        "service_created",
        "service_updated",
        "service_deleted",
        "restart",
    ):
        assert CALLS[hook] > 0, hook
    assert CALLS["check"] > CALLS["node_added"]


class ForgetsRemovals(ControllerMachine):
    def on_node_removed(self, node: str) -> None:
        pass  # the bug: stale routes stay


class MissesUpgrades(ControllerMachine):
    def on_service_updated(self, old: dict[str, Any], new: dict[str, Any]) -> None:
        pass  # the bug: a Service that gains a family keeps one record


class LosesStateOnRestart(ControllerMachine):
    def on_restart(self) -> None:
        self.ctl = Controller(self.config)  # the bug: nothing rebuilt


@pytest.mark.parametrize("machine", [ForgetsRemovals, MissesUpgrades, LosesStateOnRestart])
def test_a_buggy_controller_is_caught(machine: type[DualStackClusterMachine]) -> None:
    with pytest.raises(AssertionError):
        run(machine, max_examples=200, phases=[Phase.generate])


def test_configs_can_be_overridden() -> None:
    seen: set[ClusterConfig] = set()

    class Seed(DualStackClusterMachine):
        configs = st.just(CONFIG)

        def setup_controller(self, config: ClusterConfig) -> None:
            seen.add(config)

    run(Seed, max_examples=3)
    assert seen == {CONFIG}


def test_configs_need_a_service_range() -> None:
    class NoServices(DualStackClusterMachine):
        configs = st.just(ClusterConfig("10.244.0.0/16"))

    with pytest.raises(TypeError, match="Service range"):
        run(NoServices, max_examples=1)


# The machine as users run it: a TestCase class collected by pytest.
DualStackClusterMachine.TestCase.settings = FAST
TestDualStackClusterMachine = DualStackClusterMachine.TestCase


# ------------------------------------------------------------ the machine's edits

SEED = ClusterConfig("10.244.0.0/16,fc00::/24", "10.96.0.0/28,fd00::/124")


def created() -> tuple[ServiceIPAllocator, dict[str, Any]]:
    alloc = ServiceIPAllocator(SEED, strategy="sequential")
    alloc.allocate("other", ip="10.96.0.5")
    return alloc, alloc.allocate_service(
        {"metadata": {"name": "web"}, "spec": {"ipFamily": "IPv4"}}
    )


@pytest.mark.parametrize("change", EDITS)
def test_every_edit_changes_its_field(change: str) -> None:
    alloc, old = created()
    edits = st.composite(edit_service)(old, context(None, alloc))
    edit = find(edits, lambda e: e.change == change and e.manifest != old)
    assert edit.fields
    assert edit.manifest != old


@settings(max_examples=100, deadline=None)
@given(st.data())
def test_a_refused_edit_names_a_field_it_allows(data: st.DataObject) -> None:
    alloc = ServiceIPAllocator(SEED, strategy="sequential")
    alloc.allocate("other", ip="10.96.0.5")
    old = alloc.allocate_service(data.draw(service_manifests(allocator=alloc), label="old"))
    edit = data.draw(st.composite(edit_service)(old, context(None, alloc)), label="edit")
    field = _refusal(alloc, old, edit)
    assert field is None or field in edit.fields, (edit.change, field)


def _refusal(alloc: ServiceIPAllocator, old: dict[str, Any], edit: Edit) -> str | None:
    trial = ServiceIPAllocator.restore(alloc.snapshot())  # the same state, to spend
    try:
        trial.update_service(old, edit.manifest)
    except ServiceValidationError as exc:
        return exc.field
    except IPAMError:
        return None
    return None


def test_the_alpha_family_edit_is_refused_at_its_field() -> None:
    alloc, old = created()
    edits = st.composite(edit_service)(old, context(None, alloc))
    edit = find(
        edits, lambda e: e.change == "ip-family" and e.manifest["spec"]["ipFamily"] != "IPv4"
    )
    assert _refusal(alloc, old, edit) == "spec.ipFamily"


# ------------------------------------------------- the allocators under test


def test_model_counts_reservations_and_refuses_reserved_space() -> None:
    model = ReferenceModel(CONFIG)
    model.reserved_cidrs.add(net("10.244.0.4/30"))
    model.reserved_ips.add(ip("10.244.0.1"))
    assert model.node_room("IPv4") == 2
    assert model.service_room("IPv4") == 1
    assert model.set_aside(net("10.244.0.0/30"))
    assert not model.set_aside(net("10.244.0.8/30"))
    with pytest.raises(AssertionError, match="reserved"):
        model.add_node("a", (net("10.244.0.4/30"), net("fc00::/127")))
    with pytest.raises(AssertionError, match="reserved"):
        model.add_service("default/web", (ip("10.244.0.1"),))
    model.add_node("b", (net("fc00::2/127"),), partial=True)
    assert model.cidr_owner(net("fc00::2/127")) == "b"


OPS: Counter[str] = Counter()


class CountingMachine(DualStackClusterMachine):
    def on_service_occupied(self, service: dict[str, Any]) -> None:
        OPS["occupied"] += 1

    def on_reconciled(self) -> None:
        OPS["reconciled"] += 1

    def on_range_added(self, nodes: bool, cidr: netaddr.IPNetwork) -> None:
        OPS["node range" if nodes else "service range"] += 1


def test_the_new_rules_run_on_our_allocators() -> None:
    OPS.clear()
    run(CountingMachine, max_examples=25, stateful_step_count=40)
    assert OPS["occupied"] > 0
    assert OPS["reconciled"] > 0
    assert OPS["node range"] > 0
    assert OPS["service range"] > 0


class DurableMachine(CountingMachine):
    """The system under test is a durable cluster's sides: the factories say so."""

    def make_node_allocator(self, config: ClusterConfig) -> NodeCIDRAllocator:
        self.cluster = dualstack_ipam.open("memory://", config, node_strategy=self.node_strategy)
        return self.cluster.nodes

    def make_service_allocator(self, config: ClusterConfig) -> ServiceIPAllocator:
        return self.cluster.services

    def teardown(self) -> None:
        if hasattr(self, "cluster"):
            self.cluster.close()


def test_the_factories_put_a_durable_cluster_under_test() -> None:
    OPS.clear()
    run(DurableMachine, max_examples=10)
    assert OPS["reconciled"] > 0


class LeakyReconcile(ServiceIPAllocator):
    """A controller's allocator whose repair forgets to release leaks."""

    def reconcile(self, observed: Any, *, repair: bool = False, leak_grace: int = 3) -> Any:
        return super().reconcile(observed, repair=repair, leak_grace=leak_grace + 100)


class HandsOutReserved(ServiceIPAllocator):
    """A controller's allocator that forgets its reservations on a restart."""

    @classmethod
    def restore(cls, data: Any, **kwargs: Any) -> Any:
        for pool in data["pools"].values():
            pool["reserved"] = []
        return ServiceIPAllocator.restore(data, **kwargs)


class LeakyMachine(DualStackClusterMachine):
    def make_service_allocator(self, config: ClusterConfig) -> ServiceIPAllocator:
        return LeakyReconcile(config, strategy=self.service_strategy, rng=self.service_rng)

    def restore_service_allocator(self, data: dict[str, Any], rng: Any) -> ServiceIPAllocator:
        return LeakyReconcile.restore(data, rng=rng)  # restore builds the class it is called on


class ForgetsReservations(DualStackClusterMachine):
    def restore_service_allocator(self, data: dict[str, Any], rng: Any) -> ServiceIPAllocator:
        restored: ServiceIPAllocator = HandsOutReserved.restore(data, rng=rng)
        return restored


@pytest.mark.parametrize("machine", [LeakyMachine, ForgetsReservations])
def test_a_buggy_allocator_is_caught(machine: type[DualStackClusterMachine]) -> None:
    with pytest.raises(AssertionError):
        run(machine, max_examples=200, stateful_step_count=40, phases=[Phase.generate])
