"""``reserve``, ``unreserve``, ``add-range`` and ``stats`` on the store."""

from __future__ import annotations

from pathlib import Path

import pytest
from cli_support import error_line, invoke, ok_json, store_state


@pytest.fixture
def state(tmp_path: Path) -> str:
    """A store path (not created yet: the default cluster)."""
    return str(tmp_path / "ipam.db")


def test_reserve_goes_to_the_allocator_whose_range_it_touches(state: str) -> None:
    nodes = ok_json("reserve", "10.244.0.0/23", "--reason", "lab", "--state", state)
    assert nodes == {
        "range": "10.244.0.0/23",
        "kind": "node_cidrs",
        "family": "IPv4",
        "reserved": 2,
        "reason": "lab",
    }
    services = ok_json("reserve", "10.96.0.200-10.96.0.254", "--state", state)
    assert (services["kind"], services["reserved"], services["reason"]) == ("service_ips", 55, "")
    v6 = ok_json("reserve", "fd00:10:96::7", "--state", state)
    assert (v6["kind"], v6["family"], v6["reserved"]) == ("service_ips", "IPv6", 1)
    # Held across runs: nothing is handed out of it.
    assert ok_json("allocate-node", "a", "--state", state)["cidrs"][0] == "10.244.2.0/24"
    stats = ok_json("stats", "--state", state)
    assert stats["nodes"]["IPv4"]["reserved"] == 2
    assert stats["services"]["IPv4"]["reserved"] == 55
    assert stats["services"]["IPv6"]["reserved"] == 1
    ops = [entry["op"] for entry in ok_json("log", "--state", state)]
    assert ops.count("reserve") == 3


def test_reserve_text(state: str) -> None:
    result = invoke("reserve", "10.244.8.0/22", "--reason", "lab", "--state", state)
    assert result.exit_code == 0, result.stderr
    assert (
        result.stdout == "reserved 10.244.8.0/22 in the IPv4 node CIDRs: 4 newly reserved (lab)\n"
    )


def test_unreserve_frees_only_reserved_slots(state: str) -> None:
    ok_json("reserve", "10.244.8.0/22", "--state", state)
    freed = ok_json("unreserve", "10.244.8.0/23", "--state", state)
    assert freed == {"range": "10.244.8.0/23", "kind": "node_cidrs", "family": "IPv4", "freed": 2}
    again = invoke("unreserve", "10.244.8.0/23", "--state", state)
    assert again.exit_code == 0
    assert again.stdout == "freed 0 reserved IPv4 node CIDRs in 10.244.8.0/23\n"
    assert ok_json("stats", "--state", state)["nodes"]["IPv4"]["reserved"] == 2


def test_reserve_over_allocated_space_exits_1_and_changes_nothing(state: str) -> None:
    ok_json("allocate-node", "a", "--state", state)
    before = store_state(state)
    result = invoke("reserve", "10.244.0.0/22", "--state", state)
    assert result.exit_code == 1
    assert "10.244.0.0/22" in error_line(result.stderr)
    assert store_state(state) == before


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["reserve", "nonsense"], "'nonsense'"),
        (["reserve", "192.168.0.0/24"], "'192.168.0.0/24'"),
        (["reserve", "10.96.0.9-10.96.0.1"], "ends before it starts"),
        (["reserve", "10.96.0.1-fd00::1"], "mixes IPv4 and IPv6"),
        (["unreserve", "nonsense"], "'nonsense'"),
        (["add-range", "nonsense"], "'nonsense'"),
        (["add-range", "10.0.0.0/8"], "overlaps the IPv4 cluster CIDR 10.244.0.0/16"),
        (["add-range", "10.96.0.0/8", "--service"], "'10.96.0.0/8'"),
    ],
)
def test_bad_ranges_exit_2_and_create_nothing(
    tmp_path: Path, state: str, args: list[str], says: str
) -> None:
    result = invoke(*args, "--state", state)
    assert result.exit_code == 2, result.stdout
    assert says in error_line(result.stderr)
    assert list(tmp_path.iterdir()) == []  # the missing store was not created


def test_arguments_are_required() -> None:
    for command in ("reserve", "unreserve", "add-range"):
        result = invoke(command)
        assert result.exit_code == 2
        assert "Missing argument" in error_line(result.stderr)


def test_add_range_grows_the_node_cidrs(tmp_path: Path) -> None:
    state = str(tmp_path / "small.db")
    init = invoke(
        "init", "--cluster-cidr=10.244.0.0/23", "--node-cidr-mask-size=24", "--state", state
    )
    assert init.exit_code == 0, init.stderr
    added = ok_json("add-range", "10.245.0.0/24", "--state", state)
    assert added == {
        "cidr": "10.245.0.0/24",
        "kind": "node_cidrs",
        "family": "IPv4",
        "ranges": ["10.244.0.0/23", "10.245.0.0/24"],
    }
    got = [ok_json("allocate-node", name, "--state", state)["cidrs"] for name in "abc"]
    assert got == [["10.244.0.0/24"], ["10.244.1.0/24"], ["10.245.0.0/24"]]
    assert invoke("allocate-node", "d", "--state", state).exit_code == 1  # all full
    text = invoke("stats", "--state", state).stdout
    assert "10.244.0.0/23, 10.245.0.0/24" in text
    assert ok_json("stats", "--state", state)["nodes"]["IPv4"]["capacity"] == 3
    again = invoke("add-range", "10.245.0.0/24", "--state", state)
    assert again.exit_code == 2  # overlaps itself


def test_service_commands_need_a_service_range(tmp_path: Path) -> None:
    state = str(tmp_path / "v4.db")
    assert invoke("init", "--cluster-cidr=10.244.0.0/16", "--state", state).exit_code == 0
    result = invoke("add-range", "10.97.0.0/24", "--service", "--state", state)
    assert result.exit_code == 2
    assert "has no Service range" in error_line(result.stderr)
    stats = ok_json("stats", "--state", state)
    assert stats["services"] is None
    assert set(stats["nodes"]) == {"IPv4", "totals"}
    # A range outside the cluster CIDR goes to the node CIDRs, which refuse it.
    assert invoke("reserve", "10.96.0.0/24", "--state", state).exit_code == 2


def test_stats_shape_and_big_counts(state: str) -> None:
    stats = ok_json("stats", "--state", state)
    assert set(stats) == {"nodes", "services"}
    assert stats["nodes"]["IPv6"] == {
        "capacity": 2**40,
        "used": 0,
        "free": 2**40,
        "reserved": 0,
        "cooling": 0,
    }
    assert set(stats["services"]["totals"]) == {"allocations", "releases", "errors"}
    big = tmp_state_with_slash_64_services(Path(state).parent)
    v6 = ok_json("stats", "--state", big)["services"]["IPv6"]
    assert v6["capacity"] == str(2**64 - 1)  # beyond 2**53: a decimal string
    lines = invoke("stats", "--state", state).stdout.splitlines()
    assert lines[0].split() == [
        "RANGE",
        "FAMILY",
        "CAPACITY",
        "USED",
        "FREE",
        "RESERVED",
        "COOLING",
        "CIDRS",
    ]
    assert lines[1].split() == [
        "node",
        "CIDRs",
        "IPv4",
        "256",
        "0",
        "256",
        "0",
        "0",
        "10.244.0.0/16",
    ]


def tmp_state_with_slash_64_services(folder: Path) -> str:
    path = str(folder / "big.db")
    flags = ["--cluster-cidr=fc00::/48", "--service-cluster-ip-range=fd00::/64"]
    assert invoke("init", *flags, "--state", path).exit_code == 0
    return path


def test_add_range_grows_the_service_ips(tmp_path: Path) -> None:
    state = str(tmp_path / "svc.db")
    flags = ["--cluster-cidr=10.244.0.0/16", "--service-cluster-ip-range=10.96.0.0/29"]
    assert invoke("init", *flags, "--state", state).exit_code == 0
    added = ok_json("add-range", "10.97.0.0/28", "--service", "--state", state)
    assert added == {
        "cidr": "10.97.0.0/28",
        "kind": "service_ips",
        "family": "IPv4",
        "ranges": ["10.96.0.0/29", "10.97.0.0/28"],
    }
    # A requested address of the new range is taken; the stats count both ranges.
    manifest = "metadata: {name: web}\nspec: {clusterIP: 10.97.0.5}\n"
    result = invoke("allocate-service", "-f", "-", "--state", state, input=manifest)
    assert result.exit_code == 0, result.stderr
    stats = ok_json("stats", "--state", state)["services"]["IPv4"]
    assert stats["capacity"] == 6 + 14
    assert stats["used"] == 1
    assert "10.96.0.0/29, 10.97.0.0/28" in invoke("stats", "--state", state).stdout
    # Reserving in the new range goes to the Service IPs.
    reserved = ok_json("reserve", "10.97.0.8-10.97.0.9", "--state", state)
    assert (reserved["kind"], reserved["reserved"]) == ("service_ips", 2)
