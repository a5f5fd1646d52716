"""The store's vocabulary: records, compares, writes, results and changes.

A store holds *records*: a text key, a byte value, and the store revision at
which the key was last written. Every backend speaks this shape, which is
the one etcd offers, so a caller written against it runs unchanged on memory,
SQLite and etcd. The store knows records and bytes, not allocators.

>>> txn_ok = TxnResult(succeeded=True, revision=7, current={})
>>> Record("pools/a/slot/5", b"node-1", 7).revision == txn_ok.revision
True
>>> Compare("pools/a/slot/6", 0)  # create-if-absent: the key must not exist
Compare(key='pools/a/slot/6', revision=0)
"""

from __future__ import annotations

from typing import Any

import attrs

from dualstack_ipam.errors import StoreError

__all__ = [
    "Change",
    "CompactedError",
    "Compare",
    "Delete",
    "Put",
    "Record",
    "TxnResult",
    "Write",
    "check_key",
    "check_revision",
    "prefix_end",
]


def check_key(key: Any) -> None:
    """Refuse a key that is not non-empty, valid Unicode text.

    Raises:
        StoreError: ``key`` is not a non-empty str, or has a lone surrogate.

    Complexity:
        O(len(key)).

    >>> check_key("")
    Traceback (most recent call last):
    ...
    dualstack_ipam.errors.StoreError: a store key must be a non-empty str, got ''
    """
    if type(key) is not str or not key:
        raise StoreError(f"a store key must be a non-empty str, got {key!r}")
    try:
        key.encode("utf-8")
    except UnicodeEncodeError:
        # Keys are compared as UTF-8 bytes (etcd's order); a lone surrogate
        # has no such bytes.
        raise StoreError(f"a store key must be valid Unicode text, got {key!r}") from None


def _check_key(instance: Any, attribute: Any, key: Any) -> None:
    check_key(key)


def _check_value(instance: Any, attribute: Any, value: Any) -> None:
    if type(value) is not bytes:
        raise StoreError(f"a store value must be bytes, got {type(value).__name__} {value!r:.60}")


def check_revision(revision: Any) -> None:
    """Refuse a revision that is not an int >= 0 (``bool`` included).

    Raises:
        StoreError: ``revision`` is not an int >= 0.

    Complexity:
        O(1).

    >>> check_revision(-1)
    Traceback (most recent call last):
    ...
    dualstack_ipam.errors.StoreError: a store revision must be an int >= 0, got -1
    """
    if type(revision) is not int or revision < 0:
        raise StoreError(f"a store revision must be an int >= 0, got {revision!r}")


def _check_revision(instance: Any, attribute: Any, revision: Any) -> None:
    check_revision(revision)


@attrs.frozen(slots=True)
class Record:
    """One key's current value and the store revision that last wrote it.

    Attributes:
        key: the record's key (UTF-8 text; keys sort as UTF-8 bytes).
        value: the bytes stored.
        revision: the store revision of the transaction that last wrote it
            (>= 1 on memory and SQLite; etcd's ``mod_revision``).
    """

    key: str = attrs.field(validator=_check_key)
    value: bytes = attrs.field(validator=_check_value, repr=lambda v: repr(v[:40]))
    revision: int = attrs.field(validator=_check_revision)


@attrs.frozen(slots=True)
class Compare:
    """A transaction condition: ``key`` was last written at ``revision``.

    ``revision=0`` means the key must be absent (etcd compares
    ``mod_revision == 0`` the same way), which makes create-if-absent one
    compare and needs no read.
    """

    key: str = attrs.field(validator=_check_key)
    revision: int = attrs.field(validator=_check_revision)


@attrs.frozen(slots=True)
class Put:
    """A transaction write: set ``key`` to ``value`` (create or replace)."""

    key: str = attrs.field(validator=_check_key)
    value: bytes = attrs.field(validator=_check_value, repr=lambda v: repr(v[:40]))


@attrs.frozen(slots=True)
class Delete:
    """A transaction write: remove ``key`` (a no-op when it is absent)."""

    key: str = attrs.field(validator=_check_key)


Write = Put | Delete
"""One write of a transaction."""


@attrs.frozen(slots=True)
class TxnResult:
    """What a transaction did.

    Attributes:
        succeeded: every compare held and the writes were applied.
        revision: the store revision after the transaction: the new revision
            when it changed something, else the revision it was checked at.
        current: on failure, the current record (``None`` = absent) of every
            compared key, read in the same atomic step as the compares, so a
            caller refreshes its cache from it and retries without another
            read (etcd's failure branch). Empty on success.
    """

    succeeded: bool
    revision: int
    current: dict[str, Record | None] = attrs.field(factory=dict)


@attrs.frozen(slots=True)
class Change:
    """One entry of the change feed: a put (``value`` set) or a delete.

    Attributes:
        key: the key written.
        revision: the store revision of the transaction that wrote it.
        value: the new bytes, or ``None`` when the key was deleted.
    """

    key: str
    revision: int
    value: bytes | None

    @property
    def deleted(self) -> bool:
        """Whether this change removed the key.

        Complexity:
            O(1).

        >>> Change("a", 3, None).deleted
        True
        """
        return self.value is None


class CompactedError(StoreError):
    """The change feed no longer holds the revisions asked for.

    Raised by ``changes(after)`` when ``after`` is older than the oldest
    revision the store keeps; a cache then re-reads the whole state
    (``get_prefix``) and follows the feed from the revision of that read.

    Attributes:
        after: the revision asked for.
        compacted: the store's compaction revision (changes after it are kept).
    """

    def __init__(self, message: str, *, after: int, compacted: int, path: Any = None) -> None:
        super().__init__(message, path=path)
        self.after = after
        self.compacted = compacted


def prefix_end(prefix: bytes) -> bytes | None:
    """The smallest key above every key that starts with ``prefix``.

    The same rule as etcd's ``clientv3.GetPrefixRangeEnd``: drop trailing
    0xff bytes, then add one to the last byte. ``None`` means no upper
    bound (an empty prefix, or one made only of 0xff bytes).

    Args:
        prefix: the key prefix as UTF-8 bytes.

    Returns:
        The exclusive upper bound of the prefix's key range, or None.

    Complexity:
        O(len(prefix)).

    >>> prefix_end(b"pools/a/")
    b'pools/a0'
    >>> prefix_end(b"") is None
    True
    """
    end = bytearray(prefix)
    while end and end[-1] == 0xFF:
        end.pop()
    if not end:
        return None
    end[-1] += 1
    return bytes(end)
