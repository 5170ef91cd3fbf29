"""Resource use and cache clearing on every backend: the Docker arithmetic, /proc readings, the fake's records."""

from __future__ import annotations

import asyncio
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from aceorch.errors import ContainerNotFound, RuntimeFailure
from aceorch.runtime.base import ContainerSpec, ContainerStats
from aceorch.runtime.docker import container_config
from aceorch.runtime.docker_usage import clear_dir_argv, limits_host_config, stats_from_docker
from aceorch.runtime.fake import InMemoryRuntime
from aceorch.runtime.process import ProcessRuntime
from aceorch.runtime.process_usage import ProcUsage, clear_dir, cpu_percent_between, read_proc_usage
from support import async_wait_until

BUSY = "import time\nwhile True:\n    sum(range(10000))\n"


def docker_answer(total: int, pre_total: int, system: int, pre_system: int, online: int = 2) -> dict[str, object]:
    return {
        "cpu_stats": {"cpu_usage": {"total_usage": total}, "system_cpu_usage": system, "online_cpus": online},
        "precpu_stats": {"cpu_usage": {"total_usage": pre_total}, "system_cpu_usage": pre_system},
        "memory_stats": {"usage": 100 << 20, "stats": {"total_inactive_file": 30 << 20}},
    }


def test_docker_stats_give_cpu_as_docker_stats_does_and_memory_without_the_page_cache() -> None:
    # 0.5 s of container CPU in 2 s of system CPU time on 2 CPUs: half a CPU, 50 %.
    stats = stats_from_docker(docker_answer(1_500_000_000, 1_000_000_000, 4_000_000_000, 2_000_000_000))

    assert stats.cpu_percent == pytest.approx(50.0)
    assert stats.memory_bytes == 70 << 20


def test_docker_stats_under_cgroup_v2_and_without_a_previous_sample() -> None:
    answer = docker_answer(10, 5, 100, 50)
    answer["memory_stats"] = {"usage": 1000, "stats": {"inactive_file": 400}}
    answer["precpu_stats"] = {}  # the first sample of a stream carries no previous one

    stats = stats_from_docker(answer)

    assert stats.cpu_percent is None and stats.memory_bytes == 600
    assert stats_from_docker({}) == ContainerStats(cpu_percent=None, memory_bytes=None)


def test_limits_become_host_config_memory_and_nano_cpus() -> None:
    spec = ContainerSpec(name="e1", image="img", memory_limit=512 << 20, cpus=1.5)

    host_config = container_config(spec)["HostConfig"]

    assert host_config["Memory"] == 512 << 20 and host_config["NanoCpus"] == 1_500_000_000
    assert "Memory" not in container_config(ContainerSpec(name="e2", image="img"))["HostConfig"]
    assert limits_host_config(None, 0.25) == {"NanoCpus": 250_000_000}


def test_the_clear_command_passes_the_path_as_an_argument(tmp_path: Path) -> None:
    cache = tmp_path / "cache dir; rm -rf /"
    (cache / "sub").mkdir(parents=True)
    (cache / "sub" / "piece").write_bytes(b"x" * 10)
    (cache / ".hidden").write_bytes(b"x")
    (cache / "top").write_bytes(b"x")

    argv = clear_dir_argv(str(cache))
    subprocess.run(argv, check=True)
    subprocess.run(clear_dir_argv(str(tmp_path / "missing")), check=True)

    assert argv[-1] == str(cache) and cache.is_dir() and list(cache.iterdir()) == []


def test_clear_dir_empties_a_directory_in_place(tmp_path: Path) -> None:
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "a" / "b" / "f").write_text("x")
    (tmp_path / ".h").write_text("x")
    os.symlink("/etc", tmp_path / "link")

    clear_dir(str(tmp_path))
    clear_dir(str(tmp_path / "missing"))

    assert tmp_path.is_dir() and list(tmp_path.iterdir()) == [] and os.path.isdir("/etc")


def test_proc_readings_of_this_process() -> None:
    first = read_proc_usage(os.getpid(), 0.0)
    assert first is not None and first.rss_bytes > 1 << 20

    later = ProcUsage(cpu_s=first.cpu_s + 0.25, rss_bytes=first.rss_bytes, at=1.0)
    assert cpu_percent_between(first, later) == pytest.approx(25.0)
    assert cpu_percent_between(later, first) is None
    assert read_proc_usage(2**22 + 7, 0.0) is None


async def test_the_process_runtime_samples_a_busy_child_and_clears_a_host_directory(tmp_path: Path) -> None:
    runtime = ProcessRuntime(f"{shlex.quote(sys.executable)} -u -c", kill_after=2)
    try:
        info = await runtime.create(ContainerSpec(name="busy", image="ignored", command=[BUSY]))
        first = await runtime.stats(info.id)
        assert first.cpu_percent is None and first.memory_bytes and first.memory_bytes > 0

        async def busy_sample() -> bool:
            stats = await runtime.stats(info.id)
            return stats.cpu_percent is not None and stats.cpu_percent > 5

        await async_wait_until(busy_sample, "the busy child to show CPU use", timeout=10)

        await asyncio.to_thread((tmp_path / "piece").write_bytes, b"x" * 100)
        await runtime.clear_cache(info.id, str(tmp_path))
        assert await asyncio.to_thread(os.listdir, tmp_path) == []

        await runtime.stop(info.id, timeout=1)
        with pytest.raises(RuntimeFailure):
            await runtime.stats(info.id)
        with pytest.raises(RuntimeFailure):
            await runtime.clear_cache(info.id, str(tmp_path))
        with pytest.raises(ContainerNotFound):
            await runtime.stats("nobody")
    finally:
        await runtime.aclose()


async def test_the_fake_answers_scripted_usage_and_records_clears(fake_runtime: InMemoryRuntime) -> None:
    info = await fake_runtime.create(ContainerSpec(name="e1", image="img", memory_limit=1 << 30, cpus=2.0))
    fake_runtime.containers[info.id].usage = ContainerStats(cpu_percent=12.5, memory_bytes=64 << 20)

    assert await fake_runtime.stats(info.id) == ContainerStats(cpu_percent=12.5, memory_bytes=64 << 20)
    await fake_runtime.clear_cache(info.id, "/cache")

    assert fake_runtime.containers[info.id].cache_clears == ["/cache"]
    assert fake_runtime.containers[info.id].spec.memory_limit == 1 << 30
    assert ("clear_cache", info.id) in fake_runtime.calls
    fake_runtime.set_exited(info.id)
    with pytest.raises(RuntimeFailure):
        await fake_runtime.clear_cache(info.id, "/cache")
