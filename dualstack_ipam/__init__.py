"""dualstack_ipam: IP address management for dual-stack Kubernetes-style clusters."""

from ._family import IPFamily
from .config import ClusterConfig
from .egress import MasqueradePolicy, masquerade_config
from .errors import (
    AddressFormatError,
    AlreadyAllocatedError,
    ClusterIPTakenError,
    FamilyNotConfiguredError,
    InvalidConfigError,
    IPAMError,
    NotInRangeError,
    PoolExhaustedError,
    ServiceValidationError,
    SnapshotError,
)
from .nodes import NodeCIDRAllocator
from .service_ips import ServiceIPPool
from .services import ServiceIPAllocator
from .subnets import SubnetPool

__version__ = "0.1.0.dev0"

__all__ = [
    "AddressFormatError",
    "AlreadyAllocatedError",
    "ClusterConfig",
    "ClusterIPTakenError",
    "FamilyNotConfiguredError",
    "IPAMError",
    "IPFamily",
    "InvalidConfigError",
    "MasqueradePolicy",
    "NodeCIDRAllocator",
    "NotInRangeError",
    "PoolExhaustedError",
    "ServiceIPAllocator",
    "ServiceIPPool",
    "ServiceValidationError",
    "SnapshotError",
    "SubnetPool",
    "__version__",
    "masquerade_config",
]
