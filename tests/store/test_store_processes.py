"""Real processes on one SQLite file: compare-and-swap races and a SIGKILL drill.

Workers are separate Python processes (``store_worker.py``) that report each
acknowledged transaction by appending a line to a file after ``txn``
returned. The checks: no key created twice, every acknowledged write stored,
no transaction half-applied, the file intact after any kill, and no files
beside the database but SQLite's own ``-wal`` and ``-shm``.
"""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import dualstack_ipam
from dualstack_ipam.store import SQLiteBackend

WORKER = str(Path(__file__).with_name("store_worker.py"))
PACKAGE_ROOT = str(Path(dualstack_ipam.__file__).resolve().parent.parent)


def start(mode: str, db: Path, acks: Path, name: str, *args: object) -> subprocess.Popen[bytes]:
    """Start a worker process (importing this checkout's package, installed or not)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [PACKAGE_ROOT, env.get("PYTHONPATH")]))
    return subprocess.Popen(
        [sys.executable, WORKER, mode, str(db), str(acks), name, *map(str, args)],
        stderr=subprocess.PIPE,
        env=env,
    )


def ack_lines(path: Path) -> list[tuple[str, str]]:
    """The complete lines of an acknowledgement file, as (tag, value)."""
    if not path.exists():
        return []
    text = path.read_text()
    complete = text[: text.rfind("\n") + 1]
    return [(line[0], line[2:]) for line in complete.splitlines()]


def test_four_processes_create_if_absent_without_duplicates(tmp_path: Path) -> None:
    db = tmp_path / "store.db"
    SQLiteBackend(db).close()  # created once, so no worker races on the schema
    workers = {
        f"w{i}": start("cas", db, tmp_path / f"w{i}.acks", f"w{i}", 500, 1000, i) for i in range(4)
    }
    for name, proc in workers.items():
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, (name, err.decode())
    acked: dict[str, list[str]] = {}
    for name in workers:
        for tag, key in ack_lines(tmp_path / f"{name}.acks"):
            assert tag == "A"
            acked.setdefault(key, []).append(name)
    duplicates = {key: names for key, names in acked.items() if len(names) > 1}
    assert duplicates == {}
    with SQLiteBackend(db) as store:
        stored = {r.key: r.value.decode() for r in store.get_prefix("k/")}
        revision = store.revision()
    assert stored == {key: names[0] for key, names in acked.items()}
    assert revision == len(stored)  # one revision per successful create, no more
    assert len(stored) > 500  # the workers raced over overlapping keys


def group_of(key: str) -> tuple[str, int, str]:
    _, name, n, part = key.split("/")
    return name, int(n), part


def check_store(db: Path, killed: str, acks: list[tuple[str, str]]) -> None:
    """The store after ``killed`` died: intact, whole groups, acked ⊆ stored ⊆ begun."""
    conn = sqlite3.connect(db)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    finally:
        conn.close()
    # Opening writes once (the settling write, docs/store.md), so the check
    # queues for the lock beside the workers, with their busy timeout.
    with SQLiteBackend(db, busy_timeout_ms=30_000) as store:
        records = store.get_prefix("g/")
    groups: dict[tuple[str, int], set[str]] = {}
    for record in records:
        name, n, part = group_of(record.key)
        assert record.value == f"{name}:{n}".encode()
        groups.setdefault((name, n), set()).add(part)
    for (_, n), parts in groups.items():
        assert parts == ({"a", "b", "c"} if n % 2 else {"a", "b"}), "a half-written group"
    begun = {int(v) for tag, v in acks if tag == "B"}
    acked = {int(v) for tag, v in acks if tag == "A"}
    dropped = {int(v) for tag, v in acks if tag == "D"}
    mine = {n for name, n in groups if name == killed}
    # The transaction in flight at the kill may have committed, deleting its
    # older group without saying so.
    maybe_dropped = {n - 3 for n in begun - acked if n % 4 == 3}
    assert acked - dropped - maybe_dropped <= mine, "an acknowledged write was lost"
    assert not mine & dropped, "an acknowledged delete was lost"
    assert mine <= begun, "a write nobody began"


def wait_for_line(path: Path, proc: subprocess.Popen[bytes]) -> None:
    """Wait until ``proc`` has written a line to ``path`` (or died)."""
    deadline = time.monotonic() + 120  # a bound on a hang, not a timing assertion
    while not ack_lines(path) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)


def test_sigkill_during_creation_leaves_no_store_or_a_whole_one(tmp_path: Path) -> None:
    rng = random.Random(9)
    for round_ in range(6):
        data = tmp_path / f"round{round_}"
        data.mkdir()
        db = data / "store.db"
        proc = start("groups", db, tmp_path / f"r{round_}.acks", f"r{round_}", round_)
        time.sleep(rng.uniform(0.0, 0.8))
        proc.kill()
        proc.communicate()
        assert {p.name for p in data.iterdir()} <= {"store.db", "store.db-wal", "store.db-shm"}
        if db.exists():
            check_store(db, f"r{round_}", ack_lines(tmp_path / f"r{round_}.acks"))


def test_sigkill_drill_leaves_a_consistent_store(tmp_path: Path) -> None:
    rng = random.Random(2026)
    data = tmp_path / "data"
    data.mkdir()
    db = data / "store.db"
    counter = 0

    def spawn() -> tuple[str, subprocess.Popen[bytes]]:
        nonlocal counter
        counter += 1
        name = f"w{counter}"
        return name, start("groups", db, tmp_path / f"{name}.acks", name, counter)

    live = [spawn(), spawn()]
    acknowledged = 0
    try:
        for kill in range(30):
            name, proc = live[kill % 2]
            # Kill once the worker is writing (its start-up takes a while on
            # a loaded machine); creation is drilled by the next test.
            wait_for_line(tmp_path / f"{name}.acks", proc)
            time.sleep(rng.uniform(0.0, 0.3))
            assert proc.poll() is None, proc.communicate()[1].decode()
            os.kill(proc.pid, signal.SIGKILL)
            proc.communicate()
            assert proc.returncode == -signal.SIGKILL
            acks = ack_lines(tmp_path / f"{name}.acks")
            acknowledged += sum(tag == "A" for tag, _ in acks)
            if db.exists():
                check_store(db, name, acks)
                stray = {p.name for p in data.iterdir()} - {
                    "store.db",
                    "store.db-wal",
                    "store.db-shm",
                }
                assert stray == set()
            live[kill % 2] = spawn()
    finally:
        for _, proc in live:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
            if proc.stderr is not None:
                proc.stderr.close()
    assert acknowledged > 30  # the kills landed among running transactions
