#!/usr/bin/env bash
# Build the project's images offline, each only when it is missing or stale:
#   aceorch/base:bookworm       debootstrap (minbase + python3) from the machine's own Debian mirror, docker import
#   aceorch/engine-sim:latest   docker/engine-sim.Dockerfile  (python3 -m aceorch.sim engine)
#   aceorch/gluetun-sim:latest  docker/gluetun-sim.Dockerfile (python3 -m aceorch.sim gluetun, with a HEALTHCHECK)
# The sim images carry the label aceorch.sim-hash (simulator sources + Dockerfile + base image id) and are rebuilt
# when it changes. The rootfs tarball is cached in .cache/ so a lost base image is re-imported in seconds.
#
# Environment: SIM_SRC (default src/aceorch/sim) lets a test build from another copy of the simulator;
# BASE_IMAGE / ENGINE_IMAGE / GLUETUN_IMAGE override the tags; ACEORCH_CACHE the cache folder (default .cache);
# FORCE=1 rebuilds the sim images.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="${ACEORCH_CACHE:-$ROOT/.cache}"
SIM_SRC="${SIM_SRC:-$ROOT/src/aceorch/sim}"
BASE_IMAGE="${BASE_IMAGE:-aceorch/base:bookworm}"
ENGINE_IMAGE="${ENGINE_IMAGE:-aceorch/engine-sim:latest}"
GLUETUN_IMAGE="${GLUETUN_IMAGE:-aceorch/gluetun-sim:latest}"
SUITE=bookworm
ROOTFS_TAR="$CACHE/rootfs-$SUITE-python3.tar"

# The daemon may be 20.10 and buildx absent: use the classic builder, which both ends support.
export DOCKER_BUILDKIT=0

log() { echo "build-images: $*" >&2; }

image_exists() { docker image inspect "$1" >/dev/null 2>&1; }

# The Debian mirror this machine's apt uses: the first URI serving the plain suite (not -security/-updates).
debian_mirror() {
    local uri=""
    shopt -s nullglob
    local f
    for f in /etc/apt/sources.list.d/*.sources; do
        uri=$(awk -v suite="$SUITE" '
            function flush() { if (uris != "" && hit && first == "") first = uris; uris = ""; hit = 0 }
            /^[[:space:]]*$/ { flush(); next }
            /^[[:space:]]*#/ { next }
            tolower($1) == "uris:" { uris = $2 }
            tolower($1) == "suites:" { for (i = 2; i <= NF; i++) if ($i == suite) hit = 1 }
            END { flush(); print first }' "$f")
        [[ -n "$uri" ]] && break
    done
    if [[ -z "$uri" ]]; then
        for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
            [[ -r "$f" ]] || continue
            uri=$(awk -v suite="$SUITE" '
                $1 == "deb" {
                    i = 2
                    if ($i ~ /^\[/) { while (i <= NF && $i !~ /\]$/) i++; i++ }
                    if ($(i + 1) == suite) { print $i; exit }
                }' "$f")
            [[ -n "$uri" ]] && break
        done
    fi
    if [[ -z "$uri" ]]; then
        log "no Debian mirror for '$SUITE' found in the apt sources"
        return 1
    fi
    echo "$uri"
}

build_rootfs_tar() {
    local mirror rootfs
    mirror=$(debian_mirror)
    rootfs="$CACHE/rootfs-$SUITE.tmp"
    rm -rf "$rootfs"
    mkdir -p "$rootfs"
    log "debootstrap $SUITE from the apt mirror (about 40 s)"
    if ! debootstrap --variant=minbase --include=python3 "$SUITE" "$rootfs" "$mirror" >"$CACHE/debootstrap.log" 2>&1; then
        log "debootstrap failed; see $CACHE/debootstrap.log"
        tail -n 20 "$CACHE/debootstrap.log" >&2 || true
        rm -rf "$rootfs"
        return 1
    fi
    # Downloaded packages and index files only make the image bigger.
    rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/* || true
    tar --numeric-owner -C "$rootfs" -cf "$ROOTFS_TAR.tmp" .
    mv "$ROOTFS_TAR.tmp" "$ROOTFS_TAR"
    rm -rf "$rootfs"
}

ensure_base() {
    if image_exists "$BASE_IMAGE"; then
        return 0
    fi
    mkdir -p "$CACHE"
    if [[ ! -s "$ROOTFS_TAR" ]]; then
        build_rootfs_tar
    fi
    log "importing $BASE_IMAGE"
    docker import \
        --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        --change 'ENV LANG=C.UTF-8' \
        --change 'CMD ["python3"]' \
        "$ROOTFS_TAR" "$BASE_IMAGE" >/dev/null
}

# Hash of everything that goes into a sim image: simulator sources (paths relative, so any checkout agrees),
# the Dockerfile, and the base image id.
sim_hash() {
    local dockerfile="$1" base_id
    base_id=$(docker image inspect -f '{{.Id}}' "$BASE_IMAGE")
    {
        (cd "$SIM_SRC" && find . -type f -name '*.py' -not -path '*/__pycache__/*' -print0 | LC_ALL=C sort -z |
            xargs -0 -r sha256sum)
        sha256sum <"$dockerfile"
        echo "$base_id"
    } | sha256sum | cut -c1-16
}

ensure_sim_image() {
    local image="$1" dockerfile="$2" want have ctx
    if [[ ! -f "$SIM_SRC/__main__.py" ]]; then
        log "simulator sources not found at $SIM_SRC (need __main__.py)"
        return 1
    fi
    want=$(sim_hash "$dockerfile")
    have=$(docker image inspect -f '{{index .Config.Labels "aceorch.sim-hash"}}' "$image" 2>/dev/null || true)
    if [[ "${FORCE:-0}" != "1" && "$have" == "$want" ]]; then
        return 0
    fi
    log "building $image (sim hash $want)"
    ctx=$(mktemp -d "${TMPDIR:-/tmp}/aceorch-img.XXXXXX")
    # shellcheck disable=SC2064
    trap "rm -rf '$ctx'" RETURN
    mkdir -p "$ctx/aceorch/sim"
    (cd "$SIM_SRC" && find . -type f -name '*.py' -not -path '*/__pycache__/*' -print0 |
        xargs -0 -r cp --parents -t "$ctx/aceorch/sim")
    : >"$ctx/aceorch/__init__.py"
    cp "$dockerfile" "$ctx/Dockerfile"
    if ! docker build -q --build-arg "BASE=$BASE_IMAGE" --label "aceorch.sim-hash=$want" -t "$image" "$ctx" \
        >"$CACHE/build-$(basename "$dockerfile" .Dockerfile).log" 2>&1; then
        log "docker build of $image failed:"
        cat "$CACHE/build-$(basename "$dockerfile" .Dockerfile).log" >&2
        return 1
    fi
}

mkdir -p "$CACHE"
ensure_base
ensure_sim_image "$ENGINE_IMAGE" "$ROOT/docker/engine-sim.Dockerfile"
ensure_sim_image "$GLUETUN_IMAGE" "$ROOT/docker/gluetun-sim.Dockerfile"
# Dangling layers from replaced sim images would pile up on every source change.
docker image prune -f --filter "label=aceorch.sim-hash" >/dev/null 2>&1 || true
