"""The watch's line reader: messages come out whole, however etcd's chunks cut them."""

from __future__ import annotations

import itertools
from collections.abc import Iterator

from hypothesis import given
from hypothesis import strategies as st

from dualstack_ipam.store.etcd_feed import _lines


class Chunks:
    """A streamed response's ``raw`` that hands out the given chunks."""

    def __init__(self, chunks: list[bytes]) -> None:
        self.chunks = chunks

    def stream(self, amt: int | None, decode_content: bool = True) -> Iterator[bytes]:
        assert amt is None
        assert decode_content
        yield from self.chunks


def cut(data: bytes, points: list[int]) -> list[bytes]:
    bounds = sorted({0, len(data), *(p % (len(data) + 1) for p in points)})
    return [data[a:b] for a, b in itertools.pairwise(bounds)]


def test_one_message_per_chunk() -> None:
    raw = Chunks([b'{"result":1}\n', b'{"result":2}\n'])
    assert list(_lines(raw)) == [b'{"result":1}\n', b'{"result":2}\n']


def test_a_message_cut_across_chunks_comes_out_whole() -> None:
    raw = Chunks([b'{"res', b'ult":1}\n{"re', b'sult":2}', b"\n"])
    assert [line.strip() for line in _lines(raw)] == [b'{"result":1}', b'{"result":2}']


def test_a_last_message_without_newline_is_kept() -> None:
    assert list(_lines(Chunks([b"a\nb"]))) == [b"a", b"b"]


@given(
    st.lists(st.binary(min_size=1, max_size=30).map(lambda b: b.replace(b"\n", b"x")), max_size=8),
    st.lists(st.integers(min_value=0, max_value=500), max_size=12),
)
def test_any_cut_gives_the_messages_in_order(messages: list[bytes], points: list[int]) -> None:
    data = b"".join(m + b"\n" for m in messages)
    lines = [line.strip(b"\n") for line in _lines(Chunks(cut(data, points)))]
    assert [line for line in lines if line] == messages
