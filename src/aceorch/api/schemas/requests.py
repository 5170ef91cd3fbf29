"""The API's request bodies: provisioning, and the stream events proxies send.

Bodies ignore unknown fields; label and env values that are booleans or numbers become strings
(``true``/``false``, ``3``), and anything else that is not a string fails validation.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator

__all__ = [
    "ProvisionAceBody",
    "ProvisionGenericBody",
    "EngineRef",
    "StreamRef",
    "SessionRef",
    "StreamStartedBody",
    "StreamEndedBody",
]

ENV_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _stringify(value: Any) -> Any:
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for k, v in value.items():
            if isinstance(v, bool):
                out[k] = "true" if v else "false"
            elif isinstance(v, (int, float, str)):
                out[k] = str(v)
            else:
                out[k] = v  # null, arrays, objects fail validation as non-strings
        return out
    return value


StrMap = Annotated[dict[str, str], BeforeValidator(_stringify), Field(max_length=64)]


def _check_label_keys(value: dict[str, str]) -> dict[str, str]:
    for key in value:
        if not 1 <= len(key) <= 128:
            raise ValueError("label keys must be 1-128 characters")
    return value


def _check_env_keys(value: dict[str, str]) -> dict[str, str]:
    for key in value:
        if not ENV_KEY.match(key):
            raise ValueError(f"env key {key!r} must match [A-Za-z_][A-Za-z0-9_]*")
    return value


class ProvisionAceBody(BaseModel):
    """``POST /provision/acestream``: the image, labels, env and optional fixed host port of one engine."""

    model_config = ConfigDict(extra="ignore")

    image: Annotated[str, Field(min_length=1, max_length=255, pattern=r"^\S+$")] | None = None
    labels: StrMap = Field(default_factory=dict)
    env: StrMap = Field(default_factory=dict)
    host_port: Annotated[int, Field(ge=1, le=65535)] | None = None

    _labels = field_validator("labels")(_check_label_keys)
    _env = field_validator("env")(_check_env_keys)


class ProvisionGenericBody(BaseModel):
    """``POST /provision``: a generic managed container's image, labels, env, ports and name prefix."""

    model_config = ConfigDict(extra="ignore")

    image: Annotated[str, Field(min_length=1, max_length=255, pattern=r"^\S+$")] | None = None
    labels: StrMap = Field(default_factory=dict)
    env: StrMap = Field(default_factory=dict)
    ports: dict[Annotated[str, Field(pattern=r"^\d{1,5}/(tcp|udp)$")],
                Annotated[int, Field(ge=1, le=65535)] | None] = Field(default_factory=dict)
    name_prefix: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_.-]{0,31}$")] = "svc"

    _labels = field_validator("labels")(_check_label_keys)
    _env = field_validator("env")(_check_env_keys)


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
