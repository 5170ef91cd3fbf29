"""P8: the stream proxy: fan-out cost, time to first byte, and data-path gaps under control-plane load.

A real ``aceorch serve`` (process runtime: engines are ``python -m aceorch.sim engine`` processes, which inherit
``SIM_STREAM_KBPS=1000``, 8 Mbit/s, and ``SIM_TIME_TO_DL_S=0.5``) serves ``/ace/getstream``. Clients are
``curl`` processes (fan-out) and a socket reader in a thread (gaps), so the client side costs the proxy nothing.

- Fan-out at 1, 50 and 200 clients: the proxy process's CPU seconds per GB delivered, its peak RSS, each
  client's bytes divided by the engine's bytes over the same window (min and median), from ``/__sim/state``;
  and the p50 and p99 delay from the proxy's upstream read to its completed write to a client, from the proxy's
  own ``orch_proxy_delivery_delay_seconds`` histogram on ``/metrics``, the difference over the window (without
  that histogram, ``/ace/status``'s p50/p99 since the start); over the whole window (the clients' own start
  included: ``n`` curl processes starting on the same cores) and from :data:`SETTLE_S` on (steady).
- Time to first byte: cold (no free engine: provisioning included) over raw (``POST /provision/acestream``, then
  the engine's own getstream and first byte); warm (a free engine, new channel) against the engine's own
  getstream plus first byte; join (channel already live).
- Control plane under load: the largest gap between two reads of a keeping-up client while 20 engines start
  (``POST /scale``) and health sweeps run every second, next to the same client without that load.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx

from aceorch.proxy.latency import quantile
from bench import common

NAME = "p8_proxy"
KBPS = 1000
CONTENT = "c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00"


def channel(n: int) -> str:
    """Content id of bench channel ``n``."""
    return f"{n + 1:040x}"


def proc_cpu_s(pid: int) -> float:
    """User plus system CPU seconds of one process."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def proc_rss_mb(pid: int) -> float:
    """Resident memory of one process, in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def sim_bytes(port: int) -> int:
    """Bytes the engine simulator has streamed."""
    state = httpx.get(f"http://127.0.0.1:{port}/__sim/state", timeout=5).json()
    return int(state["counters"]["bytes_streamed"])


DELAY_BUCKET = 'orch_proxy_delivery_delay_seconds_bucket{le="'
#: Seconds into a fan-out window after which every client has joined: the delay from then on is the steady one.
SETTLE_S = 3.0


def delay_buckets(o: Any) -> dict[str, float] | None:
    """The proxy's delivery-delay histogram from ``/metrics``: cumulative count by ``le``; None without one."""
    r = o.client.get("/metrics", headers=o.auth)
    if r.status_code != 200:
        return None
    out: dict[str, float] = {}
    for line in r.text.splitlines():
        if line.startswith(DELAY_BUCKET):
            le, _, rest = line[len(DELAY_BUCKET):].partition('"')
            out[le] = float(rest.split()[-1])
    return out or None


def delay_figures(o: Any, before: dict[str, float] | None, after: dict[str, float] | None) -> dict[str, Any]:
    """p50 and p99 delivery delay (ms) over a window: from two histogram snapshots, else ``/ace/status``."""
    if before is None or after is None:
        status = o.client.get("/ace/status").json()
        return {"delay_p50_ms": status.get("delivery_delay_p50_ms"),
                "delay_p99_ms": status.get("delivery_delay_p99_ms"), "delay_writes": None,
                "delay_source": "ace_status_since_start"}
    bounds = sorted((le for le in after if le != "+Inf"), key=float)
    cumulative = [after[le] - before.get(le, 0.0) for le in [*bounds, "+Inf"]]
    counts = [int(round(c - p)) for c, p in zip(cumulative, [0.0, *cumulative[:-1]], strict=True)]
    floats = [float(b) for b in bounds]
    p50, p99 = quantile(floats, counts, 0.5), quantile(floats, counts, 0.99)
    return {"delay_p50_ms": None if p50 is None else round(p50 * 1000, 2),
            "delay_p99_ms": None if p99 is None else round(p99 * 1000, 2),
            "delay_writes": sum(counts), "delay_source": "metrics_window"}


def first_byte(url: str, timeout: float = 60) -> tuple[float, socket.socket]:
    """Seconds from connect to the first body byte of a GET, and the open socket (close it when done)."""
    host, _, rest = url.removeprefix("http://").partition("/")
    name, _, port = host.partition(":")
    begin = time.perf_counter()
    sock = socket.create_connection((name, int(port)), timeout=timeout)
    sock.sendall(f"GET /{rest} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
    buf = b""
    while b"\r\n\r\n" not in buf:
        got = sock.recv(65536)
        if not got:
            raise RuntimeError(f"closed before the headers: {buf[:200]!r}")
        buf += got
    head, _, body = buf.partition(b"\r\n\r\n")
    if b" 200 " not in head.split(b"\r\n", 1)[0]:
        raise RuntimeError(head.decode(errors="replace"))
    if not body:
        sock.recv(1)
    return time.perf_counter() - begin, sock


class GapReader(threading.Thread):
    """A keeping-up client in a thread: the largest gap between two reads while ``measuring`` is set."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        _, self.sock = first_byte(url)
        self.sock.settimeout(5)
        self.measuring = threading.Event()
        self.done = threading.Event()
        self.gaps: list[float] = []
        self.bytes = 0

    def run(self) -> None:
        last = time.perf_counter()
        while not self.done.is_set():
            try:
                got = self.sock.recv(65536)
            except OSError:
                return
            if not got:
                return
            now = time.perf_counter()
            if self.measuring.is_set():
                self.gaps.append(now - last)
                self.bytes += len(got)
            last = now

    def take(self) -> list[float]:
        """The gaps measured so far (and start over)."""
        out, self.gaps = self.gaps, []
        return out


def fan_out(o: Any, n: int, seconds: float) -> dict[str, Any]:
    """``n`` curl clients on one channel for ``seconds``."""
    url = f"http://127.0.0.1:{o.port}/ace/getstream?id={CONTENT}"
    _, warm_sock = first_byte(url)  # the session is live (and lingers) before the window opens
    warm_sock.close()
    engine = o.engines()[0]
    pid = o.proc.pid
    time.sleep(1.0)
    delays0 = delay_buckets(o)
    cpu0, sent0 = proc_cpu_s(pid), sim_bytes(engine["port"])
    began = time.monotonic()
    curl = ["curl", "-s", "-o", "/dev/null", "-m", str(seconds), "-w", "%{size_download} %{time_total}", url]
    procs = [subprocess.Popen(curl, stdout=subprocess.PIPE, text=True) for _ in range(n)]
    rss = proc_rss_mb(pid)
    settled: dict[str, float] | None = None
    while any(p.poll() is None for p in procs):
        rss = max(rss, proc_rss_mb(pid))
        if settled is None and time.monotonic() - began >= SETTLE_S:
            settled = delay_buckets(o)
        time.sleep(0.25)
    elapsed = time.monotonic() - began
    cpu1, sent1 = proc_cpu_s(pid), sim_bytes(engine["port"])
    delays1 = delay_buckets(o)
    delays = delay_figures(o, delays0, delays1)
    steady = delay_figures(o, settled, delays1) if settled is not None else {}
    delays.update({f"steady_{k}": v for k, v in steady.items() if k != "delay_source"})
    outs = [(p.communicate()[0] or "0 1").split() for p in procs]
    sizes = [int(float(size)) for size, _ in outs]
    sent = sent1 - sent0
    source_rate = sent / elapsed
    # Each client's delivered rate over its own time, against the engine's rate over the whole window.
    ratios = sorted((int(float(size)) / float(t)) / source_rate for size, t in outs) if sent else [0.0]
    delivered = sum(sizes)
    cpu = cpu1 - cpu0
    return {"clients": n, "seconds": round(elapsed, 2), "engine_bytes": sent,
            "source_kb_s": round(source_rate / 1000), "delivered_bytes": delivered,
            "ratio_min": round(min(ratios), 4), "ratio_median": round(ratios[len(ratios) // 2], 4),
            "cpu_s": round(cpu, 2), "cores": round(cpu / elapsed, 3),
            "cpu_s_per_gb": round(cpu / (delivered / 1e9), 2) if delivered else None,
            "peak_rss_mb": round(rss, 1), **delays}


def engine_start_first_byte(port: int, content: str) -> float:
    """The engine's own getstream (JSON) plus the first byte of its playback URL, in seconds."""
    begin = time.perf_counter()
    r = httpx.get(f"http://127.0.0.1:{port}/ace/getstream",
                  params={"format": "json", "id": content, "pid": os.urandom(8).hex()}, timeout=30).json()
    playback = r["response"]["playback_url"]
    with httpx.stream("GET", playback, timeout=30, follow_redirects=True) as resp:
        for _ in resp.iter_raw():
            break
    took = time.perf_counter() - begin
    httpx.get(r["response"]["command_url"], params={"method": "stop"}, timeout=5)
    return took


def ttfb(o: Any, rounds: int) -> dict[str, Any]:
    """Cold, warm and join times to first byte, each next to its baseline (medians over ``rounds``)."""
    cold, raw, warm, engine_own, join = [], [], [], [], []
    open_socks: list[socket.socket] = []
    for i in range(rounds):
        # raw: an engine start through the API, then the engine's own getstream and first byte
        begin = time.perf_counter()
        r = o.provision({})
        r.raise_for_status()
        raw.append(time.perf_counter() - begin + engine_start_first_byte(r.json()["host_http_port"],
                                                                          channel(100 + i)))
        # warm: that engine is free; a new channel through the proxy
        engine_own.append(engine_start_first_byte(r.json()["host_http_port"], channel(200 + i)))
        t, sock = first_byte(f"http://127.0.0.1:{o.port}/ace/getstream?id={channel(300 + i)}")
        warm.append(t)
        open_socks.append(sock)
        # join: the channel is live
        t, sock = first_byte(f"http://127.0.0.1:{o.port}/ace/getstream?id={channel(300 + i)}")
        join.append(t)
        open_socks.append(sock)
        # cold: every engine is busy (one stream each): the proxy provisions
        t, sock = first_byte(f"http://127.0.0.1:{o.port}/ace/getstream?id={channel(400 + i)}")
        cold.append(t)
        open_socks.append(sock)
    for sock in open_socks:
        sock.close()
    med = lambda xs: sorted(xs)[len(xs) // 2]  # noqa: E731
    return {"cold_s": round(med(cold), 4), "raw_s": round(med(raw), 4),
            "cold_over_raw": round(med(cold) / med(raw), 3),
            "warm_ms": round(med(warm) * 1000, 1), "engine_getstream_ms": round(med(engine_own) * 1000, 1),
            "warm_minus_engine_ms": round((med(warm) - med(engine_own)) * 1000, 1),
            "join_ms": round(med(join) * 1000, 2), "rounds": rounds}


def control_plane(o: Any, seconds: float, engines: int) -> dict[str, Any]:
    """The largest read gap of a keeping-up client, quiet and while ``engines`` engines start."""
    reader = GapReader(f"http://127.0.0.1:{o.port}/ace/getstream?id={channel(999)}")
    reader.start()
    time.sleep(1.0)
    reader.measuring.set()
    time.sleep(seconds)
    quiet = reader.take()
    have = len(o.engines())
    r = o.client.post(f"/scale/{have + engines}", headers=o.auth)
    r.raise_for_status()
    deadline = time.monotonic() + max(seconds, 60)
    while len(o.engines()) < have + engines and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(seconds / 2)  # health sweeps of the larger pool
    loaded = reader.take()
    reader.done.set()
    reader.sock.close()
    return {"quiet_max_gap_ms": round(max(quiet) * 1000, 1), "loaded_max_gap_ms": round(max(loaded) * 1000, 1),
            "loaded_p99_gap_ms": round(common.pct(loaded, 99) * 1000, 1), "engines_started": engines,
            "engines_after": len(o.engines())}


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", default=common.quick_default())
    args = parser.parse_args(argv)
    common.quiet_logging()
    orchestrator = common.orchestrator_class().Orchestrator
    sizes, seconds, rounds, start_n = ((1, 5), 3.0, 1, 3) if args.quick else ((1, 50, 200), 12.0, 3, 20)
    env = {"RUNTIME": "process", "MIN_REPLICAS": "0", "MIN_FREE_REPLICAS": "0", "MAX_REPLICAS": "40",
           "MAX_ACTIVE_REPLICAS": "40", "SIM_STREAM_KBPS": str(KBPS), "SIM_TIME_TO_DL_S": "0.5",
           "PORT_RANGE_HOST": "23000-23100", "HEALTH_CHECK_INTERVAL_S": "1", "PROXY_LINGER_S": "30",
           "LOG_LEVEL": "WARNING"}
    with tempfile.TemporaryDirectory(prefix="aceorch-bench-p8-") as tmp:
        o = orchestrator(Path(tmp), env).start()
        try:
            fan = [fan_out(o, n, seconds) for n in sizes]
            times = ttfb(o, rounds)
            cp = control_plane(o, seconds / 2, start_n)
        finally:
            o.close()
    for f in fan:
        print(f"fan-out {f['clients']:>4} clients: per-client/source min {f['ratio_min']:.4f} median "
              f"{f['ratio_median']:.4f}; proxy {f['cores']:.3f} cores, {f['cpu_s_per_gb']} CPU s/GB, "
              f"peak RSS {f['peak_rss_mb']} MB; upstream read to client write p50 {f['delay_p50_ms']} ms, "
              f"p99 {f['delay_p99_ms']} ms ({f['delay_writes']} writes, {f['delay_source']}); from "
              f"{SETTLE_S:g} s on p50 {f.get('steady_delay_p50_ms')} ms, p99 {f.get('steady_delay_p99_ms')} ms")
    print(f"TTFB cold {times['cold_s']} s / raw {times['raw_s']} s = {times['cold_over_raw']}; warm "
          f"{times['warm_ms']} ms vs engine {times['engine_getstream_ms']} ms; join {times['join_ms']} ms")
    print(f"read gaps: quiet max {cp['quiet_max_gap_ms']} ms, with {start_n} engines starting max "
          f"{cp['loaded_max_gap_ms']} ms (p99 {cp['loaded_p99_gap_ms']} ms)")
    top = fan[-1]
    met = (top["ratio_min"] >= 0.99 and top["cores"] <= 0.5 and times["cold_over_raw"] <= 1.1
           and times["warm_minus_engine_ms"] <= 50 and times["join_ms"] <= 50 and cp["loaded_max_gap_ms"] <= 250)
    return common.finish(
        NAME, f"stream proxy at {KBPS} kB/s: fan-out, time to first byte, gaps under load (process runtime)",
        quick=args.quick,
        goal="200 clients ≥ 0.99 of the source each at ≤ 0.5 core; cold/raw ≤ 1.1; warm ≤ engine + 50 ms; "
             "join ≤ 50 ms; largest gap under load ≤ 250 ms",
        ratio=top["ratio_min"] or 1e-9, met=met,
        summary=f"{top['clients']} clients at {top['ratio_min']:.3f}x source, {top['cores']:.2f} cores, "
                f"delay p99 {top['delay_p99_ms']} ms; cold/raw "
                f"{times['cold_over_raw']}; warm +{times['warm_minus_engine_ms']} ms; join {times['join_ms']} ms; "
                f"gap under load {cp['loaded_max_gap_ms']} ms",
        fan_out=fan, ttfb=times, control_plane=cp,
    )


if __name__ == "__main__":
    main(sys.argv[1:])
