"""The one parser of addresses and networks: api.md "Inputs and outputs".

Parsing is checked both at the one internal entry point and through the
public pools, which must accept exactly the same inputs.
"""

from __future__ import annotations

import ipaddress
from typing import Any

import netaddr
import pytest
from hypothesis import given
from hypothesis import strategies as st

from dualstack_ipam import AddressFormatError, IPFamily
from dualstack_ipam.net import make_network, parse_address, parse_network
from dualstack_ipam.pools.service_ips import ServiceIPPool
from dualstack_ipam.pools.subnets import SubnetPool

V4, V6 = IPFamily.IPv4, IPFamily.IPv6

# Everything api.md says is not an address or a network.
NOT_AN_ADDRESS: list[Any] = [
    None,
    1.5,
    0.0,
    167772161,  # an int is not accepted, even a valid address value
    True,
    b"10.0.0.1",
    bytearray(b"10.0.0.1"),
    "",
    "garbage",
    "10.0.0",
    "10.0.0.256",
    "010.0.0.1",
    " 10.0.0.1",
    "10.0.0.1 ",
    "10.0.0.1\n",
    "fe80::1%eth0",
    "fd00:::1",
    "fd00::g",
    "10.0.0.1/24/3",
    ["10.0.0.1"],
    ("10.0.0.1",),
    {"ip": "10.0.0.1"},
    object(),
]

NOT_A_NETWORK: list[Any] = [
    *NOT_AN_ADDRESS,
    "10.0.0.0/33",
    "10.0.0.0/-1",
    "10.0.0.0/",
    "10.0.0.0/24 ",
    "10.0.0.0/ 24",
    "10.0.0.0/+24",
    "10.0.0.0/255.255.255.0",
    "fd00::/129",
    "fd00::/0x40",
    "010.0.0.0/8",
    "fe80::%eth0/64",
]


class TestParseAddress:
    @pytest.mark.parametrize(
        "value",
        [
            "10.1.2.3",
            netaddr.IPAddress("10.1.2.3"),
            ipaddress.IPv4Address("10.1.2.3"),
        ],
    )
    def test_every_accepted_ipv4_type(self, value: Any) -> None:
        assert parse_address(value) == (int(netaddr.IPAddress("10.1.2.3")), V4)

    @pytest.mark.parametrize(
        "value",
        [
            "fd00::1:2",
            "FD00:0000::0001:0002",
            netaddr.IPAddress("fd00::1:2"),
            ipaddress.IPv6Address("fd00::1:2"),
        ],
    )
    def test_every_accepted_ipv6_type(self, value: Any) -> None:
        assert parse_address(value) == (int(netaddr.IPAddress("fd00::1:2")), V6)

    @pytest.mark.parametrize("bad", NOT_AN_ADDRESS, ids=repr)
    def test_anything_else_is_address_format_error(self, bad: Any) -> None:
        with pytest.raises(AddressFormatError) as info:
            parse_address(bad)
        assert repr(bad) in str(info.value)
        assert info.value.value is bad

    def test_address_format_error_is_a_value_error(self) -> None:
        with pytest.raises(ValueError, match="not"):
            parse_address("not an address")

    def test_scoped_ipaddress_is_refused(self) -> None:
        with pytest.raises(AddressFormatError):
            parse_address(ipaddress.IPv6Address("fe80::1%eth0"))


# Defect 6: an IPv6 scope id, in every input type, is refused; some of these
# used to lose the scope silently.
SCOPED: list[Any] = [
    "fe80::1%eth0",
    "fe80::1%0",
    "fe80::%eth0/64",
    "fd00::/64%eth0",
    "10.0.0.1%eth0",
    ipaddress.IPv6Address("fe80::1%eth0"),
    ipaddress.IPv6Address("fe80::1%0"),
    ipaddress.IPv6Interface("fe80::1%eth0/64"),
    ipaddress.IPv6Interface("fe80::1%eth0"),
    ipaddress.IPv6Network("fe80::%eth0/64"),
    ipaddress.IPv6Network("::%1/128"),
]


class TestScopeIds:
    @pytest.mark.parametrize("value", SCOPED, ids=repr)
    def test_refused_as_a_network(self, value: Any) -> None:
        with pytest.raises(AddressFormatError, match="scope id") as info:
            parse_network(value)
        assert repr(value) in str(info.value)
        assert info.value.value is value

    @pytest.mark.parametrize(
        "value", [v for v in SCOPED if not isinstance(v, ipaddress.IPv6Network)], ids=repr
    )
    def test_refused_as_an_address(self, value: Any) -> None:
        with pytest.raises(AddressFormatError, match="scope id") as info:
            parse_address(value)
        assert info.value.value is value

    @pytest.mark.parametrize(
        "value",
        [ipaddress.IPv6Network("fe80::%eth0/64"), ipaddress.IPv6Interface("fe80::1%eth0/64")],
        ids=repr,
    )
    def test_refused_by_the_public_classes(self, value: Any) -> None:
        with pytest.raises(AddressFormatError):
            SubnetPool(value, 80)
        with pytest.raises(AddressFormatError):
            ServiceIPPool(value)
        with pytest.raises(AddressFormatError):
            ServiceIPPool("fe80::/64").allocate(ipaddress.IPv6Address("fe80::5%eth0"))

    def test_unscoped_forms_still_accepted(self) -> None:
        expected = parse_network("fe80::/64")
        assert parse_network(ipaddress.IPv6Network("fe80::/64")) == expected
        assert parse_network(ipaddress.IPv6Interface("fe80::1/64")) == expected
        assert parse_address(ipaddress.IPv6Address("fe80::1")) == parse_address("fe80::1")

    @given(
        st.integers(0, 2**128 - 1),
        st.integers(0, 128),
        st.from_regex(r"[A-Za-z0-9_.-]{1,15}", fullmatch=True),
    )
    def test_any_scope_in_any_form_is_refused(self, value: int, prefixlen: int, scope: str) -> None:
        address = ipaddress.IPv6Address(value)
        network = ipaddress.IPv6Network((value, prefixlen), strict=False)
        forms: list[Any] = [
            f"{address}%{scope}",
            f"{address}%{scope}/{prefixlen}",
            ipaddress.IPv6Address(f"{address}%{scope}"),
            ipaddress.IPv6Interface(f"{address}%{scope}/{prefixlen}"),
            ipaddress.IPv6Network(f"{network.network_address}%{scope}/{prefixlen}"),
        ]
        for form in forms:
            with pytest.raises(AddressFormatError, match="scope id"):
                parse_network(form)
        for form in forms[:4]:
            with pytest.raises(AddressFormatError, match="scope id"):
                parse_address(form)
        # Without the scope every form is accepted, and means the same.
        assert parse_network(network) == parse_network(f"{address}/{prefixlen}")


class TestParseNetwork:
    @pytest.mark.parametrize(
        "value",
        [
            "10.42.0.0/16",
            netaddr.IPNetwork("10.42.0.0/16"),
            ipaddress.IPv4Network("10.42.0.0/16"),
            ipaddress.IPv4Interface("10.42.7.1/16"),
        ],
    )
    def test_every_accepted_ipv4_type(self, value: Any) -> None:
        net = parse_network(value)
        assert (net.value, net.prefixlen, net.family) == (
            netaddr.IPNetwork("10.42.0.0/16").first,
            16,
            V4,
        )

    @pytest.mark.parametrize(
        "value",
        [
            "fc00::/24",
            netaddr.IPNetwork("fc00::/24"),
            ipaddress.IPv6Network("fc00::/24"),
            ipaddress.IPv6Interface("fc00::1/24"),
        ],
    )
    def test_every_accepted_ipv6_type(self, value: Any) -> None:
        assert tuple(parse_network(value)) == (netaddr.IPNetwork("fc00::/24").first, 24, V6)

    @pytest.mark.parametrize(
        ("value", "prefixlen"),
        [
            ("10.0.0.7", 32),
            (netaddr.IPAddress("fd00::7"), 128),
            (ipaddress.IPv4Address("1.2.3.4"), 32),
        ],
    )
    def test_bare_address_is_a_host_network(self, value: Any, prefixlen: int) -> None:
        assert parse_network(value).prefixlen == prefixlen

    @pytest.mark.parametrize(
        ("value", "canonical"),
        [
            ("127.123.3.0/16", "127.123.0.0/16"),
            ("127.0.0.0/7", "126.0.0.0/7"),
            ("10.1.2.3/0", "0.0.0.0/0"),
            ("fc00:12:34::1/24", "fc00::/24"),
            (netaddr.IPNetwork("10.1.2.3/8"), "10.0.0.0/8"),
            (ipaddress.IPv4Network("10.1.2.0/8", strict=False), "10.0.0.0/8"),
        ],
    )
    def test_host_bits_are_reduced(self, value: Any, canonical: str) -> None:
        net = parse_network(value)
        assert make_network(net.value, net.prefixlen, net.family) == netaddr.IPNetwork(canonical)

    @pytest.mark.parametrize("bad", NOT_A_NETWORK, ids=repr)
    def test_anything_else_is_address_format_error(self, bad: Any) -> None:
        with pytest.raises(AddressFormatError) as info:
            parse_network(bad)
        assert repr(bad) in str(info.value)


class TestThroughThePools:
    """The pools take every accepted type and return netaddr objects."""

    @pytest.mark.parametrize(
        "cidr",
        [
            "10.42.0.0/16",
            "10.42.99.1/16",
            netaddr.IPNetwork("10.42.0.0/16"),
            netaddr.IPNetwork("10.42.3.4/16"),
            ipaddress.IPv4Network("10.42.0.0/16"),
            ipaddress.IPv4Interface("10.42.5.5/16"),
        ],
        ids=repr,
    )
    def test_subnet_pool_accepts_every_network_type(self, cidr: Any) -> None:
        pool = SubnetPool(cidr, 24)
        assert type(pool.cidr) is netaddr.IPNetwork
        assert pool.cidr == netaddr.IPNetwork("10.42.0.0/16")
        assert str(pool.cidr) == "10.42.0.0/16"

    def test_subnet_pool_reduces_host_bits(self) -> None:
        pool = SubnetPool("127.123.3.0/16", 24)
        assert str(pool.cidr) == "127.123.0.0/16"
        assert pool.subnet_at(15) == netaddr.IPNetwork("127.123.15.0/24")

    @pytest.mark.parametrize(
        "cidr",
        ["10.96.0.0/24", netaddr.IPNetwork("10.96.0.9/24"), ipaddress.IPv4Network("10.96.0.0/24")],
        ids=repr,
    )
    def test_service_pool_accepts_every_network_type(self, cidr: Any) -> None:
        pool = ServiceIPPool(cidr)
        assert type(pool.cidr) is netaddr.IPNetwork
        assert str(pool.cidr) == "10.96.0.0/24"

    @pytest.mark.parametrize(
        "ip",
        ["fd00::5", netaddr.IPAddress("fd00::5"), ipaddress.IPv6Address("fd00::5")],
        ids=repr,
    )
    def test_service_pool_accepts_every_address_type(self, ip: Any) -> None:
        pool = ServiceIPPool("fd00::/120")
        got = pool.allocate(ip)
        assert type(got) is netaddr.IPAddress
        assert got == netaddr.IPAddress("fd00::5")
        assert pool.is_allocated(ip)
        assert pool.release(ip) is True

    @pytest.mark.parametrize(
        "cidr",
        [
            "10.42.7.0/24",
            "10.42.7.9",
            netaddr.IPNetwork("10.42.7.0/24"),
            netaddr.IPAddress("10.42.7.200"),
            ipaddress.IPv4Network("10.42.7.0/24"),
            ipaddress.IPv4Address("10.42.7.1"),
        ],
        ids=repr,
    )
    def test_subnet_methods_accept_every_type(self, cidr: Any) -> None:
        pool = SubnetPool("10.42.0.0/16", 24)
        assert pool.index_of(cidr) == 7
        assert pool.occupy(cidr) == 1
        assert pool.is_allocated(cidr)
        assert pool.release(cidr) == 1

    def test_returned_objects_are_netaddr_in_canonical_form(self) -> None:
        subnets = SubnetPool("10.42.3.3/16", 24)
        net = subnets.allocate_next()
        assert type(net) is netaddr.IPNetwork
        assert str(net) == "10.42.0.0/24"
        assert net.ip == net.network
        assert all(type(n) is netaddr.IPNetwork and n.ip == n.network for n in subnets)
        assert type(subnets.subnet_at(3)) is netaddr.IPNetwork
        v6 = SubnetPool("FC00:0000::1/24", 64)
        assert str(v6.cidr) == "fc00::/24"
        assert str(v6.allocate_next()) == "fc00::/64"
        ips = ServiceIPPool("FD00:0:0::/120", strategy="sequential")
        ip = ips.allocate_next()
        assert type(ip) is netaddr.IPAddress
        assert str(ip) == "fd00::11"
        assert all(type(a) is netaddr.IPAddress for a in ips)

    def test_counts_are_ints_not_len(self) -> None:
        for pool in (
            SubnetPool("fc00::/24", 64),
            ServiceIPPool("::/0"),
            ServiceIPPool("10.0.0.0/8"),
        ):
            for name in ("capacity", "used", "free"):
                assert type(getattr(pool, name)) is int, name
            assert not hasattr(pool, "__len__")
            with pytest.raises(TypeError):
                len(pool)  # type: ignore[arg-type]
        assert ServiceIPPool("::/0").capacity == 2**128 - 1
        assert SubnetPool("fc00::/24", 64).capacity == 2**40
