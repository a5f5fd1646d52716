"""The CLI's commands as plain functions: each one returns the text to print.

``dualstack-ipam plan`` is :func:`run_plan`, ``init`` is :func:`run_init`,
``allocate-node`` and ``release-node`` likewise; ``show`` is in
:mod:`dualstack_ipam.cli.show`, the Service commands in
:mod:`dualstack_ipam.cli.service_commands` and ``demo`` in
:mod:`dualstack_ipam.cli.demo`, on the ground laid here: the default cluster,
:class:`CLIError` and :func:`exit_code_for`. :mod:`dualstack_ipam.cli` only
parses the command line and calls them, and re-exports them for scripts.

They raise the library's errors, :class:`~dualstack_ipam.cli.state.StateError`
for an unusable state file, and :class:`CLIError` for input the library
never sees (an unreadable manifest file); :func:`exit_code_for` says how
each ends the program. Names (of nodes, of Services) are checked by the
library alone, so the CLI accepts exactly what the library accepts. Every
stateful command runs in one :func:`~dualstack_ipam.cli.state.transaction`
on its state file, so it is all-or-nothing and queues behind concurrent
runs; it renders its output inside the transaction, so that once the change
is saved only writing the text can fail. The text is an :class:`Output`,
which also says whether the command saved a change (exit 3 if that text
cannot then be written). Nothing here imports click or PyYAML.
"""

from __future__ import annotations

import datetime
import os
from collections.abc import Sequence
from typing import Any, Self

from dualstack_ipam.cli import state as _state
from dualstack_ipam.cli.maps import forecast_options
from dualstack_ipam.cli.render import (
    capacity_json,
    capacity_table,
    describe,
    flags_table,
    node_table,
    to_json,
)
from dualstack_ipam.cluster.config import ClusterConfig
from dualstack_ipam.errors import AlreadyAllocatedError, PoolExhaustedError
from dualstack_ipam.snapshot import write_int

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
    "saved_path",
]

PROG = "dualstack-ipam"

DEFAULT_FLAGS = (
    "--cluster-cidr=10.244.0.0/16,fc00::/24",
    "--service-cluster-ip-range=10.96.0.0/12,fd00:10:96::/112",
    "--node-cidr-mask-size-ipv4=24",
    "--node-cidr-mask-size-ipv6=64",
)
"""The seed's kube-controller-manager flags: the embedded default cluster."""

DEFAULT_CONFIG = ClusterConfig.from_flags(DEFAULT_FLAGS)
"""The cluster of ``demo`` and of a state file created without ``init``."""


class CLIError(Exception):
    """An error the CLI reports on one line, with its exit code.

    Args:
        message: the line (without the program's prefix).
        exit_code: 2 (bad input) unless said otherwise.

    Complexity:
        O(1).

    >>> CLIError("no Service range").exit_code
    2
    """

    def __init__(self, message: str, exit_code: int = 2) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class Output(str):
    """A command's text to print, and the state file it saved a change in.

    A ``str`` (scripts print it as before) with one attribute more:
    ``saved``, the state file's path as given when the command wrote it,
    None when it changed nothing. When the text cannot be written, the
    program exits 3 if ``saved`` is set (the change holds, the output is
    lost), 2 otherwise.

    Args:
        text: what to print.
        saved: the state file written, or None.

    Complexity:
        O(len(text)).

    >>> out = Output("released", saved="state.json")
    >>> print(out), out.saved, Output("plan").saved
    released
    (None, 'state.json', None)
    """

    saved: str | None

    def __new__(cls, text: str, saved: str | None = None) -> Self:
        output = super().__new__(cls, text)
        output.saved = saved
        return output


def saved_path(state: _state.State, path: str) -> str | None:
    """``path`` if the transaction that held ``state`` wrote it, else None.

    Complexity:
        O(1).
    """
    return os.fspath(path) if state.saved else None


def exit_code_for(exc: BaseException) -> int:
    """The exit code for an error: 1 if the current state refused, 2 if the input is bad.

    :class:`PoolExhaustedError` and :class:`AlreadyAllocatedError` are
    refusals by the state; that includes
    :class:`~dualstack_ipam.services.allocator.ClusterIPTakenError`, the
    ``ServiceValidationError`` a manifest gets when it asks for a cluster IP
    another Service holds (it is both). Every other library error, a corrupt
    state file, bad YAML or an unreadable file is bad input.

    Complexity:
        O(1).

    >>> from dualstack_ipam import PoolExhaustedError, InvalidConfigError
    >>> exit_code_for(PoolExhaustedError("full")), exit_code_for(InvalidConfigError("bad"))
    (1, 2)
    """
    if isinstance(exc, CLIError):
        return exc.exit_code
    if isinstance(exc, (PoolExhaustedError, AlreadyAllocatedError)):
        return 1
    return 2


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


def run_init(
    flags: Sequence[str], state_path: str, *, as_json: bool = False, ignore_unknown: bool = False
) -> Output:
    """Create the state file ``state_path`` for the cluster ``flags`` describe.

    A Service range is optional (without one, the Service commands refuse).
    ``ignore_unknown`` as for :func:`run_plan`.

    Raises:
        InvalidConfigError: bad flags (exit 2).
        StateError: the file exists; it is not touched (exit 2).

    Complexity:
        O(len(flags)) plus the pools' construction.

    >>> import os, tempfile
    >>> folder = tempfile.TemporaryDirectory()
    >>> path = os.path.join(folder.name, "state.json")
    >>> print(run_init(["--cluster-cidr=fd00::/48"], path, as_json=True))  # doctest: +ELLIPSIS
    {
      "state": ".../state.json",
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
    if as_json:
        text = to_json({"state": state_path, "config": config.to_dict()})
    else:
        text = "\n".join(
            [
                f"Created {state_path}: {describe(config)}",
                f"Capacity: at most {config.max_nodes} nodes",
                capacity_table(config),
            ]
        )
    _state.create(state_path, config)
    return Output(text, saved=os.fspath(state_path))


# ------------------------------------------------------------------ nodes


def run_allocate_node(name: str, state_path: str, *, as_json: bool = False) -> Output:
    """Give node ``name`` one pod CIDR per family (idempotent), saved in the state file.

    ``name`` is any non-empty string, as for
    :meth:`~dualstack_ipam.NodeCIDRAllocator.allocate`.

    Raises:
        InvalidConfigError: ``name`` is empty (exit 2).
        PoolExhaustedError: a family has no free node CIDR (exit 1).

    Complexity:
        O(size of the state file), plus the wait for its lock.

    >>> import os, tempfile
    >>> folder = tempfile.TemporaryDirectory()
    >>> path = os.path.join(folder.name, "state.json")
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
    with _state.transaction(state_path, DEFAULT_CONFIG) as state:
        cidrs = state.nodes.allocate(name)
        if as_json:
            text = to_json({"node": name, "cidrs": [str(c) for c in cidrs]})
        else:
            text = node_table(state.config, [(name, cidrs)])
    return Output(text, saved=saved_path(state, state_path))


def run_release_node(name: str, state_path: str, *, as_json: bool = False) -> Output:
    """Free node ``name``'s pod CIDRs; a node holding none is a no-op.

    Complexity:
        O(size of the state file), plus the wait for its lock.

    >>> import os, tempfile
    >>> folder = tempfile.TemporaryDirectory()
    >>> path = os.path.join(folder.name, "state.json")
    >>> _ = run_allocate_node("node-1", path)
    >>> print(run_release_node("node-1", path)); print(run_release_node("node-1", path))
    released node 'node-1': 10.244.0.0/24, fc00::/64
    node 'node-1' holds no pod CIDR: nothing released
    >>> folder.cleanup()
    """
    with _state.transaction(state_path, DEFAULT_CONFIG) as state:
        cidrs = state.nodes.get(name) or ()
        released = state.nodes.release(name)
        texts = [str(c) for c in cidrs]
        if as_json:
            text = to_json({"node": name, "released": released, "cidrs": texts})
        elif not released:
            text = f"node {name!r} holds no pod CIDR: nothing released"
        else:
            text = f"released node {name!r}: {', '.join(texts)}"
    return Output(text, saved=saved_path(state, state_path))
