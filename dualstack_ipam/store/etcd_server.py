"""Throw-away etcd servers on loopback, for tests and demos of the etcd backend.

Each server runs the ``etcd`` binary found on ``PATH`` with free ports on
127.0.0.1, its own data directory and a clean environment: etcd reads every
``ETCD_*`` variable as a flag, so none is passed through. One member uses
``--heartbeat-interval 10 --election-timeout 100``; the members of a
3-member cluster use 50 / 500, so that two cores also running the clients
do not cause spurious elections. A server given :class:`ServerTLS` serves
its clients over HTTPS (``etcds://``), and with a client certificate set,
requires one from every client (``--client-cert-auth``).

Ports are taken below the kernel's ephemeral range: a port from that range
can be taken, between the test choosing it and etcd binding it, as the
source port of any outgoing connection (etcd then dies with "address
already in use"; seen with 4 clients retrying against a server not yet
started).

>>> etcd_binary() is None or etcd_binary().endswith("etcd")
True
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import socket
import ssl
import subprocess
import time
import urllib.request
from pathlib import Path
from types import TracebackType

import attrs

from dualstack_ipam.store.etcd_transport import EtcdTLS

__all__ = [
    "EtcdServer",
    "ServerTLS",
    "ephemeral_ports",
    "etcd_binary",
    "free_port",
    "start_cluster",
]

_LOWEST_PORT = 10000


def etcd_binary() -> str | None:
    """The path of the ``etcd`` binary, or None when it is not installed.

    Complexity:
        O(len(PATH)).

    >>> isinstance(etcd_binary(), (str, type(None)))
    True
    """
    return shutil.which("etcd")


def ephemeral_ports() -> tuple[int, int]:
    """The kernel's range of source ports for outgoing connections (first, last).

    Linux's ``net.ipv4.ip_local_port_range``; its default elsewhere.

    Complexity:
        O(1).

    >>> first, last = ephemeral_ports()
    >>> 1024 <= first <= last <= 65535
    True
    """
    try:
        text = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text()
        first, last = (int(part) for part in text.split())
    except (OSError, ValueError):
        return 32768, 60999
    return first, last


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing uses right now, outside the ephemeral range.

    A random port between 10000 and the ephemeral range (or above it, when
    the range starts lower) that binds; the kernel's choice only when none
    does. Outside the ephemeral range, no outgoing connection can take it
    before the server binds it.

    Complexity:
        O(1) expected (one socket per port tried).

    >>> first, last = ephemeral_ports()
    >>> not first <= free_port() <= last
    True
    """
    first, last = ephemeral_ports()
    ranges = [(_LOWEST_PORT, first - 1), (last + 1, 65535)]
    spans = [(a, b) for a, b in ranges if b - a >= 1000]
    for _ in range(100 if spans else 0):
        low, high = random.choice(spans)
        port = random.randint(low, high)
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        found: int = sock.getsockname()[1]
        return found


@attrs.frozen
class ServerTLS:
    """TLS of a test server's client port (``etcds://``).

    Attributes:
        ca: the CA bundle (PEM) that signed the server's certificate and
            the clients' (etcd's ``--trusted-ca-file``).
        cert: the server's certificate (PEM); its subject names must cover
            127.0.0.1 (an IP SAN), and it must allow client authentication
            too when ``client`` is set (etcd's gateway dials etcd with it).
        key: the server's private key (PEM).
        client: a client certificate: etcd then requires one from every
            client (``--client-cert-auth``), and ``wait_healthy`` presents
            this one.
    """

    ca: str
    cert: str
    key: str
    client: EtcdTLS | None = None


class EtcdServer:
    """One etcd member: start, stop, SIGKILL, SIGSTOP and restart on its data dir.

    Args:
        data_dir: the member's data directory (created if absent).
        name: the member name.
        client_port: the port clients use (a free one by default).
        peer_port: the port members use among themselves.
        cluster: ``name=http://127.0.0.1:port,...`` of every member (this
            one alone by default).
        heartbeat_ms: ``--heartbeat-interval``.
        election_ms: ``--election-timeout``.
        extra: more command-line flags.
        tls: serve clients over HTTPS (None: plain HTTP).

    Complexity:
        O(1) per call; ``start`` waits for the member to answer.
    """

    def __init__(
        self,
        data_dir: str | os.PathLike[str],
        *,
        name: str = "m0",
        client_port: int | None = None,
        peer_port: int | None = None,
        cluster: str | None = None,
        heartbeat_ms: int = 10,
        election_ms: int = 100,
        extra: tuple[str, ...] = (),
        tls: ServerTLS | None = None,
    ) -> None:
        self.data_dir = Path(data_dir)
        self.name = name
        self.client_port = client_port if client_port is not None else free_port()
        self.peer_port = peer_port if peer_port is not None else free_port()
        self.cluster = cluster or f"{name}=http://127.0.0.1:{self.peer_port}"
        self.heartbeat_ms, self.election_ms, self.extra = heartbeat_ms, election_ms, extra
        self.tls = tls
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        """``127.0.0.1:port`` of the client port.

        Complexity:
            O(1).
        """
        return f"127.0.0.1:{self.client_port}"

    @property
    def url(self) -> str:
        """The client URL: ``http://`` or, with TLS, ``https://127.0.0.1:port``.

        Complexity:
            O(1).
        """
        return f"{'https' if self.tls is not None else 'http'}://{self.endpoint}"

    def _tls_flags(self) -> list[str]:
        tls = self.tls
        if tls is None:
            return []
        flags = ["--cert-file", tls.cert, "--key-file", tls.key, "--trusted-ca-file", tls.ca]
        return flags + (["--client-cert-auth"] if tls.client is not None else [])

    def start(self, *, wait: bool = True) -> None:
        """Start the member (again, on the same data dir after a kill).

        Args:
            wait: wait until it answers ``/health`` (a member of a cluster
                answers once a leader is elected).

        Raises:
            RuntimeError: no etcd binary, or it did not come up in 20 s.

        Complexity:
            O(1) plus etcd's start-up.
        """
        binary = etcd_binary()
        if binary is None:
            raise RuntimeError("etcd not found on PATH")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        client = self.url
        peer = f"http://127.0.0.1:{self.peer_port}"
        args = [
            binary,
            "--name", self.name,
            "--data-dir", str(self.data_dir),
            "--listen-client-urls", client,
            "--advertise-client-urls", client,
            "--listen-peer-urls", peer,
            "--initial-advertise-peer-urls", peer,
            "--initial-cluster", self.cluster,
            "--initial-cluster-state", "new",
            "--heartbeat-interval", str(self.heartbeat_ms),
            "--election-timeout", str(self.election_ms),
            "--log-level", "error",
            "--logger", "zap",
            *self._tls_flags(),
            *self.extra,
        ]  # fmt: skip
        env = {k: v for k, v in os.environ.items() if not k.startswith("ETCD")}
        log = open(self.data_dir.parent / f"{self.name}.log", "ab")  # noqa: SIM115
        with log:
            self.process = subprocess.Popen(
                args, env=env, stdout=log, stderr=log, stdin=subprocess.DEVNULL
            )
        if wait:
            self.wait_healthy()

    def wait_healthy(self, timeout: float = 20.0) -> None:
        """Wait until the member answers ``/health`` with a leader.

        Raises:
            RuntimeError: it did not within ``timeout`` seconds, or exited.

        Complexity:
            O(timeout) at worst.
        """
        context = None
        if self.tls is not None:
            context = ssl.create_default_context(cafile=self.tls.ca)
            client = self.tls.client
            if client is not None and client.cert is not None:
                context.load_cert_chain(client.cert, client.key)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"etcd {self.name} exited with {self.process.returncode}")
            try:
                url = f"{self.url}/health"
                with urllib.request.urlopen(url, timeout=1, context=context) as answer:
                    if b'"true"' in answer.read():
                        return
            except OSError:
                pass
            time.sleep(0.02)
        raise RuntimeError(f"etcd {self.name} did not become healthy in {timeout} s")

    def signal(self, signum: int) -> None:
        """Send ``signum`` to the member (SIGKILL, SIGSTOP, SIGCONT...).

        Complexity:
            O(1).
        """
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signum)

    def kill(self) -> None:
        """SIGKILL the member and reap it (its data dir stays).

        Complexity:
            O(1).
        """
        if self.process is not None:
            if self.process.poll() is None:
                self.process.send_signal(signal.SIGCONT)
                self.process.kill()
            self.process.wait()
            self.process = None

    def __enter__(self) -> EtcdServer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.kill()


def start_cluster(root: str | os.PathLike[str], size: int = 3) -> list[EtcdServer]:
    """Start ``size`` members on loopback as one cluster (50 / 500 ms timing).

    Args:
        root: a directory; member i keeps its data in ``root/m<i>``.
        size: the number of members.

    Returns:
        The members, started and healthy; kill each at teardown.

    Raises:
        RuntimeError: no etcd binary, or the cluster did not come up.

    Complexity:
        O(size) members started.
    """
    peers = [(f"m{i}", free_port(), free_port()) for i in range(size)]
    cluster = ",".join(f"{name}=http://127.0.0.1:{peer}" for name, _, peer in peers)
    members = [
        EtcdServer(
            Path(root) / name,
            name=name,
            client_port=client,
            peer_port=peer,
            cluster=cluster,
            heartbeat_ms=50,
            election_ms=500,
        )
        for name, client, peer in peers
    ]
    try:
        for member in members:
            member.start(wait=False)
        for member in members:
            member.wait_healthy()
    except BaseException:
        for member in members:
            member.kill()
        raise
    return members
