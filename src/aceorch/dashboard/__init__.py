"""The dashboard at ``/panel/``: static pages (HTML, CSS, plain JS; no build step, no CDN) that read the API only."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import RedirectResponse
from fastapi.staticfiles import StaticFiles

STATIC = Path(__file__).parent / "static"

__all__ = ["mount_dashboard"]


def mount_dashboard(app: FastAPI) -> None:
    """Serve the dashboard's static pages at ``/panel/`` on ``app``."""

    @app.get("/", include_in_schema=False)
    async def root_redirect(request: Request) -> RedirectResponse:
        # The root is the panel's address for a person at a browser; the query (``?key=``) goes along.
        query = request.url.query
        return RedirectResponse("/panel/" + (f"?{query}" if query else ""), status_code=307)

    @app.get("/panel", include_in_schema=False)
    async def panel_redirect(request: Request) -> RedirectResponse:
        # Keep the query: ``/panel?key=…`` must reach the page, which moves the key to localStorage.
        query = request.url.query
        return RedirectResponse("/panel/" + (f"?{query}" if query else ""), status_code=308)

    app.mount("/panel", StaticFiles(directory=STATIC, html=True), name="panel")
