"""Tests for dualstack_ipam.cluster.config: ClusterConfig from flags, validation, rendering."""

from __future__ import annotations

import importlib
import ipaddress
import json
import pickle
from typing import Any

import attrs
import netaddr
import pytest
from hypothesis import given
from hypothesis import strategies as st

from dualstack_ipam.cluster.config import ClusterConfig
from dualstack_ipam.errors import (
    AddressFormatError,
    FamilyNotConfiguredError,
    InvalidConfigError,
    SnapshotError,
)
from dualstack_ipam.net import IPFamily

SEED_CLUSTER = "--cluster-cidr=10.244.0.0/16,fc00::/24"
SEED_GATE = '--feature-gates="IPv6DualStack=true"'
SEED_SERVICE = "--service-cluster-ip-range=10.96.0.0/12,fd00:10:96::/112"
V4, V6 = IPFamily.IPv4, IPFamily.IPv6


def net(text: str) -> netaddr.IPNetwork:
    return netaddr.IPNetwork(text)


def seed() -> ClusterConfig:
    return ClusterConfig("10.244.0.0/16,fc00::/24", "10.96.0.0/12,fd00:10:96::/112")


# ---------------------------------------------------------------- the seed


def test_seed_flags_verbatim() -> None:
    config = ClusterConfig.from_flags([SEED_GATE, SEED_CLUSTER, SEED_SERVICE])
    assert config == seed()
    assert config.cluster_cidrs == (net("10.244.0.0/16"), net("fc00::/24"))
    assert config.service_cidrs == (net("10.96.0.0/12"), net("fd00:10:96::/112"))
    assert (config.node_mask_ipv4, config.node_mask_ipv6) == (24, 64)
    assert config.families == (V4, V6)
    assert config.primary_family is V4
    assert config.is_dual_stack
    assert config.service_families == (V4, V6)


def test_seed_ipv6_cidr_with_64_mask_is_accepted_unlike_kubernetes() -> None:
    # Kubernetes refuses more than 16 bits between cluster and node mask.
    config = ClusterConfig.from_flags([SEED_CLUSTER])
    assert config.node_capacity(V6) == 2**40
    assert config.max_nodes == 256


def test_space_separated_values_and_single_quotes() -> None:
    config = ClusterConfig.from_flags(
        [
            "--cluster-cidr",
            "10.244.0.0/16,fc00::/24",
            "--feature-gates",
            "'IPv6DualStack=true'",
            "--service-cluster-ip-range",
            '"10.96.0.0/12,fd00:10:96::/112"',
            "--node-cidr-mask-size-ipv4",
            "25",
            "--node-cidr-mask-size-ipv6=80",
        ]
    )
    assert config == ClusterConfig(
        "10.244.0.0/16,fc00::/24",
        "10.96.0.0/12,fd00:10:96::/112",
        node_mask_ipv4=25,
        node_mask_ipv6=80,
    )


def test_last_repeated_flag_wins() -> None:
    config = ClusterConfig.from_flags(
        [
            "--cluster-cidr=192.168.0.0/16",
            "--node-cidr-mask-size-ipv4=20",
            SEED_CLUSTER,
            "--node-cidr-mask-size-ipv4=26",
            "--feature-gates=IPv6DualStack=false",
            "--feature-gates=IPv6DualStack=true",
        ]
    )
    assert config.cluster_cidrs == (net("10.244.0.0/16"), net("fc00::/24"))
    assert config.node_mask(V4) == 26


def test_other_feature_gates_are_ignored_and_absent_gate_is_true() -> None:
    flags = [SEED_CLUSTER, "--feature-gates=Foo=true,IPv6DualStack=true, Bar=false"]
    assert ClusterConfig.from_flags(flags).is_dual_stack
    assert ClusterConfig.from_flags([SEED_CLUSTER, "--feature-gates=Foo=false"]).is_dual_stack
    assert ClusterConfig.from_flags([SEED_CLUSTER]).is_dual_stack


def test_gate_false_allows_single_stack() -> None:
    config = ClusterConfig.from_flags(
        ["--cluster-cidr=fd00::/48", "--feature-gates=IPv6DualStack=false"]
    )
    assert config.families == (V6,)


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (
            [SEED_CLUSTER, "--feature-gates=IPv6DualStack=false"],
            "dualstack feature is not enabled",
        ),
        (
            ["--cluster-cidr=10.0.0.0/8", SEED_SERVICE, "--feature-gates=IPv6DualStack=false"],
            "can only be used if IPv6DualStack feature is enabled",
        ),
        ([SEED_CLUSTER, "--feature-gates=IPv6DualStack=maybe"], "'maybe'"),
        ([SEED_CLUSTER, "--feature-gates=IPv6DualStack"], "missing bool value for IPv6DualStack"),
    ],
)
def test_feature_gate_errors(flags: list[str], message: str) -> None:
    with pytest.raises(InvalidConfigError, match=message):
        ClusterConfig.from_flags(flags)


@pytest.mark.parametrize("value", ["true", "false", "True", "0", "1"])
def test_allocate_node_cidrs_with_value(value: str) -> None:
    for flags in (
        [SEED_CLUSTER, f"--allocate-node-cidrs={value}"],
        [SEED_CLUSTER, "--allocate-node-cidrs", value],
    ):
        assert ClusterConfig.from_flags(flags) == ClusterConfig("10.244.0.0/16,fc00::/24")


def test_allocate_node_cidrs_bare() -> None:
    for flags in (
        ["--allocate-node-cidrs", SEED_CLUSTER],
        [SEED_CLUSTER, "--allocate-node-cidrs"],
    ):
        assert ClusterConfig.from_flags(flags).is_dual_stack


def test_allocate_node_cidrs_bad_value() -> None:
    with pytest.raises(InvalidConfigError, match="'maybe'") as info:
        ClusterConfig.from_flags([SEED_CLUSTER, "--allocate-node-cidrs=maybe"])
    assert info.value.value == "maybe"
    # Bare, a following non-bool word is a stray argument, as in pflag.
    with pytest.raises(InvalidConfigError, match="unexpected argument 'maybe'"):
        ClusterConfig.from_flags([SEED_CLUSTER, "--allocate-node-cidrs", "maybe"])


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        ([SEED_CLUSTER, "--proxy-mode=ipvs"], "unknown flag: --proxy-mode"),
        ([SEED_CLUSTER, "--cluster-cidrs=10.0.0.0/8"], "unknown flag: --cluster-cidrs"),
        ([SEED_CLUSTER, "10.0.0.0/8"], "unexpected argument '10.0.0.0/8'"),
        ([SEED_CLUSTER, "-cluster-cidr=10.0.0.0/8"], "unexpected argument"),
        ([SEED_CLUSTER, "--"], "unexpected argument '--'"),
        (["--cluster-cidr"], "flag needs an argument: --cluster-cidr"),
        (["--cluster-cidr", "--allocate-node-cidrs"], "flag needs an argument: --cluster-cidr"),
        ([SEED_SERVICE], "--cluster-cidr is required"),
        ([], "--cluster-cidr is required"),
        (["--cluster-cidr="], "--cluster-cidr is required"),
        (['--cluster-cidr=""'], "--cluster-cidr is required"),
        ([SEED_CLUSTER, "--node-cidr-mask-size-ipv4=abc"], "'abc'"),
        ([SEED_CLUSTER, "--node-cidr-mask-size-ipv4=2.5"], "'2.5'"),
        ([SEED_CLUSTER, "--node-cidr-mask-size-ipv6="], "''"),
    ],
)
def test_flag_syntax_errors(flags: list[str], message: str) -> None:
    with pytest.raises(InvalidConfigError, match=message):
        ClusterConfig.from_flags(flags)


@pytest.mark.parametrize("argv", ["--cluster-cidr=10.0.0.0/8", None, 5])
def test_flags_must_be_a_sequence_of_strings(argv: object) -> None:
    with pytest.raises(InvalidConfigError):
        ClusterConfig.from_flags(argv)  # type: ignore[arg-type]
    with pytest.raises(InvalidConfigError, match="not a string"):
        ClusterConfig.from_flags([SEED_CLUSTER, 5])  # type: ignore[list-item]


@pytest.mark.parametrize("cidr", ["", " ", '""', "' '"])
@pytest.mark.parametrize(
    "mask", ["--node-cidr-mask-size", "--node-cidr-mask-size-ipv4", "--node-cidr-mask-size-ipv6"]
)
def test_empty_cluster_cidr_with_a_mask_flag(cidr: str, mask: str) -> None:
    # Defect 2: an empty --cluster-cidr with a mask flag raised IndexError.
    for argv in ([f"--cluster-cidr={cidr}", f"{mask}=24"], ["--cluster-cidr", cidr, mask, "24"]):
        with pytest.raises(InvalidConfigError, match="--cluster-cidr is required") as info:
            ClusterConfig.from_flags(argv)
        assert "--cluster-cidr=" in str(info.value)


# A real kube-controller-manager command line (kubeadm's static Pod, trimmed).
KCM_ARGV = [
    "--allocate-node-cidrs=true",
    "--authentication-kubeconfig=/etc/kubernetes/controller-manager.conf",
    "--bind-address=127.0.0.1",
    "--client-ca-file=/etc/kubernetes/pki/ca.crt",
    "--cluster-cidr=10.244.0.0/16,fc00::/24",
    "--cluster-name=kubernetes",
    "--controllers=*,bootstrapsigner,tokencleaner",
    "--leader-elect",
    "--v",
    "2",
    "--profiling",
    "--service-cluster-ip-range=10.96.0.0/12,fd00:10:96::/112",
    "--node-cidr-mask-size-ipv4=25",
    "--use-service-account-credentials=true",
]


def test_ignore_unknown_reads_a_real_command_line() -> None:
    # Defect 7: a whole kube-controller-manager command line can be planned.
    with pytest.raises(InvalidConfigError, match="unknown flag: --authentication-kubeconfig"):
        ClusterConfig.from_flags(KCM_ARGV)
    config = ClusterConfig.from_flags(KCM_ARGV, ignore_unknown=True)
    assert config == ClusterConfig(
        "10.244.0.0/16,fc00::/24", "10.96.0.0/12,fd00:10:96::/112", node_mask_ipv4=25
    )


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        # An unknown flag takes the next token as its value unless it is a flag.
        (["--v", "--cluster-cidr=10.0.0.0/8"], "10.0.0.0/8"),
        (["--v", "2", "--cluster-cidr", "10.0.0.0/8"], "10.0.0.0/8"),
        (["--cluster-cidr", "10.0.0.0/8", "--kubeconfig", "/x", "--leader-elect"], "10.0.0.0/8"),
        (["--cluster-cidr=10.0.0.0/8", "--unknown", "--cluster-cidr=fd00::/48"], "fd00::/48"),
        (["--cluster-cidr=10.0.0.0/8", "--x=--cluster-cidr=fd00::/48"], "10.0.0.0/8"),
        (["--cluster-cidr=10.0.0.0/8", "--x", "-", "--"], None),
    ],
)
def test_ignore_unknown_value_rule(argv: list[str], expected: str | None) -> None:
    if expected is None:
        # Skipping unknown flags does not make stray arguments acceptable.
        with pytest.raises(InvalidConfigError, match="unexpected argument '--'"):
            ClusterConfig.from_flags(argv, ignore_unknown=True)
        return
    assert ClusterConfig.from_flags(argv, ignore_unknown=True).cluster_cidrs == (net(expected),)


def test_ignore_unknown_keeps_every_other_rule() -> None:
    with pytest.raises(InvalidConfigError, match=r"unexpected argument '10\.0\.0\.0/8'"):
        ClusterConfig.from_flags([SEED_CLUSTER, "10.0.0.0/8"], ignore_unknown=True)
    with pytest.raises(InvalidConfigError, match="--cluster-cidr is required"):
        ClusterConfig.from_flags(["--cluster-cidrs=10.0.0.0/8"], ignore_unknown=True)
    with pytest.raises(InvalidConfigError, match="not allowed with dual-stack"):
        ClusterConfig.from_flags(
            [SEED_CLUSTER, "--node-cidr-mask-size=24", "--v=2"], ignore_unknown=True
        )
    with pytest.raises(InvalidConfigError, match="ignore_unknown must be a bool"):
        ClusterConfig.from_flags([SEED_CLUSTER], ignore_unknown="yes")  # type: ignore[arg-type]


@given(
    st.lists(
        st.tuples(
            st.from_regex(r"[a-z][a-z-]{0,12}", fullmatch=True).filter(
                lambda name: (
                    not name.startswith(("cluster-cidr", "node-cidr", "service-", "alloc"))
                    and name != "feature-gates"
                )
            ),
            st.one_of(st.none(), st.from_regex(r"[a-z0-9/.=]{0,8}", fullmatch=True)),
            st.booleans(),
        ),
        max_size=5,
    ),
    st.integers(min_value=0, max_value=5),
)
def test_unknown_flags_anywhere_change_nothing(
    unknown: list[tuple[str, str | None, bool]], where: int
) -> None:
    extra: list[str] = []
    for name, value, joined in unknown:
        if value is None:
            extra.append(f"--{name}")
        elif joined:
            extra.append(f"--{name}={value}")
        else:
            extra.extend([f"--{name}", value or "v"])
    known = [SEED_CLUSTER, SEED_SERVICE, "--node-cidr-mask-size-ipv6=80"]
    where = min(where, len(known))
    argv = known[:where] + extra + known[where:]
    assert ClusterConfig.from_flags(argv, ignore_unknown=True) == ClusterConfig.from_flags(known)


# ------------------------------------------------------------- CIDR lists


def test_three_cluster_cidrs() -> None:
    with pytest.raises(InvalidConfigError, match="length of clusterCIDRs is:3 more than max"):
        ClusterConfig.from_flags(["--cluster-cidr=10.0.0.0/8,fd00::/48,192.168.0.0/16"])


def test_two_cluster_cidrs_of_one_family() -> None:
    with pytest.raises(InvalidConfigError, match="must be of different IP family") as info:
        ClusterConfig.from_flags(["--cluster-cidr=10.0.0.0/8,192.168.0.0/16"])
    assert "not configured as dual stack" in str(info.value)
    assert info.value.value == (net("10.0.0.0/8"), net("192.168.0.0/16"))


def test_service_ranges_count_and_family() -> None:
    with pytest.raises(InvalidConfigError, match="more than max allowed of 2"):
        ClusterConfig("10.0.0.0/8", "10.96.0.0/12,fd00::/112,10.97.0.0/16")
    with pytest.raises(InvalidConfigError, match=r"range\[1\] must be of different IP family"):
        ClusterConfig("10.0.0.0/8", "fd00::/112,fd01::/112")


def test_bad_cidr_text_names_the_flag_and_value() -> None:
    with pytest.raises(AddressFormatError, match=r"--cluster-cidr\[1\].*'fc00::/129'") as info:
        ClusterConfig.from_flags(["--cluster-cidr=10.0.0.0/8,fc00::/129"])
    assert info.value.value == "fc00::/129"
    with pytest.raises(AddressFormatError, match="service-cluster-ip-range"):
        ClusterConfig("10.0.0.0/8", "10.96.0.0/12,")
    with pytest.raises(AddressFormatError):
        ClusterConfig([object()])


def test_host_bits_are_dropped() -> None:
    config = ClusterConfig("127.123.3.0/16", "fd00:10:96::5/112")
    assert config.cluster_cidrs == (net("127.123.0.0/16"),)
    assert str(config.service_cidrs[0]) == "fd00:10:96::/112"


def test_constructor_accepts_every_network_form() -> None:
    forms = [
        ClusterConfig("10.244.0.0/16, fc00::/24"),
        ClusterConfig(["10.244.0.0/16", "fc00::/24"]),
        ClusterConfig((net("10.244.0.0/16"), ipaddress.ip_network("fc00::/24"))),
        ClusterConfig(["10.244.0.0/16", ipaddress.ip_interface("fc00::1/24")]),
    ]
    assert len(set(forms)) == 1
    # One network object stands for itself, it is not iterated over.
    assert ClusterConfig(net("10.0.0.0/8")).cluster_cidrs == (net("10.0.0.0/8"),)
    assert ClusterConfig(ipaddress.ip_network("fd00::/48")).families == (V6,)


@pytest.mark.parametrize("bad", [5, None, b"10.0.0.0/8"])
def test_constructor_rejects_non_sequences(bad: object) -> None:
    with pytest.raises(InvalidConfigError) as info:
        ClusterConfig(bad)
    assert info.value.value == bad
    with pytest.raises(InvalidConfigError):
        ClusterConfig("10.0.0.0/8", bad)


@pytest.mark.parametrize(
    "bad",
    [
        netaddr.IPRange("10.0.0.0", "10.15.255.255"),
        netaddr.IPGlob("10.*.*.*"),
        netaddr.IPSet(["::/0"]),
        {"10.244.0.0/16", "fc00::/24"},
        frozenset({"10.244.0.0/16"}),
        {"10.244.0.0/16": None},
        iter(["10.244.0.0/16"]),
    ],
    ids=["IPRange", "IPGlob", "IPSet", "set", "frozenset", "dict", "iterator"],
)
def test_unordered_and_address_containers_are_refused(bad: Any) -> None:
    # Defect 5: these were iterated address by address (IPRange: seconds,
    # IPGlob: forever), raised IndexError (IPSet), or made the primary
    # family depend on PYTHONHASHSEED (set).
    with pytest.raises(InvalidConfigError, match="--cluster-cidr must be"):
        ClusterConfig(bad)
    with pytest.raises(InvalidConfigError, match="--service-cluster-ip-range must be"):
        ClusterConfig("10.0.0.0/8", bad)


def test_zero_cluster_cidrs() -> None:
    empties: list[object] = ["", [], ()]
    for empty in empties:
        with pytest.raises(InvalidConfigError, match="--cluster-cidr is required"):
            ClusterConfig(empty)


# ----------------------------------------------------------------- masks


def test_node_cidr_mask_size_sets_single_stack_mask() -> None:
    v4 = ClusterConfig.from_flags(["--cluster-cidr=10.0.0.0/8", "--node-cidr-mask-size=20"])
    v6 = ClusterConfig.from_flags(["--cluster-cidr=fd00::/48", "--node-cidr-mask-size", "56"])
    assert v4.node_mask(V4) == 20
    assert v6.node_mask(V6) == 56
    assert v6 == ClusterConfig("fd00::/48", node_mask_ipv6=56)


def test_per_family_flag_for_the_single_family() -> None:
    config = ClusterConfig.from_flags(["--cluster-cidr=fd00::/48", "--node-cidr-mask-size-ipv6=96"])
    assert config.node_mask("IPv6") == 96


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (
            [SEED_CLUSTER, "--node-cidr-mask-size=24"],
            "usage of --node-cidr-mask-size is not allowed with dual-stack clusters",
        ),
        (
            [
                "--cluster-cidr=10.0.0.0/8",
                "--node-cidr-mask-size=24",
                "--node-cidr-mask-size-ipv4=24",
            ],
            "is not allowed if --node-cidr-mask-size is set",
        ),
        (
            ["--cluster-cidr=10.0.0.0/8", "--node-cidr-mask-size-ipv6=64"],
            "--node-cidr-mask-size-ipv6 is not allowed for a single-stack IPv4 cluster",
        ),
        (
            ["--cluster-cidr=fd00::/48", "--node-cidr-mask-size-ipv4=24"],
            "--node-cidr-mask-size-ipv4 is not allowed for a single-stack IPv6 cluster",
        ),
        (
            [SEED_CLUSTER, "--node-cidr-mask-size-ipv4=8"],
            "mask size of cluster CIDR must be less than or equal to --node-cidr-mask-size",
        ),
        ([SEED_CLUSTER, "--node-cidr-mask-size-ipv6=16"], "node mask 16 is shorter"),
        ([SEED_CLUSTER, "--node-cidr-mask-size-ipv4=33"], "node mask 33 is longer"),
        ([SEED_CLUSTER, "--node-cidr-mask-size-ipv6=129"], "node mask 129 is longer"),
        ([SEED_CLUSTER, "--node-cidr-mask-size-ipv4=-1"], "node mask -1 is shorter"),
    ],
)
def test_mask_errors(flags: list[str], message: str) -> None:
    with pytest.raises(InvalidConfigError, match=message):
        ClusterConfig.from_flags(flags)


def test_mask_error_carries_the_value() -> None:
    with pytest.raises(InvalidConfigError) as info:
        ClusterConfig("10.244.0.0/16", node_mask_ipv4=12)
    assert info.value.value == 12
    for bad in (True, "24", 24.0, None):
        with pytest.raises(InvalidConfigError, match="must be an integer") as info:
            ClusterConfig("10.244.0.0/16", node_mask_ipv4=bad)  # type: ignore[arg-type]
        assert info.value.value is bad


def test_mask_equal_to_the_cluster_prefix_and_to_the_width() -> None:
    assert ClusterConfig("10.0.0.0/24", node_mask_ipv4=24).max_nodes == 1
    assert ClusterConfig("10.0.0.0/24", node_mask_ipv4=32).max_nodes == 256
    assert ClusterConfig("fd00::/120", node_mask_ipv6=128).max_nodes == 256


def test_mask_of_an_absent_family_does_not_matter() -> None:
    a = ClusterConfig("10.0.0.0/8", node_mask_ipv6=80)
    b = ClusterConfig("10.0.0.0/8")
    assert a == b
    assert hash(a) == hash(b)
    assert a.node_mask_ipv6 == 64
    # Even a mask that would be invalid for that family is ignored.
    assert ClusterConfig("10.0.0.0/8", node_mask_ipv6=500) == b
    assert ClusterConfig.from_flags(a.component_flags()["kube-controller-manager"]) == a


# ---------------------------------------------------------------- queries


def test_family_order_follows_cluster_cidrs() -> None:
    config = ClusterConfig("fc00::/24,10.244.0.0/16", "10.96.0.0/12,fd00:10:96::/112")
    assert config.families == (V6, V4)
    assert config.primary_family is V6
    assert config.service_families == (V4, V6)


def test_lookups_by_family() -> None:
    config = ClusterConfig("10.244.0.0/16", "fd00:10:96::/112", node_mask_ipv4=26)
    assert config.cluster_cidr(V4) == net("10.244.0.0/16")
    assert config.cluster_cidr("IPv4") == net("10.244.0.0/16")
    assert config.service_cidr("IPv6") == net("fd00:10:96::/112")
    assert config.node_mask(V4) == 26
    assert not config.is_dual_stack
    for method in (config.cluster_cidr, config.node_mask, config.node_capacity):
        with pytest.raises(FamilyNotConfiguredError, match="IPv6") as info:
            method("IPv6")
        assert info.value.family is V6
    with pytest.raises(FamilyNotConfiguredError) as info:
        config.service_cidr(V4)
    assert info.value.family is V4
    with pytest.raises(InvalidConfigError, match="'IPv5'"):
        config.cluster_cidr("IPv5")


@pytest.mark.parametrize(
    ("cluster", "service", "masks", "expected"),
    [
        ("10.244.0.0/16,fc00::/24", "", {}, 256),
        ("10.0.0.0/16", "10.0.0.0/20", {}, 240),  # a Service range inside: 16 set aside
        ("10.0.0.0/16", "10.0.5.0/28", {}, 255),  # smaller than a node subnet: 1 set aside
        ("10.0.0.0/16", "10.0.0.0/8", {}, 0),  # the Service range covers the cluster
        ("10.0.0.0/16", "10.1.0.0/20", {}, 256),  # disjoint
        ("10.0.0.0/16", "fd00::/112", {}, 256),  # another family
        ("10.0.0.0/8,fd00::/112", "", {"node_mask_ipv6": 120}, 256),  # IPv6 is the limit
        ("10.0.0.0/8,fd00::/112", "fd00::/116,10.0.0.0/9", {"node_mask_ipv6": 120}, 240),
        ("fd00::/64", "fd00::/112", {"node_mask_ipv6": 80}, 65535),
    ],
)
def test_max_nodes(cluster: str, service: str, masks: dict[str, int], expected: int) -> None:
    assert ClusterConfig(cluster, service, **masks).max_nodes == expected


# --------------------------------------------------------- component flags


def test_component_flags_of_the_seed() -> None:
    assert seed().component_flags() == {
        "kube-controller-manager": [
            "--allocate-node-cidrs=true",
            "--cluster-cidr=10.244.0.0/16,fc00::/24",
            "--service-cluster-ip-range=10.96.0.0/12,fd00:10:96::/112",
            "--node-cidr-mask-size-ipv4=24",
            "--node-cidr-mask-size-ipv6=64",
        ],
        "kube-apiserver": ["--service-cluster-ip-range=10.96.0.0/12,fd00:10:96::/112"],
        "kubelet": [],
        "kube-proxy": ["--proxy-mode=ipvs", "--cluster-cidr=10.244.0.0/16,fc00::/24"],
    }


def test_component_flags_with_the_feature_gate() -> None:
    flags = seed().component_flags(feature_gate=True)
    assert set(flags) == {"kube-controller-manager", "kube-apiserver", "kubelet", "kube-proxy"}
    for component, values in flags.items():
        assert values[0] == "--feature-gates=IPv6DualStack=true", component
    assert flags["kubelet"] == ["--feature-gates=IPv6DualStack=true"]
    assert ClusterConfig.from_flags(flags["kube-controller-manager"]) == seed()


def test_component_flags_single_stack_without_services() -> None:
    config = ClusterConfig("FD00:0:0:0::/48", node_mask_ipv6=56)
    flags = config.component_flags()
    assert flags["kube-controller-manager"] == [
        "--allocate-node-cidrs=true",
        "--cluster-cidr=fd00::/48",
        "--node-cidr-mask-size=56",
    ]
    assert flags["kube-apiserver"] == []
    assert ClusterConfig.from_flags(flags["kube-controller-manager"]) == config


# -------------------------------------------------------------- value object


def test_frozen_slotted_hashable() -> None:
    config = seed()
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        config.node_mask_ipv4 = 20  # type: ignore[misc]
    assert not hasattr(config, "__dict__")
    assert {config, seed()} == {config}
    assert config != ClusterConfig("10.244.0.0/16,fc00::/24")
    assert config != ClusterConfig("fc00::/24,10.244.0.0/16", "10.96.0.0/12,fd00:10:96::/112")
    assert "10.244.0.0/16" in repr(config)


def test_evolve_revalidates_and_pickle_keeps_queries() -> None:
    config = seed()
    changed = attrs.evolve(config, node_mask_ipv4=20)
    assert changed.node_mask(V4) == 20
    assert changed.max_nodes == 16
    with pytest.raises(InvalidConfigError):
        attrs.evolve(config, node_mask_ipv4=4)
    copied = pickle.loads(pickle.dumps(config))
    assert copied == config
    assert (copied.families, copied.max_nodes) == (config.families, config.max_nodes)


def test_to_dict_round_trip_through_json() -> None:
    config = ClusterConfig("fc00::/24,10.244.0.0/16", "fd00:10:96::/112", node_mask_ipv4=26)
    data = json.loads(json.dumps(config.to_dict()))
    assert data == {
        "cluster_cidrs": ["fc00::/24", "10.244.0.0/16"],
        "service_cidrs": ["fd00:10:96::/112"],
        "node_mask_ipv4": 26,
        "node_mask_ipv6": 64,
    }
    assert ClusterConfig.from_dict(data) == config


@pytest.mark.parametrize(
    "mutate",
    [
        lambda d: None,
        lambda d: [d],
        lambda d: {k: v for k, v in d.items() if k != "service_cidrs"},
        lambda d: {**d, "extra": 1},
        lambda d: {**d, "cluster_cidrs": "10.0.0.0/8"},
        lambda d: {**d, "cluster_cidrs": [167772160]},
        lambda d: {**d, "cluster_cidrs": []},
        lambda d: {**d, "cluster_cidrs": ["10.0.0.0/8", "11.0.0.0/8"]},
        lambda d: {**d, "cluster_cidrs": ["not a cidr"]},
        lambda d: {**d, "node_mask_ipv4": "24"},
        lambda d: {**d, "node_mask_ipv4": True},
        lambda d: {**d, "node_mask_ipv4": 4},
    ],
)
def test_from_dict_rejects_corrupt_data(mutate: object) -> None:
    data = seed().to_dict()
    with pytest.raises(SnapshotError):
        ClusterConfig.from_dict(mutate(data))  # type: ignore[operator]


def test_public_name() -> None:
    # Through import_module so that type checking passes before and after the export.
    package = importlib.import_module("dualstack_ipam")
    assert package.ClusterConfig is ClusterConfig
    assert "ClusterConfig" in package.__all__


# -------------------------------------------------------------- properties


@st.composite
def configs(draw: st.DrawFn, *, small: bool = False) -> ClusterConfig:
    """Random valid configurations; ``small`` keeps node-subnet counts tiny."""
    families = draw(st.sampled_from([(V4,), (V6,), (V4, V6), (V6, V4)]))
    cluster, masks, service = [], {}, []
    for family in families:
        width = family.width
        low = width - 12 if small else 1
        prefix = draw(st.integers(low, width))
        mask = draw(st.integers(prefix, min(width, prefix + 8) if small else width))
        value = draw(st.integers(0, 2**width - 1))
        cluster.append(netaddr.IPNetwork((value, prefix), family.version).cidr)
        masks[f"node_mask_ipv{family.version}"] = mask
        if draw(st.booleans()):
            # Often inside the cluster CIDR, to exercise the set-aside.
            inside = draw(st.booleans())
            base = value if inside else draw(st.integers(0, 2**width - 1))
            length = draw(st.integers(prefix - 2 if prefix >= 2 else 0, width))
            service.append(netaddr.IPNetwork((base, length), family.version).cidr)
    if len(service) == 2 and draw(st.booleans()):
        service.reverse()
    return ClusterConfig(cluster, service, **masks)


@given(configs(), st.booleans())
def test_component_flags_round_trip(config: ClusterConfig, gate: bool) -> None:
    flags = config.component_flags(feature_gate=gate)
    assert ClusterConfig.from_flags(flags["kube-controller-manager"]) == config
    assert ClusterConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    cidr_flags = [
        [f for f in flags[component] if f.startswith("--cluster-cidr=")]
        for component in ("kube-controller-manager", "kube-proxy")
    ]
    assert (
        cidr_flags[0]
        == cidr_flags[1]
        == ["--cluster-cidr=" + ",".join(str(c) for c in config.cluster_cidrs)]
    )


@given(configs(small=True))
def test_node_capacity_matches_brute_force(config: ClusterConfig) -> None:
    counts = []
    for family in config.families:
        cluster = config.cluster_cidr(family)
        services = [s for s in config.service_cidrs if s.version == cluster.version]
        free = sum(
            1
            for subnet in cluster.subnet(config.node_mask(family))
            if not any(subnet.first <= s.last and s.first <= subnet.last for s in services)
        )
        assert config.node_capacity(family) == free
        counts.append(free)
    assert config.max_nodes == min(counts)


@pytest.mark.parametrize(
    "raw", [b"10.0.0.0/8", bytearray(b"10.0.0.0/8"), memoryview(b"10.0.0.0/8")]
)
def test_binary_cidr_lists_are_refused_not_iterated(raw: Any) -> None:
    from dualstack_ipam import MasqueradePolicy, NodeCIDRAllocator

    with pytest.raises(InvalidConfigError, match="sequence of CIDRs"):
        ClusterConfig(raw)
    alloc = NodeCIDRAllocator(ClusterConfig("10.0.0.0/16"))
    with pytest.raises(InvalidConfigError):
        alloc.occupy("node", raw)
    with pytest.raises(InvalidConfigError):
        MasqueradePolicy(raw)


# ---------------------------------------------------------------- forecast


def test_forecast_method_is_the_forecast_module_on_this_cluster() -> None:
    import datetime

    from dualstack_ipam.cluster.nodes import NodeCIDRAllocator
    from dualstack_ipam.forecast import forecast

    config = seed()
    nodes = NodeCIDRAllocator(config)
    nodes.allocate("node-1")
    day = datetime.date(2026, 1, 1)
    kwargs: dict[str, Any] = {
        "nodes_per_day": 10,
        "services_per_day": {"IPv6": 3},
        "now": day,
        "used": nodes,
    }
    assert config.forecast(**kwargs) == forecast(config, **kwargs)
    result = config.forecast(nodes_per_day=10, now=day, used=nodes)
    assert result.get(V4, "node_cidrs").used == 1
    assert result.get(V4, "node_cidrs").runs_out == datetime.date(2026, 1, 26)
    assert result.get(V6, "service_ips").runs_out is None
    assert config.forecast(now=day).first is None  # every rate 0: never


def test_forecast_method_refuses_what_the_function_refuses() -> None:
    with pytest.raises(InvalidConfigError, match="-1"):
        seed().forecast(nodes_per_day=-1)
    with pytest.raises(FamilyNotConfiguredError):
        ClusterConfig("10.0.0.0/16", "10.96.0.0/24").forecast(services_per_day={"IPv6": 1})
