"""The CLI's Service commands: manifests read from files or stdin, cluster IPs given and freed.

``dualstack-ipam allocate-service`` is :func:`run_allocate_service` and
``release-service`` is :func:`run_release_service`; like every command
they return the text to print (see :mod:`dualstack_ipam.cli.commands`). A
manifest is YAML or JSON, in a file or on stdin (``-``); every document of
every source is applied in one state transaction, so a command keeps all
of them or none. PyYAML is imported only when a manifest is read or
printed.
"""

from __future__ import annotations

import io
import json
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from dualstack_ipam.cli import state as _state
from dualstack_ipam.cli.commands import DEFAULT_CONFIG, PROG, CLIError, exit_code_for
from dualstack_ipam.cli.render import format_table, manifests_yaml, to_json
from dualstack_ipam.errors import IPAMError
from dualstack_ipam.services import manifest as _manifest
from dualstack_ipam.services.allocator import ServiceIPAllocator

__all__ = ["parse_manifests", "run_allocate_service", "run_release_service"]


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

    >>> from dualstack_ipam.cli.demo import SEED_SERVICES
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
        # libyaml's loader when PyYAML was built with it: the same documents,
        # parsed in C (a large manifest file in a fraction of the time).
        loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
        try:
            docs = list(yaml.load_all(stream, Loader=loader))
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
            # Bytes decoded strictly, as for files (the text layer of stdin
            # would let invalid bytes through as surrogates).
            return sys.stdin.buffer.read().decode("utf-8")
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


# ------------------------------------------------------------------ Services


def _require_services(state: _state.State, path: str) -> ServiceIPAllocator:
    if state.services is None:
        raise CLIError(
            f"the cluster in {path!r} has no Service range (--service-cluster-ip-range): "
            "no Service command can run on it; create the state with "
            f"'{PROG} init --cluster-cidr=... --service-cluster-ip-range=...'"
        )
    return state.services


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
    >>> temp = tempfile.TemporaryDirectory()
    >>> folder = temp.name
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
    >>> temp.cleanup()
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
        return to_json(results)
    return manifests_yaml(results)


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
    >>> folder = tempfile.TemporaryDirectory()
    >>> path = os.path.join(folder.name, "state.json")
    >>> print(run_release_service("kube-system/dns", [], path))
    SERVICE          RELEASED           CLUSTER IPS
    kube-system/dns  no (held nothing)
    >>> folder.cleanup()
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
        return to_json(
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
