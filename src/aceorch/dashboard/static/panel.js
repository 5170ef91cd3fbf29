/* aceorch panel: polls the HTTP API of this process every 2 s and renders it, and follows /events/stream (SSE,
   read with fetch() so that the key goes in the Authorization header) to show stress events, engine and stream
   changes at once; when the stream is down it reconnects, and the poll goes on. Plain JS, no build, no CDN.
   Data goes into the page through textContent only. Every API error is shown in the banner. */
"use strict";

(function () {
  const KEY_STORAGE = "aceorch.apiKey";
  const REFRESH_MS = 2000;
  const MAX_STAT_STREAMS = 20;

  const state = {
    selected: null, // stream id shown in the chart
    timer: null,
    refreshing: false,
    again: false,
    errors: new Map(), // source -> message; refresh sources clear themselves on success
    debugEnabled: null,
    serverNow: null,
    history: null,
    stress: [], // the stress feed: the last poll's events, plus those the live stream delivered since
    live: false,
    liveTimer: null,
    historyTimer: null,
    engines: null,
  };
  const RANGE_S = { "15m": 900, "1h": 3600, "6h": 21600, "24h": 86400 };

  const $ = (id) => document.getElementById(id);

  // ---------------------------------------------------------------- API key
  function getKey() {
    try {
      return localStorage.getItem(KEY_STORAGE) || "";
    } catch (e) {
      return "";
    }
  }

  function setKey(value) {
    const key = (value || "").trim();
    if (key) localStorage.setItem(KEY_STORAGE, key);
    else localStorage.removeItem(KEY_STORAGE);
    showKeyState();
  }

  /** Save checks the key against the API first: it is stored only when the API takes it. */
  async function saveKey(value) {
    const key = (value || "").trim();
    if (!key) {
      setKey(""); // forgetting the key needs no check
      restartLive();
      refresh();
      return;
    }
    const state_ = $("key-state");
    state_.textContent = "checking…";
    state_.dataset.state = "checking";
    const headers = { Accept: "application/json" };
    if (key) headers.Authorization = `Bearer ${key}`;
    let resp;
    try {
      resp = await fetch("/engines", { headers, cache: "no-store" });
    } catch (e) {
      state_.textContent = `not checked: aceorch is not reachable (${e.message})`;
      state_.dataset.state = "error";
      return;
    }
    if (resp.status === 401 || resp.status === 403) {
      let body = null;
      try {
        body = await resp.json();
      } catch (e) {
        body = null;
      }
      state_.textContent = `rejected: ${resp.status} ${describeDetail(body, resp.status, resp.statusText)}; not stored`;
      state_.dataset.state = "rejected";
      return;
    }
    setKey(key);
    restartLive();
    refresh();
  }

  function showKeyState() {
    const key = getKey();
    $("api-key").value = key;
    $("key-state").textContent = key ? "stored" : "not set";
    $("key-state").dataset.state = key ? "set" : "unset";
  }

  /** ?key= in the URL is taken once, stored, and removed from the address bar. */
  function takeKeyFromUrl() {
    const url = new URL(window.location.href);
    if (!url.searchParams.has("key")) return;
    setKey(url.searchParams.get("key"));
    url.searchParams.delete("key");
    window.history.replaceState(null, "", url.pathname + url.search + url.hash);
  }

  // ---------------------------------------------------------------- errors
  function describeDetail(body, status, statusText) {
    if (body && Object.prototype.hasOwnProperty.call(body, "detail")) {
      const d = body.detail;
      if (typeof d === "string") return d;
      if (Array.isArray(d)) {
        return d.map((e) => `${(e.loc || []).join(".")}: ${e.msg}`).join("; ");
      }
      if (d && typeof d === "object") {
        const parts = [d.code || d.error, d.message].filter(Boolean);
        return parts.join(": ") || JSON.stringify(d);
      }
    }
    return statusText || `HTTP ${status}`;
  }

  class ApiError extends Error {}

  function setError(source, message) {
    if (message) state.errors.set(source, message);
    else state.errors.delete(source);
    renderErrors();
  }

  function renderErrors() {
    const list = $("error-list");
    list.replaceChildren();
    for (const [source, message] of state.errors) {
      const li = document.createElement("li");
      li.dataset.source = source;
      li.textContent = message;
      list.appendChild(li);
    }
    $("error-banner").hidden = state.errors.size === 0;
  }

  // ---------------------------------------------------------------- fetch
  /** Call the API, with the Bearer key when one is saved (reads need it too). Throws ApiError with a readable text. */
  async function api(method, path, { raw = false } = {}) {
    const headers = { Accept: "application/json" };
    const key = getKey();
    if (key) headers.Authorization = `Bearer ${key}`;
    let resp;
    try {
      resp = await fetch(path, { method, headers, cache: "no-store" });
    } catch (e) {
      throw new ApiError(`${method} ${path}: aceorch is not reachable (${e.message})`);
    }
    if (!resp.ok) {
      let body = null;
      try {
        body = await resp.json();
      } catch (e) {
        body = null;
      }
      const rid = resp.headers.get("X-Request-ID");
      const detail = describeDetail(body, resp.status, resp.statusText);
      throw new ApiError(`${method} ${path}: ${resp.status} ${detail}${rid ? ` (request ${rid})` : ""}`);
    }
    if (raw) return resp;
    try {
      return await resp.json();
    } catch (e) {
      throw new ApiError(`${method} ${path}: the answer is not JSON`);
    }
  }

  /** A GET that reports its own error under `source` and yields null on failure. */
  async function load(source, path) {
    try {
      const data = await api("GET", path);
      setError(source, null);
      return data;
    } catch (e) {
      setError(source, e.message);
      return null;
    }
  }

  // ---------------------------------------------------------------- formatting
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined) continue;
      if (k === "class") node.className = v;
      else if (k === "dataset") Object.assign(node.dataset, v);
      else if (k === "title") node.title = v;
      else node.setAttribute(k, v);
    }
    for (const child of children) {
      if (child === null || child === undefined) continue;
      node.appendChild(typeof child === "string" || typeof child === "number" ? document.createTextNode(String(child)) : child);
    }
    return node;
  }

  function pill(text, kind) {
    return el("span", { class: `pill pill-${kind || text}` }, String(text));
  }

  function yesNo(value) {
    return value ? pill("yes", "yes") : pill("no", "no");
  }

  function setPill(id, text, kind) {
    const node = $(id);
    node.replaceChildren(pill(text, kind));
  }

  function now() {
    return state.serverNow !== null ? state.serverNow : Date.now();
  }

  // CPU as docker stats shows it (100 % = one CPU busy) and memory in MiB or GiB; "–" while unknown.
  function cpu(percent) {
    return typeof percent === "number" ? `${percent.toFixed(1)} %` : "–";
  }

  function memory(bytes) {
    if (typeof bytes !== "number") return "–";
    const mib = bytes / 1048576;
    return mib >= 1024 ? `${(mib / 1024).toFixed(2)} GiB` : `${mib.toFixed(1)} MiB`;
  }

  function duration(ms) {
    if (!(ms >= 0)) return "–";
    let s = Math.floor(ms / 1000);
    const d = Math.floor(s / 86400);
    s -= d * 86400;
    const h = Math.floor(s / 3600);
    s -= h * 3600;
    const m = Math.floor(s / 60);
    s -= m * 60;
    if (d) return `${d}d ${h}h`;
    if (h) return `${h}h ${m}m`;
    if (m) return `${m}m ${s}s`;
    return `${s}s`;
  }

  function ago(iso) {
    if (!iso) return "–";
    const t = Date.parse(iso);
    return Number.isNaN(t) ? iso : `${duration(now() - t)} ago`;
  }

  function shortTime(iso) {
    if (!iso) return "–";
    return iso.replace("T", " ").slice(0, 19);
  }

  // ---------------------------------------------------------------- renderers
  function renderOrchestrator(s) {
    if (!s) return;
    const t = Date.parse(s.timestamp);
    state.serverNow = Number.isNaN(t) ? null : t;
    setPill("orch-status-pill", s.status);
    setPill("orch-status", s.status);
    $("can-provision").replaceChildren(yesNo(s.provisioning.can_provision));
    $("blocked-reason").textContent = s.provisioning.blocked_reason || "none";
    const d = s.provisioning.blocked_reason_details;
    $("blocked-details").textContent = d
      ? `${d.code}: ${d.message}` + (d.recovery_eta_seconds !== null ? ` (retry in ~${d.recovery_eta_seconds} s)` : "")
      : "";
    const e = s.engines;
    $("orch-engines").textContent = `${e.total} total · ${e.running} running · ${e.healthy} healthy · ${e.unhealthy} unhealthy`;
    $("orch-streams").textContent = `${s.streams.active} active · ${s.streams.total} total`;
    const c = s.capacity;
    $("orch-capacity").textContent = `${c.used}/${c.total} used · max ${c.max_replicas} · min ${c.min_replicas}`;
    $("orch-runtime").textContent = `${s.config.runtime}${s.config.auto_delete ? ` · auto-delete ${s.config.grace_period_s}s` : ""}`;
    setPill("orch-breaker", s.provisioning.circuit_breaker_state);
  }

  function renderVpn(v) {
    if (!v) return;
    // A disabled VPN is not a problem: neutral pills, not red ones.
    setPill("vpn-enabled", v.enabled ? "yes" : "no", v.enabled ? "yes" : "off");
    setPill("vpn-status", v.status, v.status === "running" ? "healthy" : v.enabled ? "unhealthy" : "disabled");
    setPill("vpn-health", v.health, v.enabled ? v.health : "disabled");
    $("vpn-port").textContent = v.forwarded_port === null || v.forwarded_port === undefined ? "–" : String(v.forwarded_port);
    $("vpn-ip").textContent = v.public_ip || "–";
    $("vpn-control").textContent = v.control_server || "–";
  }

  function renderEngines(engines) {
    if (!engines) return;
    const body = $("engines-body");
    body.replaceChildren();
    const starts = new Map(((state.history && state.history.engines) || []).map((x) => [x.container_id, x]));
    const slowMs = state.history ? state.history.slow_threshold_ms : Infinity;
    for (const e of engines) {
      const start = starts.get(e.container_id);
      const idle = e.streams.length > 0 ? "busy" : duration(now() - Date.parse(e.last_stream_usage || e.first_seen));
      const del = el("button", { class: "danger", type: "button", "data-testid": "delete-engine",
                                 title: `DELETE /containers/${e.container_id}` }, "Delete");
      del.addEventListener("click", () => deleteEngine(e, del));
      const row = el("tr", { "data-testid": "engine-row", dataset: { id: e.container_id, name: e.container_name } },
        el("td", { "data-testid": "engine-name" }, e.container_name),
        el("td", { class: "mono", title: e.container_id, "data-testid": "engine-id" }, e.container_id.slice(0, 12)),
        el("td", { class: "mono", "data-testid": "engine-addr" }, `${e.host}:${e.port}`),
        el("td", { "data-testid": "engine-health" }, pill(e.health_status)),
        el("td", { "data-testid": "engine-streams" }, String(e.streams.length)),
        el("td", { "data-testid": "engine-idle", title: e.last_stream_usage || "never used" }, idle),
        el("td", { "data-testid": "engine-uptime", title: start ? `started ${start.started_at}` : `seen since ${e.first_seen}` },
          duration(now() - Date.parse(start ? start.started_at : e.first_seen))),
        el("td", { class: "mono", "data-testid": "engine-image" }, (start && start.image) || "–"),
        el("td", { class: "right mono" + (start && start.start_duration_ms > slowMs ? " slow-cell" : ""),
                   "data-testid": "engine-start", title: "time from the start to a ready engine" },
          start ? `${(start.start_duration_ms / 1000).toFixed(1)} s` : "–"),
        el("td", { class: "right mono", "data-testid": "engine-cpu", title: "CPU, 100 % = one CPU" }, cpu(e.cpu_percent)),
        el("td", { class: "right mono", "data-testid": "engine-mem", title: "memory in use" }, memory(e.memory_bytes)),
        el("td", { class: "right" }, del));
      body.appendChild(row);
    }
    $("engines-count").textContent = String(engines.length);
    $("engines-empty").hidden = engines.length > 0;
  }

  // A node's one-word status: not ready (down, unknown, disconnected) first, then drain or pause, else ready.
  function nodeStatus(n) {
    if (n.state !== "ready") return n.state === "unknown" ? "unknown" : "down";
    if (n.availability === "drain" || n.availability === "pause") return n.availability;
    return "ready";
  }

  const NODE_NOTES = {
    down: (n) => (n.engines ? `not answering: Swarm moves its ${n.engines} engine(s) to other nodes`
      : "not answering: its engines run on other nodes"),
    unknown: () => "the manager has not heard from it yet",
    drain: (n) => (n.engines ? `draining: ${n.engines} engine(s) still moving to other nodes`
      : "drained: takes no engines"),
    pause: () => "paused: keeps its engines, takes no new ones",
  };

  function engineHealthCounts(engines) {
    const healthy = engines.filter((e) => e.health_status === "healthy").length;
    const bad = engines.filter((e) => e.health_status === "unhealthy" || e.health_status === "unreachable").length;
    return { healthy, bad, other: engines.length - healthy - bad };
  }

  function nodeCard(n, engines, { unplaced = false } = {}) {
    const status = unplaced ? "unplaced" : nodeStatus(n);
    const count = unplaced ? engines.length : n.engines;
    const h = engineHealthCounts(engines);
    const health = [
      h.healthy ? el("span", { class: "ok-text" }, `${h.healthy} healthy`) : null,
      h.bad ? el("span", { class: "bad-text" }, `${h.bad} unhealthy`) : null,
      h.other ? el("span", { class: "muted" }, `${h.other} not checked`) : null,
    ].filter(Boolean);
    const healthLine = el("span", { class: "node-health", "data-testid": "node-health",
                                    dataset: { healthy: h.healthy, unhealthy: h.bad } });
    health.forEach((part, i) => {
      if (i) healthLine.appendChild(document.createTextNode(" · "));
      healthLine.appendChild(part);
    });
    const list = el("ul", { class: "node-engines", "data-testid": "node-engine-list" });
    for (const e of engines) {
      list.appendChild(el("li", { class: `chip chip-${e.health_status}`, "data-testid": "node-engine",
                                  dataset: { id: e.container_id, health: e.health_status },
                                  title: `${e.container_id}\n${e.host}:${e.port} · ${e.health_status}` +
                                    ` · ${e.streams.length} stream(s)` },
        e.container_name, e.streams.length ? el("span", { class: "chip-streams" }, ` ▶${e.streams.length}`) : null));
    }
    const note = unplaced ? "not at the address of any listed node (a task being placed)"
      : NODE_NOTES[status] ? NODE_NOTES[status](n) : null;
    return el("article", {
      class: `node node-${status}`, "data-testid": unplaced ? "node-unplaced" : "node-card",
      dataset: unplaced ? { status, engines: count }
        : { id: n.id, hostname: n.hostname, state: n.state, availability: n.availability, status, engines: count },
      title: unplaced ? null : `node ${n.id}`,
    },
      el("header", {},
        el("span", { class: "node-name", "data-testid": "node-name" }, unplaced ? "no node" : n.hostname),
        unplaced ? null : el("span", { class: `pill pill-role-${n.role}`, "data-testid": "node-role" }, n.role),
        el("span", { class: "node-badges" },
          unplaced ? null : el("span", { class: `pill pill-node-${n.state === "ready" ? "ready" : status === "unknown" ? "unknown" : "down"}`,
                                         "data-testid": "node-state", title: "node state" }, n.state),
          unplaced ? null : el("span", { class: `pill pill-avail-${n.availability}`, "data-testid": "node-availability",
                                         title: "availability" }, n.availability))),
      el("div", { class: "mono muted node-addr", "data-testid": "node-addr" }, unplaced ? "–" : n.address || "no address"),
      el("div", { class: "node-count-line" },
        el("span", { class: "node-count", "data-testid": "node-engines" }, String(count)),
        el("span", { class: "muted" }, count === 1 ? " engine" : " engines"),
        health.length ? document.createTextNode("  ") : null, health.length ? healthLine : null),
      engines.length ? list : null,
      note ? el("p", { class: "node-note", "data-testid": "node-note" }, note) : null);
  }

  /** Engines per node and node health (multi-node runtimes). Hidden without nodes, and for one ready node. */
  function renderNodes(orch, engines) {
    if (!orch) return;
    const nodes = (orch.nodes || []).slice();
    const section = $("nodes");
    const lone = nodes.length === 1 && nodeStatus(nodes[0]) === "ready";
    section.hidden = nodes.length === 0 || lone;
    if (section.hidden) return;
    nodes.sort((a, b) => (a.role === b.role ? (a.hostname < b.hostname ? -1 : 1) : a.role === "manager" ? -1 : 1));
    const all = engines || [];
    const at = new Map();
    for (const e of all) {
      if (!at.has(e.host)) at.set(e.host, []);
      at.get(e.host).push(e);
    }
    const list = $("nodes-list");
    list.replaceChildren();
    const placed = new Set();
    for (const n of nodes) {
      const mine = (n.address && at.get(n.address)) || [];
      if (n.address) placed.add(n.address);
      list.appendChild(nodeCard(n, mine));
    }
    const loose = all.filter((e) => !placed.has(e.host));
    if (loose.length) list.appendChild(nodeCard(null, loose, { unplaced: true }));
    const by = new Map();
    for (const n of nodes) by.set(nodeStatus(n), (by.get(nodeStatus(n)) || 0) + 1);
    const words = { ready: "ready", down: "down", unknown: "unknown", drain: "drained", pause: "paused" };
    $("nodes-count").textContent = String(nodes.length);
    $("nodes-summary").textContent = ["ready", "down", "unknown", "drain", "pause"]
      .filter((k) => by.get(k)).map((k) => `${by.get(k)} ${words[k]}`).join(" · ");
  }

  function renderStreams(streams, engines, stats) {
    if (!streams) return;
    const names = new Map((engines || []).map((e) => [e.container_id, e.container_name]));
    const showEnded = $("show-ended").checked;
    const shown = streams
      .filter((s) => showEnded || s.status === "started")
      .sort((a, b) => (a.status === b.status ? (a.started_at < b.started_at ? 1 : -1) : a.status === "started" ? -1 : 1));
    const body = $("streams-body");
    body.replaceChildren();
    for (const s of shown) {
      const last = (stats.get(s.id) || []).slice(-1)[0] || {};
      const row = el("tr", {
        class: "selectable" + (s.id === state.selected ? " selected" : ""),
        "data-testid": "stream-row",
        dataset: { id: s.id, status: s.status },
        title: `${s.key_type} ${s.key}\nsession ${s.playback_session_id}`,
      },
        el("td", { class: "mono", "data-testid": "stream-id" }, s.id.length > 40 ? `${s.id.slice(0, 38)}…` : s.id),
        el("td", { "data-testid": "stream-engine", title: s.container_id }, names.get(s.container_id) || s.container_id.slice(0, 21)),
        el("td", { "data-testid": "stream-status", title: s.end_reason || "" },
          pill(s.status), s.end_reason ? el("span", { class: "muted small" }, ` ${s.end_reason}`) : null),
        el("td", { title: s.started_at }, ago(s.started_at)),
        el("td", { "data-testid": "stream-speed" }, last.speed_down ?? "–"),
        el("td", { "data-testid": "stream-peers" }, last.peers ?? "–"));
      row.addEventListener("click", () => {
        state.selected = s.id;
        refresh();
      });
      body.appendChild(row);
    }
    $("streams-count").textContent = String(streams.filter((s) => s.status === "started").length);
    $("streams-empty").hidden = shown.length > 0;
  }

  function renderChart(streamId, snapshots) {
    $("chart-title").textContent = streamId ? `stream ${streamId}` : "select a stream";
    window.AceChart.draw($("stream-chart"), snapshots || [], streamId ? "no stats yet" : "no stream selected");
  }

  function renderBreakers(health) {
    if (!health) return;
    const body = $("breakers-body");
    body.replaceChildren();
    for (const [name, b] of Object.entries(health.circuit_breakers || {})) {
      const reset = el("button", { type: "button", "data-testid": `reset-breaker-${name}` }, "Reset");
      reset.addEventListener("click", () => resetBreaker(name, reset));
      body.appendChild(el("tr", { "data-testid": "breaker-row", dataset: { name, state: b.state } },
        el("td", {}, name),
        el("td", { "data-testid": `breaker-state-${name}` }, pill(b.state)),
        el("td", {}, `${b.failure_count}/${b.failure_threshold}`),
        el("td", { title: b.last_failure_time || "" }, ago(b.last_failure_time)),
        el("td", {}, reset)));
    }
  }

  function renderDebug(d) {
    if (!d) return;
    state.debugEnabled = d.enabled;
    setPill("debug-enabled", d.enabled ? `on (${d.enabled_by || "?"})` : "off", d.enabled ? "on" : "off");
    $("debug-session").textContent = d.session_id || "–";
    $("debug-counts").textContent = `${d.entries_written} / ${d.entries_dropped}`;
    $("debug-files").textContent = String((d.files || []).length);
    const toggle = $("debug-toggle");
    toggle.textContent = d.enabled ? "Disable debug mode" : "Enable debug mode";
    toggle.dataset.enabled = String(d.enabled);
    $("bundle-download").disabled = !d.session_id;
  }

  function stressKey(ev) {
    return `${ev.timestamp}|${ev.event_type}|${ev.description}`;
  }

  function renderStress(events) {
    if (events) {
      const polled = new Set(events.map(stressKey));
      // keep what the stream delivered after the poll's answer was made
      const extra = state.stress.filter((ev) => ev.via === "sse" && !polled.has(stressKey(ev)) &&
        (!events.length || ev.timestamp > events[events.length - 1].timestamp));
      state.stress = events.concat(extra);
    }
    const shown = state.stress.slice(-50);
    const feed = $("stress-feed");
    feed.replaceChildren();
    for (const ev of shown.slice().reverse()) {
      feed.appendChild(el("li", { "data-testid": "stress-event",
                                  dataset: { type: ev.event_type, severity: ev.severity, via: ev.via || "poll" } },
        el("div", { class: "head" },
          pill(ev.severity),
          el("span", { class: "type" }, ev.event_type),
          el("span", { class: "time", title: ev.timestamp || "" }, shortTime(ev.timestamp))),
        el("div", { class: "desc" }, ev.description || "")));
    }
    $("stress-count").textContent = String(shown.length);
    $("stress-empty").hidden = shown.length > 0;
  }

  // ---------------------------------------------------------------- history
  function rangeKey() {
    return $("history-range").value || "1h";
  }

  function renderIncident(h) {
    const list = $("incident");
    list.replaceChildren();
    const items = [];
    const down = h.vpn_outages.filter((o) => !o.end);
    if (down.length) items.push(["bad", `VPN DOWN now (since ${shortTime(down[0].start).slice(11)} UTC): provisioning is blocked`]);
    const past = h.vpn_outages.filter((o) => o.end);
    if (past.length) {
      const secs = past.reduce((a, o) => a + (Date.parse(o.end) - Date.parse(o.start)) / 1000, 0);
      items.push(["bad", `VPN was down ${past.length}× (${Math.round(secs)} s in all)`]);
    }
    const slow = h.provisions.filter((p) => p.ok && p.slow);
    if (slow.length) {
      const worst = Math.max(...slow.map((p) => p.duration_ms)) / 1000;
      items.push(["bad", `${slow.length} slow start${slow.length > 1 ? "s" : ""} (worst ${worst.toFixed(1)} s, ` +
        `threshold ${(h.slow_threshold_ms / 1000).toFixed(1)} s)`]);
    }
    const failed = h.provisions.filter((p) => !p.ok);
    if (failed.length) items.push(["bad", `${failed.length} failed start${failed.length > 1 ? "s" : ""}`]);
    const crit = h.stress.filter((e) => e.severity === "critical").length;
    if (h.stress.length) items.push([crit ? "bad" : "warn", `${h.stress.length} stress event${h.stress.length > 1 ? "s" : ""}` +
      (crit ? ` (${crit} critical)` : "")]);
    if (!items.length) items.push(["ok", "no incident in this range"]);
    for (const [kind, text] of items) list.appendChild(el("li", { class: kind, "data-testid": "incident-item" }, text));
  }

  function renderHistory(h) {
    if (h) state.history = h;
    h = state.history;
    if (!h) return;
    const e = state.engines;
    const liveCounts = e ? { total: e.length, healthy: e.filter((x) => x.health_status === "healthy").length,
      bad: e.filter((x) => x.health_status === "unhealthy" || x.health_status === "unreachable").length,
      streams: h.samples.length ? h.samples[h.samples.length - 1].streams : 0 } : null;
    const win = window.AceHistory.draw($("prov-chart"), $("engines-chart"), $("chart-tip"), h, RANGE_S[rangeKey()], liveCounts);
    const mins = Math.max(1, Math.round((win.t1 - win.t0) / 60000));
    $("history-span").textContent = win.partial ? `since start · ${mins} min shown` : `last ${rangeKey()}`;
    renderIncident(h);
  }

  async function loadHistory() {
    renderHistory(await load("history", `/history?range=${rangeKey()}`));
  }

  function historySoon() {
    clearTimeout(state.historyTimer);
    state.historyTimer = setTimeout(loadHistory, 250);
  }

  // ---------------------------------------------------------------- live events (SSE over fetch)
  function setLive(on) {
    state.live = on;
    const node = $("live-state");
    node.textContent = on ? "live" : "polling";
    node.className = `pill ${on ? "pill-live" : "pill-off"}`;
    document.body.dataset.live = String(on);
  }

  function onEvent(ev) {
    document.body.dataset.lastEventId = String(ev.id);
    if (ev.type === "stress") {
      state.stress.push({ timestamp: ev.ts, event_type: ev.action, severity: ev.severity, description: ev.message,
                          via: "sse" });
      renderStress(null);
    }
    historySoon();
  }

  async function follow(abort) {
    const headers = { Accept: "text/event-stream" };
    const key = getKey();
    if (key) headers.Authorization = `Bearer ${key}`;
    const last = document.body.dataset.lastEventId;
    const resp = await fetch(`/events/stream${last ? `?after=${last}` : ""}`, { headers, cache: "no-store",
                                                                                 signal: abort.signal });
    if (!resp.ok || !resp.body) throw new Error(`HTTP ${resp.status}`);
    setLive(true);
    const reader = resp.body.getReader();
    const decoder = new TextDecoder();
    let buf = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buf += decoder.decode(value, { stream: true });
      let cut;
      while ((cut = buf.indexOf("\n\n")) >= 0) {
        const block = buf.slice(0, cut);
        buf = buf.slice(cut + 2);
        const data = block.split("\n").filter((l) => l.startsWith("data: ")).map((l) => l.slice(6)).join("\n");
        if (data) onEvent(JSON.parse(data));
      }
    }
  }

  function restartLive() {
    if (state.liveAbort) state.liveAbort.abort();
    clearTimeout(state.liveTimer);
    const abort = new AbortController();
    state.liveAbort = abort;
    follow(abort).catch(() => null).finally(() => {
      if (state.liveAbort !== abort) return;
      setLive(false);
      state.liveTimer = setTimeout(restartLive, 3000); // reconnect; the poll covers the gap
    });
  }

  // ---------------------------------------------------------------- refresh
  async function refresh() {
    if (state.refreshing) {
      state.again = true; // an action or a click asked for fresh data: run once more when this pass ends
      return;
    }
    state.refreshing = true;
    state.again = false;
    try {
      const [orch, engines, streams, vpn, health, debug, stress] = await Promise.all([
        load("orchestrator", "/orchestrator/status"),
        load("engines", "/engines"),
        load("streams", "/streams"),
        load("vpn", "/vpn/status"),
        load("health", "/health/status"),
        load("debug", "/debug/status"),
        load("stress", "/debug/stress?limit=50"),
      ]);
      if (engines) state.engines = engines;
      renderHistory(await load("history", `/history?range=${rangeKey()}`));
      renderOrchestrator(orch);
      renderVpn(vpn);
      renderEngines(engines);
      renderNodes(orch, engines || state.engines);
      renderBreakers(health);
      renderDebug(debug);
      renderStress(stress);

      const stats = new Map();
      if (streams) {
        const started = streams.filter((s) => s.status === "started");
        if (!streams.some((s) => s.id === state.selected)) {
          state.selected = started.length ? started[started.length - 1].id : null;
        }
        const wanted = started.slice(-MAX_STAT_STREAMS).map((s) => s.id);
        if (state.selected && !wanted.includes(state.selected)) wanted.push(state.selected);
        const results = await Promise.all(
          wanted.map((id) => load(`stats:${id}`, `/streams/${encodeURIComponent(id)}/stats`)));
        wanted.forEach((id, i) => stats.set(id, results[i] || []));
        for (const source of [...state.errors.keys()]) {
          if (source.startsWith("stats:") && !wanted.includes(source.slice(6))) setError(source, null);
        }
      }
      renderStreams(streams, engines, stats);
      renderChart(state.selected, stats.get(state.selected));
      $("last-refresh").textContent = `updated ${new Date().toLocaleTimeString()}`;
      document.body.dataset.refreshed = String(Number(document.body.dataset.refreshed || 0) + 1);
    } finally {
      state.refreshing = false;
    }
    if (state.again) await refresh();
  }

  function schedule() {
    clearTimeout(state.timer);
    if (!$("auto-refresh").checked) return;
    state.timer = setTimeout(async () => {
      await refresh();
      schedule();
    }, REFRESH_MS);
  }

  // ---------------------------------------------------------------- actions
  async function action(source, button, work) {
    if (button) button.disabled = true;
    try {
      await work();
      setError(source, null);
    } catch (e) {
      setError(source, e.message);
    } finally {
      if (button) button.disabled = false;
    }
    await refresh();
  }

  function deleteEngine(engine, button) {
    const ok = window.confirm(
      `Delete engine ${engine.container_name} (${engine.container_id.slice(0, 12)})?\n` +
      `Its ${engine.streams.length} started stream(s) end as engine_deleted.`);
    if (!ok) return;
    action("action:delete", button, () =>
      api("DELETE", `/containers/${encodeURIComponent(engine.container_id)}`, { auth: true }));
  }

  function resetBreaker(name, button) {
    const query = name ? `?operation_type=${encodeURIComponent(name)}` : "";
    action("action:breaker", button, () => api("POST", `/health/circuit-breaker/reset${query}`, { auth: true }));
  }

  function toggleDebug() {
    const path = state.debugEnabled ? "/debug/disable" : "/debug/enable";
    action("action:debug", $("debug-toggle"), () => api("POST", path, { auth: true }));
  }

  async function downloadBundle() {
    const button = $("bundle-download");
    button.disabled = true;
    try {
      const resp = await api("GET", "/debug/bundle", { auth: true, raw: true });
      const blob = await resp.blob();
      const disposition = resp.headers.get("Content-Disposition") || "";
      const match = /filename="?([^";]+)"?/.exec(disposition);
      const name = match ? match[1] : "aceorch-debug.tar.gz";
      const url = URL.createObjectURL(blob);
      const a = el("a", { href: url, download: name, hidden: "" });
      document.body.appendChild(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(url), 10000);
      setError("action:bundle", null);
    } catch (e) {
      setError("action:bundle", e.message);
    } finally {
      button.disabled = false;
    }
  }

  // ---------------------------------------------------------------- start
  function start() {
    takeKeyFromUrl();
    showKeyState();
    $("key-form").addEventListener("submit", (ev) => {
      ev.preventDefault();
      saveKey($("api-key").value);
    });
    $("error-dismiss").addEventListener("click", () => {
      state.errors.clear();
      renderErrors();
    });
    $("auto-refresh").addEventListener("change", schedule);
    $("history-range").addEventListener("change", loadHistory);
    $("show-ended").addEventListener("change", refresh);
    $("reset-all-breakers").addEventListener("click", () => resetBreaker("", $("reset-all-breakers")));
    $("debug-toggle").addEventListener("click", toggleDebug);
    $("bundle-download").addEventListener("click", downloadBundle);
    window.addEventListener("resize", () => refresh());
    refresh().then(schedule);
    restartLive();
  }

  window.AcePanel = { refresh, getKey };
  document.addEventListener("DOMContentLoaded", start);
})();
