"""``aceorch serve``: read the settings once, set up logging, and run the API with uvicorn."""

from __future__ import annotations

import json
import logging
import os
import sys
from typing import Any

import typer

from aceorch.aiokits import request_id_var, trace_id_var
from aceorch.config import Settings, load_settings
from aceorch.errors import ConfigError
from aceorch.models import format_time

__all__ = ["serve", "setup_logging"]


class _ContextFilter(logging.Filter):
    """Stamps each record with the current request and trace ids."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id_var.get()
        record.trace_id = trace_id_var.get()
        return True


class JsonFormatter(logging.Formatter):
    """Formats log records as one JSON object a line (``LOG_FORMAT=json``), with the request's ids."""

    def format(self, record: logging.LogRecord) -> str:
        """The record as a JSON line: time, level, logger, message, request and trace ids, traceback."""
        from datetime import UTC, datetime

        body: dict[str, Any] = {
            "timestamp": format_time(datetime.fromtimestamp(record.created, UTC)),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        rid = getattr(record, "request_id", None)
        if rid:
            body["request_id"] = rid
            body["trace_id"] = getattr(record, "trace_id", None)
        if record.exc_info:
            body["exc_info"] = self.formatException(record.exc_info)
        return json.dumps(body)


def setup_logging(settings: Settings) -> None:
    """Send every log record to stdout in the configured format and level, quieting chatty libraries."""
    handler = logging.StreamHandler(sys.stdout)
    handler.addFilter(_ContextFilter())
    if settings.api.log_format.value == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.api.log_level.value)
    # The "Debug mode enabled" line is logged even when LOG_LEVEL is above INFO.
    logging.getLogger("aceorch.debuglog").setLevel(logging.INFO)
    for noisy in ("uvicorn.access", "httpx", "httpcore", "aiodocker"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))


def preflight(settings: Settings) -> list[str]:
    """Start-time checks that need the runtime choice: VPN mode needs Docker; ENGINE_COMMAND must exist."""
    import asyncio
    import shlex
    import shutil

    from aceorch.runtime.factory import make_runtime

    async def resolve() -> str:
        runtime = await make_runtime(settings)
        try:
            return runtime.name
        finally:
            await runtime.aclose()

    factory_log = logging.getLogger("aceorch.runtime.factory")
    previous = factory_log.disabled
    factory_log.disabled = True  # the service logs its runtime choice once, when it starts
    try:
        kind = asyncio.run(resolve())
    finally:
        factory_log.disabled = previous
    problems: list[str] = []
    if settings.vpn_enabled and kind == "process":
        problems.append(
            f"config error: GLUETUN_CONTAINER_NAME={settings.vpn.gluetun_container_name!r} needs the Docker runtime, "
            f"but RUNTIME={settings.runtime.kind.value} resolved to the process runtime (no Docker engine answers)"
        )
    if kind == "process":
        words = shlex.split(settings.runtime.engine_command)
        if not words or shutil.which(words[0]) is None:
            problems.append(
                f"config error: ENGINE_COMMAND={settings.runtime.engine_command!r}: "
                "its first word must be an executable"
            )
    return problems


def serve(env_file: str = typer.Option(".env", help="the .env file to read, if present")) -> None:
    """Run the orchestrator in the foreground (APP_HOST:APP_PORT)."""
    try:
        settings = load_settings(env_file)
    except ConfigError as exc:
        for line in exc.lines:
            typer.echo(line, err=True)
        raise typer.Exit(2) from None
    setup_logging(settings)
    problems = preflight(settings)
    if problems:
        for line in problems:
            typer.echo(line, err=True)
        raise typer.Exit(2)
    if os.environ.get("ACEORCH_DEMO") == "1":
        logging.getLogger("aceorch").info(
            "demo: TARGET_IMAGE is not set, so engines are the bundled simulator "
            "(aceorch/engine-sim:latest under Docker, ENGINE_COMMAND under the process runtime)"
        )
    import uvicorn

    from aceorch.api import create_app

    app = create_app(settings)
    uvicorn.run(
        app,
        host=settings.api.app_host,
        port=settings.api.app_port,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=5,
    )
