"""The netaddr builders: ints of a family to plain netaddr objects."""

from __future__ import annotations

import netaddr
from hypothesis import given
from hypothesis import strategies as st

from dualstack_ipam import IPFamily
from dualstack_ipam.net import address_factory, make_address, make_network

V4, V6 = IPFamily.IPv4, IPFamily.IPv6


class TestMakeObjects:
    def test_make_address_is_a_plain_netaddr_address(self) -> None:
        for family, text in ((V4, "10.0.0.1"), (V6, "fd00::1")):
            want = netaddr.IPAddress(text)
            got = make_address(int(want), family)
            assert type(got) is netaddr.IPAddress
            assert (got, str(got), repr(got), hash(got), got.version) == (
                want,
                str(want),
                repr(want),
                hash(want),
                want.version,
            )

    def test_make_network_is_a_plain_netaddr_network(self) -> None:
        for family, text in ((V4, "10.42.0.0/16"), (V6, "fc00::/24")):
            want = netaddr.IPNetwork(text)
            got = make_network(want.first, want.prefixlen, family)
            assert type(got) is netaddr.IPNetwork
            assert (got, str(got), got.first, got.last, got.size) == (
                want,
                str(want),
                want.first,
                want.last,
                want.size,
            )

    @given(st.sampled_from(list(IPFamily)), st.data())
    def test_address_factory_is_make_address(self, family: IPFamily, data: st.DataObject) -> None:
        value = data.draw(st.integers(0, (1 << family.width) - 1))
        built = address_factory(family)(value)
        assert type(built) is netaddr.IPAddress
        assert built == make_address(value, family) == netaddr.IPAddress(value, family.version)
        assert str(built) == str(netaddr.IPAddress(value, family.version))
