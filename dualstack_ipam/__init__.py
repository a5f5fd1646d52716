"""dualstack_ipam: IP address management for dual-stack Kubernetes-style clusters."""

from dualstack_ipam.cluster.config import ClusterConfig
from dualstack_ipam.cluster.egress import MasqueradePolicy, masquerade_config
from dualstack_ipam.cluster.nodes import NodeCIDRAllocator
from dualstack_ipam.durable import Cluster, JournalEntry, open
from dualstack_ipam.errors import (
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
    StoreError,
    StoreUnavailableError,
)
from dualstack_ipam.net import IPFamily
from dualstack_ipam.pools.service_ips import ServiceIPPool
from dualstack_ipam.pools.subnets import SubnetPool
from dualstack_ipam.reconcile import ReconcileReport
from dualstack_ipam.services.allocator import ServiceIPAllocator
from dualstack_ipam.services.loadbalancer import LoadBalancerIPAllocator
from dualstack_ipam.services.read import service_key

__version__ = "0.1.0.dev0"

__all__ = [
    "AddressFormatError",
    "AlreadyAllocatedError",
    "Cluster",
    "ClusterConfig",
    "ClusterIPTakenError",
    "FamilyNotConfiguredError",
    "IPAMError",
    "IPFamily",
    "InvalidConfigError",
    "JournalEntry",
    "LoadBalancerIPAllocator",
    "MasqueradePolicy",
    "NodeCIDRAllocator",
    "NotInRangeError",
    "PoolExhaustedError",
    "ReconcileReport",
    "ServiceIPAllocator",
    "ServiceIPPool",
    "ServiceValidationError",
    "SnapshotError",
    "StoreError",
    "StoreUnavailableError",
    "SubnetPool",
    "__version__",
    "masquerade_config",
    "open",
    "service_key",
]
