"""``aceorch debug sql`` and ``debug export --parquet``: each question of the debug-mode guide, asked in SQL,
gives the same answer as its jq recipe; the schema lists every view; Parquet files read back with DuckDB."""

from __future__ import annotations

import csv
import io
import json
import subprocess
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import duckdb
import pytest
import sessiongen as gen

JQ = "/usr/bin/jq"
DOC = Path(__file__).resolve().parents[2] / "docs" / "debug-mode.md"


def jq(args: list[str], files: list[Path]) -> str:
    data = b"".join(p.read_bytes() for p in files)
    return subprocess.run([JQ, *args], input=data, capture_output=True, check=True).stdout.decode()


def jq_lines(args: list[str], files: list[Path]) -> list[Any]:
    return [json.loads(line) for line in jq(["-c", *args], files).splitlines() if line.strip()]


@pytest.fixture
def logs(tmp_path: Path) -> Path:
    log_dir = tmp_path / "debug_logs"
    gen.vpn_incident(log_dir)
    return log_dir


def files(log_dir: Path, category: str = "*") -> list[Path]:
    return sorted(log_dir.glob(f"*_{category}.jsonl"))


#: (the guide's question, its jq filter, the category files it reads, the same question in SQL)
QUESTIONS: list[tuple[str, str, str, str]] = [
    ("all provisioning events", ".", "provisioning", "SELECT * FROM provisioning"),
    ("slow provisioning events", "select(.duration_ms > 10000)", "provisioning",
     "SELECT * FROM provisioning WHERE duration_ms > 10000"),
    ("all stress events", ".", "stress", "SELECT * FROM stress"),
    ("slow provisioning stress events", 'select(.event_type == "slow_provisioning")', "stress",
     "SELECT * FROM stress WHERE event_type = 'slow_provisioning'"),
    ("VPN issues", 'select(.event_type == "vpn_disconnection")', "stress",
     "SELECT * FROM stress WHERE event_type = 'vpn_disconnection'"),
    ("circuit breaker activations", 'select(.event_type == "circuit_breaker_opened")', "stress",
     "SELECT * FROM stress WHERE event_type = 'circuit_breaker_opened'"),
]
AVERAGE_JQ = (
    'map(select(.operation == "start_acestream_success" and .duration_ms != null)) | map(.duration_ms) | add / length'
)
AVERAGE_SQL = (
    "SELECT avg(duration_ms) FROM provisioning WHERE operation = 'start_acestream_success' AND duration_ms IS NOT NULL"
)
TIMELINE_JQ = "sort_by(.timestamp) | .[] | select(.event_type or .operation) | {time: .timestamp, " \
    "type: (.event_type // .operation), desc: .description}"
TIMELINE_SQL = (
    'SELECT timestamp AS time, type, description AS "desc" FROM events WHERE type IS NOT NULL ORDER BY timestamp'
)
CSV_JQ = "[.timestamp, .operation, .duration_ms, .success] | @csv"
CSV_SQL = "SELECT timestamp, operation, duration_ms, success FROM provisioning"


def key(record: dict[str, Any]) -> tuple[Any, ...]:
    return (record.get("session_id"), record.get("seq"), record.get("event_type") or record.get("operation"))


@pytest.mark.parametrize(("question", "jq_filter", "category", "query"), QUESTIONS, ids=[q[0] for q in QUESTIONS])
def test_each_guide_question_in_sql_gives_the_jq_answer(
    logs: Path, run_cli: Callable[..., Any], question: str, jq_filter: str, category: str, query: str
) -> None:
    expected = jq_lines([jq_filter], files(logs, category))
    got = run_cli("sql", query, "--dir", str(logs), "--json")
    assert [key(r) for r in got] == [key(r) for r in expected], question
    for mine, theirs in zip(got, expected, strict=True):
        for name, value in theirs.items():
            if isinstance(value, int | float | str | bool):
                assert mine[name] == value, (question, name)


def test_the_average_in_sql_is_the_jq_average(logs: Path, run_cli: Callable[..., Any]) -> None:
    expected = float(jq(["-s", AVERAGE_JQ], files(logs, "provisioning")))
    [row] = run_cli("sql", AVERAGE_SQL, "--dir", str(logs), "--json")
    assert list(row.values())[0] == pytest.approx(expected, rel=1e-9)


def test_the_timeline_in_sql_is_the_jq_timeline(logs: Path, run_cli: Callable[..., Any]) -> None:
    expected = jq_lines(["-s", TIMELINE_JQ], files(logs))
    got = run_cli("sql", TIMELINE_SQL, "--dir", str(logs), "--json")
    assert len(got) == len(expected) > 10
    # Records with the same timestamp may come in either order; the sequence of times may not.
    assert [g["time"] for g in got] == [e["time"] for e in expected]
    as_tuple = lambda r: (r["time"], r["type"], r["desc"])  # noqa: E731
    assert sorted(map(as_tuple, got), key=str) == sorted(map(as_tuple, expected), key=str)


def test_the_csv_export_in_sql_is_the_jq_csv(logs: Path, run_cli: Callable[..., Any]) -> None:
    expected = list(csv.reader(io.StringIO(jq(["-r", CSV_JQ], files(logs, "provisioning")))))
    result = run_cli("sql", CSV_SQL, "--dir", str(logs), "--csv")
    got = list(csv.reader(io.StringIO(result.stdout)))
    assert got[0] == ["timestamp", "operation", "duration_ms", "success"]
    assert got[1:] == expected


def test_the_guide_gives_each_question_in_sql_next_to_its_jq_form() -> None:
    text = DOC.read_text(encoding="utf-8")
    for _question, jq_filter, _category, query in QUESTIONS:
        assert query in text
        assert jq_filter in text
    for query in (AVERAGE_SQL, TIMELINE_SQL, CSV_SQL):
        assert query in text


def test_schema_lists_every_view_and_its_typed_columns(logs: Path, run_cli: Callable[..., Any]) -> None:
    views = run_cli("sql", "--schema", "--dir", str(logs), "--json")
    for name in ("session", "provisioning", "health", "vpn", "stress", "performance", "errors", "events"):
        assert name in views
    assert views["provisioning"]["duration_ms"] == "DOUBLE"
    assert views["provisioning"]["success"] == "BOOLEAN"
    assert views["provisioning"]["seq"] == "BIGINT"
    assert views["stress"]["event_type"] == "VARCHAR"
    table = run_cli("sql", "--schema", "--dir", str(logs))
    assert "provisioning" in table.stdout and "duration_ms (double)" in table.stdout


def test_a_bad_query_is_a_clear_error(logs: Path, run_cli: Callable[..., Any]) -> None:
    result = run_cli("sql", "SELECT nope FROM provisioning", "--dir", str(logs), expect_exit=1)
    assert "SQL error" in result.stderr


def test_sql_skips_an_incomplete_last_line(logs: Path, run_cli: Callable[..., Any]) -> None:
    path = files(logs, "provisioning")[0]
    count = "SELECT count(*) AS n FROM provisioning WHERE seq IS NOT NULL"
    before = run_cli("sql", count, "--dir", str(logs), "--json")
    with path.open("ab") as handle:
        handle.write(b'{"seq": 999, "operation": "start_acestre')
    after = run_cli("sql", count, "--dir", str(logs), "--json")
    assert after == before


def test_parquet_export_writes_one_file_per_category_that_reads_back(
    logs: Path, tmp_path: Path, run_cli: Callable[..., Any]
) -> None:
    gen.healthy(logs, gen.START - timedelta(days=1))
    out = tmp_path / "parquet"
    written = run_cli("export", "--parquet", str(out), "--dir", str(logs), "--all", "--json")
    by_category = {w["category"]: w for w in written}
    assert "provisioning" in by_category and "stress" in by_category
    for category, entry in by_category.items():
        path = Path(entry["path"])
        assert path == out / f"{category}.parquet"
        lines = sum(len(p.read_text().splitlines()) for p in files(logs, category))
        assert duckdb.sql(f"SELECT count(*) FROM read_parquet('{path}')").fetchall() == [(lines,)]
        assert entry["rows"] == lines
    expected = float(jq(["-s", AVERAGE_JQ], files(logs, "provisioning")))
    [(got,)] = duckdb.sql(
        f"SELECT avg(duration_ms) FROM read_parquet('{out / 'provisioning.parquet'}') "
        "WHERE operation = 'start_acestream_success'"
    ).fetchall()
    assert got == pytest.approx(expected, rel=1e-9)
