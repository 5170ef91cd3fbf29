"""``aceorch proxy``: the stream proxy as its own process, talking to a remote aceorch over its HTTP API."""

from __future__ import annotations

import logging

import typer

from aceorch.config import load_settings
from aceorch.errors import ConfigError

__all__ = ["proxy"]


def proxy(
    orchestrator: str = typer.Option(..., help="the orchestrator's base URL, as http://127.0.0.1:8000"),
    port: int | None = typer.Option(None, help="listen port (default PROXY_PORT, 8001)"),
    host: str | None = typer.Option(None, help="listen address (default APP_HOST)"),
    env_file: str = typer.Option(".env", help="the .env file to read, if present"),
) -> None:
    """Serve /ace/getstream for players, with engines from a remote orchestrator (API_KEY is sent to it)."""
    try:
        settings = load_settings(env_file)
    except ConfigError as exc:
        for line in exc.lines:
            typer.echo(line, err=True)
        raise typer.Exit(2) from None
    if not orchestrator.startswith(("http://", "https://")):
        typer.echo(f"aceorch proxy: --orchestrator {orchestrator!r}: give an http(s) URL", err=True)
        raise typer.Exit(2)
    from aceorch.cli.serve import bind_socket, setup_logging

    setup_logging(settings)
    listen_host = host or settings.api.app_host
    listen_port = port or settings.proxy.proxy_port
    try:
        sock = bind_socket(listen_host, listen_port)
    except OSError as exc:
        typer.echo(f"aceorch proxy: cannot listen on {listen_host}:{listen_port}: {exc.strerror or exc}", err=True)
        raise typer.Exit(2) from None
    import uvicorn

    from aceorch.proxy.app import create_proxy_app

    app = create_proxy_app(settings, orchestrator)
    server = uvicorn.Server(uvicorn.Config(app, log_config=None, access_log=False, timeout_graceful_shutdown=3))
    logging.getLogger("aceorch").info("proxy listening on http://%s:%d for the orchestrator at %s",
                                      listen_host, listen_port, orchestrator)
    try:
        server.run(sockets=[sock])
    except KeyboardInterrupt:
        pass
    finally:
        sock.close()
