"""The ``net`` layer: IP families and every family fact, the one parser of
addresses, networks and CIDR lists, and the netaddr builders.

Everything above imports from here (``from dualstack_ipam.net import ...``),
never from the modules inside, so the layer can be rearranged freely.
"""

from dualstack_ipam.net.cidrs import CIDRList, split_cidrs
from dualstack_ipam.net.family import (
    IPFamily,
    Net,
    address_factory,
    make_address,
    make_network,
    parse_address,
    parse_family,
    parse_network,
    usable_span,
)

__all__ = [
    "CIDRList",
    "IPFamily",
    "Net",
    "address_factory",
    "make_address",
    "make_network",
    "parse_address",
    "parse_family",
    "parse_network",
    "split_cidrs",
    "usable_span",
]
