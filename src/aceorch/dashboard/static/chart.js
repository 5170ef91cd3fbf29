/* A small two-axis line chart on a <canvas>: speed_down (left axis) and peers (right axis) over time.
   No library: window.AceChart.draw(canvas, snapshots) redraws from scratch each time. */
"use strict";

(function () {
  const COLORS = { speed: "#4fa3ff", peers: "#f0883e", grid: "#263040", text: "#8390a3" };

  function niceMax(value) {
    if (!(value > 0)) return 1;
    const exp = Math.pow(10, Math.floor(Math.log10(value)));
    for (const step of [1, 2, 2.5, 5, 10]) {
      if (step * exp >= value) return step * exp;
    }
    return 10 * exp;
  }

  function fmtTime(ms) {
    const d = new Date(ms);
    return d.toISOString().slice(11, 19);
  }

  function series(points, key) {
    return points.filter((p) => typeof p[key] === "number").map((p) => ({ t: p.t, v: p[key] }));
  }

  function line(ctx, pts, x, y, color) {
    if (pts.length === 0) return;
    ctx.strokeStyle = color;
    ctx.lineWidth = 2;
    ctx.lineJoin = "round";
    ctx.beginPath();
    pts.forEach((p, i) => (i === 0 ? ctx.moveTo(x(p.t), y(p.v)) : ctx.lineTo(x(p.t), y(p.v))));
    ctx.stroke();
    const last = pts[pts.length - 1];
    ctx.fillStyle = color;
    ctx.beginPath();
    ctx.arc(x(last.t), y(last.v), 3, 0, Math.PI * 2);
    ctx.fill();
  }

  /** Draw the snapshots ({ts, speed_down, peers, …}) and return how many were drawn. */
  function draw(canvas, snapshots, message) {
    const ratio = window.devicePixelRatio || 1;
    const cssW = canvas.clientWidth || canvas.width;
    const cssH = canvas.clientHeight || canvas.height;
    if (canvas.width !== Math.round(cssW * ratio) || canvas.height !== Math.round(cssH * ratio)) {
      canvas.width = Math.round(cssW * ratio);
      canvas.height = Math.round(cssH * ratio);
    }
    const ctx = canvas.getContext("2d");
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    ctx.clearRect(0, 0, cssW, cssH);
    ctx.font = "11px system-ui, sans-serif";

    const points = (snapshots || [])
      .map((s) => ({ t: Date.parse(s.ts), speed_down: s.speed_down, peers: s.peers }))
      .filter((p) => !Number.isNaN(p.t));
    canvas.dataset.points = String(points.length);
    if (points.length === 0) {
      ctx.fillStyle = COLORS.text;
      ctx.textAlign = "center";
      ctx.fillText(message || "no stats yet", cssW / 2, cssH / 2);
      return 0;
    }

    const pad = { left: 44, right: 36, top: 10, bottom: 22 };
    const w = cssW - pad.left - pad.right;
    const h = cssH - pad.top - pad.bottom;
    let t0 = points[0].t;
    let t1 = points[points.length - 1].t;
    if (t1 - t0 < 10000) t0 = t1 - 10000;
    const speed = series(points, "speed_down");
    const peers = series(points, "peers");
    const maxSpeed = niceMax(Math.max(0, ...speed.map((p) => p.v)));
    const maxPeers = niceMax(Math.max(0, ...peers.map((p) => p.v)));
    const x = (t) => pad.left + ((t - t0) / (t1 - t0)) * w;
    const ySpeed = (v) => pad.top + h - (v / maxSpeed) * h;
    const yPeers = (v) => pad.top + h - (v / maxPeers) * h;

    // grid and axis labels
    ctx.strokeStyle = COLORS.grid;
    ctx.lineWidth = 1;
    ctx.fillStyle = COLORS.text;
    for (let i = 0; i <= 4; i++) {
      const yy = Math.round(pad.top + (h * i) / 4) + 0.5;
      ctx.beginPath();
      ctx.moveTo(pad.left, yy);
      ctx.lineTo(pad.left + w, yy);
      ctx.stroke();
      ctx.textAlign = "right";
      ctx.fillStyle = COLORS.speed;
      ctx.fillText(String(Math.round(maxSpeed * (1 - i / 4))), pad.left - 6, yy + 4);
      ctx.textAlign = "left";
      ctx.fillStyle = COLORS.peers;
      ctx.fillText(String(Math.round(maxPeers * (1 - i / 4) * 10) / 10), pad.left + w + 6, yy + 4);
    }
    ctx.fillStyle = COLORS.text;
    ctx.textAlign = "left";
    ctx.fillText(fmtTime(t0), pad.left, cssH - 6);
    ctx.textAlign = "right";
    ctx.fillText(fmtTime(t1), pad.left + w, cssH - 6);

    line(ctx, speed, x, ySpeed, COLORS.speed);
    line(ctx, peers, x, yPeers, COLORS.peers);
    return points.length;
  }

  window.AceChart = { draw };
})();
