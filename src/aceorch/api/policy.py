"""What a client may ask for, as far as it depends on the settings: env names, images, ports, label keys, origins.

A provision body has already passed :mod:`aceorch.api.schemas.requests` (shape, sizes, the env deny-list, the
reserved label prefixes). The checks here need the settings:

- env names must match ``ENGINE_ENV_ALLOW`` (``NAME`` exactly, ``NAME*`` as a prefix);
- ``CONF``'s ``--http-port``/``--https-port`` must lie in the ranges the provisioner allocates from;
- ``image`` must be ``TARGET_IMAGE`` or listed in ``ALLOWED_IMAGES`` (``name`` means ``name:latest``);
- host ports must lie inside ``PORT_RANGE_HOST``;
- the ``CONTAINER_LABEL`` key marks managed containers and is reserved.

Each refusal is a 422 in FastAPI's validation shape, so clients read one format for every bad input.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from fastapi.exceptions import RequestValidationError

from aceorch.api.schemas.requests import ProvisionAceBody, ProvisionGenericBody
from aceorch.config import Settings

__all__ = [
    "split_list", "cors_origins", "env_allowed", "normalise_image", "allowed_images",
    "check_ace_body", "check_generic_body",
]

CONF_PORT = re.compile(r"^--(http-port|https-port|port)(?:=(.*))?$")


def split_list(text: str) -> list[str]:
    """A comma-separated setting's items, stripped, empty ones dropped."""
    return [item.strip() for item in text.split(",") if item.strip()]


def cors_origins(settings: Settings) -> frozenset[str]:
    """``CORS_ORIGINS`` as a set of lower-case origins without a trailing slash."""
    return frozenset(o.lower().rstrip("/") for o in split_list(settings.api.cors_origins))


def env_allowed(name: str, allow: Iterable[str]) -> bool:
    """Whether an env name matches the allow-list (``NAME`` exactly, ``NAME*`` by prefix)."""
    for pattern in allow:
        if pattern.endswith("*"):
            if name.startswith(pattern[:-1]):
                return True
        elif name == pattern:
            return True
    return False


def normalise_image(image: str) -> str:
    """An image reference with Docker's implicit ``:latest`` made explicit (digests and tags kept)."""
    last = image.rsplit("/", 1)[-1]
    if "@" in image or ":" in last:
        return image
    return f"{image}:latest"


def allowed_images(settings: Settings) -> set[str]:
    """``TARGET_IMAGE`` and every image of ``ALLOWED_IMAGES``, normalised."""
    return {normalise_image(i) for i in [settings.runtime.target_image, *split_list(settings.runtime.allowed_images)]}


def _error(loc: tuple[str | int, ...], msg: str, value: Any) -> dict[str, Any]:
    return {"type": "value_error", "loc": ("body", *loc), "msg": msg, "input": value}


def _check_common(
    settings: Settings, image: str | None, env: Mapping[str, str], labels: Mapping[str, str],
) -> list[dict[str, Any]]:
    errors: list[dict[str, Any]] = []
    if image is not None and normalise_image(image) not in allowed_images(settings):
        errors.append(_error(("image",), "image not allowed: only TARGET_IMAGE and the images of ALLOWED_IMAGES "
                                         "may be started", image))
    allow = split_list(settings.runtime.engine_env_allow)
    for name in env:
        if not env_allowed(name, allow):
            errors.append(_error(("env", name), f"env name {name!r} is not in ENGINE_ENV_ALLOW", name))
    label_key = settings.label_pair[0]
    if label_key in labels:
        errors.append(_error(("labels", label_key), f"label key {label_key!r} is reserved: it marks the "
                                                    "containers aceorch manages (CONTAINER_LABEL)", label_key))
    return errors


def _conf_errors(settings: Settings, conf: str) -> list[dict[str, Any]]:
    rt = settings.runtime
    ranges = {
        "http-port": (rt.ace_http_range, rt.port_range_host),
        "https-port": (rt.ace_https_range,),
        "port": (),
    }
    errors: list[dict[str, Any]] = []
    for line in conf.splitlines():
        m = CONF_PORT.match(line.strip())
        if not m:
            continue
        option, value = m.group(1), (m.group(2) or "").strip()
        port = int(value) if value.isdigit() and len(value) <= 5 else None
        pools = ranges[option]
        if port is None or not 1 <= port <= 65535 or (pools and not any(port in pool for pool in pools)):
            where = " or ".join(str(p) for p in pools) if pools else "1-65535"
            errors.append(_error(("env", "CONF"), f"CONF --{option} must be a port in {where}", line))
    return errors


def _raise(errors: list[dict[str, Any]]) -> None:
    if errors:
        raise RequestValidationError(errors)


def check_ace_body(settings: Settings, body: ProvisionAceBody) -> None:
    """Refuse (422) what ``POST /provision/acestream`` may not ask for under these settings."""
    errors = _check_common(settings, body.image, body.env, body.labels)
    if "CONF" in body.env:
        errors += _conf_errors(settings, body.env["CONF"])
    if body.host_port is not None and body.host_port not in settings.runtime.port_range_host:
        errors.append(_error(("host_port",), f"host_port must lie in PORT_RANGE_HOST "
                                             f"({settings.runtime.port_range_host})", body.host_port))
    _raise(errors)


def check_generic_body(settings: Settings, body: ProvisionGenericBody) -> None:
    """Refuse (422) what ``POST /provision`` may not ask for under these settings."""
    errors = _check_common(settings, body.image, body.env, body.labels)
    for container_port, host_port in body.ports.items():
        if host_port is not None and host_port not in settings.runtime.port_range_host:
            errors.append(_error(("ports", container_port), f"host port must lie in PORT_RANGE_HOST "
                                                            f"({settings.runtime.port_range_host})", host_port))
    _raise(errors)
