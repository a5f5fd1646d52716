"""Tests for dualstack_ipam.cluster.egress: ip-masq-agent configuration and policy."""

from __future__ import annotations

import importlib
import ipaddress
import json
import pickle
from typing import Any

import attrs
import netaddr
import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from dualstack_ipam.cluster.config import ClusterConfig
from dualstack_ipam.cluster.egress import MasqueradePolicy, masquerade_config
from dualstack_ipam.errors import AddressFormatError, InvalidConfigError

SEED = ClusterConfig("10.244.0.0/16,fc00::/24", "10.96.0.0/12,fd00:10:96::/112")


def test_masquerade_config_of_the_seed() -> None:
    assert masquerade_config(SEED) == {
        "nonMasqueradeCIDRs": ["10.244.0.0/16", "fc00::/24", "10.96.0.0/12", "fd00:10:96::/112"],
        "masqLinkLocal": False,
        "masqLinkLocalIPv6": False,
        "resyncInterval": "60s",
    }


def test_masquerade_config_is_yaml_and_json_ready() -> None:
    data = masquerade_config(SEED, extra_non_masquerade=["192.168.0.0/16"])
    assert yaml.safe_load(yaml.safe_dump(data)) == data
    assert json.loads(json.dumps(data)) == data


def test_masquerade_config_extras_follow_in_order_without_duplicates() -> None:
    config = ClusterConfig("fc00::/24,10.244.0.0/16", "10.244.0.0/20")
    data = masquerade_config(
        config,
        extra_non_masquerade=[
            netaddr.IPNetwork("2001:db8::/32"),
            "10.244.0.0/16",
            ipaddress.ip_network("192.168.0.0/16"),
            "2001:db8::1/32",
        ],
    )
    assert data["nonMasqueradeCIDRs"] == [
        "fc00::/24",
        "10.244.0.0/16",
        "10.244.0.0/20",
        "2001:db8::/32",
        "192.168.0.0/16",
    ]
    text = masquerade_config(config, extra_non_masquerade="192.168.0.0/16, 172.16.0.0/12")
    assert text["nonMasqueradeCIDRs"][-2:] == ["192.168.0.0/16", "172.16.0.0/12"]
    single = masquerade_config(config, extra_non_masquerade=netaddr.IPNetwork("172.16.0.0/12"))
    assert single["nonMasqueradeCIDRs"][-1] == "172.16.0.0/12"


def test_masquerade_config_errors() -> None:
    with pytest.raises(AddressFormatError, match="'nope'") as info:
        masquerade_config(SEED, extra_non_masquerade=["10.0.0.0/8", "nope"])
    assert info.value.value == "nope"
    with pytest.raises(InvalidConfigError, match="ClusterConfig"):
        masquerade_config("10.0.0.0/8")  # type: ignore[arg-type]
    with pytest.raises(InvalidConfigError):
        masquerade_config(SEED, extra_non_masquerade=5)


@pytest.mark.parametrize(
    ("dst", "expected"),
    [
        ("10.244.0.0", False),  # first address of a cluster CIDR
        ("10.244.255.255", False),  # last
        ("10.245.0.0", True),  # just past it
        ("10.243.255.255", True),  # just before it
        ("10.96.0.10", False),  # a Service IP
        ("fc00::1", False),
        ("fc00:ff:ffff:ffff:ffff:ffff:ffff:ffff", False),
        ("fc01::", True),
        ("fd00:10:96::a", False),
        ("8.8.8.8", True),
        ("2001:4860:4860::8888", True),
        ("169.254.169.254", False),  # link-local: not masqueraded by default
        ("fe80::1", False),
        ("febf:ffff::1", False),  # still inside fe80::/10
        ("fec0::1", True),
        (netaddr.IPAddress("10.244.1.1"), False),
        (ipaddress.ip_address("2001:db8::1"), True),
    ],
)
def test_should_masquerade_for_the_seed(dst: Any, expected: bool) -> None:
    assert MasqueradePolicy.from_config(SEED).should_masquerade(dst) is expected


def test_link_local_flags() -> None:
    policy = MasqueradePolicy(["10.0.0.0/8"], masq_link_local=True)
    assert policy.should_masquerade("169.254.1.1")
    assert not policy.should_masquerade("fe80::1")
    policy6 = MasqueradePolicy(["10.0.0.0/8"], masq_link_local_ipv6=True)
    assert not policy6.should_masquerade("169.254.1.1")
    assert policy6.should_masquerade("fe80::1")


def test_explicit_cidrs_win_over_the_link_local_flags() -> None:
    policy = MasqueradePolicy(
        ["169.254.169.254/32", "fe80::/64"], masq_link_local=True, masq_link_local_ipv6=True
    )
    assert not policy.should_masquerade("169.254.169.254")
    assert policy.should_masquerade("169.254.169.253")
    assert not policy.should_masquerade("fe80::1")
    assert policy.should_masquerade("fe80:0:0:1::1")


def test_overlapping_and_adjacent_cidrs() -> None:
    policy = MasqueradePolicy("10.0.0.0/9,10.128.0.0/9,10.64.0.0/10,11.0.0.0/8")
    for address in ("10.0.0.0", "10.127.255.255", "10.128.0.0", "11.255.255.255"):
        assert not policy.should_masquerade(address)
    assert policy.should_masquerade("12.0.0.0")
    assert policy.should_masquerade("9.255.255.255")


def test_empty_policy_masquerades_all_but_link_local() -> None:
    policy = MasqueradePolicy([])
    assert policy.should_masquerade("10.0.0.1")
    assert not policy.should_masquerade("169.254.0.1")


@pytest.mark.parametrize("dst", ["10.0.0.0/8", "10.0.0.256", "", None, 167772161])
def test_should_masquerade_needs_an_address(dst: Any) -> None:
    with pytest.raises(AddressFormatError):
        MasqueradePolicy.from_config(SEED).should_masquerade(dst)


def test_policy_value_object() -> None:
    a = MasqueradePolicy(["10.0.0.0/8", "fd00::1/8"])
    b = MasqueradePolicy("10.0.0.0/8,fd00::/8, 10.0.0.0/8")
    assert a == b
    assert hash(a) == hash(b)
    assert a.non_masquerade_cidrs == (
        netaddr.IPNetwork("10.0.0.0/8"),
        netaddr.IPNetwork("fd00::/8"),
    )
    assert a != MasqueradePolicy(["10.0.0.0/8", "fd00::/8"], masq_link_local=True)
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        a.masq_link_local = True  # type: ignore[misc]
    assert not hasattr(a, "__dict__")
    assert attrs.evolve(a, masq_link_local=True).should_masquerade("169.254.0.1")
    copied = pickle.loads(pickle.dumps(a))
    assert copied == a
    assert not copied.should_masquerade("10.1.1.1")


@pytest.mark.parametrize("flag", ["masq_link_local", "masq_link_local_ipv6"])
@pytest.mark.parametrize("bad", [1, "true", None])
def test_flags_must_be_bools(flag: str, bad: Any) -> None:
    with pytest.raises(InvalidConfigError) as info:
        MasqueradePolicy(["10.0.0.0/8"], **{flag: bad})
    assert info.value.value == bad


def test_bad_cidrs() -> None:
    with pytest.raises(AddressFormatError, match=r"nonMasqueradeCIDRs\[1\]"):
        MasqueradePolicy(["10.0.0.0/8", "10.0.0.0/33"])
    with pytest.raises(InvalidConfigError):
        MasqueradePolicy(42)


@pytest.mark.parametrize(
    "bad",
    [netaddr.IPRange("10.0.0.0", "10.15.255.255"), netaddr.IPGlob("10.*.*.*"), {"10.0.0.0/8"}],
    ids=["IPRange", "IPGlob", "set"],
)
def test_address_containers_and_sets_are_refused(bad: Any) -> None:
    # Defect 5: one home for reading a list of CIDRs, refusing in O(1).
    with pytest.raises(InvalidConfigError, match="nonMasqueradeCIDRs must be"):
        MasqueradePolicy(bad)
    with pytest.raises(InvalidConfigError, match="must be"):
        masquerade_config(SEED, extra_non_masquerade=bad)


def test_dict_round_trip() -> None:
    data = masquerade_config(SEED)
    policy = MasqueradePolicy.from_config(SEED)
    assert policy.to_dict() == data
    assert MasqueradePolicy.from_dict(data) == policy
    assert MasqueradePolicy.from_dict({"nonMasqueradeCIDRs": ["10.0.0.0/8"]}) == MasqueradePolicy(
        ["10.0.0.0/8"]
    )


@pytest.mark.parametrize(
    "data",
    [
        [],
        {},
        {"nonMasqueradeCIDRs": "10.0.0.0/8"},
        {"nonMasqueradeCIDRs": [], "masqLinkLocal": "yes"},
        {"nonMasqueradeCIDRs": [], "masqLinkLocalIpv6": True},
    ],
)
def test_from_dict_errors(data: Any) -> None:
    with pytest.raises(InvalidConfigError):
        MasqueradePolicy.from_dict(data)


def test_public_names() -> None:
    package = importlib.import_module("dualstack_ipam")
    assert package.MasqueradePolicy is MasqueradePolicy
    assert package.masquerade_config is masquerade_config


@st.composite
def networks(draw: st.DrawFn) -> netaddr.IPNetwork:
    version = draw(st.sampled_from([4, 6]))
    width = 32 if version == 4 else 128
    # Few, short prefixes near the addresses drawn below, so hits are common.
    prefix = draw(st.integers(0, 12)) + (0 if version == 4 else 96)
    value = draw(st.integers(0, 2**width - 1)) & ~((1 << 20) - 1)
    if draw(st.booleans()):
        value = 0xA9FE0000 if version == 4 else 0xFE80 << 112
    return netaddr.IPNetwork((value, prefix), version).cidr


@st.composite
def addresses(draw: st.DrawFn) -> netaddr.IPAddress:
    version = draw(st.sampled_from([4, 6]))
    width = 32 if version == 4 else 128
    low = draw(st.integers(0, (1 << 20) - 1))
    high = draw(
        st.sampled_from([0xA9FE0000, 0xFE80 << 112 if version == 6 else 0x0A000000])
        | st.integers(0, 2**width - 1)
    )
    return netaddr.IPAddress(((high & ~((1 << 20) - 1)) | low) % 2**width, version)


@given(st.lists(networks(), max_size=6), st.booleans(), st.booleans(), addresses())
def test_should_masquerade_matches_brute_force(
    cidrs: list[netaddr.IPNetwork], masq4: bool, masq6: bool, dst: netaddr.IPAddress
) -> None:
    policy = MasqueradePolicy(cidrs, masq_link_local=masq4, masq_link_local_ipv6=masq6)
    keep = any(dst in cidr for cidr in cidrs if cidr.version == dst.version)
    link_local = netaddr.IPNetwork("169.254.0.0/16" if dst.version == 4 else "fe80::/10")
    if dst in link_local and not (masq4 if dst.version == 4 else masq6):
        keep = True
    assert policy.should_masquerade(dst) is not keep
    assert policy.should_masquerade(str(dst)) is not keep
