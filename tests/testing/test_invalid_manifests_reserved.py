"""Invalid manifests drawn against an allocator with reservations name the right field.

Found by CI: the free address an invalid manifest puts before its bad one
(``clusterIPs[0]`` before a taken ``clusterIPs[1]``) was drawn among the
addresses no key holds, which a reservation may cover: the allocator then
refused ``clusterIPs[0]`` (reserved), not the field the strategy named.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dualstack_ipam import ClusterConfig, ServiceIPAllocator, ServiceValidationError
from dualstack_ipam.testing.strategies import invalid_service_manifests


def _allocator(reserve: str) -> ServiceIPAllocator:
    config = ClusterConfig("fd00::/64", "10.0.0.0/26,fd00:0:0:1::/124")
    alloc = ServiceIPAllocator(config, strategy="random")
    alloc.occupy("default/held", ["10.0.0.1"])
    alloc.reserve(reserve)
    return alloc


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
@given(
    reserve=st.sampled_from(["fd00:0:0:1::1", "fd00:0:0:1::1-fd00:0:0:1::8", "10.0.0.2-10.0.0.40"]),
    data=st.data(),
)
def test_the_refused_field_is_the_named_one_beside_reservations(
    reserve: str, data: st.DataObject
) -> None:
    alloc = _allocator(reserve)
    bad = data.draw(invalid_service_manifests(allocator=alloc))
    before = alloc.snapshot()
    with pytest.raises(ServiceValidationError) as refused:
        alloc.allocate_service(bad.manifest)
    assert refused.value.field == bad.field, (refused.value.field, bad.field, bad.manifest)
    assert alloc.snapshot() == before
