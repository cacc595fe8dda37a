#!/usr/bin/env bash
# A lab of hosts in network namespaces, connected through vswitchd.
#
#   scripts/lab.sh up [N]   start vswitchd with N TAPs (default 3, at most 50) and put TAP i into
#                           namespace vs-hI with address 10.0.0.I/24
#   scripts/lab.sh ping     ping every pair of hosts; exit 1 if any pair fails
#   scripts/lab.sh status   show the switch process and the hosts
#   scripts/lab.sh down     stop vswitchd and remove the lab's namespaces
#   scripts/lab.sh demo     up 3, ping, down: what the README's first command runs
#
# Needs root (namespaces, TAPs). Everything lives in namespaces the script creates: vswitchd
# runs in vs-sw, so its TAPs are never created in the root namespace; nothing else on the machine
# is touched. Running `up` on a lab that is up rebuilds it; `down` is safe to run any time.
#
# Environment: VS_LAB_PREFIX (default "vs", 1-6 of a-z0-9) names the lab, so two labs can coexist;
# VSWITCHD is the binary to run (default: target/release/vswitchd, built with cargo).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
PREFIX=${VS_LAB_PREFIX:-vs}
# The prefix ends up in paths that `down` removes and in 15-byte interface names: keep it tame.
[[ "$PREFIX" =~ ^[a-z0-9]{1,6}$ ]] || { echo "lab: VS_LAB_PREFIX must be 1-6 of a-z0-9" >&2; exit 2; }
SW_NS="$PREFIX-sw"
STATE="/run/vswitch-lab/$PREFIX"
SUBNET=10.0.0

die() { echo "lab: $*" >&2; exit 1; }
say() { echo "lab: $*"; }

need_root() { [ "$(id -u)" -eq 0 ] || die "needs root for namespaces and TAPs: sudo $0 $*"; }

host_ns() { echo "$PREFIX-h$1"; }
tap() { echo "$PREFIX-tap$1"; }

hosts() { # the lab's host numbers, from its namespaces
  ip netns list 2>/dev/null | awk '{print $1}' | sed -n "s/^$PREFIX-h\([0-9][0-9]*\)\$/\1/p" | sort -n
}

switch_pid() { # the pid of the lab's vswitchd, if it runs
  local pid
  pid=$(cat "$STATE/pid" 2>/dev/null) || return 1
  [ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q "vswitchd.*--name $PREFIX-lab" || return 1
  echo "$pid"
}

# shellcheck source=scripts/lib.sh
. "$ROOT/scripts/lib.sh"

cmd_down() {
  need_root down
  local pid i
  if pid=$(switch_pid); then
    kill -TERM "$pid" 2>/dev/null || true
    for i in $(seq 50); do [ -d "/proc/$pid" ] || break; sleep 0.1; done
    if [ -d "/proc/$pid" ]; then
      say "vswitchd ($pid) ignored SIGTERM for 5 s; killing it"
      kill -KILL "$pid" 2>/dev/null || true
    fi
  fi
  for i in $(hosts); do ip netns del "$(host_ns "$i")" 2>/dev/null || true; done
  ip netns del "$SW_NS" 2>/dev/null || true
  rm -rf "$STATE"
  say "down"
}

cmd_up() {
  need_root up
  local n=${1:-3} i bin pid ns
  [[ "$n" =~ ^[0-9]+$ ]] && [ "$n" -ge 2 ] && [ "$n" -le 50 ] || die "up N: N must be 2 to 50, not '$n'"
  "$ROOT/scripts/deps.sh" install >&2 || die "missing tools (see above)"
  bin=$(vswitchd_binary)
  if switch_pid >/dev/null || ip netns list | grep -q "^$SW_NS\b" || [ -n "$(hosts)" ]; then
    say "a lab named $PREFIX exists; rebuilding it"
    cmd_down >/dev/null
  fi
  mkdir -p "$STATE"
  # Whatever ends `up` early (a failed command, a die, a signal) takes the half-built lab down.
  trap 'echo "lab: up failed; cleaning up" >&2; cmd_down >/dev/null' EXIT

  ip netns add "$SW_NS"
  ip -n "$SW_NS" link set lo up
  local ports=()
  for i in $(seq "$n"); do ports+=(--port "$(tap "$i")"); done
  # RUST_LOG unset: the default level logs the "switching between" line waited for below.
  ip netns exec "$SW_NS" env -u RUST_LOG "$bin" --name "$PREFIX-lab" "${ports[@]}" \
    </dev/null >/dev/null 2>"$STATE/vswitchd.log" &
  pid=$!
  echo "$pid" >"$STATE/pid"
  for i in $(seq 100); do
    grep -q "switching between" "$STATE/vswitchd.log" 2>/dev/null && break
    [ -d "/proc/$pid" ] || { cat "$STATE/vswitchd.log" >&2; die "vswitchd exited"; }
    sleep 0.1
  done
  grep -q "switching between" "$STATE/vswitchd.log" || die "vswitchd did not start within 10 s"

  for i in $(seq "$n"); do
    ns=$(host_ns "$i")
    ip netns add "$ns"
    ip -n "$ns" link set lo up
    ip -n "$SW_NS" link set "$(tap "$i")" netns "$ns"
    ip -n "$ns" addr add "$SUBNET.$i/24" dev "$(tap "$i")"
    ip -n "$ns" link set "$(tap "$i")" up
  done
  trap - EXIT
  say "up: vswitchd pid $pid in namespace $SW_NS, log $STATE/vswitchd.log"
  say "  inspect it: vswitchctl -n $PREFIX-lab show"
  for i in $(seq "$n"); do
    say "  $(host_ns "$i"): $(tap "$i") $SUBNET.$i/24   (ip netns exec $(host_ns "$i") bash)"
  done
}

cmd_ping() {
  need_root ping
  local all i j failed=0 out rtt
  all=$(hosts)
  [ -n "$all" ] || die "no lab is up (scripts/lab.sh up)"
  switch_pid >/dev/null || die "the lab's vswitchd is not running (scripts/lab.sh up)"
  for i in $all; do
    for j in $all; do
      [ "$i" = "$j" ] && continue
      # Three replies within 6 s (the first may wait for ARP); ping fails otherwise.
      if out=$(ip netns exec "$(host_ns "$i")" ping -n -c 3 -i 0.2 -w 6 "$SUBNET.$j" 2>&1); then
        rtt=$(echo "$out" | sed -n 's|.*= [0-9.]*/\([0-9.]*\)/.*|\1|p')
        printf 'lab: %-8s -> %-12s ok   (avg %s ms)\n' "$(host_ns "$i")" "$SUBNET.$j" "$rtt"
      else
        printf 'lab: %-8s -> %-12s FAILED\n' "$(host_ns "$i")" "$SUBNET.$j"
        failed=1
      fi
    done
  done
  [ "$failed" -eq 0 ] && say "every pair reached each other through vswitchd" || die "some pairs failed"
}

cmd_status() {
  local pid
  if pid=$(switch_pid); then say "vswitchd running, pid $pid (log $STATE/vswitchd.log)"; else say "vswitchd not running"; fi
  for i in $(hosts); do
    say "  $(host_ns "$i"): $(ip -n "$(host_ns "$i")" -br addr show dev "$(tap "$i")" 2>/dev/null || echo '?')"
  done
}

cmd_demo() {
  need_root demo
  cmd_up 3
  trap 'cmd_down >/dev/null 2>&1 || true' EXIT
  cmd_ping
  local ctl
  ctl="$(dirname "$(vswitchd_binary)")/vswitchctl"
  say "what the switch learned (vswitchctl -n $PREFIX-lab show; fdb show):"
  "$ctl" -n "$PREFIX-lab" show | sed 's/^/    /'
  "$ctl" -n "$PREFIX-lab" fdb show | sed 's/^/    /'
  say "log of the switch:"
  sed 's/^/    /' "$STATE/vswitchd.log"
}

case "${1:-}" in
  up) shift; cmd_up "$@" ;;
  down) cmd_down ;;
  ping) cmd_ping ;;
  status) cmd_status ;;
  demo) cmd_demo ;;
  *) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 2 ;;
esac
