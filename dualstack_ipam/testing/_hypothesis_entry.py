"""Hypothesis' entry point: register our strategies for our types.

``pyproject.toml`` declares::

    [project.entry-points.hypothesis]
    _ = "dualstack_ipam.testing._hypothesis_entry:_hypothesis_setup_hook"

so that, once dualstack_ipam is installed, ``st.from_type(ClusterConfig)``
(and ``builds()`` of anything taking one) gives valid configurations, and
likewise for the pools and allocators.

Hypothesis calls the hook while it is itself being imported, for every
program in the environment that imports it. So the hook imports only our
types, and registers functions that import the strategies when a type is
first resolved: a cycle (the strategies import Hypothesis) cannot happen,
and programs that never resolve our types pay almost nothing. It never
raises: an exception here would break ``import hypothesis`` everywhere.
"""

from __future__ import annotations

import warnings
from typing import Any


def _hypothesis_setup_hook() -> None:
    """Register strategies for IPFamily, ClusterConfig, the pools and the allocators."""
    try:
        _register()
    except Exception as exc:  # see the module docstring: never break Hypothesis
        warnings.warn(
            f"dualstack_ipam could not register its Hypothesis strategies: {exc!r}",
            RuntimeWarning,
            stacklevel=2,
        )


def _register() -> None:
    from hypothesis import strategies as st

    from dualstack_ipam.cluster.config import ClusterConfig
    from dualstack_ipam.cluster.nodes import NodeCIDRAllocator
    from dualstack_ipam.net import IPFamily
    from dualstack_ipam.pools.service_ips import ServiceIPPool
    from dualstack_ipam.pools.subnets import SubnetPool
    from dualstack_ipam.services.allocator import ServiceIPAllocator

    names: dict[type[Any], str] = {
        IPFamily: "ip_families",
        ClusterConfig: "cluster_configs",
        SubnetPool: "subnet_pools",
        ServiceIPPool: "service_ip_pools",
        NodeCIDRAllocator: "node_allocators",
        ServiceIPAllocator: "service_ip_allocators",
    }
    for cls, name in names.items():
        st.register_type_strategy(cls, _lazy(name))


def _lazy(name: str) -> Any:
    def resolve(cls: type[Any]) -> Any:
        from . import strategies

        return getattr(strategies, name)()

    resolve.__name__ = resolve.__qualname__ = f"dualstack_ipam_{name}"
    return resolve
