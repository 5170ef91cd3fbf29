"""The Swarm backend without a swarm: the service spec it sends, the engine it reads back, and serve's refusal of
VPN mode."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from aceorch.errors import ContainerNotFound, NameConflict, PortUnavailable, RuntimeFailure, RuntimeUnavailable
from aceorch.runtime.base import ContainerSpec
from aceorch.runtime.swarm_specs import current_task, info_from_service, node_address, service_spec, translate_status

SPEC = ContainerSpec(name="acestream-1", image="aceorch/engine-sim:latest", env={"HTTP_PORT": "40000"},
                     labels={"aceorch.kind": "engine", "host.http_port": "19000"}, ports={"40000/tcp": 19000},
                     memory_limit=512 * 2**20, cpus=1.5)


def test_one_replica_host_mode_spread_capped_and_constrained() -> None:
    kwargs = service_spec(SPEC, max_replicas_per_node=2, constraints=["node.role!=manager"])
    assert kwargs["mode"] == {"Replicated": {"Replicas": 1}}
    assert kwargs["endpoint_spec"]["Ports"] == [
        {"Protocol": "tcp", "TargetPort": 40000, "PublishedPort": 19000, "PublishMode": "host"}]
    placement = kwargs["task_template"]["Placement"]
    assert placement == {"Preferences": [{"Spread": {"SpreadDescriptor": "node.id"}}], "MaxReplicas": 2,
                         "Constraints": ["node.role!=manager"]}
    container = kwargs["task_template"]["ContainerSpec"]
    assert container["Image"] == "aceorch/engine-sim:latest"  # as named: never resolved to a registry digest
    assert kwargs["labels"] == container["Labels"] == SPEC.labels
    assert kwargs["task_template"]["Resources"] == {"Limits": {"MemoryBytes": 512 * 2**20, "NanoCPUs": 1_500_000_000}}
    assert "MaxReplicas" not in service_spec(SPEC)["task_template"]["Placement"]


def test_another_container_s_network_is_refused() -> None:
    vpn = ContainerSpec(name="e", image="i", network="container:gluetun")
    with pytest.raises(RuntimeFailure, match="does not exist for Swarm services"):
        service_spec(vpn)


def _service(replicas: int = 1) -> dict[str, object]:
    return {"ID": "svc1", "CreatedAt": "2026-01-01T00:00:00.123456789Z",
            "Spec": {"Name": "acestream-1", "Labels": {"a": "b"}, "Mode": {"Replicated": {"Replicas": replicas}},
                     "TaskTemplate": {"ContainerSpec": {"Image": "img@sha256:00"}},
                     "EndpointSpec": {"Ports": [{"TargetPort": 40000, "PublishedPort": 19000, "Protocol": "tcp"}]}}}


NODES = {"n1": {"ID": "n1", "Status": {"State": "ready", "Addr": "10.0.0.5"}, "Description": {"Hostname": "a"}},
         "n2": {"ID": "n2", "Status": {"State": "down", "Addr": "10.0.0.6"}, "Description": {"Hostname": "b"}}}


def _task(node: str, state: str, index: int, desired: str = "running") -> dict[str, object]:
    return {"ID": f"t{index}", "NodeID": node, "DesiredState": desired, "Version": {"Index": index},
            "Status": {"State": state, "Timestamp": "2026-01-01T00:00:01Z", "ContainerStatus": {"ExitCode": 3}}}


def test_a_running_task_gives_its_node_s_address_and_the_published_port() -> None:
    tasks = [_task("n2", "shutdown", 5, desired="shutdown"), _task("n1", "running", 9)]
    info = info_from_service(_service(), current_task(tasks), NODES)
    assert (info.id, info.name, info.image, info.status) == ("svc1", "acestream-1", "img", "running")
    assert (info.node_address, info.node) == ("10.0.0.5", "a")
    assert info.ports == {"40000/tcp": [{"HostIp": "10.0.0.5", "HostPort": "19000"}]}


def test_states_on_the_way_back_are_restarting_never_leftovers() -> None:
    assert info_from_service(_service(), _task("n2", "running", 1), NODES).status == "restarting"  # node down
    assert info_from_service(_service(), _task("n1", "pending", 1), NODES).status == "restarting"
    failed = info_from_service(_service(), _task("n1", "failed", 1), NODES)
    assert (failed.status, failed.exit_code, failed.node_address) == ("restarting", 3, None)
    assert info_from_service(_service(), None, NODES).status == "created"
    assert info_from_service(_service(replicas=0), None, NODES).status == "exited"


def test_a_manager_reporting_0_0_0_0_is_found_at_its_manager_address() -> None:
    node = {"Status": {"Addr": "0.0.0.0"}, "ManagerStatus": {"Addr": "192.168.1.2:2377"}}
    assert node_address(node) == "192.168.1.2"


@pytest.mark.parametrize(("status", "message", "error"), [
    (404, "service acestream-9 not found", ContainerNotFound),
    (409, "rpc error: name conflicts with an existing object", NameConflict),
    (503, "This node is not a swarm manager.", RuntimeUnavailable),
    (500, "Bind for 0.0.0.0:19000 failed: port is already allocated", PortUnavailable),
])
def test_engine_api_errors_map_to_aceorch_errors(status: int, message: str, error: type[Exception]) -> None:
    assert type(translate_status(status, message, "create x")) is error


def test_serve_refuses_swarm_with_a_gluetun_in_one_line_exit_2(tmp_path: Path) -> None:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(tmp_path), "RUNTIME": "swarm",
           "GLUETUN_CONTAINER_NAME": "gluetun", "API_KEY": "k", "DB_URL": f"sqlite:///{tmp_path}/o.db",
           "APP_HOST": "127.0.0.1", "APP_PORT": "1"}
    proc = subprocess.run([sys.executable, "-m", "aceorch", "serve"], cwd=tmp_path, capture_output=True, text=True,
                          env=env, timeout=60)
    assert proc.returncode == 2
    lines = [line for line in (proc.stdout + proc.stderr).splitlines() if line.strip()]
    assert len(lines) == 1 and "RUNTIME=swarm" in lines[0] and "docs/swarm.md" in lines[0], lines
