"""The durable :class:`Cluster` that ``dualstack_ipam.open`` returns.

A cluster's store holds one ``config`` record, written once at creation: the
:class:`~dualstack_ipam.ClusterConfig`, the strategies and the cooldown, with
the record format (:mod:`dualstack_ipam.durable.opening` writes and checks
it; ``open`` and ``attach`` are importable from here too). Each side
(``.nodes``, ``.services``) is read from the store at its first use only,
so a command that touches nodes never reads the Services.

>>> import dualstack_ipam
>>> from dualstack_ipam import ClusterConfig
>>> config = ClusterConfig("10.244.0.0/16,fc00::/24", "10.96.0.0/12,fd00:10:96::/112")
>>> with dualstack_ipam.open("memory://", config, service_strategy="sequential") as cluster:
...     cluster.services.allocate_service({"metadata": {"name": "web"}})["spec"]["clusterIPs"]
['10.96.1.1']
"""

from __future__ import annotations

import datetime
from collections.abc import Iterator
from random import Random
from types import TracebackType
from typing import Any

from dualstack_ipam.cluster.config import ClusterConfig
from dualstack_ipam.durable import documents
from dualstack_ipam.durable.growth import journal_forecast, read_window
from dualstack_ipam.durable.journal import JournalEntry, decode_entry
from dualstack_ipam.durable.layout import JOURNAL_PREFIX, SideLayout
from dualstack_ipam.durable.opening import DEFAULT_SETTINGS, FORMAT, attach, open
from dualstack_ipam.durable.sides import DurableNodes, DurableServices
from dualstack_ipam.durable.sync import Side, Sync
from dualstack_ipam.errors import (
    FamilyNotConfiguredError,
    InvalidConfigError,
)
from dualstack_ipam.forecast import Forecast
from dualstack_ipam.store import Backend, Delete

__all__ = ["FORMAT", "Cluster", "attach", "open"]


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
        self._sync = Sync(backend, actor, cooldown=settings["cooldown"], clock=settings["clock"])
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
        return {name: self._settings[name] for name in DEFAULT_SETTINGS}

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

    def forecast(
        self, *, window: datetime.timedelta = datetime.timedelta(days=7), now: Any = None
    ) -> Forecast:
        """When each range runs out at the net growth per day the journal shows over ``window``.

        The model, and how growth is measured (young or compacted journals,
        under an hour of history, shrinking ranges): ``docs/maps.md``.

        Args:
            window: how far back from ``now`` to measure (a positive ``timedelta``).
            now: the window's end and the day to count from (an aware
                ``datetime``); None is the current time in UTC.

        Returns:
            The same :class:`~dualstack_ipam.Forecast` as ``ClusterConfig.forecast``.

        Raises:
            InvalidConfigError: ``window`` or ``now`` is not as above.
            StoreError: the store is closed, or a journal record is corrupt.

        Complexity:
            O(j log j) for the j journal entries kept (read sorted, replayed in O(j)).

        >>> import dualstack_ipam
        >>> from dualstack_ipam import ClusterConfig
        >>> cluster = dualstack_ipam.open("memory://", ClusterConfig("10.244.0.0/16"))
        >>> cluster.forecast().get("IPv4", "node_cidrs").when
        'never'
        """
        start, end = read_window(window, now)
        used: list[Any] = [self.nodes]
        if self._config.service_families:
            used.append(self.services)
        return journal_forecast(self._config, self.journal(), used, start=start, now=end)

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
