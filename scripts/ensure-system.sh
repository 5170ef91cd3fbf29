#!/usr/bin/env bash
# Install the Debian packages the project's tests and images need, only when one is missing.
# Fast path: one dpkg-query call, no network.
set -euo pipefail

packages=(docker.io debootstrap jq chromium lnav faketime postgresql prometheus ffmpeg)

missing=()
for pkg in "${packages[@]}"; do
    status=$(dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null || true)
    if [[ "$status" != "installed" ]]; then
        missing+=("$pkg")
    fi
done

if [[ ${#missing[@]} -eq 0 ]]; then
    exit 0
fi

echo "ensure-system: installing ${missing[*]}" >&2
SUDO=""
if [[ $(id -u) -ne 0 ]]; then
    SUDO="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"

# Debian's prometheus package starts a system Prometheus on :9090 where services may start (no policy-rc.d). The
# tests run their own on free loopback ports: the packaged one, installed just now, is stopped and not enabled.
if [[ " ${missing[*]} " == *" prometheus "* ]]; then
    if [[ -d /run/systemd/system ]]; then
        $SUDO systemctl disable --now prometheus >/dev/null 2>&1 || true
    else
        $SUDO service prometheus stop >/dev/null 2>&1 || true
    fi
fi
