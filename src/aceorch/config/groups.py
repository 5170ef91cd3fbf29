"""The setting groups: one documented pydantic model per concern, each field read from its own flat variable.

A field's variable is its name in upper case (``min_replicas`` is ``MIN_REPLICAS``), or its alias in upper case
where the group's name would repeat the field's (``runtime.kind`` is ``RUNTIME``). Each description gives the
unit and range, the default, and why the setting exists; ``.env.example`` is generated from them.

A new concern (the stream proxy, say) gets a model here and one field on :class:`~aceorch.config.Settings`;
its variables keep flat names of their own, never a prefix or ``__`` nesting.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, SecretStr, model_validator

from aceorch.config.types import (
    FLOAT,
    INT,
    Bool,
    EngineEnv,
    EngineVolumes,
    LogFormat,
    LogLevel,
    PortRange,
    Range,
    RuntimeKind,
    Str,
    WaitFor,
    default_engine_command,
    lower,
    parse_engine_env,
    parse_engine_volumes,
    upper,
)

__all__ = [
    "ApiSettings", "RuntimeSettings", "PoolSettings", "HealthSettings", "BreakerSettings", "StreamSettings",
    "VpnSettings", "DebugSettings", "ProxySettings", "Group",
]


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


class Group(BaseModel):
    """Base of the setting groups: defaults are validated too, unknown fields are refused."""

    model_config = ConfigDict(validate_default=True, extra="forbid", validate_by_name=True, validate_by_alias=True)


class ApiSettings(Group):
    """The service process: where it listens, who may call it, how it logs, where it stores its state."""

    model_config = ConfigDict(title="Service, API and logging")

    app_host: Str = Field("0.0.0.0", description="Listen address (IP address or hostname), default 0.0.0.0.")
    app_port: Annotated[int, INT] = Field(
        8000, ge=1, le=65535,
        description="Listen port, 1-65535, default 8000. Under compose it is also the published port and the "
        "HEALTHCHECK's port.",
    )
    api_key: SecretStr | None = Field(
        None, json_schema_extra={"example": "your-api-key"},
        description="Bearer key for every endpoint but /healthz, /readyz, /orchestrator/status and the dashboard's "
        "files (/metrics: see METRICS_AUTH): any non-empty string, default unset. When unset, every endpoint is "
        "open and aceorch listens on 127.0.0.1 only (unless ALLOW_UNAUTHENTICATED=true). Never logged (shown as ***).",
    )
    allow_unauthenticated: Bool = Field(
        False,
        description="Serve APP_HOST with no API_KEY: true/false; default false. Without a key and without this, "
        "aceorch listens on 127.0.0.1 only, because whoever drives its API can start containers on the host.",
    )
    cors_origins: Str = Field(
        "",
        description="Web origins (scheme://host[:port], comma-separated) whose pages may call the API from a "
        "browser, default unset: CORS off, and a browser request from any other origin that would change something "
        "is refused (403). The dashboard is same-origin and needs no entry.",
    )
    metrics_auth: Annotated[Literal["key", "none"], lower] = Field(
        "key",
        description="Who may read /metrics: key (the API_KEY as a bearer token, which Prometheus supports; open "
        "when API_KEY is unset) or none (anyone); default key.",
    )
    request_body_timeout_s: Annotated[float, FLOAT] = Field(
        10, gt=0, le=600,
        description="How long a request body may take to arrive before the answer is 408, so that a client "
        "sending half a body does not hold a connection, 0 < t <= 600 s (float), default 10.",
    )
    log_level: Annotated[LogLevel, upper] = Field(
        LogLevel.INFO, description="Root log level: DEBUG, INFO, WARNING (alias WARN), ERROR, CRITICAL; default INFO."
    )
    log_format: Annotated[LogFormat, lower] = Field(
        LogFormat.TEXT, description="Log line format on stdout: text or json; default text."
    )
    db_url: Str = Field(
        "sqlite:///./orchestrator.db",
        description="The store of engines, streams and stats: sqlite:///<path> or "
        "postgresql://user:password@host:port/db (aceorch picks the driver); default sqlite:///./orchestrator.db. "
        "Relative paths are relative to the working directory (/app in the image). The schema is migrated at "
        "start (aceorch db upgrade by hand).",
    )


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



class PoolSettings(Group):
    """How many engines run, when new ones start and when idle ones stop."""

    model_config = ConfigDict(title="Pool, autoscaling and provisioning")

    min_replicas: Annotated[int, INT] = Field(
        1, ge=0, le=1000, description="Engines kept at all times, 0-1000, default 1, <= MAX_REPLICAS."
    )
    min_free_replicas: Annotated[int, INT] = Field(
        1, ge=0, le=1000,
        description="Free (stream-less) engines kept warm so that a new stream need not wait for a start, 0-1000, "
        "default 1, <= MAX_REPLICAS.",
    )
    max_replicas: Annotated[int, INT] = Field(
        20, ge=1, le=1000,
        description="Hard cap on engines (starts in flight included), 1-1000, default 20, >= MIN_REPLICAS.",
    )
    max_active_replicas: Annotated[int, INT] = Field(
        20, ge=1, le=1000,
        description="VPN mode only: size of the VPN port pool and a second cap, 1-1000, default 20, <= size of "
        "PORT_RANGE_HOST.",
    )
    auto_delete: Bool = Field(
        False,
        description="Stop an engine once its last stream has ended and ENGINE_GRACE_PERIOD_S has passed; "
        "default false.",
    )
    engine_grace_period_s: Annotated[int, INT] = Field(
        30, ge=0, le=86400,
        description="Grace period for AUTO_DELETE, so that a stream restarted at once finds its engine, "
        "0-86400 s (0 = at once), default 30.",
    )
    idle_ttl_s: Annotated[int, INT] = Field(
        600, ge=0, le=604800,
        description="Stop any engine without a started stream for this long, 0-604800 s (0 disables), default 600.",
    )
    autoscale_interval_s: Annotated[int, INT] = Field(
        30, ge=1, le=3600,
        description="Autoscaler loop period (how often the pool is brought back to MIN_REPLICAS and "
        "MIN_FREE_REPLICAS), 1-3600 s, default 30.",
    )
    monitor_interval_s: Annotated[int, INT] = Field(
        10, ge=1, le=3600,
        description="Runtime reconcile loop period (how often the runtime and the store are pinged and the engine "
        "list is reconciled with the runtime's containers), 1-3600 s, default 10.",
    )
    max_concurrent_provisions: Annotated[int, INT] = Field(
        5, ge=1, le=100,
        description="Starts in flight across all callers, 1-100, default 5 (extra requests wait, FIFO), so that a "
        "burst of requests does not start every engine at once.",
    )
    min_provision_interval_s: Annotated[float, FLOAT] = Field(
        0.5, ge=0, le=60,
        description="Minimum gap between two starts, spacing a burst out, 0-60 s (float; 0 disables), default 0.5.",
    )
    engines_on_exit: Annotated[Literal["keep", "stop"], lower] = Field(
        "keep",
        description="What a stopping aceorch does with its engines: keep (left running for the next start to "
        "adopt, so live streams survive a restart) or stop (removed within the shutdown deadline); default keep. "
        "`make run` demo mode uses stop; `aceorch engines prune` removes them later.",
    )


class HealthSettings(Group):
    """The engine prober: how often it probes and when an unhealthy engine is replaced."""

    model_config = ConfigDict(title="Health")

    health_check_interval_s: Annotated[int, INT] = Field(
        20, ge=1, le=3600, description="Engine prober period, 1-3600 s, default 20."
    )
    health_failure_threshold: Annotated[int, INT] = Field(
        3, ge=1, le=100,
        description="Consecutive failed probes before an engine is unhealthy, 1-100, default 3 (one slow answer "
        "does not condemn an engine).",
    )
    health_unhealthy_grace_period_s: Annotated[int, INT] = Field(
        60, ge=0, le=86400,
        description="How long an engine stays unhealthy before it is replaced, giving it time to recover, "
        "0-86400 s, default 60.",
    )
    health_replacement_cooldown_s: Annotated[int, INT] = Field(
        60, ge=0, le=86400,
        description="Minimum gap between two replacements, so that a sick host does not churn the whole pool, "
        "0-86400 s, default 60.",
    )
    health_unhealthy_stream_grace_s: Annotated[int, INT] = Field(
        60, ge=0, le=86400,
        description="How long an unhealthy engine that serves streams is kept before it is replaced anyway and "
        "its streams end (engine_unhealthy): a hung engine delivers nothing. Counted from when it became "
        "unhealthy, never shorter than HEALTH_UNHEALTHY_GRACE_PERIOD_S; 0-86400 s, default 60.",
    )


class BreakerSettings(Group):
    """The circuit breakers that stop starting engines while starts keep failing."""

    model_config = ConfigDict(title="Circuit breakers")

    circuit_breaker_failure_threshold: Annotated[int, INT] = Field(
        5, ge=1, le=1000,
        description="Consecutive failed starts that open the general breaker, 1-1000, default 5; while it is open, "
        "provision calls fail at once instead of queueing starts that would fail too.",
    )
    circuit_breaker_recovery_timeout_s: Annotated[int, INT] = Field(
        300, ge=1, le=86400,
        description="How long the general breaker stays open before one trial start, 1-86400 s, default 300.",
    )
    circuit_breaker_replacement_threshold: Annotated[int, INT] = Field(
        3, ge=1, le=1000,
        description="The same threshold for the replacement breaker (starts that replace unhealthy engines), "
        "1-1000, default 3.",
    )
    circuit_breaker_replacement_timeout_s: Annotated[int, INT] = Field(
        180, ge=1, le=86400,
        description="The same recovery timeout for the replacement breaker, 1-86400 s, default 180.",
    )


class StreamSettings(Group):
    """Streams and their stats: how often stats are collected and how long they are kept."""

    model_config = ConfigDict(title="Streams and stats")

    collect_interval_s: Annotated[int, INT] = Field(
        5, ge=1, le=3600,
        description="Stats collection period, 1-3600 s, default 5 (three failures in a row end a stream as stale).",
    )
    stats_history_max: Annotated[int, INT] = Field(
        720, ge=1, le=100000,
        description="Snapshots kept per stream, bounding the memory and rows a long stream takes, 1-100000, "
        "default 720.",
    )
    stream_retention_s: Annotated[int, INT] = Field(
        86400, ge=60, le=31536000,
        description="How long ended streams and their stats are kept, 60-31536000 s, default 86400.",
    )
    stream_unattached_ttl_s: Annotated[int, INT] = Field(
        3600, ge=1, le=31536000,
        description="How long a started stream on an engine aceorch does not manage is kept before it is ended "
        "(reason unattached_expired) and forgotten, so that made-up stream events cannot pile up, 1-31536000 s, "
        "default 3600.",
    )
    max_unattached_streams: Annotated[int, INT] = Field(
        1000, ge=0, le=1000000,
        description="Most started streams on engines aceorch does not manage; one more is refused with 429 "
        "until one expires (STREAM_UNATTACHED_TTL_S), bounding the memory spoofed events can take, 0-1000000 "
        "(0 refuses them all), default 1000.",
    )


class VpnSettings(Group):
    """VPN mode: engines behind a Gluetun container, and how aceorch watches its tunnel."""

    model_config = ConfigDict(title="VPN (Gluetun)")

    gluetun_container_name: Str | None = Field(
        None,
        description="Setting it turns VPN mode on (engines join this container's network namespace; needs the "
        "Docker runtime); default unset. docker-compose.gluetun.yml sets it to gluetun for the orchestrator.",
    )
    gluetun_api_port: Annotated[int, INT] = Field(
        8000, ge=1, le=65535,
        description="Port of Gluetun's control server, 1-65535, default 8000, not a VPN pool port.",
    )
    gluetun_api_url: Str | None = Field(
        None,
        description="Base URL of the control server (absolute http(s) URL), default unset: "
        "http://<GLUETUN_CONTAINER_NAME>:<GLUETUN_API_PORT> if that name resolves, else the container's IP from "
        "Docker.",
    )
    gluetun_api_key: SecretStr | None = Field(
        None,
        description="Sent as X-API-Key to the control server (Gluetun >= v3.39.1), default unset. Never logged.",
    )
    gluetun_health_check_interval_s: Annotated[int, INT] = Field(
        5, ge=1, le=3600, description="VPN monitor period, 1-3600 s, default 5."
    )
    gluetun_port_cache_ttl_s: Annotated[int, INT] = Field(
        60, ge=1, le=86400,
        description="How long the forwarded port is cached, sparing the control server a call per read, "
        "1-86400 s, default 60.",
    )
    gluetun_startup_wait_s: Annotated[int, INT] = Field(
        60, ge=0, le=3600,
        description="Bounded wait at start for a healthy VPN before the minimum pool is created, 0-3600 s, "
        "default 60.",
    )
    vpn_restart_engines_on_reconnect: Bool = Field(
        True,
        description="After a VPN recovery, restart the engines created before it, whose connections went through "
        "the old tunnel; default true.",
    )
    vpn_recovery_stabilize_s: Annotated[int, INT] = Field(
        30, ge=0, le=3600,
        description="How long the VPN must stay healthy before those restarts, so that a flapping tunnel does not "
        "restart engines on every blip, 0-3600 s, default 30.",
    )

    gluetun_container_names: Str | None = Field(
        None,
        description="Several VPNs: comma-separated Gluetun container names (gluetun-a,gluetun-b); each new engine "
        "joins the healthy one with the fewest engines, and provisioning goes on while any is up; default unset "
        "(the one VPN of GLUETUN_CONTAINER_NAME). When both are set, this list wins.",
    )
    gluetun_port_ranges: Str | None = Field(
        None,
        description="Host port range of each VPN's engines, comma-separated A-B in the order of "
        "GLUETUN_CONTAINER_NAMES, each published by its Gluetun; default unset (PORT_RANGE_HOST split into equal "
        "parts, one per VPN).",
    )
    gluetun_api_urls: Str | None = Field(
        None,
        description="Control server base URL of each VPN, comma-separated in the order of GLUETUN_CONTAINER_NAMES; "
        "an empty item falls back to http://<name>:<GLUETUN_API_PORT> or the container's IP; default unset.",
    )
    gluetun_api_keys: SecretStr | None = Field(
        None,
        description="X-API-Key of each VPN's control server, comma-separated in the order of "
        "GLUETUN_CONTAINER_NAMES; an empty item uses GLUETUN_API_KEY; default unset. Never logged.",
    )
    vpn_unhealthy_restart_timeout_s: Annotated[int, INT] = Field(
        120, ge=0, le=86400,
        description="A Gluetun container unhealthy (or stopped) this long is restarted through the runtime, and "
        "its engines after it, 0-86400 s, default 120; 0 never restarts it. At most one restart per "
        "VPN_RESTART_WINDOW_S, so a broken tunnel is never restarted in a loop.",
    )
    vpn_restart_window_s: Annotated[int, INT] = Field(
        900, ge=1, le=86400,
        description="The Gluetun restart breaker: after a forced restart, another failure within this window is "
        "recorded but not restarted again, 1-86400 s, default 900.",
    )

    @property
    def names(self) -> list[str]:
        """The Gluetun container names: GLUETUN_CONTAINER_NAMES, else GLUETUN_CONTAINER_NAME, else none."""
        if self.gluetun_container_names:
            return [n.strip() for n in self.gluetun_container_names.split(",") if n.strip()]
        return [self.gluetun_container_name] if self.gluetun_container_name else []

    @property
    def enabled(self) -> bool:
        """VPN mode is on when ``GLUETUN_CONTAINER_NAME`` or ``GLUETUN_CONTAINER_NAMES`` is set."""
        return bool(self.names)

    def port_ranges(self, host_range: PortRange) -> list[PortRange]:
        """Each VPN's host port range: GLUETUN_PORT_RANGES, else ``host_range`` split into equal parts."""
        names = self.names
        if self.gluetun_port_ranges:
            return [PortRange.parse(r) for r in self.gluetun_port_ranges.split(",")]
        if len(names) <= 1:
            return [host_range]
        size = len(host_range) // len(names)
        return [PortRange(host_range.start + i * size, host_range.start + (i + 1) * size - 1)
                for i in range(len(names))]

    def api_urls(self) -> list[str | None]:
        """Each VPN's control server URL (None: resolve it from the container)."""
        names = self.names
        if self.gluetun_api_urls and len(names) > 1:
            items = [u.strip() or None for u in self.gluetun_api_urls.split(",")]
            return (items + [None] * len(names))[: len(names)]
        return [self.gluetun_api_url] * len(names) if len(names) <= 1 else [None] * len(names)

    def api_keys(self) -> list[SecretStr | None]:
        """Each VPN's control server key (GLUETUN_API_KEY where none is given)."""
        names = self.names
        if self.gluetun_api_keys and len(names) > 1:
            items = [SecretStr(k.strip()) if k.strip() else self.gluetun_api_key
                     for k in self.gluetun_api_keys.get_secret_value().split(",")]
            return (items + [self.gluetun_api_key] * len(names))[: len(names)]
        return [self.gluetun_api_key] * len(names)

    @model_validator(mode="after")
    def _lists_line_up(self) -> VpnSettings:
        names = self.names
        if len(set(names)) != len(names):
            raise ValueError("GLUETUN_CONTAINER_NAMES: names must be distinct")
        for var, value in (("GLUETUN_PORT_RANGES", self.gluetun_port_ranges),
                           ("GLUETUN_API_URLS", self.gluetun_api_urls)):
            if value and len(value.split(",")) != len(names):
                raise ValueError(f"{var}: needs one item per name of GLUETUN_CONTAINER_NAMES ({len(names)})")
        ranges = self.port_ranges(PortRange(1, 65535))
        for i, a in enumerate(ranges):
            for b in ranges[i + 1:]:
                if a.overlaps(b):
                    raise ValueError(f"GLUETUN_PORT_RANGES: {a} and {b} overlap")
        return self


class DebugSettings(Group):
    """Debug mode: JSONL session files recording what the orchestrator did, and the stress detectors."""

    model_config = ConfigDict(title="Debug mode (JSONL session files)")

    debug_mode: Bool = Field(
        False,
        description="Start a debug session at start (then `docker-compose restart orchestrator`); default false.",
    )
    debug_log_dir: Str = Field(
        "./debug_logs",
        description="Where the session files go (created 0700, files 0600), default ./debug_logs. Under "
        "docker-compose keep ./debug_logs: that is the folder bind-mounted from the host.",
    )
    debug_log_retention_days: Annotated[int, INT] = Field(
        7, ge=0, le=3650,
        description="Session files older than this are deleted, 0-3650 days (0 keeps everything), default 7.",
    )
    debug_log_max_mb: Annotated[int, INT] = Field(
        512, ge=1, le=1048576,
        description="Cap on the size of the session files, 1-1048576 MB (oldest sessions go first), default 512.",
    )
    debug_flush_interval_ms: Annotated[int, INT] = Field(
        200, ge=10, le=1000, description="Background writer flush period, 10-1000 ms, default 200."
    )
    debug_slow_provisioning_ratio: Annotated[float, FLOAT] = Field(
        0.7, gt=0, le=1,
        description="Stress slow_provisioning fires above this ratio x STARTUP_TIMEOUT_S, 0 < r <= 1, default 0.7.",
    )
    debug_unhealthy_ratio: Annotated[float, FLOAT] = Field(
        0.3, ge=0, lt=1,
        description="Stress high_unhealthy_engines fires when unhealthy / total > r, 0 <= r < 1, default 0.3.",
    )


class ProxySettings(Group):
    """The built-in stream proxy: /ace/getstream fans one engine session out to many viewers."""

    model_config = ConfigDict(title="Stream proxy")

    proxy_buffer_mb: Annotated[float, FLOAT] = Field(
        8, gt=0, le=1024,
        description="Size of each stream's fan-out buffer, shared by all its viewers (a viewer further behind "
        "jumps to the live edge), 0 < MB <= 1024, default 8.",
    )
    proxy_client_stall_s: Annotated[float, FLOAT] = Field(
        15, gt=0, le=3600,
        description="A viewer that accepts no bytes for this long is disconnected (reason client_stalled), so "
        "that dead players do not hold streams open, 0 < s <= 3600, default 15.",
    )
    proxy_linger_s: Annotated[float, FLOAT] = Field(
        10, ge=0, le=3600,
        description="How long a stream's engine session is kept after its last viewer left, so that zapping back "
        "is instant; then it is stopped (reason no_viewers), 0-3600 s, default 10.",
    )
    proxy_upstream_stall_s: Annotated[float, FLOAT] = Field(
        10, gt=0, le=600,
        description="An engine stream that sends nothing for this long is retried once on the same engine, then "
        "moved to another engine, 0 < s <= 600, default 10.",
    )
    proxy_health_watch_s: Annotated[float, FLOAT] = Field(
        2, gt=0, le=60,
        description="How often the standalone proxy reads GET /engines, while it has streams, to move them off "
        "engines the orchestrator marked unhealthy or unreachable, 0 < s <= 60, default 2. The embedded proxy is "
        "notified at once and does not poll.",
    )
    proxy_upstream_start_timeout_s: Annotated[float, FLOAT] = Field(
        30, gt=0, le=600,
        description="How long the engine may take to answer a stream start and send its first bytes (an engine "
        "without peers holds the request open), 0 < s <= 600, default 30.",
    )
    max_streams_per_engine: Annotated[int, INT] = Field(
        1, ge=1, le=100,
        description="Most live proxy streams (different contents) on one engine; a new channel with every engine "
        "full provisions another, 1-100, default 1 (as acexy).",
    )
    proxy_api_key: SecretStr | None = Field(
        None,
        description="When set, the proxy routes (/ace/getstream, /ace/status) require ?token=<this key>, since "
        "players cannot send headers; default unset (open). Never logged (shown as ***).",
    )
    proxy_hls_cache_segments: Annotated[int, INT] = Field(
        12, ge=3, le=200,
        description="HLS segments (about 2 s each) kept in memory per stream and served to every HLS viewer; the "
        "playlist lists the newest 6 of them, 3-200, default 12.",
    )
    playlist_file: str | None = Field(
        None,
        description="An M3U of acestream:// links or content ids that GET /playlist.m3u rewrites into proxy URLs "
        "(names and tvg-* attributes kept); default unset (POST the M3U instead).",
    )
    proxy_port: Annotated[int, INT] = Field(
        8001, ge=1, le=65535,
        description="Listen port of the standalone proxy (aceorch proxy), 1-65535, default 8001; the embedded proxy "
        "uses APP_PORT.",
    )
    proxy_debug_log_dir: str | None = Field(
        None,
        description="Debug-log folder of the standalone proxy (aceorch proxy) when DEBUG_MODE is on: its own session "
        "files (requests, engine_selection, provisioning, streams, clients, stress) go there; default unset "
        "(DEBUG_LOG_DIR). The embedded proxy writes into the orchestrator's session instead.",
    )

    @property
    def buffer_bytes(self) -> int:
        """PROXY_BUFFER_MB in bytes, a whole number of 188-byte packets."""
        return max(188, int(self.proxy_buffer_mb * (1 << 20)) // 188 * 188)

    def api_key_value(self) -> str | None:
        """PROXY_API_KEY in clear, or None when the proxy routes are open."""
        return self.proxy_api_key.get_secret_value() if self.proxy_api_key else None
