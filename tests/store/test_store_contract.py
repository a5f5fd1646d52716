"""The backend contract, example by example, on every backend.

Each test runs on the memory backend, on a real SQLite file and on a real
etcd server (skipped where no etcd binary exists), so they cannot drift
apart. etcd's revision counter is shared by every prefix of the server, so
the tests count revisions from the one they start at (0 on the others).
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest

from dualstack_ipam import StoreError
from dualstack_ipam.store import (
    Backend,
    Change,
    CompactedError,
    Compare,
    Delete,
    MemoryBackend,
    Put,
    Record,
    TxnLimits,
    TxnResult,
    prefix_end,
)


def start_revision(backend: Backend) -> int:
    """The revision a test starts from: 0, except on etcd (shared by every prefix)."""
    revision = backend.revision()
    if type(backend).__name__ != "EtcdBackend":
        assert revision == 0
    return revision


def test_backends_satisfy_the_protocol(backend: Backend) -> None:
    assert isinstance(backend, Backend)


def test_a_new_store_is_empty_at_revision_zero(backend: Backend) -> None:
    b = start_revision(backend)
    assert backend.get("a") is None
    assert backend.get_prefix("") == []
    assert backend.changes(0) == ([], b)


def test_create_if_absent_then_conflict_returns_the_current_record(backend: Backend) -> None:
    b = start_revision(backend)
    first = backend.txn([Compare("k", 0)], [Put("k", b"one")])
    assert first == TxnResult(succeeded=True, revision=b + 1, current={})
    second = backend.txn([Compare("k", 0)], [Put("k", b"two")])
    assert second == TxnResult(False, b + 1, {"k": Record("k", b"one", b + 1)})
    assert backend.get("k") == Record("k", b"one", b + 1)


def test_every_key_of_a_txn_gets_the_one_new_revision(backend: Backend) -> None:
    b = start_revision(backend)
    backend.txn([], [Put("a", b"1")])
    result = backend.txn([Compare("a", b + 1), Compare("b", 0)], [Put("b", b"2"), Put("c", b"3")])
    assert result.succeeded
    assert result.revision == b + 2
    assert [(r.key, r.revision) for r in backend.get_prefix("")] == [
        ("a", b + 1),
        ("b", b + 2),
        ("c", b + 2),
    ]


def test_a_failed_compare_writes_nothing(backend: Backend) -> None:
    b = start_revision(backend)
    backend.txn([], [Put("a", b"1")])
    result = backend.txn([Compare("a", b + 1), Compare("b", 5)], [Put("c", b"x"), Delete("a")])
    assert not result.succeeded
    assert result.current == {"a": Record("a", b"1", b + 1), "b": None}
    assert backend.revision() == b + 1
    assert backend.get("c") is None
    assert backend.get("a") == Record("a", b"1", b + 1)


def test_a_txn_that_changes_nothing_keeps_the_revision(backend: Backend) -> None:
    b = start_revision(backend)
    backend.txn([], [Put("a", b"1")])
    assert backend.txn([Compare("a", b + 1)], []) == TxnResult(True, b + 1, {})
    assert backend.txn([], [Delete("absent")]) == TxnResult(True, b + 1, {})
    assert backend.changes(b + 1) == ([], b + 1)


def test_delete_then_compare_absent(backend: Backend) -> None:
    b = start_revision(backend)
    backend.txn([], [Put("a", b"1")])
    assert backend.txn([Compare("a", b + 1)], [Delete("a")]).revision == b + 2
    assert backend.get("a") is None
    assert backend.txn([Compare("a", 0)], [Put("a", b"again")]).succeeded
    assert backend.get("a") == Record("a", b"again", b + 3)


def test_changes_are_revision_ordered_with_deletes(backend: Backend) -> None:
    b = start_revision(backend)
    backend.txn([], [Put("b", b"1"), Put("a", b"2")])
    backend.txn([], [Delete("b"), Put("c", b"3")])
    changes, revision = backend.changes(0)
    assert revision == b + 2
    assert changes == [
        Change("a", b + 1, b"2"),
        Change("b", b + 1, b"1"),
        Change("b", b + 2, None),
        Change("c", b + 2, b"3"),
    ]
    assert changes[2].deleted
    assert backend.changes(b + 1) == (changes[2:], b + 2)
    assert backend.changes(b + 2) == ([], b + 2)


def test_compaction_drops_old_changes_and_refuses_older_reads(backend: Backend) -> None:
    b = start_revision(backend)
    for value in (b"1", b"2", b"3"):
        backend.txn([], [Put("a", value)])
    backend.compact(b + 2)
    assert backend.changes(b + 2) == ([Change("a", b + 3, b"3")], b + 3)
    with pytest.raises(CompactedError) as caught:
        backend.changes(b + 1)
    assert (caught.value.after, caught.value.compacted) == (b + 1, b + 2)
    assert isinstance(caught.value, StoreError)
    backend.compact(b + 1)  # below the compaction: nothing to do
    assert backend.changes(b + 2)[0] == [Change("a", b + 3, b"3")]
    assert backend.get("a") == Record("a", b"3", b + 3)  # records survive compaction


@pytest.mark.parametrize("revision", [-1, 4, True, "2"])
def test_compaction_beyond_the_store_is_refused(backend: Backend, revision: object) -> None:
    b = start_revision(backend)
    backend.txn([], [Put("a", b"1")])
    if type(revision) is int and revision > 0:
        revision += b  # beyond the store's revision b + 1
    with pytest.raises(StoreError, match="compact"):
        backend.compact(revision)  # type: ignore[arg-type]
    assert backend.changes(b)[0] == [Change("a", b + 1, b"1")]


def test_get_prefix_is_sorted_as_utf8_bytes_and_bounded(backend: Backend) -> None:
    keys = ["p/b", "p/a", "p/\U0001f600", "p/\uffff", "p0", "p", "q", "p/\x00", "o\xff"]
    backend.txn([], [Put(key, key.encode()) for key in keys])
    assert [r.key for r in backend.get_prefix("p/")] == sorted(
        ["p/b", "p/a", "p/\U0001f600", "p/\uffff", "p/\x00"], key=str.encode
    )
    assert [r.key for r in backend.get_prefix("")] == sorted(keys, key=str.encode)
    assert [r.key for r in backend.get_prefix("o\xff")] == ["o\xff"]
    assert backend.get_prefix("z") == []


def test_reopening_a_durable_store_keeps_everything(
    make_backend: Callable[[], Backend],
) -> None:
    first = make_backend()
    b = start_revision(first)
    first.txn([], [Put("a", b"1"), Put("b", b"2")])
    first.txn([], [Delete("a")])
    first.compact(b + 1)
    second = make_backend()
    assert second.revision() == b + 2
    assert second.get_prefix("") == [Record("b", b"2", b + 1)]
    assert second.changes(b + 1) == ([Change("a", b + 2, None)], b + 2)
    with pytest.raises(CompactedError):
        second.changes(b)


def test_two_handles_on_one_store_see_each_other(make_backend: Callable[[], Backend]) -> None:
    one, two = make_backend(), make_backend()
    b = start_revision(one)
    assert one.txn([Compare("k", 0)], [Put("k", b"one")]).succeeded
    assert not two.txn([Compare("k", 0)], [Put("k", b"two")]).succeeded
    assert two.changes(b) == ([Change("k", b + 1, b"one")], b + 1)


def test_a_closed_backend_refuses_every_call(backend: Backend) -> None:
    backend.close()
    backend.close()  # idempotent
    calls: list[Callable[[], object]] = [
        lambda: backend.get("a"),
        lambda: backend.get_prefix(""),
        lambda: backend.txn([], [Put("a", b"")]),
        lambda: backend.changes(0),
        lambda: backend.compact(0),
        backend.revision,
    ]
    for call in calls:
        with pytest.raises(StoreError, match="closed"):
            call()


@pytest.mark.parametrize(
    ("compares", "writes", "message"),
    [
        ([], [Put("a", b""), Put("a", b"x")], "written twice"),
        ([], [Put("a", b""), Delete("a")], "written twice"),
        (["a"], [], "must be a Compare"),
        ([], [("a", b"")], "must be a Put or Delete"),
        (None, [], "compares must be a list or tuple"),
        ([], Put("a", b""), "writes must be a list or tuple"),
        ([Compare(str(i), 0) for i in range(5)], [], "limit of 4 operations"),
        ([], [Put(str(i), b"") for i in range(5)], "limit of 4 operations"),
        ([], [Put("a", b"x" * 100)], "limit of 64 bytes"),
    ],
)
def test_malformed_or_oversized_txns_write_nothing(
    compares: list[Compare], writes: list[Put | Delete], message: str
) -> None:
    backend = MemoryBackend(limits=TxnLimits(max_ops=4, max_bytes=64))
    with pytest.raises(StoreError, match=message):
        backend.txn(compares, writes)
    assert backend.revision() == 0
    assert backend.get_prefix("") == []


def test_txn_limits_apply_to_sqlite_too(tmp_path: object) -> None:
    from pathlib import Path

    from dualstack_ipam.store import ETCD_DEFAULT_LIMITS, SQLiteBackend

    assert isinstance(tmp_path, Path)
    with SQLiteBackend(tmp_path / "s.db", limits=ETCD_DEFAULT_LIMITS) as store:
        with pytest.raises(StoreError, match="limit of 128 operations"):
            store.txn([], [Put(f"k{i}", b"") for i in range(129)])
        assert store.txn([], [Put(f"k{i}", b"") for i in range(128)]).revision == 1


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: Record("", b"", 1), "non-empty str"),
        (lambda: Record("a", "text", 1), "must be bytes"),  # type: ignore[arg-type]
        (lambda: Record("a", b"", -1), "revision must be an int"),
        (lambda: Compare("a", True), "revision must be an int"),
        (lambda: Compare(b"a", 0), "non-empty str"),  # type: ignore[arg-type]
        (lambda: Put("\ud800", b""), "valid Unicode"),
        (lambda: Put("a", bytearray(b"x")), "must be bytes"),  # type: ignore[arg-type]
        (lambda: Delete(None), "non-empty str"),  # type: ignore[arg-type]
    ],
)
def test_records_refuse_bad_fields(build: Callable[[], object], message: str) -> None:
    with pytest.raises(StoreError, match=message):
        build()


@pytest.mark.parametrize(
    ("prefix", "end"),
    [(b"a", b"b"), (b"a\xff", b"b"), (b"\xff\xff", None), (b"", None), (b"a/", b"a0")],
)
def test_prefix_end_follows_etcd(prefix: bytes, end: bytes | None) -> None:
    assert prefix_end(prefix) == end


def test_threads_sharing_one_backend_never_double_create(backend: Backend) -> None:
    won: list[list[str]] = [[] for _ in range(4)]

    def worker(index: int) -> None:
        for slot in range(200):
            key = f"slot/{slot:03d}"
            if backend.txn([Compare(key, 0)], [Put(key, str(index).encode())]).succeeded:
                won[index].append(key)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    winners = [key for keys in won for key in keys]
    assert sorted(winners) == [f"slot/{slot:03d}" for slot in range(200)]
    stored = {r.key: int(r.value) for r in backend.get_prefix("slot/")}
    assert stored == {key: i for i, keys in enumerate(won) for key in keys}


def test_get_prefix_pages_with_start_and_limit(backend: Backend) -> None:
    backend.txn([], [Put(f"slot/{i:04x}", b"") for i in range(10)] + [Put("slot0", b"")])
    first = backend.get_prefix("slot/", limit=4)
    assert [r.key for r in first] == ["slot/0000", "slot/0001", "slot/0002", "slot/0003"]
    pages: list[str] = []
    start = ""
    while page := backend.get_prefix("slot/", start=start, limit=3):
        pages += [r.key for r in page]
        start = page[-1].key + "\x00"  # the smallest key after the last one
    assert pages == [f"slot/{i:04x}" for i in range(10)]
    assert backend.get_prefix("slot/", start="t") == []  # start above the prefix
    assert len(backend.get_prefix("slot/", start="a")) == 10  # start below it
    assert [r.key for r in backend.get_prefix("slot/", start="")][:1] == ["slot/0000"]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"limit": 0}, "limit must be an int >= 1"),
        ({"limit": True}, "limit must be an int >= 1"),
        ({"limit": 2.0}, "limit must be an int >= 1"),
        ({"start": None}, "start must be a str"),
        ({"prefix": b"a"}, "prefix must be a str"),
    ],
)
def test_get_prefix_refuses_bad_arguments(
    backend: Backend, kwargs: dict[str, object], message: str
) -> None:
    arguments: dict[str, object] = {"prefix": "a", **kwargs}
    with pytest.raises(StoreError, match=message):
        backend.get_prefix(**arguments)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "call",
    [
        lambda b: b.get(""),
        lambda b: b.get(5),
        lambda b: b.get(["a"]),
        lambda b: b.changes(-1),
        lambda b: b.changes(True),
        lambda b: b.changes("0"),
    ],
    ids=["empty-key", "int-key", "list-key", "negative", "bool", "text"],
)
def test_reads_refuse_bad_arguments(backend: Backend, call: Callable[[Backend], object]) -> None:
    with pytest.raises(StoreError):
        call(backend)
