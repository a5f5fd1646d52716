"""Where a durable cluster keeps what, in store records (format 1).

======================================  ==========================================
key                                     value
======================================  ==========================================
``config``                              JSON: format, cluster config, strategies,
                                        cooldown; written once
``owner/node/<name>``                   the node's slots: ``n4/<hex> n6/<hex>``
``owner/svc/<key>``                     the Service key's slots, primary first
``alloc/<pool>/<hex slot>``             the owner key (one record per address)
``journal/<writer>/<hex seq>``          one JSON journal entry
``leak/<tag>/<key>``                    how many repairing reconciles in a row saw
                                        the key leaked (decimal text)
======================================  ==========================================

A slot is a subnet index (node pools ``n4``/``n6``) or an address's offset
from its Service range's first address (``s4``/``s6``), written as
fixed-width lowercase hex (8 digits for IPv4, 32 for IPv6) so that key order
is address order. Names are percent-quoted in keys (any non-empty str is a
valid node name or Service key). An owner record carries everything that
makes its key exactly what it was: the allocators keep nothing else per key.
Every transaction that changes a key writes its owner record, its alloc
records and a journal entry together.

Leak counts (``leak/``) belong to ``reconcile``: read whole at the start of
each call and written back (changed counts only) in one small transaction
per call, in batches within the store's limit; no cache follows them, so two
CLI runs accumulate them. Concurrent repairing reconciles: the last one's
counts win (they only delay or hasten a release by one sighting, and the
release itself is a compared transaction).

>>> from dualstack_ipam import ClusterConfig, NodeCIDRAllocator
>>> layout = SideLayout.for_nodes(NodeCIDRAllocator(ClusterConfig("10.244.0.0/16")))
>>> layout.owner_key("node-1"), layout.alloc_key((IPFamily.IPv4, 42))
('owner/node/node-1', 'alloc/n4/0000002a')
>>> layout.decode(layout.encode(((IPFamily.IPv4, 42),)))
((<IPFamily.IPv4: 'IPv4'>, 42),)
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING
from urllib.parse import quote, unquote

from dualstack_ipam.errors import StoreError
from dualstack_ipam.net import IPFamily
from dualstack_ipam.owners import Address

if TYPE_CHECKING:
    from dualstack_ipam.cluster.nodes import NodeCIDRAllocator
    from dualstack_ipam.services.allocator import ServiceIPAllocator

__all__ = ["CONFIG_KEY", "JOURNAL_PREFIX", "LEAK_PREFIX", "OWNER_PREFIX", "SideLayout"]

CONFIG_KEY = "config"
OWNER_PREFIX = "owner/"
JOURNAL_PREFIX = "journal/"
LEAK_PREFIX = "leak/"
_WIDTH = {IPFamily.IPv4: 8, IPFamily.IPv6: 32}
_DIGIT = {IPFamily.IPv4: "4", IPFamily.IPv6: "6"}
_HEX = re.compile("[0-9a-f]+").fullmatch


class SideLayout:
    """The records of one side of a cluster (nodes or Services).

    Args:
        kind: ``"node"`` or ``"service"`` (the journal's ``kind``).
        tag: the owner key segment (``"node"``, ``"svc"``).
        pools: family -> (pool name, first slot's value, number of slots).
        text: the text of one address (a CIDR or an IP).
        read: parses one text of a key back into an address.
    """

    __slots__ = (
        "_by_name",
        "_pools",
        "alloc_prefixes",
        "kind",
        "leak_prefix",
        "prefix",
        "read",
        "text",
    )

    def __init__(
        self,
        kind: str,
        tag: str,
        pools: dict[IPFamily, tuple[str, int, int]],
        text: Callable[[Address], str],
        read: Callable[[str, str], Address],
    ) -> None:
        self.kind, self.prefix = kind, f"{OWNER_PREFIX}{tag}/"
        self.leak_prefix = f"{LEAK_PREFIX}{tag}/"
        self._pools = pools
        self._by_name = {
            f"{name}/": (family, base, size) for family, (name, base, size) in pools.items()
        }
        self.alloc_prefixes = tuple(f"alloc/{name}" for name in self._by_name)
        self.text, self.read = text, read

    @classmethod
    def for_nodes(cls, alloc: NodeCIDRAllocator) -> SideLayout:
        """The layout of a node allocator's records.

        Complexity:
            O(1).
        """
        pools = {
            family: (f"n{_DIGIT[family]}", 0, alloc._pools[family].capacity)
            for family in alloc.config.families
        }
        return cls("node", "node", pools, lambda a: str(alloc._build(a)), alloc._read_cidr)

    @classmethod
    def for_services(cls, alloc: ServiceIPAllocator) -> SideLayout:
        """The layout of a Service allocator's records.

        Complexity:
            O(1).
        """
        pools = {}
        for family in alloc.config.service_families:
            cidr = alloc.config.service_cidr(family)
            pools[family] = (f"s{_DIGIT[family]}", int(cidr.first), cidr.size)
        return cls("service", "svc", pools, lambda a: str(alloc._build(a)), alloc._read_address)

    def owner_key(self, key: str) -> str:
        """The owner record's key of ``key``.

        Complexity:
            O(len(key)).
        """
        return self.prefix + quote(key, safe="/:@!$&'()*+,;=", errors="surrogatepass")

    def key_of(self, owner_key: str) -> str:
        """The node name or Service key of an owner record's key.

        Complexity:
            O(len(key)).
        """
        return unquote(owner_key[len(self.prefix) :], errors="surrogatepass")

    def leak_key(self, key: str) -> str:
        """The leak count record's key of ``key``.

        Complexity:
            O(len(key)).
        """
        return self.leak_prefix + self.owner_key(key)[len(self.prefix) :]

    def key_of_leak(self, leak_key: str) -> str:
        """The node name or Service key of a leak count record's key.

        Complexity:
            O(len(key)).
        """
        return unquote(leak_key[len(self.leak_prefix) :], errors="surrogatepass")

    def _slot(self, address: Address) -> str:
        family, value = address
        name, base, _ = self._pools[family]
        return f"{name}/{value - base:0{_WIDTH[family]}x}"

    def alloc_key(self, address: Address) -> str:
        """The alloc record's key of one held address.

        Complexity:
            O(1).
        """
        return "alloc/" + self._slot(address)

    def encode(self, state: tuple[Address, ...]) -> bytes:
        """An owner record's value: the key's slots in the allocator's order.

        Complexity:
            O(k) for k addresses.
        """
        return " ".join(map(self._slot, state)).encode()

    def decode(self, value: bytes, where: str = "") -> tuple[Address, ...]:
        """The addresses an owner record's value lists.

        Raises:
            StoreError: a value that is not this layout's (a corrupt record).

        Complexity:
            O(k) for k addresses.
        """
        try:
            state = []
            for item in value.decode().split(" "):
                name, digits = item[:3], item[3:]
                family, base, size = self._by_name[name]
                slot = int(digits, 16)
                if len(digits) != _WIDTH[family] or not _HEX(digits) or slot >= size:
                    raise ValueError(digits)
                state.append((family, base + slot))
        except (ValueError, KeyError, UnicodeDecodeError):
            raise StoreError(f"corrupt owner record {where!r}: {value!r:.80}") from None
        return tuple(state)
