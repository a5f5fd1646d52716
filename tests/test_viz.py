"""Occupancy maps: the SVG parses, has one cell per block, and its cells follow the pool."""

from __future__ import annotations

import datetime
import itertools
import xml.etree.ElementTree as ET
from pathlib import Path

import netaddr
import pytest
from hypothesis import given
from hypothesis import strategies as st

from dualstack_ipam import (
    ClusterConfig,
    InvalidConfigError,
    IPFamily,
    NodeCIDRAllocator,
    ServiceIPAllocator,
    ServiceIPPool,
    SubnetPool,
)
from dualstack_ipam.cli import run_demo
from dualstack_ipam.cli.maps import (
    cluster_svg,
    demo_cluster,
    forecast_options,
    maps_text,
    parse_rate,
    write_demo_map,
    write_maps,
)
from dualstack_ipam.testing.strategies import node_allocators, service_ip_allocators
from dualstack_ipam.viz import CELL_CLASSES, MAX_CELLS, Panel, occupancy, occupancy_svg

SVG = "{http://www.w3.org/2000/svg}"


def parse(svg: str) -> ET.Element:
    return ET.fromstring(svg)


def panels(svg: str) -> list[ET.Element]:
    return [g for g in parse(svg).iter(f"{SVG}g") if g.get("class") == "panel"]


def cells(panel: ET.Element) -> list[ET.Element]:
    grid = next(g for g in panel.iter(f"{SVG}g") if g.get("class") == "cells")
    return list(grid.iter(f"{SVG}rect"))


def title(element: ET.Element) -> str:
    found = element.find(f"{SVG}title")
    assert found is not None
    assert found.text is not None
    return found.text


# ------------------------------------------------------------------ examples


def test_a_slash_24_service_range_is_one_cell_per_address() -> None:
    pool = ServiceIPPool("10.96.0.0/24", strategy="sequential")
    pool.allocate("10.96.0.10")
    pool.allocate_next()  # 10.96.0.17: the first of the dynamic band
    (panel,) = panels(occupancy_svg(pool))
    rects = cells(panel)
    assert len(rects) == 256
    classes = [r.get("class") for r in rects]
    assert classes[0] == classes[255] == "reserved"  # network and broadcast
    assert classes[10] == classes[17] == "used"
    assert classes[1:10] == ["static"] * 9
    assert classes[11:17] == ["static"] * 6
    assert classes[18:255] == ["free"] * 237
    assert title(rects[10]).startswith("10.96.0.10: 1 of 1 used (100%)")
    assert title(rects[255]) == "10.96.0.255: 0 of 0 used (0%), 1 reserved"
    assert "2 of 254 used" in title(panel)
    assert "IPv4 Service IPs 10.96.0.0/24" in title(panel)


def test_the_document_title_names_the_range_and_counts() -> None:
    pool = SubnetPool("10.0.0.0/16", 24)
    pool.occupy("10.0.4.0/22")
    root = parse(occupancy_svg(pool))
    assert root.tag == f"{SVG}svg"
    assert title(root).startswith("IPv4 subnets 10.0.0.0/16: 4 of 256 used (1.6%)")


def test_a_legend_shows_every_class() -> None:
    (panel,) = panels(occupancy_svg(SubnetPool("10.0.0.0/24", 26)))
    legend = next(g for g in panel.iter(f"{SVG}g") if g.get("class") == "legend")
    assert [r.get("class") for r in legend.iter(f"{SVG}rect")] == list(CELL_CLASSES)
    assert [t.text for t in legend.iter(f"{SVG}text")] == list(CELL_CLASSES)


def test_a_large_range_is_4096_blocks_shaded_by_fill() -> None:
    pool = SubnetPool("fc00::/24", 64)  # 2**40 subnets: 4,096 cells of 2**28
    pool.occupy("fc00::/36")  # all of cell 0
    pool.occupy("fc00:0:1000::/38")  # a quarter of cell 1
    pool.occupy("fc00:0:2000::/37")  # half of cell 2
    pool.occupy("fc00:0:3000::/64")  # one subnet of cell 3
    (panel,) = panels(occupancy_svg(pool))
    rects = cells(panel)
    assert len(rects) == MAX_CELLS
    assert [r.get("class") for r in rects[:5]] == ["used", "mixed", "mixed", "mixed", "free"]
    assert [r.get("data-used") for r in rects[:4]] == [str(2**28), str(2**26), str(2**27), "1"]
    shades = [float(r.get("fill-opacity", "0")) for r in rects[1:4]]
    assert shades[2] < shades[0] < shades[1] < 1
    assert title(rects[1]) == f"fc00:0:1000::/36: {2**26:,} of {2**28:,} used (25.0%)"
    assert title(rects[3]).endswith("used (<0.1%)")


def test_a_full_2_to_the_40_pool_draws_without_walking_it() -> None:
    pool = SubnetPool("fc00::/24", 64)
    pool.occupy("fc00::/24")
    (panel,) = panels(occupancy_svg(pool))
    assert {r.get("class") for r in cells(panel)} == {"used"}


def test_a_slash_64_service_range() -> None:
    pool = ServiceIPPool("fd00::/64")
    pool.allocate("fd00::5")
    pool.allocate("fd00::ffff:ffff:ffff:fffe")
    (drawn,) = occupancy(pool)
    assert drawn.cells == MAX_CELLS
    assert drawn.block == 2**52
    assert drawn.used[0] == 1
    assert drawn.used[-1] == 1
    assert drawn.used_total == 2
    assert drawn.reserved[0] == 1
    assert sum(drawn.reserved) == 1
    assert drawn.static[0] == 256
    assert [drawn.cell_class(i) for i in (0, 1, 4095)] == ["mixed", "free", "mixed"]


def test_node_allocator_draws_one_panel_per_family_with_the_service_set_aside() -> None:
    config = ClusterConfig("10.0.0.0/16,fc00::/24", "10.0.0.0/20")
    alloc = NodeCIDRAllocator(config)
    alloc.allocate("a")
    alloc.allocate("b")
    drawn = panels(occupancy_svg(alloc))
    assert [p.get("data-family") for p in drawn] == ["IPv4", "IPv6"]
    v4 = [r.get("class") for r in cells(drawn[0])]
    assert v4[:16] == ["reserved"] * 16
    assert v4[16:18] == ["used"] * 2
    assert v4[18:] == ["free"] * 238
    assert "2 of 240 used" in title(drawn[0])
    assert "16 reserved" in title(drawn[0])
    assert [r.get("class") for r in cells(drawn[1])][:2] == ["mixed", "free"]


def test_service_allocator_draws_its_ranges_in_configuration_order() -> None:
    config = ClusterConfig("10.0.0.0/16,fc00::/24", "fd00::/120,10.96.0.0/24")
    alloc = ServiceIPAllocator(config, strategy="sequential")
    alloc.allocate("a")
    drawn = occupancy((alloc, NodeCIDRAllocator(config)))
    assert [(p.family, p.label) for p in drawn] == [
        (IPFamily.IPv6, "Service IPs"),
        (IPFamily.IPv4, "Service IPs"),
        (IPFamily.IPv4, "node CIDRs"),
        (IPFamily.IPv6, "node CIDRs"),
    ]
    assert drawn[0].used_total == 1
    assert drawn[1].used_total == 0


def test_tiny_ranges() -> None:
    for cidr, expected in [("10.0.0.0/32", ["reserved"]), ("10.0.0.0/31", ["reserved"] * 2)]:
        (drawn,) = occupancy(ServiceIPPool(cidr))
        assert [drawn.cell_class(i) for i in range(drawn.cells)] == expected
    (one,) = panels(occupancy_svg(SubnetPool("10.0.0.0/24", 24)))
    assert len(cells(one)) == 1


def test_all_text_is_escaped() -> None:
    (drawn,) = occupancy(SubnetPool("10.0.0.0/24", 25))
    odd = Panel(
        drawn.family,
        drawn.cidr,
        '<script>alert("x")</script> & co',
        drawn.unit_prefixlen,
        drawn.block,
        drawn.used,
        drawn.reserved,
        drawn.static,
    )
    svg = occupancy_svg(odd)
    assert "<script>" not in svg
    assert '<script>alert("x")</script> & co' in title(parse(svg))


@pytest.mark.parametrize("width", [True, 100, 10_001, "640", 640.0])
def test_a_bad_width_is_refused(width: object) -> None:
    with pytest.raises(InvalidConfigError, match=repr(width).replace("(", r"\(")):
        occupancy_svg(SubnetPool("10.0.0.0/24", 26), width=width)  # type: ignore[arg-type]


@pytest.mark.parametrize("thing", [None, "10.0.0.0/24", netaddr.IPNetwork("10.0.0.0/24"), [3]])
def test_something_undrawable_is_refused(thing: object) -> None:
    with pytest.raises(InvalidConfigError, match="occupancy maps draw"):
        occupancy_svg(thing)


def test_width_scales_the_drawing() -> None:
    pool = SubnetPool("10.0.0.0/16", 24)
    for width in (320, 640, 1200):
        root = parse(occupancy_svg(pool, width=width))
        assert root.get("width") == str(width)
        xs = [
            float(r.get("x", "0")) + float(r.get("width", "0"))
            for r in cells(panels(occupancy_svg(pool, width=width))[0])
        ]
        assert max(xs) <= width


# ------------------------------------------------------------------ properties


def _model_counts(
    units: int, block: int, used: set[int], reserved: set[int]
) -> list[tuple[int, int]]:
    """(used, reserved) per cell, unit by unit: the set model of a panel."""
    counts = [(0, 0)] * (units // block)
    for unit in range(units):
        u, r = counts[unit // block]
        counts[unit // block] = (
            u + (unit in used and unit not in reserved),
            r + (unit in reserved),
        )
    return counts


def _check(svg: str, units: int, used: set[int], reserved: set[int], static: set[int]) -> None:
    (panel,) = panels(svg)
    rects = cells(panel)
    block = max(1, units // MAX_CELLS)
    assert len(rects) == units // block
    model = _model_counts(units, block, used, reserved)
    fills: list[tuple[float, float]] = []
    for index, (rect, (u, r)) in enumerate(zip(rects, model, strict=True)):
        usable = block - r
        assert rect.get("data-used") == str(u)
        assert rect.get("data-reserved") == str(r)
        in_static = sum(1 for unit in range(index * block, (index + 1) * block) if unit in static)
        if usable == 0:
            expected = "reserved"
        elif u == usable:
            expected = "used"
        elif u:
            expected = "mixed"
            fills.append((u / usable, float(rect.get("fill-opacity", "nan"))))
        else:
            expected = "static" if in_static == usable else "free"
        assert rect.get("class") == expected, (index, u, r, in_static)
    # The shade grows with the fill, and a mixed cell is never drawn solid.
    fills.sort()
    assert all(a[1] <= b[1] for a, b in itertools.pairwise(fills))
    assert all(0 < shade < 1 for _, shade in fills)


@st.composite
def service_pools(draw: st.DrawFn) -> tuple[ServiceIPPool, set[int]]:
    family = draw(st.sampled_from([4, 6]))
    host_bits = draw(st.integers(1, 14))
    width = 32 if family == 4 else 128
    network = netaddr.IPNetwork((0x0A600000 if family == 4 else 0xFD00 << 112, width - host_bits))
    pool = ServiceIPPool(network)
    units = 2**host_bits
    chosen = draw(st.sets(st.integers(0, units - 1), max_size=60))
    used = set()
    for unit in chosen:
        address = netaddr.IPAddress(int(network.first) + unit, family)
        if pool.is_allocated(address) or unit == 0 or (family == 4 and unit == units - 1):
            continue
        pool.allocate(address)
        used.add(unit)
    return pool, used


@given(service_pools())
def test_service_pool_cells_follow_the_set_model(case: tuple[ServiceIPPool, set[int]]) -> None:
    pool, used = case
    units = 2 ** (pool.family.width - pool.cidr.prefixlen)
    last = units - 1 if pool.family is IPFamily.IPv4 else units
    reserved = {0} | set(range(max(last, 1), units))
    static = set(range(1, 1 + pool.offset))
    _check(occupancy_svg(pool), units, used, reserved, static)


@given(
    st.integers(0, 14),
    st.lists(st.tuples(st.integers(0, 2**14 - 1), st.integers(0, 6)), max_size=12),
)
def test_subnet_pool_cells_follow_the_set_model(bits: int, occupied: list[tuple[int, int]]) -> None:
    # 2**bits subnets; each occupy takes an aligned CIDR of 2**size subnets.
    prefixlen = 48 + bits
    pool = SubnetPool("2001:db8::/48", prefixlen)
    used: set[int] = set()
    for start, size in occupied:
        span = min(2**size, pool.capacity)
        first = start % pool.capacity
        first -= first % span
        cidr = (int(pool.subnet_at(first).first), prefixlen - (span.bit_length() - 1))
        pool.occupy(netaddr.IPNetwork(cidr, 6))
        used |= set(range(first, first + span))
    _check(occupancy_svg(pool), pool.capacity, used, set(), set())


@given(st.sets(st.integers(0, 2**64 - 2), max_size=40))
def test_a_slash_64_counts_match_the_set_model(slots: set[int]) -> None:
    pool = ServiceIPPool("fd00::/64")
    for slot in slots:
        pool.allocate(netaddr.IPAddress((0xFD00 << 112) + 1 + slot, 6))
    (drawn,) = occupancy(pool)
    expected = [0] * MAX_CELLS
    for slot in slots:
        expected[(slot + 1) >> 52] += 1
    assert list(drawn.used) == expected
    assert drawn.used_total == len(slots) == pool.used


# ------------------------------------------------------------------ CLI bodies


def test_parse_rate() -> None:
    assert parse_rate("5") == 5
    assert parse_rate(" 2.5 ") == 2.5
    assert parse_rate("1e3") == 1000.0
    assert parse_rate("IPv6=1, IPv4=0") == {"IPv6": 1, "IPv4": 0}
    for bad in ("", "-1", "nan", "inf", "five", "IPv5=1", "IPv4=1,IPv4=2", "IPv4"):
        with pytest.raises(InvalidConfigError, match=repr(bad)):
            parse_rate(bad, "--services-per-day")


def test_show_writes_the_svg_and_the_page(tmp_path: Path) -> None:
    config = ClusterConfig("10.0.0.0/16,fc00::/24", "10.96.0.0/24")
    nodes, services = NodeCIDRAllocator(config), ServiceIPAllocator(config)
    nodes.allocate("<node>")
    services.allocate("default/web")
    svg, page = tmp_path / "map.svg", tmp_path / "map.html"
    files, result = write_maps(
        config,
        nodes,
        services,
        svg=str(svg),
        html_path=str(page),
        show_forecast=True,
        nodes_per_day="4",
        services_per_day="IPv4=1",
        now=datetime.date(2026, 1, 1),
    )
    text = maps_text(files, result)
    assert text.splitlines()[:2] == [f"Wrote {svg} (SVG)", f"Wrote {page} (HTML)"]
    assert "2026-03-05" in text  # 255 node subnets at 4 a day: 63 days
    assert len(panels(svg.read_text(encoding="utf-8"))) == 3
    body = page.read_text(encoding="utf-8")
    assert body.count("<svg") == 1
    assert "&lt;node&gt;" in body
    assert "<node>" not in body
    assert "Forecast from 2026-01-01" in body


def test_write_maps_without_files_makes_the_forecast_only(tmp_path: Path) -> None:
    config = ClusterConfig("10.0.0.0/16")
    nodes = NodeCIDRAllocator(config)
    files, result = write_maps(config, nodes, None, show_forecast=True)
    assert files == {}
    assert result is not None
    assert result.get("IPv4", "node_cidrs").runs_out is None
    assert maps_text(files, result) == str(result)
    assert write_maps(config, nodes, None) == ({}, None)


def test_plan_forecast() -> None:
    config = ClusterConfig("10.0.0.0/16", "fd00::/120")
    text = str(forecast_options(config, nodes_per_day="0", services_per_day="10"))
    assert text.splitlines()[-2].split()[-1] == "never"
    data = forecast_options(config, services_per_day="10", now=datetime.date(2026, 1, 1))
    assert data.to_dict()["ranges"][1]["runs_out"] == "2026-01-26"  # 255 addresses at 10 a day
    with pytest.raises(InvalidConfigError, match="--nodes-per-day"):
        forecast_options(config, nodes_per_day="IPv4=1")


def test_the_demo_cluster_is_the_one_demo_prints() -> None:
    _, nodes, services = demo_cluster()
    printed = run_demo()
    for _, cidrs in nodes.items():
        assert all(str(cidr) in printed for cidr in cidrs)
    for _, held in services.items():
        assert all(str(address) in printed for address in held)
    assert len(panels(cluster_svg(nodes, services))) == 4


def test_write_demo_map(tmp_path: Path) -> None:
    path = tmp_path / "demo.svg"
    write_demo_map(path)
    assert parse(path.read_text(encoding="utf-8")).tag == f"{SVG}svg"


@given(node_allocators())
def test_node_allocator_panels_add_up_to_its_counts(alloc: NodeCIDRAllocator) -> None:
    drawn = occupancy(alloc)
    assert [p.family for p in drawn] == list(alloc.config.families)
    for panel in drawn:
        assert panel.used_total == alloc.used(panel.family)
        assert sum(panel.reserved) == alloc.reserved(panel.family)
        assert panel.usable_total == alloc.config.node_capacity(panel.family)
        assert panel.cells == min(alloc.capacity(panel.family), MAX_CELLS)


@given(service_ip_allocators())
def test_service_allocator_panels_add_up_to_its_counts(alloc: ServiceIPAllocator) -> None:
    drawn = occupancy(alloc)
    assert [p.family for p in drawn] == list(alloc.config.service_families)
    for panel in drawn:
        assert panel.used_total == alloc.used(panel.family)
        assert panel.usable_total == alloc.capacity(panel.family)


def test_a_grown_family_draws_one_panel_per_range() -> None:
    nodes = NodeCIDRAllocator(ClusterConfig("10.0.0.0/16", "10.0.0.0/20"))
    nodes.add_range("10.9.0.0/16")
    nodes.allocate("a")
    panels = occupancy(nodes)
    assert [str(p.cidr) for p in panels] == ["10.0.0.0/16", "10.9.0.0/16"]
    assert sum(panels[0].reserved) == 16
    assert sum(panels[1].reserved) == 0
    services = ServiceIPAllocator(ClusterConfig("10.0.0.0/16", "10.96.0.0/24"))
    services.add_range("10.97.0.0/24")
    assert [str(p.cidr) for p in occupancy(services)] == ["10.96.0.0/24", "10.97.0.0/24"]
    assert "10.97.0.0/24" in occupancy_svg(services)
