"""The store layer: durable records, compare-and-swap transactions, a change feed.

It sits below the allocators and above nothing of ours but ``errors``: it
knows records and bytes, not pools. Backends share one interface,
:class:`Backend`, in the shape etcd offers, so that code written against it
runs unchanged on every backend:

- :class:`MemoryBackend`: in-process, thread-safe (``memory://``);
- :class:`SQLiteBackend`: one file shared by the processes of one machine
  (``sqlite:///path.db``); :func:`migrate` brings an older file forward;
- :class:`EtcdBackend`: an etcd cluster shared by several machines
  (``etcd://host:port,.../prefix``; :class:`EtcdTLS` for ``etcds://``).
  Its client, etcd3gw (the ``etcd`` extra), is imported at the first request.

>>> store = MemoryBackend()
>>> store.txn([Compare("nodes/a", 0)], [Put("nodes/a", b"10.0.0.0/24")]).succeeded
True
>>> store.changes(0)
([Change(key='nodes/a', revision=1, value=b'10.0.0.0/24')], 1)
"""

from dualstack_ipam.store.backend import (
    ETCD_DEFAULT_LIMITS,
    Backend,
    TxnLimits,
    check_range,
    check_txn,
)
from dualstack_ipam.store.etcd import EtcdBackend, EtcdTLS
from dualstack_ipam.store.memory import MemoryBackend
from dualstack_ipam.store.records import (
    Change,
    CompactedError,
    Compare,
    Delete,
    Put,
    Record,
    TxnResult,
    Write,
    check_key,
    check_revision,
    prefix_end,
)
from dualstack_ipam.store.sqlite import SQLiteBackend
from dualstack_ipam.store.sqlite_file import FORMAT_VERSION, migrate

__all__ = [
    "ETCD_DEFAULT_LIMITS",
    "FORMAT_VERSION",
    "Backend",
    "Change",
    "CompactedError",
    "Compare",
    "Delete",
    "EtcdBackend",
    "EtcdTLS",
    "MemoryBackend",
    "Put",
    "Record",
    "SQLiteBackend",
    "TxnLimits",
    "TxnResult",
    "Write",
    "check_key",
    "check_range",
    "check_revision",
    "check_txn",
    "migrate",
    "prefix_end",
]
