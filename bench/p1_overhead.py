"""P1: orchestrator overhead per provision.

p50 of ``POST /provision/acestream`` (PROVISION_WAIT_FOR=ready: answered once the engine answers
``get_status``) against a real ``aceorch serve`` with the Docker runtime, divided by p50 of the raw baseline:
create + start of the same image with the same environment and a published port, then ``get_status`` until
200 (see :class:`bench.common.RawDocker`). The two alternate in one run (ABBA order), one warm-up each is not
counted, and every container is removed before the next start. Goal: ratio ≤ 1.05.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx

from bench import common

NAME = "p1_overhead"
GOAL = 1.05


async def measure(n: int) -> dict[str, Any]:
    proc_mod = common.orchestrator_class()
    with tempfile.TemporaryDirectory(prefix="aceorch-bench-p1-") as tmp:
        orch = proc_mod.Orchestrator(Path(tmp), {
            "RUNTIME": "docker", "MAX_REPLICAS": "20", "MAX_ACTIVE_REPLICAS": "20", "LOG_LEVEL": "WARNING",
            # Host ports away from the default range, which other local test runs may be using.
            "PORT_RANGE_HOST": "39000-39999",
        })
        raw = common.RawDocker(f"aceorch.test=bench-raw-{uuid.uuid4().hex[:8]}")
        orch_times: list[float] = []
        raw_times: list[float] = []
        try:
            orch.start()
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{orch.port}", timeout=120,
                                         headers=orch.auth) as client:

                async def one_orch() -> float:
                    begin = time.perf_counter()
                    r = await client.post("/provision/acestream", json={})
                    elapsed = time.perf_counter() - begin
                    if r.status_code != 200:
                        raise RuntimeError(f"provision failed: {r.status_code} {r.text}\n{orch.logs()[-3000:]}")
                    d = await client.delete(f"/containers/{r.json()['container_id']}")
                    if d.status_code >= 300:
                        raise RuntimeError(f"delete failed: {d.status_code} {d.text}")
                    return elapsed

                async def one_raw(i: int) -> float:
                    (host_port,) = common.free_ports(1)
                    cid, elapsed = await raw.run_until_ready(host_port, 40000 + i)
                    await raw.remove(cid)
                    return elapsed

                # Warm-up (image layers and page cache, first SQLite writes), not counted.
                await one_orch()
                await one_raw(0)
                for i in range(n):
                    if i % 2 == 0:
                        orch_times.append(await one_orch())
                        raw_times.append(await one_raw(i + 1))
                    else:
                        raw_times.append(await one_raw(i + 1))
                        orch_times.append(await one_orch())
                    print(f"  #{i + 1}: aceorch {orch_times[-1] * 1000:7.1f} ms   raw {raw_times[-1] * 1000:7.1f} ms")
        finally:
            await raw.aclose()
            orch.close()
    return {"aceorch_s": orch_times, "raw_s": raw_times}


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    args = common.parse_args(__doc__ or NAME, argv)
    n = 2 if args.quick else 10
    common.ensure_docker()
    data = asyncio.run(measure(n))
    ours = common.stats(data["aceorch_s"])
    base = common.stats(data["raw_s"])
    ratio = ours["p50"] / base["p50"]
    print(f"{'':28}{'POST /provision/acestream':>28}{'raw create+start+poll':>24}")
    for key in ("p50", "p90", "min", "max", "mean"):
        print(f"{key + ' (ms)':28}{ours[key] * 1000:>28.1f}{base[key] * 1000:>24.1f}")
    overhead_ms = (ours["p50"] - base["p50"]) * 1000
    print(f"ratio p50: {ratio:.3f} (goal ≤ {GOAL}); overhead p50: {overhead_ms:+.1f} ms")
    return common.finish(
        NAME, "Orchestrator overhead per provision (Docker runtime, PROVISION_WAIT_FOR=ready)",
        quick=args.quick, goal=f"p50 ratio ≤ {GOAL}", ratio=ratio, met=ratio <= GOAL,
        summary=f"provision p50 {ours['p50'] * 1000:.0f} ms vs raw {base['p50'] * 1000:.0f} ms, "
                f"ratio {ratio:.3f}",
        n=n, aceorch=ours, raw=base, overhead_p50_ms=round(overhead_ms, 1),
        samples={"aceorch_s": [round(x, 4) for x in data["aceorch_s"]],
                 "raw_s": [round(x, 4) for x in data["raw_s"]]},
        baseline="aiodocker create+start of aceorch/engine-sim:latest (same env, --init, published port), "
                 "get_status polled at once, then from 20 ms doubling to 100 ms, like aceorch's provisioner",
    )


if __name__ == "__main__":
    main(sys.argv[1:])
