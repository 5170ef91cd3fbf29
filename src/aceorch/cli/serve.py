"""``aceorch serve``: read the settings once, set up logging, bind the port, then run the API with uvicorn.

The listening socket is bound before anything touches Docker, the store or the debug folder, so that a second
instance on a taken port leaves no trace: one line on stderr and exit status 2. With no ``API_KEY`` the socket is
bound to 127.0.0.1 unless ``ALLOW_UNAUTHENTICATED=true``.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import socket
import sys
from typing import Any

import typer

from aceorch.aiokits import request_id_var, trace_id_var
from aceorch.config import Settings, load_settings
from aceorch.errors import ConfigError
from aceorch.models import format_time

__all__ = ["serve", "setup_logging", "listen_host", "bind_socket"]


class _ContextFilter(logging.Filter):
    """Stamps each record with the current request and trace ids."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id_var.get()
        record.trace_id = trace_id_var.get()
        return True


class JsonFormatter(logging.Formatter):
    """Formats log records as one JSON object a line (``LOG_FORMAT=json``), with the request's ids in every line.

    ``deploy/promtail/config.yml`` is an example scrape config that reads these lines into Loki.
    """

    def format(self, record: logging.LogRecord) -> str:
        """The record as a JSON line: time, level, logger, message, request and trace ids, traceback."""
        from datetime import UTC, datetime

        body: dict[str, Any] = {
            "timestamp": format_time(datetime.fromtimestamp(record.created, UTC)),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        # Every line has both ids (null outside a request), so that a log tool can always group by them.
        body["request_id"] = getattr(record, "request_id", None) or request_id_var.get()
        body["trace_id"] = getattr(record, "trace_id", None) or trace_id_var.get()
        for key, value in record.__dict__.items():
            if key not in _RECORD_ATTRS and key not in body:
                body[key] = value  # the fields given as ``extra=`` (the debug record's fields)
        if record.exc_info:
            body["exc_info"] = self.formatException(record.exc_info)
        return json.dumps(body, default=str)


#: Attributes every LogRecord has (and the ones set by the context filter and uvicorn): not ``extra=`` fields.
_RECORD_ATTRS = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {
    "message", "asctime", "request_id", "trace_id", "color_message", "taskName",
}


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
    for noisy in ("uvicorn.access", "httpx", "httpcore", "aiodocker", "alembic"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))


def preflight(settings: Settings) -> list[str]:
    """Start-time checks that need the runtime choice: VPN mode needs Docker; ENGINE_COMMAND must exist.

    Only ``RUNTIME=auto`` and ``docker`` ask Docker; ``RUNTIME=process`` is checked without touching anything.
    """
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

    kind = settings.runtime.kind.value
    if kind != "process":
        factory_log = logging.getLogger("aceorch.runtime.factory")
        previous = factory_log.disabled
        factory_log.disabled = True  # the service logs its runtime choice once, when it starts
        try:
            kind = asyncio.run(resolve())
        finally:
            factory_log.disabled = previous
    problems: list[str] = []
    if settings.vpn_enabled and kind == "swarm":
        problems.append(
            f"config error: GLUETUN_CONTAINER_NAME={settings.vpn.gluetun_container_name!r} with RUNTIME=swarm: "
            "Swarm services cannot join a Gluetun container's network; unset GLUETUN_CONTAINER_NAME, or run "
            "RUNTIME=docker on the machine that runs Gluetun (docs/swarm.md, \"VPN\")"
        )
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


LOOPBACK = "127.0.0.1"


def listen_host(settings: Settings) -> tuple[str, int, str | None]:
    """The address to bind, the level and the one line that says why (None: nothing to say).

    With a key: APP_HOST. Without one: 127.0.0.1, unless ALLOW_UNAUTHENTICATED=true (APP_HOST, and a warning).
    """
    host, port = settings.api.app_host, settings.api.app_port
    if settings.api_key_value():
        return host, logging.INFO, None
    if settings.api.allow_unauthenticated:
        return host, logging.WARNING, (
            f"API_KEY is not set and ALLOW_UNAUTHENTICATED=true: every endpoint, including provisioning and "
            f"container deletion, is open to anyone who can reach {host}:{port}"
        )
    if host in (LOOPBACK, "localhost", "::1"):
        return host, logging.WARNING, (
            f"API_KEY is not set: listening on {host}:{port} only, open to every local user"
        )
    return LOOPBACK, logging.WARNING, (
        f"API_KEY is not set: listening on {LOOPBACK}:{port} only, not APP_HOST={host} "
        "(set API_KEY, or ALLOW_UNAUTHENTICATED=true to serve the network without a key)"
    )


def bind_socket(host: str, port: int) -> socket.socket:
    """A TCP socket bound to ``host:port`` and listening, so that no second process can take the port."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(2048)
    except BaseException:
        sock.close()
        raise
    return sock  # not inheritable: engine processes must never hold the port after aceorch exits


def _bind_failure(host: str, port: int, exc: OSError) -> str:
    if exc.errno == errno.EADDRINUSE:
        return (f"aceorch: cannot listen on {host}:{port}: the port is already in use (another aceorch, or another "
                "program, holds it); stop it or set APP_PORT to a free port")
    if isinstance(exc, socket.gaierror):
        return f"aceorch: cannot listen on {host}:{port}: APP_HOST does not resolve ({exc.strerror or exc})"
    return f"aceorch: cannot listen on {host}:{port}: {exc.strerror or exc}"


def serve(env_file: str = typer.Option(".env", help="the .env file to read, if present")) -> None:
    """Run the orchestrator in the foreground (APP_HOST:APP_PORT)."""
    try:
        settings = load_settings(env_file)
    except ConfigError as exc:
        for line in exc.lines:
            typer.echo(line, err=True)
        raise typer.Exit(2) from None
    setup_logging(settings)
    static = settings.runtime.kind.value == "process"  # its checks touch nothing: they come before the bind
    problems = preflight(settings) if static else []
    if problems:
        for line in problems:
            typer.echo(line, err=True)
        raise typer.Exit(2)
    host, level, why = listen_host(settings)
    port = settings.api.app_port
    try:
        sock = bind_socket(host, port)
    except OSError as exc:
        typer.echo(_bind_failure(host, port, exc), err=True)
        raise typer.Exit(2) from None
    log = logging.getLogger("aceorch")
    try:
        if why:
            log.log(level, why)
        problems = [] if static else preflight(settings)
        if problems:
            for line in problems:
                typer.echo(line, err=True)
            raise typer.Exit(2)
        if os.environ.get("ACEORCH_DEMO") == "1":
            log.info(
                "demo: TARGET_IMAGE is not set, so engines are the bundled simulator "
                "(aceorch/engine-sim:latest under Docker, ENGINE_COMMAND under the process runtime)%s",
                "; they are removed when aceorch stops (ENGINES_ON_EXIT=stop)"
                if settings.pool.engines_on_exit == "stop" else "",
            )
        import uvicorn

        from aceorch.api import create_app

        app = create_app(settings)
        config = uvicorn.Config(
            app,
            host=host,
            port=port,
            log_config=None,
            access_log=False,
            timeout_graceful_shutdown=5,
        )
        class Server(uvicorn.Server):
            """uvicorn's server; a stop signal also ends the open event streams, which would hold the shutdown."""

            def handle_exit(self, sig: int, frame: Any) -> None:
                service = getattr(app.state, "service", None)
                if service is not None:
                    service.history.close()
                super().handle_exit(sig, frame)

        server = Server(config)
        shown = f"[{host}]" if ":" in host else host
        log.info("listening on http://%s:%d", shown, port)
        try:
            server.run(sockets=[sock])
        except KeyboardInterrupt:
            pass
        if not server.started:
            raise typer.Exit(3)  # the application's start-up failed (uvicorn's own exit status for it)
    finally:
        sock.close()
