"""The CLI's state file: the allocators' snapshots, read and written safely.

One JSON object holds a cluster's configuration and both allocators::

    {"kind": "dualstack-ipam-state", "version": 1,
     "config": ClusterConfig.to_dict(),
     "nodes": NodeCIDRAllocator.snapshot(),
     "services": ServiceIPAllocator.snapshot(), or null without a Service range}

Every command that reads the file holds an exclusive ``fcntl.flock`` on a
sidecar ``FILE.lock`` for its whole read-modify-write, so concurrent runs
queue up and never lose an update. The lock is on a sidecar, not on FILE,
because FILE is replaced on every write: a lock on the replaced inode would
protect nothing. The sidecar is never deleted (deleting it would let two
runs lock two different inodes). Writes are atomic: a temporary file in
FILE's directory, flushed and fsynced, renamed over FILE with
``os.replace``, then the directory is fsynced so that the rename itself
survives a crash. A file that does not parse, or whose snapshots disagree,
is reported as :class:`StateError` and never written over.

Locking needs ``fcntl`` (POSIX); elsewhere the stateful commands refuse
with :class:`StateError`.

>>> import os, tempfile
>>> from dualstack_ipam.cluster.config import ClusterConfig
>>> folder = tempfile.TemporaryDirectory()
>>> path = os.path.join(folder.name, "state.json")
>>> with transaction(path, ClusterConfig("10.244.0.0/16", "10.96.0.0/24")) as state:
...     state.nodes.allocate("node-1")
(IPNetwork('10.244.0.0/24'),)
>>> with transaction(path, ClusterConfig("fd00::/48")) as state:  # the file's cluster wins
...     state.nodes.get("node-1"), state.services is not None
((IPNetwork('10.244.0.0/24'),), True)
>>> folder.cleanup()
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import sys
import tempfile
from collections.abc import Iterator, Mapping
from typing import Any

from dualstack_ipam.cluster.config import ClusterConfig
from dualstack_ipam.cluster.nodes import NodeCIDRAllocator
from dualstack_ipam.errors import IPAMError, SnapshotError
from dualstack_ipam.services.allocator import ServiceIPAllocator

if sys.platform != "win32":
    import fcntl

__all__ = [
    "DEFAULT_STATE_FILE",
    "STATE_KIND",
    "STATE_VERSION",
    "State",
    "StateError",
    "create",
    "locked",
    "read",
    "transaction",
    "write",
]

DEFAULT_STATE_FILE = "dualstack-ipam-state.json"
"""The state file the CLI uses when ``--state`` is not given (in the cwd)."""

STATE_KIND = "dualstack-ipam-state"
STATE_VERSION = 1
_KEYS = ("kind", "version", "config", "nodes", "services")


class StateError(Exception):
    """The state file cannot be used: corrupt, in the way, or unlockable.

    The CLI reports it on one line and exits 2; the file is left as it was.
    """


class State:
    """The allocators one state file holds.

    Attributes:
        config: the cluster's :class:`~dualstack_ipam.ClusterConfig`.
        nodes: its :class:`~dualstack_ipam.NodeCIDRAllocator`.
        services: its :class:`~dualstack_ipam.services.allocator.ServiceIPAllocator`,
            or None when the cluster has no Service range.
        saved: whether :func:`transaction` wrote it to its file (False until
            the transaction's block has ended and the file was replaced).

    >>> state = State.fresh(ClusterConfig("10.244.0.0/16"))
    >>> state.services is None, State.from_json(state.to_json()).to_json() == state.to_json()
    (True, True)
    """

    __slots__ = ("config", "nodes", "saved", "services")

    def __init__(
        self,
        config: ClusterConfig,
        nodes: NodeCIDRAllocator,
        services: ServiceIPAllocator | None,
    ) -> None:
        self.config = config
        self.nodes = nodes
        self.services = services
        self.saved = False

    @classmethod
    def fresh(cls, config: ClusterConfig) -> State:
        """Empty allocators for ``config``.

        Complexity:
            O(1) plus the pools' construction (a dense Service pool costs one
            byte per address up to 2**24 addresses).

        >>> State.fresh(ClusterConfig("10.244.0.0/16", "10.96.0.0/24")).services is not None
        True
        """
        services = ServiceIPAllocator(config) if config.service_cidrs else None
        return cls(config, NodeCIDRAllocator(config), services)

    def to_json(self) -> dict[str, Any]:
        """The JSON object the state file holds (see the module docstring).

        Complexity:
            O(n) in what is allocated.

        >>> sorted(State.fresh(ClusterConfig("10.244.0.0/16")).to_json())
        ['config', 'kind', 'nodes', 'services', 'version']
        """
        return {
            "kind": STATE_KIND,
            "version": STATE_VERSION,
            "config": self.config.to_dict(),
            "nodes": self.nodes.snapshot(),
            "services": None if self.services is None else self.services.snapshot(),
        }

    @classmethod
    def from_json(cls, data: Any) -> State:
        """Rebuild the allocators from :meth:`to_json` output.

        Raises:
            SnapshotError: another kind or version, a key missing or unknown,
                a snapshot that does not restore, or snapshots that disagree
                with the configuration.

        Complexity:
            O(n) in the snapshot's size.

        >>> State.from_json({"kind": "other"})
        Traceback (most recent call last):
        ...
        dualstack_ipam.errors.SnapshotError: not a dualstack-ipam-state object (kind 'other')
        """
        if not isinstance(data, Mapping) or data.get("kind") != STATE_KIND:
            kind = data.get("kind") if isinstance(data, Mapping) else type(data).__name__
            raise SnapshotError(f"not a {STATE_KIND} object (kind {kind!r})")
        if type(data.get("version")) is not int or data["version"] != STATE_VERSION:
            raise SnapshotError(
                f"state version {data.get('version')!r} is not supported "
                f"(this release reads {STATE_VERSION})"
            )
        if set(data) != set(_KEYS):
            raise SnapshotError(f"a state object needs exactly the keys {list(_KEYS)}")
        config = ClusterConfig.from_dict(data["config"])
        nodes = NodeCIDRAllocator.restore(data["nodes"])
        if nodes.config != config:
            raise SnapshotError("the node allocator's cluster differs from the state's config")
        services = None
        if data["services"] is not None:
            services = ServiceIPAllocator.restore(data["services"])
            if services.config != config:
                raise SnapshotError(
                    "the Service allocator's cluster differs from the state's config"
                )
        if (services is None) != (not config.service_cidrs):
            raise SnapshotError(
                "'services' must be an allocator snapshot exactly when the cluster has a "
                "Service range"
            )
        return cls(config, nodes, services)


def dumps(state: State) -> bytes:
    """The bytes :func:`write` puts in the file (indented JSON, one trailing newline).

    Complexity:
        O(n) in what is allocated.

    >>> dumps(State.fresh(ClusterConfig("10.244.0.0/16")))[:40]
    b'{\\n  "kind": "dualstack-ipam-state",\\n  "v'
    """
    return (json.dumps(state.to_json(), indent=2) + "\n").encode("utf-8")


def _lock_path(path: str) -> str:
    return path + ".lock"


@contextlib.contextmanager
def locked(path: str | os.PathLike[str]) -> Iterator[str]:
    """Hold the exclusive lock of state file ``path``; yields its real path.

    Blocks until no other process holds it. The lock is an ``fcntl.flock`` on
    ``FILE.lock`` (created if missing, never deleted); it is released when
    the block ends, also by an error, and by the kernel if the process dies.
    Symbolic links are resolved first, so two names of one file share a lock.

    Raises:
        StateError: no ``fcntl`` on this platform.
        OSError: the lock file cannot be created (e.g. no such directory).

    Complexity:
        O(1), plus the wait for other holders.
    """
    real = os.path.realpath(os.fspath(path))
    if sys.platform == "win32":  # pragma: no cover - POSIX only
        raise StateError("the state file needs POSIX file locking (fcntl), not available here")
    fd = os.open(_lock_path(real), os.O_RDWR | os.O_CREAT, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield real
    finally:
        # Closing the last descriptor drops the flock.
        os.close(fd)


def read(path: str, *, name: str | None = None) -> State | None:
    """The state in ``path``, or None if there is no such file.

    Call it under :func:`locked`. ``name`` is how messages call the file
    (default: ``path``).

    Raises:
        StateError: the file is not valid UTF-8 JSON of a state object, or
            its snapshots do not restore or disagree.
        OSError: the file exists but cannot be read.

    Complexity:
        O(n) in the file's size.
    """
    try:
        with open(path, "rb") as file:
            raw = file.read()
    except FileNotFoundError:
        return None
    try:
        return State.from_json(json.loads(raw.decode("utf-8")))
    except (IPAMError, ValueError, TypeError, LookupError, AttributeError, RecursionError) as exc:
        # Restores raise SnapshotError; anything else means a snapshot the
        # library did not foresee, still a corrupt file and not a crash.
        detail = str(exc) if isinstance(exc, IPAMError) else f"{type(exc).__name__}: {exc}"
        raise StateError(
            f"state file {name or path!r} is corrupt ({detail}); it was left untouched"
        ) from exc


def _new_file_mode() -> int:
    # The mode a plain open() would give a new file; mkstemp's 0600 would hide
    # the state from the other operators who run the tool. The CLI is one
    # thread, so reading the umask by setting it is safe here.
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def _fsync_directory(directory: str) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    except OSError as exc:
        # Some file systems cannot fsync a directory; the rename is done.
        if exc.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EBADF):
            raise
    finally:
        os.close(fd)


def write(path: str, state: State) -> None:
    """Replace ``path`` with ``state`` atomically and durably.

    A temporary file in the same directory is written, flushed, fsynced,
    given the old file's mode (or the umask's for a new one), renamed over
    ``path``, and the directory fsynced. On any error the temporary file is
    removed and ``path`` is unchanged. Call it under :func:`locked`.

    Raises:
        OSError: the directory is not writable, the disk is full, ...

    Complexity:
        O(n) in what is allocated.
    """
    data = dumps(state)
    directory = os.path.dirname(path) or "."
    try:
        mode = os.stat(path).st_mode & 0o7777
    except FileNotFoundError:
        mode = _new_file_mode()
    fd, temp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.chmod(temp, mode)
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)
        raise
    _fsync_directory(directory)


def create(path: str | os.PathLike[str], config: ClusterConfig) -> str:
    """Create a state file for ``config``; refuse if ``path`` exists.

    Returns:
        The real path written.

    Raises:
        StateError: ``path`` already exists (it is not touched).
        OSError: it cannot be written.

    Complexity:
        O(1) plus the pools' construction.
    """
    with locked(path) as real:
        if os.path.lexists(real):
            raise StateError(
                f"state file {os.fspath(path)!r} already exists; refusing to overwrite it "
                "(remove it first to start over)"
            )
        write(real, State.fresh(config))
        return real


@contextlib.contextmanager
def transaction(path: str | os.PathLike[str], default: ClusterConfig) -> Iterator[State]:
    """Lock ``path``, load it, yield the state, and save it if the block succeeds.

    A missing file starts as empty allocators for ``default`` and is created.
    The file is written only if the block ends without an error and the state
    differs from what was read (a read-only command rewrites nothing): an
    error anywhere in the block leaves the file exactly as it was, which
    makes a block of several allocations all-or-nothing. After the block,
    ``state.saved`` says whether the file was written.

    Raises:
        StateError: the file is corrupt (see :func:`read`).
        OSError: it cannot be read, locked or written.

    Complexity:
        O(n) in what is allocated, plus the wait for the lock.
    """
    with locked(path) as real:
        state = read(real, name=os.fspath(path))
        before = None if state is None else dumps(state)
        if state is None:
            state = State.fresh(default)
        yield state
        if dumps(state) != before:
            write(real, state)
            state.saved = True
