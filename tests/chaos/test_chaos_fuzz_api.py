"""R4: schemathesis against the OpenAPI document of a running aceorch (process runtime, API_KEY set and sent).

Every operation gets generated cases, valid and invalid (schemathesis' positive and negative generation modes):
20 per operation (derandomized, about 10 s) in the default run, 200 (random) under ``make chaos``;
``CHAOS_EXAMPLES`` sets the number. A second run is stateful: schemathesis infers links between operations
(dependency analysis: the ``container_id`` a provision returns feeds ``/containers/{container_id}``, a started
stream's id feeds its stats and its DELETE, ...) and runs bounded sequences of calls along them, valid and invalid
data alike. The checks, per response:

- **no 5xx**, except the ones api.md documents for a state the fuzzer can legitimately reach:
  503 ProvisioningError ``provisioning_blocked`` (``max_capacity``, ``circuit_breaker``) on the provisioning
  routes, each with a ``Retry-After`` header, and 500 ProvisioningError ``general_error`` on
  ``POST /provision/acestream`` when the request supplied its own ``env.CONF`` (a custom engine command line
  that the engine cannot start with is "a failure of the start", api.md §1 table; the fuzzer sends such CONF).
  ``/readyz`` 503 is documented too, but this service is ready, so it would be a bug here. Any 500
  ``internal error`` is a bug.
- **every error body has a documented shape**: ``{"detail": str}`` (the proxy's routes may add ``"code"``),
  ``{"detail": ProvisioningError}``, or
  FastAPI's 422 list ``{"detail": [{"type","loc","msg","input"}, ...]}`` (a 422 may also be the ProvisioningError
  ``provisioning_rejected``/``rejected_input``: the runtime refused the request's own input);
- schemathesis' own ``status_code_conformance``: the status is one the OpenAPI document declares.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from orchestrator_proc import Orchestrator
from schemathesis.specs.openapi.checks import status_code_conformance

pytestmark = pytest.mark.chaos

#: Cases per operation: 20 in the default run (deterministic), 200 under ``-m chaos`` (random); CHAOS_EXAMPLES wins.
DEFAULT_EXAMPLES, CHAOS_RUN_EXAMPLES = 20, 200
PROVISIONING_ROUTES = {"POST /provision/acestream", "POST /provision", "POST /scale/{demand}"}
#: The built-in proxy's routes and its playlist: their error bodies are ``{"detail": str, "code": str}``.
PROXY_PREFIXES = ("/ace/", "/proxy/", "/playlist.m3u")
ERROR_KEYS = {"error", "code", "message", "recovery_eta_seconds", "can_retry", "should_wait"}


def is_provisioning_error(detail: Any) -> bool:
    return (
        isinstance(detail, dict)
        and set(detail) == ERROR_KEYS
        and detail["error"] in ("provisioning_blocked", "provisioning_failed", "provisioning_rejected")
        and isinstance(detail["code"], str)
        and isinstance(detail["message"], str)
        and (detail["recovery_eta_seconds"] is None or (isinstance(detail["recovery_eta_seconds"], int)
                                                        and detail["recovery_eta_seconds"] >= 0))
        and isinstance(detail["can_retry"], bool)
        and isinstance(detail["should_wait"], bool)
    )


def is_validation_list(detail: Any) -> bool:
    return isinstance(detail, list) and bool(detail) and all(
        isinstance(item, dict) and {"type", "loc", "msg", "input"} <= set(item)
        and isinstance(item["loc"], list) and isinstance(item["msg"], str)
        for item in detail
    )


def problems(label: str, status: int, headers: Any, body: Any, sent_body: Any) -> list[str]:
    """What is wrong with one response (empty when it is fine)."""
    out: list[str] = []
    if status < 400:
        return out
    proxy = label.split(" ", 1)[-1].startswith(PROXY_PREFIXES)
    if proxy and isinstance(body, dict) and isinstance(body.get("code"), str):
        body = {k: v for k, v in body.items() if k != "code"}  # the proxy's errors add a machine-readable code
    if not isinstance(body, dict) or set(body) != {"detail"}:
        return [f"error body is not {{'detail': ...}}: {body!r}"[:300]]
    detail = body["detail"]
    if status == 422:
        rejected = is_provisioning_error(detail) and detail["error"] == "provisioning_rejected"
        if not (is_validation_list(detail) or rejected):
            out.append(f"422 detail is neither FastAPI's list nor provisioning_rejected: {detail!r}"[:300])
    elif not (isinstance(detail, str) or is_provisioning_error(detail)):
        out.append(f"{status} detail is neither a string nor a ProvisioningError: {detail!r}"[:300])
    if status >= 500:
        if status == 503 and "retry-after" not in {k.lower() for k in headers}:
            out.append("503 without Retry-After")
        documented = False
        if label in PROVISIONING_ROUTES and is_provisioning_error(detail):
            if status == 503:
                documented = detail["error"] == "provisioning_blocked" and detail["code"] in (
                    "max_capacity", "circuit_breaker")
            elif status == 500:
                env = sent_body.get("env") if isinstance(sent_body, dict) else None
                documented = (detail["code"] == "general_error" and label == "POST /provision/acestream"
                              and isinstance(env, dict) and "CONF" in env)
        if not documented:
            out.append(f"undocumented {status}: {detail!r}"[:300])
    return out


def test_schemathesis_finds_no_server_error_and_no_odd_error_body(
    orch_factory: Callable[..., Orchestrator], request: pytest.FixtureRequest,
) -> None:
    chaos_run = "chaos" in (request.config.getoption("markexpr", "") or "")
    examples = int(os.environ.get("CHAOS_EXAMPLES") or (CHAOS_RUN_EXAMPLES if chaos_run else DEFAULT_EXAMPLES))
    key = "fuzz-key-r4"
    # A small MAX_UNATTACHED_STREAMS: the fuzzer's made-up stream events reach the cap, so its 429 is checked too.
    o = orch_factory(api_key=key, DEBUG_MODE="true", MAX_REPLICAS="3", STARTUP_TIMEOUT_S="3",
                     CIRCUIT_BREAKER_RECOVERY_TIMEOUT_S="2", IDLE_TTL_S="0", MAX_UNATTACHED_STREAMS="5")
    base = f"http://127.0.0.1:{o.port}"
    schema = schemathesis.openapi.from_url(f"{base}/openapi.json")
    session = requests.Session()
    auth = {"Authorization": f"Bearer {key}"}
    findings: dict[tuple[str, str], str] = {}
    counts: dict[str, int] = {}
    statuses: dict[int, int] = {}
    began = time.monotonic()
    operations = []
    for result in schema.get_all_operations():
        operations.append(result.ok())
    assert len(operations) >= 25, [op.label for op in operations]

    def curl(case: schemathesis.Case) -> str:
        return case.as_curl_command(headers=auth, base_url=base).replace("[Filtered]", f"Bearer {key}")

    def fuzz(op: Any) -> None:
        label = op.label
        strategy = st.one_of(
            op.as_strategy(generation_mode=schemathesis.GenerationMode.POSITIVE),
            op.as_strategy(generation_mode=schemathesis.GenerationMode.NEGATIVE),
        )

        @settings(max_examples=examples, deadline=None, database=None, derandomize=not chaos_run,
                  phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
        @given(case=strategy)
        def run(case: schemathesis.Case) -> None:
            response = case.call(base_url=base, session=session, headers=auth, timeout=30)
            counts[label] = counts.get(label, 0) + 1
            statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
            try:
                body = response.json()
            except ValueError:
                body = response.text if response.status_code >= 400 else None
            found = problems(label, response.status_code, response.headers, body, case.body)
            try:
                case.validate_response(response, checks=[status_code_conformance])
            except (AssertionError, BaseExceptionGroup) as exc:  # schemathesis' Failure / FailureGroup
                found.append(f"status {response.status_code} not declared in the OpenAPI document "
                             f"({type(exc).__name__})")
            for problem in found:
                findings.setdefault((label, problem.split(":")[0]),
                                    f"{problem}\n    reproduce: {curl(case)}")

        run()

    for op in operations:
        fuzz(op)

    seconds = time.monotonic() - began
    total = sum(counts.values())
    print(f"\nR4 schemathesis {schemathesis.__version__}: {total} cases over {len(counts)} operations "
          f"in {seconds:.1f}s (max_examples={examples}); statuses {dict(sorted(statuses.items()))}")
    for (label, _), text in sorted(findings.items()):
        print(f"  {label}: {text}")
    assert len(counts) == len(operations), sorted({op.label for op in operations} - set(counts))
    assert total >= len(operations) * min(examples, 5)
    assert not findings, "\n".join(f"{label}: {text}" for (label, _), text in sorted(findings.items()))


#: Bodies that are not valid JSON for a JSON route: api.md §1 says 422 with FastAPI's list ("malformed JSON too").
MALFORMED = [b"{not json", b"\xff\xfe", b'{"labels": {"a": "\xff"}}', b'{"stream_id": "\xc3"}', b"[1,"]


def test_malformed_json_is_422_list(orch_factory: Callable[..., Orchestrator]) -> None:
    o = orch_factory()
    wrong: list[str] = []
    for path in ("/provision/acestream", "/provision", "/events/stream_started", "/events/stream_ended"):
        for body in MALFORMED:
            r = o.client.post(path, content=body, headers={**o.auth, "Content-Type": "application/json"})
            if r.status_code != 422 or not is_validation_list(r.json()["detail"]):
                wrong.append(f"curl -X POST -H 'Authorization: Bearer {o.api_key}' -H 'Content-Type: "
                             f"application/json' --data-binary $'{repr(body)[2:-1]}' {o.client.base_url}{path}"
                             f"  -> {r.status_code} {r.text}")
    assert not wrong, "\n".join(wrong)


#: Stateful scenarios: 20 in the default run, 100 under ``-m chaos``; each is at most STATEFUL_STEPS calls.
DEFAULT_SCENARIOS, CHAOS_RUN_SCENARIOS, STATEFUL_STEPS = 20, 100, 8


def add_engine_links(document: dict[str, Any]) -> int:
    """OpenAPI links from an engine start to the routes that take its ``container_id``; how many were added.

    Schemathesis infers links from names and shapes, but only from producers it recognises (here the generic
    ``POST /provision``, which the process runtime refuses); the engine start is the producer this service has.
    """
    targets = {
        "read_engine": ("/engines/{container_id}", "get", "path.container_id"),
        "read_container": ("/containers/{container_id}", "get", "path.container_id"),
        "delete_container": ("/containers/{container_id}", "delete", "path.container_id"),
        "streams_of_engine": ("/streams", "get", "query.container_id"),
    }
    paths = document["paths"]
    response = paths["/provision/acestream"]["post"]["responses"]["200"]
    links = response.setdefault("links", {})
    for name, (path, method, parameter) in targets.items():
        if method in paths.get(path, {}):
            ref = "#/paths/" + path.replace("~", "~0").replace("/", "~1") + "/" + method
            links[name] = {"operationRef": ref, "parameters": {parameter: "$response.body#/container_id"}}
    return len(links)


def test_stateful_sequences_along_inferred_links_find_no_server_error(
    orch_factory: Callable[..., Orchestrator], request: pytest.FixtureRequest,
) -> None:
    chaos_run = "chaos" in (request.config.getoption("markexpr", "") or "")
    scenarios = int(os.environ.get("CHAOS_SCENARIOS") or (CHAOS_RUN_SCENARIOS if chaos_run else DEFAULT_SCENARIOS))
    key = "fuzz-key-r4s"
    o = orch_factory(api_key=key, DEBUG_MODE="true", MAX_REPLICAS="3", STARTUP_TIMEOUT_S="3",
                     CIRCUIT_BREAKER_RECOVERY_TIMEOUT_S="2", IDLE_TTL_S="0")
    base = f"http://127.0.0.1:{o.port}"
    schema = schemathesis.openapi.from_url(f"{base}/openapi.json")
    assert schema.config.phases.stateful.enabled
    declared = add_engine_links(schema.raw_schema)
    inferred = schema.analysis.inject_links()
    assert inferred >= 4, f"schemathesis {schemathesis.__version__} inferred only {inferred} links"
    session = requests.Session()
    auth = {"Authorization": f"Bearer {key}"}
    findings: dict[tuple[str, str], str] = {}
    statuses: dict[int, int] = {}
    labels: set[str] = set()
    began = time.monotonic()

    def curl(case: schemathesis.Case) -> str:
        return case.as_curl_command(headers=auth, base_url=base).replace("[Filtered]", f"Bearer {key}")

    class Workflow(schema.as_state_machine()):  # type: ignore[misc]
        def get_call_kwargs(self, case: schemathesis.Case) -> dict[str, Any]:
            return {"base_url": base, "session": session, "headers": auth, "timeout": 30}

        def teardown(self) -> None:
            # Every scenario starts from an empty service, so that replaying one (as Hypothesis does) meets the
            # same answers: no engine, no started stream, both breakers closed.
            for engine in session.get(f"{base}/engines", headers=auth, timeout=30).json():
                session.delete(f"{base}/containers/{engine['container_id']}", headers=auth, timeout=30)
            for stream in session.get(f"{base}/streams", params={"status": "started"}, headers=auth,
                                      timeout=30).json():
                session.delete(f"{base}/streams/{stream['id']}", headers=auth, timeout=30)
            session.post(f"{base}/health/circuit-breaker/reset", headers=auth, timeout=30)

        def validate_response(self, response: Any, case: schemathesis.Case,
                              additional_checks: Any = None, **kwargs: Any) -> None:
            label = case.operation.label
            labels.add(label)
            statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
            try:
                body = response.json()
            except ValueError:
                body = response.text if response.status_code >= 400 else None
            found = problems(label, response.status_code, response.headers, body, case.body)
            try:
                case.validate_response(response, checks=[status_code_conformance])
            except (AssertionError, BaseExceptionGroup) as exc:
                found.append(f"status {response.status_code} not declared in the OpenAPI document "
                             f"({type(exc).__name__})")
            for problem in found:
                findings.setdefault((label, problem.split(":")[0]), f"{problem}\n    reproduce: {curl(case)}")

    Workflow.run(settings=settings(
        max_examples=scenarios, stateful_step_count=STATEFUL_STEPS, deadline=None, database=None,
        derandomize=not chaos_run, phases=[Phase.generate], suppress_health_check=list(HealthCheck),
    ))
    seconds = time.monotonic() - began
    total = sum(statuses.values())
    print(f"\nR4 stateful, schemathesis {schemathesis.__version__}: {declared} declared and {inferred} inferred "
          f"links, {total} calls over {len(labels)} operations in {seconds:.1f}s "
          f"({scenarios} scenarios of up to {STATEFUL_STEPS} steps); "
          f"statuses {dict(sorted(statuses.items()))}")
    for (label, _), text in sorted(findings.items()):
        print(f"  {label}: {text}")
    print("  operations:", ", ".join(sorted(labels)))
    assert total >= scenarios and len(labels) >= 3, (total, sorted(labels))
    assert not findings, "\n".join(f"{label}: {text}" for (label, _), text in sorted(findings.items()))
