"""Bitmap design comparison: the measurement behind ``dualstack_ipam.bitmap.factory``.

Run from the repository root::

    python -m benchmarks.bitmap_designs [--quick] [--json FILE]

Three structures answer the same raw-index questions (no locks, no address
objects, no range checks beyond the search bounds):

* ``Bitmap`` -- :class:`dualstack_ipam.bitmap.factory.Bitmap` (the chunked layout,
  ``SparseBitmap``): 4,096-slot chunks created lazily as ``bytearray`` (one
  byte per slot), runs of full chunks kept as sorted ranges. The pools use
  it above 2**24 slots.
* ``Dense`` -- :class:`dualstack_ipam.bitmap.dense.DenseBitmap`, what the pools
  use up to 2**24 slots (design A as the library ships it), when present.
* ``A-flat`` -- :class:`FlatBytes` below: one flat ``bytearray`` with one byte
  per slot plus a one-byte-per-chunk "chunk full" summary, both searched
  with ``bytearray.find`` (C ``memchr``). Dense only (it allocates the whole
  universe), so measured up to 2**24 slots.
* ``B-tree64`` -- :class:`WordTree` below: a 64-ary tree of 64-bit ``int``
  words, one ``dict`` per level; a word whose 64 bits are all set is
  removed and folded into one bit of its parent, empty words are absent;
  the lowest free bit of a word is ``~w & (w + 1)`` and ``bit_length``.

For each universe size and fill, the same set of used slots is loaded into
every design (bulk loading, untimed, under ``tracemalloc`` for memory), then
three operations are timed in batches that are undone (untimed) after each
batch, so every batch starts from the same state:

* ``take_free``: first free slot at or after a uniformly random start,
  wrapping over the whole universe, marked used;
* ``add``: mark a random free slot used;
* ``discard``: mark a random used slot free.

Fill patterns: ``random`` (used slots scattered uniformly) and ``bottom``
(the lowest slots used, as a sequential allocator leaves them), the worst
case for scans since a random start then lands in a long used run. For
2**40 and 2**64 slots the fill is a count (the same counts as for 2**20
slots) placed in one 2**20-slot window at a random chunk-aligned offset;
starts and samples are drawn from that window (a start far from every used
slot would find itself free at once and measure nothing).
"""

from __future__ import annotations

import argparse
import base64
import struct
import sys
import tracemalloc
import zlib
from collections.abc import Callable, Iterator
from functools import partial
from random import Random
from typing import Any, Protocol

import dualstack_ipam.bitmap as _bitmap
from dualstack_ipam.bitmap import SparseBitmap as Bitmap

from ._common import (
    format_table,
    machine_info,
    median,
    run_batches,
    timer_overhead_ns,
    write_json,
)

DenseBitmap: Any = getattr(_bitmap, "DenseBitmap", None)
"""The library's dense layout, if this version has one."""

ALL64 = (1 << 64) - 1
CHUNK_SHIFT = 12
CHUNK = 1 << CHUNK_SHIFT


class IndexSet(Protocol):
    """What every design offers to the benchmark."""

    def add(self, index: int) -> bool: ...
    def discard(self, index: int) -> bool: ...
    def take_free(self, start: int, lo: int, hi: int) -> int: ...
    def __contains__(self, index: int) -> bool: ...


# --------------------------------------------------------------------- (A)


class FlatBytes:
    """(A) One byte per slot plus a per-4096-slot "chunk full" summary.

    ``_room[c]`` counts the free slots of chunk ``c`` so that the summary
    byte flips exactly when a chunk fills or stops being full.

    >>> a = FlatBytes(10000)
    >>> a.add(0), a.add(0), a.take_free(0, 0, 10000), a.count
    (True, False, 1, 2)
    """

    __slots__ = ("_buf", "_full", "_room", "count", "size")

    def __init__(self, size: int) -> None:
        self.size = size
        self._buf = bytearray(size)
        chunks = (size + CHUNK - 1) >> CHUNK_SHIFT
        self._full = bytearray(chunks)
        self._room = [min(CHUNK, size - (c << CHUNK_SHIFT)) for c in range(chunks)]
        self.count = 0

    @classmethod
    def from_state(cls, state: bytes | bytearray) -> FlatBytes:
        """Load one byte per slot (0 free, 1 used)."""
        flat = cls(0)
        flat.size = len(state)
        flat._buf = bytearray(state)
        chunks = (len(state) + CHUNK - 1) >> CHUNK_SHIFT
        flat._room = [
            state.count(0, c << CHUNK_SHIFT, (c + 1) << CHUNK_SHIFT) for c in range(chunks)
        ]
        flat._full = bytearray(1 if r == 0 else 0 for r in flat._room)
        flat.count = len(state) - sum(flat._room)
        return flat

    def __contains__(self, index: int) -> bool:
        return self._buf[index] == 1

    def add(self, index: int) -> bool:
        buf = self._buf
        if buf[index]:
            return False
        buf[index] = 1
        self.count += 1
        chunk = index >> CHUNK_SHIFT
        room = self._room[chunk] - 1
        self._room[chunk] = room
        if not room:
            self._full[chunk] = 1
        return True

    def discard(self, index: int) -> bool:
        buf = self._buf
        if not buf[index]:
            return False
        buf[index] = 0
        self.count -= 1
        chunk = index >> CHUNK_SHIFT
        room = self._room[chunk]
        if not room:
            self._full[chunk] = 0
        self._room[chunk] = room + 1
        return True

    def _find(self, start: int, stop: int) -> int:
        """First free slot in ``[start, stop)``, or -1."""
        buf = self._buf
        end = min(stop, ((start >> CHUNK_SHIFT) + 1) << CHUNK_SHIFT)
        found = buf.find(0, start, end)
        if found >= 0 or end >= stop:
            return found
        chunk = self._full.find(0, end >> CHUNK_SHIFT, ((stop - 1) >> CHUNK_SHIFT) + 1)
        if chunk < 0:
            return -1
        # Every chunk before the last one of the range lies wholly inside it,
        # so a non-full chunk found there holds a free slot below ``stop``.
        return buf.find(0, chunk << CHUNK_SHIFT, stop)

    def take_free(self, start: int, lo: int, hi: int) -> int:
        if not self._buf[start]:
            self.add(start)
            return start
        found = self._find(start, hi)
        if found < 0 and lo < start:
            found = self._find(lo, start)
        if found >= 0:
            self.add(found)
        return found


# --------------------------------------------------------------------- (B)


class WordTree:
    """(B) A 64-ary tree of 64-bit words, one dict per level.

    Level 0 words hold one bit per slot (1 = used); a word of level ``l``
    holds one bit per node of level ``l`` (1 = that node's subtree is full).
    A word with every bit set is not stored: it is folded into its parent's
    bit. A word with no bit set is not stored either. So an absent word is
    either all-full (its parent bit says so) or holds no full node.

    >>> t = WordTree(1 << 20)
    >>> t.add(5), t.add(5), t.take_free(5, 0, 1 << 20), 5 in t, 7 in t
    (True, False, 6, True, False)
    >>> for i in range(64, 128): _ = t.add(i)
    >>> t.take_free(60, 0, 1 << 20), t.discard(100), t.take_free(64, 0, 1 << 20)
    (60, True, 100)
    """

    __slots__ = ("_levels", "count", "size")

    def __init__(self, size: int) -> None:
        self.size = size
        depth, span = 1, 64
        while span < size:
            span <<= 6
            depth += 1
        # One more level than needed so that a completely full universe of
        # exactly 64**depth slots can still fold its top word.
        self._levels: list[dict[int, int]] = [{} for _ in range(depth + 1)]
        self.count = 0

    @classmethod
    def from_state(cls, size: int, state: bytes | bytearray, base: int = 0) -> WordTree:
        """Load ``state`` (one byte per slot) at slot ``base`` (a multiple of 64)."""
        tree = cls(size)
        packed = _pack_bits(state)
        first = base >> 6
        words: dict[int, int] = {}
        for k, (word,) in enumerate(struct.iter_unpack("<Q", packed)):
            if word:
                words[first + k] = word
        tree.count = state.count(1)
        for level in tree._levels:
            parents: dict[int, int] = {}
            for index, word in words.items():
                if word == ALL64:
                    parents[index >> 6] = parents.get(index >> 6, 0) | (1 << (index & 63))
                else:
                    level[index] = word
            words = parents
        return tree

    def _full_at(self, level: int, node: int) -> int:
        """Level of the full ancestor-or-self of ``node`` (at ``level``), or -1."""
        levels = self._levels
        top = len(levels)
        while level < top:
            word = levels[level].get(node >> 6)
            if word is not None:
                return level if (word >> (node & 63)) & 1 else -1
            node >>= 6
            level += 1
        return -1

    def __contains__(self, index: int) -> bool:
        word = self._levels[0].get(index >> 6)
        if word is not None:
            return bool((word >> (index & 63)) & 1)
        return self._full_at(1, index >> 6) >= 0

    def add(self, index: int) -> bool:
        levels = self._levels
        node = index >> 6
        bit = 1 << (index & 63)
        word = levels[0].get(node)
        if word is None:
            if self._full_at(1, node) >= 0:
                return False
            word = bit
        elif word & bit:
            return False
        else:
            word |= bit
        self.count += 1
        level = 0
        while word == ALL64:  # fold a full word into its parent's bit
            levels[level].pop(node, None)
            level += 1
            child, node = node, node >> 6
            word = levels[level].get(node, 0) | (1 << (child & 63))
        levels[level][node] = word
        return True

    def discard(self, index: int) -> bool:
        levels = self._levels
        node = index >> 6
        bit = 1 << (index & 63)
        word = levels[0].get(node)
        if word is not None:
            if not word & bit:
                return False
            word ^= bit
            if word:
                levels[0][node] = word
            else:
                del levels[0][node]
            self.count -= 1
            return True
        full = self._full_at(1, node)
        if full < 0:
            return False
        # Unfold: the full ancestor loses one bit, every word below it on the
        # path to ``index`` comes back as all-ones but one.
        top = index >> (6 * full)
        word = levels[full][top >> 6] ^ (1 << (top & 63))
        if word:
            levels[full][top >> 6] = word
        else:
            del levels[full][top >> 6]
        for level in range(full - 1, -1, -1):
            on_path = index >> (6 * level)
            levels[level][on_path >> 6] = ALL64 ^ (1 << (on_path & 63))
        self.count -= 1
        return True

    def _first_free(self, index: int) -> int:
        """First free slot at or after ``index`` (may be >= size), or -1."""
        levels = self._levels
        top = len(levels)
        level, node = 0, index
        while True:
            if level >= top:
                return -1
            word = levels[level].get(node >> 6)
            if word is None:
                full = self._full_at(level + 1, node >> 6)
                if full < 0:
                    break  # node is not full
                node = (node >> (6 * (full - level))) + 1
                level = full
                continue
            free = ~word & (ALL64 << (node & 63)) & ALL64
            if free:
                node = (node & ~63) | ((free & -free).bit_length() - 1)
                break
            node = (node >> 6) + 1
            level += 1
        # Descend from a node known not to be full to its lowest free slot.
        while level:
            level -= 1
            word = levels[level].get(node)
            node <<= 6
            if word is not None:
                node |= (~word & (word + 1)).bit_length() - 1
        return node

    def take_free(self, start: int, lo: int, hi: int) -> int:
        found = self._first_free(start)
        if not 0 <= found < hi:
            found = -1
            if lo < start:
                found = self._first_free(lo)
                if not 0 <= found < start:
                    found = -1
        if found >= 0:
            self.add(found)
        return found


# ------------------------------------------------------------- loading


_TO_ASCII = bytes.maketrans(b"\x00\x01", b"01")


def _pack_bits(state: bytes | bytearray) -> bytes:
    """One byte per slot -> one bit per slot, slot k = bit k, little-endian."""
    if not state:
        return b""
    text = bytearray(state).translate(_TO_ASCII)
    text.reverse()
    size = (len(state) + 63) // 64 * 8
    return int(text, 2).to_bytes(size, "little")


def bitmap_from_state(size: int, state: bytes | bytearray, base: int = 0, cls: Any = Bitmap) -> Any:
    """Load ``state`` into a library bitmap ``cls`` through its ``from_json``.

    ``base`` must be a multiple of 4,096. Falls back to ``add_range`` per run
    of used slots if the serialised form has changed.
    """
    shift = min(CHUNK_SHIFT, (size - 1).bit_length()) if size > 1 else 0
    slots = 1 << shift
    full: list[list[int | str]] = []
    partial: list[int | str] = []
    packed: list[bytes] = []
    first = base >> shift
    for k in range(0, len(state), slots):
        piece = state[k : k + slots]
        used = piece.count(1)
        chunk = first + k // slots
        if used == len(piece) and used:
            if full and int(full[-1][1]) == chunk:
                full[-1][1] = _jint(chunk + 1)
            else:
                full.append([_jint(chunk), _jint(chunk + 1)])
        elif used:
            partial.append(_jint(chunk))
            text = bytearray(piece).translate(_TO_ASCII)
            text.reverse()
            packed.append(int(text, 2).to_bytes((len(piece) + 7) // 8, "little"))
    data: dict[str, Any] = {
        "chunk_bits": shift,
        "full": full,
        "partial": partial,
        "bits": base64.b64encode(zlib.compress(b"".join(packed), 1)).decode("ascii"),
    }
    try:
        bitmap = cls.from_json(size, data)
    except ValueError:  # the format moved on: load run by run instead
        bitmap = cls(size)
        for lo, hi in _runs(state):
            bitmap.add_range(base + lo, base + hi)
    expected = state.count(1)
    if bitmap.count != expected:
        raise RuntimeError(f"Bitmap loaded {bitmap.count} used slots, {expected} expected")
    return bitmap


def _jint(value: int) -> int | str:
    return value if value < (1 << 53) else str(value)


def _runs(state: bytes | bytearray) -> Iterator[tuple[int, int]]:
    j = state.find(1)
    while j >= 0:
        end = state.find(0, j)
        if end < 0:
            end = len(state)
        yield j, end
        j = state.find(1, end)


def make_state(width: int, fill: float, pattern: str, rng: Random) -> bytearray:
    """``width`` slots, a ``fill`` fraction used, ``random`` or ``bottom``."""
    used = int(fill * width)
    if pattern == "bottom" or used == 0:
        return bytearray(b"\x01" * used + bytes(width - used))
    if fill == 0.5:  # a fair coin per slot: exact enough, and fast at 2**24
        table = bytes(0 if b < 128 else 1 for b in range(256))
        return bytearray(rng.randbytes(width).translate(table))
    state = bytearray(b"\x01" * width)
    for index in rng.sample(range(width), width - used):
        state[index] = 0
    return state


# ------------------------------------------------------------- sampling


class Sampler:
    """Random distinct free or used slots of a state, by probing or listing."""

    def __init__(self, state: bytearray, rng: Random) -> None:
        self._state = state
        self._rng = rng
        self._lists: dict[int, list[int]] = {}
        self.width = len(state)
        self.used = state.count(1)
        self.free = len(state) - self.used

    def _listed(self, value: int) -> list[int]:
        if value not in self._lists:
            found, state = [], self._state
            j = state.find(value)
            while j >= 0:
                found.append(j)
                j = state.find(value, j + 1)
            self._lists[value] = found
        return self._lists[value]

    def pick(self, value: int, k: int) -> list[int]:
        """``k`` distinct slots whose state byte is ``value``."""
        have = self.used if value else self.free
        k = min(k, have)
        if have * 20 < len(self._state):
            return self._rng.sample(self._listed(value), k)
        chosen: set[int] = set()
        state, width, rng = self._state, len(self._state), self._rng
        while len(chosen) < k:
            j = rng.randrange(width)
            if state[j] == value:
                chosen.add(j)
        return list(chosen)


# ------------------------------------------------------------- timing


def _time_ops(
    design: IndexSet,
    size: int,
    base: int,
    sampler: Sampler,
    rng: Random,
    repeats: int,
    overhead: float,
    max_batch: int,
) -> dict[str, float | None]:
    width = sampler.width
    take = design.take_free
    add = design.add
    discard = design.discard
    results: dict[str, float | None] = {}

    def undo_taken(got: list[int]) -> None:
        for index in got:
            if index >= 0:
                discard(index)

    k_free = max(1, min(max_batch, sampler.free // 10))

    def prep_take() -> tuple[Callable[[], list[int]], int]:
        starts = [base + rng.randrange(width) for _ in range(k_free)]
        return (lambda: [take(s, 0, size) for s in starts]), k_free

    results["take_free"] = (
        median(run_batches(prep_take, undo_taken, repeats, overhead)) if sampler.free else None
    )

    def prep_add() -> tuple[Callable[[], list[int]], int]:
        picks = [base + i for i in sampler.pick(0, k_free)]
        return (lambda: [x for x in picks if add(x)]), len(picks)

    results["add"] = (
        median(run_batches(prep_add, undo_taken, repeats, overhead)) if sampler.free else None
    )

    k_used = max(1, min(max_batch, sampler.used // 10))

    def prep_discard() -> tuple[Callable[[], list[int]], int]:
        picks = [base + i for i in sampler.pick(1, k_used)]
        return (lambda: [x for x in picks if discard(x)]), len(picks)

    def undo_discarded(got: list[int]) -> None:
        for index in got:
            add(index)

    results["discard"] = (
        median(run_batches(prep_discard, undo_discarded, repeats, overhead))
        if sampler.used
        else None
    )
    return results


def _traced(build: Callable[[], IndexSet]) -> tuple[IndexSet, int]:
    """Build under tracemalloc; return the object and the bytes it kept."""
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        obj = build()
        after = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    return obj, after - before


def _check_same(designs: dict[str, IndexSet], sampler: Sampler, base: int, rng: Random) -> None:
    """Cross-check the designs on a few probes before timing them."""
    picks = sampler.pick(0, 5) + sampler.pick(1, 5)
    for index in picks:
        answers = {name: (base + index) in d for name, d in designs.items()}
        if len(set(answers.values())) != 1:
            raise RuntimeError(f"designs disagree on slot {base + index}: {answers}")


def run(quick: bool) -> dict[str, Any]:
    rng = Random(20240611)
    overhead = timer_overhead_ns()
    repeats = 7 if quick else 31
    max_batch = 128 if quick else 256
    dense_sizes = [8, 16, 20] if quick else [8, 16, 20, 24]
    huge_sizes = [40] if quick else [40, 64]
    window_bits = 16 if quick else 20
    fills = [0.0, 0.5, 0.99, 0.999]
    rows: list[dict[str, Any]] = []

    cases: list[tuple[int, int, float, str]] = []  # size bits, window bits, fill, pattern
    for bits in dense_sizes + huge_sizes:
        wbits = bits if bits in dense_sizes else window_bits
        for fill in fills:
            for pattern in ("random", "bottom") if fill else ("empty",):
                cases.append((bits, wbits, fill, pattern))

    for bits, wbits, fill, pattern in cases:
        size, width = 1 << bits, 1 << wbits
        dense = wbits == bits
        base = 0 if dense else rng.randrange((size - width) >> CHUNK_SHIFT) << CHUNK_SHIFT
        state = make_state(width, fill, pattern if fill else "bottom", rng)
        sampler = Sampler(state, rng)
        builders: dict[str, Callable[[], IndexSet]] = {
            "Bitmap": partial(bitmap_from_state, size, state, base, Bitmap),
        }
        if dense and DenseBitmap is not None:
            builders["Dense"] = partial(bitmap_from_state, size, state, 0, DenseBitmap)
        if dense:
            builders["A-flat"] = partial(FlatBytes.from_state, state)
        builders["B-tree64"] = partial(WordTree.from_state, size, state, base)
        designs: dict[str, IndexSet] = {}
        memory: dict[str, int] = {}
        for name, build in builders.items():
            designs[name], memory[name] = _traced(build)
        _check_same(designs, sampler, base, rng)
        for name, design in designs.items():
            times = _time_ops(design, size, base, sampler, rng, repeats, overhead, max_batch)
            rows.append(
                {
                    "size_bits": bits,
                    "window_bits": wbits,
                    "pattern": pattern,
                    "fill": fill,
                    "used": sampler.used,
                    "design": name,
                    "ns_take_free": times["take_free"],
                    "ns_add": times["add"],
                    "ns_discard": times["discard"],
                    "bytes": memory[name],
                    "bytes_per_slot": memory[name] / size if dense else None,
                    "bytes_per_used": memory[name] / sampler.used if sampler.used else None,
                }
            )
            print(_progress(rows[-1]), file=sys.stderr, flush=True)
        del designs, state, sampler
    return {
        "timer_overhead_ns": overhead,
        "repeats": repeats,
        "max_batch": max_batch,
        "rows": rows,
    }


def _progress(row: dict[str, Any]) -> str:
    return (
        f"  2**{row['size_bits']} {row['pattern']:<6} {row['fill']:.1%} {row['design']:<8} "
        f"take={row['ns_take_free']} add={row['ns_add']} discard={row['ns_discard']}"
    )


DESIGNS = ("Bitmap", "Dense", "A-flat", "B-tree64")


def render(result: dict[str, Any]) -> str:
    """The time table and the memory table."""
    by_case: dict[tuple[int, str, float], dict[str, dict[str, Any]]] = {}
    for row in result["rows"]:
        key = (row["size_bits"], row["pattern"], row["fill"])
        by_case.setdefault(key, {})[row["design"]] = row
    time_rows: list[list[object]] = []
    mem_rows: list[list[object]] = []
    for (bits, pattern, _), per in by_case.items():
        first = per["Bitmap"]
        fill = first["used"] / (1 << first["window_bits"])
        for op in ("take_free", "add", "discard"):
            values = [per[d][f"ns_{op}"] if d in per else None for d in DESIGNS]
            known = {d: v for d, v in zip(DESIGNS, values, strict=True) if v is not None}
            best = min(known, key=lambda d: known[d]) if known else None
            time_rows.append([f"2**{bits}", pattern, f"{fill:.1%}", op, *values, best])
        dense = bits == first["window_bits"]
        unit = "B/slot" if dense else "B/used"
        field = "bytes_per_slot" if dense else "bytes_per_used"
        mem_rows.append(
            [
                f"2**{bits}",
                pattern,
                f"{fill:.1%}",
                unit,
                *[per[d][field] if d in per else None for d in DESIGNS],
            ]
        )
    times = format_table(
        ["size", "pattern", "fill", "op", *(f"{d} ns" for d in DESIGNS), "fastest"],
        time_rows,
    )
    memory = format_table(["size", "pattern", "fill", "unit", *DESIGNS], mem_rows)
    return f"ns per operation (median of batches):\n{times}\n\nmemory (tracemalloc):\n{memory}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.bitmap_designs", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--quick", action="store_true", help="smaller sizes, fewer repeats")
    parser.add_argument("--json", metavar="FILE", help="write all results as JSON")
    args = parser.parse_args(argv)
    info = machine_info("benchmarks.bitmap_designs")
    result = run(args.quick)
    text = render(result)
    print(f"python {info['python']} on {info['platform']}, {info['cpu_count']} CPUs")
    print(f"timer overhead subtracted: {result['timer_overhead_ns']:.0f} ns per batch")
    print(text)
    if args.json:
        write_json(args.json, {"machine": info, "quick": args.quick, **result})
    return 0


if __name__ == "__main__":
    sys.exit(main())
