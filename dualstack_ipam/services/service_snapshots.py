"""ServiceIPAllocator snapshots: taken without stalling allocations, and restored.

Taking one does O(1) work under the allocator's lock besides each pool's
flat state (:meth:`~dualstack_ipam.pools.base.BasePool.capture`): it opens
a :class:`~dualstack_ipam.owners.held_view.HeldView` of the owner map (no
copy: changes made meanwhile record what they replace) and takes the key
order (:meth:`OwnerTable.order_copy
<dualstack_ipam.owners.table.OwnerTable.order_copy>`: the table keeps its
keys sorted, so no sort of all keys is needed; the keys changed since its
last merge are merged after the lock is released and the result handed
back with :meth:`~dualstack_ipam.owners.table.OwnerTable.adopt`). Building
address text and encoding the pools happen after the lock is released.

Format version 2 (version 1, what earlier releases wrote, still restores)
keeps each Service's addresses as one text, ``"10.96.0.10,fd00:10:96::a"``,
not a list. Why, measured with ``measure_pause`` of
``benchmarks/bench_store.py`` (50,000 dual-stack Services, a thread
allocating throughout): a list per Service is 50,000 containers the cyclic
garbage collector tracks, enough to start a full collection of the whole
heap (~220,000 objects, 40-370 ms on the shared 2-core machine) at nearly
every snapshot, in whichever thread allocates next: 10 full collections in
20 snapshots. A ``str`` is not tracked, nor is a ``dict`` holding only
``str``: version 2 builds no tracked object per Service and started none in
the same run. The text is built in chunks of :data:`CHUNK` Services
(~1 ms) with a short sleep between them
(:func:`~dualstack_ipam.snapshot.hand_over`), so a waiting thread may take
the interpreter before the 5 ms switch interval, and no single C-level
call runs long (the ``sorted()`` of all keys it replaces held the
interpreter for ~13 ms). ``docs/performance.md`` has the figures.

A family grown with ``add_range`` keeps its first pool under ``pools`` and
lists the added ones, in the order added, under ``added`` (written only
when a range was added; :func:`~dualstack_ipam.pools.multi.read_added`).
Version 2 is the first that may carry it: no release before this one reads
version 2, so none can restore a grown snapshot without its ranges, and a
version 1 snapshot with ``added`` is refused.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from random import Random
from socket import AF_INET6, inet_ntoa, inet_ntop
from typing import TYPE_CHECKING, Any

from dualstack_ipam.cluster.config import ClusterConfig
from dualstack_ipam.errors import InvalidConfigError, IPAMError, SnapshotError
from dualstack_ipam.net import IPFamily, make_address, parse_address
from dualstack_ipam.owners import Address
from dualstack_ipam.owners.held_view import HeldView
from dualstack_ipam.pools.marks import check_cooldown
from dualstack_ipam.pools.multi import grow, parts_of, read_added
from dualstack_ipam.pools.service_ips import ServiceIPPool
from dualstack_ipam.snapshot import FORMAT_VERSION, envelope, hand_over, open_envelope, read_int

if TYPE_CHECKING:
    from dualstack_ipam.services.allocator import ServiceIPAllocator

__all__ = [
    "CHUNK",
    "KIND",
    "VERSION",
    "joined",
    "read_address",
    "restore",
    "snapshot",
    "text",
]

KIND = "ServiceIPAllocator"

VERSION = 2
"""The format version this release writes: each Service's addresses as one text."""

CHUNK = 1024
"""Services whose text is built between two hand-overs of the interpreter."""

_IPV4 = IPFamily.IPv4


def text(address: tuple[IPFamily, int | None]) -> str:
    """An address of the owner table as text ("" for a slot not chosen yet).

    Complexity:
        O(1).

    >>> text((IPFamily.IPv4, 167772161)), text((IPFamily.IPv6, None))
    ('10.0.0.1', '')
    """
    return "" if address[1] is None else str(make_address(address[1], address[0]))


def joined(addresses: tuple[Address, ...]) -> str:
    """A Service's addresses as version 2 writes them: their texts, joined by commas.

    Each text is what :func:`text` gives (``netaddr`` formats with the same
    C functions), built without an address object.

    Complexity:
        O(1) per address.

    >>> joined(((IPFamily.IPv4, 174063626), (IPFamily.IPv6, 1)))
    '10.96.0.10,::1'
    """
    return ",".join(
        [
            inet_ntoa(value.to_bytes(4, "big"))
            if family is _IPV4
            else inet_ntop(AF_INET6, value.to_bytes(16, "big"))
            for family, value in addresses
        ]
    )


def _texts(alloc: ServiceIPAllocator, keys: list[str], view: HeldView) -> dict[str, str]:
    """key -> its addresses' text (version 2), for ``keys`` as ``view`` saw them."""
    services: dict[str, str] = {}  # only str in it: the garbage collector never tracks it
    # A key's text is made once and kept beside the owner table's tuple it
    # came from: the table gives a key a new tuple whenever its addresses
    # change, and the cache's reference keeps the old one alive, so "is"
    # tells a text still current. A later snapshot then looks texts up
    # (~0.1 us a key) instead of making them (~2 us), and builds no new
    # tracked object for an unchanged key. Two snapshots at once may both
    # fill it: any entry they write is right for its tuple.
    cache = alloc._texts
    for start in range(0, len(keys), CHUNK):
        if start:
            hand_over()
        for key in keys[start : start + CHUNK]:
            addresses = view[key]
            entry = cache.get(key)
            if entry is None or entry[0] is not addresses:
                entry = cache[key] = (addresses, joined(addresses))
            services[key] = entry[1]
    if len(cache) > 2 * len(keys) + CHUNK:  # released keys' texts: keep it O(n)
        alloc._texts = {key: cache[key] for key in keys if key in cache}
    return services


def snapshot(alloc: ServiceIPAllocator) -> dict[str, Any]:
    """The snapshot of ``alloc`` (see :meth:`ServiceIPAllocator.snapshot`).

    Complexity:
        O(1) under the lock (no copy of the owner map: a
        :class:`~dualstack_ipam.owners.held_view.HeldView` of it) besides
        each pool's flat capture; O(n + k log k) after it for k keys added
        or removed since the owner table last merged its key order, in
        chunks of :data:`CHUNK` Services.

    >>> from dualstack_ipam import ClusterConfig, ServiceIPAllocator
    >>> config = ClusterConfig("10.244.0.0/16", "10.96.0.0/24,fd00:10:96::/112")
    >>> alloc = ServiceIPAllocator(config, strategy="sequential")
    >>> _ = alloc.allocate_service({"metadata": {"name": "web"},
    ...                             "spec": {"ipFamilyPolicy": "RequireDualStack"}})
    >>> data = snapshot(alloc); data["version"], data["services"]
    (2, {'default/web': '10.96.0.17,fd00:10:96::101'})
    """
    table = alloc._table
    with alloc._lock:  # O(1) under the lock: allocating threads wait for nothing else
        finish = {str(f): parts_of(pool)[0].capture() for f, pool in alloc._pools.items()}
        grown = [part.capture() for pool in alloc._pools.values() for part in parts_of(pool)[1:]]
        view = table.held_view()
        order = table.order_copy()
        used = sum(map(table.count, table.families))
    keys: list[str] | None = None
    try:
        keys = order.sorted()
        services = _texts(alloc, keys, view)
    finally:
        with alloc._lock:  # O(pending keys): the next snapshot need not merge again
            table.close_view(view)
            if keys is not None and keys is not order.base:
                table.adopt(order)
    pools = {}
    for family, build in finish.items():
        hand_over()
        pools[family] = build()
    # A family grown with add_range: its first pool where it always was, the
    # added ones in the order added (read_added).
    added = {"added": [build() for build in grown]} if grown else {}
    return envelope(
        KIND,
        used,
        version=VERSION,
        strategy=alloc._strategy,
        config=alloc.config.to_dict(),
        pools=pools,
        **added,
        services=services,
    )


def _entries(services: Any, version: int) -> Any:
    """The ``services`` field in version 1's form (key -> list of text)."""
    if version == FORMAT_VERSION or not isinstance(services, Mapping):
        return services  # the owner table checks both
    entries: dict[Any, list[str]] = {}
    for key, value in services.items():
        if not isinstance(value, str):
            raise SnapshotError(
                f"{KIND} snapshot of version {version}: {key!r} needs its addresses as "
                f"comma-separated text, got {value!r}"
            )
        entries[key] = value.split(",")
    return entries


def restore(
    cls: type[ServiceIPAllocator],
    data: Any,
    rng: Random | None,
    cooldown: float,
    clock: Callable[[], float] | None,
) -> ServiceIPAllocator:
    """Rebuild an allocator of class ``cls`` (see :meth:`ServiceIPAllocator.restore`).

    Raises:
        InvalidConfigError: a bad ``rng``, ``cooldown`` or ``clock``.
        SnapshotError: corrupt, truncated, of another kind or version, or
            keys, pools and counts that disagree.

    Complexity:
        O(n) in the snapshot's size.

    >>> from dualstack_ipam import ClusterConfig, ServiceIPAllocator
    >>> alloc = ServiceIPAllocator(ClusterConfig("10.244.0.0/16", "10.96.0.0/24"))
    >>> _ = alloc.allocate("dns", ip="10.96.0.10")
    >>> restore(ServiceIPAllocator, alloc.snapshot(), None, 0, None).get("dns")
    (IPAddress('10.96.0.10'),)
    """
    if rng is not None and not isinstance(rng, Random):  # an argument, not the data
        raise InvalidConfigError(f"rng must be a random.Random, got {rng!r}", value=rng)
    check_cooldown(cooldown, clock)
    data = open_envelope(
        data, KIND, ["strategy", "config", "pools", "services"], versions=(FORMAT_VERSION, VERSION)
    )
    used, config = read_int(data["used"], "used"), ClusterConfig.from_dict(data["config"])
    pools, services = data["pools"], _entries(data["services"], data["version"])
    names = {str(family) for family in config.service_families}
    if not names or not isinstance(pools, Mapping) or set(pools) != names:
        raise SnapshotError(f"{KIND} snapshot needs one pool per Service range {names}")
    if not isinstance(services, Mapping):
        raise SnapshotError(f"{KIND} snapshot field 'services' must be a mapping")
    obj = cls.__new__(cls)
    families = config.service_families
    obj._setup(
        config,
        data["strategy"],
        {
            f: ServiceIPPool.restore(pools[str(f)], rng=rng, cooldown=cooldown, clock=clock)
            for f in families
        },
    )
    for family, pool in obj._pools.items():
        if pool.cidr != config.service_cidr(family) or pool.strategy != obj._strategy:
            raise SnapshotError(f"{KIND} snapshot pool {pool!r} disagrees with its config")
    for pool_data in read_added(data, KIND, VERSION):
        part = ServiceIPPool.restore(pool_data, rng=rng, cooldown=cooldown, clock=clock)
        try:
            entry = obj._new_range_pool(part.cidr)
        except InvalidConfigError as exc:
            raise SnapshotError(f"{KIND} snapshot: added range: {exc}") from None
        if part.strategy != obj._strategy:
            raise SnapshotError(f"{KIND} snapshot: added pool {part!r} disagrees with its config")
        obj._pools[part.family] = grow(entry, part)

    obj._load_owners(KIND, services, obj._read_address)
    held = sum(map(obj._table.count, families))
    if used != held:
        raise SnapshotError(f"{KIND} snapshot says used={used} but keys hold {held}")
    return obj


def read_address(alloc: ServiceIPAllocator, key: str, value: str) -> Address:
    """The owner-table address of one of ``key``'s addresses in a snapshot.

    Raises:
        SnapshotError: not an address, or of a family without a Service range.

    Complexity:
        O(1).

    >>> from dualstack_ipam import ClusterConfig, ServiceIPAllocator
    >>> alloc = ServiceIPAllocator(ClusterConfig("10.244.0.0/16", "10.96.0.0/24"))
    >>> read_address(alloc, "dns", "10.96.0.10")
    (<IPFamily.IPv4: 'IPv4'>, 174063626)
    """
    try:
        number, family = parse_address(value)
    except IPAMError:
        raise SnapshotError(f"{KIND} snapshot entry {key!r}: {value!r}") from None
    if family not in alloc._pools:
        raise SnapshotError(f"{KIND} snapshot entry {key!r}: {value!r} has no Service range")
    return family, number
