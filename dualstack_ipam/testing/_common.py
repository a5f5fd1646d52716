"""What the strategy modules share: argument checks, weighted choice, network draws.

Every public strategy checks its keyword arguments when it is built, not when
it draws, and raises Hypothesis' own ``InvalidArgument`` naming the argument
and the bad value. Generation is constructive: values are built to be valid,
never drawn and filtered, so that Hypothesis neither wastes examples nor
trips its ``filter_too_much`` health check.

Shrinking: Hypothesis prefers shorter sequences of choices, then smaller
ones: it drives choices towards their first option and integers towards
their lower bound. So every weighted choice puts the simplest option first,
and a boosted shortcut (the seed's cluster, say) is decided after the
general value has been drawn, never instead of it: otherwise the shortcut,
being fewer choices, would become the shrink target. Network addresses are
drawn as an offset XORed with a private "home" range (``10.0.0.0`` for IPv4,
``fd00::`` for IPv6): the distribution is unchanged, but a shrunk example
reads ``10.0.0.0/24`` rather than ``0.0.0.0/24``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, TypeVar

try:
    from hypothesis import strategies as st
    from hypothesis.errors import InvalidArgument
except ImportError as exc:  # pragma: no cover - exercised in a subprocess
    raise ImportError(
        "dualstack_ipam.testing needs Hypothesis: pip install 'dualstack_ipam[testing]'"
    ) from exc

from dualstack_ipam.errors import InvalidConfigError
from dualstack_ipam.net import IPFamily, Net, parse_family, parse_network, usable_span

__all__ = [
    "FILLS",
    "HOME",
    "LOOP_LIMIT",
    "InvalidArgument",
    "boosted_int",
    "check_bool",
    "check_family",
    "check_fill",
    "check_int",
    "check_network",
    "check_strategy",
    "choose",
    "draw_network",
    "draw_outside",
    "st",
]

T = TypeVar("T")

FILLS = ("empty", "some", "half", "one-free", "full")
"""The fill states of pools and allocators, simplest first.

``"empty"``; ``"some"``: a few operations of every kind (allocations,
restart-style occupations, releases); ``"half"``: half the capacity used;
``"one-free"``: exactly one free slot; ``"full"``.
"""

FILL_WEIGHTS = {"empty": 4, "some": 4, "half": 2, "one-free": 3, "full": 2}

LOOP_LIMIT = 256
"""Most items an allocator fill may create one by one (an allocator keeps an
owner per item, so a full /64 cannot exist; pools are filled by ranges)."""

HOME = {IPFamily.IPv4: 10 << 24, IPFamily.IPv6: 0xFD << 120}
"""Where drawn networks shrink to: ``10.0.0.0`` and ``fd00::``."""


def check_bool(value: Any, name: str) -> bool | None:
    """``value`` if it is None or a bool, else InvalidArgument."""
    if value is not None and not isinstance(value, bool):
        raise InvalidArgument(f"{name}={value!r} must be None, True or False")
    return value


def check_int(value: Any, name: str, lo: int, hi: int | None = None) -> int:
    """``value`` if it is an int (not a bool) in ``[lo, hi]``, else InvalidArgument."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidArgument(f"{name}={value!r} must be an int")
    if value < lo or (hi is not None and value > hi):
        bound = f"between {lo} and {hi}" if hi is not None else f"at least {lo}"
        raise InvalidArgument(f"{name}={value!r} must be {bound}")
    return value


def check_family(value: Any, name: str = "family") -> IPFamily | None:
    """None, or the IPFamily ``value`` names (InvalidArgument otherwise)."""
    if value is None:
        return None
    try:
        return parse_family(value)
    except InvalidConfigError:
        raise InvalidArgument(f"{name}={value!r} must be None, 'IPv4' or 'IPv6'") from None


def check_network(value: Any, name: str) -> Net:
    """``value`` parsed as a network (InvalidArgument if it does not parse)."""
    try:
        return parse_network(value)
    except InvalidConfigError as exc:
        raise InvalidArgument(f"{name}={value!r} is not a network: {exc}") from None


def check_strategy(value: Any, allowed: Sequence[str]) -> tuple[str, ...]:
    """The allocation strategies to draw from: all of ``allowed`` for None."""
    if value is None:
        return tuple(allowed)
    if not isinstance(value, str) or value not in allowed:
        raise InvalidArgument(
            f"strategy={value!r} must be None or one of {', '.join(map(repr, allowed))}"
        )
    return (value,)


def check_fill(value: Any) -> tuple[str, ...]:
    """The fill states to draw from, simplest first: all of :data:`FILLS` for None."""
    if value is None:
        return FILLS
    names = [value] if isinstance(value, str) else value
    if not isinstance(names, Iterable) or isinstance(names, bytes):
        raise InvalidArgument(f"fill={value!r} must be None, a fill name or a collection of them")
    names = list(names)
    bad = [name for name in names if name not in FILLS]
    if not names or bad:
        raise InvalidArgument(
            f"fill={value!r}: {'no fill given' if not names else f'unknown fill {bad[0]!r}'}; "
            f"the fills are {', '.join(map(repr, FILLS))}"
        )
    return tuple(name for name in FILLS if name in names)


def choose(draw: st.DrawFn, options: Sequence[tuple[int, st.SearchStrategy[T]]]) -> T:
    """Draw from one of ``options`` with probability by weight; shrinks to the first.

    Options of weight 0 are skipped; at least one must have a weight.
    """
    live = [strategy for weight, strategy in options for _ in range(weight)]
    return draw(draw(st.sampled_from(live)))


def boosted_int(
    draw: st.DrawFn,
    lo: int,
    hi: int,
    *,
    first: int | None = None,
    band: tuple[int, int] | None = None,
    edges: Iterable[int] = (),
) -> int:
    """An int in ``[lo, hi]``: ``first`` (the shrink target), often ``band``,
    boosted ``edges``, sometimes anything.
    """
    options: list[tuple[int, st.SearchStrategy[int]]] = []
    if first is not None and lo <= first <= hi:
        options.append((1, st.just(first)))
    if band is not None and max(lo, band[0]) <= min(hi, band[1]):
        options.append((4, st.integers(max(lo, band[0]), min(hi, band[1]))))
    options.append((1, st.integers(lo, hi)))
    boosted = sorted({edge for edge in edges if lo <= edge <= hi})
    if boosted:
        options.append((2, st.sampled_from(boosted)))
    return choose(draw, options)


def draw_network(draw: st.DrawFn, family: IPFamily, prefixlen: int, within: Net | None) -> int:
    """The network address of a ``/prefixlen`` inside ``within`` (anywhere if None).

    Shrinks to the first subnet of ``within``, or to the home range.
    """
    width = family.width
    base_prefix = 0 if within is None else within.prefixlen
    base = 0 if within is None else within.value
    bits = prefixlen - base_prefix
    if bits <= 0:
        # One (ignored) choice all the same: were this path shorter, the
        # shrinker would prefer /0 networks to every other.
        draw(st.booleans())
        return base
    home = HOME[family] if within is None else base
    shift = width - prefixlen
    home_index = (home >> shift) & ((1 << bits) - 1)
    index = draw(st.integers(0, (1 << bits) - 1)) ^ home_index
    return base | (index << shift)


def draw_outside(draw: st.DrawFn, family: IPFamily, prefixlen: int, avoid: Net) -> int:
    """The network address of a ``/prefixlen`` that does not overlap ``avoid``.

    The networks overlapping ``avoid`` form one aligned block of indices; in
    the XORed coordinates that make draws shrink to the home range the block
    is still aligned, so skipping it keeps the draw constructive. Needs
    ``prefixlen >= 1`` and ``avoid.prefixlen >= 1`` (else nothing is outside).
    """
    width = family.width
    shift = width - prefixlen
    size = 1 << max(0, prefixlen - avoid.prefixlen)
    blocked = avoid.value >> shift
    home = HOME[family] >> shift
    lo = (blocked ^ home) & ~(size - 1)
    index = draw(st.integers(0, (1 << prefixlen) - size - 1))
    if index >= lo:
        index += size
    return (index ^ home) << shift


# -- shared by the strategy modules -------------------------------------------

SEED_CLUSTER = {IPFamily.IPv4: ("10.244.0.0/16", 24), IPFamily.IPv6: ("fc00::/24", 64)}
"""The seed's cluster CIDRs and the default node masks."""
SEED_SERVICE = {IPFamily.IPv4: "10.96.0.0/12", IPFamily.IPv6: "fd00:10:96::/112"}
"""The seed's Service ranges."""
# Where real clusters put node masks, node counts and Service ranges.
MASK_BAND = {IPFamily.IPv4: (20, 28), IPFamily.IPv6: (56, 120)}
NODE_BITS_BAND = {IPFamily.IPv4: (2, 12), IPFamily.IPv6: (2, 40)}
SERVICE_DEFAULT = {IPFamily.IPv4: 24, IPFamily.IPv6: 112}
SERVICE_BAND = {IPFamily.IPv4: (16, 28), IPFamily.IPv6: (108, 124)}
NODE_STRATEGIES = ("next-fit", "lowest")
SERVICE_STRATEGIES = ("random", "sequential")
LOOP_FILLS = ("half", "one-free", "full")
"""The fills an allocator reaches one item at a time (so at most LOOP_LIMIT)."""


def usable(family: IPFamily, prefixlen: int) -> int:
    """Usable Service addresses of a ``/prefixlen`` (ServiceIPPool.capacity)."""
    return usable_span(family, prefixlen)[1]


def boost(draw: st.DrawFn, odds: int) -> bool:
    """True once in ``odds`` draws; shrinks to False.

    Call it whether or not the boosted value applies: a path that skips the
    choice would be shorter, and so simpler to the shrinker.
    """
    return draw(st.sampled_from([False] * (odds - 1) + [True]))


def fill_choice(draw: st.DrawFn, fills: tuple[str, ...]) -> str:
    """One of ``fills``, weighted by :data:`FILL_WEIGHTS`; shrinks to the first."""
    return choose(draw, [(FILL_WEIGHTS[name], st.just(name)) for name in fills])
