"""A separate process writing to a SQLite store, for the multi-process tests.

Run as ``python store_worker.py MODE DB ACKS NAME [ARGS...]``. Every line is
appended to ACKS with one ``write()`` *after* the transaction returned (an
acknowledgement), or before it starts (``B``: in flight), so a parent that
SIGKILLs the worker knows what was acknowledged.

Modes:
    cas N KEYS SEED: N create-if-absent attempts on keys ``k/0..KEYS-1`` in a
        seeded random order; ``A key`` per key this worker created.
    groups SEED: forever, one transaction creates group n (keys ``g/NAME/n/a``,
        ``/b`` and, for odd n, ``/c``) and every 4th also deletes group n - 3;
        ``B n`` before, ``A n`` after (``D m`` for the group deleted).
"""

from __future__ import annotations

import os
import random
import sys

from dualstack_ipam.store import Compare, Delete, Put, SQLiteBackend


def group_keys(name: str, n: int) -> list[str]:
    """The keys of group ``n`` of worker ``name``."""
    parts = ("a", "b", "c") if n % 2 else ("a", "b")
    return [f"g/{name}/{n}/{part}" for part in parts]


def main(argv: list[str]) -> None:
    """Run one worker (see the module docstring)."""
    mode, db, acks, name, *rest = argv
    fd = os.open(acks, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    store = SQLiteBackend(db, busy_timeout_ms=30_000)

    def note(line: str) -> None:
        os.write(fd, f"{line}\n".encode())

    if mode == "cas":
        attempts, universe, seed = (int(x) for x in rest)
        rng = random.Random(seed)
        order = rng.sample(range(universe), universe)
        for slot in order[:attempts]:
            key = f"k/{slot}"
            if store.txn([Compare(key, 0)], [Put(key, name.encode())]).succeeded:
                note(f"A {key}")
    elif mode == "groups":
        n = 0
        while True:
            keys = group_keys(name, n)
            compares = [Compare(key, 0) for key in keys]
            writes: list[Put | Delete] = [Put(key, f"{name}:{n}".encode()) for key in keys]
            dropped = n - 3 if n % 4 == 3 else None
            if dropped is not None:
                writes += [Delete(key) for key in group_keys(name, dropped)]
            note(f"B {n}")
            assert store.txn(compares, writes).succeeded
            note(f"A {n}" if dropped is None else f"A {n}\nD {dropped}")
            n += 1
    store.close()
    os.close(fd)


if __name__ == "__main__":
    main(sys.argv[1:])
