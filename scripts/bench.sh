#!/usr/bin/env bash
# Side-by-side benchmark of vswitchd against the Linux bridge, Open vSwitch's userspace datapath
# and vde_switch, on this machine, in one run (issue 7). See docs/performance.md.
#
#   sudo scripts/bench.sh [OPTIONS]
#
#   -r, --repeats N       measure every figure N times per backend (default 3); the report gives
#                         the median and the min-max
#   -t, --duration S      seconds per throughput figure (iperf3, small frames; default 8)
#   -b, --backends LIST   comma-separated, in any order: vswitchd,bridge,ovs,vde (default: all)
#   -q, --quick           for development: 1 repeat, 2 s figures, 50 pings, docs left alone
#       --no-doc          do not append the table to docs/performance.md
#       --json PATH       also write the JSON report to PATH (it always goes to
#                         target/bench/bench-DATE.json and target/bench/latest.json)
#       --install         apt-get install what is missing (vde2, openvswitch-switch, netsniff-ng,
#                         iperf3) without starting their system services, then run
#   -h, --help            this text
#
# Figures, per backend: iperf3 TCP with 1 and with 4 streams (Gbit/s, retransmits); RTT of
# `ping -c 200 -i 0.01` (min, avg, p99); the rate of 64-byte frames delivered when offered
# faster than the switch forwards them (trafgen); the switch process's CPU during the 1-stream
# test and its RSS with 8 ports; TCP with 1 stream while 8 hosts are attached. For vswitchd and
# the Linux bridge only (issue 15): TCP with 1 stream between two hosts at two sites, each
# site's switch joined to the other's by VXLAN over a veth underlay — vswitchd–VXLAN–vswitchd
# against kernel bridge–VXLAN–kernel bridge — and the two switch processes' CPU. For vswitchd
# only (issue 16): forwarding between two vhost-user ports, the VMs played by the load generator
# (examples/vhost_loadgen.rs), vswitchd pinned to CPU 0 and the generator to CPU 1 (with taskset
# and at least two CPUs): 64-byte frames/s and Gbit/s with 64 KiB TSO super-frames.
#
# Backends: vswitchd owns its TAPs (as scripts/lab.sh runs it); the Linux bridge with veth
# pairs; Open vSwitch with datapath_type=netdev, type=tap ports and userspace TSO, its database,
# sockets, pid files and logs in a private temporary directory; vde_switch with one -t TAP per
# host. A backend whose package is missing is skipped with a message.
#
# Safety: needs root. Everything lives in network namespaces the script creates (vb-sw for the
# switch, vb-h1..vb-h8 for the hosts, addresses 198.18.0.0/24 — the benchmarking range; for
# VXLAN the sites vb-sa and vb-sb, their underlay at 198.18.1.0/24); every
# interface is created inside them and named vb-*; nothing is added to the root namespace and
# nothing touches the machine's own interfaces. Every process is started by the script and
# stopped by its pid; every wait is bounded; an EXIT trap removes it all on every path
# (failure, Ctrl-C). A lock keeps two runs apart, and a run cleans up what a killed run left.
#
# Environment: VSWITCHD=PATH runs that binary instead of building target/release/vswitchd;
# LOADGEN=PATH the load generator instead of the vhost_loadgen example next to it.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)

REPEATS=3
DURATION=8
BACKENDS="vswitchd,bridge,ovs,vde"
PING_COUNT=200
MANY=8
WRITE_DOC=1
QUICK=0
INSTALL=0
JSON_EXTRA=""

SW_NS=vb-sw
SUBNET=198.18.0
# The VXLAN figure: two sites, each a namespace with a switch, joined by a veth underlay.
SITE_NS=(vb-sa vb-sb)
UNDERLAY=198.18.1
VNI=100
VXLAN_MTU=1450 # the hosts' MTU: a 1500-byte underlay less 50 bytes of VXLAN, UDP and IPv4
LOCK=/run/vswitch-bench/lock
STATE=/run/vswitch-bench # pids of the running bench, for the next run if this one is killed
DOC="$ROOT/docs/performance.md"
OUT_DIR="$ROOT/target/bench"

say() { echo "bench: $*" >&2; }
die() {
  echo "bench: error: $*" >&2
  exit 1
}
usage() {
  sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
  exit "${1:-0}"
}

need() { # an option that takes a value, and the rest of the arguments
  [ $# -ge 2 ] && [ -n "$2" ] || { echo "bench: $1 needs a value (see --help)" >&2; exit 2; }
}
while [ $# -gt 0 ]; do
  case "$1" in
  -r | --repeats) need "$@"; REPEATS=$2; shift 2 ;;
  -t | --duration) need "$@"; DURATION=$2; shift 2 ;;
  -b | --backends) need "$@"; BACKENDS=$2; shift 2 ;;
  -q | --quick) QUICK=1; shift ;;
  --no-doc) WRITE_DOC=0; shift ;;
  --json) need "$@"; JSON_EXTRA=$2; shift 2 ;;
  --install) INSTALL=1; shift ;;
  -h | --help) usage 0 ;;
  *) echo "bench: unknown option '$1' (see --help)" >&2; exit 2 ;;
  esac
done
if [ "$QUICK" -eq 1 ]; then
  REPEATS=1
  DURATION=2
  PING_COUNT=50
  WRITE_DOC=0
fi
[[ "$REPEATS" =~ ^[0-9]+$ ]] && [ "$REPEATS" -ge 1 ] && [ "$REPEATS" -le 20 ] ||
  die "--repeats must be 1 to 20, not '$REPEATS'"
[[ "$DURATION" =~ ^[0-9]+$ ]] && [ "$DURATION" -ge 1 ] && [ "$DURATION" -le 120 ] ||
  die "--duration must be 1 to 120 seconds, not '$DURATION'"
SELECTED=()
for b in ${BACKENDS//,/ }; do
  case "$b" in
  vswitchd | bridge | ovs | vde) SELECTED+=("$b") ;;
  *) die "unknown backend '$b' (choose from vswitchd,bridge,ovs,vde)" ;;
  esac
done
[ "${#SELECTED[@]}" -ge 1 ] || die "no backend selected"
[ "$(id -u)" -eq 0 ] || die "needs root for network namespaces and TAPs: sudo $0"

# --- installing ------------------------------------------------------------------------------

install_packages() {
  local want=() pkg
  command -v vde_switch >/dev/null || want+=(vde2)
  command -v ovs-vswitchd >/dev/null || want+=(openvswitch-switch)
  command -v trafgen >/dev/null || want+=(netsniff-ng)
  command -v iperf3 >/dev/null || want+=(iperf3)
  command -v ping >/dev/null || want+=(iputils-ping)
  command -v ss >/dev/null || want+=(iproute2)
  command -v python3 >/dev/null || want+=(python3)
  [ "${#want[@]}" -gt 0 ] || return 0
  command -v apt-get >/dev/null || die "--install needs apt-get; install ${want[*]} by hand"
  say "installing ${want[*]} (their system services are not started)"
  # A policy-rc.d that says "no" keeps Debian from starting the system's OVS on install; one
  # that exists already is left alone.
  local policy=/usr/sbin/policy-rc.d
  if [ ! -e "$policy" ]; then
    POLICY_MADE=$policy # removed by the EXIT trap, whatever happens
    printf '#!/bin/sh\nexit 101\n' >"$policy"
    chmod 755 "$policy"
  fi
  export DEBIAN_FRONTEND=noninteractive
  local rc=0
  { apt-get update -qq && apt-get install -y -qq --no-install-recommends "${want[@]}" >/dev/null; } || rc=$?
  [ -z "$POLICY_MADE" ] || rm -f "$POLICY_MADE"
  POLICY_MADE=""
  [ "$rc" -eq 0 ] || die "apt-get install ${want[*]} failed"
  for pkg in "${want[@]}"; do say "installed $pkg"; done
}

# --- processes, namespaces and cleanup ------------------------------------------------------

WORK=""
PIDS=()        # every process this run started and has not stopped yet
CURRENT=""     # the backend whose topology is up
SWITCH_PID=""  # the switch process of that topology (none for the kernel bridge)
SWITCH2_PID="" # the second site's switch process in the VXLAN topology
VXLAN_UP=0     # whether vxlan_topology_up brought its topology up
HOSTS=0        # hosts in that topology
IPERF_PID=""
OVSDB_PID=""

# A process's start time (clock ticks since boot): with the pid, it names one process for good,
# across exec and pid reuse.
start_time() {
  sed 's/^.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f20
}

# Remember a process we started; the state file lets the next run stop it if this one is
# killed with SIGKILL before its trap can.
track() {
  PIDS+=("$1")
  echo "$1 $(start_time "$1")" >>"$STATE/pids" 2>/dev/null || true
}

# Runs a measuring command to its end, recorded like the daemons, so that a run killed while
# it measures leaves nothing the next run cannot stop. Returns the command's status.
run_tracked() {
  local pid rc=0
  "$@" &
  pid=$!
  track "$pid"
  wait "$pid" || rc=$?
  untrack "$pid"
  return "$rc"
}

untrack() {
  local i keep=()
  for i in "${PIDS[@]}"; do [ "$i" = "$1" ] || keep+=("$i"); done
  PIDS=("${keep[@]}")
}

# Whether a process is gone (or a zombie waiting to be reaped).
gone() {
  local state
  state=$(sed 's/^.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1) || return 0
  [ -z "$state" ] || [ "$state" = Z ]
}

# Stops one process we started: SIGTERM, then SIGKILL after 5 s. Only pids from PIDS.
stop_pid() {
  local pid=$1 i
  [ -n "$pid" ] || return 0
  if ! gone "$pid"; then
    kill -TERM "$pid" 2>/dev/null || true
    for i in $(seq 50); do
      gone "$pid" && break
      sleep 0.1
    done
    if ! gone "$pid"; then
      say "process $pid ignored SIGTERM for 5 s; killing it"
      kill -KILL "$pid" 2>/dev/null || true
      for i in $(seq 20); do gone "$pid" && break; sleep 0.1; done
    fi
  fi
  # Reap it (it is our child); returns at once since it has exited.
  gone "$pid" && { wait "$pid" 2>/dev/null || true; }
  untrack "$pid"
}

# Our namespaces: vb-sw, the VXLAN sites vb-sa and vb-sb, and vb-hN; nothing else.
our_namespaces() {
  ip netns list 2>/dev/null | awk '{print $1}' | grep -E '^vb-(sw|sa|sb|h[0-9]+)$' || true
}

delete_namespaces() {
  local ns
  for ns in $(our_namespaces); do ip netns del "$ns" 2>/dev/null || true; done
}

# What a killed earlier run left: its processes (the pids it recorded, if each still has the
# start time recorded with it) and its namespaces.
clean_stale() {
  local pid started
  if [ -f "$STATE/pids" ]; then
    while read -r pid started; do
      [ -n "$pid" ] && [ -n "$started" ] || continue
      [ "$(start_time "$pid")" = "$started" ] || continue
      say "stopping process $pid left by an earlier run: $(tr '\0' ' ' <"/proc/$pid/cmdline" | cut -c1-100)"
      kill -TERM "$pid" 2>/dev/null || true
      for _ in $(seq 30); do gone "$pid" && break; sleep 0.1; done
      gone "$pid" || kill -KILL "$pid" 2>/dev/null || true
    done <"$STATE/pids"
    rm -f "$STATE/pids"
  fi
  local old
  old=$(cat "$STATE/work" 2>/dev/null || true)
  if [[ "$old" =~ ^/tmp/vswitch-bench\.[A-Za-z0-9]+$ ]] && [ -d "$old" ]; then
    say "removing $old left by an earlier run"
    rm -rf "$old"
  fi
  rm -f "$STATE/work"
  if [ -n "$(our_namespaces)" ]; then
    say "removing namespaces left by an earlier run: $(our_namespaces | tr '\n' ' ')"
    delete_namespaces
  fi
}

teardown() {
  local pid
  [ -n "$IPERF_PID" ] && stop_pid "$IPERF_PID"
  IPERF_PID=""
  [ -n "$SWITCH_PID" ] && stop_pid "$SWITCH_PID"
  SWITCH_PID=""
  [ -n "$SWITCH2_PID" ] && stop_pid "$SWITCH2_PID"
  SWITCH2_PID=""
  VXLAN_UP=0
  for pid in "${PIDS[@]}"; do stop_pid "$pid"; done
  delete_namespaces
  CURRENT=""
  HOSTS=0
}

FINISHED=0
OWNER=0
POLICY_MADE=""
cleanup() {
  local rc=$?
  trap - EXIT INT TERM HUP
  set +e
  teardown
  if [ -n "$WORK" ] && [ -d "$WORK" ]; then
    if [ "$FINISHED" -eq 0 ] && [ "$rc" -ne 0 ]; then
      local keep
      keep="$OUT_DIR/failed-$(date +%Y%m%d-%H%M%S)"
      mkdir -p "$keep" && cp -r "$WORK"/*.log "$WORK"/*.tsv "$WORK"/ovs/*.log "$keep"/ 2>/dev/null
      say "logs of the failed run are in $keep"
    fi
    rm -rf "$WORK"
  fi
  rm -f "$STATE/pids" "$STATE/work"
  [ "$OWNER" -eq 0 ] || rm -f "$STATE/owner"
  [ -z "$POLICY_MADE" ] || rm -f "$POLICY_MADE"
  exit "$rc"
}

# One run at a time. The owner file names the running bench by pid and start time; the flock
# only guards reading and writing it, so no child of ours ever holds the lock, and a run killed
# with SIGKILL leaves an owner that is no longer alive and is taken over.
mkdir -p "$STATE" "$OUT_DIR"
exec 9>"$LOCK"
flock -w 10 9 || die "cannot take $LOCK within 10 s"
if [ -f "$STATE/owner" ] && read -r owner owner_start <"$STATE/owner" && [ "$owner" != "$$" ] &&
  [ "$(start_time "$owner")" = "$owner_start" ]; then
  die "another scripts/bench.sh is running (pid $owner)"
fi
echo "$$ $(start_time $$)" >"$STATE/owner"
exec 9>&-
OWNER=1
clean_stale
WORK=$(mktemp -d /tmp/vswitch-bench.XXXXXX)
echo "$WORK" >"$STATE/work"
trap cleanup EXIT
trap 'say "interrupted"; exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

[ "$INSTALL" -eq 0 ] || install_packages

for tool in ip ping iperf3 ss python3 timeout flock getconf; do
  command -v "$tool" >/dev/null || die "$tool is missing (try: sudo $0 --install)"
done

# Runs `cmd...` every 0.1 s until it succeeds, at most $1 tenths of a second.
wait_until() {
  local tenths=$1 i
  shift
  for i in $(seq "$tenths"); do
    "$@" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  "$@" >/dev/null 2>&1
}

# Names we create must be ours: vb-*, at most 15 bytes.
ours() {
  [[ "$1" =~ ^vb-[a-z0-9-]+$ ]] && [ "${#1}" -le 15 ] || die "refusing to touch interface '$1'"
}

host_ns() { echo "vb-h$1"; }

# The host's interface in each backend.
host_if() {
  case "$CURRENT" in
  vswitchd) echo "vb-t$1" ;;
  bridge) echo "vb-e$1" ;;
  ovs) echo "vb-o$1" ;;
  vde) echo "vb-v$1" ;;
  esac
}

make_hosts() {
  local i ns
  for i in $(seq "$1"); do
    ns=$(host_ns "$i")
    ip netns add "$ns"
    ip -n "$ns" link set lo up
  done
}

# Moves interface `vb-xN` of every host from the switch namespace into its host namespace.
move_to_hosts() {
  local i dev
  for i in $(seq "$HOSTS"); do
    dev=$(host_if "$i")
    ours "$dev"
    wait_until 100 ip -n "$SW_NS" link show dev "$dev" || die "$CURRENT did not create $dev within 10 s"
    ip -n "$SW_NS" link set "$dev" netns "$(host_ns "$i")"
  done
}

address_hosts() {
  local i ns dev
  for i in $(seq "$HOSTS"); do
    ns=$(host_ns "$i")
    dev=$(host_if "$i")
    ip -n "$ns" addr add "$SUBNET.$i/24" dev "$dev"
    ip -n "$ns" link set "$dev" up
  done
}

# Every host reaches h1 (so the switch learns them all and ARP is settled); h1 reaches h2.
check_reach() {
  local i
  for i in $(seq 2 "$HOSTS"); do
    ip netns exec "$(host_ns "$i")" ping -n -q -c 1 -W 1 -w 10 "$SUBNET.1" >/dev/null 2>&1 ||
      die "$CURRENT: host $i cannot reach host 1 (see logs in $WORK)"
  done
  ip netns exec "$(host_ns 1)" ping -n -q -c 2 -i 0.2 -W 1 -w 10 "$SUBNET.2" >/dev/null 2>&1 ||
    die "$CURRENT: host 1 cannot reach host 2"
}

# --- backends: each brings up a switch in vb-sw and N hosts, with vb-*N in vb-hN ------------

VSWITCHD_BIN=""
up_vswitchd() {
  local ports=() i
  for i in $(seq "$HOSTS"); do ports+=(--port "vb-t$i"); done
  : >"$WORK/vswitchd.log"
  # RUST_LOG unset: the default level logs the "switching between" line waited for below.
  ip netns exec "$SW_NS" env -u RUST_LOG "$VSWITCHD_BIN" --name vb-bench --ctl-socket "$WORK/vswitchd.ctl" \
    "${ports[@]}" </dev/null >/dev/null 2>>"$WORK/vswitchd.log" &
  SWITCH_PID=$!
  track "$SWITCH_PID"
  wait_until 100 grep -q "switching between" "$WORK/vswitchd.log" || {
    tail -5 "$WORK/vswitchd.log" >&2
    die "vswitchd did not start within 10 s"
  }
  move_to_hosts
}

up_bridge() {
  local i
  ip -n "$SW_NS" link add vb-br type bridge
  # If br_netfilter is loaded, keep bridged frames out of iptables in this namespace: the plain
  # bridge is what is measured.
  # shellcheck disable=SC2016 # expanded by the inner shell
  ip netns exec "$SW_NS" sh -c 'for f in /proc/sys/net/bridge/bridge-nf-call-*; do [ -w "$f" ] && echo 0 >"$f"; done; true' 2>/dev/null || true
  ip -n "$SW_NS" link set vb-br up
  for i in $(seq "$HOSTS"); do
    ip -n "$SW_NS" link add "vb-p$i" type veth peer name "vb-e$i" netns "$(host_ns "$i")"
    ip -n "$SW_NS" link set "vb-p$i" master vb-br
    ip -n "$SW_NS" link set "vb-p$i" up
  done
}

up_vde() {
  local taps=() i
  for i in $(seq "$HOSTS"); do taps+=(-t "vb-v$i"); done
  # vde_switch quits at EOF on stdin (its console): give it a pipe nobody writes to, held open
  # by a descriptor of our own until it has started.
  rm -f "$WORK/vde.stdin"
  mkfifo "$WORK/vde.stdin"
  exec 8<>"$WORK/vde.stdin"
  ip netns exec "$SW_NS" vde_switch --sock "$WORK/vde.ctl" --mgmt "$WORK/vde.mgmt" "${taps[@]}" \
    <&8 >>"$WORK/vde.log" 2>&1 &
  SWITCH_PID=$!
  exec 8>&-
  track "$SWITCH_PID"
  move_to_hosts
}

OVS_DIR=""
ovs_vsctl() { ovs-vsctl --db="unix:$OVS_DIR/db.sock" --timeout=20 "$@"; }
up_ovs() {
  local i pid
  OVS_DIR="$WORK/ovs"
  rm -rf "$OVS_DIR"
  mkdir -p "$OVS_DIR"
  # Nothing of the system's OVS is read or written: database, sockets, pid files, logs and
  # system id all live in OVS_DIR.
  export OVS_RUNDIR="$OVS_DIR" OVS_DBDIR="$OVS_DIR" OVS_LOGDIR="$OVS_DIR" OVS_SYSCONFDIR="$OVS_DIR"
  local schema=${OVS_PKGDATADIR:-/usr/share/openvswitch}/vswitch.ovsschema
  [ -r "$schema" ] || die "OVS schema $schema not found (set OVS_PKGDATADIR)"
  ovsdb-tool create "$OVS_DIR/conf.db" "$schema"
  ip netns exec "$SW_NS" ovsdb-server "$OVS_DIR/conf.db" --remote="punix:$OVS_DIR/db.sock" \
    --pidfile="$OVS_DIR/ovsdb-server.pid" --unixctl="$OVS_DIR/ovsdb-server.ctl" \
    --log-file="$OVS_DIR/ovsdb-server.log" --no-chdir </dev/null >/dev/null 2>&1 &
  pid=$!
  track "$pid"
  OVSDB_PID=$pid
  wait_until 100 test -S "$OVS_DIR/db.sock" || die "ovsdb-server did not start within 10 s"
  ovs_vsctl --no-wait init
  # TSO must be on before ovs-vswitchd starts (and so before the bridge exists).
  ovs_vsctl --no-wait set Open_vSwitch . other_config:userspace-tso-enable=true
  ip netns exec "$SW_NS" ovs-vswitchd "unix:$OVS_DIR/db.sock" \
    --pidfile="$OVS_DIR/ovs-vswitchd.pid" --unixctl="$OVS_DIR/ovs-vswitchd.ctl" \
    --log-file="$OVS_DIR/ovs-vswitchd.log" --no-chdir </dev/null >/dev/null 2>&1 &
  SWITCH_PID=$!
  track "$SWITCH_PID"
  ovs_vsctl add-br vb-obr -- set Bridge vb-obr datapath_type=netdev >/dev/null
  for i in $(seq "$HOSTS"); do
    ovs_vsctl add-port vb-obr "vb-o$i" -- set Interface "vb-o$i" type=tap >/dev/null
  done
  move_to_hosts
}

# Brings up backend $1 with $2 hosts.
topology_up() {
  teardown
  CURRENT=$1
  HOSTS=$2
  OVSDB_PID=""
  ip netns add "$SW_NS"
  ip -n "$SW_NS" link set lo up
  make_hosts "$HOSTS"
  "up_$CURRENT"
  address_hosts
  check_reach
  start_iperf_server
}

# iperf3 server on host 2.
start_iperf_server() {
  ip netns exec "$(host_ns 2)" iperf3 -s -B "$SUBNET.2" </dev/null >>"$WORK/iperf3-server.log" 2>&1 &
  IPERF_PID=$!
  track "$IPERF_PID"
  wait_until 50 sh -c "ip netns exec $(host_ns 2) ss -Hltn 'sport = :5201' | grep -q ." ||
    die "iperf3 server did not start within 5 s"
}

# --- the VXLAN topology: two sites over an underlay -----------------------------------------
#
# Sites vb-sa and vb-sb are namespaces joined by a veth pair (vb-ul at both ends, 198.18.1.1 and
# .2/24): the underlay, MTU 1500. Host 1 hangs off site A's switch, host 2 off site B's, at
# 198.18.0.1 and .2 with MTU 1450. Each site's switch joins its host to a VXLAN tunnel (VNI 100,
# UDP 4789) to the other site: a vswitchd with a TAP and a vxlan port, or a kernel bridge with a
# veth to the host and a kernel vxlan device. If a site's switch cannot be set up (an older
# vswitchd without vxlan ports, a kernel without VXLAN) the figure is skipped with a message.

# Site $1 (1 or 2): its underlay address and the other site's.
site_local() { echo "$UNDERLAY.$1"; }
site_remote() { echo "$UNDERLAY.$((3 - $1))"; }

# Whether the vswitchd logging to $1 is switching, or process $2 has exited.
started_or_gone() {
  grep -q "switching between" "$1" || gone "$2"
}

up_vxlan_vswitchd() {
  local i ns pid dev
  for i in 1 2; do
    ns=${SITE_NS[$((i - 1))]}
    : >"$WORK/vswitchd-vxlan$i.log"
    ip netns exec "$ns" env -u RUST_LOG "$VSWITCHD_BIN" --name "vb-vxlan$i" \
      --ctl-socket "$WORK/vswitchd-vxlan$i.ctl" --port "vb-t$i" \
      --port "vxlan:vb-vx,local=$(site_local "$i"),remote=$(site_remote "$i"),vni=$VNI" \
      </dev/null >/dev/null 2>>"$WORK/vswitchd-vxlan$i.log" &
    pid=$!
    track "$pid"
    if [ "$i" -eq 1 ]; then SWITCH_PID=$pid; else SWITCH2_PID=$pid; fi
  done
  for i in 1 2; do
    if [ "$i" -eq 1 ]; then pid=$SWITCH_PID; else pid=$SWITCH2_PID; fi
    wait_until 100 started_or_gone "$WORK/vswitchd-vxlan$i.log" "$pid" || true
    if ! grep -q "switching between" "$WORK/vswitchd-vxlan$i.log"; then
      tail -5 "$WORK/vswitchd-vxlan$i.log" >&2
      say "vswitchd with a vxlan port did not start at site $i (an older binary?): no VXLAN figure"
      return 0
    fi
  done
  for i in 1 2; do
    ns=${SITE_NS[$((i - 1))]}
    dev=$(host_if "$i")
    ours "$dev"
    wait_until 100 ip -n "$ns" link show dev "$dev" || die "vswitchd did not create $dev within 10 s"
    ip -n "$ns" link set "$dev" netns "$(host_ns "$i")"
  done
  VXLAN_UP=1
}

up_vxlan_bridge() {
  local i ns
  for i in 1 2; do
    ns=${SITE_NS[$((i - 1))]}
    if ! ip -n "$ns" link add vb-vx type vxlan id "$VNI" local "$(site_local "$i")" \
      remote "$(site_remote "$i")" dstport 4789 dev vb-ul 2>>"$WORK/bridge-vxlan.log"; then
      tail -2 "$WORK/bridge-vxlan.log" >&2
      say "cannot create a kernel vxlan device: no VXLAN figure for the Linux bridge"
      return 0
    fi
    ip -n "$ns" link add vb-br type bridge
    # shellcheck disable=SC2016 # expanded by the inner shell
    ip netns exec "$ns" sh -c 'for f in /proc/sys/net/bridge/bridge-nf-call-*; do [ -w "$f" ] && echo 0 >"$f"; done; true' 2>/dev/null || true
    ip -n "$ns" link set vb-vx master vb-br
    ip -n "$ns" link set vb-vx up
    ip -n "$ns" link set vb-br up
    ip -n "$ns" link add "vb-p$i" type veth peer name "vb-e$i" netns "$(host_ns "$i")"
    ip -n "$ns" link set "vb-p$i" master vb-br
    ip -n "$ns" link set "vb-p$i" up
  done
  VXLAN_UP=1
}

# Brings up backend $1 (vswitchd or bridge) at both sites with one host each; VXLAN_UP says
# whether it is up.
vxlan_topology_up() {
  local i ns
  teardown
  CURRENT=$1
  HOSTS=2
  for ns in "${SITE_NS[@]}"; do
    ip netns add "$ns"
    ip -n "$ns" link set lo up
  done
  make_hosts 2
  ip -n "${SITE_NS[0]}" link add vb-ul type veth peer name vb-ul netns "${SITE_NS[1]}"
  for i in 1 2; do
    ns=${SITE_NS[$((i - 1))]}
    ip -n "$ns" addr add "$(site_local "$i")/24" dev vb-ul
    ip -n "$ns" link set vb-ul up
  done
  "up_vxlan_$CURRENT"
  if [ "$VXLAN_UP" -eq 0 ]; then
    teardown
    return 0
  fi
  for i in 1 2; do ip -n "$(host_ns "$i")" link set "$(host_if "$i")" mtu "$VXLAN_MTU"; done
  address_hosts
  check_reach
  start_iperf_server
}

# --- measurements ---------------------------------------------------------------------------

RESULTS=""
record() { # backend rep figure value
  printf '%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" >>"$RESULTS"
}

cpu_ticks() { # utime + stime of a process, in clock ticks
  awk '{sub(/^.*\) /, ""); print $12 + $13}' "/proc/$1/stat" 2>/dev/null || echo 0
}

rss_mib() {
  awk '/^VmRSS:/ {printf "%.1f", $2 / 1024}' "/proc/$1/status" 2>/dev/null
}

# iperf3 from h1 to h2 with $1 streams; prints "Gbit/s retransmits" or nothing on failure.
iperf() {
  local streams=$1 out="$WORK/iperf3-client.json"
  run_tracked ip netns exec "$(host_ns 1)" timeout $((DURATION + 20)) \
    iperf3 -c "$SUBNET.2" -t "$DURATION" -O 1 -P "$streams" -J >"$out" 2>>"$WORK/iperf3-client.log" || {
    say "$CURRENT: iperf3 with $streams streams failed (see $WORK/iperf3-client.log)"
    return 0
  }
  python3 -c '
import json, sys
end = json.load(open(sys.argv[1]))["end"]
print("%.3f %d" % (end["sum_received"]["bits_per_second"] / 1e9, end["sum_sent"].get("retransmits", 0)))
' "$out" 2>/dev/null || say "$CURRENT: cannot read iperf3's report"
}

# The CPU ticks of the switch processes (both sites' in the VXLAN topology), summed.
switch_ticks() {
  local sum=0 pid
  for pid in $SWITCH_PID $SWITCH2_PID; do sum=$((sum + $(cpu_ticks "$pid"))); done
  echo "$sum"
}

measure_tcp() { # rep streams figure-prefix
  local rep=$1 streams=$2 key=$3 res t0 t1 c0 c1 clk
  clk=$(getconf CLK_TCK)
  [ -n "$SWITCH_PID" ] && c0=$(switch_ticks)
  t0=$(date +%s.%N)
  res=$(iperf "$streams")
  t1=$(date +%s.%N)
  [ -n "$res" ] || return 0
  record "$CURRENT" "$rep" "${key}_gbps" "${res% *}"
  record "$CURRENT" "$rep" "${key}_retr" "${res#* }"
  if { [ "$key" = tcp1 ] || [ "$key" = tcp1_vxlan ]; } && [ -n "$SWITCH_PID" ]; then
    c1=$(switch_ticks)
    record "$CURRENT" "$rep" "cpu_${key}_pct" "$(echo "$c0 $c1 $t0 $t1 $clk" |
      awk '{printf "%.1f", ($2 - $1) / $5 / ($4 - $3) * 100}')"
  fi
  say "  $CURRENT: TCP $streams stream(s): ${res% *} Gbit/s, ${res#* } retransmits"
}

measure_rtt() {
  local rep=$1 out="$WORK/ping.out" stats min avg p99 got
  run_tracked ip netns exec "$(host_ns 1)" ping -n -c "$PING_COUNT" -i 0.01 -w $((PING_COUNT / 20 + 10)) \
    "$SUBNET.2" >"$out" 2>&1 || true
  stats=$(sed -n 's/.* time=\([0-9.]*\) ms.*/\1/p' "$out" | sort -g | awk '
    { v[NR] = $1; sum += $1 }
    END {
      if (NR == 0) exit
      r = int(0.99 * NR); if (r < 0.99 * NR) r++
      printf "%.3f %.3f %.3f %d", v[1], sum / NR, v[r], NR
    }')
  [ -n "$stats" ] || { say "$CURRENT: ping got no reply"; return 0; }
  read -r min avg p99 got <<<"$stats"
  record "$CURRENT" "$rep" rtt_min_ms "$min"
  record "$CURRENT" "$rep" rtt_avg_ms "$avg"
  record "$CURRENT" "$rep" rtt_p99_ms "$p99"
  [ "$got" -eq "$PING_COUNT" ] || say "$CURRENT: only $got of $PING_COUNT pings answered"
  say "  $CURRENT: RTT min $min ms, avg $avg ms, p99 $p99 ms"
}

counter() { # host interface statistic
  ip netns exec "$(host_ns "$1")" cat "/sys/class/net/$(host_if "$1")/statistics/$2" 2>/dev/null || echo 0
}

# 64-byte frames (60 + FCS) from h1 to h2's MAC, offered by trafgen as fast as one core sends
# them; the rate is what h2's interface receives over DURATION seconds after 1 s of warm-up.
# The EtherType (0x88b5, local experimental) makes h2's stack drop them after counting.
measure_small() {
  local rep=$1 src dst cfg="$WORK/trafgen.cfg" pid rx0 rx1 tx0 tx1 t0 t1 rate offered
  command -v trafgen >/dev/null || return 0
  hex() { echo "$1" | sed 's/^/0x/; s/:/, 0x/g'; }
  src=$(ip netns exec "$(host_ns 1)" cat "/sys/class/net/$(host_if 1)/address")
  dst=$(ip netns exec "$(host_ns 2)" cat "/sys/class/net/$(host_if 2)/address")
  printf '{ %s, %s, c16(0x88b5), fill(0x00, 46) }\n' "$(hex "$dst")" "$(hex "$src")" >"$cfg"
  # --no-sock-mem and -Q: trafgen leaves the system's socket memory and IRQ affinity alone.
  ip netns exec "$(host_ns 1)" timeout -s INT $((DURATION + 10)) \
    trafgen --dev "$(host_if 1)" --conf "$cfg" --cpus 1 --no-sock-mem -Q -C \
    </dev/null >>"$WORK/trafgen.log" 2>&1 &
  pid=$!
  track "$pid"
  sleep 1
  rx0=$(counter 2 rx_packets)
  tx0=$(($(counter 1 tx_packets) + $(counter 1 tx_dropped)))
  t0=$(date +%s.%N)
  sleep "$DURATION"
  rx1=$(counter 2 rx_packets)
  tx1=$(($(counter 1 tx_packets) + $(counter 1 tx_dropped)))
  t1=$(date +%s.%N)
  kill -INT "$pid" 2>/dev/null || true
  stop_pid "$pid"
  rate=$(echo "$rx0 $rx1 $t0 $t1" | awk '{printf "%.0f", ($2 - $1) / ($4 - $3)}')
  offered=$(echo "$tx0 $tx1 $t0 $t1" | awk '{printf "%.0f", ($2 - $1) / ($4 - $3)}')
  if [ "$rate" -le 0 ]; then
    say "$CURRENT: no 64-byte frame arrived (see $WORK/trafgen.log)"
    return 0
  fi
  record "$CURRENT" "$rep" small_kfps "$(awk -v r="$rate" 'BEGIN {printf "%.1f", r / 1000}')"
  record "$CURRENT" "$rep" small_offered_kfps "$(awk -v r="$offered" 'BEGIN {printf "%.1f", r / 1000}')"
  say "  $CURRENT: 64-byte frames: $((rate / 1000)) k/s delivered of $((offered / 1000)) k/s offered"
}

# vswitchd with two vhost-user ports and the load generator playing the two VMs: A sends
# through the switch to B, for DURATION s in each mode; the rates are what B received. The
# sockets are in WORK, the processes in vb-sw (they need no network) and pinned apart.
LOADGEN_BIN=""
measure_vhost() {
  local rep=$1 mode out rate lost pin_sw=() pin_gen=()
  [ -n "$LOADGEN_BIN" ] || return 0
  teardown
  CURRENT=vswitchd
  ip netns add "$SW_NS"
  ip -n "$SW_NS" link set lo up
  if command -v taskset >/dev/null && [ "$(nproc)" -ge 2 ]; then
    pin_sw=(taskset -c 0)
    pin_gen=(taskset -c 1)
  fi
  : >"$WORK/vswitchd-vhost.log"
  ip netns exec "$SW_NS" "${pin_sw[@]}" env -u RUST_LOG "$VSWITCHD_BIN" --name vb-vhost \
    --ctl-socket "$WORK/vswitchd-vhost.ctl" --port "vhost-user:$WORK/vb-va.sock" \
    --port "vhost-user:$WORK/vb-vb.sock" </dev/null >/dev/null 2>>"$WORK/vswitchd-vhost.log" &
  SWITCH_PID=$!
  track "$SWITCH_PID"
  if ! wait_until 100 grep -q "switching between" "$WORK/vswitchd-vhost.log"; then
    tail -5 "$WORK/vswitchd-vhost.log" >&2
    say "vswitchd with vhost-user ports did not start within 10 s (an older binary?): no vhost-user figures"
    teardown
    return 0
  fi
  for mode in small tso; do
    out="$WORK/loadgen-$mode.out"
    if ! run_tracked ip netns exec "$SW_NS" "${pin_gen[@]}" timeout $((DURATION + 30)) \
      "$LOADGEN_BIN" --mode "$mode" --seconds "$DURATION" "$WORK/vb-va.sock" "$WORK/vb-vb.sock" \
      >"$out" 2>>"$WORK/loadgen.log"; then
      say "vswitchd: the vhost-user load generator failed in mode $mode (see $WORK/loadgen.log)"
      continue
    fi
    # "mode Small: sent S received R frames B bytes in T s: X Mframes/s Y Gbit/s; not delivered D; ..."
    case "$mode" in
    small) rate=$(awk '{for (i = 2; i <= NF; i++) if ($i == "Mframes/s") print $(i - 1)}' "$out") ;;
    tso) rate=$(awk '{for (i = 2; i <= NF; i++) if ($i == "Gbit/s;") print $(i - 1)}' "$out") ;;
    esac
    lost=$(sed -n 's/.*not delivered \([0-9]*\).*/\1/p' "$out")
    [ -n "$rate" ] || { say "vswitchd: cannot read the load generator's output: $(cat "$out")"; continue; }
    if [ "$mode" = small ]; then
      record vswitchd "$rep" vhost_small_mpps "$rate"
      say "  vswitchd: vhost-user 64-byte frames: $rate M/s ($lost not delivered)"
    else
      record vswitchd "$rep" vhost_tso_gbps "$rate"
      say "  vswitchd: vhost-user 64 KiB super-frames: $rate Gbit/s ($lost not delivered)"
    fi
  done
  teardown
}

run_backend() { # backend rep
  local b=$1 rep=$2
  say "[$rep/$REPEATS] $b: 2 hosts"
  topology_up "$b" 2
  measure_tcp "$rep" 1 tcp1
  measure_tcp "$rep" 4 tcp4
  measure_rtt "$rep"
  measure_small "$rep"
  say "[$rep/$REPEATS] $b: $MANY hosts"
  topology_up "$b" "$MANY"
  measure_tcp "$rep" 1 tcp1_8h
  if [ -n "$SWITCH_PID" ]; then
    record "$b" "$rep" rss_mib "$(rss_mib "$SWITCH_PID")"
    [ -z "$OVSDB_PID" ] || record "$b" "$rep" rss_db_mib "$(rss_mib "$OVSDB_PID")"
    say "  $b: RSS with $MANY ports $(rss_mib "$SWITCH_PID") MiB"
  fi
  case "$b" in
  vswitchd | bridge)
    say "[$rep/$REPEATS] $b: VXLAN between two sites, a host at each"
    vxlan_topology_up "$b"
    [ "$VXLAN_UP" -eq 0 ] || measure_tcp "$rep" 1 tcp1_vxlan
    ;;
  esac
  if [ "$b" = vswitchd ]; then
    say "[$rep/$REPEATS] vswitchd: two vhost-user ports, the VMs played by the load generator"
    measure_vhost "$rep"
  fi
  teardown
}

# --- what can run ---------------------------------------------------------------------------

declare -A SKIPPED=()
declare -A VERSION=()
pkg_version() { dpkg-query -W -f='${Version}' "$1" 2>/dev/null || echo "?"; }

RUN=()
for b in "${SELECTED[@]}"; do
  case "$b" in
  vswitchd)
    if [ -n "${VSWITCHD:-}" ]; then
      [ -x "$VSWITCHD" ] || die "VSWITCHD=$VSWITCHD is not an executable"
      VSWITCHD_BIN=$VSWITCHD
      VERSION[vswitchd]="$("$VSWITCHD_BIN" --version 2>/dev/null | awk '{print $2}') ($VSWITCHD)"
    else
      command -v cargo >/dev/null ||
        die "cargo is not in root's PATH: build as yourself (cargo build --release --bins) and run with VSWITCHD=$ROOT/target/release/vswitchd"
      say "building vswitchd and the vhost-user load generator (cargo build --release --bins --example vhost_loadgen)"
      (cd "$ROOT" && cargo build --release --quiet --bins --example vhost_loadgen) || die "build failed"
      VSWITCHD_BIN="$ROOT/target/release/vswitchd"
      # Read-only git: no index refresh, no lock taken.
      if VERSION[vswitchd]=$(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null); then
        (cd "$ROOT" && GIT_OPTIONAL_LOCKS=0 git diff-index --quiet HEAD -- src Cargo.toml Cargo.lock 2>/dev/null) ||
          VERSION[vswitchd]+="+changes"
      else
        VERSION[vswitchd]="$("$VSWITCHD_BIN" --version 2>/dev/null | awk '{print $2}') (not a git checkout)"
      fi
    fi
    ;;
  bridge)
    VERSION[bridge]="kernel $(uname -r)"
    ;;
  ovs)
    if ! command -v ovs-vswitchd >/dev/null || ! command -v ovsdb-server >/dev/null ||
      ! command -v ovs-vsctl >/dev/null || ! command -v ovsdb-tool >/dev/null; then
      SKIPPED[ovs]="Open vSwitch is not installed (package openvswitch-switch; sudo $0 --install)"
      say "skipping ovs: ${SKIPPED[ovs]}"
      continue
    fi
    VERSION[ovs]="$(ovs-vswitchd --version | sed -n '1s/.* //p')"
    ;;
  vde)
    if ! command -v vde_switch >/dev/null; then
      SKIPPED[vde]="vde_switch is not installed (package vde2; sudo $0 --install)"
      say "skipping vde: ${SKIPPED[vde]}"
      continue
    fi
    VERSION[vde]="vde2 $(pkg_version vde2)"
    ;;
  esac
  RUN+=("$b")
done
[ "${#RUN[@]}" -ge 1 ] || die "no backend can run"
if [ -n "$VSWITCHD_BIN" ]; then
  LOADGEN_BIN=${LOADGEN:-$(dirname "$VSWITCHD_BIN")/examples/vhost_loadgen}
  if [ ! -x "$LOADGEN_BIN" ]; then
    say "no load generator at $LOADGEN_BIN (cargo build --release --example vhost_loadgen, or LOADGEN=PATH): no vhost-user figures"
    LOADGEN_BIN=""
  fi
fi
command -v trafgen >/dev/null ||
  say "trafgen is missing (package netsniff-ng; sudo $0 --install): no small-frame figures"

# --- the run --------------------------------------------------------------------------------

RESULTS="$WORK/results.tsv"
: >"$RESULTS"
STARTED=$(date -u +%s)
say "backends: ${RUN[*]}; $REPEATS repeat(s), ${DURATION} s per figure"
for rep in $(seq "$REPEATS"); do
  # Interleaved, and rotated each round so no backend always runs first.
  n=${#RUN[@]}
  for k in $(seq 0 $((n - 1))); do
    run_backend "${RUN[$(((k + rep - 1) % n))]}" "$rep"
  done
done
ELAPSED=$(($(date -u +%s) - STARTED))

# --- the report -----------------------------------------------------------------------------

STAMP=$(date -u +%Y%m%d-%H%M%S)
JSON="$OUT_DIR/bench-$STAMP.json"
TABLE="$WORK/table.md"
BENCH_DATE=$(date -u '+%Y-%m-%d %H:%M UTC')
BENCH_CPU=$(lscpu 2>/dev/null | sed -n 's/^Model name: *//p' | head -1)
BENCH_HYPERVISOR=$(lscpu 2>/dev/null | sed -n 's/^Hypervisor vendor: *//p' | head -1)
BENCH_NPROC=$(nproc)
BENCH_MEM=$(awk '/MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo)
BENCH_KERNEL=$(uname -r)
# shellcheck disable=SC1091 # the machine's own os-release
BENCH_OS=$( (. /etc/os-release && echo "$PRETTY_NAME") 2>/dev/null || echo "?")
BENCH_IPERF=$(iperf3 --version 2>/dev/null | head -1 | awk '{print $2}')
export BENCH_DATE BENCH_CPU BENCH_HYPERVISOR BENCH_NPROC BENCH_MEM BENCH_KERNEL BENCH_OS BENCH_IPERF
export BENCH_REPEATS="$REPEATS" BENCH_DURATION="$DURATION" BENCH_PINGS="$PING_COUNT"
export BENCH_MANY="$MANY" BENCH_ELAPSED="$ELAPSED" BENCH_QUICK="$QUICK"
export BENCH_RUN="${RUN[*]}"
BENCH_VERSIONS=""
for b in "${!VERSION[@]}"; do BENCH_VERSIONS+="$b=${VERSION[$b]}"$'\n'; done
BENCH_SKIPPED=""
for b in "${!SKIPPED[@]}"; do BENCH_SKIPPED+="$b=${SKIPPED[$b]}"$'\n'; done
export BENCH_VERSIONS BENCH_SKIPPED

python3 - "$RESULTS" "$JSON" "$TABLE" <<'PY'
import json, os, statistics, sys

results, json_path, table_path = sys.argv[1:4]
env = os.environ
NAMES = {"vswitchd": "vswitchd", "bridge": "Linux bridge", "ovs": "OVS netdev (tap, TSO)",
         "vde": "vde_switch"}
ORDER = ["vswitchd", "bridge", "ovs", "vde"]
# key, label, format, whether higher is better (None: no ratio)
FIGURES = [
    ("tcp1_gbps", "TCP 1 stream, Gbit/s", "%.2f", True),
    ("tcp1_retr", "  retransmits", "%.0f", None),
    ("tcp4_gbps", "TCP 4 streams, Gbit/s", "%.2f", True),
    ("tcp4_retr", "  retransmits", "%.0f", None),
    ("rtt_min_ms", "RTT min, ms", "%.3f", False),
    ("rtt_avg_ms", "RTT avg, ms", "%.3f", False),
    ("rtt_p99_ms", "RTT p99, ms", "%.3f", False),
    ("small_kfps", "64-byte frames delivered, k/s", "%.0f", True),
    ("small_offered_kfps", "  offered, k/s", "%.0f", None),
    ("cpu_tcp1_pct", "switch CPU during TCP 1 stream, % of a core", "%.0f", False),
    ("rss_mib", "switch RSS with %s ports, MiB" % env["BENCH_MANY"], "%.1f", False),
    ("tcp1_8h_gbps", "TCP 1 stream, %s hosts attached, Gbit/s" % env["BENCH_MANY"], "%.2f", True),
    ("tcp1_8h_retr", "  retransmits", "%.0f", None),
    ("tcp1_vxlan_gbps", "VXLAN TCP 1 stream, Gbit/s (vswitchd and bridge only)", "%.2f", True),
    ("tcp1_vxlan_retr", "  retransmits", "%.0f", None),
    ("cpu_tcp1_vxlan_pct", "  both sites' switch CPU, % of a core", "%.0f", False),
    ("vhost_small_mpps", "vhost-user to vhost-user, 64-byte frames, M/s (vswitchd on one core)",
     "%.2f", True),
    ("vhost_tso_gbps", "vhost-user to vhost-user, 64 KiB TSO super-frames, Gbit/s", "%.2f", True),
]

runs = {}
with open(results) as f:
    for line in f:
        b, rep, key, value = line.rstrip("\n").split("\t")
        try:
            runs.setdefault(b, {}).setdefault(key, []).append(float(value))
        except ValueError:
            pass

backends = [b for b in ORDER if b in env["BENCH_RUN"].split()]
versions = dict(kv.split("=", 1) for kv in env["BENCH_VERSIONS"].splitlines() if "=" in kv)
skipped = dict(kv.split("=", 1) for kv in env["BENCH_SKIPPED"].splitlines() if "=" in kv)

def summary(values):
    return {"median": statistics.median(values), "min": min(values), "max": max(values),
            "runs": values}

report = {
    "date": env["BENCH_DATE"],
    "machine": {"cpu": env["BENCH_CPU"], "hypervisor": env["BENCH_HYPERVISOR"],
                "cpus": int(env["BENCH_NPROC"]), "memory": env["BENCH_MEM"],
                "kernel": env["BENCH_KERNEL"], "os": env["BENCH_OS"]},
    "settings": {"repeats": int(env["BENCH_REPEATS"]), "duration_s": int(env["BENCH_DURATION"]),
                 "pings": int(env["BENCH_PINGS"]), "hosts_many": int(env["BENCH_MANY"]),
                 "quick": env["BENCH_QUICK"] == "1", "iperf3": env["BENCH_IPERF"],
                 "elapsed_s": int(env["BENCH_ELAPSED"])},
    "backends": {}, "skipped": skipped, "ratios": {}, "targets": [],
}
for b in backends:
    report["backends"][b] = {
        "name": NAMES[b], "version": versions.get(b, "?"),
        "figures": {k: summary(v) for k, v in sorted(runs.get(b, {}).items())},
    }

def med(b, key):
    fig = report["backends"].get(b, {}).get("figures", {}).get(key)
    return fig["median"] if fig else None

others = [b for b in backends if b != "vswitchd"]
if "vswitchd" in backends:
    for o in others:
        r = {}
        for key, _, _, better in FIGURES:
            v, w = med("vswitchd", key), med(o, key)
            if better is not None and v is not None and w:
                r[key] = round(v / w, 3)
        report["ratios"][o] = r

def target(name, b, key, op, limit):
    ratio = report["ratios"].get(b, {}).get(key)
    if ratio is None:
        return
    met = ratio >= limit if op == ">=" else ratio <= limit
    report["targets"].append({"target": name, "ratio": ratio, "met": met})

target("TCP 1 stream >= 1.0x the Linux bridge", "bridge", "tcp1_gbps", ">=", 1.0)
target("TCP 4 streams >= 1.0x the Linux bridge", "bridge", "tcp4_gbps", ">=", 1.0)
target("RTT avg <= 1.25x the Linux bridge", "bridge", "rtt_avg_ms", "<=", 1.25)
target("64-byte rate >= 2x vde_switch", "vde", "small_kfps", ">=", 2.0)
target("64-byte rate >= 1.5x OVS-tap", "ovs", "small_kfps", ">=", 1.5)
target("VXLAN TCP 1 stream >= 0.8x the Linux bridge", "bridge", "tcp1_vxlan_gbps", ">=", 0.8)
def goal(name, key, limit, unit):
    value = med("vswitchd", key)
    if value is not None:
        report["targets"].append({"target": name, "value": value, "unit": unit,
                                  "met": value >= limit})

goal("vhost-user 64-byte frames >= 5 M/s on one core", "vhost_small_mpps", 5.0, "M/s")
goal("vhost-user TSO super-frames >= 40 Gbit/s on one core", "vhost_tso_gbps", 40.0, "Gbit/s")
rss = med("vswitchd", "rss_mib")
if rss is not None:
    report["targets"].append({"target": "vswitchd RSS <= 16 MiB with %s ports" % env["BENCH_MANY"],
                              "value_mib": rss, "met": rss <= 16.0})

with open(json_path, "w") as f:
    json.dump(report, f, indent=2)
    f.write("\n")

def cell(b, key, fmt):
    fig = report["backends"][b]["figures"].get(key)
    if not fig:
        return "–"
    if len(fig["runs"]) == 1:
        return fmt % fig["median"]
    return "%s (%s–%s)" % (fmt % fig["median"], fmt % fig["min"], fmt % fig["max"])

out = []
m = report["machine"]
out.append("### %s — %s, %s vCPUs%s, %s, Linux %s" % (
    env["BENCH_DATE"], m["cpu"] or "unknown CPU", m["cpus"],
    " (%s)" % m["hypervisor"] if m["hypervisor"] else "", m["memory"], m["kernel"]))
out.append("")
s = report["settings"]
out.append("%s; %d repeat(s), %d s per throughput figure, %d pings; iperf3 %s; took %d s. "
           "Versions: %s." % (
               m["os"], s["repeats"], s["duration_s"], s["pings"], s["iperf3"], s["elapsed_s"],
               ", ".join("%s %s" % (NAMES[b], versions.get(b, "?")) for b in backends)))
if skipped:
    out.append("")
    out.append("Skipped: " + "; ".join("%s: %s" % (NAMES.get(b, b), why)
                                       for b, why in sorted(skipped.items())) + ".")
out.append("")
out.append("Median (min–max) of the runs. The last columns are vswitchd's figure divided by "
           "each other backend's (higher is better for rates, lower for times, CPU and RSS).")
out.append("")
head = ["figure"] + [NAMES[b] for b in backends]
if "vswitchd" in backends:
    head += ["vswitchd ÷ %s" % NAMES[o].split(" (")[0] for o in others]
out.append("| " + " | ".join(head) + " |")
out.append("|" + "|".join(["---"] + ["--:"] * (len(head) - 1)) + "|")
for key, label, fmt, better in FIGURES:
    if not any(key in report["backends"][b]["figures"] for b in backends):
        continue
    row = [label] + [cell(b, key, fmt) for b in backends]
    if "vswitchd" in backends:
        for o in others:
            r = report["ratios"].get(o, {}).get(key)
            row.append("%.2fx" % r if r is not None else "")
    out.append("| " + " | ".join(row) + " |")
if report["targets"]:
    out.append("")
    out.append("Targets of issues 7, 15 and 16 (medians of this run):")
    out.append("")
    for t in report["targets"]:
        if "ratio" in t:
            got = "%.3fx" % t["ratio"]
        elif "unit" in t:
            got = "%.2f %s" % (t["value"], t["unit"])
        else:
            got = "%.1f MiB" % t["value_mib"]
        out.append("- %s %s: %s" % ("met:" if t["met"] else "**not met:**", t["target"], got))
if "rss_db_mib" in runs.get("ovs", {}):
    out.append("")
    out.append("OVS also runs ovsdb-server (RSS %.1f MiB, not counted above)."
               % statistics.median(runs["ovs"]["rss_db_mib"]))
with open(table_path, "w") as f:
    f.write("\n".join(out) + "\n")
PY

cp "$JSON" "$OUT_DIR/latest.json"
[ -z "$JSON_EXTRA" ] || cp "$JSON" "$JSON_EXTRA"
echo
cat "$TABLE"
echo
say "JSON: $JSON"
if [ "$WRITE_DOC" -eq 1 ]; then
  if [ ! -f "$DOC" ]; then
    printf '# Performance\n\n## Runs of scripts/bench.sh\n' >"$DOC"
  fi
  { echo; cat "$TABLE"; } >>"$DOC"
  say "table appended to $DOC"
fi
FINISHED=1
