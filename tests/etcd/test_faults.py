"""Faults on REAL etcd under 4 allocating processes on one durable Cluster.

Each run starts 4 worker processes (``fault_worker.py``) allocating
dual-stack nodes and Services (node releases mixed in) on one prefix while
the test injects a fault, then reads what etcd holds and counts:

- duplicates: an address held by two keys (in etcd, or in what the
  workers were told);
- leaks: addresses etcd holds that no worker was told it holds (a call that
  raised, or was never answered, but committed), and alloc records no
  owner record accounts for;
- lost: addresses a worker was told it holds that etcd does not hold (a
  release that raised but committed, say).

A call that raised ``StoreUnavailableError`` must have changed nothing, so
what the workers were told is exactly what etcd must hold. Every worker
must finish (exit 0): any other exception fails the run.

Scale: the issue asks for 4 processes x 2,000 allocations. A round is
two allocations (a dual-stack node and a dual-stack Service) and every
fifth a node release, so ``ROUNDS`` = 1,000 rounds per worker are 2,000
allocations, 2,200 calls (8,800 per run). The run without faults and the
leader-kill run do all of them (the faults hit the start of the run, the
rest runs on the healed cluster); the other fault runs stop one second
after their fault schedule has finished (a stop file), at most
``ROUNDS`` rounds, to keep CI time (see docs/etcd.md for the figures).
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import attrs
import pytest

from dualstack_ipam.durable.cluster import attach
from dualstack_ipam.durable.layout import CONFIG_KEY
from dualstack_ipam.store import EtcdBackend
from dualstack_ipam.store.etcd_server import EtcdServer, etcd_binary, start_cluster

WORKER = str(Path(__file__).with_name("fault_worker.py"))
ROUNDS = 1000
"""Rounds per worker: 2,000 allocations (see the module notes)."""
CALLS = 4 * (ROUNDS * 2 + ROUNDS // 5)
"""Calls of a run whose workers do every round."""

Running = Callable[[], bool]


@attrs.frozen
class Outcome:
    """What a run did and what etcd holds after it."""

    acknowledged: int  # calls that returned
    unavailable: int  # calls that raised StoreUnavailableError
    duplicates: int
    leaks: int
    lost: int
    faults: int  # faults injected while the workers ran


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    if etcd_binary() is None:
        pytest.skip("etcd not found on PATH (Debian: apt-get install etcd-server)")
    return tmp_path


@pytest.fixture
def server(folder: Path) -> Iterator[EtcdServer]:
    with EtcdServer(folder / "m0") as member:
        member.start()
        yield member


@pytest.fixture
def members(folder: Path) -> Iterator[list[EtcdServer]]:
    started = start_cluster(folder, 3)
    yield started
    for member in started:
        member.kill()


def run(
    endpoints: str,
    folder: Path,
    faults: Callable[[Running], int],
    *,
    fencing: bool = True,
    rounds: int = ROUNDS,
    ready: bool = True,
    finish: bool = False,
) -> Outcome:
    """4 workers on one new prefix while ``faults`` runs; then count what etcd holds.

    The workers stop one second after ``faults`` returns, or with ``finish``
    once they have done all ``rounds``.
    """
    prefix = f"f/{uuid.uuid4().hex[:8]}"
    stop = folder / f"stop-{prefix[2:]}"
    extra = [] if fencing else ["nofence"]
    # Files, not pipes: a worker's 2,200 lines would fill a pipe that is
    # read only at the end, and block the worker (a hang, seen).
    logs = [
        (folder / f"{prefix[2:]}.w{n}.out", folder / f"{prefix[2:]}.w{n}.err") for n in range(4)
    ]
    workers = []
    for n, (out, err) in enumerate(logs):
        with out.open("w") as stdout, err.open("w") as stderr:
            command = [sys.executable, WORKER, endpoints, prefix, f"w{n}", str(rounds), str(stop)]
            workers.append(subprocess.Popen([*command, *extra], stdout=stdout, stderr=stderr))
    if ready:  # the faults hit allocating workers, not starting ones
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and any(w.poll() is None for w in workers):
            if all(Path(f"{stop}.w{n}.ready").exists() for n in range(4)):
                break
            time.sleep(0.05)
    injected = faults(lambda: any(w.poll() is None for w in workers))
    if not finish:
        time.sleep(1.0)  # some calls after the last fault, on a settled etcd
        stop.touch()
    acknowledged: dict[tuple[str, str], list[str]] = {}
    answered = unavailable = 0
    reasons: Counter[str] = Counter()
    for worker, (out, err) in zip(workers, logs, strict=True):
        worker.wait(timeout=300)
        assert worker.returncode == 0, err.read_text()[-3000:]
        for line in out.read_text().splitlines():
            kind, key, addresses, *why = json.loads(line)
            if kind == "unavailable":
                unavailable += 1
                reasons[why[0][:60]] += 1
            else:
                answered += 1
                acknowledged[(kind, key)] = addresses
    if reasons:
        print(f"\nStoreUnavailableError: {dict(reasons)}")
    return _count(endpoints, prefix, acknowledged, answered, unavailable, injected)


def _count(
    endpoints: str,
    prefix: str,
    acknowledged: dict[tuple[str, str], list[str]],
    answered: int,
    unavailable: int,
    injected: int,
) -> Outcome:
    backend = EtcdBackend(endpoints, prefix, timeout=5.0)
    stored: dict[tuple[str, str], list[str]] = {}
    if backend.get(CONFIG_KEY) is None:  # no worker got as far as creating the store
        allocs = len(backend.get_prefix(""))
        backend.close()
    else:
        with attach(backend, f"etcd://{endpoints}/{prefix}", None) as cluster:
            stored = {("node", k): [str(c) for c in v] for k, v in cluster.nodes.items()}
            stored |= {("service", k): [str(a) for a in v] for k, v in cluster.services.items()}
            allocs = len(backend.get_prefix("alloc/"))
    held = [a for addresses in stored.values() for a in addresses]
    told = [a for addresses in acknowledged.values() for a in addresses]
    duplicates = sum(n - 1 for n in Counter(held).values()) + sum(
        n - 1 for n in Counter(told).values()
    )
    leaks = sum(len(set(v) - set(acknowledged.get(k, []))) for k, v in stored.items())
    leaks += abs(allocs - len(held))
    lost = sum(len(set(v) - set(stored.get(k, []))) for k, v in acknowledged.items())
    return Outcome(answered, unavailable, duplicates, leaks, lost, injected)


def report(name: str, outcome: Outcome) -> None:
    print(f"\n{name}: {outcome}")


def check(outcome: Outcome, faults: int) -> None:
    assert (outcome.duplicates, outcome.leaks, outcome.lost) == (0, 0, 0), outcome
    assert outcome.faults >= faults, outcome  # the faults hit the run, not an idle etcd


def leader(members: list[EtcdServer]) -> EtcdServer:
    for member in members:
        if member.process is None:
            continue
        try:
            request = urllib.request.Request(
                f"http://{member.endpoint}/v3/maintenance/status", data=b"{}", method="POST"
            )
            with urllib.request.urlopen(request, timeout=2) as answer:
                status = json.loads(answer.read())
        except OSError:
            continue
        if status.get("leader") == status["header"]["member_id"]:
            return member
    raise AssertionError("no leader")


def kill_and_restart(server: EtcdServer, running: Running, downs: list[float]) -> int:
    """SIGKILL ``server`` once per entry of ``downs``, restarting it after that many seconds."""
    done = 0
    time.sleep(0.5)
    for down in downs:
        if not running():
            break
        server.kill()
        done += 1
        time.sleep(down)
        server.start()
        time.sleep(0.7)
    return done


# Down 0.3 s (within a read's retry budget) or 3 s (beyond it: a worker's
# call raises, and what it had in flight must be settled by the fence).
KILLS = [0.3, 3.0, 0.3, 3.0, 0.3]


def test_four_processes_without_faults(server: EtcdServer, folder: Path) -> None:
    def idle(running: Running) -> int:
        while running():
            time.sleep(0.1)
        return 0

    outcome = run(server.endpoint, folder, idle, finish=True)
    report("no faults", outcome)
    check(outcome, 0)
    assert outcome.unavailable == 0
    assert outcome.acknowledged == CALLS


def test_sigkill_a_single_server_five_times(server: EtcdServer, folder: Path) -> None:
    outcome = run(server.endpoint, folder, lambda running: kill_and_restart(server, running, KILLS))
    report("SIGKILL x5", outcome)
    check(outcome, 5)


def test_control_without_fencing_the_same_kills_leak(server: EtcdServer, folder: Path) -> None:
    outcome = run(
        server.endpoint,
        folder,
        lambda running: kill_and_restart(server, running, KILLS),
        fencing=False,
    )
    report("control, fencing off", outcome)
    assert outcome.faults == 5
    # Best effort (see docs/etcd.md): the damage needs a write that
    # committed while its answer was lost AND etcd down past the durable
    # layer's own journal read. An allocation that raised but committed is
    # a leak; a release that raised but committed is "lost" (the worker
    # still counts the addresses it no longer holds).
    if outcome.leaks + outcome.lost == 0:
        pytest.xfail(f"this control run hit no committed-but-unanswered write: {outcome}")
    assert outcome.leaks + outcome.lost > 0


def test_sigstop_longer_than_the_client_timeout(server: EtcdServer, folder: Path) -> None:
    def stop(running: Running) -> int:
        done = 0
        time.sleep(0.5)
        for _ in range(2):
            if not running():
                break
            server.signal(signal.SIGSTOP)
            done += 1
            time.sleep(2.5)  # the workers' timeout is 1 s
            server.signal(signal.SIGCONT)
            time.sleep(0.7)
        return done

    outcome = run(server.endpoint, folder, stop)
    report("SIGSTOP 2.5 s x2", outcome)
    check(outcome, 2)


def test_start_with_etcd_down(folder: Path) -> None:
    server = EtcdServer(folder / "late")

    def start_late(running: Running) -> int:
        time.sleep(1.5)
        server.start()
        time.sleep(1.5)
        return 1

    with server:
        outcome = run(server.endpoint, folder, start_late, ready=False)
    report("etcd down at start", outcome)
    check(outcome, 1)


def test_kill_the_leader_of_three_twice(members: list[EtcdServer], folder: Path) -> None:
    endpoints = ",".join(m.endpoint for m in members)

    def kill_leaders(running: Running) -> int:
        done = 0
        time.sleep(0.7)
        for _ in range(2):
            if not running():
                break
            victim = leader(members)
            victim.kill()
            done += 1
            time.sleep(1.0)
            victim.start(wait=False)
            time.sleep(1.5)
        for member in members:
            member.wait_healthy()
        return done

    outcome = run(endpoints, folder, kill_leaders, finish=True)
    report("3 members, leader killed x2", outcome)
    check(outcome, 2)
    assert outcome.acknowledged + outcome.unavailable == CALLS  # every worker finished
