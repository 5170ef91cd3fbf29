"""The Docker backend's arithmetic for resource use and hygiene: stats answers to :class:`ContainerStats`, the
limits' ``HostConfig`` fields, and the command that clears a directory inside a container.

``cpu_percent`` is what ``docker stats`` shows: the container's CPU time over the system's CPU time between
the answer's ``precpu_stats`` and ``cpu_stats``, times the online CPUs, times 100. ``memory_bytes`` is the
usage without the inactive page cache (``total_inactive_file`` under cgroup v1, ``inactive_file`` under v2),
as the Docker CLI computes it.
"""

from __future__ import annotations

from typing import Any

from aceorch.runtime.base import ContainerStats

__all__ = ["stats_from_docker", "limits_host_config", "clear_dir_argv"]


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def _cpu_percent(data: dict[str, Any]) -> float | None:
    cpu: dict[str, Any] = data.get("cpu_stats") or {}
    pre: dict[str, Any] = data.get("precpu_stats") or {}
    total = _number((cpu.get("cpu_usage") or {}).get("total_usage"))
    pre_total = _number((pre.get("cpu_usage") or {}).get("total_usage"))
    system = _number(cpu.get("system_cpu_usage"))
    pre_system = _number(pre.get("system_cpu_usage"))
    if total is None or pre_total is None or system is None or pre_system is None:
        return None
    online = _number(cpu.get("online_cpus")) or float(len((cpu.get("cpu_usage") or {}).get("percpu_usage") or []))
    cpu_delta, system_delta = total - pre_total, system - pre_system
    if online <= 0 or system_delta <= 0 or cpu_delta < 0:
        return None
    return cpu_delta / system_delta * online * 100.0


def _memory_bytes(data: dict[str, Any]) -> int | None:
    memory: dict[str, Any] = data.get("memory_stats") or {}
    usage = _number(memory.get("usage"))
    if usage is None:
        return None
    detail: dict[str, Any] = memory.get("stats") or {}
    for key in ("total_inactive_file", "inactive_file"):  # cgroup v1, then v2
        inactive = _number(detail.get(key))
        if inactive is not None and inactive < usage:
            return int(usage - inactive)
    return int(usage)


def stats_from_docker(data: dict[str, Any]) -> ContainerStats:
    """A :class:`ContainerStats` from one ``containers/{id}/stats?stream=false`` answer."""
    return ContainerStats(cpu_percent=_cpu_percent(data), memory_bytes=_memory_bytes(data))


def limits_host_config(memory_limit: int | None, cpus: float | None) -> dict[str, int]:
    """The ``HostConfig`` fields for the caps: ``Memory`` in bytes, ``NanoCpus`` in 1e-9 CPUs; none for None."""
    fields: dict[str, int] = {}
    if memory_limit is not None:
        fields["Memory"] = int(memory_limit)
    if cpus is not None:
        fields["NanoCpus"] = round(cpus * 1_000_000_000)
    return fields


#: Deletes everything inside "$1" (hidden entries too) and keeps the directory; a missing one is fine.
_CLEAR_SCRIPT = 'cd -- "$1" 2>/dev/null || exit 0; rm -rf -- ./* ./.[!.]* ./..?*'


def clear_dir_argv(path: str) -> list[str]:
    """The ``docker exec`` command that empties the directory ``path`` (passed as an argument, never parsed)."""
    return ["sh", "-c", _CLEAR_SCRIPT, "aceorch-clear-cache", path]
