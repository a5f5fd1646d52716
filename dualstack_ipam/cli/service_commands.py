"""The CLI's Service commands: manifests read from files or stdin, cluster IPs given and freed.

``dualstack-ipam allocate-service`` is :func:`run_allocate_service` and
``release-service`` is :func:`run_release_service`; like every command
they return the text to print (see :mod:`dualstack_ipam.cli.commands`). A
manifest is YAML or JSON, in a file or on stdin (``-``).

All or nothing on the store: a call of several documents (or several
names to release) is ONE store transaction
(:mod:`~dualstack_ipam.durable.batch`), so an exit code other than 0
means that nothing changed, and other processes see every Service of the
call change at one revision. The documents are checked before the store is
read — every document on an empty in-memory allocator of the cluster
(invalid manifests, addresses outside the ranges, the documents' own
conflicts), and their number against the backend's transaction limit —
and a batch whose records do not fit in one transaction is refused
(exit 2, naming the limit) before anything is written. Hundreds of
documents show a progress bar on stderr when it is a terminal
(:mod:`~dualstack_ipam.cli.progress`). PyYAML is imported only when a
manifest is read or printed.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from dualstack_ipam import service_key
from dualstack_ipam.cli.ground import PROG, CLIError, Output, exit_code_for
from dualstack_ipam.cli.manifests import load_manifests
from dualstack_ipam.cli.progress import progress
from dualstack_ipam.cli.render import format_table, manifests_yaml, to_json
from dualstack_ipam.cli.store import Target, on_store, runs, target
from dualstack_ipam.errors import FamilyNotConfiguredError, IPAMError
from dualstack_ipam.services.allocator import ServiceIPAllocator

if TYPE_CHECKING:
    from dualstack_ipam.durable import Cluster

__all__ = ["run_allocate_service", "run_release_service", "txn_limit"]

R = TypeVar("R")


# ------------------------------------------------------------------ Services


def _services(cluster: Cluster, where: Target) -> Any:
    if not cluster.config.service_cidrs:
        raise CLIError(
            f"the cluster in {where.shown!r} has no Service range (--service-cluster-ip-range): "
            "no Service command can run on it; create the store with "
            f"'{PROG} init --cluster-cidr=... --service-cluster-ip-range=...'"
        )
    try:
        return cluster.services
    except FamilyNotConfiguredError as exc:  # the check above should have caught it
        raise CLIError(str(exc)) from exc


def txn_limit(cluster: Cluster) -> int | None:
    """The most operations one transaction of ``cluster``'s backend takes (None: no limit).

    Complexity:
        O(1).
    """
    for name in ("backend", "_backend", "store", "_store"):
        backend = getattr(cluster, name, None)
        limits = getattr(backend, "limits", None)
        if limits is not None:
            max_ops = getattr(limits, "max_ops", None)
            return max_ops if isinstance(max_ops, int) else None
    return None


def _check_documents(cluster: Cluster, documents: Sequence[tuple[str, Any]]) -> None:
    """Refuse, before anything is written, a call that cannot succeed whole."""
    limit = txn_limit(cluster)
    if limit is not None and len(documents) > limit:
        raise CLIError(
            f"{len(documents)} Service documents in one call is more than one transaction "
            f"of this store takes (max_ops = {limit}): split them into calls of at most "
            f"{limit} (nothing was allocated)"
        )
    if len(documents) < 2:
        return  # one document is one transaction: all or nothing by itself
    trial = ServiceIPAllocator(cluster.config)
    for label, manifest in documents:
        try:
            trial.allocate_service(manifest)
        except IPAMError as exc:
            if exit_code_for(exc) == 1:
                continue  # the store's Services decide: checked when allocating
            raise CLIError(f"{label}: {exc} (nothing was allocated)", exit_code_for(exc)) from exc


def run_allocate_service(
    sources: Sequence[str],
    state_path: str | None = None,
    *,
    store_url: str | None = None,
    as_json: bool = False,
) -> Output:
    """Allocate cluster IPs for every manifest in ``sources``, all or nothing.

    Each source is a file name or ``-`` (stdin) holding YAML documents or
    JSON. The documents are checked first, then allocated in order and
    committed together in ONE store transaction: if one fails, none of
    them is kept (see the module notes).

    Raises:
        CLIError: wraps the first failing document's error, naming the
            document; exit 1 for a taken address or a full range, 2 for an
            invalid manifest, a cluster without a Service range, or more
            documents than one transaction of the store takes.
        StoreError: the documents' records do not fit in one transaction
            of the store, naming the limit (exit 2; nothing changed).
        StoreUnavailableError: the store stayed locked (exit 5; nothing changed).

    Complexity:
        O(size of the manifests), plus O(1) store records per document in
        one transaction, plus opening the store.

    >>> import os, tempfile
    >>> temp = tempfile.TemporaryDirectory()
    >>> folder = temp.name
    >>> with open(os.path.join(folder, "dns.yaml"), "w") as file:
    ...     _ = file.write("metadata: {name: dns}\\nspec: {clusterIP: 10.96.0.10}\\n")
    >>> state = os.path.join(folder, "ipam.db")
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
    where = target(state_path, store_url)

    def act(cluster: Cluster) -> tuple[str, bool]:
        services = _services(cluster, where)
        _check_documents(cluster, documents)
        ops: list[tuple[str, Callable[[], tuple[bool, dict[str, Any]]], str]] = []
        for label, manifest in documents:
            try:
                key = service_key(manifest)
            except IPAMError as exc:
                raise CLIError(
                    f"{label}: {exc} (nothing was allocated)", exit_code_for(exc)
                ) from exc
            ops.append((key, _allocating(services, label, key, manifest, advance), "allocate"))
        # Whether the call created a key comes from the ops' answers: a read
        # of the store after the commit could fail (a busy store) and turn a
        # saved change into exit 5, which must mean that nothing changed.
        answers = _batch(cluster, ops)
        results = [result for _, result in answers]
        text = to_json(results) if as_json else manifests_yaml(results)
        return text, any(created for created, _ in answers)

    with progress(len(documents) * runs(where), "allocate-service") as advance:
        text, changed = on_store(where, act)
    return Output(text, saved=where.shown if changed else None)


def _batch(cluster: Cluster, ops: Sequence[tuple[str, Callable[[], R], str]]) -> list[R]:
    """The ops on the cluster's Services, committed as ONE store transaction."""
    from dualstack_ipam.durable import batch  # as the store: imported when one is opened

    return batch.run(cluster, "services", ops)


def _holds_addresses(manifest: Mapping[str, Any]) -> bool:
    """Whether an allocated manifest holds cluster IPs (headless and ExternalName do not)."""
    spec = manifest.get("spec") or {}
    return any(ip not in (None, "", "None") for ip in spec.get("clusterIPs") or ())


def _allocating(
    services: Any, label: str, key: str, manifest: Any, advance: Callable[[int], None]
) -> Callable[[], tuple[bool, dict[str, Any]]]:
    """One document's op of the batch: (whether it created the key, the allocated manifest).

    It runs on the cache (the plain method: the durable one would commit
    on its own); the batch runs it again after a lost race.
    """

    def op() -> tuple[bool, dict[str, Any]]:
        held = ServiceIPAllocator.get(services, key)
        try:
            result = ServiceIPAllocator.allocate_service(services, manifest)
        except IPAMError as exc:
            raise CLIError(f"{label}: {exc} (nothing was allocated)", exit_code_for(exc)) from exc
        advance(1)
        return held is None and _holds_addresses(result), result

    return op


def _release_targets(key: str | None, sources: Sequence[str]) -> list[tuple[str, Any]]:
    if (key is None) == (not sources):
        raise CLIError("release-service takes either -f FILE or NAMESPACE/NAME (one of them)")
    if key is None:
        return load_manifests(sources)
    namespace, slash, name = key.rpartition("/")
    metadata = {"name": name, "namespace": namespace if slash else "default"}
    return [(key, {"metadata": metadata})]


def _release_keys(targets: Sequence[tuple[str, Any]]) -> list[str]:
    """Every target's key, checked before anything is released."""
    keys = []
    for label, manifest in targets:
        try:
            keys.append(service_key(manifest))
        except IPAMError as exc:
            raise CLIError(f"{label}: {exc} (nothing was released)", exit_code_for(exc)) from exc
    return keys


def run_release_service(
    key: str | None,
    sources: Sequence[str],
    state_path: str | None = None,
    *,
    store_url: str | None = None,
    as_json: bool = False,
) -> Output:
    """Release Services named by ``key`` (``NAMESPACE/NAME``, or ``NAME`` in
    ``default``) or by the manifests in ``sources``; unknown ones are no-ops.

    Releasing is by name, as ``kubectl delete`` is: the addresses written in
    a manifest are not compared with what the Service holds. Every name is
    checked before the first release; all the releases are ONE store
    transaction (all or nothing).

    Raises:
        CLIError: both or neither of ``key`` and ``sources``, an invalid
            name, or a cluster without a Service range (exit 2).
        StoreError: the releases do not fit in one transaction of the
            store, naming the limit (exit 2; nothing changed).
        StoreUnavailableError: the store stayed locked (exit 5; nothing changed).

    Complexity:
        O(size of the manifests), plus O(1) store records per Service in
        one transaction, plus opening the store.

    >>> import os, tempfile
    >>> folder = tempfile.TemporaryDirectory()
    >>> path = os.path.join(folder.name, "ipam.db")
    >>> print(run_release_service("kube-system/dns", [], path))
    SERVICE          RELEASED           CLUSTER IPS
    kube-system/dns  no (held nothing)
    >>> folder.cleanup()
    """
    keys = _release_keys(_release_targets(key, sources))
    where = target(state_path, store_url)

    def act(cluster: Cluster) -> tuple[str, bool]:
        services = _services(cluster, where)
        ops = [(name, _releasing(services, name), "release") for name in keys]
        report = _batch(cluster, ops)
        changed = any(released for _, released, _ in report)
        return _release_report(report, as_json=as_json), changed

    text, changed = on_store(where, act)
    return Output(text, saved=where.shown if changed else None)


def _releasing(services: Any, name: str) -> Callable[[], tuple[str, bool, list[str]]]:
    """One name's op of the batch: (name, whether it held something, what it held)."""

    def op() -> tuple[str, bool, list[str]]:
        held = ServiceIPAllocator.get(services, name) or ()
        released = bool(ServiceIPAllocator.release(services, name))
        return name, released, [str(a) for a in held]

    return op


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
