"""Draw the performance page's plots from the committed benchmark results.

Run from the repository root, after ``pip install -e '.[bench]'``::

    python -m benchmarks.plots

It reads ``benchmarks/results/hot_path.json``,
``benchmarks/results/bitmap_designs.json``,
``benchmarks/results/store.json``, ``benchmarks/results/etcd.json`` and
``benchmarks/results/restart.json`` (written by
``python -m benchmarks.bench_hot_path --json ...``,
``python -m benchmarks.bitmap_designs --json ...``,
``python -m benchmarks.bench_store --json ...``,
``python -m benchmarks.bench_etcd --json ...`` and
``python -m benchmarks.bench_restart --json ...``) and writes PNG files to
``docs/_static/perf/``. It measures nothing itself.
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
OUT = ROOT / "docs" / "_static" / "perf"

POOLS = ["IPv4 /24", "IPv4 /16", "IPv4 /12", "IPv6 /112", "IPv6 /64"]
SUBNET_POOLS = ["10.0.0.0/8->/24", "fc00::/24->/64"]
FILLS = [0.0, 0.5, 0.99, 0.999]
FILL_LABELS = ["0 %", "50 %", "99 %", "99.9 %"]


def _load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((RESULTS / name).read_text())
    return data


def _case(cases: list[dict[str, Any]], pool: str, strategy: str, op: str) -> list[Any]:
    """ns/op per fill level (in FILLS order) for one pool, strategy and op."""
    by_fill = {
        round(c["fill"], 4): c
        for c in cases
        if c["pool"] == pool and c["strategy"] == strategy and c["op"] == op
    }
    return [by_fill.get(round(f, 4)) for f in FILLS]


def plot_fill(plt: Any, cases: list[dict[str, Any]]) -> Path:
    """allocate_next ns/op against fill level, one line per pool, floor dashed."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
    for ax, strategy in zip(axes, ("random", "sequential"), strict=True):
        floors = []
        for pool in POOLS:
            row = _case(cases, pool, strategy, "allocate_next")
            ax.plot(FILL_LABELS, [c["ns"] if c else None for c in row], marker="o", label=pool)
            floors += [c["floor_ns"] for c in row if c]
        for pool in SUBNET_POOLS:
            row = _case(cases, pool, "next-fit", "allocate_next")
            if strategy == "sequential" and any(row):
                ax.plot(
                    FILL_LABELS,
                    [c["ns"] if c else None for c in row],
                    marker="s",
                    linestyle=":",
                    label=f"SubnetPool {pool}",
                )
        floor = sorted(floors)[len(floors) // 2]
        ax.axhline(floor, color="black", linestyle="--", linewidth=1, label="floor")
        ax.axhline(2 * floor, color="grey", linestyle=":", linewidth=1, label="2 x floor")
        ax.set_title(f"allocate_next, {strategy}")
        ax.set_xlabel("fill level (IPv6 /64 and fc00::/24: same counts as 2**20)")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("ns per call (median)")
    axes[0].set_ylim(bottom=0)
    axes[1].legend(fontsize=7, loc="lower right")
    return _save(plt, fig, "allocate_next_by_fill.png")


def plot_ratios(plt: Any, cases: list[dict[str, Any]], naive: list[dict[str, Any]]) -> Path:
    """Ratio to the floor (all pools) and speed-up over the naive IPSet allocator."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    width = 0.8 / len(POOLS)
    for k, pool in enumerate(POOLS):
        row = _case(cases, pool, "random", "allocate_next")
        xs = [i + k * width for i in range(len(FILLS))]
        left.bar(xs, [c["x_floor"] if c else 0 for c in row], width, label=pool)
    left.axhline(2.0, color="grey", linestyle=":", label="goal: 2 x floor")
    left.axhline(1.0, color="black", linestyle="--", linewidth=1)
    left.set_xticks([i + 0.4 - width / 2 for i in range(len(FILLS))], FILL_LABELS)
    left.set_title("allocate_next (random) / floor")
    left.legend(fontsize=8, loc="lower right")
    naive_ns: dict[tuple[str, float], float] = {
        (n["pool"], round(n["fill"], 4)): n["ns"] for n in naive if n["op"] == "allocate_next"
    }
    pools = sorted({pool for pool, _ in naive_ns}, key=POOLS.index)
    width = 0.8 / max(1, len(pools))
    for k, pool in enumerate(pools):
        row = _case(cases, pool, "random", "allocate_next")
        speedups = [
            naive_ns.get((pool, round(f, 4)), 0) / c["ns"] if c else 0
            for f, c in zip(FILLS, row, strict=True)
        ]
        xs = [i + k * width for i in range(len(FILLS))]
        right.bar(xs, speedups, width, label=pool)
    right.set_yscale("log")
    right.set_xticks([i + 0.4 - width / 2 for i in range(len(FILLS))], FILL_LABELS)
    right.set_title("naive netaddr.IPSet allocator / dualstack_ipam (x faster)")
    right.legend(fontsize=8)
    return _save(plt, fig, "ratios.png")


def plot_memory(plt: Any, hot: dict[str, Any]) -> Path:
    """Bytes per slot of dense pools and per allocation of the sparse one."""
    fig, ax = plt.subplots(figsize=(8, 3.8))
    labels, values = [], []
    for row in hot["memory_dense"]:
        labels.append(f"{row['pool']}\n{row['fill']:.1%} full\n(B/slot)")
        values.append(row.get("bitmap_bytes_per_slot", row["bytes_per_slot_less_fixed"]))
    sparse = hot["memory_sparse"]
    labels.append(f"{sparse['pool']}\n{sparse['allocations']:,} allocs\n(B/allocation)")
    values.append(sparse["bytes_per_allocation"])
    bars = ax.bar(labels, values, color="tab:blue")
    ax.bar_label(bars, fmt="%.3f", fontsize=8)
    ax.axhline(16, color="grey", linestyle=":", label="goal for sparse: 16 B/allocation")
    ax.axhline(74, color="tab:red", linestyle="--", label="a Python set: ~74 B/element")
    ax.set_yscale("log")
    ax.set_ylabel("bytes (log scale)")
    ax.set_title("memory: dense pools per slot, sparse pool per allocation")
    ax.legend(fontsize=8)
    return _save(plt, fig, "memory.png")


def plot_designs(plt: Any, designs: dict[str, Any]) -> Path:
    """take_free ns/op against universe size, per bitmap design, at 99.9 % fill."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
    for ax, pattern in zip(axes, ("random", "bottom"), strict=True):
        series: dict[str, list[tuple[int, float]]] = defaultdict(list)
        for row in designs["rows"]:
            if (
                row["pattern"] == pattern
                and abs(row["fill"] - 0.999) < 0.002
                and row["ns_take_free"]
            ):
                series[row["design"]].append((row["size_bits"], row["ns_take_free"]))
        for design, points in sorted(series.items()):
            points.sort()
            ax.plot(
                [f"2**{b}" for b, _ in points], [ns for _, ns in points], marker="o", label=design
            )
        ax.set_title(f"take_free at 99.9 % fill, {pattern} fill")
        ax.set_xlabel("universe size (slots)")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("ns per call (median)")
    axes[0].set_ylim(bottom=0)
    axes[1].legend(fontsize=8)
    return _save(plt, fig, "bitmap_designs.png")


def plot_store_size(plt: Any, store: dict[str, Any]) -> Path:
    """Store file bytes per allocated address and open times against the allocations."""
    rows = [r for r in store["store_size"] if r["services"]]
    counts = [r["addresses"] for r in rows]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.0))
    left.plot(counts, [r["bytes_per_address"] for r in rows], "o-", label="whole file")
    left.plot(
        counts,
        [r["marginal_bytes_per_address"] for r in rows],
        "s--",
        label="less the empty store",
    )
    left.set_xscale("log")
    left.set_ylim(0, 1.3 * max(r["bytes_per_address"] for r in rows))
    left.set_xlabel("allocated addresses (2 per dual-stack Service)")
    left.set_ylabel("bytes per allocated address")
    left.set_title("SQLite store size")
    left.legend(fontsize=8, loc="lower right")
    right.plot(counts, [r["open_read_all_s"] * 1e3 for r in rows], "o-", label="open + read all")
    right.plot(
        counts,
        [r["open_get_one_s"] * 1e3 for r in rows],
        "s--",
        label="open + get one key (a short command)",
    )
    right.set_xscale("log")
    right.set_yscale("log")
    right.set_xlabel("allocated addresses (2 per dual-stack Service)")
    right.set_ylabel("ms (median)")
    right.set_title("open time")
    right.legend(fontsize=8)
    for ax in (left, right):
        ax.grid(alpha=0.3)
    return _save(plt, fig, "store_size.png")


def plot_store_cli(plt: Any, store: dict[str, Any]) -> Path:
    """CLI mutation wall time on an empty store and on one with many Services."""
    rows = store["cli"]
    big = store["big_services"]
    fig, ax = plt.subplots(figsize=(8, 3.8))
    xs = range(len(rows))
    width = 0.38
    empty = ax.bar(
        [x - width / 2 for x in xs], [r["empty"] * 1e3 for r in rows], width, label="empty store"
    )
    full = ax.bar(
        [x + width / 2 for x in xs],
        [r["full"] * 1e3 for r in rows],
        width,
        label=f"{big:,} dual-stack Services",
    )
    ax.bar_label(empty, fmt="%.0f", fontsize=8)
    ax.bar_label(
        full, labels=[f"{r['full'] * 1e3:.0f} ({r['ratio']:.2f}x)" for r in rows], fontsize=8
    )
    ax.set_xticks(list(xs), [r["command"] for r in rows])
    ax.set_ylabel("ms per command (subprocess, median)")
    ax.set_title("CLI mutation: goal <= 1.5x the empty store")
    ax.legend(fontsize=8)
    return _save(plt, fig, "store_cli.png")


def plot_etcd(plt: Any, etcd: dict[str, Any]) -> Path:
    """Durable allocations on etcd against raw etcd3gw creates: rates, ratios, CPU."""
    rows = etcd["concurrency"]
    kinds = [
        ("raw", "raw etcd3gw create"),
        ("nodes", "durable nodes"),
        ("services", "durable Services"),
    ]
    if any(r["kind"] == "raw-ours" for r in rows):
        kinds.insert(1, ("raw-ours", "raw create, our session"))
    durable = [(kind, label) for kind, label in kinds if not kind.startswith("raw")]
    counts = sorted({r["processes"] for r in rows})
    cell = {(r["kind"], r["processes"]): r for r in rows}
    fig, (rates, ratios, cpu) = plt.subplots(1, 3, figsize=(13, 4.0))
    for k, (kind, label) in enumerate(kinds):
        rates.plot(
            counts, [cell[kind, n]["ops_per_s"] for n in counts], "o-", color=f"C{k}", label=label
        )
    rates.set_xticks(counts)
    rates.set_xlabel("processes")
    rates.set_ylabel("allocations per second (sum)")
    rates.set_ylim(bottom=0)
    rates.set_title("rate (median of the rounds)")
    rates.legend(fontsize=8)
    bases: list[tuple[str, str, str | None]] = [("x_raw", "/ raw", None)]
    if any("x_ours" in r for r in rows):
        bases.append(("x_ours", "/ raw-ours", "//"))
    width = 0.8 / (len(durable) * len(bases))
    k = 0
    for kind, label in durable:
        color = f"C{[name for name, _ in kinds].index(kind)}"
        for field, against, hatch in bases:
            xs = [i + (k - (len(durable) * len(bases) - 1) / 2) * width for i in range(len(counts))]
            bars = ratios.bar(
                xs,
                [cell[kind, n][field] for n in counts],
                width,
                color=color,
                alpha=0.5 if hatch else 1.0,
                hatch=hatch,
                label=f"{label} {against}",
            )
            ratios.bar_label(bars, fmt="%.2f", fontsize=7)
            k += 1
    ratios.axhline(0.7, color="grey", linestyle=":", label="goal: 0.7 x raw")
    ratios.axhline(1.0, color="black", linestyle="--", linewidth=1)
    ratios.set_xticks(range(len(counts)), [str(n) for n in counts])
    ratios.set_xlabel("processes")
    ratios.set_title("durable / raw (same run)")
    highest = max(
        cell[kind, n][field] for kind, _ in durable for n in counts for field, _, _ in bases
    )
    ratios.set_ylim(0, max(1.45, highest * 1.45))  # the legend above the bars
    ratios.legend(fontsize=7, loc="upper right", ncol=2)
    width = 0.8 / len(kinds)
    for k, (kind, label) in enumerate(kinds):
        xs = [i + (k - (len(kinds) - 1) / 2) * width for i in range(len(counts))]
        client = [cell[kind, n]["client_cpu_ms"] for n in counts]
        server = [cell[kind, n]["etcd_cpu_ms"] or 0.0 for n in counts]
        cpu.bar(xs, client, width, label=f"{label}: client", color=f"C{k}")
        cpu.bar(xs, server, width, bottom=client, color=f"C{k}", alpha=0.45, hatch="//")
    cpu.set_xticks(range(len(counts)), [str(n) for n in counts])
    cpu.set_xlabel("processes")
    cpu.set_ylabel("CPU ms per allocation")
    cpu.set_title("CPU per allocation: client, etcd (hatched)")
    top = max(
        cell[kind, n]["client_cpu_ms"] + (cell[kind, n]["etcd_cpu_ms"] or 0.0)
        for kind, _ in kinds
        for n in counts
    )
    cpu.set_ylim(0, top * 1.5)  # the legend above the bars
    cpu.legend(fontsize=7, loc="upper right", ncol=2)
    for ax in (rates, ratios, cpu):
        ax.grid(alpha=0.3, axis="y")
    return _save(plt, fig, "etcd.png")


def plot_restart(plt: Any, restart: dict[str, Any]) -> Path:
    """Restart to ready: each way of rebuilding both allocators, as a multiple of restore()."""
    cases = restart["cases"]
    names = list(cases)
    # The goals in bench_restart's order: bulk occupy, then reconcile.
    goals = dict(zip(("occupy", "reconcile"), (g["limit"] for g in restart["goals"]), strict=True))
    fig, ax = plt.subplots(figsize=(9, 4.0))
    width = 0.38
    xs = range(len(names))
    cpu = ax.bar(
        [x - width / 2 for x in xs],
        [cases[n]["x_restore_cpu_median"] for n in names],
        width,
        label="CPU time (the goals)",
    )
    wall = ax.bar(
        [x + width / 2 for x in xs],
        [cases[n]["x_restore_median"] for n in names],
        width,
        label="wall clock (shared machine)",
        alpha=0.6,
    )
    ax.bar_label(cpu, fmt="%.2f", fontsize=8)
    ax.bar_label(wall, fmt="%.2f", fontsize=8)
    for k, (name, limit) in enumerate(goals.items()):
        if name in names:
            x = names.index(name)
            ax.hlines(
                limit,
                x - 0.45,
                x + 0.45,
                colors="tab:red",
                linestyles=":",
                label="goal (issue 11)" if k == 0 else None,
            )
    ax.axhline(1.0, color="black", linestyle="--", linewidth=1)
    labels = [n.replace(" + ", " +\n") for n in names]
    for name, limit in goals.items():
        if name in names:
            labels[names.index(name)] += f"\n(goal <= {limit:g}x)"
    if "occupy + allocate_service" in names:
        labels[names.index("occupy + allocate_service")] += "\n(the old way)"
    ax.set_xticks(list(xs), labels, fontsize=8)
    ax.set_ylabel("x restore() of the same state (median)")
    ax.set_title(
        f"restart to ready: {restart['nodes']:,} nodes, {restart['services']:,} Services "
        f"({restart['addresses']:,} addresses)"
    )
    ax.legend(fontsize=8, loc="upper left")
    ax.grid(alpha=0.3, axis="y")
    return _save(plt, fig, "restart.png")


def _save(plt: Any, fig: Any, name: str) -> Path:
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / name
    fig.tight_layout()
    # Fixed metadata so that re-running on the same results gives the same bytes.
    fig.savefig(path, dpi=110, metadata={"Software": None})
    plt.close(fig)
    return path


def main(argv: list[str] | None = None) -> int:
    """Draw every plot; print the files written."""
    argparse.ArgumentParser(description=__doc__.splitlines()[0]).parse_args(argv)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    hot = _load("hot_path.json")
    designs = _load("bitmap_designs.json")
    written = [
        plot_fill(plt, hot["cases"]),
        plot_ratios(plt, hot["cases"], hot["naive"]),
        plot_memory(plt, hot),
        plot_designs(plt, designs),
    ]
    store = _load("store.json")
    written += [plot_store_size(plt, store), plot_store_cli(plt, store)]
    written.append(plot_etcd(plt, _load("etcd.json")))
    written.append(plot_restart(plt, _load("restart.json")))
    for path in written:
        print(path.relative_to(ROOT))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
