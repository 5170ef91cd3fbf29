"""Fixtures for the ``aceorch debug`` analysis tests: a CLI runner and JSON-invoking helper."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

sys.path.insert(0, str(Path(__file__).parent))

from aceorch.cli.debug import app  # noqa: E402


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture
def run_cli(runner: CliRunner) -> Callable[..., Any]:
    """Invoke ``aceorch debug <args>``; with ``--json`` in args, return the parsed JSON."""

    def invoke(*args: str, expect_exit: int = 0) -> Any:
        result = runner.invoke(app, list(args))
        assert result.exit_code == expect_exit, (result.stdout, result.stderr, result.exception)
        if "--json" in args and expect_exit == 0:
            return json.loads(result.stdout)
        return result

    return invoke
