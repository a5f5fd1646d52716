"""The etcd backend on a real etcd: atomicity, the feed, fencing, failover, limits."""

from __future__ import annotations

import gc
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest
import requests

from dualstack_ipam import StoreError
from dualstack_ipam.store import Change, CompactedError, Compare, Delete, Put, Record
from dualstack_ipam.store.etcd import EtcdBackend
from dualstack_ipam.store.etcd_server import EtcdServer, free_port
from dualstack_ipam.store.etcd_transport import encode_key

Make = Callable[..., EtcdBackend]


def raw(etcd: EtcdServer, path: str, payload: dict[str, Any]) -> dict[str, Any]:
    answer: dict[str, Any] = requests.post(
        f"http://{etcd.endpoint}/v3/{path}", json=payload, timeout=5
    ).json()
    return answer


def test_a_multi_key_txn_is_all_or_nothing_under_contention(make: Make) -> None:
    backends = [make() for _ in range(3)]
    won: list[list[int]] = [[] for _ in backends]

    def worker(index: int) -> None:
        for pair in range(60):
            keys = (f"v4/{pair}", f"v6/{pair}")
            result = backends[index].txn(
                [Compare(k, 0) for k in keys], [Put(k, str(index).encode()) for k in keys]
            )
            if result.succeeded:
                won[index].append(pair)
            else:  # the failure branch names the holder of both keys
                holders = {rec.value for rec in result.current.values() if rec is not None}
                assert len(holders) == 1

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(len(backends))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(p for pairs in won for p in pairs) == list(range(60))
    stored = backends[0].get_prefix("")
    assert len(stored) == 120
    values = {rec.key: rec.value for rec in stored}
    for index, pairs in enumerate(won):
        for pair in pairs:  # both families went to the winner, in one revision
            assert values[f"v4/{pair}"] == values[f"v6/{pair}"] == str(index).encode()


def test_prefixes_are_separate_stores(make: Make) -> None:
    one, two = make("cluster-a"), make("cluster-b")
    assert one.txn([Compare("k", 0)], [Put("k", b"a")]).succeeded
    assert two.txn([Compare("k", 0)], [Put("k", b"b")]).succeeded
    assert one.get("k").value == b"a"  # type: ignore[union-attr]
    assert [r.value for r in two.get_prefix("")] == [b"b"]
    changes, _ = one.changes(0)
    assert [(c.key, c.value) for c in changes] == [("k", b"a")]


@pytest.mark.parametrize("watch_all", [True, False])
def test_the_feed_follows_other_clients_across_foreign_revisions(
    make: Make, watch_all: bool
) -> None:
    mine, other, foreign = make(watch_all=watch_all), make(), make("elsewhere")
    start = mine.revision()
    assert mine.changes(start) == ([], start)
    other.txn([], [Put("a", b"1"), Put("b", b"2")])
    foreign.txn([], [Put("x", b"not ours")])  # the latest revision is not ours
    changes, revision = mine.changes(start)
    assert [(c.key, c.revision - start, c.value) for c in changes] == [
        ("a", 1, b"1"),
        ("b", 1, b"2"),
    ]
    assert revision >= start + 2
    other.txn([Compare("a", start + 1)], [Delete("a")])
    later, revision2 = mine.changes(revision)
    assert [(c.key, c.value) for c in later] == [("a", None)]
    assert mine.changes(revision2) == ([], revision2)


def test_compaction_by_another_client_raises_compacted(make: Make) -> None:
    mine, other = make(), make()
    for value in (b"1", b"2", b"3"):
        other.txn([], [Put("a", value)])
    revision = other.revision()
    other.compact(revision)
    with pytest.raises(CompactedError) as caught:
        mine.changes(revision - 2)
    assert caught.value.compacted == revision
    assert mine.changes(revision) == ([], revision)
    assert mine.get("a") == Record("a", b"3", revision)


def test_a_txn_whose_fence_was_moved_by_someone_else_fails(make: Make, etcd: EtcdServer) -> None:
    mine = make(client_id="me")
    assert mine.txn([], [Put("a", b"1")]).succeeded
    # Another process claiming our identity moves our fence key.
    raw(etcd, "kv/put", {"key": encode_key(f"{mine.prefix}/fence/me"), "value": "eA=="})
    before = mine.revision()
    with pytest.raises(StoreError, match="fenced off"):
        mine.txn([Compare("b", 0)], [Put("b", b"2")])
    assert mine.get("b") is None
    assert mine.revision() == before


def test_an_expired_lease_gives_a_new_fence_and_the_txn_goes_through(
    make: Make, etcd: EtcdServer
) -> None:
    mine = make(client_id="me")
    assert mine.txn([], [Put("a", b"1")]).succeeded
    lease = raw(etcd, "kv/range", {"key": encode_key(f"{mine.prefix}/fence/me")})["kvs"][0]["lease"]
    raw(etcd, "kv/lease/revoke", {"ID": lease})  # as if the lease expired
    assert raw(etcd, "kv/range", {"key": encode_key(f"{mine.prefix}/fence/me")}).get("kvs") is None
    assert mine.txn([Compare("b", 0)], [Put("b", b"2")]).succeeded
    assert mine.get("b").value == b"2"  # type: ignore[union-attr]


def test_a_dead_endpoint_is_skipped(etcd: EtcdServer) -> None:
    dead = f"127.0.0.1:{free_port()}"
    with EtcdBackend(f"{dead},{etcd.endpoint}", "failover", timeout=1.0) as backend:
        assert backend.txn([Compare("k", 0)], [Put("k", b"v")]).succeeded
        assert backend.get("k").value == b"v"  # type: ignore[union-attr]
        changes, _ = backend.changes(0)
        assert [c.key for c in changes] == ["k"]


def test_oversized_txns_are_refused_before_sending(make: Make) -> None:
    backend = make()
    assert backend.limits.max_ops == 126
    with pytest.raises(StoreError, match="limit of 126 operations"):
        backend.txn([], [Put(f"k{i}", b"") for i in range(127)])
    assert backend.txn([], [Put(f"k{i}", b"") for i in range(126)]).succeeded
    with pytest.raises(StoreError, match="bytes"):
        backend.txn([], [Put("big", b"x" * (2 * 1024 * 1024))])
    assert backend.get("big") is None


def test_internal_keys_stay_out_of_the_store(make: Make) -> None:
    backend = make()
    backend.txn([], [Put("a", b"1")])
    backend.txn([], [Delete("a")])
    assert backend.get_prefix("") == []
    changes, _ = backend.changes(0)
    assert [c.key for c in changes] == ["a", "a"]
    assert changes[1] == Change("a", changes[1].revision, None)


def test_unreachable_etcd_raises_unavailable(tmp_path: object) -> None:
    from dualstack_ipam import StoreUnavailableError

    dead = f"127.0.0.1:{free_port()}"
    with EtcdBackend(dead, "x", timeout=0.2, attempts=2) as backend:
        with pytest.raises(StoreUnavailableError, match="did not"):
            backend.get("k")
        with pytest.raises(StoreUnavailableError, match="nothing was written"):
            backend.txn([Compare("k", 0)], [Put("k", b"v")])


def test_bad_endpoints_and_prefixes_are_refused() -> None:
    for endpoints in ("", "host", "host:0", "host:x", "a:1,"):
        with pytest.raises(StoreError, match="endpoint"):
            EtcdBackend(endpoints, "p")
    with pytest.raises(StoreError, match="prefix"):
        EtcdBackend("a:1", "p\x00")


def test_watched_follows_without_asking_etcd(make: Make) -> None:
    mine, other = make(), make()
    start = mine.revision()
    assert mine.watched(start) == ([], start)
    other.txn([], [Put("a", b"1")])
    deadline = 200
    while deadline and mine.watched(start)[1] < start + 1:
        threading.Event().wait(0.01)  # the watch delivers in the background
        deadline -= 1
    changes, seen = mine.watched(start)
    assert [(c.key, c.revision) for c in changes] == [("a", start + 1)]
    assert seen == start + 1
    assert mine.watched(seen) == ([], seen)


def test_a_first_txn_that_deletes_nothing_writes_no_fence(make: Make, etcd: EtcdServer) -> None:
    mine = make(client_id="me")
    before = mine.revision()
    assert mine.txn([], [Delete("absent")]).succeeded
    assert mine.revision() == before
    assert mine.txn([Compare("a", 0)], [Put("a", b"1")]).succeeded
    assert mine.retries == 0  # the fence was created by the put, not assumed before
    fence = raw(etcd, "kv/range", {"key": encode_key(f"{mine.prefix}/fence/me")})["kvs"]
    assert int(fence[0]["mod_revision"]) == before + 1


def test_the_watch_reads_no_proxy_settings_from_the_environment(
    make: Make, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The watch's requests session reads nothing from os.environ, as the
    # transport's do: requests would otherwise iterate os.environ on every
    # request (a watch thread died of "dictionary changed size during
    # iteration" while a test changed it) and send the watch through a
    # proxy the requests to etcd do not use. A proxy that refuses every
    # connection shows which: the watch must still deliver.
    for name in ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY"):
        monkeypatch.setenv(name, "http://127.0.0.1:9")
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    mine, other = make(), make()
    start = mine.revision()
    mine.watched(start)  # starts the watch thread
    for n in range(5):
        other.txn([], [Put(f"k{n}", b"v")])
    last = other.revision()
    changes, seen = mine.watched(start, reach=last)
    assert seen >= last
    assert [c.key for c in changes] == [f"k{n}" for n in range(5)]


def _wait_watched(backend: EtcdBackend, after: int, reach: int) -> tuple[list[Change], int]:
    changes, seen = backend.watched(after, reach=reach)
    for _ in range(200):
        if seen >= reach:
            break
        threading.Event().wait(0.01)  # the watch delivers in the background
        changes, seen = backend.watched(after, reach=reach)
    return changes, seen


@pytest.mark.parametrize("watch_all", [True, False])
def test_a_narrowed_watch_follows_its_prefixes_and_changes_stays_complete(
    make: Make, watch_all: bool
) -> None:
    mine, other = make(watch_all=watch_all), make()
    start = mine.revision()
    mine.watch_only(["owner/", "resv/"])
    mine.watched(start)  # the narrowed watch runs from here
    other.txn([], [Put("alloc/1", b"k"), Put("owner/k", b"1"), Put("journal/1", b"j")])
    other.txn([], [Put("range/x", b"r"), Put("zz", b"z")])
    other.txn([], [Put("journal/2", b"j")])
    last = other.revision()
    # Keys between the prefixes (range/) come too: etcd watches one range.
    changes, _ = _wait_watched(mine, start, start + 2)
    assert [(c.key, c.revision) for c in changes] == [
        ("owner/k", start + 1),
        ("range/x", start + 2),
    ]
    # The complete feed still holds every key, up to the current revision,
    # read by a watch of its own that stops there.
    changes, revision = mine.changes(start)
    assert revision == last
    assert [c.key for c in changes] == [
        "alloc/1",
        "journal/1",
        "owner/k",
        "range/x",
        "zz",
        "journal/2",
    ]
    for _ in range(200):  # its thread leaves once it has closed the watch
        if not [t for t in threading.enumerate() if t.name == "etcd-feed-until"]:
            break
        threading.Event().wait(0.01)
    else:
        raise AssertionError("the one-off watch is still running")
    mine.watch_only([])  # every key again
    changes, _ = _wait_watched(mine, start, last)
    assert [c.key for c in changes][-1] == "journal/2"


def test_watch_only_refuses_a_bad_prefix(make: Make) -> None:
    with pytest.raises(StoreError, match="''"):
        make().watch_only(["owner/", ""])


def test_watch_only_refuses_a_bare_text(make: Make) -> None:
    # Iterated, "owner/" would narrow the watch to the one-character prefixes.
    with pytest.raises(StoreError, match="'owner/'"):
        make().watch_only("owner/")


def test_a_write_that_fails_its_compares_reads_the_current_records_after(make: Make) -> None:
    # The failure branch of a writing transaction is empty (ranges there cost
    # etcd on every transaction); the compared keys are read after a failure.
    mine, other = make(), make()
    assert other.txn([Compare("a", 0)], [Put("a", b"theirs")]).succeeded
    result = mine.txn([Compare("a", 0), Compare("b", 0)], [Put("a", b"x"), Put("b", b"y")])
    assert not result.succeeded
    current = result.current
    assert current["b"] is None
    record = current["a"]
    assert record is not None
    assert record.value == b"theirs"
    assert mine.get("b") is None


def test_a_backend_collected_without_close_stops_its_watch(make: Make, etcd: EtcdServer) -> None:
    """Test suites drop clusters without closing them: no watch thread may outlive them."""

    def feeds() -> int:
        return sum(t.name == "etcd-feed" and t.is_alive() for t in threading.enumerate())

    prefix = f"t/forgotten-{uuid.uuid4().hex[:8]}"
    before = feeds()
    forgotten = EtcdBackend(etcd.endpoint, prefix, timeout=2.0)
    forgotten.txn([], [Put("a", b"0")])
    forgotten.watched(0)  # the watch runs
    assert feeds() == before + 1
    del forgotten
    gc.collect()
    writer = make(prefix)
    deadline = time.monotonic() + 30
    n = 0
    while feeds() > before and time.monotonic() < deadline:
        # An event on the watched prefix wakes the thread, which then sees it is closed.
        n += 1
        writer.txn([], [Put("a", str(n).encode())])
        time.sleep(0.05)
    assert feeds() == before
