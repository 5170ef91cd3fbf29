#!/usr/bin/env bash
# Runs the pytest suite as two processes side by side and fails if either fails.
#
#   lane "host_docker": every test that uses the host's Docker engine (tests/conftest.py marks them). They stay in
#                       one process because that engine is shared state: the fixtures remove every test-labelled
#                       container, and a chaos drill restarts the daemon.
#   lane "rest":        everything else: unit, process-runtime, PostgreSQL, Prometheus, Chromium and the swarm
#                       suite (whose daemons are its own).
#
# Arguments go to both pytest processes. A lane that selects no test (exit 5) is fine as long as the other ran
# some; both selecting none is exit 5, as pytest's own.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

BIN=.venv/bin
mkdir -p .cache
rest_log=.cache/test-lane-rest.log

ACEORCH_TEST_LANE=rest "$BIN/pytest" -m "not host_docker" "$@" >"$rest_log" 2>&1 &
rest_pid=$!
trap 'kill "$rest_pid" 2>/dev/null; wait "$rest_pid" 2>/dev/null' INT TERM

echo "test-lanes: lane rest runs in the background (pid $rest_pid, log $rest_log); lane host_docker follows"
"$BIN/pytest" -m host_docker "$@"
docker_rc=$?
wait "$rest_pid"
rest_rc=$?
trap - INT TERM

echo
echo "================================ lane rest (not host_docker) ================================"
cat "$rest_log"
echo "test-lanes: lane host_docker exit $docker_rc, lane rest exit $rest_rc"

ok() { [ "$1" -eq 0 ] || [ "$1" -eq 5 ]; }
if ok "$docker_rc" && ok "$rest_rc"; then
    if [ "$docker_rc" -eq 5 ] && [ "$rest_rc" -eq 5 ]; then
        exit 5
    fi
    exit 0
fi
[ "$docker_rc" -ne 0 ] && [ "$docker_rc" -ne 5 ] && exit "$docker_rc"
exit "$rest_rc"
