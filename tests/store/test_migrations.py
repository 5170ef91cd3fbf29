"""Migrations: a store made before migrations (a fixture file made by that code) is stamped and upgraded with
its rows; revision 0001 is exactly that code's schema; two instances opening at once migrate once; the
``aceorch db`` commands; a corrupt SQLite file is moved aside."""

from __future__ import annotations

import asyncio
import json
import logging
import shutil
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine
from typer.testing import CliRunner

from aceorch.cli import app
from aceorch.models import HealthStatus
from aceorch.store import migrate, schema_revision, upgrade_schema
from aceorch.store.schema import parse_db_url
from aceorch.store.sql import SqlStore

#: Made by tests/store/fixtures/make_legacy_v0.py with the store of commit b32db60 (create_all, no Alembic).
LEGACY = Path(__file__).parent / "fixtures" / "legacy-v0.db"
T0 = datetime(2025, 10, 18, 14, 45, 23, 456789, tzinfo=UTC)
TABLES = ("engines", "streams", "stream_stats")


def legacy_rows() -> dict[str, list[dict[str, Any]]]:
    """Every row of the fixture file, per table, as sqlite3 reads them."""
    conn = sqlite3.connect(LEGACY)
    conn.row_factory = sqlite3.Row
    try:
        return {t: [dict(r) for r in conn.execute(f"SELECT * FROM {t} ORDER BY 1")] for t in TABLES}
    finally:
        conn.close()


async def make_legacy_postgres(url: str) -> None:
    """A PostgreSQL store as the pre-migration code left it: revision 0001's tables, the fixture's rows, and no
    ``alembic_version``."""
    engine = create_async_engine(parse_db_url(url))
    try:
        await migrate.upgrade(engine, revision="0001")
        meta = sa.MetaData()
        async with engine.begin() as conn:
            await conn.run_sync(meta.reflect)
            await conn.execute(sa.text("DROP TABLE alembic_version"))
            for table, rows in legacy_rows().items():
                for row in rows:
                    for column in ("labels", "streams"):  # JSON columns: sqlite3 reads them as text
                        if column in row and table != "stream_stats":
                            row[column] = json.loads(row[column])
                    if table == "engines":
                        row["running"] = bool(row["running"])
                    if table == "streams":
                        row["is_live"], row["attached"] = bool(row["is_live"]), bool(row["attached"])
                    await conn.execute(sa.insert(meta.tables[table]).values(row))
    finally:
        await engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
async def legacy_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A store made by the pre-migration code, on SQLite (the fixture file) or PostgreSQL (its rows)."""
    if request.param == "sqlite":
        path = tmp_path / "orchestrator.db"
        shutil.copyfile(LEGACY, path)
        return f"sqlite:///{path}"
    url: str = request.getfixturevalue("pg_url")
    await make_legacy_postgres(url)
    return url


async def test_a_store_made_before_migrations_is_stamped_and_upgraded_keeping_its_rows(
    legacy_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    assert (await schema_revision(legacy_url))[:2] == (None, True)
    caplog.set_level(logging.INFO, logger="aceorch.store")
    store = SqlStore(legacy_url)
    await store.open()
    try:
        assert store.migrated == ("0001", migrate.head_revision())
        assert "made before migrations" in caplog.text
        engines = await store.load_engines()
        streams = await store.load_streams()
        stats = await store.load_stats("s0")
        assert [e.container_id for e in engines] == ["0" * 64, "1" * 64, "2" * 64]
        assert [e.container_name for e in engines] == ["acestream-0", "acestream-1", "acestream-2"]
        assert engines[2].labels == {"ondemand.app": "legacy", "i": "2"}
        assert engines[1].first_seen == T0 + timedelta(seconds=1)
        assert engines[0].health_status is HealthStatus.HEALTHY and engines[0].streams == ["s0"]
        assert all(e.unreachable_reason is None for e in engines)  # the column revision 0002 added
        assert [(s.id, s.status) for s in streams] == [("s0", "started"), ("s1", "ended")]
        assert streams[1].ended_at == T0 + timedelta(seconds=60)
        assert [s.peers for s in stats] == [0, 1, 2, 3]
        # The new column takes values.
        engines[0].unreachable_reason, engines[0].unreachable_address = "timeout", "10.0.0.9:6878"
        await store.save_engine(engines[0])
        assert (await store.load_engines())[0].unreachable_address == "10.0.0.9:6878"
    finally:
        await store.aclose()
    assert (await schema_revision(legacy_url))[0] == migrate.head_revision()


async def test_revision_0001_is_the_schema_the_pre_migration_code_made(tmp_path: Path) -> None:
    def describe(sync_conn: sa.Connection) -> dict[str, Any]:
        insp = sa.inspect(sync_conn)
        return {t: ([(c["name"], str(c["type"]), c["nullable"]) for c in insp.get_columns(t)],
                    sorted((i["name"], tuple(i["column_names"])) for i in insp.get_indexes(t)),
                    insp.get_pk_constraint(t)["constrained_columns"]) for t in TABLES}

    shutil.copyfile(LEGACY, tmp_path / "old.db")
    old = create_async_engine(f"sqlite+aiosqlite:///{tmp_path / 'old.db'}")
    new = create_async_engine(f"sqlite+aiosqlite:///{tmp_path / 'r1.db'}")
    try:
        await migrate.upgrade(new, revision="0001")
        async with old.connect() as a, new.connect() as b:
            assert await a.run_sync(describe) == await b.run_sync(describe)
    finally:
        await old.dispose()
        await new.dispose()


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
async def test_two_instances_opening_a_new_database_at_once_migrate_it_once(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    url = f"sqlite:///{tmp_path / 'o.db'}" if backend == "sqlite" else request.getfixturevalue("pg_url")
    stores = [SqlStore(url) for _ in range(3)]
    try:
        await asyncio.gather(*(s.open() for s in stores))
        migrated = [s.migrated for s in stores]
        assert migrated.count((None, "0002")) == 1  # exactly one migrated; the others found it done
        assert migrated.count(("0002", "0002")) == 2
    finally:
        for s in stores:
            await s.aclose()


def test_the_db_commands_report_and_upgrade(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "orchestrator.db"
    shutil.copyfile(LEGACY, path)
    monkeypatch.setenv("DB_URL", f"sqlite:///{path}")
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()

    history = runner.invoke(app, ["db", "history"])
    assert history.exit_code == 0 and history.output.splitlines()[0].startswith("0001: ")
    before = runner.invoke(app, ["db", "current"])
    assert before.exit_code == 0 and "made before migrations" in before.output
    up = runner.invoke(app, ["db", "upgrade"])
    assert up.exit_code == 0, up.output
    assert "upgraded from 0001 to 0002" in up.output
    after = runner.invoke(app, ["db", "current"])
    assert after.output.startswith("0002 (newest: 0002; up to date)")
    again = runner.invoke(app, ["db", "upgrade"])
    assert "already at the newest revision 0002" in again.output
    assert len(legacy_rows()["engines"]) == 3
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("SELECT count(*) FROM engines").fetchone()[0] == 3
    finally:
        conn.close()


def test_db_current_on_an_unreachable_database_fails_with_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DB_URL", "postgresql://u:secret@127.0.0.1:1/x")
    result = CliRunner().invoke(app, ["db", "current"])
    assert result.exit_code == 1
    assert "secret" not in result.output


async def test_upgrade_schema_on_a_new_sqlite_file_creates_it(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'a' / 'new.db'}"
    assert await schema_revision(url) == (None, False, "0002")
    assert await upgrade_schema(url) == (None, "0002")
    assert await schema_revision(url) == ("0002", True, "0002")


@pytest.mark.parametrize("garbage", [b"this is not a database at all" * 100, b"SQLite format 3\x00" + b"\xff" * 8000])
async def test_a_corrupt_sqlite_file_is_moved_aside_and_recreated(
    garbage: bytes, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "orchestrator.db"
    path.write_bytes(garbage)
    store = SqlStore(f"sqlite:///{path}")
    with caplog.at_level(logging.ERROR, logger="aceorch.store"):
        await store.open()
    try:
        [aside] = await asyncio.to_thread(lambda: [p for p in tmp_path.iterdir() if ".corrupt-" in p.name])
        assert aside.read_bytes() == garbage
        [line] = [r for r in caplog.records if r.levelno >= logging.ERROR]
        assert "not a readable SQLite database" in line.getMessage() and str(aside) in line.getMessage()
        assert await store.load_engines() == []
        assert store.migrated == (None, "0002")
    finally:
        await store.aclose()
