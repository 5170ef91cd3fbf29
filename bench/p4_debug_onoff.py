"""P4: API requests/s with debug mode on vs off.

Two in-process apps (``create_app`` with their lifespans running, the in-memory runtime, 10 engines each),
one with DEBUG_MODE=true and one without, are driven through ``httpx.ASGITransport`` by one request loop
bounded in count: ``GET /orchestrator/status`` and ``GET /engines`` in turn. Rounds alternate between the two
apps (the first app of each round alternates too), so drift on a shared machine hits both alike. With debug
mode on, every request writes an ``api_request`` record. Goal: requests/s on ÷ off ≥ 0.97.

The headline ratio is the median of the per-round ratios (each round's "on" against the "off" next to it in
time): on a shared machine single rounds swing by ±20 %, and the median of many short paired rounds is what
such interference disturbs least. The overall ratio (all requests ÷ all time) and the best-round ratio are
reported too.
"""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench import common

NAME = "p4_debug_onoff"
GOAL = 0.97
PATHS = ("/orchestrator/status", "/engines")


async def measure(rounds: int, per_round: int, engines: int) -> dict[str, Any]:
    from aceorch.runtime.fake import InMemoryRuntime

    async with contextlib.AsyncExitStack() as stack:
        apps: dict[str, tuple[Any, Any]] = {}
        for mode in ("off", "on", "control"):
            tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix=f"aceorch-bench-p4{mode}-")))
            settings = common.bench_settings(
                tmp, debug_mode=(mode == "on"), provision_wait_for="running", runtime="docker",
                health_check_interval_s=3600, collect_interval_s=3600, autoscale_interval_s=3600,
            )
            app, client = await stack.enter_async_context(common.running_app(settings, runtime=InMemoryRuntime()))
            for _ in range(engines):
                r = await client.post("/provision/acestream", json={}, headers=common.AUTH)
                r.raise_for_status()
            apps[mode] = (app, client)

        async def burst(client: Any, n: int) -> float:
            begin = time.perf_counter()
            for i in range(n):
                r = await client.get(PATHS[i % 2])
                if r.status_code != 200:
                    raise RuntimeError(f"{PATHS[i % 2]}: {r.status_code}")
            return time.perf_counter() - begin

        # warm-up of both
        for mode in apps:
            await burst(apps[mode][1], max(20, per_round // 5))
        spent = {mode: 0.0 for mode in apps}
        per_round_rate: dict[str, list[float]] = {mode: [] for mode in apps}
        orders = [("off", "on", "control"), ("on", "control", "off"), ("control", "off", "on"),
                  ("off", "control", "on"), ("on", "off", "control"), ("control", "on", "off")]
        for r in range(rounds):
            order = orders[r % len(orders)]
            for mode in order:
                elapsed = await burst(apps[mode][1], per_round)
                spent[mode] += elapsed
                per_round_rate[mode].append(per_round / elapsed)
        debuglog = apps["on"][0].state.debuglog
        await asyncio.to_thread(debuglog.flush)
        written = debuglog.entries_written
    return {
        "requests_per_mode": rounds * per_round,
        "rps_off": rounds * per_round / spent["off"],
        "rps_on": rounds * per_round / spent["on"],
        "best_off": max(per_round_rate["off"]),
        "best_on": max(per_round_rate["on"]),
        "round_ratios": [on / off for on, off in zip(per_round_rate["on"], per_round_rate["off"], strict=True)],
        "control_ratios": [c / off for c, off in zip(per_round_rate["control"], per_round_rate["off"], strict=True)],
        "rps_control": rounds * per_round / spent["control"],
        "debug_records_written": written,
    }


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    args = common.parse_args(__doc__ or NAME, argv)
    common.quiet_logging()
    rounds, per_round = (2, 20) if args.quick else (60, 100)
    data = asyncio.run(measure(rounds, per_round, 10))
    overall = data["rps_on"] / data["rps_off"]
    best = data["best_on"] / data["best_off"]
    ratio = statistics.median(data["round_ratios"])
    control = statistics.median(data["control_ratios"])
    print(f"{'':26}{'debug off':>12}{'debug on':>12}{'control (off)':>15}")
    print(f"{'requests/s':26}{data['rps_off']:>12,.0f}{data['rps_on']:>12,.0f}{data['rps_control']:>15,.0f}")
    print(f"{'µs per request':26}{1e6 / data['rps_off']:>12,.0f}{1e6 / data['rps_on']:>12,.0f}"
          f"{1e6 / data['rps_control']:>15,.0f}")
    print(f"{'best round, requests/s':26}{data['best_off']:>12,.0f}{data['best_on']:>12,.0f}")
    print(f"on ÷ off: {ratio:.3f} median of {rounds} paired rounds (goal ≥ {GOAL}); {overall:.3f} overall; "
          f"{best:.3f} best round against best round; control ÷ off {control:.3f} (noise floor); "
          f"{data['debug_records_written']} debug records written")
    return common.finish(
        NAME, "API requests/s, debug mode on vs off (in-process ASGI)", quick=args.quick,
        goal=f"on ÷ off ≥ {GOAL}", ratio=ratio, met=ratio >= GOAL,
        summary=f"{data['rps_on']:,.0f} req/s on vs {data['rps_off']:,.0f} off; on ÷ off {ratio:.3f} (median of "
                f"{rounds} paired rounds; overall {overall:.3f}, best-vs-best {best:.3f}; control {control:.3f})",
        rounds=rounds, per_round=per_round, endpoints=list(PATHS),
        rps_off=round(data["rps_off"], 1), rps_on=round(data["rps_on"], 1),
        control_ratio=round(control, 4), rps_control=round(data["rps_control"], 1),
        overall_ratio=round(overall, 4), best_round_ratio=round(best, 4),
        best_rps_off=round(data["best_off"], 1), best_rps_on=round(data["best_on"], 1),
        round_ratios=[round(x, 4) for x in data["round_ratios"]],
        requests_per_mode=data["requests_per_mode"], debug_records_written=data["debug_records_written"],
    )


if __name__ == "__main__":
    main(sys.argv[1:])
