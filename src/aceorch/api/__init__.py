"""The HTTP API (api.md): ``create_app(settings)`` builds it; one router per resource under ``routes``."""

from aceorch.api.app import create_app

__all__ = ["create_app"]
