"""``etcds://``: the etcd backend over TLS, with client certificates, on a real etcd.

The certificates are made here with the ``openssl`` command-line tool: a
CA, a server certificate for IP 127.0.0.1 and a client certificate
(etcd runs with ``--client-cert-auth``); a second CA that signed nothing
stands for a wrong one.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest

import dualstack_ipam
from dualstack_ipam import ClusterConfig, StoreError, StoreUnavailableError
from dualstack_ipam.durable.cluster import attach
from dualstack_ipam.store import Compare, Put
from dualstack_ipam.store.etcd import EtcdBackend, EtcdTLS
from dualstack_ipam.store.etcd_server import EtcdServer, ServerTLS, etcd_binary

SEED = ClusterConfig("10.244.0.0/16,fd00:10:244::/56", "10.96.0.0/12,fd00:10:96::/112")


@attrs.frozen
class Certs:
    ca: str
    server: ServerTLS
    client: EtcdTLS  # the CA and the client certificate, as a client passes them
    other_ca: str  # a CA that signed none of these


def _openssl(folder: Path, *args: str) -> None:
    subprocess.run(["openssl", *args], cwd=folder, check=True, capture_output=True)


def _key_and_csr(folder: Path, name: str, subject: str) -> None:
    _openssl(
        folder,
        *("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"),
        *("-nodes", "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", subject),
    )


def _ca(folder: Path, name: str) -> str:
    _openssl(
        folder,
        *("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"),
        *("-nodes", "-keyout", f"{name}.key", "-out", f"{name}.pem", "-days", "2"),
        *("-subj", f"/CN={name}"),
        *("-addext", "basicConstraints=critical,CA:TRUE"),
        *("-addext", "keyUsage=critical,keyCertSign,cRLSign"),
    )
    return str(folder / f"{name}.pem")


def _signed(folder: Path, name: str, subject: str, extensions: str) -> tuple[str, str]:
    _key_and_csr(folder, name, subject)
    (folder / f"{name}.ext").write_text(extensions)
    _openssl(
        folder,
        *("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key"),
        *("-CAcreateserial", "-out", f"{name}.pem", "-days", "2", "-extfile", f"{name}.ext"),
    )
    return str(folder / f"{name}.pem"), str(folder / f"{name}.key")


@pytest.fixture
def certs(tmp_path: Path) -> Certs:
    if etcd_binary() is None:
        pytest.skip("etcd not found on PATH (Debian: apt-get install etcd-server)")
    if shutil.which("openssl") is None:
        pytest.skip("openssl not found on PATH (Debian: apt-get install openssl)")
    folder = tmp_path / "pki"
    folder.mkdir()
    ca = _ca(folder, "ca")
    # etcd's JSON gateway dials etcd with the server's certificate: it must
    # allow client authentication too.
    server = _signed(
        folder,
        "server",
        "/CN=etcd",
        "subjectAltName=IP:127.0.0.1\n"
        "keyUsage=critical,digitalSignature,keyEncipherment\n"
        "extendedKeyUsage=serverAuth,clientAuth\n",
    )
    client = _signed(
        folder,
        "client",
        "/CN=ipam",
        "keyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=clientAuth\n",
    )
    client_tls = EtcdTLS(ca_cert=ca, cert=client[0], key=client[1])
    return Certs(ca, ServerTLS(ca, *server, client=client_tls), client_tls, _ca(folder, "other"))


@pytest.fixture
def server(certs: Certs, tmp_path: Path) -> Iterator[EtcdServer]:
    with EtcdServer(tmp_path / "m0", tls=certs.server) as member:
        member.start()
        yield member


def test_a_cluster_allocates_over_tls_with_a_client_certificate(
    certs: Certs, server: EtcdServer
) -> None:
    assert server.url.startswith("https://")
    url = f"etcds://{server.endpoint}/tls/prod"
    backend = EtcdBackend(server.endpoint, "tls/prod", tls=certs.client, timeout=2.0)
    with attach(backend, url, SEED) as cluster:
        cidrs = cluster.nodes.allocate("node-a")
        service = cluster.services.allocate_service(
            {"metadata": {"name": "web"}, "spec": {"ipFamilyPolicy": "RequireDualStack"}}
        )
    assert len(cidrs) == 2
    assert len(service["spec"]["clusterIPs"]) == 2
    # Another client (its own lease, fence and watch, all over TLS) sees them.
    again = EtcdBackend(server.endpoint, "tls/prod", tls=certs.client, timeout=2.0)
    with attach(again, url, None) as cluster:
        assert cluster.nodes.get("node-a") == cidrs
        assert cluster.nodes.allocate("node-b") != cidrs


def test_a_wrong_ca_is_refused_and_says_why(certs: Certs, server: EtcdServer) -> None:
    wrong = attrs.evolve(certs.client, ca_cert=certs.other_ca)
    backend = EtcdBackend(server.endpoint, "tls/w", tls=wrong, timeout=2.0, attempts=2)
    with pytest.raises(StoreUnavailableError, match="certificate verify failed"):
        backend.txn([Compare("k", 0)], [Put("k", b"v")])
    backend.close()
    # Nothing was written: with the right CA, the key is still free.
    with EtcdBackend(server.endpoint, "tls/w", tls=certs.client, timeout=2.0) as right:
        assert right.get("k") is None


def test_the_url_alone_trusts_only_the_public_cas(server: EtcdServer) -> None:
    """``etcds://`` uses the public CA bundle: a private CA needs ``EtcdTLS``."""
    with pytest.raises(StoreUnavailableError, match="certificate verify failed"):
        dualstack_ipam.open(f"etcds://{server.endpoint}/tls/url", SEED)


def test_without_a_client_certificate_etcd_refuses(certs: Certs, server: EtcdServer) -> None:
    anonymous = EtcdTLS(ca_cert=certs.ca)
    backend = EtcdBackend(server.endpoint, "tls/a", tls=anonymous, timeout=2.0, attempts=2)
    # etcd closes the handshake without a word: the client sees an SSL EOF
    # (or, as a plain-HTTP hang-up can, a reset connection).
    refused = "SSLError|reset by peer|Connection aborted"
    with backend, pytest.raises(StoreUnavailableError, match=refused):
        backend.get("k")


def test_plain_http_to_a_tls_port_is_refused(server: EtcdServer) -> None:
    """``etcd://`` for an ``etcds://`` endpoint: etcd hangs up on plain HTTP.

    How the hang-up reads depends on when it lands: the connection closed
    before an answer, or reset by the peer (seen in CI).
    """
    backend = EtcdBackend(server.endpoint, "tls/h", timeout=2.0, attempts=2)
    hung_up = "closed connection|reset by peer|Connection aborted"
    with backend, pytest.raises(StoreUnavailableError, match=hung_up):
        backend.get("k")


def test_etcd_role_auth_is_refused_through_the_gateway(certs: Certs, server: EtcdServer) -> None:
    """etcd's JSON gateway does not take a certificate's CN as the user.

    With etcd's authentication enabled, a request with a named client
    certificate is refused (etcd-io/etcd#10392): the backend's access
    control is ``--client-cert-auth`` alone (see docs/etcd.md).
    """
    import base64

    import requests

    def admin(path: str, body: dict[str, Any]) -> None:
        answer = requests.post(
            f"{server.url}/v3/{path}",
            json=body,
            verify=certs.ca,
            cert=(str(certs.client.cert), str(certs.client.key)),
            timeout=5,
        )
        assert answer.status_code == 200, answer.text

    prefix = base64.b64encode(b"ipam/").decode()
    admin("auth/user/add", {"name": "root", "password": "secret"})
    admin("auth/user/grant", {"user": "root", "role": "root"})
    admin("auth/role/add", {"name": "ipam"})
    perm = {
        "permType": "READWRITE",
        "key": prefix,
        "range_end": base64.b64encode(b"ipam0").decode(),
    }
    admin("auth/role/grant", {"name": "ipam", "perm": perm})
    admin("auth/user/add", {"name": "ipam", "options": {"no_password": True}})
    admin("auth/user/grant", {"user": "ipam", "role": "ipam"})
    admin("auth/enable", {})
    backend = EtcdBackend(server.endpoint, "ipam", tls=certs.client, timeout=2.0)
    with backend, pytest.raises(StoreError, match="CommonName"):
        backend.txn([Compare("k", 0)], [Put("k", b"v")])
