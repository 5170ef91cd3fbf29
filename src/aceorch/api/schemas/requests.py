"""The API's request bodies: provisioning, and the stream events proxies send.

Unknown fields of a provision body are refused (422); the stream events proxies send ignore them, so that a
newer proxy's extra fields do not break its events. Label and env values that are booleans or numbers become strings
(``true``/``false``, ``3``); anything else that is not a string, and any non-finite number, fails validation.

A provision body is also checked here for what needs no settings: at most 64 labels, keys of 1-128 and values of
at most 1,024 characters; label keys under ``aceorch.``, ``host.``, ``acestream.`` and ``com.docker.`` are
reserved (aceorch and Docker write those); env names of the deny-list (names that change how a program loads or
runs: ``LD_*``, ``PYTHON*``, ``PATH``, ``BROWSER``, ...) are refused whatever ``ENGINE_ENV_ALLOW`` says; env values
hold no NUL and no line break, except ``CONF``, whose lines must each be an ``--option``. The checks that depend on
the settings live in :mod:`aceorch.api.policy`.
"""

from __future__ import annotations

import math
import re
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator

__all__ = [
    "ProvisionAceBody",
    "ProvisionGenericBody",
    "EngineRef",
    "StreamRef",
    "SessionRef",
    "StreamStartedBody",
    "StreamEndedBody",
    "EngineHealthReportBody",
    "env_denied",
    "DENIED_ENV",
    "RESERVED_LABEL_PREFIXES",
    "MAX_LABEL_VALUE",
]

ENV_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
#: The longest label value, in characters.
MAX_LABEL_VALUE = 1024
#: Label key prefixes aceorch and Docker write; a client may not set them.
RESERVED_LABEL_PREFIXES = ("aceorch.", "host.", "acestream.", "com.docker.")
#: Env names that change how a program loads or runs (matched case-insensitively; ``*`` ends a prefix).
DENIED_ENV = (
    "LD_*", "PYTHON*", "PATH", "BROWSER", "PERL5*", "PERLLIB", "PERLIO*", "BASH_ENV", "BASH_FUNC_*", "ENV", "IFS",
    "SHELLOPTS", "BASHOPTS", "PS4", "PROMPT_COMMAND", "CDPATH", "HOME", "SHELL", "TMPDIR", "NODE_OPTIONS",
    "NODE_PATH", "RUBYOPT", "RUBYLIB", "JAVA_TOOL_OPTIONS", "_JAVA_OPTIONS", "JDK_JAVA_OPTIONS", "GCONV_PATH",
    "GLIBC_TUNABLES", "MALLOC_*", "HOSTALIASES", "LOCALDOMAIN", "RES_OPTIONS", "NLSPATH", "LOCPATH",
    "SSLKEYLOGFILE", "OPENSSL_CONF", "OPENSSL_ENGINES", "PAGER", "EDITOR", "VISUAL", "LESSOPEN", "LESSCLOSE",
    "GIT_*", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY",
)


def env_denied(name: str) -> bool:
    """Whether an env name is on the deny-list (always refused)."""
    upper = name.upper()
    return any(upper.startswith(p[:-1]) if p.endswith("*") else upper == p for p in DENIED_ENV)


def _stringify(value: Any) -> Any:
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for k, v in value.items():
            if isinstance(v, bool):
                out[k] = "true" if v else "false"
            elif isinstance(v, float) and not math.isfinite(v):
                out[k] = v  # inf and NaN fail validation as non-strings
            elif isinstance(v, (int, float, str)):
                out[k] = str(v)
            else:
                out[k] = v  # null, arrays, objects fail validation as non-strings
        return out
    return value


StrMap = Annotated[dict[str, str], BeforeValidator(_stringify), Field(max_length=64)]


def _check_label_keys(value: dict[str, str]) -> dict[str, str]:
    for key, item in value.items():
        if not 1 <= len(key) <= 128:
            raise ValueError("label keys must be 1-128 characters")
        if len(item) > MAX_LABEL_VALUE:
            raise ValueError(f"label {key!r}: values are at most {MAX_LABEL_VALUE} characters")
    return value


def _check_provision_labels(value: dict[str, str]) -> dict[str, str]:
    _check_label_keys(value)
    for key in value:
        if key.lower().startswith(RESERVED_LABEL_PREFIXES):
            raise ValueError(f"label key {key!r} is reserved: keys under {', '.join(RESERVED_LABEL_PREFIXES)} "
                             "are written by aceorch and Docker")
        if "\0" in key:
            raise ValueError("label keys hold no NUL")
    return value


def _check_env(value: dict[str, str]) -> dict[str, str]:
    for key, item in value.items():
        if not ENV_KEY.match(key):
            raise ValueError(f"env key {key!r} must match [A-Za-z_][A-Za-z0-9_]*")
        if env_denied(key):
            raise ValueError(f"env name {key!r} is refused: it changes how programs load or run")
        if "\0" in item:
            raise ValueError(f"env {key!r}: values hold no NUL")
        if key == "CONF":
            bad = [line for line in item.splitlines() if line.strip() and not line.strip().startswith("--")]
            if bad or "\r" in item:
                raise ValueError("env CONF: one --option per line")
        elif "\n" in item or "\r" in item:
            raise ValueError(f"env {key!r}: values hold no line break")
    return value


def _port_key(value: str) -> str:
    if not 1 <= int(value.split("/", 1)[0]) <= 65535:
        raise ValueError("container ports are 1-65535")
    return value


class ProvisionAceBody(BaseModel):
    """``POST /provision/acestream``: the image, labels, env and optional fixed host port of one engine."""

    model_config = ConfigDict(extra="forbid")

    image: Annotated[str, Field(min_length=1, max_length=255, pattern=r"^\S+$")] | None = None
    labels: StrMap = Field(default_factory=dict)
    env: StrMap = Field(default_factory=dict)
    host_port: Annotated[int, Field(ge=1, le=65535)] | None = None

    _labels = field_validator("labels")(_check_provision_labels)
    _env = field_validator("env")(_check_env)


class ProvisionGenericBody(BaseModel):
    """``POST /provision``: a generic managed container's image, labels, env, ports and name prefix."""

    model_config = ConfigDict(extra="forbid")

    image: Annotated[str, Field(min_length=1, max_length=255, pattern=r"^\S+$")] | None = None
    labels: StrMap = Field(default_factory=dict)
    env: StrMap = Field(default_factory=dict)
    ports: dict[Annotated[str, Field(pattern=r"^\d{1,5}/(tcp|udp)$"), AfterValidator(_port_key)],
                Annotated[int, Field(ge=1, le=65535)] | None] = Field(default_factory=dict)
    name_prefix: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_.-]{0,31}$")] = "svc"

    _labels = field_validator("labels")(_check_provision_labels)
    _env = field_validator("env")(_check_env)


class EngineRef(BaseModel):
    """The engine a proxy used, by address."""

    model_config = ConfigDict(extra="ignore")
    host: Annotated[str, Field(min_length=1, max_length=253)]
    port: Annotated[int, Field(ge=1, le=65535)]


class StreamRef(BaseModel):
    """What a stream plays: a content id, infohash, URL or magnet."""

    model_config = ConfigDict(extra="ignore")
    key_type: Literal["content_id", "infohash", "url", "magnet"]
    key: Annotated[str, Field(min_length=1, max_length=256)]


URL_OR_EMPTY = r"^(|https?://\S+)$"


class SessionRef(BaseModel):
    """The engine's playback session: its id, stat and command URLs, and whether it is live."""

    model_config = ConfigDict(extra="ignore")
    playback_session_id: Annotated[str, Field(min_length=1, max_length=256)]
    stat_url: Annotated[str, Field(pattern=URL_OR_EMPTY, max_length=2048)] = ""
    command_url: Annotated[str, Field(pattern=URL_OR_EMPTY, max_length=2048)] = ""
    is_live: bool | Literal[0, 1] = 1


class StreamStartedBody(BaseModel):
    """``POST /events/stream_started``: the engine, stream and session a proxy started, and its labels."""

    model_config = ConfigDict(extra="ignore")
    container_id: str | None = None
    engine: EngineRef
    stream: StreamRef
    session: SessionRef
    labels: StrMap = Field(default_factory=dict)

    @field_validator("labels")
    @classmethod
    def _stream_id(cls, value: dict[str, str]) -> dict[str, str]:
        _check_label_keys(value)
        sid = value.get("stream_id")
        if sid is not None and not 1 <= len(sid) <= 256:
            raise ValueError("stream_id label must be 1-256 characters")
        return value


class StreamEndedBody(BaseModel):
    """``POST /events/stream_ended``: the stream (or every stream of an engine) a proxy ended, and why."""

    model_config = ConfigDict(extra="ignore")
    container_id: Annotated[str, Field(max_length=256)] | None = None
    stream_id: Annotated[str, Field(min_length=1, max_length=256)] | None = None
    reason: Annotated[str, Field(max_length=128)] | None = None

    @model_validator(mode="after")
    def _one_of(self) -> StreamEndedBody:
        if not self.stream_id and not self.container_id:
            raise ValueError("stream_id or container_id is required")
        return self


class EngineHealthReportBody(BaseModel):
    """``POST /engines/{id}/health-report``: a proxy saw the engine hang under a live stream, and why."""

    model_config = ConfigDict(extra="ignore")
    reason: Annotated[str, Field(min_length=1, max_length=500, description="what the proxy saw")]
    request_id: Annotated[str, Field(min_length=1, max_length=128,
                                     description="the viewer request the report comes from")] | None = None
