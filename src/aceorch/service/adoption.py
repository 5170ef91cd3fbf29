"""Adopting running engines: an engine from a container's labels, its wait to answer, and its adoption record.

The fleet adopts every running managed engine it is not yet holding (at start, and when one comes back). Here:
how such an engine is rebuilt from its container's labels, how long it is given to answer (STARTUP_TIMEOUT_S,
on our own clock) before it is kept as unreachable, and the debug record and service log line of an adoption.
The fleet keeps the bookkeeping: which adoptions are in flight, and the engine joining its state.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from typing import Any

import httpx

from aceorch.aiokits import poll_until
from aceorch.config import Settings
from aceorch.control.engine_api import advertised_address, engine_ready
from aceorch.control.health import mark_unreachable, not_ready_reason, unreachable_warning
from aceorch.control.ports import ports_from_labels
from aceorch.models import Engine, HealthStatus
from aceorch.runtime.base import ContainerInfo
from aceorch.service.timed import Recorder

__all__ = ["engine_from_info", "report_adoption", "wait_answering"]

#: Adoptions are logged as the fleet's.
logger = logging.getLogger("aceorch.service.fleet")


def engine_from_info(
    settings: Settings, info: ContainerInfo, *, in_container: bool, runtime_kind: str
) -> Engine | None:
    """The engine a running container is, from its port labels; None if it has none."""
    ports = ports_from_labels(info.labels)
    c_http, h_http = ports["container_http"], ports["host_http"]
    if c_http is None or h_http is None:
        return None
    host, port = advertised_address(
        settings, container_name=info.name, host_port=h_http, container_port=c_http,
        in_container=in_container, runtime_kind=runtime_kind, node_address=info.node_address,
        vpn=info.labels.get("aceorch.vpn"),
    )
    p2p = info.labels.get("aceorch.p2p_port")
    return Engine(
        container_id=info.id,
        container_name=info.name,
        host=host,
        port=port,
        host_http_port=h_http,
        container_http_port=c_http,
        container_https_port=ports["container_https"],
        host_https_port=ports["host_https"],
        labels=dict(info.labels),
        first_seen=info.created,
        created_at=info.started_at or info.created,
        p2p_port=int(p2p) if p2p and p2p.isdigit() else None,
    )


async def wait_answering(engine: Engine, settings: Settings, http: httpx.AsyncClient, stop: asyncio.Event) -> bool:
    """Give an engine to adopt STARTUP_TIMEOUT_S to answer; one that does not is marked unreachable (and kept).

    False when the service began stopping meanwhile (nothing to adopt then).
    """
    answers = functools.partial(engine_ready, http, engine.host, engine.port, timeout=2.0)
    # Our own clock only: the runtime's clock may differ from ours.
    timeout = settings.runtime.startup_timeout_s
    if not await poll_until(answers, timeout=timeout, interval=0.2, stop=stop):
        if stop.is_set():
            return False
        # A running engine that does not answer from here is kept: it may serve streams to proxies on its
        # own network. It is never handed out, and it joins the pool once it answers.
        why = await not_ready_reason(http, engine.host, engine.port, timeout=2.0)
        mark_unreachable(engine, why, timeout_s=timeout)
    return True


def report_adoption(engine: Engine, info: ContainerInfo, settings: Settings, record: Recorder) -> None:
    """The debug record and the service log line of one adoption (``adopt_engine`` or ``adopt_unreachable``)."""
    # One service log line per adoption, carrying its debug record's fields (shown by LOG_FORMAT=json).
    fields: dict[str, Any] = {"container_id": info.id, "container_name": info.name,
                              "host_http_port": engine.host_http_port, "success": True}
    if engine.health_status is HealthStatus.UNREACHABLE:
        fields.update(operation="adopt_unreachable", address=engine.unreachable_address,
                      reason=engine.unreachable_reason)
        record("provisioning", **fields)
        logger.warning(unreachable_warning(engine, settings), extra={"category": "provisioning", **fields})
    else:
        fields["operation"] = "adopt_engine"
        record("provisioning", **fields)
        logger.info("adopted running engine %s (%s)", info.name, info.id[:12],
                    extra={"category": "provisioning", **fields})
