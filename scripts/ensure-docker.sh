#!/usr/bin/env bash
# Make sure a Docker engine answers. A daemon that already answers (DOCKER_HOST or the default socket) is used
# as it is and never touched. Otherwise start dockerd in the background (iptables off, as on these machines) with
# its log in .cache/dockerd.log, detached so it outlives make, and wait until `docker info` answers.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="$ROOT/.cache"
DEADLINE_S="${DOCKER_START_TIMEOUT_S:-30}"

# The docker CLI negotiates the API version with the daemon (a 28.x CLI talks to a 20.10 daemon, API 1.41);
# a DOCKER_API_VERSION set by the user is respected, none is forced here (newer daemons refuse old versions).

answers() { timeout 10 docker info >/dev/null 2>&1; }

if answers; then
    exit 0
fi

if [[ -n "${DOCKER_HOST:-}" ]]; then
    echo "ensure-docker: DOCKER_HOST=$DOCKER_HOST is set but does not answer; not starting a local daemon" >&2
    exit 1
fi

if ! command -v dockerd >/dev/null 2>&1; then
    echo "ensure-docker: dockerd not found (run scripts/ensure-system.sh)" >&2
    exit 1
fi

mkdir -p "$CACHE"
# A host dockerd started earlier may still be coming up: do not start a second one. Only the host daemon's own
# pidfile counts: other dockerds (the swarm lab's nodes) have pidfiles of their own.
pidfile=/var/run/docker.pid
if ! { [[ -s "$pidfile" ]] && kill -0 "$(cat "$pidfile")" 2>/dev/null; }; then
    echo "ensure-docker: starting dockerd (log: $CACHE/dockerd.log)" >&2
    setsid nohup dockerd --iptables=false --ip-masq=false >>"$CACHE/dockerd.log" 2>&1 </dev/null &
    echo $! >"$CACHE/dockerd.pid"
fi

end=$((SECONDS + DEADLINE_S))
while ((SECONDS < end)); do
    if answers; then
        exit 0
    fi
    sleep 0.3
done

echo "ensure-docker: docker did not answer within ${DEADLINE_S}s; last log lines:" >&2
tail -n 20 "$CACHE/dockerd.log" >&2 || true
exit 1
