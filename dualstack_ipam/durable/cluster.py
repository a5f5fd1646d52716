"""``dualstack_ipam.open`` and the durable :class:`Cluster` it returns.

A cluster's store holds one ``config`` record, written once at creation: the
:class:`~dualstack_ipam.ClusterConfig`, the strategies and the cooldown, with
the record format. Opening an existing store checks what the caller passes
against it; each side (``.nodes``, ``.services``) is read from the store at
its first use only, so a command that touches nodes never reads the
Services.

>>> import dualstack_ipam
>>> from dualstack_ipam import ClusterConfig
>>> config = ClusterConfig("10.244.0.0/16,fc00::/24", "10.96.0.0/12,fd00:10:96::/112")
>>> with dualstack_ipam.open("memory://", config, service_strategy="sequential") as cluster:
...     cluster.services.allocate_service({"metadata": {"name": "web"}})["spec"]["clusterIPs"]
['10.96.1.1']
"""

from __future__ import annotations

import getpass
import json
import os
import socket
from collections.abc import Iterator
from random import Random
from types import TracebackType
from typing import Any

from dualstack_ipam.cluster.config import ClusterConfig
from dualstack_ipam.cluster.nodes import NodeCIDRAllocator
from dualstack_ipam.durable import documents
from dualstack_ipam.durable.journal import JournalEntry, decode_entry
from dualstack_ipam.durable.layout import CONFIG_KEY, JOURNAL_PREFIX, SideLayout
from dualstack_ipam.durable.sides import DurableNodes, DurableServices
from dualstack_ipam.durable.sync import Side, Sync
from dualstack_ipam.durable.urls import open_backend
from dualstack_ipam.errors import (
    FamilyNotConfiguredError,
    InvalidConfigError,
    IPAMError,
    StoreError,
)
from dualstack_ipam.services.allocator import ServiceIPAllocator
from dualstack_ipam.store import Backend, Compare, Delete, Put

__all__ = ["FORMAT", "Cluster", "attach", "open"]

FORMAT = 1
"""The version of the records' layout (``docs/keeping-state.md``)."""

_DEFAULTS = {"node_strategy": "next-fit", "service_strategy": "random", "cooldown": 0}


def default_actor() -> str:
    """``user@host:pid`` of this process (the journal's default actor).

    Complexity:
        O(1).

    >>> default_actor().endswith(f":{os.getpid()}")
    True
    """
    try:
        user = getpass.getuser()
    except (OSError, KeyError):  # no login name (a container's bare uid)
        user = str(os.getuid()) if hasattr(os, "getuid") else "unknown"
    return f"{user}@{socket.gethostname()}:{os.getpid()}"


def _settings(node_strategy: Any, service_strategy: Any, cooldown: Any) -> dict[str, Any]:
    """The creation settings given (None = not given), checked."""
    given: dict[str, Any] = {}
    for name, value in (("node_strategy", node_strategy), ("service_strategy", service_strategy)):
        if value is not None:
            if not isinstance(value, str):
                raise InvalidConfigError(f"{name} must be a str, got {value!r}", value=value)
            given[name] = value
    if cooldown is not None:
        if isinstance(cooldown, bool) or not isinstance(cooldown, (int, float)) or cooldown < 0:
            raise InvalidConfigError(
                f"cooldown must be a number of seconds >= 0, got {cooldown!r}", value=cooldown
            )
        if cooldown != 0:
            raise InvalidConfigError(
                f"cooldown={cooldown!r}: a release cooldown is not supported yet (issue 11); "
                "only 0 is",
                value=cooldown,
            )
        given["cooldown"] = cooldown
    return given


def _read_settings(value: bytes, where: str) -> dict[str, Any]:
    try:
        data = json.loads(value)
        version = data["format"]
    except (ValueError, TypeError, KeyError):
        raise StoreError(f"the store {where} has a corrupt config record: {value!r:.80}") from None
    if type(version) is not int or version > FORMAT:
        raise InvalidConfigError(
            f"the store {where} has record format {version!r}, newer than this version of "
            f"dualstack_ipam reads ({FORMAT}); upgrade dualstack_ipam",
            value=version,
        )
    try:
        config = ClusterConfig.from_dict(data["config"])
        settings = {name: data[name] for name in _DEFAULTS}
    except (IPAMError, KeyError, TypeError):
        raise StoreError(f"the store {where} has a corrupt config record: {value!r:.80}") from None
    return {"config": config, **settings}


def _create(backend: Backend, config: ClusterConfig, given: dict[str, Any]) -> None:
    settings = {**_DEFAULTS, **given}
    # Validate the strategies before anything is written.
    NodeCIDRAllocator(config, strategy=settings["node_strategy"])
    if config.service_families:
        ServiceIPAllocator(config, strategy=settings["service_strategy"])
    value = json.dumps({"format": FORMAT, "config": config.to_dict(), **settings}).encode()
    backend.txn([Compare(CONFIG_KEY, 0)], [Put(CONFIG_KEY, value)])


def open(  # the name follows shelve.open / dbm.open (api-durable.md)
    url: str,
    config: ClusterConfig | None = None,
    *,
    actor: str | None = None,
    rng: Random | None = None,
    node_strategy: str | None = None,
    service_strategy: str | None = None,
    cooldown: float | None = None,
) -> Cluster:
    """Open (or create) the durable cluster stored at ``url``.

    Args:
        url: ``memory://`` (a new store each call), ``sqlite:///abs/path.db``
            or ``sqlite:relative/path.db`` (optional ``?synchronous=NORMAL``,
            ``?busy_timeout_ms=N``); ``etcd://`` arrives with issue 10.
        config: needed to create a store; else checked against the stored one.
        actor: who the journal says mutates (default ``user@host:pid``).
        rng: seeds this process's random picks of Service IPs.
        node_strategy: ``"next-fit"`` (default at creation) or ``"lowest"``.
        service_strategy: ``"random"`` (default at creation) or ``"sequential"``.
        cooldown: the release cooldown in seconds; only 0 (the default) is
            supported before issue 11.

    Returns:
        The :class:`Cluster`; close it (or use ``with``).

    Raises:
        InvalidConfigError: a malformed URL, no ``config`` for a new store,
            a ``config``, strategy or cooldown unlike the stored one, a bad
            setting, or a store of a newer format (nothing is written).
        StoreError: a file that is not our store, or a corrupt one.

    Complexity:
        O(1) store reads: the sides are read at their first use.

    >>> import dualstack_ipam
    >>> dualstack_ipam.open("memory://")
    Traceback (most recent call last):
    ...
    dualstack_ipam.errors.InvalidConfigError: the store 'memory://' is empty: creating it \
needs a config
    """
    _check_arguments(config, actor, rng)  # before the file is created
    _settings(node_strategy, service_strategy, cooldown)
    return attach(
        open_backend(url),
        url,
        config,
        actor=actor,
        rng=rng,
        node_strategy=node_strategy,
        service_strategy=service_strategy,
        cooldown=cooldown,
    )


def _check_arguments(config: Any, actor: Any, rng: Any) -> None:
    if config is not None and not isinstance(config, ClusterConfig):
        raise InvalidConfigError(f"config must be a ClusterConfig, got {config!r}", value=config)
    if actor is not None and (not isinstance(actor, str) or not actor):
        raise InvalidConfigError(f"actor must be a non-empty str, got {actor!r}", value=actor)
    if rng is not None and not isinstance(rng, Random):
        raise InvalidConfigError(f"rng must be a random.Random, got {rng!r}", value=rng)


def attach(
    backend: Backend,
    url: str,
    config: ClusterConfig | None = None,
    *,
    actor: str | None = None,
    rng: Random | None = None,
    node_strategy: str | None = None,
    service_strategy: str | None = None,
    cooldown: float | None = None,
) -> Cluster:
    """:func:`open` on a backend already opened (``url`` only names it in messages).

    The backend is closed if this raises; else the cluster owns it.

    Raises:
        As :func:`open`.

    Complexity:
        O(1) store reads.

    >>> from dualstack_ipam import ClusterConfig
    >>> from dualstack_ipam.store import ETCD_DEFAULT_LIMITS, MemoryBackend
    >>> backend = MemoryBackend(limits=ETCD_DEFAULT_LIMITS)
    >>> attach(backend, "memory://", ClusterConfig("10.0.0.0/16")).nodes.allocate("a")
    (IPNetwork('10.0.0.0/24'),)
    """
    try:
        _check_arguments(config, actor, rng)
        given = _settings(node_strategy, service_strategy, cooldown)
        record = backend.get(CONFIG_KEY)
        if record is None:
            if config is None:
                raise InvalidConfigError(
                    f"the store {url!r} is empty: creating it needs a config", value=url
                )
            _create(backend, config, given)
            record = backend.get(CONFIG_KEY)
            assert record is not None
        stored = _read_settings(record.value, repr(url))
        wanted = {**given, "config": config} if config is not None else given
        for name, value in wanted.items():
            if value != stored[name]:
                raise InvalidConfigError(
                    f"the store {url!r} was created with {name}={stored[name]!r}, "
                    f"not {value!r}; leave it out to use the stored one",
                    value=value,
                )
        if config is not None:
            stored["config"] = config  # equal; the caller's own object reads as theirs
    except BaseException:
        backend.close()
        raise
    return Cluster(backend, stored, actor=actor or default_actor(), rng=rng, url=url)


class Cluster:
    """A durable cluster: ``.nodes`` and ``.services`` kept in a store.

    Made by :func:`open`. Thread-safe: one lock guards the caches and their
    view of the store. See ``docs/keeping-state.md`` for the guarantees.

    Attributes:
        url: the store URL it was opened with.
        actor: who its journal entries name.
    """

    def __init__(
        self,
        backend: Backend,
        settings: dict[str, Any],
        *,
        actor: str,
        rng: Random | None,
        url: str,
    ) -> None:
        self.url, self.actor = url, actor
        self._backend = backend
        self._settings = settings
        self._config: ClusterConfig = settings["config"]
        self._rng = rng
        self._sync = Sync(backend, actor)
        self._nodes: DurableNodes | None = None
        self._services: DurableServices | None = None
        self._closed = False

    def __repr__(self) -> str:
        return f"Cluster({self.url!r}, {self._config!r})"

    @property
    def config(self) -> ClusterConfig:
        """The configuration the store was created with (immutable).

        Complexity:
            O(1).

        >>> import dualstack_ipam
        >>> from dualstack_ipam import ClusterConfig
        >>> dualstack_ipam.open("memory://", ClusterConfig("10.244.0.0/16")).config
        ClusterConfig(cluster_cidrs=(IPNetwork('10.244.0.0/16'),), service_cidrs=(), \
node_mask_ipv4=24, node_mask_ipv6=64)
        """
        return self._config

    @property
    def settings(self) -> dict[str, Any]:
        """The stored creation settings: ``node_strategy``, ``service_strategy``, ``cooldown``.

        Complexity:
            O(1).

        >>> import dualstack_ipam
        >>> from dualstack_ipam import ClusterConfig
        >>> dualstack_ipam.open("memory://", ClusterConfig("10.244.0.0/16")).settings
        {'node_strategy': 'next-fit', 'service_strategy': 'random', 'cooldown': 0}
        """
        return {name: self._settings[name] for name in _DEFAULTS}

    @property
    def nodes(self) -> DurableNodes:
        """The node CIDR allocator (the whole ``NodeCIDRAllocator`` API), durable.

        Read from the store at its first use.

        Raises:
            StoreError: the store is closed or its node records are corrupt.

        Complexity:
            O(n) for n nodes at the first use, O(1) after.

        >>> import dualstack_ipam
        >>> from dualstack_ipam import ClusterConfig
        >>> dualstack_ipam.open("memory://", ClusterConfig("10.244.0.0/16")).nodes.free("IPv4")
        256
        """
        with self._sync.lock:
            if self._nodes is None:
                nodes = DurableNodes(
                    self._sync, self._config, strategy=self._settings["node_strategy"]
                )
                self._sync.load("nodes", Side(nodes, SideLayout.for_nodes(nodes)))
                self._nodes = nodes
            return self._nodes

    @property
    def services(self) -> DurableServices:
        """The Service IP allocator (the whole ``ServiceIPAllocator`` API), durable.

        Read from the store at its first use.

        Raises:
            FamilyNotConfiguredError: the cluster has no Service range.
            StoreError: the store is closed or its Service records are corrupt.

        Complexity:
            O(n) for n Service keys at the first use, O(1) after.

        >>> import dualstack_ipam
        >>> from dualstack_ipam import ClusterConfig
        >>> dualstack_ipam.open("memory://", ClusterConfig("10.244.0.0/16")).services
        Traceback (most recent call last):
        ...
        dualstack_ipam.errors.FamilyNotConfiguredError: the cluster has no Service range \
(--service-cluster-ip-range): no cluster IPs to allocate
        """
        with self._sync.lock:
            if self._services is None:
                if not self._config.service_families:
                    raise FamilyNotConfiguredError(
                        "the cluster has no Service range (--service-cluster-ip-range): "
                        "no cluster IPs to allocate"
                    )
                services = DurableServices(
                    self._sync,
                    self._config,
                    strategy=self._settings["service_strategy"],
                    rng=self._rng,
                )
                # Random picks can probe the store: a short command then reads
                # only its own key (see Sync.load); the other strategies scan
                # from a cursor, so they read the Services whole.
                self._sync.load(
                    "services",
                    Side(services, SideLayout.for_services(services)),
                    partial=self._settings["service_strategy"] == "random",
                )
                self._services = services
            return self._services

    def refresh(self) -> None:
        """Catch up with every change other writers committed (reads do it anyway).

        Raises:
            StoreError: the store is closed or unreachable.

        Complexity:
            O(c) for c changes since the last look.

        >>> import dualstack_ipam
        >>> from dualstack_ipam import ClusterConfig
        >>> dualstack_ipam.open("memory://", ClusterConfig("10.244.0.0/16")).refresh()
        """
        self._sync.catch_up()
        if not self._sync.sides:
            self._backend.revision()  # a closed store raises, as every call does

    @property
    def revision(self) -> int:
        """The store revision the caches reflect, after catching up (0 before any side is read).

        Complexity:
            O(c) to catch up (c changes by other writers since the last look).

        >>> import dualstack_ipam
        >>> from dualstack_ipam import ClusterConfig
        >>> cluster = dualstack_ipam.open("memory://", ClusterConfig("10.244.0.0/16"))
        >>> _ = cluster.nodes.allocate("a"); cluster.revision
        2
        """
        with self._sync.lock:
            self._sync.catch_up()
            return self._sync.seen

    # ------------------------------------------------------------ journal

    def journal(self, since: int = 0) -> Iterator[JournalEntry]:
        """The journal entries with ``revision > since``, oldest first.

        Raises:
            InvalidConfigError: ``since`` is not an int >= 0.
            StoreError: the store is closed, or a journal record is corrupt.

        Complexity:
            O(j log j) for the j entries kept (read whole, then sorted).

        >>> import dualstack_ipam
        >>> from dualstack_ipam import ClusterConfig
        >>> cluster = dualstack_ipam.open("memory://", ClusterConfig("10.244.0.0/16"))
        >>> _ = cluster.nodes.allocate("a"); _ = cluster.nodes.release("a")
        >>> [(e.op, e.key, e.addresses) for e in cluster.journal()]
        [('allocate', 'a', ('10.244.0.0/24',)), ('release', 'a', ())]
        """
        if isinstance(since, bool) or not isinstance(since, int) or since < 0:
            raise InvalidConfigError(f"since must be an int >= 0, got {since!r}", value=since)
        records = self._backend.get_prefix(JOURNAL_PREFIX)
        entries = [decode_entry(r.value, r.revision) for r in records if r.revision > since]
        entries.sort(key=lambda entry: entry.revision)
        return iter(entries)

    def compact_journal(self, keep_after_revision: int) -> int:
        """Drop the journal entries (and the change feed) up to ``keep_after_revision``.

        Replay then starts from an :meth:`export` taken at that revision.
        Entries go in batches within the store's transaction limit; other
        processes whose caches lag behind the compacted feed re-read their
        sides whole at their next call.

        Returns:
            How many entries were dropped.

        Raises:
            InvalidConfigError: not an int >= 0.
            StoreError: the store is closed.

        Complexity:
            O(j) for the j entries kept and dropped.

        >>> import dualstack_ipam
        >>> from dualstack_ipam import ClusterConfig
        >>> cluster = dualstack_ipam.open("memory://", ClusterConfig("10.244.0.0/16"))
        >>> _ = cluster.nodes.allocate("a"); _ = cluster.nodes.allocate("b")
        >>> cluster.compact_journal(2), [e.key for e in cluster.journal()]
        (1, ['b'])
        """
        since = keep_after_revision
        if isinstance(since, bool) or not isinstance(since, int) or since < 0:
            raise InvalidConfigError(
                f"keep_after_revision must be an int >= 0, got {since!r}", value=since
            )
        batch = self._backend.limits.max_ops or 1000
        with self._sync.lock:
            old = [r.key for r in self._backend.get_prefix(JOURNAL_PREFIX) if r.revision <= since]
            for first in range(0, len(old), batch):
                self._backend.txn([], [Delete(key) for key in old[first : first + batch]])
            self._backend.compact(min(since, self._backend.revision()))
        return len(old)

    # ------------------------------------------------------------ documents

    def export(self) -> dict[str, Any]:
        """The whole state as one JSON-ready document (a backup; :meth:`import_` reads it).

        Keys: ``kind`` (``"dualstack-ipam-store"``), ``version``, ``revision``
        (the store revision it reflects), ``config``, ``node_strategy``,
        ``service_strategy``, ``cooldown``, ``nodes`` and ``services``
        (key -> list of address text, sorted by key; ``services`` is None
        without a Service range).

        Raises:
            StoreError: the store is closed or corrupt.

        Complexity:
            O(n) for n keys (both sides are read if they were not yet).

        >>> import dualstack_ipam
        >>> from dualstack_ipam import ClusterConfig
        >>> cluster = dualstack_ipam.open("memory://", ClusterConfig("10.244.0.0/16"))
        >>> _ = cluster.nodes.allocate("a"); cluster.export()["nodes"]
        {'a': ['10.244.0.0/24']}
        """
        with self._sync.lock:
            nodes = self.nodes
            services = self.services if self._config.service_families else None
            self._sync.catch_up()
            return documents.document(self._settings, nodes, services, self._sync.seen)

    def import_(self, doc: Any) -> int:
        """Write a document from :meth:`export` into this (empty) store.

        The document is checked whole before anything is written, then
        written in batches within the store's transaction limit, one journal
        entry (``op`` ``import``) per key. The strategies stay the store's.

        Returns:
            How many keys were written.

        Raises:
            SnapshotError: a document that is not one, or whose keys
                conflict or fall outside the ranges (nothing written).
            InvalidConfigError: a config unlike the store's, or a newer
                document version (nothing written).
            StoreError: the store already holds keys (nothing written), or
                another writer wrote during the import (the batches before
                stay; the message says how many keys).

        Complexity:
            O(n) for n keys, in O(n / batch) transactions.

        >>> import dualstack_ipam
        >>> from dualstack_ipam import ClusterConfig
        >>> old = dualstack_ipam.open("memory://", ClusterConfig("10.244.0.0/16"))
        >>> _ = old.nodes.allocate("a")
        >>> new = dualstack_ipam.open("memory://", ClusterConfig("10.244.0.0/16"))
        >>> new.import_(old.export()), new.nodes.get("a")
        (1, (IPNetwork('10.244.0.0/24'),))
        """
        with self._sync.lock:
            sides = {"nodes": self.nodes}
            if self._config.service_families:
                sides["services"] = self.services  # type: ignore[assignment]
            return documents.import_document(self._sync, self._config, sides, doc)

    # ------------------------------------------------------------ lifetime

    def close(self) -> None:
        """Close the store; later calls raise ``StoreError``. Closing twice is fine.

        Complexity:
            O(1).

        >>> import dualstack_ipam
        >>> from dualstack_ipam import ClusterConfig
        >>> cluster = dualstack_ipam.open("memory://", ClusterConfig("10.244.0.0/16"))
        >>> cluster.close(); cluster.close()
        """
        with self._sync.lock:
            if not self._closed:
                self._closed = True
                self._backend.close()

    def __enter__(self) -> Cluster:
        """The cluster itself; leaving the ``with`` block closes it.

        Complexity:
            O(1).
        """
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        """Close the store (see :meth:`close`).

        Complexity:
            O(1).
        """
        self.close()

    def _check_invariants(self) -> None:
        """Assert the store's records agree with each other and with the caches.

        Complexity:
            O(n) store records.
        """
        with self._sync.lock:
            _ = self.nodes
            if self._config.service_families:
                _ = self.services
            documents.check_store(self._sync)
