/* The history charts on <canvas>, no library: provisioning durations against the slow threshold, engines over
   time as steps, VPN outages as red bands across both, stress events as markers with hover text.
   window.AceHistory.draw(provCanvas, enginesCanvas, history, rangeS) redraws from scratch each time. */
"use strict";

(function () {
  const C = {
    grid: "#263040", text: "#8390a3", ok: "#4fa3ff", slow: "#f85149", fail: "#f85149", threshold: "#d29922",
    total: "#d8dee9", healthy: "#3fb950", unhealthy: "#f0883e", band: "rgba(248, 81, 73, 0.22)",
    bandEdge: "rgba(248, 81, 73, 0.7)", marker: { critical: "#f85149", warning: "#d29922", info: "#8390a3" },
  };
  const PAD = { left: 52, right: 14, top: 22, bottom: 22 };
  const MIN_SPAN_MS = 45000;

  function fit(canvas) {
    const ratio = window.devicePixelRatio || 1;
    const w = canvas.clientWidth || canvas.width;
    const h = canvas.clientHeight || canvas.height;
    if (canvas.width !== Math.round(w * ratio) || canvas.height !== Math.round(h * ratio)) {
      canvas.width = Math.round(w * ratio);
      canvas.height = Math.round(h * ratio);
    }
    const ctx = canvas.getContext("2d");
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    ctx.clearRect(0, 0, w, h);
    ctx.font = "11px system-ui, sans-serif";
    return { ctx, w, h };
  }

  function niceMax(v) {
    if (!(v > 0)) return 1;
    const e = Math.pow(10, Math.floor(Math.log10(v)));
    for (const s of [1, 2, 2.5, 5, 10]) if (s * e >= v) return s * e;
    return 10 * e;
  }

  function hhmmss(ms) {
    return new Date(ms).toISOString().slice(11, 19);
  }

  /** The time window: the range, or since the first data point when the process is younger than the range. */
  function windowOf(h, rangeS) {
    const now = Date.parse(h.now);
    let first = now;
    for (const s of h.samples) first = Math.min(first, Date.parse(s.ts));
    for (const p of h.provisions) first = Math.min(first, Date.parse(p.ts) - p.duration_ms);
    for (const o of h.vpn_outages) first = Math.min(first, Date.parse(o.start));
    for (const s of h.stress) first = Math.min(first, Date.parse(s.ts));
    let t0 = Math.max(now - rangeS * 1000, first);
    const span = Math.max(MIN_SPAN_MS, (now - t0) * 1.05);
    t0 = now - Math.min(span, rangeS * 1000);
    return { t0, t1: now, partial: t0 > now - rangeS * 1000 + 1000 };
  }

  /** How many grid steps make round labels for this (nice) maximum. */
  function divisions(ymax) {
    for (const n of [5, 4, 2]) {
      const stepV = ymax / n;
      const e = Math.pow(10, Math.floor(Math.log10(stepV)));
      if ([1, 2, 2.5, 5, 10].some((m) => Math.abs(stepV / e - m) < 1e-9)) return n;
    }
    return 4;
  }

  function axes(ctx, w, h, t0, t1, ymax, fmt) {
    const ih = h - PAD.top - PAD.bottom;
    const n = divisions(ymax);
    ctx.strokeStyle = C.grid;
    ctx.lineWidth = 1;
    ctx.fillStyle = C.text;
    for (let i = 0; i <= n; i++) {
      const y = Math.round(PAD.top + (ih * i) / n) + 0.5;
      ctx.beginPath();
      ctx.moveTo(PAD.left, y);
      ctx.lineTo(w - PAD.right, y);
      ctx.stroke();
      ctx.textAlign = "right";
      ctx.fillText(fmt(ymax * (1 - i / n)), PAD.left - 6, y + 4);
    }
    ctx.textAlign = "left";
    ctx.fillText(hhmmss(t0), PAD.left, h - 6);
    ctx.textAlign = "center";
    ctx.fillText(hhmmss((t0 + t1) / 2), PAD.left + (w - PAD.left - PAD.right) / 2, h - 6);
    ctx.textAlign = "right";
    ctx.fillText(`${hhmmss(t1)} UTC`, w - PAD.right, h - 6);
  }

  /** VPN outages as red bands over the whole plot; returns how many were drawn. */
  function bands(ctx, w, h, x, outages, t1, label) {
    let n = 0;
    for (const o of outages) {
      const a = Math.max(PAD.left, x(Date.parse(o.start)));
      const b = Math.min(w - PAD.right, x(o.end ? Date.parse(o.end) : t1));
      const bw = Math.max(3, b - a);
      ctx.fillStyle = C.band;
      ctx.fillRect(a, PAD.top, bw, h - PAD.top - PAD.bottom);
      ctx.fillStyle = C.bandEdge;
      ctx.fillRect(a, PAD.top, 2, h - PAD.top - PAD.bottom);
      if (label) {
        ctx.fillStyle = "#ff9b94";
        ctx.textAlign = "left";
        ctx.font = "bold 11px system-ui, sans-serif";
        const secs = Math.round(((o.end ? Date.parse(o.end) : t1) - Date.parse(o.start)) / 1000);
        ctx.fillText(`VPN down ${secs}s${o.end ? "" : " (now)"}`, a + 4, PAD.top + 12);
        ctx.font = "11px system-ui, sans-serif";
      }
      n++;
    }
    return n;
  }

  /** Stress markers: a dotted line and a triangle on top; returns their hit boxes for the hover text. */
  function markers(ctx, w, h, x, stress) {
    const hits = [];
    for (const s of stress) {
      const xx = x(Date.parse(s.ts));
      if (xx < PAD.left - 1 || xx > w - PAD.right + 1) continue;
      const color = C.marker[s.severity] || C.marker.info;
      ctx.strokeStyle = color;
      ctx.setLineDash([2, 3]);
      ctx.beginPath();
      ctx.moveTo(xx, PAD.top);
      ctx.lineTo(xx, h - PAD.bottom);
      ctx.stroke();
      ctx.setLineDash([]);
      ctx.fillStyle = color;
      ctx.beginPath();
      ctx.moveTo(xx - 5, 4);
      ctx.lineTo(xx + 5, 4);
      ctx.lineTo(xx, 13);
      ctx.closePath();
      ctx.fill();
      hits.push({ x: xx, text: `${hhmmss(Date.parse(s.ts))} ${s.severity} ${s.event_type}: ${s.description}` });
    }
    return hits;
  }

  function drawProvisions(canvas, h, win) {
    const { ctx, w, h: ch } = fit(canvas);
    const { t0, t1 } = win;
    const x = (t) => PAD.left + ((t - t0) / (t1 - t0)) * (w - PAD.left - PAD.right);
    const thr = h.slow_threshold_ms / 1000;
    const pts = h.provisions.filter((p) => Date.parse(p.ts) >= t0);
    const ymax = niceMax(Math.max(thr * 1.3, ...pts.map((p) => p.duration_ms / 1000)));
    const y = (v) => PAD.top + (ch - PAD.top - PAD.bottom) * (1 - v / ymax);
    axes(ctx, w, ch, t0, t1, ymax, (v) => `${v.toFixed(v < 10 ? 1 : 0)} s`);
    const nb = bands(ctx, w, ch, x, h.vpn_outages, t1, true);
    // the slow threshold
    ctx.strokeStyle = C.threshold;
    ctx.setLineDash([6, 4]);
    ctx.lineWidth = 1.5;
    ctx.beginPath();
    ctx.moveTo(PAD.left, y(thr));
    ctx.lineTo(w - PAD.right, y(thr));
    ctx.stroke();
    ctx.setLineDash([]);
    ctx.fillStyle = C.threshold;
    ctx.textAlign = "right";
    ctx.fillText(`slow > ${thr.toFixed(1)} s`, w - PAD.right - 2, y(thr) - 4);
    const hits = markers(ctx, w, ch, x, h.stress);
    for (const p of pts) {
      const xx = x(Date.parse(p.ts));
      const yy = y(p.duration_ms / 1000);
      const bad = p.slow || !p.ok;
      ctx.fillStyle = bad ? C.slow : C.ok;
      ctx.beginPath();
      if (p.ok) ctx.arc(xx, yy, bad ? 6 : 4.5, 0, Math.PI * 2);
      else ctx.rect(xx - 5, yy - 5, 10, 10);
      ctx.fill();
      if (bad) {
        ctx.fillStyle = "#ff9b94";
        ctx.textAlign = "left";
        ctx.font = "bold 11px system-ui, sans-serif";
        ctx.fillText(p.ok ? `slow start ${(p.duration_ms / 1000).toFixed(1)} s` : `failed: ${p.code}`, xx + 8, yy + 4);
        ctx.font = "11px system-ui, sans-serif";
      }
      hits.push({ x: xx, y: yy, text: `${hhmmss(Date.parse(p.ts))} ${p.kind} start ${p.ok ? "ok" : `failed (${p.code})`}` +
        ` in ${(p.duration_ms / 1000).toFixed(2)} s${p.slow ? " — SLOW" : ""}${p.container_name ? ` · ${p.container_name}` : ""}` });
    }
    canvas.dataset.points = String(pts.length);
    canvas.dataset.slow = String(pts.filter((p) => p.slow).length);
    canvas.dataset.bands = String(nb);
    canvas.dataset.markers = String(h.stress.filter((s) => Date.parse(s.ts) >= t0).length);
    return hits;
  }

  function step(ctx, x, y, series, t1, color, width) {
    if (series.length === 0) return;
    ctx.strokeStyle = color;
    ctx.lineWidth = width;
    ctx.beginPath();
    series.forEach((p, i) => {
      if (i === 0) ctx.moveTo(x(p.t), y(p.v));
      else {
        ctx.lineTo(x(p.t), y(series[i - 1].v));
        ctx.lineTo(x(p.t), y(p.v));
      }
    });
    ctx.lineTo(x(t1), y(series[series.length - 1].v));
    ctx.stroke();
  }

  function area(ctx, x, y, series, t1, fill) {
    ctx.fillStyle = fill;
    series.forEach((p, i) => {
      const next = i + 1 < series.length ? series[i + 1].t : t1;
      if (p.hi > p.lo) ctx.fillRect(x(p.t), y(p.hi), Math.max(1, x(next) - x(p.t)), y(p.lo) - y(p.hi));
    });
  }

  /** Engine counts over time: the samples, plus a point at each engine event so that a change shows at once. */
  function drawEngines(canvas, h, win, live) {
    const { ctx, w, h: ch } = fit(canvas);
    const { t0, t1 } = win;
    const x = (t) => PAD.left + ((Math.max(t, t0) - t0) / (t1 - t0)) * (w - PAD.left - PAD.right);
    const samples = h.samples.map((s) => ({ t: Date.parse(s.ts), total: s.total, healthy: s.engines.healthy || 0,
      bad: (s.engines.unhealthy || 0) + (s.engines.unreachable || 0), streams: s.streams }));
    if (live) samples.push({ t: t1, ...live });
    const ymax = niceMax(Math.max(2, ...samples.map((s) => s.total)));
    const y = (v) => PAD.top + (ch - PAD.top - PAD.bottom) * (1 - v / ymax);
    axes(ctx, w, ch, t0, t1, ymax, (v) => String(Math.round(v * 10) / 10));
    const of = (k) => samples.map((s) => ({ t: s.t, v: s[k] }));
    // stacked steps: healthy engines from the floor, unhealthy ones on top of them, the rest (starting, unknown)
    // up to the total; streams as a line
    area(ctx, x, y, samples.map((s) => ({ t: s.t, lo: 0, hi: s.healthy })), t1, "rgba(63, 185, 80, 0.35)");
    area(ctx, x, y, samples.map((s) => ({ t: s.t, lo: s.healthy, hi: s.healthy + s.bad })), t1, "rgba(240, 136, 62, 0.55)");
    area(ctx, x, y, samples.map((s) => ({ t: s.t, lo: s.healthy + s.bad, hi: s.total })), t1, "rgba(131, 144, 163, 0.35)");
    step(ctx, x, y, of("total"), t1, C.total, 1.5);
    step(ctx, x, y, of("streams"), t1, C.ok, 2);
    const nb = bands(ctx, w, ch, x, h.vpn_outages, t1, false);
    const hits = markers(ctx, w, ch, x, h.stress);
    for (const s of h.samples) {
      hits.push({ x: x(Date.parse(s.ts)), text: `${hhmmss(Date.parse(s.ts))} engines ${s.total} (healthy ${s.engines.healthy || 0}, ` +
        `unhealthy ${s.engines.unhealthy || 0}) · streams ${s.streams}${s.viewers !== null ? ` · viewers ${s.viewers}` : ""}` +
        `${s.vpn === false ? " · VPN DOWN" : ""}` });
    }
    canvas.dataset.samples = String(h.samples.length);
    canvas.dataset.bands = String(nb);
    return hits;
  }

  function hover(canvas, tip, hits) {
    canvas._hits = hits;
    if (canvas._hoverBound) return;
    canvas._hoverBound = true;
    canvas.addEventListener("mousemove", (ev) => {
      const r = canvas.getBoundingClientRect();
      const mx = ev.clientX - r.left;
      const my = ev.clientY - r.top;
      let best = null;
      let bestD = 9;
      for (const hit of canvas._hits || []) {
        const d = hit.y === undefined ? Math.abs(hit.x - mx) : Math.hypot(hit.x - mx, hit.y - my);
        if (d < bestD) {
          best = hit;
          bestD = d;
        }
      }
      if (!best) {
        tip.hidden = true;
        return;
      }
      tip.textContent = best.text;
      tip.hidden = false;
      tip.style.left = `${Math.min(r.width - 260, Math.max(0, mx + 12))}px`;
      tip.style.top = `${canvas.offsetTop + my + 14}px`;
    });
    canvas.addEventListener("mouseleave", () => {
      tip.hidden = true;
    });
  }

  /** Draw both charts; returns the window drawn. */
  function draw(provCanvas, enginesCanvas, tip, h, rangeS, live) {
    const win = windowOf(h, rangeS);
    hover(provCanvas, tip, drawProvisions(provCanvas, h, win));
    hover(enginesCanvas, tip, drawEngines(enginesCanvas, h, win, live));
    return win;
  }

  window.AceHistory = { draw };
})();
