"""The versioned snapshot format shared by every pool and allocator.

A snapshot is a plain ``dict`` that ``json.dumps`` accepts as it is::

    {"kind": "SubnetPool", "version": 1, "used": 3, ...class fields...}

``kind`` names the class, ``version`` the format (:data:`FORMAT_VERSION`,
unless the class's own fields changed form since: each class writes its
latest version and reads the ones listed in ``docs/snapshots.md``),
``used`` how many slots are allocated. Every key a class writes is required
when it restores.

This module is the one home of the rule for integers in JSON, used by every
snapshot and by the bitmaps' serialised form: below 2**53 a JSON number,
from 2**53 up a decimal string, so that JSON tools which read numbers as
doubles lose nothing. A reader takes a number of any size (Python reads it
exactly) but a string only where the writer would have written one: ``"5"``
is refused.

>>> data = envelope("Example", 3, cursor=write_int(2**64))
>>> data
{'kind': 'Example', 'version': 1, 'used': 3, 'cursor': '18446744073709551616'}
>>> read_int(open_envelope(data, "Example", ["cursor"])["cursor"], "cursor")
18446744073709551616
"""

from __future__ import annotations

import time
from collections.abc import Collection, Iterable, Mapping
from typing import Any

from dualstack_ipam.errors import SnapshotError

__all__ = [
    "FORMAT_VERSION",
    "HANDOVER",
    "envelope",
    "hand_over",
    "open_envelope",
    "read_int",
    "write_int",
]

FORMAT_VERSION = 1
"""The first snapshot format version, still written by every class whose fields kept their form."""

_JSON_SAFE_INT = 1 << 53

HANDOVER = 1e-4
"""Seconds a long encoding sleeps between two stretches, so a waiting thread takes the interpreter.

``time.sleep(0)`` releases the interpreter lock and takes it straight
back, before a waiting thread has woken: the waiting thread then waits out
the 5 ms switch interval anyway. A sleep longer than that wake-up hands it
over (``docs/performance.md``, "No copy under the lock").
"""


def hand_over() -> None:
    """Let a thread waiting for the interpreter run (sleep :data:`HANDOVER`).

    Called between stretches of a long snapshot encoding: the Services'
    texts, each pool's bitmap packing.

    Complexity:
        O(1): ~0.1 ms of wall time, none of CPU.

    >>> hand_over()
    """
    time.sleep(HANDOVER)



def write_int(value: int) -> int | str:
    """``value`` as JSON can carry it exactly: an int below 2**53, else a string.

    Complexity:
        O(digits).

    >>> write_int(2**53 - 1), write_int(2**53)
    (9007199254740991, '9007199254740992')
    """
    return value if -_JSON_SAFE_INT < value < _JSON_SAFE_INT else str(value)


def read_int(value: Any, what: str, *, minimum: int = 0) -> int:
    """Read an int written by :func:`write_int`; :class:`SnapshotError` otherwise.

    A string must hold a number of at least 2**53, as :func:`write_int` writes
    it (the canonical form), and at most 60 digits.

    Raises:
        SnapshotError: not an int or such a string, or below ``minimum``.

    Complexity:
        O(digits), at most 60.

    >>> read_int("9007199254740992", "used"), read_int(5, "used")
    (9007199254740992, 5)
    >>> read_int("5", "used")
    Traceback (most recent call last):
    ...
    dualstack_ipam.errors.SnapshotError: snapshot field 'used' must be an integer, got '5'
    """
    if type(value) is int:
        number = value
    elif (
        isinstance(value, str)
        and value.isascii()
        and value.isdigit()
        and len(value) < 60
        and int(value) >= _JSON_SAFE_INT
    ):
        number = int(value)
    else:
        raise SnapshotError(f"snapshot field {what!r} must be an integer, got {value!r}")
    if number < minimum:
        raise SnapshotError(f"snapshot field {what!r} must be >= {minimum}, got {number!r}")
    return number


def envelope(
    kind: str, used: int, *, version: int = FORMAT_VERSION, **fields: Any
) -> dict[str, Any]:
    """Start a snapshot of ``kind`` with ``used`` allocated, then ``fields``.

    Args:
        kind: the class's name.
        used: how many items are allocated.
        version: the format version of ``kind`` being written (a class whose
            own fields changed form writes a later one than
            :data:`FORMAT_VERSION`).
        fields: the class's own fields, in order.

    Complexity:
        O(fields).

    >>> envelope("Example", 0)
    {'kind': 'Example', 'version': 1, 'used': 0}
    """
    return {"kind": kind, "version": version, "used": write_int(used), **fields}


def open_envelope(
    data: Any, kind: str, keys: Iterable[str], *, versions: Collection[int] = (FORMAT_VERSION,)
) -> Mapping[str, Any]:
    """Check ``data`` is a snapshot of ``kind`` in one of ``versions`` with ``keys``.

    Args:
        data: what to check.
        kind: the class's name.
        keys: the class's own fields, every one required.
        versions: the format versions of ``kind`` this release reads (the
            caller tells them apart by ``data["version"]``).

    Raises:
        SnapshotError: not a mapping, another kind or version, or a key missing.

    Complexity:
        O(keys).

    >>> open_envelope({"kind": "Example", "version": 1}, "Example", [])
    Traceback (most recent call last):
    ...
    dualstack_ipam.errors.SnapshotError: Example snapshot lacks ['used']
    >>> open_envelope({"kind": "Example", "version": 1}, "Example", [], versions=(2,))
    Traceback (most recent call last):
    ...
    dualstack_ipam.errors.SnapshotError: snapshot version 1 is not supported (this release reads 2)
    """
    if not isinstance(data, Mapping):
        raise SnapshotError(f"a snapshot must be a mapping, got {type(data).__name__}")
    if data.get("kind") != kind:
        raise SnapshotError(f"snapshot kind {data.get('kind')!r} is not {kind!r}")
    version = data.get("version")
    if type(version) is not int or version not in versions:
        readable = ", ".join(map(str, sorted(versions)))
        raise SnapshotError(
            f"snapshot version {version!r} is not supported (this release reads {readable})"
        )
    missing = sorted({"used", *keys} - data.keys())
    if missing:
        raise SnapshotError(f"{kind} snapshot lacks {missing}")
    return data
