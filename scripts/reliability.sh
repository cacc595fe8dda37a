#!/usr/bin/env bash
# Reliability figures for docs/reliability.md, measured on a real vswitchd with hosts in
# network namespaces.
#
#   scripts/reliability.sh dump [ENTRIES]   how long forwarding pauses while `vswitchctl fdb show`
#                                           lists a table of ENTRIES MACs (default 1000000): the
#                                           max RTT of `ping -i 0.01` between two hosts during the
#                                           dump, against the same pings without one; the dump's
#                                           time and the switch's RSS
#   scripts/reliability.sh short            what CI runs: dump with 50000 entries
#
# Needs root. Everything lives in namespaces named rl<PID>-*, removed on every exit path; the
# switch's control socket is in a temporary directory. Fills tables with mausezahn (netsniff-ng,
# listed in scripts/deps.sh).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
P="rl$$"
WORK=$(mktemp -d /tmp/vswitch-rel.XXXXXX)
SWITCH_PID=""

say() { echo "reliability: $*"; }
die() { echo "reliability: $*" >&2; exit 1; }

cleanup() {
  if [ -n "$SWITCH_PID" ] && kill -0 "$SWITCH_PID" 2>/dev/null; then
    kill "$SWITCH_PID" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$SWITCH_PID" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$SWITCH_PID" 2>/dev/null || true
  fi
  for ns in sw h1 h2 h3; do ip netns del "$P-$ns" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

[ "$(id -u)" -eq 0 ] || die "needs root (namespaces, TAPs): sudo $0 $*"
command -v mausezahn >/dev/null || die "needs mausezahn: scripts/deps.sh install"

BIN="$ROOT/target/release"
(cd "$ROOT" && cargo build --release --quiet --bin vswitchd --bin vswitchctl)
CTL="$BIN/vswitchctl -s $WORK/ctl.sock"

# A switch with three TAP hosts: h1 and h2 ping, h3 fills the table.
start_lab() { # TABLE_SIZE
  for ns in sw h1 h2 h3; do ip netns add "$P-$ns"; done
  ip netns exec "$P-sw" "$BIN/vswitchd" --name "$P" --ctl-socket "$WORK/ctl.sock" \
    --mac-table-size "$1" --mac-ageing 3600 -q \
    --port "${P}t1" --port "${P}t2" --port "${P}t3" 2>"$WORK/vswitchd.log" &
  SWITCH_PID=$!
  for _ in $(seq 100); do
    $CTL show >/dev/null 2>&1 && break
    sleep 0.1
  done
  $CTL show >/dev/null || die "vswitchd did not start: $(cat "$WORK/vswitchd.log")"
  for i in 1 2 3; do
    ip -n "$P-sw" link set "${P}t$i" netns "$P-h$i"
    ip -n "$P-h$i" addr add "10.77.0.$i/24" dev "${P}t$i"
    ip -n "$P-h$i" link set "${P}t$i" up
  done
  ip netns exec "$P-h1" ping -c 3 -i 0.2 -W 2 -q 10.77.0.2 >/dev/null || die "h1 cannot reach h2"
  ip netns exec "$P-h3" ping -c 1 -W 2 -q 10.77.0.1 >/dev/null || die "h3 cannot reach h1"
}

entries() { $CTL --json fdb stats | sed -n 's/.*"entries":\([0-9]*\).*/\1/p'; }

rss_kib() { awk '/^VmRSS/ {print $2}' "/proc/$SWITCH_PID/status"; }

# Fills the table with random source MACs from h3, sent to h3's own MAC (dropped as same_port:
# nothing is flooded), until it holds `want` entries.
fill() { # WANT
  local want=$1 mac tries=0
  mac=$(ip -n "$P-h3" -br link show "${P}t3" | awk '{print $3}')
  while [ "$(entries)" -lt "$want" ]; do
    tries=$((tries + 1))
    [ "$tries" -le 40 ] || die "the table stopped at $(entries) of $want entries"
    ip netns exec "$P-h3" timeout 60 mausezahn "${P}t3" -q -a rand -b "$mac" -c "$want" -d 0 \
      -t ip >/dev/null 2>&1 || true
  done
}

# The max RTT (ms) of 400 pings at 10 ms from h1 to h2, while `during` runs.
ping_max() { # COMMAND...
  ip netns exec "$P-h1" ping -i 0.01 -c 400 -W 1 -q 10.77.0.2 >"$WORK/ping.txt" 2>&1 &
  local pinger=$!
  sleep 0.5
  "$@"
  wait "$pinger" || true
  local loss max
  loss=$(sed -n 's/.* \([0-9.]*\)% packet loss.*/\1/p' "$WORK/ping.txt")
  max=$(sed -n 's|.*= [0-9.]*/[0-9.]*/\([0-9.]*\)/.*|\1|p' "$WORK/ping.txt")
  echo "$max ms max, $loss% lost"
}

dump_once() {
  local start end peak=0 r
  start=$(date +%s%N)
  $CTL fdb show >"$WORK/dump.txt" &
  local dumper=$!
  while kill -0 "$dumper" 2>/dev/null; do
    r=$(rss_kib); [ "$r" -gt "$peak" ] && peak=$r
    sleep 0.02
  done
  wait "$dumper"
  end=$(date +%s%N)
  echo "$(( (end - start) / 1000000 ))" >"$WORK/dump_ms"
  echo "$peak" >"$WORK/dump_rss"
}

dump() { # ENTRIES
  local n=$1
  start_lab $((n + n / 10 + 1000))
  say "filling the table with $n random MACs"
  fill "$n"
  local have rss_before idle during rows rss_after
  have=$(entries)
  rss_before=$(rss_kib)
  idle=$(ping_max sleep 3)
  during=$(ping_max dump_once)
  rows=$(($(wc -l <"$WORK/dump.txt") - 1))
  rss_after=$(rss_kib)
  say "table: $have entries; fdb show listed $rows rows in $(cat "$WORK/dump_ms") ms"
  say "ping h1->h2 without a dump: $idle"
  say "ping h1->h2 during the dump: $during"
  say "vswitchd RSS: $rss_before KiB before, $(cat "$WORK/dump_rss") KiB peak during, $rss_after KiB after"
  [ "$rows" -ge "$have" ] || die "the dump listed $rows of $have entries"
}

case "${1:-}" in
  dump) dump "${2:-1000000}" ;;
  short) dump 50000 ;;
  *) sed -n '2,14p' "$0"; exit 2 ;;
esac
