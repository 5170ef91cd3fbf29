"""``aceorch engines prune``: remove every managed engine container, through the runtime directly (no service).

A managed engine carries the ``CONTAINER_LABEL`` label and is an engine (``aceorch.kind=engine``, or an
``acestream-N`` name on containers older than that label). Generic containers and unlabelled containers are
never touched.
"""

from __future__ import annotations

import asyncio
import logging

import typer

from aceorch.config import Settings, load_settings
from aceorch.control.engine_api import ENGINE_NAME
from aceorch.errors import ConfigError, ContainerNotFound, RuntimeFailure
from aceorch.runtime.base import ContainerInfo

__all__ = ["app", "prune", "is_managed_engine"]

app = typer.Typer(help="Managed engine containers.", no_args_is_help=True, add_completion=False)


def is_managed_engine(settings: Settings, info: ContainerInfo) -> bool:
    """The container carries CONTAINER_LABEL and is an engine (by its kind label, or its name)."""
    key, value = settings.label_pair
    if info.labels.get(key) != value:
        return False
    kind = info.labels.get("aceorch.kind")
    return kind == "engine" or (kind is None and bool(ENGINE_NAME.match(info.name)))


async def _prune(settings: Settings) -> tuple[str, list[ContainerInfo]]:
    from aceorch.runtime.factory import make_runtime

    factory_log = logging.getLogger("aceorch.runtime.factory")
    previous = factory_log.disabled
    factory_log.disabled = True
    try:
        runtime = await make_runtime(settings)
    finally:
        factory_log.disabled = previous
    removed: list[ContainerInfo] = []
    try:
        if runtime.name == "process":
            return runtime.name, removed
        key, value = settings.label_pair
        for info in await runtime.list({key: value}):
            if not is_managed_engine(settings, info):
                continue
            try:
                await runtime.remove(info.id)
            except ContainerNotFound:
                continue
            removed.append(info)
            typer.echo(f"removed {info.name} ({info.id[:12]}, {info.status})")
        return runtime.name, removed
    finally:
        await runtime.aclose()


@app.command()
def prune(env_file: str = typer.Option(".env", help="the .env file to read, if present")) -> None:
    """Remove every managed engine container (CONTAINER_LABEL), running or not, and say which."""
    try:
        settings = load_settings(env_file)
    except ConfigError as exc:
        for line in exc.lines:
            typer.echo(line, err=True)
        raise typer.Exit(2) from None
    try:
        kind, removed = asyncio.run(_prune(settings))
    except RuntimeFailure as exc:
        typer.echo(f"aceorch engines prune: the runtime failed: {exc}", err=True)
        raise typer.Exit(1) from None
    if kind == "process":
        typer.echo("no Docker engine answers: process-runtime engines end with their aceorch; nothing to prune")
        return
    n = len(removed)
    typer.echo(f"removed {n} engine container{'' if n == 1 else 's'} labelled {settings.runtime.container_label}")
