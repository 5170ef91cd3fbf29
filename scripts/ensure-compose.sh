#!/usr/bin/env bash
# Make sure a docker-compose implementation is available, offline-friendly:
#   - the Compose v2 plugin (`docker compose`) if the Docker CLI already has it, or
#   - `docker-compose` (Debian's package docker-compose = Compose 1.29, Python) if installed,
#   - otherwise install Debian's docker-compose (apt-get, only when missing).
# Prints the command to use on stdout ("docker compose" or "docker-compose"), nothing else.
set -euo pipefail

if docker compose version >/dev/null 2>&1; then
    echo "docker compose"
    exit 0
fi
if command -v docker-compose >/dev/null 2>&1 && docker-compose version >/dev/null 2>&1; then
    echo "docker-compose"
    exit 0
fi

echo "ensure-compose: installing Debian's docker-compose" >&2
SUDO=""
if [[ $(id -u) -ne 0 ]]; then
    SUDO="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
if ! $SUDO apt-get install -y -qq --no-install-recommends docker-compose >&2; then
    $SUDO apt-get update -qq >&2
    $SUDO apt-get install -y -qq --no-install-recommends docker-compose >&2
fi
docker-compose version >/dev/null
echo "docker-compose"
