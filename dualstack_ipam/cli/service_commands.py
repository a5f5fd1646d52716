"""The CLI's Service commands: manifests read from files or stdin, cluster IPs given and freed.

``dualstack-ipam allocate-service`` is :func:`run_allocate_service` and
``release-service`` is :func:`run_release_service`; like every command
they return the text to print, rendered inside the state transaction (see
:mod:`dualstack_ipam.cli.commands`). A
manifest is YAML or JSON, in a file or on stdin (``-``); every document of
every source is applied in one state transaction, so a command keeps all
of them or none. PyYAML is imported only when a manifest is read or
printed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from dualstack_ipam.cli import state as _state
from dualstack_ipam.cli.commands import (
    DEFAULT_CONFIG,
    PROG,
    CLIError,
    Output,
    exit_code_for,
    saved_path,
)
from dualstack_ipam.cli.manifests import load_manifests
from dualstack_ipam.cli.render import format_table, manifests_yaml, to_json
from dualstack_ipam.errors import IPAMError
from dualstack_ipam.services import manifest as _manifest
from dualstack_ipam.services.allocator import ServiceIPAllocator

__all__ = ["run_allocate_service", "run_release_service"]


# ------------------------------------------------------------------ Services


def _require_services(state: _state.State, path: str) -> ServiceIPAllocator:
    if state.services is None:
        raise CLIError(
            f"the cluster in {path!r} has no Service range (--service-cluster-ip-range): "
            "no Service command can run on it; create the state with "
            f"'{PROG} init --cluster-cidr=... --service-cluster-ip-range=...'"
        )
    return state.services


def run_allocate_service(
    sources: Sequence[str], state_path: str, *, as_json: bool = False
) -> Output:
    """Allocate cluster IPs for every manifest in ``sources``, all or nothing.

    Each source is a file name or ``-`` (stdin) holding YAML documents or
    JSON. The documents are allocated in order on the loaded allocator; if
    one fails, the state file is not written, so none of them is kept.

    Raises:
        CLIError: wraps the first failing document's error, naming the
            document; exit 1 for a taken address or a full range, 2 for an
            invalid manifest or a cluster without a Service range.

    Complexity:
        O(size of the manifests + size of the state file).

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
    documents = load_manifests(sources)
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
        text = to_json(results) if as_json else manifests_yaml(results)
    return Output(text, saved=saved_path(state, state_path))


def _release_targets(key: str | None, sources: Sequence[str]) -> list[tuple[str, Any]]:
    if (key is None) == (not sources):
        raise CLIError("release-service takes either -f FILE or NAMESPACE/NAME (one of them)")
    if key is None:
        return load_manifests(sources)
    namespace, slash, name = key.rpartition("/")
    metadata = {"name": name, "namespace": namespace if slash else "default"}
    return [(key, {"metadata": metadata})]


def run_release_service(
    key: str | None, sources: Sequence[str], state_path: str, *, as_json: bool = False
) -> Output:
    """Release Services named by ``key`` (``NAMESPACE/NAME``, or ``NAME`` in
    ``default``) or by the manifests in ``sources``; unknown ones are no-ops.

    Releasing is by name, as ``kubectl delete`` is: the addresses written in
    a manifest are not compared with what the Service holds.

    Raises:
        CLIError: both or neither of ``key`` and ``sources``, an invalid
            name, or a cluster without a Service range (exit 2).

    Complexity:
        O(size of the manifests + size of the state file).

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
        text = _release_report(report, as_json=as_json)
    return Output(text, saved=saved_path(state, state_path))


def _release_report(report: Sequence[tuple[str, bool, list[str]]], *, as_json: bool) -> str:
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
