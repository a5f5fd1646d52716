"""ServiceIPAllocator.update_service (dualstack_ipam.services.update): Kubernetes'
update rules, the alpha ipFamily set at creation only, and whatever an update
returns loading back into a fresh allocator unchanged."""

from __future__ import annotations

import copy
from typing import Any

import netaddr
import pytest
import service_helpers as h
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


# ------------------------------------------------------------ the update rules

# Unset on update (Kubernetes' patchAllocatedValues): what was allocated stays.
EMPTY_IP_FIELDS = [
    {"clusterIP": ""},
    {"clusterIPs": []},
    {"clusterIP": "", "clusterIPs": []},
    {"clusterIP": "", "clusterIPs": [], "ipFamilies": []},
]


class TestUpdate:
    def test_omitted_fields_are_inherited(self) -> None:
        alloc = h.allocator()
        old = h.create(alloc, h.service(ipFamilyPolicy="RequireDualStack", type="LoadBalancer"))
        new = {"metadata": {"name": "web"}, "spec": {"selector": {"app": "v2"}}}
        frozen_old, frozen_new = copy.deepcopy(old), copy.deepcopy(new)
        result = alloc.update_service(old, new)
        assert (old, new) == (frozen_old, frozen_new)
        for key in ("clusterIP", "clusterIPs", "ipFamilies", "ipFamilyPolicy", "type"):
            assert result["spec"][key] == old["spec"][key]
        assert result["spec"]["selector"] == {"app": "v2"}
        assert result["metadata"] == {"name": "web"}

    def test_upgrade_with_a_dual_policy(self) -> None:
        alloc = h.allocator()
        old = h.create(alloc, h.service())
        new = alloc.update_service(old, {"spec": {"ipFamilyPolicy": "PreferDualStack"}})
        assert new["spec"]["clusterIPs"][0] == old["spec"]["clusterIP"]
        assert new["spec"]["ipFamilies"] == ["IPv4", "IPv6"]
        assert alloc.used("IPv6") == 1
        alloc._check_invariants()

    def test_upgrade_to_a_requested_secondary(self) -> None:
        alloc = h.allocator()
        old = h.create(alloc, h.service(clusterIP=h.V4))
        new = alloc.update_service(
            old, {"spec": {"ipFamilyPolicy": "RequireDualStack", "clusterIPs": [h.V4, h.V6]}}
        )
        assert new["spec"]["clusterIPs"] == [h.V4, h.V6]
        assert alloc.get("default/web") == (netaddr.IPAddress(h.V4), netaddr.IPAddress(h.V6))

    def test_upgrade_needs_a_dual_policy(self) -> None:
        alloc = h.allocator()
        old = h.create(alloc, h.service())
        new = {"spec": {"ipFamilies": ["IPv4", "IPv6"]}}
        assert h.refused(alloc, alloc.update_service, old, new).field == "spec.ipFamilyPolicy"

    def test_upgrade_on_single_stack_cluster(self) -> None:
        alloc = h.allocator("v4")
        old = h.create(alloc, h.service())
        new = {"spec": {"ipFamilyPolicy": "RequireDualStack"}}
        assert h.refused(alloc, alloc.update_service, old, new).field == "spec.ipFamilyPolicy"
        prefer = alloc.update_service(old, {"spec": {"ipFamilyPolicy": "PreferDualStack"}})
        assert prefer["spec"]["clusterIPs"] == old["spec"]["clusterIPs"]

    def test_downgrade_by_single_stack_releases_the_secondary(self) -> None:
        alloc = h.allocator()
        old = h.create(alloc, h.service(ipFamilyPolicy="RequireDualStack"))
        new = alloc.update_service(old, {"spec": {"ipFamilyPolicy": "SingleStack"}})
        assert new["spec"]["clusterIPs"] == old["spec"]["clusterIPs"][:1]
        assert new["spec"]["ipFamilies"] == ["IPv4"]
        assert new["spec"]["ipFamilyPolicy"] == "SingleStack"
        assert (alloc.used("IPv4"), alloc.used("IPv6")) == (1, 0)
        alloc._check_invariants()

    @pytest.mark.parametrize(
        "spec",
        [
            {"clusterIPs": "first"},  # placeholder replaced below: just the primary
            {"ipFamilies": ["IPv4"]},
            {"ipFamilyPolicy": "PreferDualStack", "ipFamilies": ["IPv4"]},
        ],
    )
    def test_downgrade_needs_single_stack(self, spec: dict[str, Any]) -> None:
        alloc = h.allocator()
        old = h.create(alloc, h.service(ipFamilyPolicy="RequireDualStack"))
        if spec.get("clusterIPs") == "first":
            spec = {"clusterIPs": old["spec"]["clusterIPs"][:1]}
        assert h.refused(alloc, alloc.update_service, old, {"spec": spec}).field == (
            "spec.ipFamilyPolicy"
        )

    @pytest.mark.parametrize(
        ("spec", "field"),
        [
            ({"clusterIP": "10.96.0.99"}, "spec.clusterIPs[0]"),
            (
                {"clusterIP": "10.96.0.99", "clusterIPs": ["10.96.0.99", "fd00::99"]},
                "spec.clusterIPs[0]",
            ),
            ({"clusterIPs": ["10.96.0.99"]}, "spec.clusterIPs[0]"),
            ({"clusterIP": "None"}, "spec.clusterIPs[0]"),
            ({"clusterIPs": [h.V4, "fd00::99"]}, "spec.clusterIPs[1]"),
            ({"ipFamilies": ["IPv6", "IPv4"]}, "spec.ipFamilies[0]"),
            ({"ipFamily": "IPv6"}, "spec.ipFamily"),
            ({"ipFamilyPolicy": "SingleStack", "clusterIPs": [h.V6]}, "spec.clusterIPs[0]"),
        ],
    )
    def test_primary_and_allocated_values_are_immutable(
        self, spec: dict[str, Any], field: str
    ) -> None:
        alloc = h.allocator()
        old = h.create(
            alloc,
            h.service(ipFamilyPolicy="RequireDualStack", clusterIP=h.V4, clusterIPs=[h.V4, h.V6]),
        )
        assert h.refused(alloc, alloc.update_service, old, {"spec": spec}).field == field

    def test_to_external_name_releases(self) -> None:
        alloc = h.allocator()
        old = h.create(alloc, h.service(ipFamilyPolicy="PreferDualStack"))
        new = alloc.update_service(old, {"spec": {"type": "ExternalName", "externalName": "x.io"}})
        assert not {"clusterIP", "clusterIPs", "ipFamilies", "ipFamilyPolicy"} & set(new["spec"])
        assert "default/web" not in alloc
        assert alloc.used("IPv4") == alloc.used("IPv6") == 0
        # Unchanged family fields given explicitly are dropped too, as Kubernetes does.
        again = h.create(alloc, h.service("other", ipFamilyPolicy="PreferDualStack"))
        spec = {**again["spec"], "type": "ExternalName", "externalName": "x.io"}
        result = alloc.update_service(again, {"metadata": {"name": "other"}, "spec": spec})
        assert "clusterIPs" not in result["spec"]
        # A changed one is refused.
        third = h.create(alloc, h.service("third"))
        bad = {"spec": {"type": "ExternalName", "externalName": "x.io", "clusterIP": h.V4}}
        assert h.refused(alloc, alloc.update_service, third, bad).field == "spec.clusterIPs"

    def test_from_external_name_allocates(self) -> None:
        alloc = h.allocator()
        old = h.create(alloc, h.service(type="ExternalName", externalName="x.io"))
        new = alloc.update_service(
            old, {"spec": {"type": "ClusterIP", "ipFamilyPolicy": "RequireDualStack"}}
        )
        assert "externalName" not in new["spec"]
        assert len(new["spec"]["clusterIPs"]) == 2
        assert alloc.get("default/web") == tuple(map(netaddr.IPAddress, new["spec"]["clusterIPs"]))

    def test_type_change_between_ip_types_keeps_addresses(self) -> None:
        alloc = h.allocator()
        old = h.create(alloc, h.service())
        new = alloc.update_service(old, {"spec": {"type": "LoadBalancer"}})
        assert new["spec"]["clusterIPs"] == old["spec"]["clusterIPs"]
        assert (
            h.refused(
                alloc,
                alloc.update_service,
                new,
                {"spec": {"type": "NodePort", "clusterIP": "None"}},
            ).field
            == "spec.clusterIPs[0]"
        )

    def test_headless_may_change_families_but_not_get_an_address(self) -> None:
        alloc = h.allocator()
        old = h.create(alloc, h.service(clusterIP="None"))
        new = alloc.update_service(
            old, {"spec": {"ipFamilyPolicy": "RequireDualStack", "ipFamilies": ["IPv4", "IPv6"]}}
        )
        assert new["spec"]["ipFamilies"] == ["IPv4", "IPv6"]
        assert len(alloc) == 0
        bad = {"spec": {"clusterIP": h.V4, "clusterIPs": [h.V4]}}
        assert h.refused(alloc, alloc.update_service, new, bad).field == "spec.clusterIPs[0]"

    def test_unchanged_prefer_dual_stack_is_not_upgraded(self) -> None:
        alloc = h.allocator()
        alloc.allocate("default/web", ip=h.V4)
        old = h.service(
            clusterIP=h.V4, clusterIPs=[h.V4], ipFamilies=["IPv4"], ipFamilyPolicy="PreferDualStack"
        )
        assert alloc.update_service(old, old) == old
        assert alloc.used("IPv6") == 0
        upgraded = alloc.update_service(old, {"spec": {"ipFamilyPolicy": "RequireDualStack"}})
        assert upgraded["spec"]["ipFamilies"] == ["IPv4", "IPv6"]

    def test_old_must_be_what_is_held(self) -> None:
        alloc = h.allocator()
        old = h.create(alloc, h.service(clusterIP=h.V4))
        stale = copy.deepcopy(old)
        stale["spec"]["clusterIP"] = stale["spec"]["clusterIPs"][0] = "10.96.0.51"
        assert h.refused(alloc, alloc.update_service, stale, stale).field == "spec.clusterIPs"
        unknown = h.service("nobody", clusterIP="10.96.0.52")
        assert h.refused(alloc, alloc.update_service, unknown, unknown).field == "spec.clusterIPs"
        bare = h.service()  # no cluster IP at all
        assert h.refused(alloc, alloc.update_service, bare, bare).field == "spec.clusterIPs"
        external = h.service(type="ExternalName", externalName="x.io")
        assert h.refused(alloc, alloc.update_service, external, external).field == "spec.clusterIPs"
        broken = h.service(clusterIP="nonsense")
        error = h.refused(alloc, alloc.update_service, broken, old)
        assert error.field == "spec.clusterIPs[0]"
        assert str(error).startswith("old manifest")

    @pytest.mark.parametrize(
        ("metadata", "field"),
        [({"name": "db"}, "metadata.name"), ({"namespace": "prod"}, "metadata.namespace")],
    )
    def test_name_and_namespace_may_not_change(self, metadata: dict[str, str], field: str) -> None:
        alloc = h.allocator()
        old = h.create(alloc, h.service())
        assert h.refused(alloc, alloc.update_service, old, {"metadata": metadata}).field == field
        same = alloc.update_service(old, {"metadata": {"name": "web", "namespace": "default"}})
        assert same["spec"] == old["spec"]

    def test_exhausted_upgrade_changes_nothing(self) -> None:
        alloc = ServiceIPAllocator(
            ClusterConfig("10.244.0.0/16,fc00::/24", "10.96.0.0/24,fd00::/127")
        )
        h.create(alloc, h.service("only", ipFamilies=["IPv6"]))
        old = h.create(alloc, h.service())
        before = alloc.snapshot()
        with pytest.raises(PoolExhaustedError):
            alloc.update_service(old, {"spec": {"ipFamilyPolicy": "RequireDualStack"}})
        assert alloc.snapshot() == before

    def test_new_must_be_a_mapping(self) -> None:
        alloc = h.allocator()
        old = h.create(alloc, h.service())
        assert h.refused(alloc, alloc.update_service, old, ["spec"]).field == ""

    @pytest.mark.parametrize("metadata", ["x", ["x"], True, 7])
    def test_new_metadata_must_be_a_mapping(self, metadata: Any) -> None:
        alloc = h.allocator()
        old = h.create(alloc, h.service())
        error = h.refused(alloc, alloc.update_service, old, {"metadata": metadata})
        assert error.field == "metadata"
        assert repr(metadata) in str(error)

    @pytest.mark.parametrize("selector", [{"app": "a"}, None])
    @pytest.mark.parametrize("spec", EMPTY_IP_FIELDS)
    def test_empty_ip_fields_keep_a_headless_service(
        self, spec: dict[str, Any], selector: Any
    ) -> None:
        """Kubernetes' patchAllocatedValues: "" and [] on update are unset."""
        alloc = h.allocator()
        old = h.create(alloc, h.service(clusterIP="None", selector=selector))
        before = alloc.snapshot()
        new = alloc.update_service(old, {"spec": {**spec, "selector": selector}})
        assert new["spec"] == old["spec"]
        assert alloc.snapshot() == before
        assert len(alloc) == 0

    @pytest.mark.parametrize("spec", EMPTY_IP_FIELDS)
    def test_empty_ip_fields_keep_the_cluster_ips(self, spec: dict[str, Any]) -> None:
        alloc = h.allocator()
        old = h.create(alloc, h.service(ipFamilyPolicy="RequireDualStack"))
        before = alloc.snapshot()
        assert alloc.update_service(old, {"spec": spec})["spec"] == old["spec"]
        assert alloc.snapshot() == before
        # and only the omitted ones are inherited: a given secondary is a change
        changed = {**spec, "clusterIP": old["spec"]["clusterIP"]}
        changed["clusterIPs"] = [old["spec"]["clusterIP"], "fd00::99"]
        h.refused(alloc, alloc.update_service, old, {"spec": changed})

    def test_empty_ip_fields_with_external_name(self) -> None:
        alloc = h.allocator()
        old = h.create(alloc, h.service(ipFamilyPolicy="PreferDualStack"))
        empty = {"clusterIP": "", "clusterIPs": [], "type": "ExternalName", "externalName": "x.io"}
        external = alloc.update_service(old, {"spec": empty})
        assert external["spec"] == {"type": "ExternalName", "externalName": "x.io"}
        assert len(alloc) == 0
        back = alloc.update_service(external, {"spec": {"type": "ClusterIP", "clusterIP": ""}})
        assert len(back["spec"]["clusterIPs"]) == 1
        assert alloc.get("default/web") == (netaddr.IPAddress(back["spec"]["clusterIP"]),)

    @pytest.mark.parametrize("spec", [{"type": None}, {"type": None, "externalName": "y.io"}])
    def test_none_type_inherits_external_name(self, spec: dict[str, Any]) -> None:
        alloc = h.allocator()
        old = h.create(alloc, h.service(type="ExternalName", externalName="x.io"))
        new = alloc.update_service(old, {"spec": spec})
        assert new["spec"] == {
            "type": "ExternalName",
            "externalName": spec.get("externalName", "x.io"),
        }
        assert len(alloc) == 0

    @pytest.mark.parametrize(
        ("name", "spec"),
        [
            ("q", {"ipFamilies": ["IPv4"]}),
            ("web", {"ipFamilies": ["IPv4", "IPv6"], "clusterIP": h.V4}),
            ("web", {"ipFamilies": ["IPv4", "IPv6"], "clusterIP": h.V4, "clusterIPs": [h.V4]}),
        ],
    )
    def test_old_listing_more_families_than_ips(self, name: str, spec: dict[str, Any]) -> None:
        alloc = h.allocator()
        h.create(alloc, h.service(clusterIP=h.V4))
        old = {"metadata": {"name": name}, "spec": spec}
        error = h.refused(alloc, alloc.update_service, old, {})
        assert error.field == "spec.clusterIPs"
        assert repr(f"default/{name}") in str(error)
