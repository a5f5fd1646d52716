"""Several key mutations of one side committed as ONE store transaction.

:meth:`Sync.mutate <dualstack_ipam.durable.sync.Sync.mutate>` makes one
key's change durable in one transaction. A batch runs several ops (each a
mutation of one key on the cache, as ``mutate`` takes them) and commits
every key they changed together: all or nothing, in the store and in the
cache, and other processes see every key change at one revision. The
multi-document CLI calls use it, so their exit codes 1, 2 and 5 mean that
nothing changed.

The transaction holds what each key's own transaction would: its owner
record compared at the revision the cache knows and written, the alloc
records taken (compared absent), moved or freed, the reservation blocks of
the slots taken (:func:`~dualstack_ipam.durable.reserved.guard`), the
release times (:mod:`~dualstack_ipam.durable.cooling`), and one journal
entry per key changed. Addresses are counted over the whole batch: one a
key of the batch frees and another takes is moved, not freed and taken.

A key mutated twice in a batch is one change, from its state before the
first op to its state after the last (its journal entry names the last op).

- An op raises: the ops run before it are undone on the cache, newest
  first, and its error is raised; nothing was written.
- The batch does not fit in one transaction of the store (etcd's
  ``--max-txn-ops``, :class:`~dualstack_ipam.store.TxnLimits`): refused
  with a ``StoreError`` naming the limit before anything is written.
- Lost race: every op is undone, the cache catches up, and the batch runs
  again, as ``mutate`` retries.
- The store fails and its outcome is unknown: the first journal key
  settles it (the transaction applied whole or not at all); unreadable,
  every key of the batch is left *in doubt*.

On a partial side every key's own owner record is read before the ops run
(``mutate`` skips that read for an allocate; a batch would need each op's
error to be told apart from what the cache did not know).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar

from dualstack_ipam.durable import cooling, reserved
from dualstack_ipam.durable.journal import encode_entry
from dualstack_ipam.durable.sync import ATTEMPTS, PARTIAL_ATTEMPTS, Side, State, Sync, backoff
from dualstack_ipam.errors import StoreError, StoreUnavailableError
from dualstack_ipam.owners import Address, check_key
from dualstack_ipam.services import read
from dualstack_ipam.services.allocator import ServiceIPAllocator
from dualstack_ipam.store import Compare, Delete, Put, Write, check_txn

if TYPE_CHECKING:
    from dualstack_ipam.durable.cluster import Cluster

__all__ = ["allocate_services", "mutate_many", "release_services", "run"]

R = TypeVar("R")
Op = tuple[str, Callable[[], R], str]
Change = tuple[str, State, State, str]  # key, before the first op, after the last, journal op


def mutate_many(sync: Sync, name: str, ops: Sequence[Op[R]]) -> list[R]:
    """Run ``ops`` (``(key, op, journal_op)``) on side ``name``'s cache, commit them as one.

    Args:
        sync: the cache protocol of a cluster.
        name: the side (``"nodes"`` or ``"services"``).
        ops: each a mutation of ``key`` on the cache (all-or-nothing itself,
            as :meth:`Sync.mutate <dualstack_ipam.durable.sync.Sync.mutate>`
            takes it) and the journal's name for it.

    Returns:
        What each op returned, in order.

    Raises:
        IPAMError: what an op raises (nothing changed).
        StoreError: more records than one transaction of the store takes
            (naming the limit), or the store refused or failed (nothing
            changed).
        StoreUnavailableError: ``ATTEMPTS`` transactions lost their race.

    Complexity:
        The ops' cost, one catch-up, one owner record read per key on a
        partial side, and one transaction of O(n) records for n ops.

    >>> import dualstack_ipam
    >>> from dualstack_ipam import ClusterConfig
    >>> config = ClusterConfig("10.244.0.0/16", "10.96.0.0/24")
    >>> with dualstack_ipam.open("memory://", config) as cluster:
    ...     services = cluster.services
    ...     ops = [(k, lambda k=k: ServiceIPAllocator.release(services, k), "release")
    ...            for k in ("a", "b")]
    ...     mutate_many(cluster._sync, "services", ops)
    [False, False]
    """
    with sync.lock:
        side = sync.sides[name]
        keys = list(dict.fromkeys(key for key, _, _ in ops))
        sync._conflict = 0
        for attempt in range(ATTEMPTS):
            if attempt:
                time.sleep(backoff(attempt))
            if attempt >= PARTIAL_ATTEMPTS:
                sync.fill(side)
            sync.catch_up(fresh=attempt > 0 and sync._conflict <= 0, reach=sync._conflict)
            for key in keys:
                sync.ensure(side, key)
                sync._settle(side, key)
            undo: list[tuple[str, State]] = []
            first: dict[str, State] = {}
            last_op: dict[str, str] = {}
            results: list[R] = []
            try:
                for key, op, journal_op in ops:
                    before = side.cache._key_state(key)
                    undo.append((key, before))
                    first.setdefault(key, before)
                    last_op[key] = journal_op
                    results.append(op())
            except BaseException:
                _restore(side, undo)
                raise
            changes: list[Change] = []
            for key in keys:
                after = side.cache._key_state(key)
                if (after or ()) != (first[key] or ()):
                    changes.append((key, first[key], after, last_op[key]))
            if not changes:
                return results
            if _commit(sync, side, changes, undo):
                return results
            sync._spread(side)
        raise StoreUnavailableError(
            f"{len(keys)} {side.layout.kind} keys in one transaction: {ATTEMPTS} transactions "
            "in a row lost their race with other writers; nothing was changed"
        )


def _restore(side: Side, undo: Sequence[tuple[str, State]]) -> None:
    """Undo the ops run on the cache, newest first (each op's state before it)."""
    for key, before in reversed(undo):
        side.cache._set_key_state(key, before)


def _commit(
    sync: Sync, side: Side, changes: Sequence[Change], undo: Sequence[tuple[str, State]]
) -> bool:
    """One transaction of every change; False: it lost a race (the cache undone)."""
    layout = side.layout
    compares: list[Compare] = []
    writes: list[Write] = []
    held: dict[Address, str] = {}  # address -> its key before the batch (of the batch's keys)
    holds: dict[Address, str] = {}  # address -> its key after
    for key, before, after, _ in changes:
        owner_key = layout.owner_key(key)
        compares.append(Compare(owner_key, side.revs.get(key, 0)))
        writes.append(Put(owner_key, layout.encode(after)) if after else Delete(owner_key))
        held.update(dict.fromkeys(before or (), key))
        holds.update(dict.fromkeys(after or (), key))
    taken = [address for address in holds if address not in held]
    freed = [address for address in held if address not in holds]
    for address in taken:
        compares.append(Compare(layout.alloc_key(address), 0))
    for address, key in holds.items():
        if held.get(address) != key:
            writes.append(Put(layout.alloc_key(address), key.encode("utf-8", "surrogatepass")))
    writes.extend(Delete(layout.alloc_key(address)) for address in freed)
    guards, rewrites = reserved.guard(side, taken)
    compares += guards
    writes += rewrites
    stamps: list[Write] = []
    if sync.cooldown:
        guards, stamps = cooling.guard(side, taken, freed, sync.clock())
        compares += guards
        writes += stamps
    journal_keys = []
    for key, _, after, journal_op in changes:
        journal_key = sync.journal_key()
        journal_keys.append(journal_key)
        entry = sync.entry(journal_op, layout.kind, key, tuple(map(layout.text, after or ())))
        writes.append(Put(journal_key, encode_entry(entry)))
    try:
        check_txn(compares, writes, sync.backend.limits)
    except StoreError as exc:
        _restore(side, undo)
        raise StoreError(
            f"{len(changes)} {layout.kind} changes do not fit in one store transaction: "
            f"{exc}; nothing was changed"
        ) from None
    try:
        result = sync.backend.txn(compares, writes)
        succeeded, revision = result.succeeded, result.revision
    except StoreError:
        # All or nothing: the first journal key tells whether it applied.
        try:
            record = sync.backend.get(journal_keys[0])
        except StoreError:
            _restore(side, undo)
            sync._doubt.update((layout.kind, key) for key, _, _, _ in changes)
            raise
        if record is None:
            _restore(side, undo)
            raise
        succeeded, revision = True, record.revision
    if not succeeded:
        _restore(side, undo)
        sync._lost(side, compares, result.current)
        return False
    states = [(key, before, after) for key, before, after, _ in changes]
    sync._won(side, states, revision, rewrites, stamps)
    return True


def run(cluster: Cluster, name: str, ops: Sequence[Op[R]]) -> list[R]:
    """:func:`mutate_many` on side ``name`` of ``cluster`` (loaded first): the CLI's hook.

    Args:
        cluster: a durable cluster.
        name: ``"nodes"`` or ``"services"``.
        ops: as :func:`mutate_many`; each op calls the *plain* allocator
            method on the side (``ServiceIPAllocator.allocate_service(
            cluster.services, manifest)``), whose durable override would
            commit on its own.

    Returns:
        What each op returned, in order.

    Raises:
        As :func:`mutate_many`.

    Complexity:
        As :func:`mutate_many`.

    >>> import dualstack_ipam
    >>> from dualstack_ipam import ClusterConfig, NodeCIDRAllocator
    >>> with dualstack_ipam.open("memory://", ClusterConfig("10.244.0.0/16")) as cluster:
    ...     nodes = cluster.nodes
    ...     release = lambda: NodeCIDRAllocator.release(nodes, "n1")
    ...     run(cluster, "nodes", [("n1", release, "release")])
    [False]
    """
    getattr(cluster, name)  # the side is read from the store at its first use
    return mutate_many(cluster._sync, name, ops)


def allocate_services(
    cluster: Cluster, manifests: Sequence[Mapping[str, Any]]
) -> list[dict[str, Any]]:
    """``allocate_service`` of every manifest, as ONE store transaction (all or nothing).

    Args:
        cluster: a durable cluster with a Service range.
        manifests: Service manifests, allocated in order.

    Returns:
        The allocated manifests, in order.

    Raises:
        ServiceValidationError, ClusterIPTakenError, AlreadyAllocatedError,
            PoolExhaustedError: as ``allocate_service`` (nothing changed).
        StoreError: the batch does not fit in one transaction (naming the
            limit), or the store failed (nothing changed).
        StoreUnavailableError: the store could not be written (nothing changed).

    Complexity:
        As :func:`mutate_many`.

    >>> import dualstack_ipam
    >>> from dualstack_ipam import ClusterConfig
    >>> config = ClusterConfig("10.244.0.0/16", "10.96.0.0/24")
    >>> with dualstack_ipam.open("memory://", config) as cluster:
    ...     made = allocate_services(cluster, [
    ...         {"metadata": {"name": "dns"}, "spec": {"clusterIP": "10.96.0.10"}},
    ...         {"metadata": {"name": "web"}, "spec": {"clusterIP": "10.96.0.11"}}])
    ...     [m["spec"]["clusterIP"] for m in made], len(cluster.services)
    (['10.96.0.10', '10.96.0.11'], 2)
    """
    services = cluster.services
    ops: list[Op[dict[str, Any]]] = []
    for manifest in manifests:
        key = read.read_manifest(manifest)[0]
        ops.append(
            (key, partial(ServiceIPAllocator.allocate_service, services, manifest), "allocate")
        )
    return run(cluster, "services", ops)


def release_services(cluster: Cluster, keys: Sequence[str]) -> list[bool]:
    """``release`` of every Service key, as ONE store transaction (all or nothing).

    Args:
        cluster: a durable cluster with a Service range.
        keys: Service keys (``namespace/name``); unknown ones are no-ops.

    Returns:
        Whether each key held something, in order.

    Raises:
        InvalidConfigError: an invalid key (nothing changed).
        StoreError, StoreUnavailableError: as :func:`allocate_services`.

    Complexity:
        As :func:`mutate_many`.

    >>> import dualstack_ipam
    >>> from dualstack_ipam import ClusterConfig
    >>> config = ClusterConfig("10.244.0.0/16", "10.96.0.0/24")
    >>> with dualstack_ipam.open("memory://", config) as cluster:
    ...     _ = cluster.services.allocate("default/dns")
    ...     release_services(cluster, ["default/dns", "default/web"]), len(cluster.services)
    ([True, False], 0)
    """
    services = cluster.services
    for key in keys:
        check_key(key)
    ops: list[Op[bool]] = [
        (key, partial(ServiceIPAllocator.release, services, key), "release") for key in keys
    ]
    return run(cluster, "services", ops)
