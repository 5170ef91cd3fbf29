"""ENGINE_VOLUMES and ENGINE_ENV: parsed and checked as settings, turned into each backend's mounts (Docker binds,
Swarm bind mounts, the process runtime's refusal of a moved path), and put on every engine the orchestrator starts."""

from __future__ import annotations

import shlex
import sys

import pytest

from aceorch.config import Settings
from aceorch.config.loading import load_settings
from aceorch.errors import ConfigError, RuntimeFailure
from aceorch.runtime.base import BindMount, ContainerSpec
from aceorch.runtime.docker import container_config
from aceorch.runtime.process import ProcessRuntime
from aceorch.runtime.swarm_specs import service_spec

MOUNTS = [BindMount("/srv/media", "/media", read_only=True), BindMount("/srv/cache", "/cache")]


def test_volumes_and_env_are_parsed_from_their_variables() -> None:
    s = Settings(_env_file=None, engine_volumes=" /srv/media:/media:ro , /srv/cache:/cache:rw,/a:/b ",  # type: ignore[call-arg]
                 engine_env="SIM_MEDIA_FILE=/media/a.ts, SIM_STREAM_KBPS=1000,EMPTY=")
    assert s.runtime.engine_volume_list == [("/srv/media", "/media", True), ("/srv/cache", "/cache", False),
                                            ("/a", "/b", False)]
    assert s.runtime.engine_env_map == {"SIM_MEDIA_FILE": "/media/a.ts", "SIM_STREAM_KBPS": "1000", "EMPTY": ""}
    unset = Settings(_env_file=None)  # type: ignore[call-arg]
    assert unset.runtime.engine_volume_list == [] and unset.runtime.engine_env_map == {}


@pytest.mark.parametrize(("name", "value", "reason"), [
    ("ENGINE_VOLUMES", "media:/media", "both paths must be absolute"),
    ("ENGINE_VOLUMES", "/srv/media", "expected host_path:container_path"),
    ("ENGINE_VOLUMES", "/srv/media:/media:rx", "expected host_path:container_path"),
    ("ENGINE_VOLUMES", "/a:/media,/b:/media", "/media is mounted twice"),
    ("ENGINE_ENV", "SIM_MEDIA_FILE", "expected NAME=value"),
    ("ENGINE_ENV", "1X=2", "expected NAME=value"),
    ("ENGINE_ENV", "HTTP_PORT=6878", "aceorch sets HTTP_PORT for each engine itself"),
])
def test_a_bad_entry_is_a_config_error_that_says_why(monkeypatch: pytest.MonkeyPatch, name: str, value: str,
                                                     reason: str) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as err:
        load_settings(None)
    assert f"config error: {name}=" in str(err.value) and reason in str(err.value)


def test_docker_gets_binds_and_swarm_gets_bind_mounts() -> None:
    spec = ContainerSpec(name="e1", image="img", mounts=MOUNTS)
    assert container_config(spec)["HostConfig"]["Binds"] == ["/srv/media:/media:ro", "/srv/cache:/cache"]
    assert "Binds" not in container_config(ContainerSpec(name="e2", image="img"))["HostConfig"]
    container = service_spec(spec)["task_template"]["ContainerSpec"]
    assert container["Mounts"] == [
        {"Type": "bind", "Source": "/srv/media", "Target": "/media", "ReadOnly": True},
        {"Type": "bind", "Source": "/srv/cache", "Target": "/cache", "ReadOnly": False},
    ]
    assert "Mounts" not in service_spec(ContainerSpec(name="e2", image="img"))["task_template"]["ContainerSpec"]


async def test_the_process_runtime_refuses_a_moved_path_and_accepts_a_path_onto_itself() -> None:
    runtime = ProcessRuntime(f"{shlex.quote(sys.executable)} -c", restart_delay=0.1, kill_after=2)
    try:
        with pytest.raises(RuntimeFailure, match="needs a container runtime"):
            await runtime.create(ContainerSpec(name="moved", image="i", command=["pass"], mounts=MOUNTS))
        assert await runtime.list() == []
        same = ContainerSpec(name="same", image="i", command=["pass"], restart_policy="no",
                             mounts=[BindMount("/srv/media", "/srv/media/", read_only=True)])
        info = await runtime.create(same)
        assert info.name == "same"
    finally:
        await runtime.aclose()
