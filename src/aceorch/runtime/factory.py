"""Choose and build the runtime that the ``RUNTIME`` setting asks for: :func:`make_runtime`.

``docker`` always gives a :class:`~aceorch.runtime.docker.DockerRuntime`, even when the engine is down (its
calls then raise ``RuntimeUnavailable`` and aceorch keeps retrying); ``swarm`` gives a
:class:`~aceorch.runtime.swarm.SwarmRuntime` of the manager at ``DOCKER_HOST``; ``process`` gives a
:class:`~aceorch.runtime.process.ProcessRuntime` of ``ENGINE_COMMAND``; ``auto`` pings Docker (``DOCKER_HOST``
or the default socket) for up to 2 s and falls back to ``process``. The choice is logged once at INFO.
"""

from __future__ import annotations

import asyncio
import logging

from aceorch.config import RuntimeKind, Settings
from aceorch.errors import RuntimeFailure
from aceorch.runtime.base import Runtime
from aceorch.runtime.docker import DockerRuntime
from aceorch.runtime.process import ProcessRuntime
from aceorch.runtime.swarm import SwarmRuntime

__all__ = ["make_runtime", "AUTO_PING_TIMEOUT_S"]

logger = logging.getLogger(__name__)

#: How long ``RUNTIME=auto`` waits for a Docker ping.
AUTO_PING_TIMEOUT_S = 2.0


async def make_runtime(settings: Settings, *, ping_timeout: float = AUTO_PING_TIMEOUT_S) -> Runtime:
    """The runtime for ``settings.runtime.kind``; the caller owns it and must ``aclose()`` it."""
    kind = settings.runtime.kind
    if kind is RuntimeKind.DOCKER:
        logger.info("runtime: docker (RUNTIME=docker)")
        return DockerRuntime()
    if kind is RuntimeKind.SWARM:
        logger.info("runtime: swarm (RUNTIME=swarm), engines are one-replica services of the manager at DOCKER_HOST")
        return SwarmRuntime(max_replicas_per_node=settings.runtime.max_replicas_per_node,
                            constraints=settings.runtime.swarm_constraint_list)
    if kind is RuntimeKind.PROCESS:
        logger.info("runtime: process (RUNTIME=process), engines run %s", settings.runtime.engine_command)
        return ProcessRuntime(settings.runtime.engine_command)

    docker = DockerRuntime()
    try:
        await asyncio.wait_for(docker.ping(), timeout=ping_timeout)
    except (RuntimeFailure, TimeoutError) as exc:
        await docker.aclose()
        logger.info(
            "runtime: process (RUNTIME=auto: no Docker engine answered within %.0f s: %s), engines run %s",
            ping_timeout,
            str(exc) or type(exc).__name__,
            settings.runtime.engine_command,
        )
        return ProcessRuntime(settings.runtime.engine_command)
    logger.info("runtime: docker (RUNTIME=auto: the Docker engine at %s answered)", docker.docker_host)
    return docker
