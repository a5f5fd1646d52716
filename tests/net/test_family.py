"""IPFamily and the family facts: width, version, ``other``, the usable span."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import dualstack_ipam
from dualstack_ipam import InvalidConfigError, IPFamily
from dualstack_ipam.net import parse_family, usable_span
from dualstack_ipam.pools.service_ips import ServiceIPPool
from dualstack_ipam.pools.subnets import SubnetPool

V4, V6 = IPFamily.IPv4, IPFamily.IPv6


class TestIPFamily:
    def test_members_and_values(self) -> None:
        assert [m.value for m in IPFamily] == ["IPv4", "IPv6"]
        assert IPFamily("IPv4") is V4
        assert IPFamily("IPv6") is V6

    def test_str_and_format_give_the_value(self) -> None:
        assert str(V4) == "IPv4"
        assert str(V6) == "IPv6"
        assert f"{V4}" == "IPv4"
        assert f"{V6:>6}" == "  IPv6"
        assert "{}".format(V6) == "IPv6"  # noqa: UP032 - format() itself is under test
        assert "%s" % V4 == "IPv4"  # noqa: UP031 - %-formatting is under test

    def test_equal_to_and_hash_like_the_strings(self) -> None:
        assert V4 == "IPv4"
        assert V6 == "IPv6"
        assert V4 != "IPv6"
        assert V4 != V6
        assert isinstance(V4, str)
        assert {"IPv4": 1}[V4] == 1
        by_family: dict[str, int] = {V6: 2}
        assert by_family["IPv6"] == 2

    def test_width_and_version(self) -> None:
        assert (V4.width, V4.version) == (32, 4)
        assert (V6.width, V6.version) == (128, 6)

    @pytest.mark.parametrize(("text", "family"), [("IPv4", V4), ("IPv6", V6), (V4, V4), (V6, V6)])
    def test_family_argument_accepts_the_strings(self, text: Any, family: IPFamily) -> None:
        assert parse_family(text) is family

    @pytest.mark.parametrize("bad", [None, "ipv4", "IPV6", "4", 4, 6, b"IPv4", " IPv4", ""])
    def test_unknown_family_is_invalid_config(self, bad: Any) -> None:
        with pytest.raises(InvalidConfigError) as info:
            parse_family(bad)
        assert repr(bad) in str(info.value)
        assert info.value.value == bad

    def test_pool_family_property_is_the_enum(self) -> None:
        assert SubnetPool("10.0.0.0/16", 24).family is V4
        assert SubnetPool("fd00::/48", 64).family is V6
        assert ServiceIPPool("10.96.0.0/24").family is V4
        assert ServiceIPPool("fd00::/120").family == "IPv6"


class TestOther:
    def test_the_pairs(self) -> None:
        assert V4.other is V6
        assert V6.other is V4

    @pytest.mark.parametrize("family", list(IPFamily))
    def test_an_involution_onto_the_other_member(self, family: IPFamily) -> None:
        assert family.other is not family
        assert family.other.other is family
        assert {family, family.other} == set(IPFamily)


class TestUsableSpan:
    @pytest.mark.parametrize(
        ("family", "prefixlen", "span"),
        [
            (V4, 24, (1, 254)),
            (V4, 30, (1, 2)),
            (V4, 31, (1, 0)),
            (V4, 32, (1, 0)),
            (V4, 0, (1, 2**32 - 2)),
            (V6, 120, (1, 255)),
            (V6, 127, (1, 1)),
            (V6, 128, (1, 0)),
            (V6, 0, (1, 2**128 - 1)),
        ],
    )
    def test_kubernetes_rule(self, family: IPFamily, prefixlen: int, span: tuple[int, int]) -> None:
        # IPv4 loses network and broadcast, IPv6 only the network address.
        assert usable_span(family, prefixlen) == span

    @given(st.sampled_from(list(IPFamily)), st.data())
    def test_is_the_service_pool_capacity(self, family: IPFamily, data: st.DataObject) -> None:
        prefixlen = data.draw(st.integers(max(0, family.width - 20), family.width))
        network = "10.0.0.0" if family is V4 else "fd00::"
        pool = ServiceIPPool(f"{network}/{prefixlen}")
        assert usable_span(family, prefixlen)[1] == pool.capacity


def test_public_names_are_exported() -> None:
    """The pools are importable from the top-level package (api.md)."""
    from dualstack_ipam import ServiceIPPool as PublicServiceIPPool
    from dualstack_ipam import SubnetPool as PublicSubnetPool

    assert PublicSubnetPool is SubnetPool
    assert PublicServiceIPPool is ServiceIPPool
    for name in ("SubnetPool", "ServiceIPPool", "IPFamily", "AddressFormatError"):
        assert name in dualstack_ipam.__all__
