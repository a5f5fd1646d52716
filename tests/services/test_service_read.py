"""Reading a manifest (dualstack_ipam.services.read): cluster IPs of one family, the
public service_key, and the Kubernetes name rules it applies."""

from __future__ import annotations

from typing import Any

import pytest

import dualstack_ipam
from dualstack_ipam import ClusterConfig, ServiceIPAllocator, ServiceValidationError, service_key
from dualstack_ipam.services.read import read_fields

SINGLE = ClusterConfig("10.244.0.0/16", "10.0.0.0/24")
DUAL = ClusterConfig("10.244.0.0/16,fc00::/24", "10.0.0.0/24,fd00::/120")
ONE_FAMILY = "may specify no more than one IP for each IP family"


def service(**spec: Any) -> dict[str, Any]:
    return {"metadata": {"name": "web"}, "spec": spec}


# ------------------------------------------------------------ defect: two IPs of one family


@pytest.mark.parametrize(
    ("config", "spec"),
    [
        # Kubernetes' registry tests "too many IPs singlestack" and "dup IPs".
        (SINGLE, {"clusterIP": "10.0.0.1", "clusterIPs": ["10.0.0.1", "10.0.0.2"]}),
        (SINGLE, {"clusterIP": "10.0.0.1", "clusterIPs": ["10.0.0.1", "10.0.0.1"]}),
        (
            DUAL,
            {
                "clusterIP": "10.0.0.1",
                "clusterIPs": ["10.0.0.1", "10.0.0.2"],
                "ipFamilyPolicy": "RequireDualStack",
            },
        ),
        (
            DUAL,
            {
                "clusterIP": "fd00::1",
                "clusterIPs": ["fd00::1", "fd00::1"],
                "ipFamilyPolicy": "PreferDualStack",
                "ipFamilies": ["IPv6", "IPv4"],
            },
        ),
    ],
)
def test_two_ips_of_one_family_are_refused_at_cluster_ips(
    config: ClusterConfig, spec: dict[str, Any]
) -> None:
    alloc = ServiceIPAllocator(config)
    with pytest.raises(ServiceValidationError) as info:
        alloc.allocate_service(service(**spec))
    assert info.value.field == "spec.clusterIPs"
    assert ONE_FAMILY in str(info.value)
    assert str(spec["clusterIPs"]) in str(info.value)
    assert len(alloc) == 0


def test_the_family_rule_comes_before_the_ip_families_match() -> None:
    # ValidateServiceClusterIPsRelatedFields checks "one per family" before
    # matching each IP against ipFamilies[i].
    spec = {
        "clusterIP": "10.0.0.1",
        "clusterIPs": ["10.0.0.1", "10.0.0.2"],
        "ipFamilies": ["IPv4", "IPv6"],
    }
    with pytest.raises(ServiceValidationError, match=ONE_FAMILY) as info:
        read_fields(spec, "web")
    assert info.value.field == "spec.clusterIPs"


def test_an_invalid_ip_is_reported_before_the_family_rules() -> None:
    spec = {"clusterIP": "fd00::1", "clusterIPs": ["fd00::1", "bad"], "ipFamilies": ["IPv4"]}
    with pytest.raises(ServiceValidationError) as info:
        read_fields(spec, "web")
    assert info.value.field == "spec.clusterIPs[1]"


def test_one_ip_per_family_is_accepted() -> None:
    alloc = ServiceIPAllocator(DUAL)
    spec = {
        "clusterIP": "10.0.0.1",
        "clusterIPs": ["10.0.0.1", "fd00::1"],
        "ipFamilyPolicy": "RequireDualStack",
    }
    assert alloc.allocate_service(service(**spec))["spec"]["clusterIPs"] == spec["clusterIPs"]


# ------------------------------------------------------------ service_key


def test_service_key_is_public() -> None:
    assert dualstack_ipam.service_key is service_key
    assert "service_key" in dualstack_ipam.__all__
    assert service_key({"metadata": {"name": "web"}}) == "default/web"
    assert service_key({"metadata": {"name": "dns", "namespace": "kube-system"}}) == (
        "kube-system/dns"
    )


def test_service_key_is_the_allocators_key() -> None:
    alloc = ServiceIPAllocator(SINGLE)
    manifest = {"metadata": {"name": "db", "namespace": "team-a"}}
    alloc.allocate_service(manifest)
    assert list(alloc) == [service_key(manifest)]


@pytest.mark.parametrize(
    ("meta", "field"),
    [
        ({"name": "1web"}, "metadata.name"),  # DNS-1035: starts with a letter
        ({"name": "Web"}, "metadata.name"),
        ({"name": "a" * 64}, "metadata.name"),
        ({"name": "web", "namespace": "-ns"}, "metadata.namespace"),
        ({"name": "web", "namespace": "n" * 64}, "metadata.namespace"),
    ],
)
def test_service_key_applies_the_kubernetes_name_rules(meta: dict[str, Any], field: str) -> None:
    with pytest.raises(ServiceValidationError) as info:
        service_key({"metadata": meta})
    assert info.value.field == field


def test_a_namespace_may_start_with_a_digit() -> None:
    assert service_key({"metadata": {"name": "web", "namespace": "0prod"}}) == "0prod/web"
