"""The CLI's commands as plain functions: each one returns the text to print.

``dualstack-ipam plan`` is :func:`run_plan`, ``init`` is :func:`run_init`,
``allocate-node`` and ``release-node`` likewise; ``show`` is in
:mod:`dualstack_ipam.cli.show`, the Service commands in
:mod:`dualstack_ipam.cli.service_commands`, ``export``, ``import``, ``log``
and ``migrate`` in :mod:`dualstack_ipam.cli.store_commands` and ``demo`` in
:mod:`dualstack_ipam.cli.demo`, on the ground of :mod:`dualstack_ipam.cli.ground`
(the default cluster, :class:`CLIError`, :class:`Output`,
:func:`exit_code_for`, re-exported here). :mod:`dualstack_ipam.cli` only
parses the command line and calls them, and re-exports them for scripts.

They raise the library's errors and :class:`CLIError` for input the library
never sees (an unreadable manifest file); :func:`exit_code_for` says how
each ends the program. Names (of nodes, of Services) are checked by the
library alone, so the CLI accepts exactly what the library accepts. Every
stateful command works on a durable :class:`~dualstack_ipam.durable.Cluster`
(:mod:`dualstack_ipam.cli.store` opens it): each change is one store
transaction, durable when the call returns, and concurrent runs never hand
out one address twice. The text is an :class:`Output`, which also says
whether the command saved a change (exit 3 if that text cannot then be
written). Nothing here imports click or PyYAML.
"""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from dualstack_ipam.cli.ground import (
    DEFAULT_CONFIG,
    DEFAULT_FLAGS,
    PROG,
    CLIError,
    Output,
    exit_code_for,
)
from dualstack_ipam.cli.maps import forecast_options
from dualstack_ipam.cli.render import (
    capacity_json,
    capacity_table,
    describe,
    flags_table,
    node_table,
    to_json,
)
from dualstack_ipam.cli.store import Target, exists, on_store, target
from dualstack_ipam.cluster.config import ClusterConfig
from dualstack_ipam.snapshot import write_int

if TYPE_CHECKING:
    from dualstack_ipam.durable import Cluster

__all__ = [
    "DEFAULT_CONFIG",
    "DEFAULT_FLAGS",
    "PROG",
    "CLIError",
    "Output",
    "exit_code_for",
    "run_allocate_node",
    "run_init",
    "run_plan",
    "run_release_node",
    "saved_if",
]

# ------------------------------------------------------------------ cluster


def run_plan(
    flags: Sequence[str],
    *,
    as_json: bool = False,
    feature_gate: bool = False,
    ignore_unknown: bool = False,
    nodes_per_day: str | None = None,
    services_per_day: str | None = None,
    now: datetime.date | None = None,
) -> Output:
    """Validate kube-controller-manager style flags; capacity and component flags.

    ``feature_gate`` adds ``--feature-gates=IPv6DualStack=true`` to every
    component (Kubernetes 1.16-1.22, as the seed shows). ``ignore_unknown``
    skips the flags the library does not read, so that a whole
    kube-controller-manager command line can be planned (see
    :meth:`~dualstack_ipam.ClusterConfig.from_flags`). ``nodes_per_day`` or
    ``services_per_day`` (the options' text, see
    :func:`~dualstack_ipam.cli.maps.parse_rate`; an absent one is 0) add the
    exhaustion forecast of the empty cluster, counted from ``now`` (today
    by default): a table after the plan, or a ``"forecast"`` key in JSON.

    Raises:
        InvalidConfigError: the flags or a rate do not validate (exit 2).
        FamilyNotConfiguredError: a Service rate for a family without a
            Service range (exit 2).

    Complexity:
        O(len(flags)).

    >>> print(run_plan(["--cluster-cidr=10.0.0.0/16", "--node-cidr-mask-size=20"]))
    ... # doctest: +NORMALIZE_WHITESPACE
    Cluster: single-stack cluster 10.0.0.0/16 (Service ranges: none), primary family IPv4
    Capacity: at most 16 nodes
    FAMILY  CLUSTER CIDR  NODE MASK  NODES  ADDRESSES/NODE  SERVICE RANGE  SERVICE IPS
    IPv4    10.0.0.0/16   /20           16            4096  -                        0
    <BLANKLINE>
    COMPONENT                FLAGS
    kube-controller-manager  --allocate-node-cidrs=true
                             --cluster-cidr=10.0.0.0/16
                             --node-cidr-mask-size=20
    kube-apiserver           (none)
    kubelet                  (none)
    kube-proxy               --proxy-mode=ipvs
                             --cluster-cidr=10.0.0.0/16
    """
    config = ClusterConfig.from_flags(list(flags), ignore_unknown=ignore_unknown)
    component_flags = config.component_flags(feature_gate=feature_gate)
    outlook = None
    if nodes_per_day is not None or services_per_day is not None:
        outlook = forecast_options(config, nodes_per_day or "0", services_per_day or "0", now=now)
    if as_json:
        data: dict[str, Any] = {
            "config": config.to_dict(),
            "max_nodes": write_int(config.max_nodes),
            "families": capacity_json(config),
            "component_flags": component_flags,
        }
        if outlook is not None:
            data["forecast"] = outlook.to_dict()
        return Output(to_json(data))
    lines = [
        f"Cluster: {describe(config)}",
        f"Capacity: at most {config.max_nodes} nodes",
        capacity_table(config),
        "",
        flags_table(component_flags),
    ]
    if outlook is not None:
        lines += ["", str(outlook)]
    return Output("\n".join(lines))


def saved_if(where: Target, changed: bool) -> str | None:
    """How :class:`Output` names the store: ``where.shown`` if ``changed``, else None.

    Complexity:
        O(1).

    >>> saved_if(target(None, "memory://"), True), saved_if(target(None, "memory://"), False)
    ('memory://', None)
    """
    return where.shown if changed else None


def run_init(
    flags: Sequence[str],
    state_path: str | None = None,
    *,
    store_url: str | None = None,
    as_json: bool = False,
    ignore_unknown: bool = False,
) -> Output:
    """Create the store (``--state`` file or ``--store`` URL) for the cluster ``flags`` describe.

    A Service range is optional (without one, the Service commands refuse).
    ``ignore_unknown`` as for :func:`run_plan`.

    Raises:
        InvalidConfigError: bad flags, or a bad store path (exit 2).
        CLIError: the store exists (it is not touched), or the old JSON
            state file lies beside it (exit 2).

    Complexity:
        O(len(flags)) plus creating the store.

    >>> import os, tempfile
    >>> folder = tempfile.TemporaryDirectory()
    >>> path = os.path.join(folder.name, "ipam.db")
    >>> print(run_init(["--cluster-cidr=fd00::/48"], path, as_json=True))  # doctest: +ELLIPSIS
    {
      "state": ".../ipam.db",
      "config": {
        "cluster_cidrs": [
          "fd00::/48"
        ],
    ...
    >>> print(run_allocate_node("node-1", path))
    NODE    IPv6 POD CIDR
    node-1  fd00::/64
    >>> folder.cleanup()
    """
    config = ClusterConfig.from_flags(list(flags), ignore_unknown=ignore_unknown)
    where = target(state_path, store_url)
    if exists(where):
        raise CLIError(
            f"store {where.shown!r} already exists; refusing to overwrite it "
            "(remove it first to start over)"
        )
    if as_json:
        text = to_json({"state": where.shown, "config": config.to_dict()})
    else:
        text = "\n".join(
            [
                f"Created {where.shown}: {describe(config)}",
                f"Capacity: at most {config.max_nodes} nodes",
                capacity_table(config),
            ]
        )
    on_store(where, lambda cluster: (None, True), create=config)
    return Output(text, saved=where.shown)


# ------------------------------------------------------------------ nodes


def run_allocate_node(
    name: str,
    state_path: str | None = None,
    *,
    store_url: str | None = None,
    as_json: bool = False,
) -> Output:
    """Give node ``name`` one pod CIDR per family (idempotent), in one store transaction.

    ``name`` is any non-empty string, as for
    :meth:`~dualstack_ipam.NodeCIDRAllocator.allocate`.

    Raises:
        InvalidConfigError: ``name`` is empty (exit 2).
        PoolExhaustedError: a family has no free node CIDR (exit 1).
        StoreUnavailableError: the store stayed locked (exit 5).

    Complexity:
        O(1) store records read and written, plus opening the store.

    >>> import os, tempfile
    >>> folder = tempfile.TemporaryDirectory()
    >>> path = os.path.join(folder.name, "ipam.db")
    >>> print(run_allocate_node("node-1", path, as_json=True))
    {
      "node": "node-1",
      "cidrs": [
        "10.244.0.0/24",
        "fc00::/64"
      ]
    }
    >>> folder.cleanup()
    """
    where = target(state_path, store_url)

    def act(cluster: Cluster) -> tuple[str, bool]:
        before = cluster.nodes.get(name)
        cidrs = cluster.nodes.allocate(name)
        if as_json:
            return to_json({"node": name, "cidrs": [str(c) for c in cidrs]}), before is None
        return node_table(cluster.config, [(name, cidrs)]), before is None

    text, changed = on_store(where, act)
    return Output(text, saved=saved_if(where, changed))


def run_release_node(
    name: str,
    state_path: str | None = None,
    *,
    store_url: str | None = None,
    as_json: bool = False,
) -> Output:
    """Free node ``name``'s pod CIDRs; a node holding none is a no-op.

    Raises:
        StoreUnavailableError: the store stayed locked (exit 5).

    Complexity:
        O(1) store records read and written, plus opening the store.

    >>> import os, tempfile
    >>> folder = tempfile.TemporaryDirectory()
    >>> path = os.path.join(folder.name, "ipam.db")
    >>> _ = run_allocate_node("node-1", path)
    >>> print(run_release_node("node-1", path)); print(run_release_node("node-1", path))
    released node 'node-1': 10.244.0.0/24, fc00::/64
    node 'node-1' holds no pod CIDR: nothing released
    >>> folder.cleanup()
    """
    where = target(state_path, store_url)

    def act(cluster: Cluster) -> tuple[str, bool]:
        cidrs = cluster.nodes.get(name) or ()
        released = cluster.nodes.release(name)
        texts = [str(c) for c in cidrs]
        if as_json:
            text = to_json({"node": name, "released": released, "cidrs": texts})
        elif not released:
            text = f"node {name!r} holds no pod CIDR: nothing released"
        else:
            text = f"released node {name!r}: {', '.join(texts)}"
        return text, released

    text, changed = on_store(where, act)
    return Output(text, saved=saved_if(where, changed))
