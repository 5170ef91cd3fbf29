"""The response models of starting and removing engines and containers, scaling and the idle sweep."""

from __future__ import annotations

from typing import Literal

from aceorch.api.schemas.common import Labels, Time, _Public

__all__ = [
    "ProvisioningErrorDetail", "ProvisioningErrorPublic", "EngineProvisionedPublic", "ContainerProvisionedPublic",
    "ContainerPublic", "ContainerDeletedPublic", "ScalePublic", "GcPublic",
]


class ProvisioningErrorDetail(_Public):
    """Why a start was refused or failed, and whether and when to retry."""

    error: Literal["provisioning_blocked", "provisioning_rejected", "provisioning_failed"]
    code: str
    message: str
    recovery_eta_seconds: int | None
    can_retry: bool
    should_wait: bool


class ProvisioningErrorPublic(_Public):
    """A refused or failed start (400, 409, 500, 503); 503s carry ``Retry-After``."""

    detail: ProvisioningErrorDetail


class EngineProvisionedPublic(_Public):
    """A started engine: its container and ports."""

    container_id: str
    container_name: str
    host_http_port: int
    container_http_port: int
    container_https_port: int | None
    host: str


class ContainerProvisionedPublic(_Public):
    """A started generic container."""

    container_id: str
    container_name: str


class ContainerPublic(_Public):
    """A managed container as the runtime reports it; ``ports`` has Docker's shape."""

    id: str
    name: str
    image: str
    created: Time
    status: str
    labels: Labels
    ports: dict[str, list[dict[str, str]] | None]


class ContainerDeletedPublic(_Public):
    """A removed container: the id asked for and the full id."""

    deleted: str
    container_id: str


class ScalePublic(_Public):
    """What a scale request did: the target, the engines started and stopped, failures and deferrals."""

    scaled_to: int
    requested: int
    started: list[str]
    stopped: list[str]
    failed: int
    deferred: int


class GcPublic(_Public):
    """What the idle sweep did: the engines stopped and the old streams pruned."""

    status: Literal["ok"]
    stopped: list[str]
    pruned_streams: int
