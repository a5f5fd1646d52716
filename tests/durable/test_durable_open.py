"""dualstack_ipam.open: URLs, creating and reopening stores, config checks."""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path
from random import Random
from typing import Any

import pytest

import dualstack_ipam
from dualstack_ipam import (
    ClusterConfig,
    FamilyNotConfiguredError,
    InvalidConfigError,
    StoreError,
    StoreUnavailableError,
)
from dualstack_ipam.durable import FORMAT, parse_url
from dualstack_ipam.store.etcd_server import free_port

SEED = ClusterConfig("10.244.0.0/16,fc00::/24", "10.96.0.0/12,fd00:10:96::/112")
NODES_ONLY = ClusterConfig("10.244.0.0/16")


def url(path: Path) -> str:
    return f"sqlite://{path}"


def store_rows(path: Path) -> list[tuple[Any, ...]]:
    with sqlite3.connect(path) as conn:
        return sorted(conn.execute("SELECT key, value, revision FROM kv").fetchall())


# ------------------------------------------------------------------ URLs


@pytest.mark.parametrize(
    ("text", "scheme", "path"),
    [
        ("memory://", "memory", ""),
        ("sqlite:///var/lib/ipam.db", "sqlite", "/var/lib/ipam.db"),
        ("sqlite:relative/ipam.db", "sqlite", "relative/ipam.db"),
        ("sqlite:ipam.db?synchronous=NORMAL", "sqlite", "ipam.db"),
        ("sqlite:///a%20b.db", "sqlite", "/a b.db"),
        ("etcd://10.0.0.1:2379/ipam", "etcd", "ipam"),
        ("etcds://a.example:2379,b.example:2379/ipam/prod", "etcds", "ipam/prod"),
        ("etcd://[fd00::1]:2379/", "etcd", ""),
    ],
)
def test_urls_that_parse(text: str, scheme: str, path: str) -> None:
    parsed = parse_url(text)
    assert (parsed.scheme, parsed.path) == (scheme, path)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "not a non-empty str"),
        (None, "not a non-empty str"),
        (b"memory://", "not a non-empty str"),
        ("ipam.db", "no scheme"),
        ("redis://localhost", "unknown scheme 'redis'"),
        ("memory://x", "takes no path"),
        ("sqlite:", "no file path"),
        ("sqlite://", "no file path"),
        ("sqlite://host/ipam.db", "a host ('host') is not allowed"),
        ("sqlite:////abs.db", "starting with '//'"),
        ("sqlite:ipam.db?cache=shared", "unknown settings ['cache']"),
        ("sqlite:ipam.db?synchronous=FULL&synchronous=OFF", "given twice"),
        ("sqlite:ipam.db#frag", "fragment"),
        (" sqlite:ipam.db", "blank"),
        ("etcd:///prefix", "no host:port"),
        ("etcd://host/prefix", "bad endpoint 'host'"),
        ("etcd://host:99999/prefix", "bad endpoint"),
        ("etcd://ho st:2379/prefix", "bad endpoint"),
    ],
)
def test_malformed_urls_are_invalid_config(text: Any, message: str) -> None:
    with pytest.raises(InvalidConfigError, match="bad store URL") as info:
        dualstack_ipam.open(text, SEED)
    assert message in str(info.value)
    assert repr(text) in str(info.value)


def test_etcd_with_no_member_listening_is_unavailable() -> None:
    with pytest.raises(StoreUnavailableError):
        dualstack_ipam.open(f"etcd://127.0.0.1:{free_port()}/ipam", SEED)


def test_bad_sqlite_setting(tmp_path: Path) -> None:
    with pytest.raises(InvalidConfigError, match="busy_timeout_ms"):
        dualstack_ipam.open(f"sqlite://{tmp_path}/a.db?busy_timeout_ms=soon", SEED)
    with pytest.raises(InvalidConfigError):
        dualstack_ipam.open(f"sqlite://{tmp_path}/a.db?synchronous=OFF", SEED)
    assert os.listdir(tmp_path) == []


# ------------------------------------------------------------ creating


def test_memory_stores_are_not_shared() -> None:
    one = dualstack_ipam.open("memory://", SEED)
    one.nodes.allocate("a")
    two = dualstack_ipam.open("memory://", SEED)
    assert len(two.nodes) == 0
    with pytest.raises(InvalidConfigError, match="empty: creating it needs a config"):
        dualstack_ipam.open("memory://")


def test_sqlite_absolute_and_relative(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with dualstack_ipam.open(url(tmp_path / "abs.db"), SEED) as cluster:
        cluster.nodes.allocate("a")
    monkeypatch.chdir(tmp_path)
    with dualstack_ipam.open("sqlite:abs.db") as cluster:
        assert cluster.nodes.get("a") is not None
        assert cluster.config == SEED
    with dualstack_ipam.open("sqlite:sub%20dir.db", NODES_ONLY) as cluster:
        assert cluster.config == NODES_ONLY
    assert sorted(os.listdir(tmp_path)) == ["abs.db", "sub dir.db"]


def test_the_config_record_is_written_once(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    dualstack_ipam.open(url(path), SEED, node_strategy="lowest").close()
    ((key, value, revision),) = store_rows(path)
    assert (key, revision) == (b"config", 1)
    data = json.loads(value)
    assert data == {
        "format": FORMAT,
        "config": SEED.to_dict(),
        "node_strategy": "lowest",
        "service_strategy": "random",
        "cooldown": 0,
    }


def test_reopening_uses_the_stored_settings(tmp_path: Path) -> None:
    path = url(tmp_path / "s.db")
    with dualstack_ipam.open(path, SEED, node_strategy="lowest", service_strategy="sequential"):
        pass
    with dualstack_ipam.open(path) as cluster:
        assert cluster.settings == {
            "node_strategy": "lowest",
            "service_strategy": "sequential",
            "cooldown": 0,
        }
        assert cluster.nodes.strategy == "lowest"
        assert cluster.services.allocate("a") == dualstack_ipam.ServiceIPAllocator(
            SEED, strategy="sequential"
        ).allocate("a")
    with dualstack_ipam.open(path, SEED, node_strategy="lowest", cooldown=0) as cluster:
        assert cluster.config is SEED


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"config": NODES_ONLY}, "config"),
        ({"node_strategy": "next-fit"}, "node_strategy"),
        ({"service_strategy": "random"}, "service_strategy"),
    ],
)
def test_reopening_with_other_settings_is_refused(
    tmp_path: Path, kwargs: dict[str, Any], name: str
) -> None:
    path = tmp_path / "s.db"
    dualstack_ipam.open(url(path), SEED, node_strategy="lowest", service_strategy="sequential")
    before = store_rows(path)
    with pytest.raises(InvalidConfigError, match=f"was created with {name}="):
        dualstack_ipam.open(url(path), **kwargs)
    assert store_rows(path) == before


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"node_strategy": "best-fit"}, "best-fit"),
        ({"service_strategy": "lowest"}, "lowest"),
        ({"node_strategy": 3}, "node_strategy must be a str"),
        ({"cooldown": -1}, "cooldown must be a number of seconds >= 0"),
        ({"cooldown": True}, "cooldown must be"),
        ({"cooldown": float("nan")}, "cooldown must be a finite number"),
        ({"clock": 5}, "clock must be a callable"),
        ({"actor": ""}, "actor must be a non-empty str"),
        ({"rng": 5}, "rng must be a random.Random"),
        ({"config": "10.0.0.0/8"}, "config must be a ClusterConfig"),
    ],
)
def test_bad_arguments_create_nothing(tmp_path: Path, kwargs: dict[str, Any], message: str) -> None:
    arguments = {"config": SEED, **kwargs}
    with pytest.raises(InvalidConfigError, match=message):
        dualstack_ipam.open(url(tmp_path / "s.db"), **arguments)
    if (tmp_path / "s.db").exists():  # strategies are checked once the file is open
        assert store_rows(tmp_path / "s.db") == []


def test_newer_format_is_refused_naming_both(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    dualstack_ipam.open(url(path), SEED).close()
    with sqlite3.connect(path) as conn:
        value = json.dumps(
            {**json.loads(conn.execute("SELECT value FROM kv").fetchone()[0]), "format": FORMAT + 1}
        )
        conn.execute("UPDATE kv SET value = ? WHERE key = ?", (value.encode(), b"config"))
    with pytest.raises(InvalidConfigError, match=f"format {FORMAT + 1}.*reads \\({FORMAT}\\)"):
        dualstack_ipam.open(url(path))


def test_corrupt_config_record(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    dualstack_ipam.open(url(path), SEED).close()
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE kv SET value = ? WHERE key = ?", (b"{nope", b"config"))
    with pytest.raises(StoreError, match="corrupt config record"):
        dualstack_ipam.open(url(path))


def test_foreign_file_is_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "dualstack-ipam-state.json"
    path.write_text('{"kind": "dualstack-ipam-state"}')
    with pytest.raises(StoreError):
        dualstack_ipam.open(url(path), SEED)
    assert path.read_text() == '{"kind": "dualstack-ipam-state"}'


def test_services_need_a_service_range() -> None:
    cluster = dualstack_ipam.open("memory://", NODES_ONLY)
    with pytest.raises(FamilyNotConfiguredError, match="no Service range"):
        _ = cluster.services
    assert cluster.export()["services"] is None


def test_actor_and_rng(tmp_path: Path) -> None:
    cluster = dualstack_ipam.open("memory://", SEED, actor="ci@runner", rng=Random(7))
    got = cluster.services.allocate("a")
    assert got == dualstack_ipam.ServiceIPAllocator(SEED, rng=Random(7)).allocate("a")
    assert [entry.actor for entry in cluster.journal()] == ["ci@runner"]
    default = dualstack_ipam.open("memory://", SEED)
    assert default.actor.endswith(f":{os.getpid()}")
    assert "@" in default.actor


def test_closed_cluster_raises_store_error(tmp_path: Path) -> None:
    cluster = dualstack_ipam.open(url(tmp_path / "s.db"), SEED)
    nodes = cluster.nodes
    nodes.allocate("a")
    with cluster:
        pass
    for call in (
        lambda: nodes.allocate("b"),
        lambda: nodes.get("a"),
        cluster.refresh,
        lambda: list(cluster.journal()),
        lambda: len(nodes),
    ):
        with pytest.raises(StoreError):
            call()
    cluster.close()
