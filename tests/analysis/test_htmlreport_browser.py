"""``aceorch debug html-report`` on a REAL run, rendered by Debian's headless Chromium.

The session is the richest real run of :mod:`realruns` (Docker + gluetun-sim: a VPN flap, a slow provision,
two hung engines). The page is opened from ``file://`` with every other request aborted (and none may be
attempted: the file is self-contained), then each plot is checked as drawn (elements with non-empty boxes,
in the right places), and a screenshot is taken to ``test-artifacts/html-report.png`` and decoded here
(standard-library PNG reader) to check that it is not blank.
"""

from __future__ import annotations

import math
import struct
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, Route, sync_playwright
from realruns import RealRun, recorded, slow_threshold_ms

pytestmark = [pytest.mark.docker, pytest.mark.browser]

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
STARTS = {"start_acestream_success": True, "start_acestream_failed": False,
          "start_container_success": True, "start_container_failed": False}


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def rich_run(docker_engine: None, tmp_path_factory: pytest.TempPathFactory) -> RealRun:
    return recorded("vpn_flap", tmp_path_factory)


@pytest.fixture
def report_page(rich_run: RealRun, run_cli: Callable[..., Any], browser: Browser,
                tmp_path: Path) -> Iterator[tuple[Page, list[str]]]:
    out = tmp_path / "report.html"
    answer = run_cli("html-report", "--dir", str(rich_run.log_dir), "-o", str(out), "--json")
    assert answer["sessions"] == [rich_run.session] and out.stat().st_size == answer["bytes"]
    url = out.as_uri()
    attempted: list[str] = []
    context = browser.new_context(viewport={"width": 1100, "height": 900})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("request", lambda req: attempted.append(req.url))

    def guard(route: Route) -> None:
        if route.request.url == url:
            route.continue_()
        else:
            route.abort()

    page.route("**/*", guard)
    page.goto(url, wait_until="load")
    try:
        yield page, [u for u in attempted if u != url]
    finally:
        context.close()
    assert errors == []


PROV = "svg[aria-label='provisioning durations over time']"
HEALTH = "svg[aria-label='healthy and unhealthy engines over time']"
#: Per element: its rendered box, fill, and the SVG geometry the checks need.
GEOMETRY = """els => els.map(e => {
    const r = e.getBoundingClientRect();
    const v = (a) => (e[a] && e[a].baseVal ? e[a].baseVal.value : null);
    return {w: r.width, h: r.height, fill: e.getAttribute('fill'), cy: v('cy'), y1: v('y1'), y2: v('y2'),
            n: e.points ? e.points.numberOfItems : null};
})"""


def drawn(page: Page, selector: str) -> list[dict[str, Any]]:
    result: list[dict[str, Any]] = page.eval_on_selector_all(selector, GEOMETRY)
    return result


def test_report_renders_every_plot(report_page: tuple[Page, list[str]], rich_run: RealRun) -> None:
    page, network = report_page
    assert network == [], f"the report tried to load {network}"
    svgs = drawn(page, "svg")
    assert len(svgs) == 2 and all(b["w"] > 500 and b["h"] > 200 for b in svgs), svgs

    # What the run's files say should be drawn.
    starts = [r for r in rich_run.records("provisioning") if r["operation"] in STARTS
              and isinstance(r.get("duration_ms"), int | float)]
    stress = [r for r in rich_run.records("stress") if not r["event_type"].endswith("_resolved")]
    cycles = [r for r in rich_run.records("health") if r.get("operation") == "health_monitor_cycle"]
    threshold_ms = slow_threshold_ms(rich_run.log_dir)
    assert threshold_ms == pytest.approx(4900.0)

    assert page.locator(PROV).count() == 1 and page.locator(HEALTH).count() == 1
    dots = drawn(page, f"{PROV} circle.provision")
    assert len(dots) == len(starts) and all(d["w"] > 0 and d["h"] > 0 for d in dots), dots
    assert sum(d["fill"] == "#c0392b" for d in dots) == sum(not STARTS[r["operation"]] for r in starts)

    [line] = drawn(page, f"{PROV} line.threshold")
    assert line["w"] > 500 and line["y1"] == line["y2"]
    assert page.get_by_text(f"threshold {threshold_ms / 1000:.1f} s").count() == 1
    # Slow starts are drawn above the threshold line (smaller y), the others below it.
    by_height = sorted(dots, key=lambda d: d["cy"])
    slow = [r for r in starts if r["duration_ms"] > threshold_ms]
    assert len(slow) == 1
    assert all(d["cy"] < line["y1"] for d in by_height[: len(slow)])
    assert all(d["cy"] > line["y1"] for d in by_height[len(slow):])

    markers = drawn(page, f"{PROV} path.stress")
    assert len(markers) == len(stress) and all(m["w"] > 0 and m["h"] > 0 for m in markers)

    transitions = [r for r in rich_run.records("vpn") if r.get("operation") == "transition"]
    outages = sum(1 for r in transitions if r["to"] == "unhealthy")
    assert outages == 1
    for svg in (PROV, HEALTH):
        bands = drawn(page, f"{svg} rect.vpn-outage")
        assert len(bands) == outages and all(b["w"] >= 2 and b["h"] > 100 for b in bands), (svg, bands)

    for name in ("healthy", "unhealthy"):
        [step] = drawn(page, f"{HEALTH} path.{name}.step")
        assert step["w"] > 500, (name, step)
        assert step["h"] > 0, f"the {name} line is flat, but the run had both healthy and hung engines"
        assert page.get_attribute(f"{HEALTH} path.{name}.step", "data-sweeps") == str(len(cycles))
        assert len(drawn(page, f"{HEALTH} circle.{name}-point")) == len(cycles)


def test_every_dot_has_hover_text_with_container_duration_and_reason(
    report_page: tuple[Page, list[str]], rich_run: RealRun
) -> None:
    page, _network = report_page
    starts = [r for r in rich_run.records("provisioning") if r["operation"] in STARTS
              and isinstance(r.get("duration_ms"), int | float)]
    dots = page.locator(f"{PROV} circle.provision")
    assert dots.count() == len(starts)
    tip = page.locator("#chart-tip")
    texts = []
    for i in range(dots.count()):
        dots.nth(i).hover()
        assert tip.is_visible()
        texts.append(tip.inner_text())
    for record in starts:
        seconds = f"{record['duration_ms'] / 1000:.2f} s"
        hits = [t for t in texts if seconds in t]
        assert hits, f"no dot says {seconds}: {texts}"
        if STARTS[record["operation"]]:
            assert any(str(record["container_name"]) in t for t in hits), (record, hits)
        else:
            assert any(f"reason: {record['reason']}" in t for t in hits), (record, hits)
    page.mouse.move(1, 1)
    assert not tip.is_visible()


def test_stress_markers_and_both_charts_have_a_legend(
    report_page: tuple[Page, list[str]], rich_run: RealRun
) -> None:
    page, _network = report_page
    stress = {r["event_type"] for r in rich_run.records("stress") if not r["event_type"].endswith("_resolved")}
    legends = page.locator("ul.legend")
    assert legends.count() == 2
    entries = [t.strip() for t in legends.nth(0).locator("li").all_text_contents()]
    assert {"finished start", "failed start", "slow-start threshold", "VPN outage"} <= set(entries)
    assert {e.removeprefix("stress: ") for e in entries if e.startswith("stress: ")} == stress
    # Each stress type's legend swatch has the colour of its markers.
    for kind in stress:
        colour = page.get_attribute(f"{PROV} path.stress[data-type='{kind}']", "fill")
        swatch = page.get_attribute(f"ul.legend li[data-kind='stress:{kind}'] .swatch", "style")
        assert colour and swatch and colour in swatch, (kind, colour, swatch)
    engine_entries = [t.strip() for t in legends.nth(1).locator("li").all_text_contents()]
    assert {"healthy engines", "unhealthy engines"} <= set(engine_entries)


def test_findings_come_first(report_page: tuple[Page, list[str]]) -> None:
    page, _network = report_page
    headings = [h.strip() for h in page.locator("h2").all_text_contents()]
    assert headings[0] == "Findings"
    assert page.locator("section.finding").count() >= 1


def test_axis_ticks_are_round_numbers(report_page: tuple[Page, list[str]]) -> None:
    page, _network = report_page
    for svg in (PROV, HEALTH):
        labels = [t for t in page.eval_on_selector_all(f"{svg} text.tick[text-anchor='end']", TEXTS) if t["x"] < 64]
        values = [float(t["text"]) for t in labels]
        steps = {round(b - a, 9) for a, b in zip(values, values[1:], strict=False)}
        assert len(steps) == 1, values
        [step] = steps
        mantissa = step / 10 ** math.floor(math.log10(step))
        assert round(mantissa, 9) in (1.0, 2.0, 5.0), (svg, values)
        times = [t["text"] for t in page.eval_on_selector_all(f"{svg} text.tick[text-anchor='middle']", TEXTS)]
        assert len(times) >= 2 and all(len(x) in (5, 8) for x in times), times
        seconds = [int(x[0:2]) * 3600 + int(x[3:5]) * 60 + (int(x[6:8]) if len(x) == 8 else 0) for x in times]
        gaps = {b - a for a, b in zip(seconds, seconds[1:], strict=False)}
        assert len(gaps) == 1, times
        [gap] = gaps
        assert gap in (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600), times
        assert all(s % gap == 0 for s in seconds), times


def png_pixels(data: bytes) -> tuple[int, int, list[bytes]]:
    """Decode an 8-bit RGB/RGBA, non-interlaced PNG (what Chromium writes): width, height, RGB pixels."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, header = 8, b"", b""
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        chunk = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            header = chunk
        elif kind == b"IDAT":
            idat += chunk
        pos += 12 + length
    width, height, depth, colour, _c, _f, interlace = struct.unpack(">IIBBBBB", header)
    assert depth == 8 and colour in (2, 6) and interlace == 0, header
    bpp = 3 if colour == 2 else 4
    raw = zlib.decompress(idat)
    stride = width * bpp
    rows: list[bytes] = []
    prev = bytearray(stride)
    for y in range(height):
        base = y * (stride + 1)
        kind, line = raw[base], bytearray(raw[base + 1:base + 1 + stride])
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b = prev[i]
            c = prev[i - bpp] if i >= bpp else 0
            if kind == 1:
                line[i] = (line[i] + a) & 0xFF
            elif kind == 2:
                line[i] = (line[i] + b) & 0xFF
            elif kind == 3:
                line[i] = (line[i] + (a + b) // 2) & 0xFF
            elif kind == 4:
                pa, pb, pc = abs(b - c), abs(a - c), abs(a + b - 2 * c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 0xFF
        rows.append(bytes(line))
        prev = line
    return width, height, [r[i:i + 3] for r in rows for i in range(0, stride, bpp)]


def test_screenshot_is_not_blank(report_page: tuple[Page, list[str]]) -> None:
    page, network = report_page
    ARTIFACTS.mkdir(exist_ok=True)
    target = ARTIFACTS / "html-report.png"
    page.screenshot(path=str(target), full_page=True)
    data = target.read_bytes()
    assert len(data) > 30_000, len(data)
    width, height, pixels = png_pixels(data)
    assert width == 1100 and height > 900
    colours = set(pixels)
    assert len(colours) > 50, f"only {len(colours)} colours"
    white = pixels.count(b"\xff\xff\xff")
    assert 0.02 < 1 - white / len(pixels) < 0.9, white / len(pixels)
    # The plot colours are on screen: the healthy line's green and the threshold/outage red family.
    assert b"\x27\xae\x60" in colours, "no healthy-line green in the screenshot"
    assert network == []


TEXTS = """els => els.map(e => {
    const r = e.getBoundingClientRect();
    return {text: e.textContent, x: Number(e.getAttribute('x')), mid: r.y + r.height / 2,
            left: r.left, right: r.right, top: r.top, bottom: r.bottom};
})"""


def test_engine_axis_labels_match_their_gridlines(report_page: tuple[Page, list[str]], rich_run: RealRun) -> None:
    """A reader takes the engine count off the y axis: each label must sit where its value is drawn."""
    page, _network = report_page
    labels = [t for t in page.eval_on_selector_all(f"{HEALTH} text[text-anchor='end']", TEXTS) if t["x"] < 64]
    values = [t["text"] for t in labels]
    assert 2 <= len(values) <= 5, values
    assert len(set(values)) == len(values), f"y-axis labels repeat: {values}"
    # The healthy line's highest point is the largest healthy count of the run; the label of that count
    # must be at the same height.
    cycles = [r for r in rich_run.records("health") if r.get("operation") == "health_monitor_cycle"]
    peak = max(c["healthy"] for c in cycles)
    top: float = page.eval_on_selector_all(
        f"{HEALTH} circle.healthy-point",
        """els => Math.min(...els.map(e => { const r = e.getBoundingClientRect(); return r.y + r.height / 2; }))""")
    at_peak = [t for t in labels if t["text"] == str(peak)]
    assert at_peak, f"no y-axis label for {peak} engines: {values}"
    assert abs(at_peak[0]["mid"] - top) < 4, (
        f"the label '{peak}' is at y={at_peak[0]['mid']:.1f} but {peak} engines are drawn at y={top:.1f}")


def test_no_axis_label_is_cut_off(report_page: tuple[Page, list[str]]) -> None:
    page, _network = report_page
    for svg in (PROV, HEALTH):
        frame = page.locator(svg).bounding_box()
        assert frame is not None
        right, bottom = frame["x"] + frame["width"], frame["y"] + frame["height"]
        for t in page.eval_on_selector_all(f"{svg} text", TEXTS):
            inside = (t["left"] >= frame["x"] - 0.5 and t["right"] <= right + 0.5
                      and t["top"] >= frame["y"] - 0.5 and t["bottom"] <= bottom + 0.5)
            assert inside, f"{svg}: label {t['text']!r} spills out of the plot ({t}, frame {frame})"
