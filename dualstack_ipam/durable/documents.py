"""Whole-state documents: export, import, the old CLI state file, journal replay.

A document is JSON-ready data::

    {"kind": "dualstack-ipam-store", "version": 1, "revision": 42,
     "config": ClusterConfig.to_dict(), "node_strategy": "next-fit",
     "service_strategy": "random", "cooldown": 0,
     "nodes": {"node-1": ["10.244.0.0/24", "fc00::/64"], ...},
     "services": {"default/web": ["10.96.0.17"], ...} or null,
     "reservations": {"nodes": [["10.244.8.0/22", "racks"], ...],
                      "services": [["10.96.0.200-10.96.0.209", ""], ...]},
     "ranges": {"nodes": ["10.250.0.0/16", ...], "services": ["10.97.0.0/24", ...]}}

``reservations`` and ``ranges`` (the ranges added to each side's families,
each family's in the order added) may be absent (none); a cluster without a
Service range has no ``services`` entry in either.

Importing checks the whole document in scratch allocators before writing
anything, then writes it in batches that fit the store's transaction limit.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

import attrs

from dualstack_ipam.cluster.config import ClusterConfig
from dualstack_ipam.cluster.nodes import NodeCIDRAllocator
from dualstack_ipam.durable.journal import JournalEntry, encode_entry
from dualstack_ipam.durable.layout import OWNER_PREFIX, RANGE_PREFIX, RESV_PREFIX, SideLayout
from dualstack_ipam.durable.reserved import block_runs, decode_block, encode_block
from dualstack_ipam.durable.sync import Side, Sync
from dualstack_ipam.errors import (
    FamilyNotConfiguredError,
    InvalidConfigError,
    IPAMError,
    SnapshotError,
    StoreError,
)
from dualstack_ipam.net import make_network, parse_network
from dualstack_ipam.owners import Address, KeyedAllocator
from dualstack_ipam.services.allocator import ServiceIPAllocator
from dualstack_ipam.store import Compare, Put, Write

if TYPE_CHECKING:
    from dualstack_ipam.durable.cluster import Cluster

__all__ = [
    "DOCUMENT_KIND",
    "DOCUMENT_VERSION",
    "check_store",
    "document",
    "document_from_state_file",
    "import_document",
    "replay",
]

DOCUMENT_KIND = "dualstack-ipam-store"
DOCUMENT_VERSION = 1
_STATE_KIND = "dualstack-ipam-state"  # the old CLI's JSON state file
_SETTINGS = ("node_strategy", "service_strategy", "cooldown")
_DEFAULT_BATCH = 500  # keys per transaction when the store sets no limit


def _dump(alloc: KeyedAllocator[Any]) -> dict[str, list[str]]:
    return {key: [str(item) for item in held] for key, held in alloc.items()}


def _reservations(alloc: Any) -> list[list[str]]:
    return [[str(space), reason] for space, reason in alloc.reservations()]


def document(
    settings: Mapping[str, Any],
    nodes: KeyedAllocator[Any],
    services: KeyedAllocator[Any] | None,
    revision: int,
) -> dict[str, Any]:
    """The document of a cluster's state.

    Args:
        settings: ``config`` and the creation settings.
        nodes: the node allocator.
        services: the Service allocator, or None without a Service range.
        revision: the store revision the state reflects (0: none).

    Complexity:
        O(n) for n keys.

    >>> config = ClusterConfig("10.244.0.0/16")
    >>> nodes = NodeCIDRAllocator(config); _ = nodes.allocate("a")
    >>> settings = {"config": config, "node_strategy": "next-fit",
    ...             "service_strategy": "random", "cooldown": 0}
    >>> document(settings, nodes, None, 0)["nodes"]
    {'a': ['10.244.0.0/24']}
    """
    return {
        "kind": DOCUMENT_KIND,
        "version": DOCUMENT_VERSION,
        "revision": revision,
        "config": settings["config"].to_dict(),
        **{name: settings[name] for name in _SETTINGS},
        "nodes": _dump(nodes),
        "services": None if services is None else _dump(services),
        "reservations": {
            "nodes": _reservations(nodes),
            **({} if services is None else {"services": _reservations(services)}),
        },
        "ranges": {
            "nodes": _added(nodes),
            **({} if services is None else {"services": _added(services)}),
        },
    }


def _added(alloc: Any) -> list[str]:
    families = alloc._pools  # a Service allocator has a range of only some families
    return [str(cidr) for family in families for cidr in alloc.ranges(family)[1:]]


def document_from_state_file(data: Any) -> dict[str, Any]:
    """The document of the old CLI JSON state file's content (already parsed).

    The file held the allocators' snapshots (``{"kind":
    "dualstack-ipam-state", "version": 1, "config", "nodes", "services"}``);
    each is restored, so a corrupt file is refused here, before any store is
    written.

    Raises:
        SnapshotError: not a state file of version 1, or snapshots that do
            not restore or disagree with its config.

    Complexity:
        O(n) in the file's size.

    >>> from dualstack_ipam import ClusterConfig, NodeCIDRAllocator
    >>> nodes = NodeCIDRAllocator(ClusterConfig("10.244.0.0/16")); _ = nodes.allocate("a")
    >>> old = {"kind": "dualstack-ipam-state", "version": 1,
    ...        "config": nodes.config.to_dict(), "nodes": nodes.snapshot(), "services": None}
    >>> document_from_state_file(old)["nodes"]
    {'a': ['10.244.0.0/24']}
    """
    if not isinstance(data, Mapping) or data.get("kind") != _STATE_KIND:
        raise SnapshotError(f"not a dualstack-ipam JSON state file: {data!r:.80}")
    if data.get("version") != 1 or type(data.get("version")) is not int:
        raise SnapshotError(f"state file version {data.get('version')!r} is not supported (1 is)")
    if set(data) != {"kind", "version", "config", "nodes", "services"}:
        raise SnapshotError(
            f"a state file has the keys kind, version, config, nodes, services; "
            f"got {sorted(map(str, data))}"
        )
    config = ClusterConfig.from_dict(data["config"])
    nodes = NodeCIDRAllocator.restore(data["nodes"])
    raw = data["services"]
    services = None if raw is None else ServiceIPAllocator.restore(raw)
    if nodes.config != config or (services is not None and services.config != config):
        raise SnapshotError("the state file's snapshots disagree with its config")
    if (services is None) != (not config.service_families):
        raise SnapshotError("the state file has Services exactly when its config has a range")
    settings = {
        "config": config,
        "node_strategy": nodes.strategy,
        "service_strategy": "random" if raw is None else raw["strategy"],
        "cooldown": 0,
    }
    return document(settings, nodes, services, 0)


def _read_document(doc: Any, config: ClusterConfig) -> dict[str, Any]:
    if not isinstance(doc, Mapping) or doc.get("kind") != DOCUMENT_KIND:
        raise SnapshotError(f"not a {DOCUMENT_KIND} document: {doc!r:.80}")
    version = doc.get("version")
    if type(version) is not int or version < 1:
        raise SnapshotError(f"bad document version {version!r}")
    if version > DOCUMENT_VERSION:
        raise InvalidConfigError(
            f"document version {version} is newer than this version of dualstack_ipam "
            f"reads ({DOCUMENT_VERSION})",
            value=version,
        )
    missing = {"config", "nodes", "services"} - set(doc)
    if missing:
        raise SnapshotError(f"the document lacks {sorted(missing)}")
    if ClusterConfig.from_dict(doc["config"]) != config:
        raise InvalidConfigError(
            f"the document's config {doc['config']!r} is not the store's {config.to_dict()!r}",
            value=doc["config"],
        )
    reservations = doc.get("reservations", {})
    if not isinstance(reservations, Mapping) or not set(reservations) <= {"nodes", "services"}:
        raise SnapshotError(
            f"the document's reservations must map nodes / services to lists, "
            f"got {reservations!r:.60}"
        )
    ranges = doc.get("ranges", {})
    if (
        not isinstance(ranges, Mapping)
        or not set(ranges) <= {"nodes", "services"}
        or not all(
            isinstance(texts, list) and all(isinstance(text, str) for text in texts)
            for texts in ranges.values()
        )
    ):
        raise SnapshotError(
            "the document's ranges must be {'nodes': [CIDR, ...], 'services': [CIDR, ...]}, "
            f"got {ranges!r:.60}"
        )
    return {
        "nodes": doc["nodes"],
        "services": doc["services"],
        "reservations": reservations,
        "ranges": ranges,
    }


def _reserve(scratch: Any, entries: Any, what: str) -> list[tuple[str, str]]:
    """Apply a document's reservations of one side to its scratch allocator."""
    if not isinstance(entries, list):
        raise SnapshotError(
            f"the document's {what} reservations must be a list, got {entries!r:.60}"
        )
    done = []
    for item in entries:
        if not (
            isinstance(item, list)
            and len(item) == 2
            and all(isinstance(part, str) for part in item)
        ):
            raise SnapshotError(f"a {what} reservation must be [range, reason], got {item!r:.60}")
        try:
            scratch.reserve(item[0], item[1])
        except IPAMError as exc:
            raise SnapshotError(f"the document's {what} reservation {item[0]!r}: {exc}") from None
        done.append((item[0], item[1]))
    return done


def _states(
    scratch: KeyedAllocator[Any], layout: SideLayout, entries: Any, what: str
) -> list[tuple[str, tuple[Address, ...]]]:
    """Check a document's entries in a scratch allocator; the states, in key order."""
    if not isinstance(entries, Mapping):
        raise SnapshotError(f"the document's {what} must be a mapping, got {entries!r:.60}")
    order = {family: i for i, family in enumerate(scratch._table.families)}
    states = []
    for key, texts in entries.items():
        if not isinstance(key, str) or not key:
            raise SnapshotError(f"the document has a bad {what} key {key!r}")
        if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
            raise SnapshotError(f"{what} {key!r} needs a non-empty list of text, got {texts!r}")
        state = tuple(layout.read(key, text) for text in texts)
        if what == "nodes":  # node CIDRs are kept in the config's family order
            state = tuple(sorted(state, key=lambda address: order[address[0]]))
        try:
            scratch._set_key_state(key, state)
        except IPAMError as exc:
            raise SnapshotError(f"the document's {what} {key!r}: {exc}") from None
        states.append((key, state))
    return sorted(states)


def import_document(
    sync: Sync, config: ClusterConfig, sides: Mapping[str, KeyedAllocator[Any]], doc: Any
) -> int:
    """Check ``doc`` and write it into the empty store behind ``sync`` (see ``Cluster.import_``).

    Raises:
        SnapshotError, InvalidConfigError: a bad document (nothing written).
        StoreError: the store is not empty, or another writer wrote meanwhile.

    Complexity:
        O(n) for n keys.
    """
    parts = _read_document(doc, config)
    items: list[tuple[list[Compare], list[Write]]] = []
    keys: list[tuple[SideLayout, str, tuple[Address, ...]]] = []
    for name, side in sides.items():
        strategy = getattr(side, "strategy", "random")
        scratch: Any = (
            NodeCIDRAllocator(config, strategy=strategy)
            if name == "nodes"
            else ServiceIPAllocator(config, strategy="sequential")
        )
        # The scratch's own layout, grown with it: the cluster's follows the
        # range records once they are written.
        layout = (SideLayout.for_nodes if name == "nodes" else SideLayout.for_services)(scratch)
        items += _grow(sync, scratch, layout, parts["ranges"].get(name, []), name)
        for key, state in _states(scratch, layout, parts[name], name):
            keys.append((layout, key, state))
        reserved = _reserve(scratch, parts["reservations"].get(name, []), name)
        for block, runs in block_runs(scratch, layout).items():
            items.append(([Compare(block, 0)], [Put(block, encode_block(runs, pending=False))]))
        for text, reason in reserved:
            entry = sync.entry("import", "reservation", text, (text,))
            entry = attrs.evolve(entry, data={"side": name, "range": text, "reason": reason})
            items.append(([], [Put(sync.journal_key(), encode_entry(entry))]))
    if parts["services"] and "services" not in sides:
        raise SnapshotError("the document lists Services, but the cluster has no Service range")
    if parts["reservations"].get("services") and "services" not in sides:
        raise SnapshotError("the document reserves Service space, but the cluster has no range")
    if parts["ranges"].get("services") and "services" not in sides:
        raise SnapshotError("the document adds Service ranges, but the cluster has no range")
    for layout, key, state in keys:
        owner = layout.owner_key(key)
        compares = [Compare(owner, 0), *(Compare(layout.alloc_key(a), 0) for a in state)]
        value = key.encode("utf-8", "surrogatepass")
        entry = sync.entry("import", layout.kind, key, tuple(map(layout.text, state)))
        writes: list[Write] = [
            Put(owner, layout.encode(state)),
            *(Put(layout.alloc_key(a), value) for a in state),
            Put(sync.journal_key(), encode_entry(entry)),
        ]
        items.append((compares, writes))
    with sync.lock:
        for prefix in (OWNER_PREFIX, RESV_PREFIX, RANGE_PREFIX):
            if sync.backend.get_prefix(prefix, limit=1):
                raise StoreError("import needs an empty store, and this one holds keys already")
        _write_batches(sync, items)
        sync.catch_up()
    return len(keys)


def _grow(
    sync: Sync, scratch: Any, layout: SideLayout, texts: list[str], name: str
) -> list[tuple[list[Compare], list[Write]]]:
    """Add a document's ranges of one side to its scratch allocator; their records and entries."""
    items: list[tuple[list[Compare], list[Write]]] = []
    what = "node" if name == "nodes" else "Service"
    for text in texts:
        try:
            value = scratch.add_range(text)
        except IPAMError as exc:
            raise SnapshotError(f"the document's {what} range {text!r}: {exc}") from None
        family = parse_network(value).family
        key = layout.range_key(family, len(scratch.ranges(family)) - 1)
        entry = sync.entry("import", "range", str(value), (str(value),))
        entry = attrs.evolve(entry, data={"side": name})
        writes: list[Write] = [Put(key, str(value).encode())]
        writes.append(Put(sync.journal_key(), encode_entry(entry)))
        items.append(([Compare(key, 0)], writes))
    # The layout numbers the new ranges' slots (alloc keys, reservation blocks).
    for family, entry_pool in scratch._pools.items():
        layout.grow(family, entry_pool)
    return items


def _write_batches(sync: Sync, items: list[tuple[list[Compare], list[Write]]]) -> int:
    """Write ``items`` in transactions within the store's limit; how many were written."""
    limits = sync.backend.limits
    most = limits.max_ops or _DEFAULT_BATCH * 4
    done, size = 0, 0
    batch_compares: list[Compare] = []
    batch_writes: list[Write] = []
    count = 0

    def flush() -> None:
        nonlocal done, batch_compares, batch_writes, size, count
        if batch_writes:
            if not sync.backend.txn(batch_compares, batch_writes).succeeded:
                raise StoreError(
                    f"another writer wrote to the store during the import; {done} records "
                    "were imported before it"
                )
            done += count
        batch_compares, batch_writes, size, count = [], [], 0, 0

    for compares, writes in items:
        cost = sum(len(c.key) for c in compares) + sum(
            len(w.key) + len(w.value) for w in writes if isinstance(w, Put)
        )
        full = len(batch_writes) + len(writes) > most or (
            limits.max_bytes is not None and size + cost > limits.max_bytes
        )
        if full:
            flush()
        batch_compares.extend(compares)
        batch_writes.extend(writes)
        size += cost
        count += 1
    flush()
    return done


def replay(entries: Iterable[JournalEntry], cluster: Cluster) -> int:
    """Apply journal entries, oldest first, to ``cluster`` (an empty store, usually).

    Each entry makes its key hold exactly the entry's addresses, in one
    transaction with a journal entry of the same ``op``, so replaying a whole
    journal into an empty store of the same config reproduces every key.

    Returns:
        How many entries changed something.

    Raises:
        SnapshotError: an entry of an unknown kind, or addresses outside the
            cluster's ranges.
        AlreadyAllocatedError: an address held by another key (the entries
            are not a journal of one store, oldest first).

    Complexity:
        O(e) transactions for e entries.

    >>> import dualstack_ipam
    >>> from dualstack_ipam import ClusterConfig
    >>> config = ClusterConfig("10.244.0.0/16")
    >>> old = dualstack_ipam.open("memory://", config); _ = old.nodes.allocate("a")
    >>> new = dualstack_ipam.open("memory://", config)
    >>> replay(old.journal(), new), new.nodes.get("a")
    (1, (IPNetwork('10.244.0.0/24'),))
    """
    changed = 0
    for entry in entries:
        if entry.kind == "reservation":
            changed += _replay_reservation(entry, cluster)
            continue
        if entry.kind == "range":
            changed += _replay_range(entry, cluster)
            continue
        if entry.kind == "node":
            name, alloc = "nodes", cluster.nodes
        elif entry.kind == "service":
            name, alloc = "services", cluster.services  # type: ignore[assignment]
        else:
            raise SnapshotError(f"journal entry {entry.revision}: unknown kind {entry.kind!r}")
        layout = cluster._sync.sides[name].layout
        state = tuple(layout.read(entry.key, text) for text in entry.addresses)
        differs = alloc._key_state(entry.key) != (state or None)
        cluster._sync.mutate(name, entry.key, _setter(alloc, entry.key, state), entry.op)
        changed += differs
    return changed


def _replay_reservation(entry: JournalEntry, cluster: Cluster) -> bool:
    """Reserve or unreserve as ``entry`` did (an ``import`` entry reserves); whether it changed."""
    data = entry.data
    name, text, reason = data.get("side"), data.get("range"), data.get("reason", "")
    if (
        name not in ("nodes", "services")
        or not isinstance(text, str)
        or not isinstance(reason, str)
    ):
        raise SnapshotError(
            f"journal entry {entry.revision}: a reservation entry needs data with side "
            f"(nodes or services), range and reason, got {data!r:.80}"
        )
    alloc: Any = cluster.nodes if name == "nodes" else cluster.services
    before = alloc.reservations()
    if entry.op == "unreserve":
        alloc.unreserve(text)
    else:
        alloc.reserve(text, reason)
    return bool(alloc.reservations() != before)


def _replay_range(entry: JournalEntry, cluster: Cluster) -> bool:
    """Add the range ``entry`` added, unless the cluster has it; whether it did."""
    name = entry.data.get("side")
    if name not in ("nodes", "services"):
        raise SnapshotError(
            f"journal entry {entry.revision}: a range entry needs data side 'nodes' or "
            f"'services', got {entry.data!r:.80}"
        )
    value = parse_network(entry.key)
    try:
        alloc: Any = cluster.nodes if name == "nodes" else cluster.services
        if make_network(*value) in alloc.ranges(value.family):
            return False
    except FamilyNotConfiguredError:
        raise SnapshotError(
            f"journal entry {entry.revision}: the cluster has no {value.family} {name} range "
            f"to add {entry.key!r} to"
        ) from None
    alloc.add_range(entry.key)
    return True


def _setter(alloc: KeyedAllocator[Any], key: str, state: tuple[Address, ...]) -> Any:
    return lambda: alloc._set_key_state(key, state)


def check_store(sync: Sync) -> None:
    """Assert that the loaded sides' owner and alloc records agree, and the caches equal them.

    Complexity:
        O(n) records.
    """
    with sync.lock:
        for side in sync.sides.values():
            sync.fill(side)
        sync.catch_up()
        claimed: dict[str, str] = {}
        for side in sync.sides.values():
            _check_side(sync, side, claimed)
            for prefix in side.layout.alloc_prefixes:
                for record in sync.backend.get_prefix(prefix):
                    assert record.key in claimed, f"alloc record {record.key} has no owner"
                    owner = record.value.decode("utf-8", "surrogatepass")
                    assert owner == claimed.pop(record.key), record
        assert not claimed, f"owner records claim absent alloc records: {claimed}"
        for side in sync.sides.values():
            _check_blocks(sync, side)
            stored = {r.key: r.revision for r in sync.backend.get_prefix(side.layout.range_prefix)}
            assert side.ranges == stored, (side.ranges, stored)


def _check_blocks(sync: Sync, side: Side) -> None:
    """The side's laid reservations are its block records', which it knows at their revision."""
    stored = {}
    for prefix in side.layout.resv_prefixes:
        for record in sync.backend.get_prefix(prefix):
            assert side.blocks.get(record.key) == (record.revision, record.value), record.key
            runs = decode_block(record.value, record.key)[0]
            if runs:
                stored[record.key] = runs
    assert side.laid, "reservations not laid after a catch-up"
    assert block_runs(side.cache, side.layout) == stored


def _check_side(sync: Sync, side: Side, claimed: dict[str, str]) -> None:
    layout, cache = side.layout, side.cache
    stored = {}
    for record in sync.backend.get_prefix(layout.prefix):
        key = layout.key_of(record.key)
        state = layout.decode(record.value, record.key)
        stored[key] = state
        assert side.revs.get(key) == record.revision, (key, side.revs.get(key), record)
        for address in state:
            claimed[layout.alloc_key(address)] = key
    assert {key: cache._key_state(key) for key in list(cache._table)} == stored
    cache._check_owners()
