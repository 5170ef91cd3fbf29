"""``aceorch db upgrade|current|history``: the store's schema migrations by hand (``aceorch serve`` upgrades
at start on its own).

``DB_URL`` comes from the environment or the ``.env`` file, as for ``aceorch serve``.
"""

from __future__ import annotations

import asyncio

import typer

from aceorch.config import Settings, load_settings
from aceorch.errors import ConfigError
from aceorch.store import StoreError, schema_history, schema_revision, upgrade_schema

__all__ = ["app", "current", "history", "upgrade"]

app = typer.Typer(help="The store's schema migrations.", no_args_is_help=True, add_completion=False)

_ENV_FILE = typer.Option(".env", help="the .env file to read, if present")


def _settings(env_file: str) -> Settings:
    try:
        return load_settings(env_file)
    except ConfigError as exc:
        for line in exc.lines:
            typer.echo(line, err=True)
        raise typer.Exit(2) from None


def _fail(what: str, exc: StoreError) -> typer.Exit:
    typer.echo(f"aceorch db {what}: {exc}", err=True)
    return typer.Exit(1)


@app.command()
def upgrade(env_file: str = _ENV_FILE) -> None:
    """Bring the database to the newest revision (a store made before migrations is stamped 0001 first)."""
    settings = _settings(env_file)
    try:
        before, after = asyncio.run(upgrade_schema(settings.api.db_url))
    except StoreError as exc:
        raise _fail("upgrade", exc) from None
    if before == after:
        typer.echo(f"already at the newest revision {after}")
    else:
        typer.echo(f"upgraded from {before or 'nothing'} to {after}")


@app.command()
def current(env_file: str = _ENV_FILE) -> None:
    """Print the database's revision and the newest one; changes nothing."""
    settings = _settings(env_file)
    try:
        revision, has_tables, head = asyncio.run(schema_revision(settings.api.db_url))
    except StoreError as exc:
        raise _fail("current", exc) from None
    if revision is not None:
        state = "up to date" if revision == head else "`aceorch db upgrade` or `aceorch serve` upgrades it"
        typer.echo(f"{revision} (newest: {head}; {state})")
    elif has_tables:
        typer.echo(f"none: made before migrations (newest: {head}; `aceorch db upgrade` stamps it 0001 and "
                   "upgrades it, keeping its rows)")
    else:
        typer.echo(f"none: an empty database (newest: {head})")


@app.command()
def history() -> None:
    """List every revision, oldest first."""
    for line in schema_history():
        typer.echo(line)
