"""The ``net`` layer: IP families and every family fact, the one parser of
addresses, networks and CIDR lists, and the netaddr builders.

Everything above imports from here (``from dualstack_ipam.net import ...``),
never from the modules inside, so the layer can be rearranged freely:

- :mod:`~dualstack_ipam.net.family`: :class:`IPFamily` and the family facts
  (width, version, ``other``, :func:`usable_span`), :func:`parse_family`;
- :mod:`~dualstack_ipam.net.parse`: :func:`parse_address`,
  :func:`parse_network` and their result :class:`Net`;
- :mod:`~dualstack_ipam.net.cidrs`: :func:`split_cidrs`, reading "a list of
  CIDRs";
- :mod:`~dualstack_ipam.net.build`: :func:`make_address`,
  :func:`make_network`, :func:`address_factory` (ints to netaddr objects).
"""

from dualstack_ipam.net.build import address_factory, make_address, make_network
from dualstack_ipam.net.cidrs import CIDRList, split_cidrs
from dualstack_ipam.net.family import IPFamily, parse_family, usable_span
from dualstack_ipam.net.parse import Net, parse_address, parse_network

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
