"""The base of the setting groups: what every group's model shares."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

__all__ = ["Group"]


class Group(BaseModel):
    """Base of the setting groups: defaults are validated too, unknown fields are refused."""

    model_config = ConfigDict(validate_default=True, extra="forbid", validate_by_name=True, validate_by_alias=True)
