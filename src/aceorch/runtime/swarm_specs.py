"""The Swarm backend's translations, free of I/O: a :class:`ContainerSpec` to a one-replica service spec, a
service with its tasks and nodes to a :class:`ContainerInfo`, and the Engine API's errors to :mod:`aceorch.errors`.

One engine is one replicated service with one replica. Its ports are published in ``host`` mode on the node that
runs its task (the ingress routing mesh is not used), so the engine's address is that node's address
(``Status.Addr``) and the published port. Placement spreads over ``node.id``, caps the replicas on one node
(``MaxReplicas``) when asked, and passes constraints through. The image is given as named, never resolved to a
registry digest, so a node uses the image it holds.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from aceorch.errors import (
    ContainerNotFound,
    ImageNotFound,
    NameConflict,
    PortUnavailable,
    RuntimeFailure,
    RuntimeUnavailable,
    SpecRefused,
)
from aceorch.runtime._docker_api import IMAGE_ERROR, PORT_ERROR, parse_time
from aceorch.runtime.base import ContainerInfo, ContainerSpec, RuntimeNode

__all__ = [
    "service_spec", "info_from_service", "current_task", "node_from_swarm", "node_address",
    "task_error", "translate_status", "parse_time", "RUNNING_STATES", "STARTING_STATES", "FAILED_STATES",
]

#: Task states on the way to running.
STARTING_STATES = frozenset({"new", "allocated", "pending", "assigned", "accepted", "preparing", "ready", "starting"})
RUNNING_STATES = frozenset({"running"})
#: Task states after which Swarm starts a new task (unless the service is scaled to zero).
FAILED_STATES = frozenset({"failed", "rejected", "complete", "shutdown", "orphaned", "remove"})

_SECOND_NS = 1_000_000_000
#: Between a failed task and its replacement; Swarm's own default is 5 s.
RESTART_DELAY_NS = 2 * _SECOND_NS

def _restart_policy(name: str) -> dict[str, Any]:
    name = (name or "no").strip()
    policy: dict[str, Any] = {"Delay": RESTART_DELAY_NS}
    if name.startswith("on-failure"):
        _, _, count = name.partition(":")
        policy["Condition"] = "on-failure"
        if count.isdigit():
            policy["MaxAttempts"] = int(count)
    elif name == "no":
        policy["Condition"] = "none"
    else:  # always, unless-stopped
        policy["Condition"] = "any"
    return policy


def _target_port(port: str) -> tuple[int, str]:
    number, _, protocol = port.partition("/")
    return int(number), protocol or "tcp"


def service_spec(
    spec: ContainerSpec,
    *,
    max_replicas_per_node: int = 0,
    constraints: list[str] | None = None,
    init: bool = True,
) -> dict[str, Any]:
    """The keyword arguments of ``services.create`` for ``spec``: one replica, host-mode ports, spread placement.

    ``network="container:<name>"`` has no Swarm equivalent and is refused. ``max_replicas_per_node`` 0 means no cap.
    ``mounts`` become bind mounts: the host path must exist on the node that runs the task.
    """
    if spec.network is not None and spec.network.startswith("container:"):
        raise RuntimeFailure(
            f"create {spec.name}: network {spec.network!r} (another container's namespace) does not exist for "
            "Swarm services"
        )
    container: dict[str, Any] = {
        "Image": spec.image,
        "Env": dict(spec.env),
        "Labels": dict(spec.labels),
        "Init": init,
        "StopGracePeriod": 10 * _SECOND_NS,
    }
    if spec.command is not None:
        container["Args"] = list(spec.command)
    if spec.mounts:
        container["Mounts"] = [{"Type": "bind", "Source": m.source, "Target": m.target, "ReadOnly": m.read_only}
                               for m in spec.mounts]
    placement: dict[str, Any] = {"Preferences": [{"Spread": {"SpreadDescriptor": "node.id"}}]}
    if constraints:
        placement["Constraints"] = list(constraints)
    if max_replicas_per_node > 0:
        placement["MaxReplicas"] = int(max_replicas_per_node)
    template: dict[str, Any] = {
        "ContainerSpec": container,
        "RestartPolicy": _restart_policy(spec.restart_policy),
        "Placement": placement,
    }
    limits: dict[str, int] = {}
    if spec.memory_limit is not None:
        limits["MemoryBytes"] = int(spec.memory_limit)
    if spec.cpus is not None:
        limits["NanoCPUs"] = round(spec.cpus * _SECOND_NS)
    if limits:
        template["Resources"] = {"Limits": limits}
    ports = []
    for port, published in spec.ports.items():
        if published is None:
            continue
        target, protocol = _target_port(port)
        ports.append({"Protocol": protocol, "TargetPort": target, "PublishedPort": int(published),
                      "PublishMode": "host"})
    kwargs: dict[str, Any] = {
        "task_template": template,
        "name": spec.name,
        "labels": dict(spec.labels),
        "mode": {"Replicated": {"Replicas": 1}},
        "endpoint_spec": {"Ports": ports},
    }
    if spec.network:
        kwargs["networks"] = [spec.network]
    return kwargs


def node_address(node: Mapping[str, Any]) -> str | None:
    """The address a node's host-mode ports listen on: ``Status.Addr`` (a manager's own address when that is
    0.0.0.0)."""
    addr = str((node.get("Status") or {}).get("Addr") or "")
    if addr in ("", "0.0.0.0"):
        manager = str((node.get("ManagerStatus") or {}).get("Addr") or "")
        addr = manager.rsplit(":", 1)[0] if manager else ""
    return addr or None


def node_from_swarm(node: Mapping[str, Any]) -> RuntimeNode:
    """A :class:`RuntimeNode` from one ``nodes`` answer."""
    spec: Mapping[str, Any] = node.get("Spec") or {}
    status: Mapping[str, Any] = node.get("Status") or {}
    description: Mapping[str, Any] = node.get("Description") or {}
    return RuntimeNode(
        id=str(node.get("ID") or ""),
        hostname=str(description.get("Hostname") or ""),
        address=node_address(node),
        role=str(spec.get("Role") or ""),
        availability=str(spec.get("Availability") or ""),
        state=str(status.get("State") or "unknown"),
    )


def current_task(tasks: list[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    """The task that stands for the service now: the newest one Swarm wants running, else the newest one."""
    if not tasks:
        return None

    def newest(task: Mapping[str, Any]) -> tuple[int, str]:
        return int((task.get("Version") or {}).get("Index") or 0), str(task.get("CreatedAt") or "")

    wanted = [t for t in tasks if t.get("DesiredState") == "running"]
    return max(wanted or tasks, key=newest)


def task_error(task: Mapping[str, Any] | None) -> str:
    """What Swarm says about a task that failed or waits (``no suitable node ...``), or ``""``."""
    if task is None:
        return ""
    status: Mapping[str, Any] = task.get("Status") or {}
    return str(status.get("Err") or "")


def info_from_service(
    service: Mapping[str, Any],
    task: Mapping[str, Any] | None,
    nodes: Mapping[str, Mapping[str, Any]],
) -> ContainerInfo:
    """A :class:`ContainerInfo` for one engine service, from its current task and the node that runs it.

    ``status``: ``running`` when the task runs on a node that is ready; ``exited`` when the service is scaled to
    zero; ``created`` before its first task; ``restarting`` while Swarm places, starts or replaces the task
    (Swarm keeps one replica: the engine is on its way back, never a leftover).
    """
    spec: Mapping[str, Any] = service.get("Spec") or {}
    template: Mapping[str, Any] = spec.get("TaskTemplate") or {}
    container: Mapping[str, Any] = template.get("ContainerSpec") or {}
    replicas = int(((spec.get("Mode") or {}).get("Replicated") or {}).get("Replicas", 1))
    node = nodes.get(str(task.get("NodeID") or "")) if task else None
    address = node_address(node) if node else None
    state = str((task.get("Status") or {}).get("State") or "") if task else ""
    node_ready = node is not None and (node.get("Status") or {}).get("State") == "ready"
    exit_code: int | None = None
    if replicas == 0:
        status = "exited"
    elif task is None:
        status = "created"
    elif state in RUNNING_STATES and node_ready:
        status = "running"
    else:
        status = "restarting"
    if task is not None and state in FAILED_STATES:
        code = ((task.get("Status") or {}).get("ContainerStatus") or {}).get("ExitCode")
        exit_code = int(code) if isinstance(code, int) else None
    ports: dict[str, list[dict[str, str]] | None] = {}
    endpoint: Mapping[str, Any] = spec.get("EndpointSpec") or {}
    for port in endpoint.get("Ports") or []:
        key = f"{port.get('TargetPort')}/{port.get('Protocol') or 'tcp'}"
        published = port.get("PublishedPort")
        ports[key] = [{"HostIp": address or "0.0.0.0", "HostPort": str(published)}] if published else None
    started = parse_time((task.get("Status") or {}).get("Timestamp")) if task and status == "running" else None
    return ContainerInfo(
        id=str(service.get("ID") or ""),
        name=str(spec.get("Name") or ""),
        image=str(container.get("Image") or "").split("@", 1)[0],
        created=parse_time(service.get("CreatedAt")) or datetime.fromtimestamp(0, UTC),
        status=status,
        labels=dict(spec.get("Labels") or {}),
        ports=ports,
        health=None,
        ip=None,
        started_at=started,
        exit_code=exit_code,
        node_address=address if status == "running" else None,
        node=str(((node or {}).get("Description") or {}).get("Hostname") or "") or None,
    )


def translate_status(status: int, message: str, what: str) -> RuntimeFailure:
    """The :mod:`aceorch.errors` instance for an Engine API error answer about a service."""
    text = f"{what}: {message}" if message else what
    lowered = message.lower()
    if status == 900:  # aiodocker's code for "cannot connect"
        return RuntimeUnavailable(text)
    if "not a swarm manager" in lowered or "swarm mode" in lowered or "not part of a swarm" in lowered:
        return RuntimeUnavailable(f"{text} (DOCKER_HOST must point at a Swarm manager)")
    if PORT_ERROR.search(message):
        return PortUnavailable(text)
    if IMAGE_ERROR.search(message):
        return ImageNotFound(text)
    if status == 404:
        return ContainerNotFound(text)
    if status == 409:
        return NameConflict(text)
    if status in (502, 503, 504):
        return RuntimeUnavailable(text)
    if status == 400 and "network" not in lowered:
        return SpecRefused(text)
    return RuntimeFailure(text)
