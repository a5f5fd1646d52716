"""The SIGKILL drill: concurrent CLI processes on one SQLite store, killed at random instants.

Four worker processes run ``allocate-node``, ``release-node``,
``allocate-service`` and ``release-service`` through the real command line
(``dualstack_ipam.cli.main``, one fresh store connection per command, as a
process per command would) on one store, each on keys of its own. Each one
is killed with SIGKILL at a random instant, 200 kills in all, and replaced.
A worker reports on its stdout (one unbuffered ``write`` per line) the
command it starts and, once ``main`` returned, its exit code and output.

After each kill: the store opens; its invariants hold
(``Cluster._check_invariants`` and both sides'); every change the killed
worker saw exit 0 is in the store, none twice (no address held by two
keys); the one command in flight when the kill came left either the state
before it or a state it could have made; and the store's folder holds
nothing but the store and SQLite's own ``-wal`` / ``-shm``. The other
workers are stopped (SIGSTOP) while the store is checked, so that the
check reads one state, and go on afterwards.
"""

from __future__ import annotations

import json
import os
import random
import select
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import dualstack_ipam
from dualstack_ipam.cli import main
from dualstack_ipam.errors import StoreUnavailableError

REPO = Path(__file__).resolve().parents[2]
# DRILL_KILLS=N runs a longer drill (a soak) by hand; CI runs the 200.
KILLS = int(os.environ.get("DRILL_KILLS", "200"))
WORKERS = 4
KEYS = 6  # per worker and kind: few, so that allocations and releases meet
DRILL_LIMIT_S = 600.0 * max(1.0, KILLS / 200)

WORKER = r"""
import contextlib, io, json, os, random, sys, time
from dualstack_ipam.cli import main

index, seed, store, manifests = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
rng = random.Random(seed)

def say(record):
    os.write(1, (json.dumps(record) + "\n").encode())

say({"ready": True})
while True:
    i = rng.randrange(__KEYS__)
    op = rng.choice(["allocate-node", "release-node", "allocate-service", "release-service"])
    if op.endswith("-node"):
        key = f"w{index}-n{i}"
        args = [op, key]
    else:
        key = f"w{index}/s{i}"
        source = os.path.join(manifests, f"w{index}-s{i}.json")
        args = [op, "-f", source] if op == "allocate-service" else [op, key]
    say({"start": [op, key]})
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([*args, "--json", "--state", store])
    say({"done": [op, key], "code": code, "out": out.getvalue(), "err": err.getvalue(),
         "t": time.time()})
""".replace("__KEYS__", str(KEYS))


@dataclass
class Worker:
    """One worker's process and what the drill knows of its keys."""

    index: int
    proc: subprocess.Popen[bytes] | None = None
    buffer: bytes = b""
    deadline: float | None = None
    in_flight: tuple[str, str] | None = None
    acked: dict[str, tuple[str, ...]] = field(default_factory=dict)
    acks: int = 0
    # Every command's end per key, so that a finding shows how the key got there.
    history: dict[str, list[str]] = field(default_factory=dict)
    refused: Counter[int] = field(default_factory=Counter)


def _held_after(op: str, out: str) -> tuple[str, ...]:
    data = json.loads(out)
    if op == "allocate-node":
        return tuple(data["cidrs"])
    if op == "allocate-service":
        return tuple(data[0]["spec"]["clusterIPs"])
    return ()


def _read_lines(worker: Worker, rest: bytes) -> None:
    worker.buffer += rest
    *lines, worker.buffer = worker.buffer.split(b"\n")
    for line in lines:
        record = json.loads(line)
        if "ready" in record:
            worker.deadline = time.monotonic() + random.uniform(0.02, 0.5)
        elif "start" in record:
            worker.in_flight = (record["start"][0], record["start"][1])
        else:
            op, key = record["done"]
            code = record["code"]
            if code == 0:
                worker.acked[key] = _held_after(op, record["out"])
                worker.acks += 1
                outcome = " ".join(worker.acked[key])
            else:
                worker.refused[code] += 1
                outcome = " ".join(record["err"].split())[:300]
            stamp = _clock(record["t"])
            worker.history.setdefault(key, []).append(f"{stamp} {op} -> {code}: {outcome}")
            worker.in_flight = None


def _clock(seconds: float) -> str:
    """A worker's wall-clock time as the journal prints it (UTC, microseconds)."""
    return datetime.fromtimestamp(seconds, UTC).strftime("%H:%M:%S.%f")


def _store_view(url: str) -> dict[str, tuple[str, ...]]:
    with dualstack_ipam.open(url) as cluster:
        view = {key: tuple(map(str, held)) for key, held in cluster.nodes.items()}
        view.update({key: tuple(map(str, held)) for key, held in cluster.services.items()})
        # Both sides are read now: the store's check compares every record with them.
        cluster._check_invariants()
        cluster.nodes._check_invariants()
        cluster.services._check_invariants()
    return view


def _paused_view(workers: list[Worker], url: str) -> dict[str, tuple[str, ...]]:
    """The store's view while the other workers are stopped (SIGSTOP).

    The store's invariant check reads the records in several queries; a
    writer committing between them would look like a torn store. Stopped
    workers commit nothing (one may hold SQLite's write lock: WAL readers
    do not wait for it); one stopped while it holds the file exclusively
    is let go on, and the check tried again.
    """
    others = [w.proc for w in workers if w.proc is not None]
    for _ in range(100):
        for proc in others:
            proc.send_signal(signal.SIGSTOP)
        try:
            return _store_view(f"{url}?busy_timeout_ms=200")
        except StoreUnavailableError:
            # A worker was stopped holding the file exclusively (the last
            # connection's checkpoint at close): let it finish, look again.
            pass
        finally:
            for proc in others:
                proc.send_signal(signal.SIGCONT)
        time.sleep(0.01)
    raise AssertionError("the store stayed locked while the drill tried to check it")


def _check(
    worker: Worker, view: dict[str, tuple[str, ...]], findings: list[str] | None = None
) -> tuple[int, int]:
    """(lost, duplicated) for the killed worker; folds its in-flight outcome in.

    Each key found wrong is described in ``findings``: what the store holds,
    what the drill expected, and the key's history of commands.
    """
    owners = Counter(address for held in view.values() for address in held)
    duplicated = sum(count - 1 for count in owners.values() if count > 1)
    lost = 0
    flying = worker.in_flight[1] if worker.in_flight else None
    for key, expected in worker.acked.items():
        if key != flying and view.get(key, ()) != expected:
            lost += 1
            if findings is not None:
                findings.append(
                    f"{key}: stored {view.get(key, ())} expected {expected}; "
                    f"history {worker.history.get(key, [])[-6:]}"
                )
            worker.acked[key] = view.get(key, ())  # count each finding once
    if worker.in_flight is not None:
        op, key = worker.in_flight
        stored = view.get(key, ())
        before = worker.acked.get(key, ())
        possible = stored == before or (op.startswith("release") and stored == ())
        possible = possible or (op.startswith("allocate") and not before and stored != ())
        if not possible and findings is not None:
            findings.append(
                f"{key} (in flight: {op}): stored {stored} before {before}; "
                f"history {worker.history.get(key, [])[-6:]}"
            )
        lost += not possible
        worker.history.setdefault(key, []).append(f"killed in {op}: stored {' '.join(stored)}")
        worker.acked[key] = stored
        worker.in_flight = None
    return lost, duplicated


def _print_journal(url: str, findings: list[str]) -> None:
    """Print the journal entries of every key a finding names: who changed it, when."""
    keys = {finding.split(":", 1)[0].split(" ", 1)[0] for finding in findings}
    with dualstack_ipam.open(url) as cluster:
        for entry in cluster.journal():
            if entry.key in keys:
                print(
                    f"journal: {entry.key} r{entry.revision} {entry.time:%H:%M:%S.%f} "
                    f"{entry.actor} {entry.op} {' '.join(entry.addresses)}"
                )


def _start(worker: Worker, store: Path, manifests: Path, seed: int) -> None:
    worker.proc = subprocess.Popen(
        [sys.executable, "-c", WORKER, str(worker.index), str(seed), str(store), str(manifests)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    os.set_blocking(worker.proc.stdout.fileno(), False)  # type: ignore[union-attr]
    worker.buffer, worker.deadline = b"", None


def _kill(worker: Worker) -> None:
    proc = worker.proc
    assert proc is not None
    assert proc.stdout is not None
    assert proc.stderr is not None
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    os.set_blocking(proc.stdout.fileno(), True)
    _read_lines(worker, proc.stdout.read())
    proc.stdout.close()
    proc.stderr.close()
    worker.proc = None


def _check_alive(worker: Worker) -> None:
    """A worker loops until it is killed: one that exited by itself crashed."""
    proc = worker.proc
    assert proc is not None
    code = proc.poll()
    if code is not None and code != -signal.SIGKILL:
        assert proc.stderr is not None
        error = proc.stderr.read().decode(errors="replace")[-2000:]
        raise AssertionError(f"worker {worker.index} exited by itself ({code}):\n{error}")


def _write_manifests(folder: Path) -> None:
    folder.mkdir()
    for w in range(WORKERS):
        for i in range(KEYS):
            manifest = {
                "metadata": {"name": f"s{i}", "namespace": f"w{w}"},
                "spec": {"ipFamilyPolicy": "RequireDualStack"},
            }
            (folder / f"w{w}-s{i}.json").write_text(json.dumps(manifest))


# Two causes of a lost change this drill found, both fixed:
# - allocate-service read the store after its commit, and a busy store there
#   made it exit 5 with its change saved (tests/cli/test_cli_busy_after_commit.py);
# - a worker killed mid-commit left a transaction SQLite published only later
#   (after the check below had read the store without it, and the next
#   allocate-node had answered from that state): opening a store now settles
#   the log (tests/store/test_sqlite_settle.py, docs/store.md). A 2 x 1,000-kill
#   soak found it once before the fix.
# Each finding names the key, its history of commands (with the worker's
# clock, and the state a kill left in flight) and the key's journal entries.
def test_sigkill_drill(tmp_path: Path) -> None:
    folder = tmp_path / "store"
    folder.mkdir()
    store = folder / "ipam.db"
    manifests = tmp_path / "manifests"
    _write_manifests(manifests)
    assert (
        main(
            [
                "init",
                "--state",
                str(store),
                "--cluster-cidr=10.244.0.0/16,fc00::/24",
                "--service-cluster-ip-range=10.96.0.0/24,fd00:10:96::/112",
            ]
        )
        == 0
    )
    url = f"sqlite://{store}"
    workers = [Worker(i) for i in range(WORKERS)]
    started = kills = lost = duplicated = 0
    findings: list[str] = []
    rng = random.Random(9)
    # A bound on the whole drill, so that a fault shows as a failure, not a hang.
    give_up = time.monotonic() + DRILL_LIMIT_S
    try:
        while kills < KILLS:
            assert time.monotonic() < give_up, f"the drill did not finish ({kills} kills)"
            for worker in workers:
                if worker.proc is None and started < KILLS:
                    _start(worker, store, manifests, rng.randrange(2**32))
                    started += 1
            running = [w for w in workers if w.proc is not None]
            pipes = {w.proc.stdout.fileno(): w for w in running}  # type: ignore[union-attr]
            ready, _, _ = select.select(list(pipes), [], [], 0.01)
            for fd in ready:
                _read_lines(pipes[fd], os.read(fd, 1 << 16))
            now = time.monotonic()
            for worker in running:
                _check_alive(worker)
                if worker.deadline is not None and now >= worker.deadline:
                    _kill(worker)
                    kills += 1
                    found_lost, found_dup = _check(worker, _paused_view(workers, url), findings)
                    lost += found_lost
                    duplicated += found_dup
                    assert set(os.listdir(folder)) <= {"ipam.db", "ipam.db-wal", "ipam.db-shm"}
    finally:
        for worker in workers:
            if worker.proc is not None:
                worker.proc.kill()
                worker.proc.wait()
    view = _store_view(url)
    for worker in workers:
        found_lost, found_dup = _check(worker, view, findings)
        lost += found_lost
        duplicated += found_dup
    acks = sum(worker.acks for worker in workers)
    refused = sum((worker.refused for worker in workers), Counter[int]())
    print(
        f"SIGKILL drill: kills={kills} exit-0 commands={acks} lost={lost} "
        f"duplicated={duplicated} non-zero exits={dict(refused)}"
    )
    for finding in findings:
        print("finding:", finding)
    if findings:
        _print_journal(url, findings)
    assert kills == KILLS
    assert (lost, duplicated) == (0, 0), findings
    held: Any = [key for key in view if view[key]]
    assert held  # the drill did allocate
