"""P8: provisioning on a swarm against provisioning on one Docker host.

p50 of ``POST /provision/acestream`` (PROVISION_WAIT_FOR=ready) against a real ``aceorch serve`` with
``RUNTIME=swarm`` on the 3-node lab swarm (``scripts/swarm-lab.sh``), divided by the p50 of the same against
``RUNTIME=docker`` on the host's own engine, both in one run, alternating (ABBA), one warm-up each not counted,
each engine removed before the next. The engine start is broken down from the debug session's records: the
runtime's ``create`` (Docker: create and start the container; Swarm: create the service until its task runs on a
node) and the rest (the engine's first answer at its address, and aceorch's own work). Reported, no goal beyond
"under 2x": Swarm's scheduler and task start sit in the path by design.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx

from bench import common

NAME = "p8_swarm"
GOAL = 2.0
LAB = common.ROOT / "scripts" / "swarm-lab.sh"


def lab_up() -> str:
    """Bring the 3-node lab up (idempotent); the manager's DOCKER_HOST."""
    proc = subprocess.run([str(LAB), "up", "3"], capture_output=True, text=True, timeout=300, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"swarm-lab.sh up failed:\n{proc.stderr}")
    line = next(x for x in proc.stdout.splitlines() if x.startswith("export DOCKER_HOST="))
    return line.split("=", 1)[1]


def create_ms(folder: Path) -> list[float]:
    """The runtime ``create`` durations of the debug session in ``folder``, in order."""
    out: list[float] = []
    for path in sorted((folder / "debug_logs").glob("*performance*.jsonl")):
        for line in path.read_text().splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if record.get("operation") == "runtime.create" and record.get("success"):
                out.append(float(record["duration_ms"]))
    return out


def one(client: httpx.Client) -> float:
    """One provision, timed, then its removal."""
    begin = time.perf_counter()
    r = client.post("/provision/acestream", json={})
    elapsed = time.perf_counter() - begin
    if r.status_code != 200:
        raise RuntimeError(f"provision failed: {r.status_code} {r.text}")
    d = client.delete(f"/containers/{r.json()['container_id']}")
    if d.status_code >= 300:
        raise RuntimeError(f"delete failed: {d.status_code} {d.text}")
    return elapsed


def measure(n: int, docker_host: str) -> dict[str, Any]:
    proc_mod = common.orchestrator_class()
    common_env = {"MAX_REPLICAS": "20", "MAX_ACTIVE_REPLICAS": "20", "LOG_LEVEL": "WARNING", "DEBUG_MODE": "true",
                  "PORT_RANGE_HOST": "39000-39999"}
    with tempfile.TemporaryDirectory(prefix="aceorch-bench-p8-") as tmp:
        folders = {kind: Path(tmp) / kind for kind in ("docker", "swarm")}
        for folder in folders.values():
            folder.mkdir()
        orchs = {
            "docker": proc_mod.Orchestrator(folders["docker"], {"RUNTIME": "docker", **common_env}),
            "swarm": proc_mod.Orchestrator(folders["swarm"], {"RUNTIME": "swarm", "DOCKER_HOST": docker_host,
                                                              **common_env}),
        }
        times: dict[str, list[float]] = {"docker": [], "swarm": []}
        try:
            for orch in orchs.values():
                orch.start()
                one(orch.client)  # warm-up, not counted
            for i in range(n):
                order = ("docker", "swarm") if i % 2 == 0 else ("swarm", "docker")
                for kind in order:
                    times[kind].append(one(orchs[kind].client))
                print(f"  #{i + 1}: docker {times['docker'][-1] * 1000:7.1f} ms   "
                      f"swarm {times['swarm'][-1] * 1000:7.1f} ms")
        finally:
            for orch in orchs.values():
                orch.stop()
                orch.client.close()
        creates = {kind: create_ms(folder)[1:] for kind, folder in folders.items()}  # without the warm-up
    return {"times_s": times, "create_ms": creates}


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    args = common.parse_args(__doc__ or NAME, argv)
    if os.geteuid() != 0:
        raise SystemExit("p8 needs root for the swarm lab")
    n = 2 if args.quick else 10
    common.ensure_docker()
    docker_host = lab_up()
    try:
        data = measure(n, docker_host)
    finally:
        subprocess.run([str(LAB), "down"], capture_output=True, timeout=300, check=False)
    swarm, docker = common.stats(data["times_s"]["swarm"]), common.stats(data["times_s"]["docker"])
    ratio = swarm["p50"] / docker["p50"]
    breakdown: dict[str, dict[str, float]] = {}
    for kind, total in (("docker", docker), ("swarm", swarm)):
        create = common.pct(data["create_ms"][kind], 50) if data["create_ms"][kind] else float("nan")
        breakdown[kind] = {"provision_p50_ms": round(total["p50"] * 1000, 1), "runtime_create_p50_ms": round(create, 1),
                           "rest_p50_ms": round(total["p50"] * 1000 - create, 1)}
    print(f"{'':26}{'docker (one host)':>20}{'swarm (3-node lab)':>22}")
    for key in ("provision_p50_ms", "runtime_create_p50_ms", "rest_p50_ms"):
        print(f"{key:26}{breakdown['docker'][key]:>20.1f}{breakdown['swarm'][key]:>22.1f}")
    print(f"ratio p50 swarm/docker: {ratio:.2f}")
    return common.finish(
        NAME, "Provisioning on a 3-node lab swarm vs one Docker host (PROVISION_WAIT_FOR=ready)",
        quick=args.quick, goal=f"p50 ratio ≤ {GOAL}", ratio=ratio, met=ratio <= GOAL,
        summary=f"provision p50 swarm {swarm['p50'] * 1000:.0f} ms vs docker {docker['p50'] * 1000:.0f} ms, "
                f"ratio {ratio:.2f}; runtime create p50 swarm {breakdown['swarm']['runtime_create_p50_ms']:.0f} ms "
                f"vs docker {breakdown['docker']['runtime_create_p50_ms']:.0f} ms",
        n=n, swarm=swarm, docker=docker, breakdown=breakdown,
        samples={k: [round(x, 4) for x in v] for k, v in data["times_s"].items()},
    )


if __name__ == "__main__":
    main(sys.argv[1:])
