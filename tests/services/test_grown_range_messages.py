"""Messages about a grown Service family name every range, not only the first.

A requested cluster IP outside every range of a family grown with
``add_range`` is refused, and a full grown family is exhausted: both
messages list the family's ranges (``ranges_of``), as ``allocate`` and
``occupy`` already did.
"""

from __future__ import annotations

import pytest

from dualstack_ipam import (
    ClusterConfig,
    NotInRangeError,
    PoolExhaustedError,
    ServiceIPAllocator,
    ServiceValidationError,
)

BOTH = r"10\.96\.0\.0/30, 10\.97\.0\.0/30"


def grown() -> ServiceIPAllocator:
    alloc = ServiceIPAllocator(
        ClusterConfig("10.244.0.0/16,fc00::/48", "10.96.0.0/30,fd00::/125"),
        strategy="sequential",
    )
    alloc.add_range("10.97.0.0/30")
    return alloc


def test_a_requested_ip_outside_every_range_names_them_all() -> None:
    alloc = grown()
    manifest = {"metadata": {"name": "x"}, "spec": {"clusterIP": "10.98.0.1"}}
    with pytest.raises(ServiceValidationError, match=f"valid range of {BOTH} \\(without") as bad:
        alloc.allocate_service(manifest)
    assert bad.value.field == "spec.clusterIPs[0]"
    assert len(alloc) == 0
    with pytest.raises(NotInRangeError, match=f"not usable in {BOTH}"):
        alloc.occupy("ns/x", "10.98.0.1")


def test_an_unusable_ip_of_one_range_names_that_range() -> None:
    alloc = grown()
    manifest = {"metadata": {"name": "x"}, "spec": {"clusterIP": "10.97.0.3"}}
    with pytest.raises(ServiceValidationError, match=r"valid range of 10\.97\.0\.0/30 \(without"):
        alloc.allocate_service(manifest)


def test_a_full_grown_family_names_every_range() -> None:
    alloc = grown()
    for i in range(4):
        alloc.allocate_service({"metadata": {"name": f"s{i}"}})
    with pytest.raises(PoolExhaustedError, match=f"no free address in {BOTH} for 'x'"):
        alloc.allocate_service({"metadata": {"name": "x"}})
    svc = alloc.allocate_service({"metadata": {"name": "v6"}, "spec": {"ipFamilies": ["IPv6"]}})
    with pytest.raises(PoolExhaustedError, match=f"in {BOTH}"):  # adding the second family
        alloc.update_service(svc, {"spec": {"ipFamilyPolicy": "PreferDualStack"}})
    assert alloc.used("IPv4") == 4
    alloc._check_invariants()


def test_one_range_messages_are_unchanged() -> None:
    alloc = ServiceIPAllocator(ClusterConfig("10.244.0.0/16", "10.96.0.0/30"))
    alloc.allocate_service({"metadata": {"name": "a"}})
    alloc.allocate_service({"metadata": {"name": "b"}})
    with pytest.raises(PoolExhaustedError, match=r"no free address in 10\.96\.0\.0/30 for"):
        alloc.allocate_service({"metadata": {"name": "x"}})
    with pytest.raises(ServiceValidationError, match=r"valid range of 10\.96\.0\.0/30 \(without"):
        alloc.allocate_service({"metadata": {"name": "y"}, "spec": {"clusterIP": "10.97.0.1"}})
