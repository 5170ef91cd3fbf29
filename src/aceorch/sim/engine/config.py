"""The engine simulator's configuration: :class:`EngineConfig`, parsed from the environment and flags.

:func:`load_config` reads ``CONF`` (the real engine's flag lines), ``HTTP_PORT``, ``HTTPS_PORT``, ``P2P_PORT``,
``BIND_ALL`` and the ``SIM_*`` variables; a command-line flag beats its variable, and an empty value counts
as unset. A bad value raises :class:`~aceorch.sim._common.ConfigError` naming the variable.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from aceorch.sim._common import ConfigError, parse_bool, parse_float, parse_int, parse_port
from aceorch.sim.engine.content import parse_content_modes

__all__ = ["DEFAULT_HTTP_PORT", "ENGINE_MODES", "EngineConfig", "load_config"]

DEFAULT_HTTP_PORT = 6878
#: Engine-wide modes: answer normally, hang every request, hang only ``/ace/*`` and ``/content/*``,
#: reset every connection, or answer 503.
ENGINE_MODES = ("ok", "hang", "hang_ace", "reset", "503")


@dataclass
class EngineConfig:
    """The simulator's configuration, from the environment (``CONF``, ``HTTP_PORT``, ``SIM_*``) and flags."""

    http_port: int = DEFAULT_HTTP_PORT
    https_port: int | None = None
    p2p_port: int | None = None
    bind_all: bool = False
    ignored_flags: list[str] = field(default_factory=list)
    host: str = "0.0.0.0"
    startup_delay_s: float = 0.0
    engine_mode: str = "ok"
    hang_after_s: float | None = None
    fail_start: int | None = None
    crash_after_s: float | None = None
    time_to_dl_s: float | None = None
    """Explicit ``SIM_TIME_TO_DL_S``; None means the built-in 9 s times ``time_scale``."""
    content_modes: dict[str, str] = field(default_factory=dict)
    playlist_delay_s: float = 0.0
    session_idle_s: float = 60.0
    max_sessions: int = 0
    time_scale: float = 1.0
    log_requests: bool = False
    cache_dir: str | None = None
    """``SIM_CACHE_DIR``; None means a temporary directory made on first use."""
    cache_limit_mb: int = 64
    stream_kbps: float | None = None
    """``SIM_STREAM_KBPS``: playback rate in kilobytes (1000 bytes) per second; None keeps the built-in ~263."""
    media_file: str | None = None
    """``SIM_MEDIA_FILE``: an MPEG-TS file played in a loop instead of synthetic packets."""


def _parse_conf(raw: str) -> tuple[int | None, int | None, bool, list[str]]:
    """``CONF``: one engine flag per line (a literal ``\\n`` also separates, as some env files write it)."""
    http_port: int | None = None
    https_port: int | None = None
    bind_all = False
    ignored: list[str] = []
    for line in raw.replace("\\n", "\n").splitlines():
        flag = line.strip()
        if not flag:
            continue
        key, sep, value = flag.partition("=")
        if key == "--http-port" and sep:
            http_port = parse_port("CONF", value)
        elif key == "--https-port" and sep:
            https_port = parse_port("CONF", value)
        elif flag == "--bind-all":
            bind_all = True
        else:
            ignored.append(flag)
    return http_port, https_port, bind_all, ignored


def load_config(env: Mapping[str, str], flags: Mapping[str, str] | None = None) -> EngineConfig:
    """Build the configuration; ``flags`` maps variable names to command-line values, which win over ``env``.

    Empty values count as unset (compose files often pass ``VAR=``). Raises :class:`ConfigError`.
    """
    flags = flags or {}

    def get(name: str) -> str | None:
        value = flags.get(name, env.get(name))
        return value if value not in (None, "") else None

    cfg = EngineConfig()
    conf_http, conf_https, conf_bind_all, cfg.ignored_flags = _parse_conf(get("CONF") or "")
    env_http = get("HTTP_PORT")
    if "HTTP_PORT" in flags and flags["HTTP_PORT"]:
        cfg.http_port = parse_port("HTTP_PORT", flags["HTTP_PORT"])
    elif conf_http is not None:
        cfg.http_port = conf_http
    elif env_http is not None:
        cfg.http_port = parse_port("HTTP_PORT", env_http)
    env_https = get("HTTPS_PORT")
    if "HTTPS_PORT" in flags and flags["HTTPS_PORT"]:
        cfg.https_port = parse_port("HTTPS_PORT", flags["HTTPS_PORT"])
    elif conf_https is not None:
        cfg.https_port = conf_https
    elif env_https is not None:
        cfg.https_port = parse_port("HTTPS_PORT", env_https)
    if (value := get("P2P_PORT")) is not None:
        cfg.p2p_port = parse_port("P2P_PORT", value)
    bind_all_value = get("BIND_ALL")
    cfg.bind_all = conf_bind_all or (bind_all_value is not None and parse_bool("BIND_ALL", bind_all_value))
    if (value := get("SIM_HOST")) is not None:
        cfg.host = value.strip()
    if (value := get("SIM_STARTUP_DELAY_S")) is not None:
        cfg.startup_delay_s = parse_float("SIM_STARTUP_DELAY_S", value)
    if (value := get("SIM_HANG")) is not None:
        if value.strip().lower() == "ace":
            cfg.engine_mode = "hang_ace"
        else:
            try:
                cfg.engine_mode = "hang" if parse_bool("SIM_HANG", value) else "ok"
            except ConfigError:
                raise ConfigError(
                    "SIM_HANG", f"expected 1/true (all endpoints), ace or 0/false, got {value!r}"
                ) from None
    if (value := get("SIM_HANG_AFTER_S")) is not None:
        cfg.hang_after_s = parse_float("SIM_HANG_AFTER_S", value)
    if (value := get("SIM_FAIL_START")) is not None:
        stripped = value.strip()
        if stripped.isdigit():
            code = parse_int("SIM_FAIL_START", stripped, minimum=0, maximum=255)
            cfg.fail_start = code or None
        else:
            try:
                cfg.fail_start = 1 if parse_bool("SIM_FAIL_START", value) else None
            except ConfigError:
                raise ConfigError(
                    "SIM_FAIL_START", f"expected an exit status 1-255 or a boolean, got {value!r}"
                ) from None
    if (value := get("SIM_CRASH_AFTER_S")) is not None:
        cfg.crash_after_s = parse_float("SIM_CRASH_AFTER_S", value)
    if (value := get("SIM_TIME_TO_DL_S")) is not None:
        cfg.time_to_dl_s = parse_float("SIM_TIME_TO_DL_S", value)
    if (value := get("SIM_CONTENT_MODES")) is not None:
        cfg.content_modes = parse_content_modes("SIM_CONTENT_MODES", value)
    if (value := get("SIM_PLAYLIST_DELAY_S")) is not None:
        cfg.playlist_delay_s = parse_float("SIM_PLAYLIST_DELAY_S", value)
    if (value := get("SIM_SESSION_IDLE_S")) is not None:
        cfg.session_idle_s = parse_float("SIM_SESSION_IDLE_S", value)
    if (value := get("SIM_MAX_SESSIONS")) is not None:
        cfg.max_sessions = parse_int("SIM_MAX_SESSIONS", value, minimum=0)
    if (value := get("SIM_TIME_SCALE")) is not None:
        cfg.time_scale = parse_float("SIM_TIME_SCALE", value)
    if (value := get("SIM_LOG_REQUESTS")) is not None:
        cfg.log_requests = parse_bool("SIM_LOG_REQUESTS", value)
    if (value := get("SIM_CACHE_DIR")) is not None:
        cfg.cache_dir = value.strip()
    if (value := get("SIM_CACHE_LIMIT_MB")) is not None:
        cfg.cache_limit_mb = parse_int("SIM_CACHE_LIMIT_MB", value, minimum=0)
    if (value := get("SIM_STREAM_KBPS")) is not None:
        cfg.stream_kbps = parse_float("SIM_STREAM_KBPS", value)
        if cfg.stream_kbps <= 0:
            raise ConfigError("SIM_STREAM_KBPS", f"expected a rate above 0 kilobytes per second, got {value!r}")
    if (value := get("SIM_MEDIA_FILE")) is not None:
        cfg.media_file = value.strip()
        try:
            with open(cfg.media_file, "rb") as fh:
                head = fh.read(188 * 4)
        except OSError as exc:
            raise ConfigError("SIM_MEDIA_FILE", f"cannot read {cfg.media_file!r}: {exc.strerror}") from None
        if len(head) < 188 or 0x47 not in head[:188]:
            raise ConfigError("SIM_MEDIA_FILE", f"{cfg.media_file!r} is not an MPEG-TS file")
    return cfg
