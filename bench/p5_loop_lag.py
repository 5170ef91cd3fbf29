"""P5: the largest event-loop lag while 50 engines are provisioned and health-checked.

An in-process aceorch (``create_app`` with its lifespan, ``RUNTIME=process``, engines are
``python -m aceorch.sim engine``, HEALTH_CHECK_INTERVAL_S=1) provisions 50 engines through
``POST /provision/acestream`` (MAX_CONCURRENT_PROVISIONS=10), then keeps them for a few health sweeps. A probe
task on the same loop sleeps 5 ms over and over and records how late it wakes up (a blocking call anywhere
on the loop shows up there); the service's own ``orch_event_loop_lag_max_seconds`` gauge is read from
``/metrics`` too. It runs twice, debug mode off and on, with the same load. Goal: largest lag ≤ 20 ms.

The probe also sees the benchmark's own client work (it shares the loop), so the figure is an upper bound.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench import common

NAME = "p5_loop_lag"
GOAL_MS = 20.0


async def one_run(n: int, hold_s: float, debug: bool) -> dict[str, Any]:
    from aceorch.runtime.process import ProcessRuntime

    with tempfile.TemporaryDirectory(prefix="aceorch-bench-p5-") as tmp_text:
        tmp = Path(tmp_text)
        command = common.sim_engine_command()
        settings = common.bench_settings(
            tmp, runtime="process", engine_command=command, max_replicas=100, max_active_replicas=100,
            max_concurrent_provisions=10, health_check_interval_s=1, startup_timeout_s=60,
            port_range_host="22000-22999", debug_mode=debug,
        )
        async with common.running_app(settings, runtime=ProcessRuntime(command)) as (app, client):
            svc = app.state.service
            provisioning = common.LagProbe().start()
            begin = time.perf_counter()

            async def provision() -> None:
                r = await client.post("/provision/acestream", json={}, headers=common.AUTH)
                if r.status_code != 200:
                    raise RuntimeError(f"provision failed: {r.status_code} {r.text}")

            await asyncio.gather(*(provision() for _ in range(n)))
            provision_s = time.perf_counter() - begin
            await provisioning.stop()
            health = common.LagProbe().start()
            await asyncio.sleep(hold_s)  # the workload: health sweeps every second, stats, the lag loop
            await health.stop()
            metrics = (await client.get("/metrics")).text
            counts = svc.fleet.health_counts()
            records = app.state.debuglog.entries_written if debug else 0
    gauge = common.gauge(metrics, "orch_event_loop_lag_max_seconds")
    prov, hold = provisioning.figures(), health.figures()
    return {
        "debug_mode": debug,
        "provision_all_s": round(provision_s, 2),
        "lag_provisioning": prov,
        "lag_health": hold,
        "max_ms": max(prov["max_ms"], hold["max_ms"]),
        "gauge_max_ms": round(gauge * 1000, 2) if gauge is not None else None,
        "health_counts": counts,
        "debug_records": records,
    }


async def measure(n: int, hold_s: float) -> list[dict[str, Any]]:
    runs = []
    for debug in (False, True):
        run = await one_run(n, hold_s, debug)
        print(f"  debug {'on ' if debug else 'off'}: {n} engines in {run['provision_all_s']} s; max lag "
              f"{run['lag_provisioning']['max_ms']} ms provisioning, {run['lag_health']['max_ms']} ms health; "
              f"gauge {run['gauge_max_ms']} ms; {run['health_counts']}")
        runs.append(run)
    return runs


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    args = common.parse_args(__doc__ or NAME, argv)
    common.quiet_logging()
    n, hold = (3, 1.5) if args.quick else (50, 6.0)
    runs = asyncio.run(measure(n, hold))
    worst = max(r["max_ms"] for r in runs)
    off, on = runs
    print(f"{'':34}{'debug off':>12}{'debug on':>12}")
    for label, key in (("max lag, provisioning (ms)", "lag_provisioning"), ("max lag, health only (ms)", "lag_health")):
        print(f"{label:34}{off[key]['max_ms']:>12}{on[key]['max_ms']:>12}")
    p99 = [r["lag_provisioning"]["p99_ms"] for r in runs]
    print(f"{'p99 lag, provisioning (ms)':34}{p99[0]:>12}{p99[1]:>12}")
    print(f"{'service gauge (ms)':34}{off['gauge_max_ms']!s:>12}{on['gauge_max_ms']!s:>12}")
    healthy = all(r["health_counts"].get("healthy") == n for r in runs)
    return common.finish(
        NAME, f"Event-loop lag, {n} engines provisioned and health-checked (process runtime)", quick=args.quick,
        goal=f"max lag ≤ {GOAL_MS:.0f} ms", ratio=worst / GOAL_MS, met=worst <= GOAL_MS and healthy,
        summary=f"max loop lag {off['max_ms']} ms (debug off) / {on['max_ms']} ms (debug on), "
                f"goal {GOAL_MS:.0f} ms",
        n=n, hold_s=hold, max_lag_ms=worst, runs=runs,
    )


if __name__ == "__main__":
    main(sys.argv[1:])
