"""The HTML page renders its maps in a real browser (headless Chromium).

Skipped only where no Chromium binary exists, with "chromium not found" in
the reason: ``.ci/run`` installs Debian's ``chromium`` and fails the run if
this test skipped. The screenshot is decoded here (zlib and struct, no image
library) and must show the map colours: the cells drawn, not a blank page.
"""

from __future__ import annotations

import shutil
import struct
import subprocess
import zlib
from pathlib import Path

import pytest

from dualstack_ipam import ClusterConfig, NodeCIDRAllocator, ServiceIPAllocator
from dualstack_ipam.cli.maps import html_page

_BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
_WIDTH, _HEIGHT = 700, 1100
# The map's fill colours (viz._COLOURS): nothing else on the page uses them.
_USED, _FREE, _RESERVED = (0x1D, 0x5F, 0xA6), (0xE6, 0xEE, 0xF5), (0x8C, 0x8C, 0x8C)


def _require_browser() -> str:
    """The Chromium binary; skips (reason "chromium not found", which CI fails on) without."""
    for name in _BROWSERS:
        path = shutil.which(name)
        if path is not None:
            return path
    pytest.skip("chromium not found: install Debian's chromium package to run this test")


def _paeth(a: int, b: int, c: int) -> int:
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    if pa <= pb and pa <= pc:
        return a
    return b if pb <= pc else c


def decode_png(data: bytes) -> tuple[int, int, list[bytearray], int]:
    """(width, height, rows of raw bytes, bytes per pixel) of an 8-bit RGB(A) PNG."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    position, idat, header = 8, bytearray(), b""
    while position < len(data):
        (length,) = struct.unpack(">I", data[position : position + 4])
        kind = data[position + 4 : position + 8]
        body = data[position + 8 : position + 8 + length]
        if kind == b"IHDR":
            header = body
        elif kind == b"IDAT":
            idat += body
        position += 12 + length
    width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", header)
    assert (depth, interlace) == (8, 0), (depth, interlace)
    step = {2: 3, 6: 4}[colour]
    raw = zlib.decompress(bytes(idat))
    stride = width * step
    rows: list[bytearray] = []
    previous = bytearray(stride)
    for y in range(height):
        start = y * (stride + 1)
        kind, row = raw[start], bytearray(raw[start + 1 : start + 1 + stride])
        if kind == 1:
            for i in range(step, stride):
                row[i] = (row[i] + row[i - step]) & 0xFF
        elif kind == 2:
            row = bytearray((x + p) & 0xFF for x, p in zip(row, previous, strict=True))
        elif kind == 3:
            for i in range(stride):
                left = row[i - step] if i >= step else 0
                row[i] = (row[i] + ((left + previous[i]) >> 1)) & 0xFF
        elif kind == 4:
            for i in range(stride):
                left = row[i - step] if i >= step else 0
                corner = previous[i - step] if i >= step else 0
                row[i] = (row[i] + _paeth(left, previous[i], corner)) & 0xFF
        rows.append(row)
        previous = row
    return width, height, rows, step


def _near(pixel: tuple[int, int, int], colour: tuple[int, int, int]) -> bool:
    return all(abs(a - b) <= 6 for a, b in zip(pixel, colour, strict=True))


def test_without_a_browser_the_skip_says_chromium_not_found(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PATH", "")
    with pytest.raises(pytest.skip.Exception, match="chromium not found"):
        _require_browser()


def test_decode_png_reads_what_zlib_wrote() -> None:
    # A 2 x 2 RGB image, one row with filter Sub and one with Up.
    raw = bytes([1, 10, 20, 30, 5, 5, 5]) + bytes([2, 1, 1, 1, 2, 2, 2])
    header = struct.pack(">IIBBBBB", 2, 2, 8, 2, 0, 0, 0)

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + b"\0\0\0\0"

    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw))
    width, height, rows, step = decode_png(png + chunk(b"IEND", b""))
    assert (width, height, step) == (2, 2, 3)
    assert rows == [bytearray([10, 20, 30, 15, 25, 35]), bytearray([11, 21, 31, 17, 27, 37])]


def test_the_html_page_renders_its_maps_in_chromium(tmp_path: Path) -> None:
    browser = _require_browser()
    config = ClusterConfig("10.0.0.0/20", "10.0.0.0/23")  # 16 node cells, 2 set aside
    nodes = NodeCIDRAllocator(config)
    for name in ("a", "b", "c", "d", "e", "f"):
        nodes.allocate(name)
    services = ServiceIPAllocator(config, strategy="sequential")
    for key in range(40):
        services.allocate(f"svc-{key}")
    page = tmp_path / "cluster.html"
    page.write_text(html_page(config, nodes, services, width=600), encoding="utf-8")
    shot = tmp_path / "shot.png"
    command = [
        browser,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--hide-scrollbars",
        "--no-first-run",
        f"--user-data-dir={tmp_path / 'profile'}",
        f"--window-size={_WIDTH},{_HEIGHT}",
        f"--screenshot={shot}",
        page.as_uri(),
    ]
    done = subprocess.run(command, capture_output=True, timeout=90, check=False)
    assert shot.exists(), done.stderr.decode(errors="replace")[-2000:]
    width, height, rows, step = decode_png(shot.read_bytes())
    assert (width, height) == (_WIDTH, _HEIGHT)
    counts = {"used": 0, "free": 0, "reserved": 0, "other": 0}
    top, bottom = height, 0
    for y, row in enumerate(rows):
        for x in range(0, width * step, step):
            pixel = (row[x], row[x + 1], row[x + 2])
            for name, colour in (("used", _USED), ("free", _FREE), ("reserved", _RESERVED)):
                if _near(pixel, colour):
                    counts[name] += 1
                    if name == "used":
                        top, bottom = min(top, y), max(y, bottom)
                    break
            else:
                counts["other"] += pixel != (255, 255, 255)
    # The first panel (16 node cells of ~36 px): 6 used, 2 reserved, 8 free.
    assert counts["used"] > 5 * 30 * 30, counts
    assert counts["free"] > 7 * 30 * 30, counts
    assert counts["reserved"] > 30 * 30, counts
    # Used cells below the tables, in two panels (nodes, then Service IPs).
    assert 200 < top < bottom - 100, (top, bottom)
