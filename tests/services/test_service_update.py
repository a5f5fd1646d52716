"""ServiceIPAllocator.update_service: the alpha ipFamily is set at creation only, and
whatever an update returns loads back into a fresh allocator unchanged."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dualstack_ipam import (
    ClusterConfig,
    PoolExhaustedError,
    ServiceIPAllocator,
    ServiceValidationError,
)
from dualstack_ipam.testing import strategies as ds

CLUSTERS = {
    "v4": ClusterConfig("10.244.0.0/16", "10.96.0.0/28"),
    "dual": ClusterConfig("10.244.0.0/16,fc00::/24", "10.96.0.0/28,fd00::/124"),
    "dual6": ClusterConfig("fc00::/24,10.244.0.0/16", "fd00::/124,10.96.0.0/28"),
}


def allocator(cluster: str = "dual") -> ServiceIPAllocator:
    return ServiceIPAllocator(CLUSTERS[cluster], strategy="sequential")


def service(name: str = "web", **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name}, "spec": spec}


def refused(alloc: ServiceIPAllocator, old: Any, new: Any) -> ServiceValidationError:
    before, frozen = alloc.snapshot(), copy.deepcopy((old, new))
    with pytest.raises(ServiceValidationError) as info:
        alloc.update_service(old, new)
    assert alloc.snapshot() == before
    assert (old, new) == frozen
    return info.value


def loads_back(config: ClusterConfig, manifest: dict[str, Any]) -> None:
    """A controller that restarts re-creates ``manifest`` in a fresh allocator."""
    fresh = ServiceIPAllocator(config, strategy="sequential")
    assert fresh.allocate_service(manifest) == manifest
    fresh._check_invariants()


# ------------------------------------------------------------ defect: the alpha ipFamily


class TestAlphaIPFamily:
    def test_the_reported_change_is_refused_at_spec_ip_family(self) -> None:
        alloc = allocator()
        old = alloc.allocate_service(service(ipFamily="IPv4", ipFamilyPolicy="PreferDualStack"))
        error = refused(alloc, old, {"spec": {"ipFamily": "IPv6"}})
        assert error.field == "spec.ipFamily"
        assert "'IPv6'" in str(error)
        assert "may not change" in str(error)
        loads_back(alloc.config, old)

    @pytest.mark.parametrize(
        "spec",
        [
            {"ipFamily": "IPv6"},
            {"ipFamily": "IPv6", "ipFamilyPolicy": "SingleStack"},
            {"ipFamily": "IPv6", "ipFamilyPolicy": "RequireDualStack"},
        ],
    )
    def test_every_change_is_refused(self, spec: dict[str, Any]) -> None:
        alloc = allocator()
        old = alloc.allocate_service(service(ipFamily="IPv4", ipFamilyPolicy="PreferDualStack"))
        assert refused(alloc, old, {"spec": spec}).field == "spec.ipFamily"

    def test_set_later_it_must_name_the_primary_family(self) -> None:
        alloc = allocator()
        old = alloc.allocate_service(service(ipFamilyPolicy="PreferDualStack"))
        assert refused(alloc, old, {"spec": {"ipFamily": "IPv6"}}).field == "spec.ipFamily"
        new = alloc.update_service(old, {"spec": {"ipFamily": "IPv4"}})
        assert new["spec"]["ipFamily"] == "IPv4"
        assert new["spec"]["clusterIPs"] == old["spec"]["clusterIPs"]
        loads_back(alloc.config, new)

    def test_headless_keeps_its_alpha_family(self) -> None:
        alloc = allocator()
        old = alloc.allocate_service(service(clusterIP="None", ipFamily="IPv6"))
        assert refused(alloc, old, {"spec": {"ipFamily": "IPv4"}}).field == "spec.ipFamily"

    def test_unchanged_or_omitted_is_accepted(self) -> None:
        alloc = allocator()
        old = alloc.allocate_service(service(ipFamily="IPv6"))
        for spec in ({"ipFamily": "IPv6"}, {"ipFamily": None}, {}):
            new = alloc.update_service(old, {"spec": spec})
            assert new["spec"] == old["spec"]
        new = alloc.update_service(old, {"spec": {"ipFamilyPolicy": "RequireDualStack"}})
        assert new["spec"]["ipFamily"] == "IPv6"
        assert new["spec"]["ipFamilies"] == ["IPv6", "IPv4"]
        loads_back(alloc.config, new)

    def test_from_external_name_it_is_set_anew(self) -> None:
        alloc = allocator()
        old = alloc.allocate_service(service(type="ExternalName", externalName="db.example.com"))
        new = alloc.update_service(old, {"spec": {"type": "ClusterIP", "ipFamily": "IPv6"}})
        assert new["spec"]["ipFamilies"] == ["IPv6"]
        loads_back(alloc.config, new)


# ------------------------------------------------------------ property: updates load back

_IPS = ["10.96.0.2", "10.96.0.3", "fd00::2", "fd00::3", "None", ""]
_FIELDS: dict[str, st.SearchStrategy[Any]] = {
    "type": st.sampled_from(["ClusterIP", "NodePort", "LoadBalancer", "ExternalName", None]),
    "ipFamily": st.sampled_from(["IPv4", "IPv6", None]),
    "ipFamilyPolicy": st.sampled_from(["SingleStack", "PreferDualStack", "RequireDualStack"]),
    "ipFamilies": st.sampled_from([[], ["IPv4"], ["IPv6"], ["IPv4", "IPv6"], ["IPv6", "IPv4"]]),
    "clusterIPs": st.lists(st.sampled_from(_IPS[:5]), max_size=2),
    "clusterIP": st.sampled_from(_IPS),
}


@st.composite
def patches(draw: st.DrawFn) -> dict[str, Any]:
    """A partial spec, as ``kubectl apply`` of an edited file sends it."""
    fields = draw(st.lists(st.sampled_from(sorted(_FIELDS)), unique=True, max_size=3))
    spec = {field: draw(_FIELDS[field]) for field in fields}
    if spec.get("type") == "ExternalName":
        spec["externalName"] = "db.example.com"
    if "clusterIPs" in spec and "clusterIP" not in spec:
        spec["clusterIP"] = spec["clusterIPs"][0] if spec["clusterIPs"] else ""
    return spec


@settings(max_examples=300)
@given(st.sampled_from(sorted(CLUSTERS)), st.data())
def test_what_update_returns_loads_back_unchanged(cluster: str, data: st.DataObject) -> None:
    config = CLUSTERS[cluster]
    alloc = ServiceIPAllocator(config, strategy="sequential")
    old = alloc.allocate_service(data.draw(ds.service_manifests(config=config), label="old"))
    for _ in range(data.draw(st.integers(1, 3), label="updates")):
        spec = data.draw(patches(), label="patch")
        before = alloc.snapshot()
        try:
            new = alloc.update_service(old, {"spec": spec})
        except (ServiceValidationError, PoolExhaustedError):
            assert alloc.snapshot() == before
            continue
        alloc._check_invariants()
        loads_back(config, new)
        old = new


@pytest.mark.parametrize("cluster", sorted(CLUSTERS))
def test_an_update_never_gives_back_what_create_refuses(cluster: str) -> None:
    # The shortest path to the reported defect, on every cluster shape.
    alloc = allocator(cluster)
    first = alloc.config.service_families[0]
    old = alloc.allocate_service(service(ipFamily=first.value, ipFamilyPolicy="PreferDualStack"))
    error = refused(alloc, old, {"spec": {"ipFamily": first.other.value}})
    assert error.field == "spec.ipFamily"
