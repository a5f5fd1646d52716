"""Durable clusters: the allocators kept in a store (SQLite, memory; etcd next).

- :mod:`~dualstack_ipam.durable.cluster`: :func:`open` and :class:`Cluster`;
- :mod:`~dualstack_ipam.durable.sync`: the cache protocol (catch up, run on
  the cache, one compare-and-swap transaction, undo and retry);
- :mod:`~dualstack_ipam.durable.sides`: ``Cluster.nodes`` / ``.services``;
- :mod:`~dualstack_ipam.durable.layout`: the records (format 1);
- :mod:`~dualstack_ipam.durable.reserved` / :mod:`~dualstack_ipam.durable.reserving`:
  reservation block records, followed and written;
- :mod:`~dualstack_ipam.durable.cooling`: release times (the cooldown);
- :mod:`~dualstack_ipam.durable.growing`: added ranges (``nodes.add_range``);
- :mod:`~dualstack_ipam.durable.leaks`: ``reconcile``'s leak counts;
- :mod:`~dualstack_ipam.durable.journal`: :class:`JournalEntry`;
- :mod:`~dualstack_ipam.durable.documents`: export, import, the old CLI
  state file, journal replay;
- :mod:`~dualstack_ipam.durable.urls`: store URLs.

The layer sits above the allocators and the store (``docs/architecture.md``).

>>> import dualstack_ipam
>>> with dualstack_ipam.open("memory://", dualstack_ipam.ClusterConfig("10.0.0.0/16")) as c:
...     c.nodes.allocate("n1")
(IPNetwork('10.0.0.0/24'),)
"""

from dualstack_ipam.durable.cluster import FORMAT, Cluster, open
from dualstack_ipam.durable.documents import (
    DOCUMENT_KIND,
    DOCUMENT_VERSION,
    document_from_state_file,
    replay,
)
from dualstack_ipam.durable.journal import JournalEntry
from dualstack_ipam.durable.urls import parse_url

__all__ = [
    "DOCUMENT_KIND",
    "DOCUMENT_VERSION",
    "FORMAT",
    "Cluster",
    "JournalEntry",
    "document_from_state_file",
    "open",
    "parse_url",
    "replay",
]
