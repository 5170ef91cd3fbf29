"""The ``api`` group: the service process's address, access, logs and store."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import ConfigDict, Field, SecretStr

from aceorch.config.groups.base import Group
from aceorch.config.types import FLOAT, INT, Bool, LogFormat, LogLevel, Str, lower, upper

__all__ = ["ApiSettings"]


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
