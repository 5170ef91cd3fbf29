#!/usr/bin/env bash
# Build the orchestrator image offline: aceorch/orchestrator:latest FROM aceorch/base:bookworm (no pip inside).
#
#   1. The dependencies of pyproject.toml are installed on the host with the venv's pip
#      (`pip install --target .cache/orch-deps-<hash>`), once per pyproject.toml version: reruns need no network.
#   2. A build context is staged in .cache/orch-context/: the Dockerfile plus prebuilt-site/ = those
#      dependencies + the current src/aceorch (package data included, no __pycache__).
#   3. `docker build --build-arg BASE=... --build-arg SITE=prebuilt` only copies it (Dockerfile, SITE=prebuilt).
# The image carries the label aceorch.orch-hash (dependencies, sources, Dockerfile, base image id) and is not
# rebuilt while it matches, so a rerun takes about a second. FORCE=1 rebuilds.
#
# Environment: BASE_IMAGE (default aceorch/base:bookworm; built by scripts/build-images.sh when missing),
# ORCH_IMAGE (default aceorch/orchestrator:latest), PIP (default .venv/bin/pip), ACEORCH_CACHE (default .cache).
# The Python minor version of PIP must be the base image's (the wheels carry compiled extensions).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="${ACEORCH_CACHE:-$ROOT/.cache}"
BASE_IMAGE="${BASE_IMAGE:-aceorch/base:bookworm}"
ORCH_IMAGE="${ORCH_IMAGE:-aceorch/orchestrator:latest}"
PIP="${PIP:-$ROOT/.venv/bin/pip}"
CTX="$CACHE/orch-context"

export DOCKER_BUILDKIT=0

log() { echo "build-orchestrator-image: $*" >&2; }

mkdir -p "$CACHE"
if ! docker image inspect "$BASE_IMAGE" >/dev/null 2>&1; then
    log "$BASE_IMAGE is missing; building it with scripts/build-images.sh"
    BASE_IMAGE="$BASE_IMAGE" "$ROOT/scripts/build-images.sh"
fi

if [[ ! -x "$PIP" ]]; then
    log "no pip at $PIP (run make venv, or set PIP)"
    exit 1
fi
PY="$(dirname "$PIP")/python"
[[ -x "$PY" ]] || PY=python3
host_minor=$("$PY" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
base_minor=$(docker run --rm --network none --entrypoint python3 "$BASE_IMAGE" \
    -c 'import sys; print("%d.%d" % sys.version_info[:2])')
if [[ "$host_minor" != "$base_minor" ]]; then
    log "the host's Python is $host_minor but $BASE_IMAGE has $base_minor: prebuilt wheels would not load"
    exit 1
fi

# 1. Dependencies, keyed on pyproject.toml and the Python version.
deps_key=$( { sha256sum <"$ROOT/pyproject.toml"; echo "$host_minor"; } | sha256sum | cut -c1-16)
DEPS="$CACHE/orch-deps-$deps_key"
if [[ ! -f "$DEPS/.complete" ]]; then
    log "installing the dependencies into $DEPS (pip --target; needs the package index once)"
    rm -rf "$DEPS" "$DEPS.tmp"
    "$PY" - "$ROOT/pyproject.toml" >"$CACHE/orch-requirements.txt" <<'PYEOF'
import sys, tomllib
with open(sys.argv[1], "rb") as fh:
    print("\n".join(tomllib.load(fh)["project"]["dependencies"]))
PYEOF
    "$PIP" install --quiet --disable-pip-version-check --no-compile --target "$DEPS.tmp" \
        -r "$CACHE/orch-requirements.txt" >"$CACHE/orch-pip.log" 2>&1 || {
        log "pip install failed; see $CACHE/orch-pip.log"
        tail -n 20 "$CACHE/orch-pip.log" >&2
        exit 1
    }
    rm -rf "$DEPS.tmp/bin"
    touch "$DEPS.tmp/.complete"
    mv "$DEPS.tmp" "$DEPS"
    # Older dependency sets only take space.
    find "$CACHE" -maxdepth 1 -type d -name 'orch-deps-*' ! -name "orch-deps-$deps_key" -exec rm -rf {} + || true
fi

# 2. The image's hash: dependencies, sources, Dockerfile, base image.
base_id=$(docker image inspect -f '{{.Id}}' "$BASE_IMAGE")
want=$(
    {
        echo "$deps_key"
        (cd "$ROOT/src" && find aceorch -type f -not -path '*/__pycache__/*' -not -name '*.pyc' -print0 |
            LC_ALL=C sort -z | xargs -0 -r sha256sum)
        sha256sum <"$ROOT/Dockerfile"
        echo "$base_id"
    } | sha256sum | cut -c1-16
)
have=$(docker image inspect -f '{{index .Config.Labels "aceorch.orch-hash"}}' "$ORCH_IMAGE" 2>/dev/null || true)
if [[ "${FORCE:-0}" != "1" && "$have" == "$want" && -d "$CTX/prebuilt-site/aceorch" ]]; then
    exit 0
fi

# 3. The staged context (kept, so that `docker-compose -f docker-compose.yml -f docker-compose.test.yml build`
#    works offline too).
log "building $ORCH_IMAGE from $BASE_IMAGE (hash $want)"
rm -rf "$CTX.tmp"
mkdir -p "$CTX.tmp"
cp -a "$DEPS" "$CTX.tmp/prebuilt-site"
rm -f "$CTX.tmp/prebuilt-site/.complete"
(cd "$ROOT/src" && find aceorch -type f -not -path '*/__pycache__/*' -not -name '*.pyc' -print0 |
    xargs -0 -r cp --parents -t "$CTX.tmp/prebuilt-site")
cp "$ROOT/Dockerfile" "$CTX.tmp/Dockerfile"
printf '%s\n' '**/__pycache__' >"$CTX.tmp/.dockerignore"
rm -rf "$CTX"
mv "$CTX.tmp" "$CTX"

if ! docker build -q --build-arg "BASE=$BASE_IMAGE" --build-arg SITE=prebuilt \
    --label "aceorch.orch-hash=$want" -t "$ORCH_IMAGE" "$CTX" >"$CACHE/build-orchestrator.log" 2>&1; then
    log "docker build of $ORCH_IMAGE failed:"
    cat "$CACHE/build-orchestrator.log" >&2
    exit 1
fi
docker image prune -f --filter "label=aceorch.orch-hash" >/dev/null 2>&1 || true
