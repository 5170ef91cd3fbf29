#!/usr/bin/env bash
# A real multi-node Docker Swarm on one machine, for aceorch's swarm runtime tests.
#
#   scripts/swarm-lab.sh up [N]        N nodes (default 3): node 1 is the manager, the others workers
#   scripts/swarm-lab.sh down          removes all of it (services, swarm, daemons, mounts, namespaces, bridge)
#   scripts/swarm-lab.sh env           prints the export DOCKER_HOST=... line for the manager
#   scripts/swarm-lab.sh status        the nodes as the manager sees them
#   scripts/swarm-lab.sh stop-node I   stops node I's daemon (SIGTERM, waits), as a node failure
#   scripts/swarm-lab.sh start-node I  starts node I's daemon again; it rejoins on its own
#   scripts/swarm-lab.sh check         says whether a lab can run here (make test's swarm step); always exits 0
#
# Every node is its own dockerd in its own network namespace (entered with nsenter --net, plus unshare --uts for
# its own hostname, so its own node name), with its own data-root, exec-root, pidfile, socket, --bip and
# --cgroup-parent, iptables and masquerading off. The namespaces hang off one Linux bridge on a private subnet
# that this script creates, without a default route: no traffic leaves the machine. The daemons prefer local
# images (DOCKER_SERVICE_PREFER_OFFLINE_IMAGE=1), and the engine images are copied in from the host's own Docker
# engine with docker save / docker load. The host's engine is otherwise untouched. Idempotent; run as root.
set -euo pipefail

LAB=${SWARM_LAB_DIR:-/var/lib/aceorch-swarm-lab}
BRIDGE=${SWARM_LAB_BRIDGE:-acesw0}
SUBNET_PREFIX=${SWARM_LAB_SUBNET:-192.168.213}   # /24: the host is .1, node I is .(10+I)
IMAGES=${SWARM_LAB_IMAGES:-aceorch/engine-sim:latest}
HOST_DOCKER=${SWARM_LAB_HOST_DOCKER:-unix:///var/run/docker.sock}
MAX_NODES=9

say() { echo "swarm-lab: $*" >&2; }
die() { say "$*"; exit 1; }

node_dir() { echo "$LAB/node$1"; }
node_ns() { echo "aceswarm$1"; }
node_addr() { echo "$SUBNET_PREFIX.$((10 + $1))"; }
node_sock() { echo "unix://$(node_dir "$1")/docker.sock"; }
node_docker() { local i=$1; shift; DOCKER_HOST=$(node_sock "$i") docker "$@"; }
node_pid() { local f; f="$(node_dir "$1")/docker.pid"; [[ -s $f ]] && cat "$f" || true; }
node_alive() { local pid; pid=$(node_pid "$1"); [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null; }
node_count() { [[ -s $LAB/nodes ]] && cat "$LAB/nodes" || echo 0; }

require_root() {
    [[ $(id -u) -eq 0 ]] || die "must run as root (it creates network namespaces, a bridge and Docker daemons)"
    for tool in dockerd docker nsenter unshare ip; do
        command -v "$tool" >/dev/null || die "$tool is not installed"
    done
}

# The daemon of node I, in its namespace, with its own hostname; returns once its API answers.
start_daemon() {
    local i=$1 dir ns
    dir=$(node_dir "$i"); ns=$(node_ns "$i")
    node_alive "$i" && return 0
    mkdir -p "$dir/data" "$dir/exec"
    [[ -f $dir/daemon.json ]] || echo '{}' >"$dir/daemon.json"
    rm -f "$dir/docker.pid" "$dir/docker.sock"
    DOCKER_SERVICE_PREFER_OFFLINE_IMAGE=1 setsid nsenter --net="/var/run/netns/$ns" \
        unshare --uts sh -c "hostname swarm-node$i && exec dockerd \
            --config-file '$dir/daemon.json' \
            --data-root '$dir/data' --exec-root '$dir/exec' --pidfile '$dir/docker.pid' \
            -H '$(node_sock "$i")' \
            --iptables=false --ip-masq=false --bip 10.214.$i.1/24 \
            --cgroup-parent aceorch-swarm-node$i --storage-driver overlay2" \
        >>"$dir/dockerd.log" 2>&1 </dev/null &
    local waited=0
    until node_docker "$i" version >/dev/null 2>&1; do
        sleep 0.2; waited=$((waited + 1))
        [[ $waited -lt 150 ]] || die "node $i's daemon did not answer within 30 s (see $dir/dockerd.log)"
    done
}

# The pids of node I's dockerd processes: the one in its pid file, and any other started on its data-root (a
# daemon left by an interrupted start), found by its own command line.
node_pids() {
    local i=$1 dir f pid
    dir=$(node_dir "$i")
    { node_pid "$i"; echo  # the pid file has no newline of its own
      for f in /proc/[0-9]*/cmdline; do
          if [[ $(tr '\0' ' ' 2>/dev/null <"$f") == "dockerd "*"--data-root $dir/data "* ]]; then
              pid=${f#/proc/}; echo "${pid%/cmdline}"
          fi
      done; } | sort -u
}

# SIGTERM by pid, then wait (SIGKILL after 30 s).
stop_daemon() {
    local i=$1 pid waited
    for pid in $(node_pids "$i"); do
        kill -0 "$pid" 2>/dev/null || continue
        kill -TERM "$pid" 2>/dev/null || true
        waited=0
        while kill -0 "$pid" 2>/dev/null; do
            sleep 0.2; waited=$((waited + 1))
            if [[ $waited -eq 150 ]]; then say "node $i's daemon ignores SIGTERM; killing it"; kill -KILL "$pid" || true; fi
        done
    done
    rm -f "$(node_dir "$i")/docker.pid"
}

make_network() {
    local n=$1 i ns
    if ! ip link show "$BRIDGE" >/dev/null 2>&1; then
        ip link add "$BRIDGE" type bridge
        ip addr add "$SUBNET_PREFIX.1/24" dev "$BRIDGE"
    fi
    # The bridge's frames bypass the host's iptables, whatever its FORWARD policy.
    ip link set "$BRIDGE" type bridge nf_call_iptables 0 2>/dev/null || true
    ip link set "$BRIDGE" up
    for ((i = 1; i <= n; i++)); do
        ns=$(node_ns "$i")
        ip netns list | grep -qw "^$ns" || ip netns add "$ns"
        if ! ip link show "${ns}h" >/dev/null 2>&1; then
            ip link add "${ns}h" type veth peer name eth0 netns "$ns"
            ip link set "${ns}h" master "$BRIDGE" up
            ip -n "$ns" addr add "$(node_addr "$i")/24" dev eth0
        fi
        ip -n "$ns" link set lo up
        ip -n "$ns" link set eth0 up
    done
}

load_images() {
    local n=$1 i tar="$LAB/images.tar" pids=()
    # shellcheck disable=SC2086
    DOCKER_HOST=$HOST_DOCKER docker save -o "$tar" $IMAGES || die "docker save $IMAGES from the host engine failed (scripts/build-images.sh builds them)"
    for ((i = 1; i <= n; i++)); do
        node_docker "$i" load -q -i "$tar" >/dev/null & pids+=($!)
    done
    for pid in "${pids[@]}"; do wait "$pid" || die "docker load into a node failed"; done
    rm -f "$tar"
}

form_swarm() {
    local n=$1 i token
    if [[ $(node_docker 1 info --format '{{.Swarm.LocalNodeState}}') != active ]]; then
        node_docker 1 swarm init --advertise-addr "$(node_addr 1)" --listen-addr "$(node_addr 1):2377" >/dev/null
    fi
    token=$(node_docker 1 swarm join-token -q worker)
    for ((i = 2; i <= n; i++)); do
        if [[ $(node_docker "$i" info --format '{{.Swarm.LocalNodeState}}') != active ]]; then
            node_docker "$i" swarm join --token "$token" --advertise-addr "$(node_addr "$i")" \
                --listen-addr "$(node_addr "$i"):2377" "$(node_addr 1):2377" >/dev/null
        fi
    done
    local waited=0
    until [[ $(node_docker 1 node ls --format '{{.Status}}' | grep -c Ready) -eq $n ]]; do
        sleep 0.2; waited=$((waited + 1))
        [[ $waited -lt 150 ]] || die "the swarm does not show $n Ready nodes within 30 s"
    done
}

healthy() {
    local n i
    n=$(node_count)
    [[ $n -gt 0 ]] || return 1
    for ((i = 1; i <= n; i++)); do node_alive "$i" || return 1; done
    [[ $(node_docker 1 node ls --format '{{.Status}}' 2>/dev/null | grep -c Ready) -eq $n ]]
}

print_env() { echo "export DOCKER_HOST=$(node_sock 1)"; }

cmd_up() {
    local n=${1:-3} i
    [[ $n =~ ^[1-9]$ && $n -le $MAX_NODES ]] || die "N must be 1..$MAX_NODES"
    require_root
    if [[ $(node_count) -eq $n ]] && healthy; then
        say "the $n-node lab is already up"
        print_env; return 0
    fi
    [[ $(node_count) -eq 0 && ! -d $LAB ]] || cmd_down
    local begin=$SECONDS
    trap 'say "up failed; removing the partial lab"; cmd_down' EXIT
    mkdir -p "$LAB"
    echo "$n" >"$LAB/nodes"
    make_network "$n"
    for ((i = 1; i <= n; i++)); do start_daemon "$i" & done
    wait
    for ((i = 1; i <= n; i++)); do node_alive "$i" || die "node $i's daemon did not start"; done
    load_images "$n"
    form_swarm "$n"
    trap - EXIT
    say "$n nodes up in $((SECONDS - begin)) s; manager $(node_addr 1), workers $(for ((i = 2; i <= n; i++)); do printf '%s ' "$(node_addr "$i")"; done)"
    print_env
}

# Unmounts everything below the lab folder, deepest first.
unmount_lab() {
    local mnt
    awk -v lab="$LAB/" 'index($2, lab) == 1 { print $2 }' /proc/self/mounts | sort -r | while read -r mnt; do
        umount -l "$mnt" 2>/dev/null || true
    done
}

cmd_down() {
    require_root
    local n i ns cg
    n=$(node_count)
    [[ $n -gt 0 ]] || n=$MAX_NODES
    if [[ -d $LAB ]] && node_alive 1; then
        node_docker 1 service ls -q 2>/dev/null | xargs -r env DOCKER_HOST="$(node_sock 1)" docker service rm >/dev/null 2>&1 || true
    fi
    for ((i = n; i >= 1; i--)); do
        if node_alive "$i"; then
            node_docker "$i" swarm leave --force >/dev/null 2>&1 || true
        fi
    done
    for ((i = 1; i <= n; i++)); do stop_daemon "$i" & done
    wait
    [[ -d $LAB ]] && unmount_lab
    for ((i = 1; i <= n; i++)); do
        ns=$(node_ns "$i")
        ip link del "${ns}h" 2>/dev/null || true
        if ip netns list | grep -qw "^$ns"; then ip netns del "$ns"; fi
        for cg in /sys/fs/cgroup/*/aceorch-swarm-node"$i" /sys/fs/cgroup/aceorch-swarm-node"$i"; do
            [[ -d $cg ]] && find "$cg" -depth -type d -exec rmdir {} + 2>/dev/null || true
        done
    done
    if ip link show "$BRIDGE" >/dev/null 2>&1; then ip link del "$BRIDGE"; fi
    rm -rf "$LAB"
    say "down"
}

cmd_status() {
    healthy || say "the lab is not (fully) up"
    node_docker 1 node ls
}

node_arg() {
    [[ ${1:-} =~ ^[1-9]$ && $1 -le $(node_count) ]] || die "node number 1..$(node_count) expected"
}

cmd_check() {
    local missing=()
    [[ $(id -u) -eq 0 ]] || missing+=("root")
    for tool in dockerd docker nsenter unshare ip; do command -v "$tool" >/dev/null || missing+=("$tool"); done
    # shellcheck disable=SC2086
    if [[ ${#missing[@]} -eq 0 ]] && ! DOCKER_HOST=$HOST_DOCKER docker image inspect $IMAGES >/dev/null 2>&1; then
        missing+=("the images $IMAGES in the host's Docker engine")
    fi
    if [[ ${#missing[@]} -gt 0 ]]; then
        say "no lab here (missing: ${missing[*]}); the swarm tests will be skipped"
    elif [[ $(node_count) -gt 0 ]] && ! healthy; then
        say "a broken lab is left from an interrupted run; removing it"
        cmd_down
    else
        say "ready: the swarm tests bring a 3-node lab up and remove it at their end"
    fi
}

case "${1:-}" in
    up) cmd_up "${2:-3}" ;;
    down) cmd_down ;;
    env) [[ $(node_count) -gt 0 ]] || die "the lab is not up"; print_env ;;
    status) cmd_status ;;
    check) cmd_check ;;
    stop-node) require_root; node_arg "${2:-}"; stop_daemon "$2" ;;
    start-node) require_root; node_arg "${2:-}"; start_daemon "$2" ;;
    *) die "usage: $0 up [N] | down | env | status | check | stop-node I | start-node I" ;;
esac
