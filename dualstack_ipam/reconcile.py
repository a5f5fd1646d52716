"""Reconcile an allocator against the cluster's truth, and repair it.

After a restart a controller's allocator (restored from a snapshot, or
rebuilt) and the cluster (Node ``spec.podCIDRs``, Service addresses) may
disagree. :func:`reconcile` compares them key by key, as Kubernetes' repair
controllers do, and with ``repair=True`` makes the allocator follow the
truth. It works on any allocator that offers the small :class:`Reconcilable`
surface.

The order of a repair, and why:

1. **Release leaks** (keys the truth no longer has, seen in ``leak_grace``
   consecutive repairing calls): their addresses may be the ones the truth
   gives to another key.
2. **Fix mismatches** (keys holding other addresses than the truth says):
   what they drop may be what a missing key needs, and what they need may
   have been freed by step 1.
3. **Occupy what is missing** (keys the truth has, the allocator not): last,
   when everything the first two steps free is free.

Any other order reports, as conflicts, addresses that were about to be
freed. Two rules hold throughout: an address held by another key that keeps
it is a conflict, reported and never stolen; an address the truth gives to
a key is never freed (a key's addresses are released only when the key
leaked, or moved to a key that takes them in the same call).

>>> from dualstack_ipam.services.loadbalancer import LoadBalancerIPAllocator
>>> lb = LoadBalancerIPAllocator({"IPv4": "192.0.2.0/29"})
>>> _ = lb.occupy("default/old", ["192.0.2.1"])
>>> report = reconcile(lb, {"default/web": ["192.0.2.5"]}, repair=True, leak_grace=1)
>>> report.missing, report.released, report.ok
({'default/web': (IPAddress('192.0.2.5'),)}, {'default/old': (IPAddress('192.0.2.1'),)}, True)
>>> list(lb.items())
[('default/web', (IPAddress('192.0.2.5'),))]
"""

from __future__ import annotations

import contextlib
import operator
from collections.abc import Callable, Iterable, Mapping, MutableMapping
from typing import Any, NamedTuple, Protocol, cast

import attrs

from dualstack_ipam.errors import InvalidConfigError, IPAMError

__all__ = ["Reconcilable", "ReconcileReport", "reconcile"]

Held = tuple[Any, ...]


class Reconcilable(Protocol):
    """What :func:`reconcile` needs of an allocator.

    Addresses are the allocator's own objects (``netaddr.IPAddress`` for
    Service and load-balancer addresses, ``netaddr.IPNetwork`` for pod
    CIDRs): hashable, with a ``version`` (4 or 6) telling the family.
    ``_leak_counts`` keeps, per key, how many consecutive repairing
    reconciles saw it leaked: a dict in memory, a mapping backed by the
    store for a durable allocator (so that separate CLI runs accumulate).
    """

    @property
    def _leak_counts(self) -> MutableMapping[str, int]: ...
    def get(self, key: str) -> Held | None:
        """What ``key`` holds, or None.

        Complexity:
            O(1) expected.
        """
        ...

    def items(self) -> Iterable[tuple[str, Held]]:
        """Every ``(key, addresses)`` pair.

        Complexity:
            O(n) expected.
        """
        ...

    def owner_of(self, address: Any) -> str | None:
        """The key holding ``address``, or None.

        Complexity:
            O(1) expected.
        """
        ...

    def occupy(self, key: str, addresses: Any) -> Held:
        """Record ``addresses`` under ``key``, all or nothing; ``IPAMError`` if refused.

        Complexity:
            O(k) expected for k addresses.
        """
        ...

    def release(self, key: str) -> bool:
        """Free what ``key`` holds; False if nothing.

        Complexity:
            O(1) expected per address.
        """
        ...

    def _reconcile_parse(self, value: Any) -> tuple[Any, bool]:
        """``value`` as the allocator's address object, and whether it could
        hold it (in range); raises ``AddressFormatError`` for garbage."""
        ...


class _Slotted(Reconcilable, Protocol):
    """The faster surface of an allocator with an owner table (both cluster allocators).

    Reconcile compares the table's ``(family, slot)`` pairs with the truth
    read as pairs, and builds the allocator's objects only for what the
    report names and the repair passes on: the truth of 50,000 Services
    is read and compared several times faster than as ``netaddr`` objects.
    The result is the same as through :class:`Reconcilable` alone.
    """

    def _reconcile_read(self, value: Any) -> tuple[Any, Any, bool]:
        """``value`` as ``(address, family, in_range)``: the address a pair when
        in range, else the allocator's object; ``AddressFormatError`` for garbage."""
        ...

    def _reconcile_state(self) -> tuple[dict[str, Held], dict[Any, str]]:
        """Copies of key -> pairs held and pair -> key (the caller holds the lock)."""
        ...

    def _build(self, address: Any) -> Any:
        """The allocator's object for the pair ``address``."""
        ...


def _texts(entries: Mapping[str, Held]) -> dict[str, list[str]]:
    return {key: [str(a) for a in held] for key, held in entries.items()}


@attrs.frozen
class ReconcileReport:
    """What :func:`reconcile` found, and what it freed.

    ``missing`` (in the truth, not held), ``leaked`` (held, not in the
    truth), ``mismatched`` (key -> (held, truth)) and ``out_of_range`` (what
    the truth gives a key that the allocator can never hold) describe the
    state found; ``conflicts`` maps an address to the keys claiming it (the
    one holding it first, then those the truth gives it to; a single key
    when something other than a key blocks it, e.g. a reservation);
    ``released`` lists the leaks this call freed; ``ok`` is true when
    nothing is left to fix after the call.
    """

    missing: dict[str, Held] = attrs.field(factory=dict)
    leaked: dict[str, Held] = attrs.field(factory=dict)
    mismatched: dict[str, tuple[Held, Held]] = attrs.field(factory=dict)
    released: dict[str, Held] = attrs.field(factory=dict)
    out_of_range: dict[str, Held] = attrs.field(factory=dict)
    conflicts: dict[Any, tuple[str, ...]] = attrs.field(factory=dict)
    ok: bool = True

    def to_dict(self) -> dict[str, Any]:
        """The report as JSON-able data, addresses as strings, keys sorted.

        Complexity:
            O(size of the report).

        >>> ReconcileReport(leaked={"a": ()}, ok=False).to_dict()["leaked"]
        {'a': []}
        """
        return {
            "ok": self.ok,
            "missing": _texts(self.missing),
            "leaked": _texts(self.leaked),
            "mismatched": {
                key: {"held": [str(a) for a in held], "truth": [str(a) for a in truth]}
                for key, (held, truth) in self.mismatched.items()
            },
            "released": _texts(self.released),
            "out_of_range": _texts(self.out_of_range),
            "conflicts": {str(a): list(keys) for a, keys in self.conflicts.items()},
        }


class _View(NamedTuple):
    """How :func:`reconcile` reads one target's addresses.

    Either the target's own objects (any :class:`Reconcilable`), or, for an
    allocator offering the slotted surface (``_reconcile_read``,
    ``_reconcile_state`` and ``_build``: both cluster allocators), its owner
    table's ``(family, slot)`` pairs: tuples of an enum and an int hash and
    compare in C, where ``netaddr`` objects hash in Python, and the objects
    the report carries are built only for the keys that differ.
    """

    read: Callable[[Any], tuple[Any, Any, bool]]
    """value -> (address, its family, in range); an address out of range is an object."""
    state: Callable[[], tuple[dict[str, Held], dict[Any, str] | None]]
    """key -> addresses held, and address -> key (None: built here from the first)."""
    family: Callable[[Any], Any]
    build: Callable[[Any], Any] | None
    """address -> the target's object (None: addresses are the objects)."""
    ordered: bool
    """Whether the state's keys come in the target's order (else the leaks are sorted)."""


def _view(target: Reconcilable) -> _View:
    if callable(getattr(target, "_reconcile_state", None)):
        slotted = cast("_Slotted", target)
        return _View(
            slotted._reconcile_read,
            slotted._reconcile_state,
            operator.itemgetter(0),
            slotted._build,
            False,
        )

    def read(value: Any) -> tuple[Any, Any, bool]:
        address, in_range = target._reconcile_parse(value)
        return address, f"IPv{address.version}", in_range

    def state() -> tuple[dict[str, Held], dict[Any, str] | None]:
        return dict(target.items()), None

    return _View(read, state, operator.attrgetter("version"), None, True)


def _read_truth(
    view: _View, observed: Mapping[str, Iterable[Any]]
) -> tuple[dict[str, Held], dict[str, Held]]:
    """key -> addresses the allocator can hold, and key -> those it cannot (objects)."""
    if not isinstance(observed, Mapping):
        raise InvalidConfigError(
            f"observed must be a mapping of key to addresses, got {observed!r}"
        )
    read = view.read
    truth: dict[str, Held] = {}
    outside: dict[str, Held] = {}
    for key in sorted(observed):
        values = observed[key]
        if not isinstance(key, str) or not key or isinstance(values, (str, bytes)):
            raise InvalidConfigError(
                f"observed[{key!r}] must map a non-empty str to a list of addresses, "
                f"got {values!r}",
                value=values,
            )
        inside: list[Any] = []
        out: list[Any] = []
        families: list[Any] = []
        for value in values:
            address, family, in_range = read(value)
            if family in families:
                raise InvalidConfigError(
                    f"observed[{key!r}] lists two {family} entries: {values!r}",
                    value=values,
                )
            families.append(family)
            (inside if in_range else out).append(address)
        truth[key] = tuple(inside)
        if out:
            outside[key] = tuple(out)
    return truth, outside


def reconcile(
    target: Reconcilable,
    observed: Mapping[str, Iterable[Any]],
    *,
    repair: bool = False,
    leak_grace: int = 3,
) -> ReconcileReport:
    """Compare ``target`` with the truth ``observed``; with ``repair``, make it follow.

    Args:
        target: the allocator (see :class:`Reconcilable`).
        observed: every key that exists in the truth (node name, Service
            key) -> its addresses or CIDRs (str, netaddr or ipaddress).
        repair: change ``target``: release leaks (after ``leak_grace``
            sightings), fix mismatches, occupy what is missing, in that order
            (see the module documentation for why).
        leak_grace: how many consecutive repairing calls must see a key
            leaked before it is released (1: at the first sighting). A
            report-only call counts nothing; any call that finds the key in
            the truth again forgets its count.

    Returns:
        The :class:`ReconcileReport`.

    Raises:
        InvalidConfigError: ``leak_grace`` below 1, or ``observed`` not a
            mapping of non-empty str to addresses with at most one per family
            (checked before anything changes).
        AddressFormatError: an entry of ``observed`` that does not parse.

    Complexity:
        O(n + m) for n keys held and m in the truth, under ``target``'s lock
        when it has one (``_lock``).

    >>> from dualstack_ipam.services.loadbalancer import LoadBalancerIPAllocator
    >>> lb = LoadBalancerIPAllocator({"IPv4": "192.0.2.0/29"})
    >>> _ = lb.occupy("default/a", ["192.0.2.1"])
    >>> report = reconcile(lb, {"default/b": ["192.0.2.1", "fd00::1"]}, repair=True)
    >>> report.conflicts, report.ok
    ({IPAddress('192.0.2.1'): ('default/a', 'default/b')}, False)
    >>> report.out_of_range
    {'default/b': (IPAddress('fd00::1'),)}
    >>> dict(lb._leak_counts)
    {'default/a': 1}
    """
    if isinstance(leak_grace, bool) or not isinstance(leak_grace, int) or leak_grace < 1:
        raise InvalidConfigError(f"leak_grace must be an int >= 1, got {leak_grace!r}")
    lock = getattr(target, "_lock", None)
    with lock if lock is not None else contextlib.nullcontext():
        view = _view(target)
        truth, outside = _read_truth(view, observed)
        return _reconcile(target, view, truth, outside, repair, leak_grace)


def _reconcile(
    target: Reconcilable,
    view: _View,
    truth: dict[str, Held],
    outside: dict[str, Held],
    repair: bool,
    leak_grace: int,
) -> ReconcileReport:
    held, owners = view.state()
    missing: dict[str, Held] = {}
    mismatched: dict[str, tuple[Held, Held]] = {}
    for key, want in truth.items():
        have = held.get(key)
        if not have:
            if want:
                missing[key] = want
        elif have != want and set(have) != set(want):
            mismatched[key] = (have, want)
    gone = [key for key in held if key not in truth]
    if not view.ordered:
        gone.sort()
    leaked = {key: held[key] for key in gone}
    # Who claims each address the truth gives (``claims``: its first key;
    # ``contested``: every key, for those claimed by several): several keys
    # is a conflict of the truth itself, which no repair settles and no
    # repair may free.
    claims: dict[Any, str] = {}
    contested: dict[Any, list[str]] = {}
    for key, want in truth.items():
        for address in want:
            first = claims.setdefault(address, key)
            if first != key:
                contested.setdefault(address, [first]).append(key)
    counts = target._leak_counts
    for key in [k for k in counts if k not in leaked]:
        del counts[key]  # back in the truth, or gone: the sightings start again
    releasing: set[str] = set()
    if repair:
        for key, have in leaked.items():
            counts[key] = counts.get(key, 0) + 1
            if counts[key] >= leak_grace and contested.keys().isdisjoint(have):
                releasing.add(key)
    if owners is None:
        owners = {address: key for key, have in held.items() for address in have}
    # Which leaks go and what each key ends with depend on each other: a
    # leak or a mismatched key gives up an address the truth claims only if
    # its claimant takes it. Shrink the releases and grow what keys must
    # keep until both agree (each round only shrinks or grows, so it ends).
    keeps: dict[str, set[Any]] = {}
    while True:
        conflicts = _contested(contested, owners)
        goals = {
            key: _goal(
                key, truth, held, owners, contested, releasing, conflicts, keeps, view.family
            )
            for key in (*mismatched, *missing)
        }
        taken = {address for goal in goals.values() for address in goal}
        changed = False
        for key in sorted(releasing):
            if any(a in claims and a not in taken for a in leaked[key]):
                releasing.discard(key)
                changed = True
        for key in mismatched:
            for address in held[key]:
                kept = keeps.setdefault(key, set())
                if address in claims and address not in taken and address not in kept:
                    kept.add(address)
                    changed = True
        if not changed:
            break
    build = view.build

    def objects(addresses: Held) -> Held:
        return addresses if build is None else tuple(map(build, addresses))

    leaks = {key: objects(have) for key, have in leaked.items()}
    released: dict[str, Held] = {}
    refused: dict[Any, tuple[str, ...]] = {}  # by _hold, addresses as objects
    settled = True
    if repair:
        for key in sorted(releasing):  # 1. leaks
            target.release(key)
            released[key] = leaks[key]
            del counts[key]
        # 2. mismatches drop what they no longer hold first, so that a swap
        # between two keys works; 3. then the missing keys.
        for key in mismatched:
            keep = tuple(a for a in held[key] if a in goals[key])
            if len(keep) < len(held[key]):
                target.release(key)
                if keep:
                    target.occupy(key, objects(keep))
        for key in (*mismatched, *missing):
            if not _hold(target, key, objects(goals[key]), refused):
                settled = False
        settled = settled and all(set(goals[k]) == set(truth[k]) for k in goals)
        settled = settled and len(released) == len(leaked)
    else:
        settled = not (missing or mismatched or leaked)
    if build is not None:
        missing = {key: objects(want) for key, want in missing.items()}
        mismatched = {
            key: (objects(have), objects(want)) for key, (have, want) in mismatched.items()
        }
        conflicts = {build(address): keys for address, keys in conflicts.items()}
    conflicts.update(refused)
    ok = settled and not conflicts and not outside
    return ReconcileReport(missing, leaks, mismatched, released, outside, conflicts, ok)


def _contested(
    contested: dict[Any, list[str]], owners: dict[Any, str]
) -> dict[Any, tuple[str, ...]]:
    """The conflicts of the truth itself: holder first, then the claimants."""
    conflicts: dict[Any, tuple[str, ...]] = {}
    for address, claimants in contested.items():
        holder = owners.get(address)
        first = (holder,) if holder is not None else ()
        conflicts[address] = tuple(dict.fromkeys((*first, *sorted(claimants))))
    return conflicts


def _goal(
    key: str,
    truth: dict[str, Held],
    held: dict[str, Held],
    owners: dict[Any, str],
    contested: Mapping[Any, Any],
    releasing: set[str],
    conflicts: dict[Any, tuple[str, ...]],
    keeps: dict[str, set[Any]],
    family: Callable[[Any], Any],
) -> Held:
    """What ``key`` can hold after this call: its truth, less what another key keeps.

    A contested address it holds stays, as does one the truth gives to a key
    that cannot take it (``keeps``): freeing either would free an address the
    truth holds. Such an address blocks its family's truth address.
    """
    extra = keeps.get(key, set())
    stuck = tuple(
        a for a in held.get(key, ()) if a not in truth[key] and (a in contested or a in extra)
    )
    families = {family(a) for a in stuck}
    goal = list(stuck)
    for address in truth[key]:
        owner = owners.get(address)
        if address in contested:
            if owner == key:
                goal.append(address)
            continue
        # A leak that stays keeps its address; a key of the truth holding it
        # does not claim it (else it would be contested), so it drops it.
        if owner not in (None, key) and owner not in truth and owner not in releasing:
            conflicts[address] = (str(owner), key)
        elif family(address) not in families:
            goal.append(address)
    return tuple(goal)


def _hold(
    target: Reconcilable, key: str, goal: Held, conflicts: dict[Any, tuple[str, ...]]
) -> bool:
    """Make ``key`` hold ``goal``; False if something outside the owner table
    (a reservation, a set-aside) refused an address, which goes to ``conflicts``."""
    if not goal or set(target.get(key) or ()) == set(goal):
        return True
    kept = tuple(target.get(key) or ())
    target.release(key)
    try:
        target.occupy(key, goal)
        return True
    except IPAMError:
        pass
    for address in goal:
        if address in kept:
            continue
        try:
            target.occupy(key, (*kept, address))
            kept = (*kept, address)
        except IPAMError:
            conflicts[address] = (key,)
        target.release(key)
    if kept:
        target.occupy(key, kept)
    return False
