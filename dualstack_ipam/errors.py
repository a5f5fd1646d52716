"""The exception tree of dualstack_ipam.

Every error the library raises on purpose derives from :class:`IPAMError`.
Most also derive from :class:`ValueError`, like the standard library's
``ipaddress`` errors, so code that already catches ``ValueError`` keeps
working::

    IPAMError(Exception)
    ├── InvalidConfigError(IPAMError, ValueError)    wrong family mix, too many or
    │   │                                             too few ranges, bad mask size,
    │   │                                             bad flag, bad strategy
    │   └── AddressFormatError(InvalidConfigError)   not an address / network
    ├── NotInRangeError(IPAMError, ValueError)       address/CIDR outside the pool
    │                                                 (including the other family)
    ├── AlreadyAllocatedError(IPAMError, ValueError) address/CIDR already taken
    ├── PoolExhaustedError(IPAMError)                nothing left to hand out
    ├── FamilyNotConfiguredError(IPAMError, ValueError)  asked for a family the
    │                                                 cluster has no range for
    ├── SnapshotError(IPAMError, ValueError)         corrupt or mismatched snapshot
    ├── ServiceValidationError(IPAMError, ValueError) a Service manifest that
    │   │                                             Kubernetes would reject
    │   └── ClusterIPTakenError(ServiceValidationError, AlreadyAllocatedError)
    │                                                 a manifest asks for a
    │                                                 cluster IP already taken
    └── StoreError(IPAMError)                        a durable store is corrupt,
        │                                             foreign or refused a request
        └── StoreUnavailableError(StoreError)        the store could not be reached
                                                      within the retry budget

Messages name the offending input (its ``repr``) and the pool or range
involved; the same values are kept as attributes so callers need not parse
messages. A failed call never changes the pool or allocator it was made on.

>>> from dualstack_ipam import ServiceIPPool, NotInRangeError
>>> pool = ServiceIPPool("10.96.0.0/28")
>>> try:
...     pool.allocate("10.97.0.1")
... except NotInRangeError as exc:
...     print(exc.value, exc.pool_cidr)
10.97.0.1 10.96.0.0/28
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "AddressFormatError",
    "AlreadyAllocatedError",
    "ClusterIPTakenError",
    "FamilyNotConfiguredError",
    "IPAMError",
    "InvalidConfigError",
    "NotInRangeError",
    "PoolExhaustedError",
    "ServiceValidationError",
    "SnapshotError",
    "StoreError",
    "StoreUnavailableError",
]


class IPAMError(Exception):
    """Base class of every error dualstack_ipam raises on purpose."""


class InvalidConfigError(IPAMError, ValueError):
    """A configuration value is wrong: family mix, mask size, flag, strategy.

    Attributes:
        value: the offending value (parsed where parsing succeeded), or None.
    """

    def __init__(self, message: str, *, value: Any = None) -> None:
        super().__init__(message)
        self.value = value


class AddressFormatError(InvalidConfigError):
    """The input is not an address or network of an accepted type or text."""


class NotInRangeError(IPAMError, ValueError):
    """An address or CIDR lies outside the pool (or is of the other family).

    Attributes:
        value: the address or network asked for (canonical where parsed).
        pool_cidr: the pool's range, a ``netaddr.IPNetwork``.
    """

    def __init__(self, message: str, *, value: Any = None, pool_cidr: Any = None) -> None:
        super().__init__(message)
        self.value = value
        self.pool_cidr = pool_cidr


class AlreadyAllocatedError(IPAMError, ValueError):
    """An address or CIDR is already taken.

    Attributes:
        value: the address or network asked for.
        owner: who holds it, where the caller tracks owners, else None.
    """

    def __init__(self, message: str, *, value: Any = None, owner: str | None = None) -> None:
        super().__init__(message)
        self.value = value
        self.owner = owner


class PoolExhaustedError(IPAMError):
    """Nothing is left to hand out.

    Attributes:
        pool_cidr: the full pool's range.
    """

    def __init__(self, message: str, *, pool_cidr: Any = None) -> None:
        super().__init__(message)
        self.pool_cidr = pool_cidr


class FamilyNotConfiguredError(IPAMError, ValueError):
    """A family was asked for that the cluster has no range for.

    Attributes:
        family: the :class:`~dualstack_ipam.IPFamily` asked for.
    """

    def __init__(self, message: str, *, family: Any = None) -> None:
        super().__init__(message)
        self.family = family


class SnapshotError(IPAMError, ValueError):
    """A snapshot is corrupt, truncated, of another kind or version."""


class ServiceValidationError(IPAMError, ValueError):
    """A Service manifest that Kubernetes would reject.

    Attributes:
        field: the Kubernetes field path, with index (``"spec.clusterIPs[1]"``).
        value: the offending value.
    """

    def __init__(self, message: str, *, field: str = "", value: Any = None) -> None:
        super().__init__(message)
        self.field = field
        self.value = value


class ClusterIPTakenError(ServiceValidationError, AlreadyAllocatedError):
    """A Service manifest asks for a cluster IP that another Service holds.

    Both a :class:`ServiceValidationError` (Kubernetes rejects the manifest,
    at ``.field``) and an :class:`AlreadyAllocatedError` (the state refuses
    it: the CLI exits 1, not 2), with ``.field``, ``.value`` and ``.owner``.
    """

    def __init__(self, message: str, *, field: str, value: Any, owner: str | None) -> None:
        super().__init__(message, field=field, value=value)
        self.owner = owner


class StoreError(IPAMError):
    """A durable store failed: corrupt, foreign, or it refused the request.

    Raised by the store layer (:mod:`dualstack_ipam.store`) when a store file
    is not a store of ours or is damaged, or a backend reports a failure that
    is not the caller's input. The store is left as it was.

    Attributes:
        path: the store's file or URL where one is involved, else None.
    """

    def __init__(self, message: str, *, path: Any = None) -> None:
        super().__init__(message)
        self.path = path


class StoreUnavailableError(StoreError):
    """The store could not be reached within the retry budget.

    The outcome of the call is resolved before this is raised: what the call
    asked for either happened completely or not at all, never half.
    """
