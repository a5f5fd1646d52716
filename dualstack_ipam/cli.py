"""The ``dualstack-ipam`` command line (also ``python -m dualstack_ipam``).

Usage (see ``docs/cli.md`` for every command, flag and exit code)::

    dualstack-ipam demo                      # the seed's scenario, on the default cluster
    dualstack-ipam plan --cluster-cidr=10.244.0.0/16,fc00::/24 \\
        --service-cluster-ip-range=10.96.0.0/12,fd00:10:96::/112 [--json]
    dualstack-ipam init FLAGS... [--state FILE]
    dualstack-ipam allocate-node NAME [--state FILE] [--json]
    dualstack-ipam release-node NAME
    dualstack-ipam allocate-service -f service.yaml     # "-f -" reads stdin
    dualstack-ipam release-service -f service.yaml | NAMESPACE/NAME
    dualstack-ipam show [--json]

Exit codes: 0 done; 1 refused by the current state (a range exhausted, an
address or CIDR taken, a manifest asking for a taken cluster IP); 2 bad
input (flags, manifests, a corrupt or unreadable state file, a Service
command on a cluster without a Service range). Errors are one line on
stderr, ``dualstack-ipam: error: ...``, never a traceback.

The library never imports click or PyYAML: this module imports them only
when :func:`main` (or :func:`build_cli`) runs, and without them ``main``
says which extra to install and exits 2. The commands themselves are plain
functions (``run_plan``, ``run_allocate_node``, ...) that return the text
to print; click only parses the command line.

>>> code = main(["plan", "--cluster-cidr=10.0.0.0/16", "--node-cidr-mask-size=20", "--json"])
... # doctest: +ELLIPSIS
{
  "config": {...},
  "max_nodes": 16,
  "families": {
    "IPv4": {
      "nodes": 16,
      "addresses_per_node": 4096,
      "service_ips": 0
    }
  },
  "component_flags": {...}
}
>>> code
0
"""

from __future__ import annotations

import io
import json
import random
import re
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from . import _manifest, _state
from ._family import IPFamily
from .config import ClusterConfig
from .errors import AlreadyAllocatedError, IPAMError, PoolExhaustedError
from .nodes import NodeCIDRAllocator
from .service_ips import ServiceIPPool
from .services import ServiceIPAllocator
from .snapshot import write_int

if TYPE_CHECKING:
    import click

__all__ = [
    "DEFAULT_CONFIG",
    "DEFAULT_FLAGS",
    "PROG",
    "CLIError",
    "build_cli",
    "exit_code_for",
    "format_table",
    "main",
    "parse_manifests",
    "run_allocate_node",
    "run_allocate_service",
    "run_demo",
    "run_init",
    "run_plan",
    "run_release_node",
    "run_release_service",
    "run_show",
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

DEMO_NODES = ("node-1", "node-2", "node-3")
DEMO_SEED = 16
"""Seed of the demo's Service IP rng: the demo prints the same on every run."""

# The seed page's three Service manifests, verbatim but for their names (the
# page calls all three my-service, which one namespace cannot hold).
SEED_SERVICES = """\
apiVersion: v1
kind: Service
metadata:
  name: my-service
spec:
  selector:
    app: MyApp
  ports:
    - protocol: TCP
      port: 80
      targetPort: 9376
---
apiVersion: v1
kind: Service
metadata:
  name: my-service-ipv6
spec:
  ipFamily: IPv6
  selector:
    app: MyApp
  ports:
    - protocol: TCP
      port: 80
      targetPort: 9376
---
apiVersion: v1
kind: Service
metadata:
  name: my-service-ipv4
spec:
  ipFamily: IPv4
  selector:
    app: MyApp
  ports:
    - protocol: TCP
      port: 80
      targetPort: 9376
"""

# Kubernetes node names are DNS-1123 subdomains.
_NODE_NAME = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_INTERNAL_ERROR = 70  # EX_SOFTWARE: a bug, not the user's input


class CLIError(Exception):
    """An error the CLI reports on one line, with its exit code.

    >>> CLIError("no Service range").exit_code
    2
    """

    def __init__(self, message: str, exit_code: int = 2) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def exit_code_for(exc: BaseException) -> int:
    """The exit code for an error: 1 if the current state refused, 2 if the input is bad.

    :class:`PoolExhaustedError` and :class:`AlreadyAllocatedError` are
    refusals by the state; that includes
    :class:`~dualstack_ipam.services.ClusterIPTakenError`, the
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


# ------------------------------------------------------------------ output


def format_table(headers: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    """An aligned plain-text table: columns two spaces apart, numbers right-aligned.

    ``None`` cells print as ``-``. A column is right-aligned when every cell
    below the header is an int.

    Complexity:
        O(cells).

    >>> print(format_table(["NODE", "PODS"], [["a", 256], ["node-b", 16]]))
    NODE    PODS
    a        256
    node-b    16
    """
    body = [list(row) for row in rows]
    text = [list(headers)] + [["-" if cell is None else str(cell) for cell in row] for row in body]
    widths = [max(len(line[i]) for line in text) for i in range(len(headers))]
    numeric = [
        bool(body) and all(isinstance(row[i], int) and not isinstance(row[i], bool) for row in body)
        for i in range(len(headers))
    ]
    lines = []
    for line in text:
        cells = [
            cell.rjust(width) if right else cell.ljust(width)
            for cell, width, right in zip(line, widths, numeric, strict=True)
        ]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def _json(data: Any) -> str:
    return json.dumps(data, indent=2)


def _families(config: ClusterConfig) -> list[IPFamily]:
    """Cluster families, then a Service family the cluster CIDRs lack (rare)."""
    extra = [f for f in config.service_families if f not in config.families]
    return [*config.families, *extra]


def _service_capacity(config: ClusterConfig, family: IPFamily) -> int:
    if family not in config.service_families:
        return 0
    return int(ServiceIPPool(config.service_cidr(family)).capacity)


def _describe(config: ClusterConfig) -> str:
    stack = "dual-stack" if config.is_dual_stack else "single-stack"
    services = ",".join(map(str, config.service_cidrs)) or "none"
    return (
        f"{stack} cluster {','.join(map(str, config.cluster_cidrs))} "
        f"(Service ranges: {services}), primary family {config.primary_family}"
    )


def _capacity_table(config: ClusterConfig) -> str:
    rows = []
    for family in _families(config):
        has_pods = family in config.families
        mask = config.node_mask(family) if has_pods else None
        rows.append(
            [
                str(family),
                str(config.cluster_cidr(family)) if has_pods else None,
                f"/{mask}" if mask is not None else None,
                config.node_capacity(family) if has_pods else 0,
                2 ** (family.width - mask) if mask is not None else None,
                str(config.service_cidr(family)) if family in config.service_families else None,
                _service_capacity(config, family),
            ]
        )
    return format_table(
        [
            "FAMILY",
            "CLUSTER CIDR",
            "NODE MASK",
            "NODES",
            "ADDRESSES/NODE",
            "SERVICE RANGE",
            "SERVICE IPS",
        ],
        rows,
    )


def _flags_table(flags: Mapping[str, list[str]]) -> str:
    rows: list[list[object]] = []
    for component, values in flags.items():
        for i, flag in enumerate(values or ["(none)"]):
            rows.append([component if i == 0 else "", flag])
    return format_table(["COMPONENT", "FLAGS"], rows)


def _node_table(config: ClusterConfig, items: Iterable[tuple[str, Sequence[Any]]]) -> str:
    rows = []
    for node, cidrs in items:
        by_family = {IPFamily.IPv4 if c.version == 4 else IPFamily.IPv6: str(c) for c in cidrs}
        rows.append([node, *(by_family.get(f) for f in config.families)])
    return format_table(["NODE", *(f"{f} POD CIDR" for f in config.families)], rows)


# ------------------------------------------------------------------ manifests


def parse_manifests(text: str, source: str) -> list[Any]:
    """The Service manifests in ``text``: YAML documents, or JSON.

    JSON may be one object or a list of objects; YAML may hold several
    documents (``---``). A ``kind: List`` document (what ``kubectl get -o
    yaml`` prints) stands for its ``items``. Empty documents are skipped.

    Complexity:
        O(len(text)).

    Raises:
        CLIError: the text is neither valid JSON nor valid YAML (exit 2).

    >>> [m["metadata"]["name"] for m in parse_manifests(SEED_SERVICES, "seed")]
    ['my-service', 'my-service-ipv6', 'my-service-ipv4']
    >>> parse_manifests('[{"metadata": {"name": "a"}}]', "-")
    [{'metadata': {'name': 'a'}}]
    """
    import yaml

    docs: list[Any] | None = None
    if text.lstrip().startswith(("{", "[")):
        try:
            data = json.loads(text)
        except ValueError:
            docs = None  # flow-style YAML starts the same way: let YAML decide
        else:
            docs = data if isinstance(data, list) else [data]
    if docs is None:
        stream = io.StringIO(text)
        stream.name = source  # YAML errors quote the stream's name
        try:
            docs = list(yaml.safe_load_all(stream))
        except yaml.YAMLError as exc:
            raise CLIError(f"{source}: not valid YAML or JSON: {exc}") from None
    manifests: list[Any] = []
    for doc in docs:
        if isinstance(doc, Mapping) and doc.get("kind") == "List":
            items = doc.get("items")
            manifests.extend(items if isinstance(items, list) else [items])
        elif doc is not None:
            manifests.append(doc)
    return manifests


def _read_source(source: str) -> str:
    try:
        if source == "-":
            return sys.stdin.read()
        with open(source, encoding="utf-8") as file:
            return file.read()
    except UnicodeDecodeError as exc:
        raise CLIError(f"{source}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None


def _load_manifests(sources: Sequence[str]) -> list[tuple[str, Any]]:
    """(label, manifest) for every document of every source, in order."""
    found: list[tuple[str, Any]] = []
    for source in sources:
        name = "stdin" if source == "-" else source
        docs = parse_manifests(_read_source(source), name)
        found.extend((f"{name} document {i}", doc) for i, doc in enumerate(docs, 1))
    if not found:
        raise CLIError(f"no Service manifest in {', '.join(sources)}")
    return found


def _require_services(state: _state.State, path: str) -> ServiceIPAllocator:
    if state.services is None:
        raise CLIError(
            f"the cluster in {path!r} has no Service range (--service-cluster-ip-range): "
            "no Service command can run on it; create the state with "
            f"'{PROG} init --cluster-cidr=... --service-cluster-ip-range=...'"
        )
    return state.services


def _summary(manifest: Mapping[str, Any]) -> str:
    spec = manifest.get("spec") or {}
    if spec.get("type") == "ExternalName":
        return "ExternalName: no cluster IP"
    ips = spec.get("clusterIPs") or []
    if ips == ["None"]:
        return "headless: no cluster IP"
    families = spec.get("ipFamilies") or []
    return ", ".join(f"{ip} ({family})" for ip, family in zip(ips, families, strict=False))


def _manifests_yaml(manifests: Sequence[Mapping[str, Any]]) -> str:
    import yaml

    parts = []
    for manifest in manifests:
        key = _manifest.service_key(manifest)
        body = yaml.safe_dump(dict(manifest), sort_keys=False, default_flow_style=False)
        parts.append(f"# {key}: {_summary(manifest)}\n{body}")
    return "---\n".join(parts).rstrip("\n")


# ------------------------------------------------------------------ commands


def run_demo(*, as_json: bool = False) -> str:
    """The seed's scenario on the default cluster; returns what to print.

    Three nodes get a pod CIDR per family, then the seed's three Service
    manifests (renamed ``my-service``, ``my-service-ipv6``,
    ``my-service-ipv4``) get their cluster IPs. The Service rng is seeded
    (:data:`DEMO_SEED`), so every run prints the same.

    Complexity:
        O(1).

    >>> print(run_demo())  # doctest: +ELLIPSIS
    Cluster: dual-stack cluster 10.244.0.0/16,fc00::/24 ...
    ...
    node-1  10.244.0.0/24  fc00::/64
    ...
    default/my-service-ipv6  IPv6           IPv6        SingleStack     fd00:10:96::...
    ...
    """
    config = DEFAULT_CONFIG
    nodes = NodeCIDRAllocator(config)
    services = ServiceIPAllocator(config, rng=random.Random(DEMO_SEED))
    for node in DEMO_NODES:
        nodes.allocate(node)
    results = [
        services.allocate_service(manifest)
        for manifest in parse_manifests(SEED_SERVICES, "the seed")
    ]
    if as_json:
        return _json(
            {
                "config": config.to_dict(),
                "component_flags": config.component_flags(),
                "nodes": {node: [str(c) for c in cidrs] for node, cidrs in nodes.items()},
                "services": results,
            }
        )
    rows = []
    for svc in results:
        spec = svc["spec"]
        rows.append(
            [
                _manifest.service_key(svc),
                spec.get("ipFamily"),
                ",".join(spec["ipFamilies"]),
                spec["ipFamilyPolicy"],
                ",".join(spec["clusterIPs"]),
            ]
        )
    flags = config.component_flags()["kube-controller-manager"]
    return "\n".join(
        [
            f"Cluster: {_describe(config)}",
            "kube-controller-manager flags (the seed's):",
            *(f"  {flag}" for flag in flags),
            "",
            "Nodes: one pod CIDR per family",
            _node_table(config, nodes.items()),
            "",
            "Services: the seed's three manifests (spec.ipFamily unset, IPv6, IPv4)",
            format_table(
                ["SERVICE", "spec.ipFamily", "ipFamilies", "ipFamilyPolicy", "CLUSTER IPS"], rows
            ),
        ]
    )


def run_plan(flags: Sequence[str], *, as_json: bool = False, feature_gate: bool = False) -> str:
    """Validate kube-controller-manager style flags; capacity and component flags.

    ``feature_gate`` adds ``--feature-gates=IPv6DualStack=true`` to every
    component (Kubernetes 1.16-1.22, as the seed shows).

    Complexity:
        O(len(flags)), plus building a Service pool per range to count it.

    Raises:
        InvalidConfigError: the flags do not validate (exit 2).

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
    config = ClusterConfig.from_flags(list(flags))
    component_flags = config.component_flags(feature_gate=feature_gate)
    if as_json:
        families = {}
        for family in _families(config):
            has_pods = family in config.families
            families[str(family)] = {
                "nodes": write_int(config.node_capacity(family) if has_pods else 0),
                "addresses_per_node": (
                    write_int(2 ** (family.width - config.node_mask(family))) if has_pods else None
                ),
                "service_ips": write_int(_service_capacity(config, family)),
            }
        return _json(
            {
                "config": config.to_dict(),
                "max_nodes": write_int(config.max_nodes),
                "families": families,
                "component_flags": component_flags,
            }
        )
    return "\n".join(
        [
            f"Cluster: {_describe(config)}",
            f"Capacity: at most {config.max_nodes} nodes",
            _capacity_table(config),
            "",
            _flags_table(component_flags),
        ]
    )


def run_init(flags: Sequence[str], state_path: str, *, as_json: bool = False) -> str:
    """Create the state file ``state_path`` for the cluster ``flags`` describe.

    A Service range is optional (without one, the Service commands refuse).

    Complexity:
        O(len(flags)) plus the pools' construction.

    Raises:
        InvalidConfigError: bad flags (exit 2).
        StateError: the file exists; it is not touched (exit 2).

    >>> import os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "state.json")
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
    """
    config = ClusterConfig.from_flags(list(flags))
    _state.create(state_path, config)
    if as_json:
        return _json({"state": state_path, "config": config.to_dict()})
    return "\n".join(
        [
            f"Created {state_path}: {_describe(config)}",
            f"Capacity: at most {config.max_nodes} nodes",
            _capacity_table(config),
        ]
    )


def _check_node_name(name: str) -> str:
    if len(name) > 253 or not _NODE_NAME.fullmatch(name):
        raise CLIError(
            f"invalid node name {name!r}: a Kubernetes node name is a DNS-1123 subdomain "
            "(lower-case letters, digits, '-' and '.', at most 253 characters)"
        )
    return name


def run_allocate_node(name: str, state_path: str, *, as_json: bool = False) -> str:
    """Give node ``name`` one pod CIDR per family (idempotent), saved in the state file.

    Complexity:
        O(size of the state file), plus the wait for its lock.

    Raises:
        CLIError: ``name`` is not a DNS-1123 subdomain (exit 2).
        PoolExhaustedError: a family has no free node CIDR (exit 1).

    >>> import os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "state.json")
    >>> print(run_allocate_node("node-1", path, as_json=True))
    {
      "node": "node-1",
      "cidrs": [
        "10.244.0.0/24",
        "fc00::/64"
      ]
    }
    """
    _check_node_name(name)
    with _state.transaction(state_path, DEFAULT_CONFIG) as state:
        cidrs = state.nodes.allocate(name)
        config = state.config
    if as_json:
        return _json({"node": name, "cidrs": [str(c) for c in cidrs]})
    return _node_table(config, [(name, cidrs)])


def run_release_node(name: str, state_path: str, *, as_json: bool = False) -> str:
    """Free node ``name``'s pod CIDRs; a node holding none is a no-op.

    Complexity:
        O(size of the state file), plus the wait for its lock.

    >>> import os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "state.json")
    >>> _ = run_allocate_node("node-1", path)
    >>> print(run_release_node("node-1", path)); print(run_release_node("node-1", path))
    released node 'node-1': 10.244.0.0/24, fc00::/64
    node 'node-1' holds no pod CIDR: nothing released
    """
    _check_node_name(name)
    with _state.transaction(state_path, DEFAULT_CONFIG) as state:
        cidrs = state.nodes.get(name) or ()
        released = state.nodes.release(name)
    texts = [str(c) for c in cidrs]
    if as_json:
        return _json({"node": name, "released": released, "cidrs": texts})
    if not released:
        return f"node {name!r} holds no pod CIDR: nothing released"
    return f"released node {name!r}: {', '.join(texts)}"


def run_allocate_service(sources: Sequence[str], state_path: str, *, as_json: bool = False) -> str:
    """Allocate cluster IPs for every manifest in ``sources``, all or nothing.

    Each source is a file name or ``-`` (stdin) holding YAML documents or
    JSON. The documents are allocated in order on the loaded allocator; if
    one fails, the state file is not written, so none of them is kept.

    Complexity:
        O(size of the manifests + size of the state file).

    Raises:
        CLIError: wraps the first failing document's error, naming the
            document; exit 1 for a taken address or a full range, 2 for an
            invalid manifest or a cluster without a Service range.

    >>> import os, tempfile
    >>> folder = tempfile.mkdtemp()
    >>> with open(os.path.join(folder, "dns.yaml"), "w") as file:
    ...     _ = file.write("metadata: {name: dns}\\nspec: {clusterIP: 10.96.0.10}\\n")
    >>> state = os.path.join(folder, "state.json")
    >>> print(run_allocate_service([os.path.join(folder, "dns.yaml")], state))
    # default/dns: 10.96.0.10 (IPv4)
    metadata:
      name: dns
    spec:
      clusterIP: 10.96.0.10
      clusterIPs:
      - 10.96.0.10
      ipFamilyPolicy: SingleStack
      ipFamilies:
      - IPv4
    """
    documents = _load_manifests(sources)
    with _state.transaction(state_path, DEFAULT_CONFIG) as state:
        services = _require_services(state, state_path)
        results = []
        for label, manifest in documents:
            try:
                results.append(services.allocate_service(manifest))
            except IPAMError as exc:
                raise CLIError(
                    f"{label}: {exc} (nothing was allocated)", exit_code_for(exc)
                ) from exc
    if as_json:
        return _json(results)
    return _manifests_yaml(results)


def _release_targets(key: str | None, sources: Sequence[str]) -> list[tuple[str, Any]]:
    if (key is None) == (not sources):
        raise CLIError("release-service takes either -f FILE or NAMESPACE/NAME (one of them)")
    if key is None:
        return _load_manifests(sources)
    namespace, slash, name = key.rpartition("/")
    metadata = {"name": name, "namespace": namespace if slash else "default"}
    return [(key, {"metadata": metadata})]


def run_release_service(
    key: str | None, sources: Sequence[str], state_path: str, *, as_json: bool = False
) -> str:
    """Release Services named by ``key`` (``NAMESPACE/NAME``, or ``NAME`` in
    ``default``) or by the manifests in ``sources``; unknown ones are no-ops.

    Releasing is by name, as ``kubectl delete`` is: the addresses written in
    a manifest are not compared with what the Service holds.

    Complexity:
        O(size of the manifests + size of the state file).

    Raises:
        CLIError: both or neither of ``key`` and ``sources``, an invalid
            name, or a cluster without a Service range (exit 2).

    >>> import os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "state.json")
    >>> print(run_release_service("kube-system/dns", [], path))
    SERVICE          RELEASED           CLUSTER IPS
    kube-system/dns  no (held nothing)
    """
    targets = _release_targets(key, sources)
    report: list[tuple[str, bool, list[str]]] = []
    with _state.transaction(state_path, DEFAULT_CONFIG) as state:
        services = _require_services(state, state_path)
        for label, manifest in targets:
            try:
                name = _manifest.service_key(manifest)
                held = services.get(name) or ()
                released = services.release_service(manifest)
            except IPAMError as exc:
                raise CLIError(
                    f"{label}: {exc} (nothing was released)", exit_code_for(exc)
                ) from exc
            report.append((name, released, [str(a) for a in held]))
    if as_json:
        return _json(
            [
                {"service": name, "released": released, "addresses": addresses}
                for name, released, addresses in report
            ]
        )
    return format_table(
        ["SERVICE", "RELEASED", "CLUSTER IPS"],
        [
            [name, "yes" if released else "no (held nothing)", ", ".join(addresses)]
            for name, released, addresses in report
        ],
    )


def _usage(state: _state.State) -> dict[str, Any]:
    usage: dict[str, Any] = {}
    for family in _families(state.config):
        nodes = None
        if family in state.config.families:
            nodes = {
                "capacity": write_int(state.nodes.capacity(family)),
                "reserved": write_int(state.nodes.reserved(family)),
                "used": write_int(state.nodes.used(family)),
                "free": write_int(state.nodes.free(family)),
            }
        ips = None
        if state.services is not None and family in state.config.service_families:
            ips = {
                "capacity": write_int(state.services.capacity(family)),
                "used": write_int(state.services.used(family)),
                "free": write_int(state.services.free(family)),
            }
        usage[str(family)] = {"node_cidrs": nodes, "service_ips": ips}
    return usage


def run_show(state_path: str, *, as_json: bool = False) -> str:
    """What the state file holds: nodes, Services, and usage per family.

    A missing file is created with the default cluster, as for every
    stateful command; an existing one is not rewritten.

    Complexity:
        O(size of the state file), plus the wait for its lock.

    >>> import os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "state.json")
    >>> _ = run_allocate_node("node-1", path)
    >>> import json; json.loads(run_show(path, as_json=True))["nodes"]
    {'node-1': ['10.244.0.0/24', 'fc00::/64']}
    """
    with _state.transaction(state_path, DEFAULT_CONFIG) as state:
        nodes = sorted(state.nodes.items())
        services = [] if state.services is None else state.services.items()
        usage = _usage(state)
        config = state.config
    if as_json:
        return _json(
            {
                "config": config.to_dict(),
                "nodes": {node: [str(c) for c in cidrs] for node, cidrs in nodes},
                "services": {key: [str(a) for a in held] for key, held in services},
                "usage": usage,
            }
        )
    rows = []
    for family, counts in usage.items():
        pods, ips = counts["node_cidrs"] or {}, counts["service_ips"] or {}
        row: list[object] = [family]
        row += [int(pods[k]) if pods else None for k in ("capacity", "reserved", "used", "free")]
        row += [int(ips[k]) if ips else None for k in ("capacity", "used", "free")]
        rows.append(row)
    parts = [f"State {state_path}: {_describe(config)}", ""]
    parts.append(_node_table(config, nodes) if nodes else "No node holds a pod CIDR.")
    parts.append("")
    if services:
        parts.append(
            format_table(
                ["SERVICE", "CLUSTER IPS"],
                [[key, ", ".join(map(str, held))] for key, held in services],
            )
        )
    else:
        parts.append("No Service holds a cluster IP.")
    parts += [
        "",
        format_table(
            [
                "FAMILY",
                "NODE CIDRS",
                "RESERVED",
                "NODES USED",
                "NODES FREE",
                "SERVICE IPS",
                "IPS USED",
                "IPS FREE",
            ],
            rows,
        ),
    ]
    return "\n".join(parts)


# ------------------------------------------------------------------ click


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _message(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        where = f": {exc.filename!r}" if exc.filename else ""
        return f"{exc.strerror}{where}"
    return str(exc) or type(exc).__name__


def build_cli() -> click.Group:
    """The click command group; imports click and PyYAML (ImportError without them).

    Its ``main`` never raises nor prints a traceback: errors become one line
    on stderr and an exit code (see :func:`exit_code_for`). With
    ``standalone_mode=False`` it returns the exit code instead of exiting.

    Complexity:
        O(1).

    >>> build_cli().main(["plan", "--bogus"], standalone_mode=False)
    2
    """
    import click
    import yaml

    from . import __version__

    def guarded(call: Callable[[], Any]) -> int:
        try:
            code = call()
            # Non-standalone click returns the code of --help / --version
            # exits, and the callbacks' None otherwise.
            return code if isinstance(code, int) and not isinstance(code, bool) else 0
        except click.exceptions.Exit as exc:
            return exc.exit_code
        except click.UsageError as exc:
            ctx = exc.ctx
            hint = f" (see '{ctx.command_path} --help')" if ctx is not None else ""
            problem = exc.format_message() + hint
            code = exc.exit_code
        except click.ClickException as exc:
            problem, code = exc.format_message(), exc.exit_code
        except click.Abort:
            problem, code = "aborted", 130
        except (IPAMError, CLIError, _state.StateError, yaml.YAMLError) as exc:
            problem, code = str(exc), exit_code_for(exc)
        except OSError as exc:
            problem, code = _message(exc), 2
        except Exception as exc:  # never a traceback, but say it is ours
            problem = f"internal error, please report it: {type(exc).__name__}: {exc}"
            code = _INTERNAL_ERROR
        click.echo(f"{PROG}: error: {_one_line(problem)}", err=True)
        return code

    class Group(click.Group):
        def main(
            self,
            args: Sequence[str] | None = None,
            prog_name: str | None = None,
            complete_var: str | None = None,
            standalone_mode: bool = True,
            windows_expand_args: bool = True,
            **extra: Any,
        ) -> Any:
            # A bare "dualstack-ipam" shows the help, as --help does.
            argv = list(sys.argv[1:] if args is None else args) or ["--help"]
            code = guarded(
                lambda: click.Group.main(
                    self,
                    argv,
                    prog_name or PROG,
                    complete_var,
                    standalone_mode=False,
                    windows_expand_args=windows_expand_args,
                    **extra,
                )
            )
            if standalone_mode:
                sys.exit(code)
            return code

    json_option = click.option(
        "--json", "as_json", is_flag=True, help="Machine-readable JSON on stdout."
    )
    state_option = click.option(
        "--state",
        "state_path",
        default=_state.DEFAULT_STATE_FILE,
        show_default=True,
        metavar="FILE",
        help="The state file (created with the default cluster if missing).",
    )
    pass_flags = {"ignore_unknown_options": True, "allow_extra_args": True}
    flags_argument = click.argument("flags", nargs=-1, type=click.UNPROCESSED)

    def echo(text: str) -> None:
        click.echo(text)

    @click.group(name=PROG, cls=Group, context_settings={"help_option_names": ["-h", "--help"]})
    @click.version_option(__version__, prog_name=PROG)
    def cli() -> None:
        """IP address management for dual-stack (IPv4 + IPv6) Kubernetes-style clusters.

        Exit codes: 0 done, 1 refused by the current state (exhausted, taken),
        2 bad input.
        """

    @cli.command()
    @json_option
    def demo(as_json: bool) -> None:
        """The seed's scenario on the default cluster: nodes and three Services."""
        echo(run_demo(as_json=as_json))

    @cli.command(context_settings=pass_flags)
    @json_option
    @click.option(
        "--with-feature-gate",
        "feature_gate",
        is_flag=True,
        help="Render --feature-gates=IPv6DualStack=true for every component (1.16-1.22).",
    )
    @flags_argument
    def plan(flags: tuple[str, ...], as_json: bool, feature_gate: bool) -> None:
        """Validate kube-controller-manager flags; print capacity and component flags.

        FLAGS: --cluster-cidr, --service-cluster-ip-range, --node-cidr-mask-size,
        --node-cidr-mask-size-ipv4/-ipv6, --allocate-node-cidrs, --feature-gates.
        """
        echo(run_plan(flags, as_json=as_json, feature_gate=feature_gate))

    @cli.command(context_settings=pass_flags)
    @json_option
    @state_option
    @flags_argument
    def init(flags: tuple[str, ...], as_json: bool, state_path: str) -> None:
        """Create the state file for the cluster FLAGS describe (never overwrites)."""
        echo(run_init(flags, state_path, as_json=as_json))

    @cli.command("allocate-node")
    @json_option
    @state_option
    @click.argument("name")
    def allocate_node(name: str, as_json: bool, state_path: str) -> None:
        """Give node NAME one pod CIDR per family (idempotent)."""
        echo(run_allocate_node(name, state_path, as_json=as_json))

    @cli.command("release-node")
    @json_option
    @state_option
    @click.argument("name")
    def release_node(name: str, as_json: bool, state_path: str) -> None:
        """Free node NAME's pod CIDRs (a no-op if it holds none)."""
        echo(run_release_node(name, state_path, as_json=as_json))

    file_option = click.option(
        "-f",
        "--filename",
        "sources",
        multiple=True,
        metavar="FILE",
        help="Service manifests, YAML or JSON ('-' for stdin); may be repeated.",
    )

    @cli.command("allocate-service")
    @json_option
    @state_option
    @file_option
    def allocate_service(sources: tuple[str, ...], as_json: bool, state_path: str) -> None:
        """Allocate cluster IPs for the Service manifests in FILE, all or nothing."""
        if not sources:
            raise click.UsageError("Missing option '-f' / '--filename'.")
        echo(run_allocate_service(sources, state_path, as_json=as_json))

    @cli.command("release-service")
    @json_option
    @state_option
    @file_option
    @click.argument("key", required=False, metavar="[NAMESPACE/NAME]")
    def release_service(
        key: str | None, sources: tuple[str, ...], as_json: bool, state_path: str
    ) -> None:
        """Release the Services in FILE, or NAMESPACE/NAME (no-op when not held)."""
        echo(run_release_service(key, sources, state_path, as_json=as_json))

    @cli.command()
    @json_option
    @state_option
    def show(as_json: bool, state_path: str) -> None:
        """Print the nodes, the Services and the usage per family."""
        echo(run_show(state_path, as_json=as_json))

    return cli


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI on ``argv`` (default ``sys.argv[1:]``); returns the exit code.

    Without click or PyYAML it prints one line telling how to install them
    and returns 2.

    Complexity:
        That of the command run.

    >>> main(["plan", "--cluster-cidr=nonsense"])  # the error line goes to stderr
    2
    """
    try:
        cli = build_cli()
    except ImportError as exc:
        missing = exc.name or "a dependency"
        sys.stderr.write(
            f"{PROG}: error: the command line needs click and PyYAML ({missing} is not "
            "installed): pip install 'dualstack_ipam[cli]'\n"
        )
        return 2
    args = list(sys.argv[1:] if argv is None else argv)
    return int(cli.main(args, prog_name=PROG, standalone_mode=False))
