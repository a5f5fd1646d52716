"""Every public method of the plain allocators is classified on the durable sides.

A method added to ``NodeCIDRAllocator`` or ``ServiceIPAllocator`` later
would be inherited by ``Cluster.nodes`` / ``.services`` unchanged: a
mutation would change the cache and never reach the store. This test fails
until the new method is made durable (``MUTATING``), made to catch up
(``READING``), or shown to read nothing that changes (``FIXED``).
"""

from __future__ import annotations

import pytest

import dualstack_ipam
from dualstack_ipam import ClusterConfig, NodeCIDRAllocator, ServiceIPAllocator
from dualstack_ipam.durable.sides import (
    FIXED,
    MUTATING,
    READING,
    DurableNodes,
    DurableServices,
    _Durable,
)
from dualstack_ipam.errors import InvalidConfigError

DUNDERS = ("__contains__", "__iter__", "__len__")


def public(cls: type) -> set[str]:
    return {n for n in dir(cls) if not n.startswith("_") or n in DUNDERS}


@pytest.mark.parametrize(
    ("plain", "durable", "side"),
    [(NodeCIDRAllocator, DurableNodes, "nodes"), (ServiceIPAllocator, DurableServices, "services")],
)
def test_every_public_method_is_classified(plain: type, durable: type, side: str) -> None:
    names = public(plain)
    unclassified = names - set(MUTATING[side]) - set(READING) - set(FIXED)
    assert unclassified == set(), f"classify {sorted(unclassified)} in durable/sides.py"
    own = set(vars(durable)) | set(vars(_Durable))
    for name in MUTATING[side]:
        assert name in vars(durable), name
    for name in names & set(READING):
        assert name in own, name


def test_services_add_range_refused_for_overlap_changes_nothing() -> None:
    # Growing is durable now (tests/durable/test_durable_ranges.py); a refused
    # call still writes nothing: no range, no journal entry.
    config = ClusterConfig("10.244.0.0/16", "10.96.0.0/24")
    with dualstack_ipam.open("memory://", config) as cluster:
        before = cluster.services.ranges("IPv4")
        with pytest.raises(InvalidConfigError, match=r"10\.96\.0\.128/25"):
            cluster.services.add_range("10.96.0.128/25")
        assert cluster.services.ranges("IPv4") == before
        assert list(cluster.journal()) == []
