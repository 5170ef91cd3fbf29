"""What every response model shares: the base model, the time and label types, and the plain bodies.

Models are named ``<Thing>Public``. Those built from domain objects read their attributes
(``from_attributes``); the others validate the service's read models, dicts or objects alike. Every time
leaves as :data:`Time`, ``YYYY-MM-DDTHH:MM:SS.ffffffZ`` or null, the form acexy decodes with Go's RFC 3339
parser. Lists are bare JSON arrays. Label values whose names look secret (``db_password``, ``api_key``) leave as
``***``, by the debug log's rule (:func:`aceorch.debuglog.masking.is_secret_name`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, PlainSerializer, WithJsonSchema

from aceorch.debuglog.masking import is_secret_name, maskable
from aceorch.models import format_time

__all__ = ["Time", "Labels", "mask_labels", "AUTH_ERRORS", "Message", "ErrorPublic"]


def mask_labels(labels: dict[str, str]) -> dict[str, str]:
    """Labels with the values of secret-looking names replaced by ``***``."""
    return {k: "***" if is_secret_name(k) and maskable(v) else v for k, v in labels.items()}


#: Labels as they leave the API: secret-looking values masked.
Labels = Annotated[dict[str, str], AfterValidator(mask_labels)]


def _format_time(value: datetime) -> str:
    return format_time(value) or ""


#: A time in a response: a timezone-aware datetime (or its RFC 3339 text), written by
#: :func:`~aceorch.models.format_time` as ``2025-10-18T14:45:23.456000Z``.
Time = Annotated[
    datetime,
    PlainSerializer(_format_time, return_type=str),
    WithJsonSchema({"type": "string", "format": "date-time", "examples": ["2025-10-18T14:45:23.456000Z"]}),
]


class _Public(BaseModel):
    """Base of the response models: built from objects (``from_attributes``) or dicts; unknown fields ignored."""

    model_config = ConfigDict(from_attributes=True)


class Message(_Public):
    """A body that only says what happened."""

    message: str


class ErrorPublic(_Public):
    """An error whose detail is one sentence (401, 403, 404, 413, a refused breaker name, ...)."""

    detail: str


#: OpenAPI entries for the bearer-key refusals of every route that needs the key.
AUTH_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorPublic, "description": "missing bearer token"},
    403: {"model": ErrorPublic, "description": "invalid token"},
}
