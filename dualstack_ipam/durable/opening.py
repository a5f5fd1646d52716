"""Opening a durable cluster: ``dualstack_ipam.open`` and :func:`attach`.

The store's ``config`` record is written once, at creation: the
:class:`~dualstack_ipam.ClusterConfig`, the strategies and the cooldown, with
the record format. Opening an existing store checks what the caller passes
against it, and every argument is checked before anything is created or
written.

>>> from dualstack_ipam import ClusterConfig
>>> with open("memory://", ClusterConfig("10.0.0.0/16"), node_strategy="lowest") as cluster:
...     cluster.settings["node_strategy"]
'lowest'
"""

from __future__ import annotations

import getpass
import json
import math
import os
import socket
from collections.abc import Callable
from random import Random
from typing import TYPE_CHECKING, Any

from dualstack_ipam.cluster.config import ClusterConfig
from dualstack_ipam.cluster.nodes import NodeCIDRAllocator
from dualstack_ipam.durable.layout import CONFIG_KEY
from dualstack_ipam.durable.urls import open_backend
from dualstack_ipam.errors import InvalidConfigError, IPAMError, StoreError
from dualstack_ipam.services.allocator import ServiceIPAllocator
from dualstack_ipam.store import Backend, Compare, Put

if TYPE_CHECKING:
    from dualstack_ipam.durable.cluster import Cluster

__all__ = ["DEFAULT_SETTINGS", "FORMAT", "attach", "default_actor", "open"]

FORMAT = 1
"""The version of the records' layout (``docs/keeping-state.md``)."""

DEFAULT_SETTINGS = {"node_strategy": "next-fit", "service_strategy": "random", "cooldown": 0}
"""The settings a new store gets for those not given."""


def default_actor() -> str:
    """``user@host:pid`` of this process (the journal's default actor).

    Complexity:
        O(1).

    >>> default_actor().endswith(f":{os.getpid()}")
    True
    """
    try:
        user = getpass.getuser()
    except (OSError, KeyError):  # no login name (a container's bare uid)
        user = str(os.getuid()) if hasattr(os, "getuid") else "unknown"
    return f"{user}@{socket.gethostname()}:{os.getpid()}"


def _settings(node_strategy: Any, service_strategy: Any, cooldown: Any) -> dict[str, Any]:
    """The creation settings given (None = not given), checked."""
    given: dict[str, Any] = {}
    for name, value in (("node_strategy", node_strategy), ("service_strategy", service_strategy)):
        if value is not None:
            if not isinstance(value, str):
                raise InvalidConfigError(f"{name} must be a str, got {value!r}", value=value)
            given[name] = value
    if cooldown is not None:
        if isinstance(cooldown, bool) or not isinstance(cooldown, (int, float)) or cooldown < 0:
            raise InvalidConfigError(
                f"cooldown must be a number of seconds >= 0, got {cooldown!r}", value=cooldown
            )
        if not math.isfinite(cooldown):
            raise InvalidConfigError(
                f"cooldown must be a finite number of seconds, got {cooldown!r}", value=cooldown
            )
        given["cooldown"] = cooldown
    return given


def _read_settings(value: bytes, where: str) -> dict[str, Any]:
    try:
        data = json.loads(value)
        version = data["format"]
    except (ValueError, TypeError, KeyError):
        raise StoreError(f"the store {where} has a corrupt config record: {value!r:.80}") from None
    if type(version) is not int or version > FORMAT:
        raise InvalidConfigError(
            f"the store {where} has record format {version!r}, newer than this version of "
            f"dualstack_ipam reads ({FORMAT}); upgrade dualstack_ipam",
            value=version,
        )
    try:
        config = ClusterConfig.from_dict(data["config"])
        settings = {name: data[name] for name in DEFAULT_SETTINGS}
    except (IPAMError, KeyError, TypeError):
        raise StoreError(f"the store {where} has a corrupt config record: {value!r:.80}") from None
    return {"config": config, **settings}


def _create(backend: Backend, config: ClusterConfig, given: dict[str, Any]) -> None:
    settings = {**DEFAULT_SETTINGS, **given}
    # Validate the strategies before anything is written.
    NodeCIDRAllocator(config, strategy=settings["node_strategy"])
    if config.service_families:
        ServiceIPAllocator(config, strategy=settings["service_strategy"])
    value = json.dumps({"format": FORMAT, "config": config.to_dict(), **settings}).encode()
    backend.txn([Compare(CONFIG_KEY, 0)], [Put(CONFIG_KEY, value)])


def open(  # the name follows shelve.open / dbm.open (api-durable.md)
    url: str,
    config: ClusterConfig | None = None,
    *,
    actor: str | None = None,
    rng: Random | None = None,
    node_strategy: str | None = None,
    service_strategy: str | None = None,
    cooldown: float | None = None,
    clock: Callable[[], float] | None = None,
) -> Cluster:
    """Open (or create) the durable cluster stored at ``url``.

    Args:
        url: ``memory://`` (a new store each call), ``sqlite:///abs/path.db``
            or ``sqlite:relative/path.db`` (optional ``?synchronous=NORMAL``,
            ``?busy_timeout_ms=N``); ``etcd://`` arrives with issue 10.
        config: needed to create a store; else checked against the stored one.
        actor: who the journal says mutates (default ``user@host:pid``).
        rng: seeds this process's random picks of Service IPs.
        node_strategy: ``"next-fit"`` (default at creation) or ``"lowest"``.
        service_strategy: ``"random"`` (default at creation) or ``"sequential"``.
        cooldown: the release cooldown in seconds (0 at creation if not
            given): a released address or CIDR is not handed out again by a
            dynamic pick, by any process, before it passes. Each release
            stores its time, read from ``clock``.
        clock: seconds since the epoch, for the release times (default
            ``time.time``; every process on one store must share a clock,
            as they share the wall clock).

    Returns:
        The :class:`Cluster`; close it (or use ``with``).

    Raises:
        InvalidConfigError: a malformed URL, no ``config`` for a new store,
            a ``config``, strategy or cooldown unlike the stored one, a bad
            setting, or a store of a newer format (nothing is written).
        StoreError: a file that is not our store, or a corrupt one.

    Complexity:
        O(1) store reads: the sides are read at their first use.

    >>> import dualstack_ipam
    >>> dualstack_ipam.open("memory://")
    Traceback (most recent call last):
    ...
    dualstack_ipam.errors.InvalidConfigError: the store 'memory://' is empty: creating it \
needs a config
    """
    _check_arguments(config, actor, rng, clock)  # before the file is created
    _settings(node_strategy, service_strategy, cooldown)
    return attach(
        open_backend(url),
        url,
        config,
        actor=actor,
        rng=rng,
        node_strategy=node_strategy,
        service_strategy=service_strategy,
        cooldown=cooldown,
        clock=clock,
    )


def _check_arguments(config: Any, actor: Any, rng: Any, clock: Any = None) -> None:
    if config is not None and not isinstance(config, ClusterConfig):
        raise InvalidConfigError(f"config must be a ClusterConfig, got {config!r}", value=config)
    if actor is not None and (not isinstance(actor, str) or not actor):
        raise InvalidConfigError(f"actor must be a non-empty str, got {actor!r}", value=actor)
    if rng is not None and not isinstance(rng, Random):
        raise InvalidConfigError(f"rng must be a random.Random, got {rng!r}", value=rng)
    if clock is not None and not callable(clock):
        raise InvalidConfigError(f"clock must be a callable, got {clock!r}", value=clock)


def attach(
    backend: Backend,
    url: str,
    config: ClusterConfig | None = None,
    *,
    actor: str | None = None,
    rng: Random | None = None,
    node_strategy: str | None = None,
    service_strategy: str | None = None,
    cooldown: float | None = None,
    clock: Callable[[], float] | None = None,
) -> Cluster:
    """:func:`open` on a backend already opened (``url`` only names it in messages).

    The backend is closed if this raises; else the cluster owns it.

    Raises:
        As :func:`open`.

    Complexity:
        O(1) store reads.

    >>> from dualstack_ipam import ClusterConfig
    >>> from dualstack_ipam.store import ETCD_DEFAULT_LIMITS, MemoryBackend
    >>> backend = MemoryBackend(limits=ETCD_DEFAULT_LIMITS)
    >>> attach(backend, "memory://", ClusterConfig("10.0.0.0/16")).nodes.allocate("a")
    (IPNetwork('10.0.0.0/24'),)
    """
    try:
        _check_arguments(config, actor, rng, clock)
        given = _settings(node_strategy, service_strategy, cooldown)
        record = backend.get(CONFIG_KEY)
        if record is None:
            if config is None:
                raise InvalidConfigError(
                    f"the store {url!r} is empty: creating it needs a config", value=url
                )
            _create(backend, config, given)
            record = backend.get(CONFIG_KEY)
            assert record is not None
        stored = _read_settings(record.value, repr(url))
        wanted = {**given, "config": config} if config is not None else given
        for name, value in wanted.items():
            if value != stored[name]:
                raise InvalidConfigError(
                    f"the store {url!r} was created with {name}={stored[name]!r}, "
                    f"not {value!r}; leave it out to use the stored one",
                    value=value,
                )
        if config is not None:
            stored["config"] = config  # equal; the caller's own object reads as theirs
        stored["clock"] = clock  # this process's, not stored
    except BaseException:
        backend.close()
        raise
    from dualstack_ipam.durable.cluster import Cluster  # it imports this module

    return Cluster(backend, stored, actor=actor or default_actor(), rng=rng, url=url)
