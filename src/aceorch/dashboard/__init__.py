"""The dashboard at ``/panel/``: static pages that read the API only."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import RedirectResponse
from fastapi.staticfiles import StaticFiles

STATIC = Path(__file__).parent / "static"

__all__ = ["mount_dashboard"]


def mount_dashboard(app: FastAPI) -> None:
    @app.get("/panel", include_in_schema=False)
    async def panel_redirect() -> RedirectResponse:
        return RedirectResponse("/panel/", status_code=308)

    app.mount("/panel", StaticFiles(directory=STATIC, html=True), name="panel")
