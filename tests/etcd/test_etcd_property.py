"""Property: etcd answers every transaction as the memory reference does.

Random transactions (true and false compares, puts, deletes, deletes of
absent keys, no-ops) go to both; outcomes, failure branches, records and
the change feed must agree, revisions counted from the start revision.
"""

from __future__ import annotations

import uuid

from hypothesis import given, settings
from hypothesis import strategies as st

from dualstack_ipam.store import Compare, Delete, MemoryBackend, Put, Record, Write
from dualstack_ipam.store.etcd import EtcdBackend

KEYS = st.sampled_from(["a", "b", "c/1", "c/2", "\u00e9"])
Step = tuple[list[tuple[str, int]], list[tuple[str, bytes | None]]]


@st.composite
def steps(draw: st.DrawFn) -> Step:
    compares = draw(
        st.lists(st.tuples(KEYS, st.integers(0, 6)), max_size=2, unique_by=lambda c: c[0])
    )
    writes = draw(
        st.lists(
            st.tuples(KEYS, st.none() | st.binary(max_size=3)), max_size=3, unique_by=lambda w: w[0]
        )
    )
    return compares, writes


def _shift(record: Record | None, base: int) -> tuple[str, bytes, int] | None:
    return None if record is None else (record.key, record.value, record.revision - base)


@settings(max_examples=15, deadline=None)
@given(st.lists(steps(), min_size=1, max_size=8))
def test_etcd_agrees_with_memory(etcd_endpoint: str, program: list[Step]) -> None:
    model = MemoryBackend()
    with EtcdBackend(etcd_endpoint, f"prop/{uuid.uuid4().hex[:8]}", feed_wait=10.0) as real:
        base = real.revision()
        for compares, writes in program:
            ops: list[Write] = [Put(k, v) if v is not None else Delete(k) for k, v in writes]
            expected = model.txn([Compare(k, r) for k, r in compares], ops)
            # Revision r of the model is base + r on etcd (0 = absent on both).
            got = real.txn([Compare(k, r + base if r else 0) for k, r in compares], ops)
            assert got.succeeded == expected.succeeded
            assert got.revision - base == expected.revision
            assert {k: _shift(v, base) for k, v in got.current.items()} == {
                k: _shift(v, 0) for k, v in expected.current.items()
            }
        assert [_shift(r, base) for r in real.get_prefix("")] == [
            _shift(r, 0) for r in model.get_prefix("")
        ]
        changes, revision = real.changes(base)
        assert revision - base == model.revision()
        assert [(c.key, c.revision - base, c.value) for c in changes] == [
            (c.key, c.revision, c.value) for c in model.changes(0)[0]
        ]
