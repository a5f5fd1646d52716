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
from its Service range's first address (``s4``/``s6``; the network address
would be slot 0, so the first usable one is 1), written as fixed-width
lowercase hex (8 digits for IPv4, 32 for IPv6) so that key order is address
order within a range. Names are percent-quoted in keys (any non-empty str is a
valid node name or Service key). An owner record carries everything that
makes its key exactly what it was: the allocators keep nothing else per key.
Every transaction that changes a key writes its owner record, its alloc
records and a journal entry together.

Reservations (``resv/``): each range's slots are cut into at most
``2**BLOCK_BITS`` (16) aligned blocks of equal size, fixed by the range;
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
A grown family numbers its slots across its ranges in that order, the first
range keeping the numbers it always had, so the records of an added range
go on in the family's pool (``n4``, ``s6``, ...) with slots past the ranges
before it, whatever its addresses (it may lie below the first range): a node
family's subnet indices (the allocator's own), a Service family's usable
addresses (an address of the range added after ranges of ``c`` usable
addresses in all is slot ``1 + c + (address - its range's first usable
address)``; an ungrown family's slots are unchanged). Key order is thus
address order within a range, and the ranges in the order added. A mutation
writes as many records in a grown family as in an ungrown one. An added
range's reservation blocks are cut from its own size and numbered on past
the blocks of the ranges before it (a block never spans two ranges, so a
reservation of any size in any range is at most 16 block records), and
release times number slots as the alloc records do: reservations and the
cooldown reach every range.

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
from bisect import bisect_right
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, unquote

from dualstack_ipam.errors import StoreError
from dualstack_ipam.net import IPFamily
from dualstack_ipam.owners import Address
from dualstack_ipam.pools.multi import parts_of

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
_Cut = tuple[int, int, int, int]  # a range's blocks: first block number, offset, size, step


class SideLayout:
    """The records of one side of a cluster (nodes or Services).

    Args:
        kind: ``"node"`` or ``"service"`` (the journal's ``kind``).
        tag: the owner key segment (``"node"``, ``"svc"``).
        names: family -> the pool's name in keys (``n4``, ``s6``, ...).
        entries: family -> the allocator's pool entry of that family (a
            pool, or the composite of a grown family), which the slots number.
        shift: what an alloc record's slot adds to the pool slot (1 for
            Services: a range's network address is slot 0 there).
        text: the text of one address (a CIDR or an IP).
        read: parses one text of a key back into an address.
    """

    __slots__ = (
        "_by_name",
        "_by_slot",
        "_by_value",
        "_cuts",
        "_names",
        "_parts",
        "_shift",
        "_sizes",
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
        names: dict[IPFamily, str],
        entries: dict[IPFamily, Any],
        shift: int,
        text: Callable[[Address], str],
        read: Callable[[str, str], Address],
    ) -> None:
        self.kind, self.prefix = kind, f"{OWNER_PREFIX}{tag}/"
        self.range_prefix = f"{RANGE_PREFIX}{tag}/"
        self.leak_prefix = f"{LEAK_PREFIX}{tag}/"
        self._names, self._shift = dict(names), shift
        self._parts = kind == "service"
        self._by_name = {f"{name}/": family for family, name in names.items()}
        self._by_value: dict[IPFamily, tuple[list[int], list[int]]] = {}
        self._by_slot: dict[IPFamily, tuple[list[int], list[int]]] = {}
        self._sizes: dict[IPFamily, int] = {}
        self._cuts: dict[IPFamily, tuple[list[int], list[int], list[_Cut]]] = {}
        for family, entry in entries.items():
            self.grow(family, entry)
        self.alloc_prefixes = tuple(f"alloc/{name}" for name in self._by_name)
        self.resv_prefixes = tuple(f"{RESV_PREFIX}{name}" for name in self._by_name)
        self.cool_prefixes = tuple(f"{COOL_PREFIX}{name}" for name in self._by_name)
        self.text, self.read = text, read

    @classmethod
    def for_nodes(cls, alloc: NodeCIDRAllocator) -> SideLayout:
        """The layout of a node allocator's records.

        Complexity:
            O(k) for k ranges.
        """
        names = {family: f"n{_DIGIT[family]}" for family in alloc.config.families}
        text = lambda a: str(alloc._build(a))  # noqa: E731
        return cls("node", "node", names, dict(alloc._pools), 0, text, alloc._read_cidr)

    @classmethod
    def for_services(cls, alloc: ServiceIPAllocator) -> SideLayout:
        """The layout of a Service allocator's records.

        Complexity:
            O(k log k) for k ranges.
        """
        names = {family: f"s{_DIGIT[family]}" for family in alloc.config.service_families}
        text = lambda a: str(alloc._build(a))  # noqa: E731
        return cls("service", "svc", names, dict(alloc._pools), 1, text, alloc._read_address)

    def grow(self, family: IPFamily, entry: Any) -> None:
        """The family's pool entry is now ``entry`` (``add_range`` grew it): number its slots.

        A node family's slots are the allocator's own subnet indices, which
        a composite numbers across its ranges already. A Service family's
        address maps to ``offset + address - base`` of the range holding
        it (``offset``: where the range starts in the order added, ``base``:
        its first usable address).

        Complexity:
            O(k log k) for k ranges.
        """
        parts = parts_of(entry)
        offsets = entry.offsets if len(parts) > 1 else (0,)
        if self._parts:
            spans = [
                (part._base, offset)
                for part, offset in zip(parts, offsets, strict=True)
                if part.capacity
            ] or [(parts[0]._base, 0)]
        else:
            spans = [(0, 0)]
        by_value = sorted(spans)
        by_slot = sorted(spans, key=lambda span: span[1])
        self._by_value[family] = ([b for b, _ in by_value], [o for _, o in by_value])
        self._by_slot[family] = ([o for _, o in by_slot], [b for b, _ in by_slot])
        self._sizes[family] = entry.capacity
        # Reservation blocks: each range cut into at most 2**BLOCK_BITS of its
        # own size, numbered on past the blocks of the ranges before it.
        cuts: list[_Cut] = []
        number = 0
        for part, offset in zip(parts, offsets, strict=True):
            if part.capacity:
                step = 1 << max(0, (part.capacity - 1).bit_length() - BLOCK_BITS)
                cuts.append((number, offset, part.capacity, step))
                number += -(-part.capacity // step)
        self._cuts[family] = ([cut[0] for cut in cuts], [cut[1] for cut in cuts], cuts)

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
        family = address[0]
        return f"{self._names[family]}/{self.pool_slot(address) + self._shift:0{_WIDTH[family]}x}"

    def _address(self, item: str) -> Address:
        """The address of one ``<pool>/<hex slot>`` text; ValueError or KeyError if not one."""
        name, _, digits = item.partition("/")
        family = self._by_name[f"{name}/"]
        slot = int(digits, 16) - self._shift
        if len(digits) != _WIDTH[family] or not _HEX(digits) or not 0 <= slot < self._sizes[family]:
            raise ValueError(digits)
        return self.address_of(family, slot)

    def alloc_key(self, address: Address) -> str:
        """The alloc record's key of one held address.

        Complexity:
            O(1) (O(log k) for a Service family grown to k ranges).
        """
        return "alloc/" + self._slot(address)

    def cool_key(self, address: Address) -> str:
        """The release time record's key of one address.

        Complexity:
            O(1) (O(log k) for a Service family grown to k ranges).
        """
        return COOL_PREFIX + self._slot(address)

    def address_of_cool(self, key: str) -> Address:
        """The address a release time record's key names.

        Raises:
            StoreError: a key that is not one of this side's.

        Complexity:
            O(1) (O(log k) for a Service family grown to k ranges).
        """
        try:
            return self._address(key[len(COOL_PREFIX) :])
        except (ValueError, KeyError):
            raise StoreError(f"corrupt release time record key {key!r}") from None

    def pool_slot(self, address: Address) -> int:
        """The family's slot of an address (as reservations count; alloc keys add the shift).

        Complexity:
            O(1) (O(log k) for a Service family grown to k ranges).

        >>> from dualstack_ipam import ClusterConfig, ServiceIPAllocator
        >>> alloc = ServiceIPAllocator(ClusterConfig("10.0.0.0/16", "10.96.0.0/29"))
        >>> _ = alloc.add_range("10.1.0.0/29"); layout = SideLayout.for_services(alloc)
        >>> layout.pool_slot(alloc._read_address("k", "10.1.0.1"))
        6
        >>> layout.alloc_key(alloc._read_address("k", "10.96.0.1"))
        'alloc/s4/00000001'
        """
        family, value = address
        bases, offsets = self._by_value[family]
        if len(bases) == 1:
            return offsets[0] + value - bases[0]
        i = max(bisect_right(bases, value) - 1, 0)
        return offsets[i] + value - bases[i]

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
            state = tuple(map(self._address, value.decode().split(" ")))
        except (ValueError, KeyError, UnicodeDecodeError):
            raise StoreError(f"corrupt owner record {where!r}: {value!r:.80}") from None
        return state

    # ------------------------------------------------------------ reservations

    def families(self) -> tuple[IPFamily, ...]:
        """The families this side has pools of.

        Complexity:
            O(1).
        """
        return tuple(self._names)

    def pool_alloc_prefix(self, family: IPFamily) -> str:
        """The prefix of a pool's alloc records (``alloc/<pool>/``).

        Complexity:
            O(1).
        """
        return f"alloc/{self._names[family]}/"

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

    def address_of(self, family: IPFamily, slot: int) -> Address:
        """The address (as the allocator numbers it) of one of the family's slots.

        Complexity:
            O(1) (O(log k) for a Service family grown to k ranges).
        """
        offsets, bases = self._by_slot[family]
        if len(offsets) == 1:
            return family, bases[0] + slot - offsets[0]
        i = bisect_right(offsets, slot) - 1
        return family, bases[i] + slot - offsets[i]

    def blocks(self, family: IPFamily) -> list[tuple[str, int, int]]:
        """Every reservation block of a pool: ``(record key, first slot, stop slot)``.

        Each range of the family is cut into at most ``2**BLOCK_BITS``
        aligned blocks of equal size (a power of two), numbered in the order
        the ranges were added, so no block spans two ranges.

        Complexity:
            O(k * 2**BLOCK_BITS) for k ranges.

        >>> from dualstack_ipam import ClusterConfig, NodeCIDRAllocator
        >>> layout = SideLayout.for_nodes(NodeCIDRAllocator(ClusterConfig("10.0.0.0/16")))
        >>> layout.blocks(IPFamily.IPv4)[:2]
        [('resv/n4/0', 0, 16), ('resv/n4/1', 16, 32)]
        """
        name = self._names[family]
        return [
            (
                f"{RESV_PREFIX}{name}/{number + i:x}",
                offset + start,
                offset + min(start + step, size),
            )
            for number, offset, size, step in self._cuts[family][2]
            for i, start in enumerate(range(0, size, step))
        ]

    def _cut(self, family: IPFamily, slot: int) -> _Cut:
        """The cut ``(first block number, offset, size, step)`` of the range holding ``slot``."""
        _, offsets, cuts = self._cuts[family]
        return cuts[0] if len(cuts) == 1 else cuts[bisect_right(offsets, slot) - 1]

    def block_key(self, address: Address) -> str:
        """The reservation block record's key of one address (a slot of a pool).

        Complexity:
            O(1) (O(log k) for a family grown to k ranges).
        """
        family = address[0]
        slot = self.pool_slot(address)
        number, offset, _, step = self._cut(family, slot)
        return f"{RESV_PREFIX}{self._names[family]}/{number + (slot - offset) // step:x}"

    def block_of(self, key: str) -> tuple[IPFamily, int, int]:
        """The family and slots ``[start, stop)`` of a block record's key.

        Raises:
            StoreError: a key that is not one of this side's blocks.

        Complexity:
            O(1) (O(log k) for a family grown to k ranges).
        """
        try:
            name, digits = key[len(RESV_PREFIX) :].split("/")
            family = self._by_name[f"{name}/"]
            block = int(digits, 16)
            numbers, _, cuts = self._cuts[family]
            number, offset, size, step = cuts[bisect_right(numbers, block) - 1]
            start = (block - number) * step
            if not _HEX(digits) or start >= size:
                raise ValueError(digits)
        except (ValueError, KeyError, IndexError):
            raise StoreError(f"corrupt reservation record key {key!r}") from None
        return family, offset + start, offset + min(start + step, size)
