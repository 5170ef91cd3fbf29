/* The charts of `aceorch debug html-report`: drawn as SVG in the page from the data the report embeds.
 *
 * One small module, inlined into the report so the file opens offline. Two charts share the frame code:
 * provisioning durations (a dot per finished start, the slow threshold, stress markers, VPN outage bands) and
 * engines over time (healthy and unhealthy counts as steps, engine restarts marked). Axis ticks are round
 * numbers (1, 2 or 5 times a power of ten; whole seconds, minutes or hours on the time axis). Every mark has
 * hover text (a tooltip, and an SVG <title> for screen readers); each chart has a legend of what it shows.
 */
"use strict";
(function () {
  const NS = "http://www.w3.org/2000/svg";
  const W = 960, H = 320, M = { l: 64, r: 48, t: 20, b: 40 };
  const COLOURS = { ok: "#2c7fb8", failed: "#c0392b", healthy: "#27ae60", unhealthy: "#c0392b",
                    outage: "#c0392b", restart: "#8e44ad", threshold: "#c0392b" };
  const STRESS_PALETTE = ["#e67e22", "#8e44ad", "#16a085", "#d35400", "#2c3e50", "#c0392b", "#7f8c8d", "#2980b9"];
  const TIME_STEPS = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400];

  function el(name, attrs, parent) {
    const node = document.createElementNS(NS, name);
    for (const [key, value] of Object.entries(attrs || {})) node.setAttribute(key, String(value));
    if (parent) parent.appendChild(node);
    return node;
  }

  function html(name, attrs, parent, text) {
    const node = document.createElement(name);
    for (const [key, value] of Object.entries(attrs || {})) node.setAttribute(key, String(value));
    if (text !== undefined) node.textContent = text;
    if (parent) parent.appendChild(node);
    return node;
  }

  /* Round ticks from 0 to at least `max`: a step of 1, 2 or 5 times a power of ten (`whole`: at least 1). */
  function valueTicks(max, count, whole) {
    const top = max > 0 ? max : 1;
    const raw = top / count;
    const power = Math.pow(10, Math.floor(Math.log10(raw)));
    let step = [1, 2, 5, 10].map((m) => m * power).find((s) => s >= raw) || raw;
    if (whole) step = Math.max(1, Math.round(step));
    const ticks = [];
    for (let v = 0; v <= top + step * 1e-9; v += step) ticks.push(Number(v.toPrecision(12)));
    if (ticks[ticks.length - 1] < top) ticks.push(Number((ticks[ticks.length - 1] + step).toPrecision(12)));
    return ticks;
  }

  /* Round times between t0 and t1 (POSIX seconds): whole 1/2/5/10/15/30 s, minutes or hours. */
  function timeTicks(t0, t1, count) {
    const span = Math.max(t1 - t0, 1);
    const step = TIME_STEPS.find((s) => span / s <= count) || 86400 * Math.ceil(span / (86400 * count));
    const ticks = [];
    for (let t = Math.ceil(t0 / step) * step; t <= t1; t += step) ticks.push(t);
    return { ticks, step };
  }

  function clock(t, withSeconds) {
    const text = new Date(t * 1000).toISOString().slice(11, 19);
    return withSeconds ? text : text.slice(0, 5);
  }

  function tooltip() {
    let tip = document.getElementById("chart-tip");
    if (!tip) tip = html("div", { id: "chart-tip", role: "tooltip", hidden: "" }, document.body);
    return tip;
  }

  /* Hover text for a mark: a tooltip that follows the pointer, and an SVG <title>. */
  function hover(node, text) {
    el("title", {}, node).textContent = text;
    node.setAttribute("data-tip", text);
    node.addEventListener("mouseenter", (event) => {
      const tip = tooltip();
      tip.textContent = text;
      tip.hidden = false;
      place(tip, event);
    });
    node.addEventListener("mousemove", (event) => place(tooltip(), event));
    node.addEventListener("mouseleave", () => { tooltip().hidden = true; });
  }

  function place(tip, event) {
    tip.style.left = `${event.pageX + 12}px`;
    tip.style.top = `${event.pageY + 12}px`;
  }

  /* The frame of one chart: axes with round ticks and gridlines; returns the scales. */
  function frame(svg, t0, t1, yMax, yLabel, whole) {
    const yTicks = valueTicks(yMax, 4, whole);
    const yTop = yTicks[yTicks.length - 1];
    const x = (t) => M.l + ((t - t0) / Math.max(t1 - t0, 1e-9)) * (W - M.l - M.r);
    const y = (v) => H - M.b - (v / yTop) * (H - M.t - M.b);
    const grid = el("g", { class: "grid" }, svg);
    for (const v of yTicks) {
      el("line", { x1: M.l, x2: W - M.r, y1: y(v), y2: y(v), stroke: "#e6e6e6" }, grid);
      el("text", { x: M.l - 8, y: y(v) + 4, "text-anchor": "end", class: "tick" }, grid).textContent =
        whole ? String(v) : String(Number(v.toPrecision(6)));
    }
    const { ticks, step } = timeTicks(t0, t1, 7);
    for (const t of ticks) {
      el("line", { x1: x(t), x2: x(t), y1: H - M.b, y2: H - M.b + 5, stroke: "#555" }, grid);
      el("text", { x: x(t), y: H - M.b + 18, "text-anchor": "middle", class: "tick" }, grid).textContent =
        clock(t, step < 60);
    }
    el("line", { x1: M.l, x2: W - M.r, y1: H - M.b, y2: H - M.b, stroke: "#555" }, svg);
    el("line", { x1: M.l, x2: M.l, y1: M.t, y2: H - M.b, stroke: "#555" }, svg);
    el("text", { x: W - M.r, y: H - 4, "text-anchor": "end", class: "axis-label" }, svg).textContent = "time (UTC)";
    el("text", { x: 4, y: M.t - 6, class: "axis-label" }, svg).textContent = yLabel;
    return { x, y, yTop };
  }

  function bands(svg, scale, outages, t1) {
    for (const o of outages) {
      const x0 = scale.x(o.start), x1 = scale.x(o.end === null ? t1 : o.end);
      const band = el("rect", { class: "vpn-outage", x: x0, y: M.t, width: Math.max(x1 - x0, 2),
                                height: H - M.t - M.b, fill: COLOURS.outage, "fill-opacity": 0.12 }, svg);
      hover(band, o.label);
    }
  }

  function svgFor(container, label) {
    return el("svg", { xmlns: NS, role: "img", "aria-label": label, viewBox: `0 0 ${W} ${H}`,
                       width: W, height: H }, container);
  }

  function legend(container, items) {
    const list = html("ul", { class: "legend" }, container);
    for (const item of items) {
      const entry = html("li", { "data-kind": item.kind }, list);
      html("span", { class: `swatch ${item.shape}`, style: `--c:${item.colour}` }, entry);
      html("span", {}, entry, item.text);
    }
    return list;
  }

  function stressColours(stress) {
    const colours = {};
    for (const s of stress) {
      if (!(s.type in colours)) colours[s.type] = STRESS_PALETTE[Object.keys(colours).length % STRESS_PALETTE.length];
    }
    return colours;
  }

  function provisioning(container, data) {
    const svg = svgFor(container, "provisioning durations over time");
    // Headroom above the slowest start, so that no dot sits under the stress markers' row at the top.
    const maxS = Math.max(data.threshold_ms, ...data.starts.map((s) => s.ms)) * 1.15 / 1000;
    const scale = frame(svg, data.t0, data.t1, maxS, "provisioning duration (s)", false);
    bands(svg, scale, data.outages, data.t1);
    const ty = scale.y(data.threshold_ms / 1000);
    el("line", { class: "threshold", x1: M.l, x2: W - M.r, y1: ty, y2: ty, stroke: COLOURS.threshold,
                 "stroke-dasharray": "6 4" }, svg);
    el("text", { x: W - M.r - 4, y: ty - 5, "text-anchor": "end", fill: COLOURS.threshold, class: "tick" }, svg)
      .textContent = `threshold ${(data.threshold_ms / 1000).toFixed(1)} s`;
    const colours = stressColours(data.stress);
    for (const s of data.stress) {
      const x = scale.x(s.t);
      const marker = el("path", { class: "stress", "data-type": s.type, d: `M${x} ${M.t + 10} l-5 -9 h10 z`,
                                  fill: colours[s.type] }, svg);
      hover(marker, `${clock(s.t, true)} UTC · ${s.type} (${s.severity})\n${s.description || ""}`);
    }
    for (const s of data.starts) {
      const dot = el("circle", { class: "provision", cx: scale.x(s.t), cy: scale.y(s.ms / 1000), r: 3.5,
                                 fill: s.ok ? COLOURS.ok : COLOURS.failed }, svg);
      const lines = [`${s.container || "(no container)"} · ${(s.ms / 1000).toFixed(2)} s`,
                     `${s.ok ? "started" : "failed"} at ${clock(s.t, true)} UTC`];
      if (!s.ok) lines.push(`reason: ${s.reason || "unknown"}${s.error ? ` (${s.error})` : ""}`);
      hover(dot, lines.join("\n"));
    }
    const items = [
      { kind: "ok", shape: "dot", colour: COLOURS.ok, text: "finished start" },
      { kind: "failed", shape: "dot", colour: COLOURS.failed, text: "failed start" },
      { kind: "threshold", shape: "dash", colour: COLOURS.threshold, text: "slow-start threshold" },
    ];
    if (data.outages.length) items.push({ kind: "vpn-outage", shape: "band", colour: COLOURS.outage, text: "VPN outage" });
    for (const [type, colour] of Object.entries(colours)) {
      items.push({ kind: `stress:${type}`, shape: "triangle", colour, text: `stress: ${type}` });
    }
    legend(container, items);
  }

  /* A step line: each count holds until the next sweep. */
  function steps(points, scale, t1) {
    if (!points.length) return "";
    let d = `M${scale.x(points[0][0])} ${scale.y(points[0][1])}`;
    for (let i = 1; i < points.length; i++) {
      d += ` H${scale.x(points[i][0])} V${scale.y(points[i][1])}`;
    }
    return d + ` H${scale.x(t1)}`;
  }

  function engines(container, data) {
    const svg = svgFor(container, "healthy and unhealthy engines over time");
    const top = Math.max(1, ...data.health.map((c) => c.total));
    const scale = frame(svg, data.t0, data.t1, top, "engines", true);
    bands(svg, scale, data.outages, data.t1);
    for (const [name, colour] of [["healthy", COLOURS.healthy], ["unhealthy", COLOURS.unhealthy]]) {
      const path = el("path", { class: `${name} step`, d: steps(data.health.map((c) => [c.t, c[name]]), scale, data.t1),
                                fill: "none", stroke: colour, "stroke-width": 2 }, svg);
      path.setAttribute("data-sweeps", String(data.health.length));
    }
    for (const c of data.health) {
      for (const [name, colour] of [["healthy", COLOURS.healthy], ["unhealthy", COLOURS.unhealthy]]) {
        const point = el("circle", { class: `sweep ${name}-point`, cx: scale.x(c.t), cy: scale.y(c[name]), r: 2.5,
                                     fill: colour }, svg);
        hover(point, `${clock(c.t, true)} UTC · ${c.healthy} healthy, ${c.unhealthy} unhealthy of ${c.total}`);
      }
    }
    for (const r of data.restarts) {
      const x = scale.x(r.t);
      const mark = el("g", { class: "restart" }, svg);
      el("line", { x1: x, x2: x, y1: M.t, y2: H - M.b, stroke: COLOURS.restart, "stroke-dasharray": "2 3" }, mark);
      el("path", { d: `M${x} ${H - M.b - 1} l-5 -9 h10 z`, fill: COLOURS.restart }, mark);
      hover(mark, `${clock(r.t, true)} UTC · ${r.label}`);
    }
    const items = [
      { kind: "healthy", shape: "line", colour: COLOURS.healthy, text: "healthy engines" },
      { kind: "unhealthy", shape: "line", colour: COLOURS.unhealthy, text: "unhealthy engines" },
    ];
    if (data.restarts.length) items.push({ kind: "restart", shape: "triangle", colour: COLOURS.restart, text: "engine restart" });
    if (data.outages.length) items.push({ kind: "vpn-outage", shape: "band", colour: COLOURS.outage, text: "VPN outage" });
    legend(container, items);
  }

  window.AceCharts = { provisioning, engines, valueTicks, timeTicks };
})();
