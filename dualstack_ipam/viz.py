"""Occupancy maps: a pool or an allocator drawn as an SVG grid of at most 4,096 cells.

A range is a row of *units*: the subnets of a :class:`~dualstack_ipam.SubnetPool`
(a node pool), or every address of a :class:`~dualstack_ipam.ServiceIPPool`'s
range, its network (and IPv4 broadcast) address included. A range of up to
4,096 units gets one cell per unit; a larger one gets 4,096 cells of equal
blocks (a power of two each), shaded by how full they are. Each cell is an
SVG ``<rect>`` whose ``class`` is one of :data:`CELL_CLASSES`:

* ``reserved``: nothing in it can be handed out: the network and broadcast
  addresses of a Service range, and the node subnets a
  :class:`~dualstack_ipam.NodeCIDRAllocator` sets aside for a Service range
  inside its cluster CIDR;
* ``used``: everything in it that can be handed out is allocated;
* ``static``: nothing allocated, and all of it in KEP-3070's static band
  (:attr:`ServiceIPPool.offset <dualstack_ipam.ServiceIPPool.offset>`);
* ``free``: nothing allocated;
* ``mixed``: partly allocated; its ``fill-opacity`` grows with the fill.

Counts come from the pool's runs of allocated slots
(:meth:`~dualstack_ipam.pools.base.BasePool.runs`), each added to the cells it
touches, so a /64 with 100,000 addresses draws in time proportional to its
runs, never to its 2**64 addresses. Everything is plain text: no plotting
library is needed.

>>> from dualstack_ipam import ServiceIPPool
>>> pool = ServiceIPPool("10.96.0.0/24", strategy="sequential")
>>> _ = pool.allocate("10.96.0.10"), pool.allocate_next()
>>> panel, = occupancy(pool)
>>> panel.cells, panel.block, panel.used_total, [panel.cell_class(i) for i in (0, 1, 10, 17)]
(256, 1, 2, ['reserved', 'static', 'used', 'used'])
>>> svg = occupancy_svg(pool, width=320)
>>> svg.startswith("<svg"), svg.count("data-used="), "10.96.0.10: 1 of 1 used" in svg
(True, 256, True)
"""

from __future__ import annotations

from typing import Any
from xml.sax.saxutils import escape

import attrs
import netaddr

from dualstack_ipam.cluster.nodes import NodeCIDRAllocator
from dualstack_ipam.errors import InvalidConfigError
from dualstack_ipam.net import IPFamily, make_network, usable_span
from dualstack_ipam.pools.base import BasePool
from dualstack_ipam.pools.multi import parts_of
from dualstack_ipam.pools.service_ips import ServiceIPPool
from dualstack_ipam.pools.subnets import SubnetPool
from dualstack_ipam.services.allocator import ServiceIPAllocator

__all__ = ["CELL_CLASSES", "MAX_CELLS", "Panel", "occupancy", "occupancy_svg"]

MAX_CELLS = 4096
"""The most cells a panel has (a 64 x 64 grid)."""

CELL_CLASSES = ("free", "used", "mixed", "reserved", "static")
"""Every ``class`` a cell can have, in the legend's order."""

_COLOURS = {
    "free": "#e6eef5",
    "used": "#1d5fa6",
    "mixed": "#1d5fa6",
    "reserved": "#8c8c8c",
    "static": "#f0cf6e",
}
_MARGIN, _HEAD, _LEGEND = 8, 44, 30


@attrs.frozen
class Panel:
    """The cells of one range: per cell, units allocated, reserved and in the static band.

    Attributes:
        family: the range's :class:`~dualstack_ipam.IPFamily`.
        cidr: the range.
        label: what a unit is, e.g. ``"node CIDRs"`` or ``"Service IPs"``.
        unit_prefixlen: the prefix length of one unit (a subnet, or an address).
        block: units per cell (a power of two).
        used: per cell, allocated units that are not reserved.
        reserved: per cell, units that are never handed out.
        static: per cell, units of KEP-3070's static band.
    """

    family: IPFamily
    cidr: netaddr.IPNetwork
    label: str
    unit_prefixlen: int
    block: int
    used: tuple[int, ...]
    reserved: tuple[int, ...]
    static: tuple[int, ...]

    @property
    def cells(self) -> int:
        """How many cells the panel has (a power of two, at most 4,096).

        Complexity:
            O(1).
        """
        return len(self.used)

    @property
    def used_total(self) -> int:
        """Allocated units of the whole range, the reserved ones left out.

        Complexity:
            O(cells).
        """
        return sum(self.used)

    @property
    def usable_total(self) -> int:
        """Units that can be handed out (every unit less the reserved ones).

        Complexity:
            O(cells).
        """
        return self.block * self.cells - sum(self.reserved)

    def cell_cidr(self, index: int) -> netaddr.IPNetwork:
        """The block of cell ``index`` as a network (its first address is the block's).

        Complexity:
            O(1).

        >>> panel, = occupancy(SubnetPool("fc00::/24", 64))
        >>> panel.block == 2**28, panel.cell_cidr(1)
        (True, IPNetwork('fc00:0:1000::/36'))
        """
        shift = self.family.width - self.unit_prefixlen + (self.block.bit_length() - 1)
        value = int(self.cidr.first) + (index << shift)
        return make_network(value, self.family.width - shift, self.family)

    def cell_class(self, index: int) -> str:
        """The ``class`` of cell ``index``: one of :data:`CELL_CLASSES`.

        Complexity:
            O(1).

        >>> panel, = occupancy(ServiceIPPool("10.96.0.0/28"))
        >>> [panel.cell_class(i) for i in (0, 1, 15)]
        ['reserved', 'free', 'reserved']
        """
        usable = self.block - self.reserved[index]
        used = self.used[index]
        if usable == 0:
            return "reserved"
        if used == usable:
            return "used"
        if used:
            return "mixed"
        return "static" if self.static[index] == usable else "free"

    def fill(self, index: int) -> float:
        """The allocated share of cell ``index``'s usable units (0.0 if it has none).

        Complexity:
            O(1).
        """
        usable = self.block - self.reserved[index]
        return self.used[index] / usable if usable else 0.0


def _spread(counts: list[int], start: int, stop: int, shift: int) -> None:
    """Add the units ``[start, stop)`` to the cells of ``1 << shift`` units they touch."""
    if start >= stop:
        return
    first, last = start >> shift, (stop - 1) >> shift
    if first == last:
        counts[first] += stop - start
        return
    counts[first] += ((first + 1) << shift) - start
    block = 1 << shift
    for cell in range(first + 1, last):
        counts[cell] += block
    counts[last] += stop - (last << shift)


def _panel(pool: BasePool, label: str, set_aside: tuple[int, int] | None = None) -> Panel:
    """Count ``pool``'s runs into cells; ``set_aside`` is a reserved span of a node pool."""
    cidr = pool.cidr
    family, prefixlen = pool.family, cidr.prefixlen
    if isinstance(pool, SubnetPool):
        unit_prefixlen, units, base = pool.prefixlen, pool.capacity, 0
        reserved_spans = [set_aside] if set_aside else []
        static_span = (0, 0)
    else:
        assert isinstance(pool, ServiceIPPool)
        unit_prefixlen, units = family.width, 1 << (family.width - prefixlen)
        base, usable = usable_span(family, prefixlen)
        reserved_spans = [(0, base), (base + usable, units)]
        static_span = (base, base + pool.offset)
    cells = min(units, MAX_CELLS)
    shift = (units // cells).bit_length() - 1
    taken, reserved, static = [0] * cells, [0] * cells, [0] * cells
    for start, stop in pool.runs():
        _spread(taken, start + base, stop + base, shift)
    for start, stop in reserved_spans:
        _spread(reserved, start, stop, shift)
    _spread(static, *static_span, shift)
    # A node pool's set-aside subnets are allocated in its bitmap: not "used".
    used = [max(0, t - r) if set_aside else t for t, r in zip(taken, reserved, strict=True)]
    return Panel(
        family, cidr, label, unit_prefixlen, 1 << shift, tuple(used), tuple(reserved), tuple(static)
    )


def occupancy(pool_or_allocator: Any) -> tuple[Panel, ...]:
    """The cells of every range of a pool, an allocator, or a list or tuple of them.

    A :class:`~dualstack_ipam.NodeCIDRAllocator` or
    :class:`~dualstack_ipam.ServiceIPAllocator` gives one panel per family, in
    its configuration's order; a :class:`Panel` stands for itself.

    Raises:
        InvalidConfigError: anything else.

    Complexity:
        O(runs + cells) per range: never one step per address or subnet.

    >>> from dualstack_ipam import ClusterConfig, NodeCIDRAllocator
    >>> alloc = NodeCIDRAllocator(ClusterConfig("10.0.0.0/16,fc00::/24", "10.0.0.0/20"))
    >>> _ = alloc.allocate("node-a")
    >>> [(str(p.family), p.cells, p.used_total, sum(p.reserved)) for p in occupancy(alloc)]
    [('IPv4', 256, 1, 16), ('IPv6', 4096, 1, 0)]
    """
    item = pool_or_allocator
    if isinstance(item, (list, tuple)):
        return tuple(panel for part in item for panel in occupancy(part))
    if isinstance(item, Panel):
        return (item,)
    if isinstance(item, NodeCIDRAllocator):
        # A grown family draws one panel per range; the Service set-aside
        # lies in the config's cluster CIDR, the first range.
        return tuple(
            _panel(part, "node CIDRs", item._reserved.get(family) if i == 0 else None)
            for family, pool in item._pools.items()
            for i, part in enumerate(parts_of(pool))
        )
    if isinstance(item, ServiceIPAllocator):
        return tuple(
            _panel(part, "Service IPs") for pool in item._pools.values() for part in parts_of(pool)
        )
    if isinstance(item, SubnetPool):
        return (_panel(item, "subnets"),)
    if isinstance(item, ServiceIPPool):
        return (_panel(item, "Service IPs"),)
    raise InvalidConfigError(
        "occupancy maps draw a SubnetPool, a ServiceIPPool, a NodeCIDRAllocator, a "
        f"ServiceIPAllocator, a Panel or a list of them, got {item!r}",
        value=item,
    )


# ------------------------------------------------------------------ SVG


def _num(value: float) -> str:
    return f"{value:.2f}".rstrip("0").rstrip(".")


def _percent(part: int, whole: int) -> str:
    if whole == 0 or part == 0:
        return "0%"
    if part == whole:
        return "100%"
    share = 100 * part / whole
    if share < 0.1:
        return "<0.1%"
    return ">99.9%" if share > 99.9 else f"{share:.1f}%"


def _attr(text: str) -> str:
    return escape(text, {'"': "&quot;"})


def _unit_text(panel: Panel, index: int) -> str:
    cidr = panel.cell_cidr(index)
    return (
        str(cidr.ip)
        if panel.block == 1 and panel.unit_prefixlen == panel.family.width
        else (str(cidr))
    )


def _cell_title(panel: Panel, index: int) -> str:
    usable = panel.block - panel.reserved[index]
    parts = [f"{_unit_text(panel, index)}: {panel.used[index]:,} of {usable:,} used"]
    parts[0] += f" ({_percent(panel.used[index], usable)})"
    if panel.reserved[index]:
        parts.append(f"{panel.reserved[index]:,} reserved")
    if panel.static[index]:
        parts.append(f"{panel.static[index]:,} in the static band")
    return ", ".join(parts)


def _heading(panel: Panel) -> tuple[str, str]:
    """The panel's title (family, kind, range) and its line of counts."""
    title = f"{panel.family} {panel.label} {panel.cidr}"
    usable, used = panel.usable_total, panel.used_total
    counts = f"{used:,} of {usable:,} used ({_percent(used, usable)})"
    if sum(panel.reserved):
        counts += f", {sum(panel.reserved):,} reserved"
    if sum(panel.static):
        counts += f", static band {sum(panel.static):,}"
    shift = panel.block.bit_length() - 1
    counts += f"; one cell = /{panel.unit_prefixlen - shift}"
    if panel.block > 1:
        noun = "addresses" if panel.unit_prefixlen == panel.family.width else "subnets"
        counts += f", {panel.block:,} {noun}"
    return title, counts


def _grid_shape(cells: int) -> tuple[int, int]:
    columns = 1 << ((cells.bit_length()) // 2)
    return columns, cells // columns


def _panel_svg(panel: Panel, width: int, top: float) -> tuple[list[str], float]:
    columns, rows = _grid_shape(panel.cells)
    size = (width - 2 * _MARGIN) / columns
    gap = 1.0 if size >= 4 else 0.0
    title, counts = _heading(panel)
    out = [
        f'<g class="panel" data-family="{panel.family}" data-cidr="{_attr(str(panel.cidr))}" '
        f'transform="translate(0,{_num(top)})">',
        f"<title>{escape(title)}: {escape(counts)}</title>",
        f'<text class="heading" x="{_MARGIN}" y="18">{escape(title)}</text>',
        f'<text class="counts" x="{_MARGIN}" y="36">{escape(counts)}</text>',
        '<g class="cells">',
    ]
    cell = _num(size - gap)
    for index in range(panel.cells):
        kind = panel.cell_class(index)
        x = _num(_MARGIN + (index % columns) * size)
        y = _num(_HEAD + (index // columns) * size)
        shade = ""
        if kind == "mixed":
            shade = f' fill-opacity="{_num(0.3 + 0.65 * panel.fill(index))}"'
        out.append(
            f'<rect class="{kind}" x="{x}" y="{y}" width="{cell}" height="{cell}"{shade} '
            f'data-used="{panel.used[index]}" data-reserved="{panel.reserved[index]}">'
            f"<title>{escape(_cell_title(panel, index))}</title></rect>"
        )
    out.append("</g>")
    legend_y = _HEAD + rows * size + 10
    out.append(f'<g class="legend" transform="translate({_MARGIN},{_num(legend_y)})">')
    step = min(96.0, (width - 2 * _MARGIN) / len(CELL_CLASSES))
    for i, kind in enumerate(CELL_CLASSES):
        x = _num(i * step)
        shade = ' fill-opacity="0.6"' if kind == "mixed" else ""
        out.append(
            f'<rect class="{kind}" x="{x}" y="0" width="12" height="12"{shade}/>'
            f'<text x="{_num(i * step + 16)}" y="11">{kind}</text>'
        )
    out += ["</g>", "</g>"]
    return out, top + legend_y + _LEGEND


def occupancy_svg(pool_or_allocator: Any, *, width: int = 640) -> str:
    """An SVG document drawing every range of ``pool_or_allocator`` as a grid.

    One panel per range (an allocator has one per family; a list or tuple of
    pools and allocators draws them all, in order), each with its range and
    counts as a heading, a grid of at most 4,096 cells (see the module's
    description of the cell classes) whose ``<title>`` tells the block's
    first address and fill, and a legend. The document's ``<title>`` names
    every range with its counts. All text is XML-escaped.

    Args:
        pool_or_allocator: what :func:`occupancy` accepts.
        width: the drawing's width in pixels, 320 to 10,000.

    Raises:
        InvalidConfigError: a bad ``width``, or nothing drawable.

    Complexity:
        O(runs + cells) per range.

    >>> from dualstack_ipam import ServiceIPPool
    >>> pool = ServiceIPPool("fd00::/64")
    >>> for _ in range(1000):
    ...     _ = pool.allocate_next()
    >>> svg = occupancy_svg(pool)
    >>> svg.count('<rect class="mixed"') + svg.count('<rect class="used"') <= 1000
    True
    """
    if isinstance(width, bool) or not isinstance(width, int) or not 320 <= width <= 10_000:
        raise InvalidConfigError(
            f"width must be an int from 320 to 10000 pixels, got {width!r}", value=width
        )
    panels = occupancy(pool_or_allocator)
    body: list[str] = []
    top = 0.0
    for panel in panels:
        lines, top = _panel_svg(panel, width, top)
        body += lines
    titles = "; ".join(": ".join(_heading(panel)) for panel in panels)
    style = " ".join(f".{kind}{{fill:{colour}}}" for kind, colour in _COLOURS.items())
    height = _num(max(top, 1.0))
    head = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" class="occupancy-map">',
        f"<title>{escape(titles or 'no range')}</title>",
        f"<style>{style} text{{font:12px sans-serif;fill:#222}} "
        ".heading{font-weight:bold;font-size:13px}</style>",
        f'<rect class="background" width="{width}" height="{height}" fill="#ffffff"/>',
    ]
    return "\n".join([*head, *body, "</svg>"]) + "\n"
