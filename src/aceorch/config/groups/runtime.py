"""The ``runtime`` group: where and how engines run, and Docker's memory format for their cap."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, ConfigDict, Field

from aceorch.config.groups.base import Group
from aceorch.config.types import (
    FLOAT,
    INT,
    Bool,
    EngineEnv,
    EngineVolumes,
    PortRange,
    Range,
    RuntimeKind,
    Str,
    WaitFor,
    default_engine_command,
    lower,
    parse_engine_env,
    parse_engine_volumes,
)

__all__ = ["RuntimeSettings"]


_MEMORY = re.compile(r"(\d+(?:\.\d+)?)\s*([bkmg]?)b?", re.I)
_MEMORY_UNITS = {"": 1, "b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}


def _docker_memory_bytes(text: str) -> int:
    match = _MEMORY.fullmatch(text.strip())
    if match is None:
        raise ValueError("expected a number with b, k, m or g, as 512m or 1.5g")
    return int(float(match.group(1)) * _MEMORY_UNITS[match.group(2).lower()])


def _docker_memory(value: str | None) -> str | None:
    if value is not None and _docker_memory_bytes(value) < 6 << 20:
        raise ValueError("Docker needs at least 6m")
    return value


class RuntimeSettings(Group):
    """Where and how engines run: the runtime, the image, the labels that mark them, their ports."""

    model_config = ConfigDict(title="Runtime and engines")

    kind: Annotated[RuntimeKind, lower] = Field(
        RuntimeKind.AUTO, alias="runtime",
        description="Where engines run: auto (docker if a Docker engine answers within 2 s, else process), docker, "
        "swarm (a Docker Swarm manager at DOCKER_HOST; see docs/swarm.md), process; default auto.",
    )
    engine_command: Str = Field(
        default_factory=default_engine_command,
        description="Process runtime only: the command each engine runs (split by shell rules, no shell). "
        'Default: the bundled engine simulator, "<python running aceorch> -m aceorch.sim engine".',
    )
    docker_network: Str | None = Field(
        None,
        description="Network for engines without VPN (must exist; checked at start), default unset. "
        'docker-compose uses it for the orchestrator too and defaults it to "aceorch" '
        "(docker network create aceorch).",
    )
    target_image: Str = Field(
        "acestream/engine:latest",
        description="Engine image; must exist locally or be pullable; default acestream/engine:latest. "
        "Offline demo/tests: aceorch/engine-sim:latest.",
    )
    container_label: Str = Field(
        "ondemand.app=myservice",
        description="Label marking managed containers, key=value (split at the first =), default "
        "ondemand.app=myservice. Running labelled containers are adopted at start, stopped ones removed; "
        "unlabelled containers are never touched.",
    )
    engine_advertise_host: Str = Field(
        "auto",
        description="The host proxies see in /engines: auto, or a hostname or IP address; default auto. "
        "auto = 127.0.0.1 (and the host port) when aceorch runs on the host; in its container, the Gluetun name "
        "in VPN mode, else the engine's container name (with the container port). See docs/deployment.md, "
        '"Engine addresses".',
    )
    provision_wait_for: Annotated[WaitFor, lower] = Field(
        WaitFor.READY,
        description="When a provision call answers: ready (engine API answers) or running (container runs; for "
        "proxies with short timeouts when engines start slowly); default ready.",
    )
    startup_timeout_s: Annotated[int, INT] = Field(
        25, ge=1, le=600,
        description="Deadline for an engine to become ready/running, 1-600 s, default 25; also the base of the "
        "slow_provisioning threshold.",
    )
    port_range_host: Range = Field(
        PortRange(19000, 19999),
        description="Host ports of engines, default 19000-19999 (HTTP; HTTPS with ACE_MAP_HTTPS; in VPN mode the "
        "first MAX_ACTIVE_REPLICAS are the VPN port pool). Ranges are A-B with 1 <= A <= B <= 65535 and must not "
        "overlap each other or APP_PORT.",
    )
    ace_http_range: Range = Field(
        PortRange(40000, 44999),
        description="Container-side HTTP ports of Docker-bridge engines, default 40000-44999.",
    )
    ace_https_range: Range = Field(
        PortRange(45000, 49999),
        description="Engine HTTPS ports (container side under Docker, host side under the process runtime), "
        "default 45000-49999.",
    )
    ace_map_https: Bool = Field(
        False,
        description="Also publish each engine's HTTPS port on a PORT_RANGE_HOST port: true/false/1/0/yes/no; "
        "default false.",
    )
    engine_env_allow: Str = Field(
        "CONF,ACESTREAM_ARGS,HTTP_PORT,HTTPS_PORT,P2P_PORT,BIND_ALL,INTERNAL_BUFFERING,CACHE_LIMIT,SIM_*",
        description="Env names a provision body may set (comma-separated; NAME* allows a prefix), default "
        "CONF,ACESTREAM_ARGS,HTTP_PORT,HTTPS_PORT,P2P_PORT,BIND_ALL,INTERNAL_BUFFERING,CACHE_LIMIT,SIM_* (what "
        "AceStream images read, and the simulator's variables). To extend it, list the defaults and yours. "
        "Names that change how a program loads or runs (LD_*, PYTHON*, PATH, BROWSER, PERL5*, BASH_ENV, ...) are "
        "refused whatever this says: an env value alone could run commands as root in the engine.",
    )
    allowed_images: Str = Field(
        "",
        description="Images a provision body may ask for (comma-separated), default unset: TARGET_IMAGE alone. "
        "Any image the host holds could otherwise be run with the Docker socket's rights.",
    )

    engine_memory_limit: Annotated[Str | None, AfterValidator(_docker_memory)] = Field(
        None,
        description="Memory cap of each engine container, Docker's format (a number with b, k, m or g: 512m, "
        "1.5g; at least 6m), default unset (no cap). Shown by docker inspect as HostConfig.Memory; an engine "
        "over it is killed by the kernel and restarted. Not enforced by the process runtime.",
    )
    engine_cpus: Annotated[float | None, FLOAT] = Field(
        None, gt=0, le=1024,
        description="CPU cap of each engine container in CPUs, fractions allowed (1.5), 0 < n <= 1024, default "
        "unset (no cap), so that one busy engine cannot starve the others. HostConfig.NanoCpus in docker "
        "inspect. Not enforced by the process runtime.",
    )
    engine_cache_dir: Str = Field(
        "/root/.ACEStream/.acestream_cache",
        description="The directory inside an engine container that holds its cache, emptied by the idle "
        "clean-up, default /root/.ACEStream/.acestream_cache (the engine's own default; the simulator image "
        "uses it too). Under the process runtime it is a directory of this host that the engines share.",
    )
    engine_cache_cleanup_idle_s: Annotated[int, INT] = Field(
        300, ge=0, le=604800,
        description="An engine without streams for this long gets its cache emptied once (through docker exec), "
        "so idle engines do not hold gigabytes of old content, 0-604800 s, default 300; 0 disables the clean-up.",
    )
    max_replicas_per_node: Annotated[int, INT] = Field(
        0, ge=0, le=1000,
        description="With the swarm runtime only: at most this many engines on one Swarm node (Swarm's MaxReplicas "
        "placement), 0-1000, default 0 (no cap; engines are spread over the nodes either way). A small machine "
        "holds a handful of engines; the cap keeps a rescheduled engine off a node that is full.",
    )
    swarm_constraints: Str = Field(
        "",
        description="With the swarm runtime only: placement constraints of every engine service, comma-separated, in "
        "docker service create --constraint syntax (node.labels.acestream==yes,node.role!=manager), default "
        "unset (any node).",
    )

    engine_volumes: EngineVolumes = Field(
        "",
        description="Bind mounts of every engine container, comma-separated host_path:container_path, or "
        "host_path:container_path:ro for read-only; both paths absolute; default unset (no mounts). For media, "
        "certificates or a cache on a disk of your choice. Docker: HostConfig.Binds; swarm: bind mounts, so the "
        "host path must exist on every node that may run an engine. The process runtime runs engines on this "
        "host, where they see its files: it accepts only mounts whose two paths are the same, and refuses a "
        "provision with any other.",
    )
    engine_env: EngineEnv = Field(
        "",
        description="Environment variables of every engine, comma-separated NAME=value (values without commas), "
        "default unset. A provision body's env wins over it; CONF, HTTP_PORT, HTTPS_PORT, P2P_PORT, BIND_ALL, "
        "INTERNAL_BUFFERING and CACHE_LIMIT are set by aceorch for each engine and refused here. The process "
        "runtime's engines also inherit aceorch's own environment.",
    )

    @property
    def engine_volume_list(self) -> list[tuple[str, str, bool]]:
        """``ENGINE_VOLUMES`` as (host path, container path, read-only) triples."""
        return parse_engine_volumes(self.engine_volumes)

    @property
    def engine_env_map(self) -> dict[str, str]:
        """``ENGINE_ENV`` as a dict of name to value."""
        return parse_engine_env(self.engine_env)

    @property
    def engine_memory_bytes(self) -> int | None:
        """``ENGINE_MEMORY_LIMIT`` in bytes, or None without a cap."""
        return None if self.engine_memory_limit is None else _docker_memory_bytes(self.engine_memory_limit)

    @property
    def swarm_constraint_list(self) -> list[str]:
        """``SWARM_CONSTRAINTS`` as a list, blanks dropped."""
        return [c.strip() for c in self.swarm_constraints.split(",") if c.strip()]

    @property
    def label_pair(self) -> tuple[str, str]:
        """``CONTAINER_LABEL`` split at its first ``=``."""
        key, _, value = self.container_label.partition("=")
        return key, value
