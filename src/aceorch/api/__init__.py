"""The HTTP API: ``create_app(settings)`` builds it; one router per resource under ``routes``, bodies in ``schemas``."""

from aceorch.api.app import create_app

__all__ = ["create_app"]
