"""P9: HLS fan-out through the proxy: 50 readers of one channel, CPU per GB and engine fetches per segment served.

A real ``aceorch serve`` (process runtime; engines are simulator processes that loop an ffmpeg-made 720p H.264 file
at its own rate, ``SIM_MEDIA_FILE`` and ``SIM_STREAM_KBPS``) serves ``/ace/manifest.m3u8``. The readers run in a
separate Python process (so their CPU is not the proxy's): each reloads the playlist every second and fetches
every segment it has not fetched yet, as a player does. Figures: the proxy process's CPU seconds per GB of
segments delivered; the engine's HLS requests (segment fetches) per segment served, and its bytes against the
bytes the proxy read (one engine read for every viewer).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx

from bench import common
from bench.p8_proxy import proc_cpu_s

NAME = "p9_hls"
CONTENT = "c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00"

READERS = r'''
import asyncio, sys, time, httpx
url, n, seconds = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
async def reader(c, stats):
    seen = set()
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        text = (await c.get(url)).text
        for line in text.splitlines():
            if line.startswith("hls/") and line not in seen:
                seen.add(line)
                r = await c.get(url.rsplit("/", 1)[0] + "/" + line)
                stats["bytes"] += len(r.content)
                stats["segments"] += 1
                stats["errors"] += r.status_code != 200
        await asyncio.sleep(1.0)
async def main():
    stats = {"bytes": 0, "segments": 0, "errors": 0}
    async with httpx.AsyncClient(timeout=30, limits=httpx.Limits(max_connections=None)) as c:
        await asyncio.gather(*(reader(c, stats) for _ in range(n)))
    print(__import__("json").dumps(stats))
asyncio.run(main())
'''


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", default=common.quick_default())
    args = parser.parse_args(argv)
    common.quiet_logging()
    readers, seconds = (5, 10.0) if args.quick else (50, 30.0)
    orchestrator = common.orchestrator_class().Orchestrator
    with tempfile.TemporaryDirectory(prefix="aceorch-bench-p9-") as tmp:
        media = Path(tmp) / "media.ts"
        subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc=size=1280x720:rate=25", "-t",
                        "10", "-c:v", "libx264", "-preset", "ultrafast", "-b:v", "4M", "-g", "25", "-f", "mpegts",
                        str(media)], check=True, timeout=300)
        kbps = media.stat().st_size / 10 / 1000
        env = {"RUNTIME": "process", "MIN_REPLICAS": "0", "MIN_FREE_REPLICAS": "0", "SIM_MEDIA_FILE": str(media),
               "SIM_STREAM_KBPS": f"{kbps:.1f}", "SIM_TIME_TO_DL_S": "0.5", "PORT_RANGE_HOST": "23200-23300",
               "PROXY_LINGER_S": "30", "LOG_LEVEL": "WARNING"}
        o = orchestrator(Path(tmp), env).start()
        try:
            url = f"http://127.0.0.1:{o.port}/ace/manifest.m3u8?id={CONTENT}"
            assert httpx.get(url, timeout=60).status_code == 200
            engine = o.engines()[0]
            sim = f"http://127.0.0.1:{engine['port']}/__sim/state"
            pid = o.proc.pid
            cpu0 = proc_cpu_s(pid)
            hls0 = o.client.get("/proxy/hls").json()
            began = time.monotonic()
            run = subprocess.run([sys.executable, "-c", READERS, url, str(readers), str(seconds)],
                                 capture_output=True, text=True, timeout=seconds + 120, check=True)
            elapsed = time.monotonic() - began
            cpu = proc_cpu_s(pid) - cpu0
            got = json.loads(run.stdout)
            hls1 = o.client.get("/proxy/hls").json()
            state = httpx.get(sim, timeout=5).json()
            status = o.client.get("/ace/status").json()
        finally:
            o.close()
    served = hls1["segments_served"] - hls0["segments_served"]
    engine_fetches = state["counters"]["requests"]["hls"]
    gb = got["bytes"] / 1e9
    figures = {"readers": readers, "seconds": round(elapsed, 1), "source_kb_s": round(kbps),
               "segments_served": served, "segments_cut": hls1["segments_cut"], "reader_errors": got["errors"],
               "delivered_bytes": got["bytes"], "proxy_cpu_s": round(cpu, 2), "cores": round(cpu / elapsed, 3),
               "cpu_s_per_gb": round(cpu / gb, 2) if gb else None,
               "engine_hls_fetches": engine_fetches, "engine_sessions": state["counters"]["sessions_opened"],
               "engine_fetches_per_segment_served": round(engine_fetches / served, 4) if served else None,
               "engine_bytes": state["counters"]["bytes_streamed"], "proxy_bytes_in": status["bytes_in"]}
    print(json.dumps(figures, indent=1))
    met = (engine_fetches == 0 and state["counters"]["sessions_opened"] == 1 and got["errors"] == 0
           and served >= readers)
    return common.finish(
        NAME, f"HLS fan-out: {readers} readers of one channel (process runtime)", quick=args.quick,
        goal="one engine session, no engine segment fetch per segment served (segments cut once by the proxy), "
             "no reader error",
        ratio=1.0 if met else 1e-9, met=met,
        summary=f"{readers} readers: {served} segments served from {hls1['segments_cut']} cut, engine HLS fetches "
                f"{engine_fetches}; proxy {figures['cores']} cores, {figures['cpu_s_per_gb']} CPU s/GB",
        hls=figures,
    )


if __name__ == "__main__":
    main(sys.argv[1:])
