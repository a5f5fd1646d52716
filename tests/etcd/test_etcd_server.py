"""The throw-away etcd servers' ports (no etcd needed)."""

from __future__ import annotations

import socket

from dualstack_ipam.store.etcd_server import ephemeral_ports, free_port


def test_free_ports_are_outside_the_ephemeral_range() -> None:
    """Outgoing connections take their source port from the ephemeral range:
    a server port chosen there could be taken before etcd binds it (seen:
    etcd exited with "address already in use" while 4 clients retried
    against it in test_start_with_etcd_down)."""
    first, last = ephemeral_ports()
    for _ in range(50):
        port = free_port()
        assert not first <= port <= last, port
        with socket.socket() as sock:  # and it is free
            sock.bind(("127.0.0.1", port))
