"""P7: 500 engines under management (process runtime).

An in-process aceorch (``create_app`` with its lifespan, ``RUNTIME=process``) provisions 500 engines through
``POST /provision/acestream``; then one full health sweep (``Service._health_once``: every engine's
``get_status``, state updates, records) is timed several times, next to a bare sweep of the same 500
``get_status`` calls with a plain ``httpx.AsyncClient`` and the same concurrency (64). ``GET /engines`` is timed
next to ``GET /healthz``. Goal: sweep ≤ 2 s.

Engines: by default the minimal stdlib engine of :data:`bench.common.TINY_ENGINE` (about 9 MB each);
``--engine sim`` uses ``python -m aceorch.sim engine`` (about 22 MB and 130 ms of CPU each to start).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx

from bench import common

NAME = "p7_scale"
GOAL_S = 2.0


async def measure(n: int, sweeps: int, requests: int, engine: str) -> dict[str, Any]:
    from aceorch.runtime.process import ProcessRuntime

    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="aceorch-bench-p7-") as tmp_text:
        tmp = Path(tmp_text)
        command = common.tiny_engine_command(tmp) if engine == "tiny" else common.sim_engine_command()
        settings = common.bench_settings(
            tmp, runtime="process", engine_command=command, max_replicas=1000, max_active_replicas=1000,
            max_concurrent_provisions=20, health_check_interval_s=3600, autoscale_interval_s=3600,
            startup_timeout_s=120, port_range_host="21000-21999",
        )
        runtime = ProcessRuntime(command)
        async with common.running_app(settings, runtime=runtime) as (app, client):
            svc = app.state.service
            begin = time.perf_counter()

            async def provision() -> int:
                r = await client.post("/provision/acestream", json={}, headers=common.AUTH)
                if r.status_code != 200:
                    raise RuntimeError(f"provision failed: {r.status_code} {r.text}")
                return int(r.json()["host_http_port"])

            ports = await asyncio.gather(*(provision() for _ in range(n)))
            out["provision_all_s"] = round(time.perf_counter() - begin, 2)
            out["engines"] = svc.fleet.engine_count()
            out["children_rss_mb"] = common.children_rss_mb()
            print(f"  {n} engines up in {out['provision_all_s']} s; their RSS {out['children_rss_mb']} MB")

            probe = common.LagProbe().start()
            sweep_s: list[float] = []
            bare_s: list[float] = []
            async with httpx.AsyncClient(timeout=3.0) as bare:
                sem = asyncio.Semaphore(64)

                async def ask(port: int) -> bool:
                    async with sem:
                        return await common.engine_answers(bare, port)

                for i in range(sweeps):
                    t = time.perf_counter()
                    await svc.probe_health()
                    sweep_s.append(time.perf_counter() - t)
                    t = time.perf_counter()
                    answered = await asyncio.gather(*(ask(p) for p in ports))
                    bare_s.append(time.perf_counter() - t)
                    print(f"  sweep {i + 1}: aceorch {sweep_s[-1] * 1000:.0f} ms, bare {bare_s[-1] * 1000:.0f} ms")
            await probe.stop()
            out["health_counts"] = svc.fleet.health_counts()
            out["bare_answered"] = sum(answered)
            out["sweep_s"] = sweep_s
            out["bare_s"] = bare_s
            out["lag_during_sweeps"] = probe.figures()

            engines_ms: list[float] = []
            healthz_ms: list[float] = []
            size = 0
            for _ in range(requests):
                t = time.perf_counter()
                r = await client.get("/engines")
                engines_ms.append((time.perf_counter() - t) * 1000)
                size = len(r.content)
                t = time.perf_counter()
                await client.get("/healthz")
                healthz_ms.append((time.perf_counter() - t) * 1000)
            out["engines_ms"] = engines_ms
            out["healthz_ms"] = healthz_ms
            out["engines_bytes"] = size
            out["engines_listed"] = len(r.json())
            t = time.perf_counter()
        out["shutdown_s"] = round(time.perf_counter() - t, 2)
    return out


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", default=common.quick_default())
    parser.add_argument("--engine", choices=("tiny", "sim"), default="tiny")
    parser.add_argument("-n", type=int, default=None, help="engines (default 500, quick 10)")
    args = parser.parse_args(argv)
    common.quiet_logging()
    n = args.n or (10 if args.quick else 500)
    sweeps, requests = (1, 5) if args.quick else (5, 50)
    data = asyncio.run(measure(n, sweeps, requests, args.engine))
    sweep = common.stats(data["sweep_s"])
    bare = common.stats(data["bare_s"])
    eng = common.stats(data["engines_ms"], 2)
    hz = common.stats(data["healthz_ms"], 2)
    ratio = sweep["p50"] / bare["p50"]
    print(f"{'':30}{'aceorch':>14}{'baseline':>14}")
    print(f"{'health sweep p50 (ms)':30}{sweep['p50'] * 1000:>14.0f}{bare['p50'] * 1000:>14.0f}"
          f"   (bare get_status x{n})")
    print(f"{'health sweep max (ms)':30}{sweep['max'] * 1000:>14.0f}{bare['max'] * 1000:>14.0f}")
    print(f"{'GET /engines p50 (ms)':30}{eng['p50']:>14.2f}{hz['p50']:>14.2f}   (GET /healthz)")
    print(f"{'GET /engines p90 (ms)':30}{eng['p90']:>14.2f}{hz['p90']:>14.2f}")
    print(f"healthy {data['health_counts']}; /engines lists {data['engines_listed']} ({data['engines_bytes']} bytes); "
          f"loop lag during sweeps: max {data['lag_during_sweeps']['max_ms']} ms")
    met = sweep["max"] <= GOAL_S and data["health_counts"].get("healthy") == n
    return common.finish(
        NAME, f"{n} engines under management (process runtime, {args.engine} engines)", quick=args.quick,
        goal=f"full health sweep ≤ {GOAL_S} s", ratio=ratio, met=met,
        summary=f"{n} engines: sweep p50 {sweep['p50'] * 1000:.0f} ms (max {sweep['max'] * 1000:.0f}) vs bare "
                f"{bare['p50'] * 1000:.0f} ms = {ratio:.2f}x; /engines p50 {eng['p50']:.1f} ms",
        n=n, engine=args.engine, sweep=sweep, bare_sweep=bare, engines_ms=eng, healthz_ms=hz,
        **{k: v for k, v in data.items() if k not in ("sweep_s", "bare_s", "engines_ms", "healthz_ms")},
    )


if __name__ == "__main__":
    main(sys.argv[1:])
