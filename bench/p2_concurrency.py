"""P2: concurrent provisions.

A real ``aceorch serve`` (Docker runtime, MAX_CONCURRENT_PROVISIONS=20, MIN_PROVISION_INTERVAL_S=0) gets 20
``POST /provision/acestream`` at once; the wall time until the last answers is divided by the time of one
provision (median of 3, each removed before the next). Goal: ≤ 1.5.

Side by side, the same two figures without aceorch (:class:`bench.common.RawDocker`: 20 raw create + start +
poll at once, and one alone) show what the machine itself allows: on a small host the engines' own start-up
(one Python process each) competes for the CPUs, so the raw ratio is the floor for aceorch's.

A third column isolates aceorch's own concurrency: an in-process aceorch with the process runtime and the
near-free engine of :data:`bench.common.TINY_ENGINE` (about 15 ms of CPU to start), same settings.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx

from bench import common

NAME = "p2_concurrency"
GOAL = 1.5


async def measure(concurrency: int, singles: int) -> dict[str, Any]:
    proc_mod = common.orchestrator_class()
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="aceorch-bench-p2-") as tmp:
        orch = proc_mod.Orchestrator(Path(tmp), {
            "RUNTIME": "docker", "LOG_LEVEL": "WARNING",
            "MAX_CONCURRENT_PROVISIONS": str(concurrency), "MIN_PROVISION_INTERVAL_S": "0",
            "MAX_REPLICAS": str(concurrency + 5), "MAX_ACTIVE_REPLICAS": str(concurrency + 5),
            "STARTUP_TIMEOUT_S": "120", "PORT_RANGE_HOST": "39000-39999",
        })
        raw = common.RawDocker(f"aceorch.test=bench-raw-{uuid.uuid4().hex[:8]}")
        try:
            orch.start()
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{orch.port}", timeout=300,
                                         headers=orch.auth) as client:

                async def provision() -> tuple[str, float]:
                    begin = time.perf_counter()
                    r = await client.post("/provision/acestream", json={})
                    elapsed = time.perf_counter() - begin
                    if r.status_code != 200:
                        raise RuntimeError(f"provision failed: {r.status_code} {r.text}\n{orch.logs()[-3000:]}")
                    return str(r.json()["container_id"]), elapsed

                async def remove(cids: list[str]) -> None:
                    await asyncio.gather(*(client.delete(f"/containers/{cid}") for cid in cids))

                # aceorch: a warm-up, then `singles` alone, then `concurrency` at once
                cid, _ = await provision()
                await remove([cid])
                one: list[float] = []
                for _ in range(singles):
                    cid, elapsed = await provision()
                    one.append(elapsed)
                    await remove([cid])
                begin = time.perf_counter()
                results = await asyncio.gather(*(provision() for _ in range(concurrency)))
                wall = time.perf_counter() - begin
                await remove([c for c, _ in results])
                out["aceorch"] = {"one_s": one, "wall_s": wall, "each_s": [e for _, e in results]}

            # the raw baseline, the same way
            ports = common.free_ports(concurrency + singles + 1)
            cid, _ = await raw.run_until_ready(ports[0], 40000)
            await raw.remove(cid)
            one = []
            for i in range(singles):
                cid, elapsed = await raw.run_until_ready(ports[1 + i], 40001 + i)
                one.append(elapsed)
                await raw.remove(cid)
            begin = time.perf_counter()
            results = await asyncio.gather(*(raw.run_until_ready(ports[1 + singles + i], 40100 + i)
                                             for i in range(concurrency)))
            wall = time.perf_counter() - begin
            await asyncio.gather(*(raw.remove(c) for c, _ in results))
            out["raw"] = {"one_s": one, "wall_s": wall, "each_s": [e for _, e in results]}
        finally:
            await raw.aclose()
            orch.close()
    return out


async def measure_tiny(concurrency: int, singles: int) -> dict[str, Any]:
    from aceorch.runtime.process import ProcessRuntime

    with tempfile.TemporaryDirectory(prefix="aceorch-bench-p2t-") as tmp_text:
        tmp = Path(tmp_text)
        command = common.tiny_engine_command(tmp)
        settings = common.bench_settings(
            tmp, runtime="process", engine_command=command, max_concurrent_provisions=concurrency,
            max_replicas=concurrency + 5, max_active_replicas=concurrency + 5, port_range_host="23000-23999",
            health_check_interval_s=3600,
        )
        async with common.running_app(settings, runtime=ProcessRuntime(command)) as (_app, client):

            async def provision() -> tuple[str, float]:
                begin = time.perf_counter()
                r = await client.post("/provision/acestream", json={}, headers=common.AUTH)
                elapsed = time.perf_counter() - begin
                if r.status_code != 200:
                    raise RuntimeError(f"provision failed: {r.status_code} {r.text}")
                return str(r.json()["container_id"]), elapsed

            async def remove(cids: list[str]) -> None:
                await asyncio.gather(*(client.delete(f"/containers/{cid}", headers=common.AUTH) for cid in cids))

            cid, _ = await provision()
            await remove([cid])
            one: list[float] = []
            for _ in range(singles):
                cid, elapsed = await provision()
                one.append(elapsed)
                await remove([cid])
            begin = time.perf_counter()
            results = await asyncio.gather(*(provision() for _ in range(concurrency)))
            wall = time.perf_counter() - begin
            await remove([c for c, _ in results])
    return {"one_s": one, "wall_s": wall, "each_s": [e for _, e in results]}


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    args = common.parse_args(__doc__ or NAME, argv)
    concurrency, singles = (3, 1) if args.quick else (20, 3)
    common.ensure_docker()
    data = asyncio.run(measure(concurrency, singles))
    common.quiet_logging()
    data["tiny"] = asyncio.run(measure_tiny(concurrency, singles))
    figures: dict[str, dict[str, Any]] = {}
    for who in ("aceorch", "raw", "tiny"):
        d = data[who]
        one = statistics.median(d["one_s"])
        figures[who] = {
            "one_s": round(one, 4),
            "wall_s": round(d["wall_s"], 4),
            "ratio": round(d["wall_s"] / one, 3),
            "each": common.stats(d["each_s"]),
        }
    a, r, t = figures["aceorch"], figures["raw"], figures["tiny"]
    print(f"{'':30}{'aceorch':>14}{'raw Docker':>14}{'aceorch, tiny':>16}")
    print(f"{'':30}{'Docker':>14}{'':>14}{'process engine':>16}")
    print(f"{'one provision (s)':30}{a['one_s']:>14.3f}{r['one_s']:>14.3f}{t['one_s']:>16.3f}")
    print(f"{f'{concurrency} at once, wall (s)':30}{a['wall_s']:>14.3f}{r['wall_s']:>14.3f}{t['wall_s']:>16.3f}")
    print(f"{'wall ÷ one':30}{a['ratio']:>14.2f}{r['ratio']:>14.2f}{t['ratio']:>16.2f}")
    print(f"{'slowest of the batch (s)':30}{a['each']['max']:>14.3f}{r['each']['max']:>14.3f}{t['each']['max']:>16.3f}")
    ratio = float(a["ratio"])
    return common.finish(
        NAME, f"{concurrency} concurrent provisions (Docker runtime)", quick=args.quick,
        goal=f"wall ÷ one ≤ {GOAL}", ratio=ratio, met=ratio <= GOAL,
        summary=f"{concurrency} at once {a['wall_s']:.2f} s vs one {a['one_s']:.2f} s = {ratio:.2f}x "
                f"(raw Docker: {r['ratio']:.2f}x; aceorch with tiny process engines: {t['ratio']:.2f}x)",
        concurrency=concurrency, singles=singles, aceorch=a, raw=r, tiny_process=t,
        aceorch_vs_raw_wall=round(a["wall_s"] / r["wall_s"], 3),
    )


if __name__ == "__main__":
    main(sys.argv[1:])
