"""Each backend against a plain dict model: records, revisions, the change feed.

Random transactions mix true and false compares, puts and deletes (of
present and absent keys); compaction and, for SQLite, close-and-reopen are
rules too. After every step the store must equal the model: every record,
the revision, and the change feed from the compaction point on.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from dualstack_ipam.store import (
    Backend,
    Change,
    CompactedError,
    Compare,
    Delete,
    MemoryBackend,
    Put,
    Record,
    SQLiteBackend,
    TxnResult,
)

KEYS = ["a", "a/b", "a/c", "b", "\u00e9", "\U0001f600", "a\x00"]
PREFIXES = ["", "a", "a/", "b", "\u00e9", "z"]

keys = st.sampled_from(KEYS)
values = st.binary(max_size=8)


class BackendMachine(RuleBasedStateMachine):
    """One backend against ``dict[key, Record]`` plus the model's history."""

    def __init__(self) -> None:
        super().__init__()
        self.records: dict[str, Record] = {}
        self.history: list[Change] = []
        self.revision = 0
        self.compacted = 0
        self.backend = self.open()

    def open(self) -> Backend:
        return MemoryBackend()

    def teardown(self) -> None:
        self.backend.close()

    def apply(self, compares: list[Compare], writes: list[Put | Delete]) -> None:
        result = self.backend.txn(compares, writes)
        holds = all(
            (self.records[c.key].revision if c.key in self.records else 0) == c.revision
            for c in compares
        )
        assert result.succeeded == holds
        if not holds:
            assert result.revision == self.revision
            assert result.current == {c.key: self.records.get(c.key) for c in compares}
            return
        revision = self.revision + 1
        changed: list[Change] = []
        for write in writes:
            if isinstance(write, Put):
                self.records[write.key] = Record(write.key, write.value, revision)
                changed.append(Change(write.key, revision, write.value))
            elif self.records.pop(write.key, None) is not None:
                changed.append(Change(write.key, revision, None))
        if changed:
            self.revision = revision
            self.history.extend(sorted(changed, key=lambda c: c.key))
        assert result == TxnResult(True, self.revision, {})

    def compare_for(self, key: str, true: bool) -> Compare:
        current = self.records[key].revision if key in self.records else 0
        return Compare(key, current if true else current + 1 + (key in self.records))

    @rule(key=keys, value=values, guarded=st.booleans(), true=st.booleans())
    def put(self, key: str, value: bytes, guarded: bool, true: bool) -> None:
        compares = [self.compare_for(key, true)] if guarded else []
        self.apply(compares, [Put(key, value)])

    @rule(key=keys, true=st.booleans())
    def delete(self, key: str, true: bool) -> None:
        self.apply([self.compare_for(key, true)], [Delete(key)])

    @rule(
        compared=st.lists(st.tuples(keys, st.booleans()), max_size=3, unique_by=lambda t: t[0]),
        written=st.lists(st.tuples(keys, st.none() | values), max_size=4, unique_by=lambda t: t[0]),
    )
    def txn(
        self, compared: list[tuple[str, bool]], written: list[tuple[str, bytes | None]]
    ) -> None:
        compares = [self.compare_for(key, true) for key, true in compared]
        writes: list[Put | Delete] = [
            Delete(key) if value is None else Put(key, value) for key, value in written
        ]
        self.apply(compares, writes)

    @rule(data=st.data())
    def compact(self, data: st.DataObject) -> None:
        revision = data.draw(st.integers(0, self.revision))
        self.backend.compact(revision)
        if revision > self.compacted:
            self.compacted = revision
            self.history = [c for c in self.history if c.revision > revision]

    @rule(after=st.integers(0, 40))
    def read_changes(self, after: int) -> None:
        if after < self.compacted:
            with pytest.raises(CompactedError) as caught:
                self.backend.changes(after)
            assert caught.value.compacted == self.compacted
            return
        changes, revision = self.backend.changes(after)
        assert revision == self.revision
        assert changes == [c for c in self.history if c.revision > after]

    @rule(
        prefix=st.sampled_from(PREFIXES),
        start=st.sampled_from(["", *KEYS]),
        limit=st.none() | st.integers(1, 4),
    )
    def read_prefix(self, prefix: str, start: str, limit: int | None) -> None:
        expected = sorted(
            (r for k, r in self.records.items() if k.startswith(prefix) and k >= start),
            key=lambda r: r.key,
        )
        assert self.backend.get_prefix(prefix, start=start, limit=limit) == expected[:limit]

    @invariant()
    def store_equals_model(self) -> None:
        assert self.backend.revision() == self.revision
        for key in KEYS:
            assert self.backend.get(key) == self.records.get(key)
        assert self.backend.changes(self.compacted) == (self.history, self.revision)


class SQLiteMachine(BackendMachine):
    """The same on a real SQLite file, with close-and-reopen, and a second
    handle on the file (another connection, as another process has) that
    the steps switch to: each must see what the other wrote."""

    def open(self) -> Backend:
        if not hasattr(self, "folder"):
            self.folder = Path(tempfile.mkdtemp(prefix="store-machine-"))
        return SQLiteBackend(self.folder / "store.db")

    @rule()
    def reopen(self) -> None:
        self.backend.close()
        self.backend = self.open()

    @rule()
    def switch_handle(self) -> None:
        if not hasattr(self, "other"):
            self.other = self.open()
        self.backend, self.other = self.other, self.backend

    def teardown(self) -> None:
        super().teardown()
        if hasattr(self, "other"):
            self.other.close()
        shutil.rmtree(self.folder, ignore_errors=True)


MemoryTest = BackendMachine.TestCase
MemoryTest.settings = settings(max_examples=60, stateful_step_count=30, deadline=None)

# Durable backends: a smaller profile, each step is a synced commit.
SQLiteTest = SQLiteMachine.TestCase
SQLiteTest.settings = settings(max_examples=50, stateful_step_count=25, deadline=None)
