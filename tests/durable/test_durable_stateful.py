"""A durable Cluster against plain in-memory allocators, step by step.

Random node and Service operations run on both; the durable side must give
the same answers and errors (one process alone sees exactly the in-memory
sequence: same rng, same cursor), survive a restart (close, reopen: the same
keys), and its journal replayed into a fresh ``memory://`` store must give
the same keys. A second Cluster on the same file, stale on purpose, must
follow.
"""

from __future__ import annotations

import random
import shutil
import tempfile
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

import dualstack_ipam
from dualstack_ipam import ClusterConfig, IPAMError, NodeCIDRAllocator, ServiceIPAllocator
from dualstack_ipam.durable import Cluster, replay
from dualstack_ipam.pools.multi import parts_of

CONFIG = ClusterConfig(
    "10.0.0.0/24,fd00::/120", "10.0.0.32/28,fd00:1::/124", node_mask_ipv4=28, node_mask_ipv6=124
)
NODES = st.sampled_from([f"n{i}" for i in range(12)])
NAMES = st.sampled_from([f"s{i}" for i in range(10)])
POLICIES = st.sampled_from([None, "SingleStack", "PreferDualStack", "RequireDualStack"])
SIDES = st.sampled_from(["nodes", "services"])
# Node subnets (the Service set-aside is 10.0.0.32/28) and Service addresses, both families.
NODE_SPANS = ["10.0.0.0/26", "10.0.0.64/27", "fd00::/122", "fd00::20-fd00::3f"]
# ... and spans of the ranges the machine may add (GROWTH, SERVICE_GROWTH).
SPANS = st.sampled_from(
    [
        *NODE_SPANS,
        *["10.0.2.0/28", "fd00::2:0/124"],
        *["10.0.0.36-10.0.0.40", "10.0.0.40/30", "fd00:1::4/126", "10.0.3.2-10.0.3.4"],
    ]
)
REASONS = st.sampled_from(["", "racks", "gateways"])
GROWTH = st.sampled_from(["10.0.1.0/28", "10.0.2.0/27", "fd00::1:0/124", "fd00::2:0/123"])
# Service ranges to add: below the first one, far from it, and IPv6.
SERVICE_GROWTH = st.sampled_from(["10.0.0.16/29", "10.0.3.0/29", "fd00:1::100/125", "fd00:2::/126"])
# Requested Service IPs: the first range's, and the ranges above (usable once added).
SERVICE_IPS = st.sampled_from(
    [f"10.0.0.{i}" for i in range(33, 47)] + ["10.0.0.18", "10.0.3.5", "fd00:1::103", "fd00:2::2"]
)


def outcome(call: Any) -> Any:
    """The result of ``call``, or the class and message of its IPAMError."""
    try:
        return ("ok", call())
    except IPAMError as exc:
        return ("error", type(exc).__name__, str(exc))


class DurableMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.folder = tempfile.mkdtemp(prefix="durable-machine-")
        self.url = f"sqlite://{self.folder}/s.db?synchronous=NORMAL"
        self.cluster = dualstack_ipam.open(
            self.url, CONFIG, rng=random.Random(3), service_strategy="random"
        )
        self.follower: Cluster | None = None
        self.nodes = NodeCIDRAllocator(CONFIG)
        self.services = ServiceIPAllocator(CONFIG, rng=random.Random(3))
        self.manifests: dict[str, dict[str, Any]] = {}

    def teardown(self) -> None:
        self.cluster.close()
        if self.follower is not None:
            self.follower.close()
        shutil.rmtree(self.folder, ignore_errors=True)

    def same(self, durable: Any, plain: Any) -> Any:
        got, expected = outcome(durable), outcome(plain)
        assert got == expected
        return got

    @rule(node=NODES)
    def allocate_node(self, node: str) -> None:
        self.same(lambda: self.cluster.nodes.allocate(node), lambda: self.nodes.allocate(node))

    @rule(node=NODES, index=st.integers(0, 15))
    def occupy_node(self, node: str, index: int) -> None:
        cidr = f"fd00::{index * 16:x}/124"
        self.same(
            lambda: self.cluster.nodes.occupy(node, [cidr]),
            lambda: self.nodes.occupy(node, [cidr]),
        )

    @rule(node=NODES)
    def release_node(self, node: str) -> None:
        self.same(lambda: self.cluster.nodes.release(node), lambda: self.nodes.release(node))

    @rule(name=NAMES, policy=POLICIES, ip=st.none() | st.integers(33, 46))
    def allocate_service(self, name: str, policy: str | None, ip: int | None) -> None:
        spec: dict[str, Any] = {}
        if policy is not None:
            spec["ipFamilyPolicy"] = policy
        if ip is not None:
            spec["clusterIP"] = f"10.0.0.{ip}"
        manifest = {"metadata": {"name": name}, "spec": spec}
        result = self.same(
            lambda: self.cluster.services.allocate_service(manifest),
            lambda: self.services.allocate_service(manifest),
        )
        if result[0] == "ok":
            self.manifests[name] = result[1]

    @precondition(lambda self: self.manifests)
    @rule(data=st.data(), policy=POLICIES)
    def update_service(self, data: st.DataObject, policy: str | None) -> None:
        name = data.draw(st.sampled_from(sorted(self.manifests)))
        new = {"spec": {"ipFamilyPolicy": policy}} if policy else {}
        old = self.manifests[name]
        result = self.same(
            lambda: self.cluster.services.update_service(old, new),
            lambda: self.services.update_service(old, new),
        )
        if result[0] == "ok":
            self.manifests[name] = result[1]

    @rule(name=NAMES)
    def release_service(self, name: str) -> None:
        self.manifests.pop(name, None)
        self.same(
            lambda: self.cluster.services.release(f"default/{name}"),
            lambda: self.services.release(f"default/{name}"),
        )

    @rule(key=st.sampled_from(["a", "b"]), ip=SERVICE_IPS)
    def allocate_seed_style(self, key: str, ip: str) -> None:
        self.same(
            lambda: self.cluster.services.allocate(key, ip=ip),
            lambda: self.services.allocate(key, ip=ip),
        )

    @rule(side=SIDES, span=SPANS, reason=REASONS)
    def reserve(self, side: str, span: str, reason: str) -> None:
        durable, plain = getattr(self.cluster, side), getattr(self, side)
        self.same(lambda: durable.reserve(span, reason), lambda: plain.reserve(span, reason))

    @rule(side=SIDES, span=SPANS)
    def unreserve(self, side: str, span: str) -> None:
        durable, plain = getattr(self.cluster, side), getattr(self, side)
        self.same(lambda: durable.unreserve(span), lambda: plain.unreserve(span))

    @rule(cidr=GROWTH)
    def add_range(self, cidr: str) -> None:
        self.same(lambda: self.cluster.nodes.add_range(cidr), lambda: self.nodes.add_range(cidr))

    @rule(cidr=SERVICE_GROWTH)
    def add_service_range(self, cidr: str) -> None:
        self.same(
            lambda: self.cluster.services.add_range(cidr), lambda: self.services.add_range(cidr)
        )

    @rule()
    def restart(self) -> None:
        # A new process: same store, a fresh cache (its rng continues the model's).
        self.cluster.close()
        rng = random.Random()
        pool: Any = parts_of(next(iter(self.services._pools.values())))[0]
        rng.setstate(pool._rng.getstate())
        self.cluster = dualstack_ipam.open(self.url, rng=rng)
        # The next-fit cursor is per process: align the model's with a fresh one.
        fresh = NodeCIDRAllocator(CONFIG)
        for family in ("IPv4", "IPv6"):
            for cidr in self.nodes.ranges(family)[1:]:
                fresh.add_range(cidr)
        for space, reason in self.nodes.reservations():
            fresh.reserve(space, reason)
        for name, held in self.nodes.items():
            fresh.occupy(name, [str(c) for c in held])
        self.nodes = fresh
        assert self.cluster.nodes.items() == self.nodes.items()
        assert self.cluster.services.items() == self.services.items()

    @rule()
    def follower_catches_up(self) -> None:
        if self.follower is None:
            self.follower = dualstack_ipam.open(self.url)
        assert self.follower.nodes.items() == self.nodes.items()
        assert self.follower.services.items() == self.services.items()
        assert self.follower.nodes.reservations() == self.nodes.reservations()
        assert self.follower.services.reservations() == self.services.reservations()
        assert self.follower.services.ranges("IPv4") == self.services.ranges("IPv4")

    @rule()
    def journal_replays(self) -> None:
        copy = dualstack_ipam.open("memory://", CONFIG)
        replay(self.cluster.journal(), copy)
        assert copy.nodes.items() == self.nodes.items()
        assert copy.services.items() == self.services.items()
        assert copy.nodes.reservations() == self.nodes.reservations()
        assert copy.nodes.ranges("IPv6") == self.nodes.ranges("IPv6")
        assert copy.services.reservations() == self.services.reservations()
        for family in ("IPv4", "IPv6"):
            assert copy.services.ranges(family) == self.services.ranges(family)

    @invariant()
    def agrees(self) -> None:
        assert self.cluster.nodes.items() == self.nodes.items()
        assert self.cluster.services.items() == self.services.items()
        for family in ("IPv4", "IPv6"):
            assert self.cluster.nodes.used(family) == self.nodes.used(family)
            assert self.cluster.services.free(family) == self.services.free(family)
            assert self.cluster.nodes.reserved(family) == self.nodes.reserved(family)
        assert self.cluster.services.reservations() == self.services.reservations()
        self.cluster._check_invariants()


DurableMachine.TestCase.settings = settings(
    max_examples=15,
    stateful_step_count=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestDurableMachine = DurableMachine.TestCase
