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
``resv/<pool>/<hex block>``             JSON: the reserved runs of one block of a
                                        pool's slots, and a ``pending`` flag
``cool/<pool>/<hex slot>``              with a cooldown: when the slot was last
                                        released (``time.time`` seconds, text)
``range/<tag>/<4|6>/<hex n>``           the n-th range added to a family
                                        (``add_range``), as CIDR text
======================================  ==========================================

A slot is a subnet index (node pools ``n4``/``n6``) or an address's offset
from its Service range's first address (``s4``/``s6``), written as
fixed-width lowercase hex (8 digits for IPv4, 32 for IPv6) so that key order
is address order. Names are percent-quoted in keys (any non-empty str is a
valid node name or Service key). An owner record carries everything that
makes its key exactly what it was: the allocators keep nothing else per key.
Every transaction that changes a key writes its owner record, its alloc
records and a journal entry together.

Reservations (``resv/``): each pool's slots are cut into at most
``2**BLOCK_BITS`` (16) aligned blocks of equal size, fixed by the config;
a block's record lists the reserved runs inside it as ``[start, stop,
reason]`` in the pool's slots (the alloc records' numbering), so a
reservation spanning blocks is a piece per block, joined again in the
cache. A block without reservations has no record, or one with no runs.
An allocation compares the block record of every slot it takes at the
revision its cache knows (absent: 0), so a reservation committed after the
cache last looked fails it; it never writes it, unless the block is
``pending`` (below), so allocations never contend on it. Reserving new slots
is three transactions: (1) mark the blocks ``pending`` (compared), (2) read
the store's alloc records inside the new runs (one bounded read per run),
(3) write the new runs, ``pending`` cleared, compared at the revisions of
(1), with the journal entry. While a block is pending, every allocation in
it rewrites the block record, so an allocation committed after (2) read
fails (3); one committed before (2) is what (2) finds, and the reservation
fails with ``AlreadyAllocatedError``. A span of any size costs at most one
record per block: no compare per slot, and no per-pool record that every
allocation compares or writes. Unreserving and changing only reasons is
one transaction (freeing space races with nothing). A pending flag left by
a crash only makes allocations in that block write its record until the
next reservation change of the block clears it.

Added ranges (``range/``): ``n`` counts from 1 in the order the ranges were
added, so create-if-absent on the next ``n`` orders concurrent additions.
A grown node family numbers its subnets across its ranges in that order
(the first range keeps its numbers), so alloc and owner records of an
added range are ``n4/<index>`` as before, with indices past the first
range's; reservation blocks keep the first range's block size and go on
numbering past it (a block may span two ranges; a run never does).
Services cannot grow on a durable cluster yet.

Release times (``cool/``, only with a cooldown): written by the transaction
that frees the slot, compared by every transaction that takes it (absent,
or at the known revision and deleted), so no process hands a cooling slot
out, however stale its cache (:mod:`~dualstack_ipam.durable.cooling`).

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
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, unquote

from dualstack_ipam.errors import StoreError
from dualstack_ipam.net import IPFamily
from dualstack_ipam.owners import Address

if TYPE_CHECKING:
    from dualstack_ipam.cluster.nodes import NodeCIDRAllocator
    from dualstack_ipam.services.allocator import ServiceIPAllocator

__all__ = [
    "BLOCK_BITS",
    "CONFIG_KEY",
    "COOL_PREFIX",
    "JOURNAL_PREFIX",
    "LEAK_PREFIX",
    "OWNER_PREFIX",
    "RANGE_PREFIX",
    "RESV_PREFIX",
    "SideLayout",
]

CONFIG_KEY = "config"
OWNER_PREFIX = "owner/"
JOURNAL_PREFIX = "journal/"
LEAK_PREFIX = "leak/"
RESV_PREFIX = "resv/"
COOL_PREFIX = "cool/"
RANGE_PREFIX = "range/"
BLOCK_BITS = 4
"""A pool has at most ``2**BLOCK_BITS`` reservation blocks (part of the format)."""
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
        slots: family -> (the address value of the pool's slot 0, its number
            of slots): the pool's own numbering, which reservations use
            (a Service pool's slot 0 is its range's first usable address).
    """

    __slots__ = (
        "_by_name",
        "_pools",
        "_sizes",
        "_slots",
        "alloc_prefixes",
        "cool_prefixes",
        "kind",
        "leak_prefix",
        "prefix",
        "range_prefix",
        "read",
        "resv_prefixes",
        "text",
    )

    def __init__(
        self,
        kind: str,
        tag: str,
        pools: dict[IPFamily, tuple[str, int, int]],
        text: Callable[[Address], str],
        read: Callable[[str, str], Address],
        slots: dict[IPFamily, tuple[int, int]],
    ) -> None:
        self.kind, self.prefix = kind, f"{OWNER_PREFIX}{tag}/"
        self.range_prefix = f"{RANGE_PREFIX}{tag}/"
        self._slots = slots
        self._sizes = {family: size for family, (_, size) in slots.items()}
        self.leak_prefix = f"{LEAK_PREFIX}{tag}/"
        self._pools = pools
        self._by_name = {
            f"{name}/": (family, base, size) for family, (name, base, size) in pools.items()
        }
        self.alloc_prefixes = tuple(f"alloc/{name}" for name in self._by_name)
        self.resv_prefixes = tuple(f"{RESV_PREFIX}{name}" for name in self._by_name)
        self.cool_prefixes = tuple(f"{COOL_PREFIX}{name}" for name in self._by_name)
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
        slots = {family: (0, size) for family, (_, _, size) in pools.items()}
        return cls("node", "node", pools, lambda a: str(alloc._build(a)), alloc._read_cidr, slots)

    @classmethod
    def for_services(cls, alloc: ServiceIPAllocator) -> SideLayout:
        """The layout of a Service allocator's records.

        Complexity:
            O(1).
        """
        pools, slots = {}, {}
        for family in alloc.config.service_families:
            cidr = alloc.config.service_cidr(family)
            pools[family] = (f"s{_DIGIT[family]}", int(cidr.first), cidr.size)
            pool: Any = alloc._pools[family]  # one range: a durable side does not grow yet
            slots[family] = (pool._base, pool.capacity)
        text = lambda a: str(alloc._build(a))  # noqa: E731
        return cls("service", "svc", pools, text, alloc._read_address, slots)

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

    def cool_key(self, address: Address) -> str:
        """The release time record's key of one address.

        Complexity:
            O(1).
        """
        return COOL_PREFIX + self._slot(address)

    def address_of_cool(self, key: str) -> Address:
        """The address a release time record's key names.

        Raises:
            StoreError: a key that is not one of this side's.

        Complexity:
            O(1).
        """
        name, digits = key[len(COOL_PREFIX) : len(COOL_PREFIX) + 3], key[len(COOL_PREFIX) + 3 :]
        try:
            family, base, size = self._by_name[name]
            slot = int(digits, 16)
            if len(digits) != _WIDTH[family] or not _HEX(digits) or slot >= size:
                raise ValueError(digits)
        except (ValueError, KeyError):
            raise StoreError(f"corrupt release time record key {key!r}") from None
        return family, base + slot

    def pool_slot(self, address: Address) -> int:
        """The pool's own slot of an address (as reservations and cooling number them).

        Complexity:
            O(1).
        """
        return address[1] - self._slots[address[0]][0]

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

    # ------------------------------------------------------------ reservations

    def families(self) -> tuple[IPFamily, ...]:
        """The families this side has pools of.

        Complexity:
            O(1).
        """
        return tuple(self._pools)

    def pool_alloc_prefix(self, family: IPFamily) -> str:
        """The prefix of a pool's alloc records (``alloc/<pool>/``).

        Complexity:
            O(1).
        """
        return f"alloc/{self._pools[family][0]}/"

    def grow(self, family: IPFamily, capacity: int) -> None:
        """A node family grew (``add_range``): its slots now number ``capacity``.

        Complexity:
            O(1).
        """
        name, base, _ = self._pools[family]
        self._pools[family] = (name, base, capacity)
        self._by_name[f"{name}/"] = (family, base, capacity)
        self._sizes[family] = capacity

    def range_key(self, family: IPFamily, n: int) -> str:
        """The record key of the ``n``-th range added to ``family`` (from 1).

        Complexity:
            O(1).

        >>> from dualstack_ipam import ClusterConfig, NodeCIDRAllocator
        >>> layout = SideLayout.for_nodes(NodeCIDRAllocator(ClusterConfig("10.0.0.0/16")))
        >>> layout.range_key(IPFamily.IPv4, 1)
        'range/node/4/0001'
        """
        return f"{self.range_prefix}{_DIGIT[family]}/{n:04x}"

    def _block_size(self, family: IPFamily) -> int:
        size = self._slots[family][1]
        return 1 << max(0, (size - 1).bit_length() - BLOCK_BITS)

    def address_of(self, family: IPFamily, slot: int) -> Address:
        """The address (as alloc records number it) of a pool's slot.

        Complexity:
            O(1).
        """
        return family, self._slots[family][0] + slot

    def blocks(self, family: IPFamily) -> list[tuple[str, int, int]]:
        """Every reservation block of a pool: ``(record key, first slot, stop slot)``.

        Complexity:
            O(2**BLOCK_BITS).

        >>> from dualstack_ipam import ClusterConfig, NodeCIDRAllocator
        >>> layout = SideLayout.for_nodes(NodeCIDRAllocator(ClusterConfig("10.0.0.0/16")))
        >>> layout.blocks(IPFamily.IPv4)[:2]
        [('resv/n4/0', 0, 16), ('resv/n4/1', 16, 32)]
        """
        name, size = self._pools[family][0], self._sizes[family]
        step = self._block_size(family)
        return [
            (f"{RESV_PREFIX}{name}/{start // step:x}", start, min(start + step, size))
            for start in range(0, size, step)
        ]

    def block_key(self, address: Address) -> str:
        """The reservation block record's key of one address (a slot of a pool).

        Complexity:
            O(1).
        """
        family, value = address
        name, base = self._pools[family][0], self._slots[family][0]
        return f"{RESV_PREFIX}{name}/{(value - base) // self._block_size(family):x}"

    def block_of(self, key: str) -> tuple[IPFamily, int, int]:
        """The family and slots ``[start, stop)`` of a block record's key.

        Raises:
            StoreError: a key that is not one of this side's blocks.

        Complexity:
            O(1).
        """
        try:
            name, digits = key[len(RESV_PREFIX) :].split("/")
            family = self._by_name[f"{name}/"][0]
            size = self._sizes[family]
            step = self._block_size(family)
            start = int(digits, 16) * step
            if not _HEX(digits) or start >= size:
                raise ValueError(digits)
        except (ValueError, KeyError):
            raise StoreError(f"corrupt reservation record key {key!r}") from None
        return family, start, min(start + step, size)
