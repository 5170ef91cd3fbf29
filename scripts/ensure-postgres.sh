#!/usr/bin/env bash
# Make sure Debian's PostgreSQL server binaries are installed, and print their directory
# (/usr/lib/postgresql/<version>/bin). The tests start a throwaway cluster from them on a free local port
# (tests/pg_fixtures.py) and stop it afterwards; this script never starts a server itself.
# Fast path: one glob, no network.
set -euo pipefail

find_bin() {
    local dir
    for dir in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
        if [[ -x "$dir/initdb" && -x "$dir/pg_ctl" ]]; then
            echo "$dir"
            return 0
        fi
    done
    return 1
}

if ! find_bin >/dev/null; then
    echo "ensure-postgres: installing postgresql" >&2
    SUDO=""
    if [[ $(id -u) -ne 0 ]]; then
        SUDO="sudo"
    fi
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -qq
    $SUDO apt-get install -y -qq --no-install-recommends postgresql >&2
fi

# initdb refuses to run as root: the cluster then runs as the postgres user (made by the Debian package).
if [[ $(id -u) -eq 0 ]] && ! id -u postgres >/dev/null 2>&1; then
    useradd --system --home-dir /var/lib/postgresql --shell /bin/bash postgres
fi

find_bin
