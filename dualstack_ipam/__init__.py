"""dualstack_ipam: IP address management for dual-stack Kubernetes-style clusters."""

from ._family import IPFamily
from .errors import (
    AddressFormatError,
    AlreadyAllocatedError,
    FamilyNotConfiguredError,
    InvalidConfigError,
    IPAMError,
    NotInRangeError,
    PoolExhaustedError,
    ServiceValidationError,
    SnapshotError,
)
from .service_ips import ServiceIPPool
from .subnets import SubnetPool

__version__ = "0.1.0.dev0"

__all__ = [
    "AddressFormatError",
    "AlreadyAllocatedError",
    "FamilyNotConfiguredError",
    "IPAMError",
    "IPFamily",
    "InvalidConfigError",
    "NotInRangeError",
    "PoolExhaustedError",
    "ServiceIPPool",
    "ServiceValidationError",
    "SnapshotError",
    "SubnetPool",
    "__version__",
]
