"""The CLI's rendering reads counts from the library's rules, not from built pools.

Issue 8: ``plan`` built a whole ``ServiceIPPool`` (16 MiB for a /8) to read
one number, the usable-address count; it now asks
``dualstack_ipam.net.usable_span``, the one home of that rule.
"""

from __future__ import annotations

import tracemalloc

from hypothesis import given
from hypothesis import strategies as st

from dualstack_ipam import ClusterConfig
from dualstack_ipam.cli import run_plan
from dualstack_ipam.cli.render import service_capacity
from dualstack_ipam.net import IPFamily
from dualstack_ipam.pools.service_ips import ServiceIPPool


def test_plan_of_a_slash_8_service_range_builds_no_pool() -> None:
    flags = ["--cluster-cidr=192.168.0.0/16", "--service-cluster-ip-range=10.0.0.0/8"]
    tracemalloc.start()
    try:
        text = run_plan(flags, as_json=True)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert '"service_ips": 16777214' in text
    assert peak < 1 << 20  # a pool of 2**24 addresses would take 16 MiB


@given(
    st.one_of(
        st.tuples(st.just("10.96.0.0"), st.integers(min_value=12, max_value=32)),
        st.tuples(st.just("fd00::"), st.integers(min_value=108, max_value=128)),
    )
)
def test_service_capacity_is_the_pools_capacity(range_: tuple[str, int]) -> None:
    address, prefixlen = range_
    cidr = f"{address}/{prefixlen}"
    config = ClusterConfig("192.168.0.0/16", cidr)
    family = IPFamily.IPv6 if ":" in address else IPFamily.IPv4
    assert service_capacity(config, family) == ServiceIPPool(cidr).capacity
    assert service_capacity(config, family.other) == 0
