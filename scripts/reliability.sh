#!/usr/bin/env bash
# Reliability figures for docs/reliability.md, measured on a real vswitchd with hosts in
# network namespaces.
#
#   scripts/reliability.sh dump [ENTRIES]   how long forwarding pauses while `vswitchctl fdb show`
#                                           lists a table of ENTRIES MACs (default 1000000): the
#                                           max RTT of `ping -i 0.01` between two hosts during the
#                                           dump, against the same pings without one; the dump's
#                                           time and the switch's RSS
#   scripts/reliability.sh flood [MACS]     MAC flood: MACS random source MACs (default 1000000) at
#                                           full speed from h3 while h1 and h2 run TCP: the table
#                                           stays at its cap, h1/h2 keep their entries and their
#                                           TCP rate (against the same run without the flood), RSS
#   scripts/reliability.sh abuse [N]        control-socket abuse while h1 pings h2 every 10 ms: N
#                                           connect/close cycles (default 10000), more idle clients
#                                           than the limit, a one-byte-per-100-ms trickler, 8 MB
#                                           without a newline, `fdb show` pipelined unread; ping
#                                           loss and the slowest `vswitchctl show` meanwhile
#   scripts/reliability.sh churn [N]        N cycles (default 1000) of: a TAP port whose device
#                                           vanishes (moved to a namespace that is deleted), a
#                                           port added and deleted, a stream: VM connecting,
#                                           sending and hanging up; while h1 pings h2 every 10 ms:
#                                           vswitchd's open fds and RSS before and after, ping loss
#   scripts/reliability.sh soak [MINUTES]   mixed traffic for MINUTES (default 30): TCP h1->h2 in
#                                           10 s runs, pings h1->h2 every 10 ms, random-MAC bursts
#                                           from h3, a port added and deleted and a config reload
#                                           every few seconds: RSS min/max, ping loss, restarts
#   scripts/reliability.sh short            what CI runs: dump 50000, abuse 1000, churn 20
#
# Needs root. Everything lives in namespaces named rl<PID>-*, removed on every exit path; the
# switch's control socket is in a temporary directory. Fills tables with mausezahn (netsniff-ng,
# listed in scripts/deps.sh).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
P="rl$$"
WORK=$(mktemp -d /tmp/vswitch-rel.XXXXXX)
SWITCH_PID=""
EXTRA=()   # more vswitchd flags for the next start_lab

say() { echo "reliability: $*"; }
die() { echo "reliability: $*" >&2; exit 1; }

stop_lab() {
  if [ -n "$SWITCH_PID" ] && kill -0 "$SWITCH_PID" 2>/dev/null; then
    kill "$SWITCH_PID" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$SWITCH_PID" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$SWITCH_PID" 2>/dev/null || true
  fi
  SWITCH_PID=""
  for ns in sw h1 h2 h3; do ip netns del "$P-$ns" 2>/dev/null || true; done
}

cleanup() {
  stop_lab
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
    --mac-table-size "$1" --mac-ageing 3600 -q "${EXTRA[@]}" \
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

# iperf3 TCP from h1 to h2 for SECS seconds: Mbit/s.
tcp_rate() { # SECS
  ip netns exec "$P-h2" iperf3 -s -1 -D -p 5299 >/dev/null 2>&1
  sleep 0.3
  ip netns exec "$P-h1" timeout $(( $1 + 20 )) iperf3 -c 10.77.0.2 -p 5299 -t "$1" -J 2>/dev/null |
    awk -F'[:,]' '/"sum_received"/ {r=1} r && /"bits_per_second"/ {printf "%d", $2 / 1e6; exit}'
}

flood() { # MACS
  local n=$1 cap=8192
  start_lab "$cap"
  local mac3 quiet loaded rss_before rss_after have h1mac h2mac kept
  mac3=$(ip -n "$P-h3" -br link show "${P}t3" | awk '{print $3}')
  h1mac=$(ip -n "$P-h1" -br link show "${P}t1" | awk '{print $3}')
  h2mac=$(ip -n "$P-h2" -br link show "${P}t2" | awk '{print $3}')
  rss_before=$(rss_kib)
  quiet=$(tcp_rate 5)
  # The flood runs through the whole TCP measurement: at least MACS frames, as many as
  # mausezahn manages in the time.
  local rx0 rx1 t0 t1
  rx0=$($CTL --json port stats "${P}t3" | sed -n 's/.*"rx_frames":\([0-9]*\).*/\1/p')
  t0=$(date +%s%N)
  ip netns exec "$P-h3" timeout 120 mausezahn "${P}t3" -q -a rand -b "$mac3" -c 0 -d 0 -t ip \
    >/dev/null 2>&1 &
  local flooder=$!
  sleep 0.5
  loaded=$(tcp_rate 5)
  while :; do
    rx1=$($CTL --json port stats "${P}t3" | sed -n 's/.*"rx_frames":\([0-9]*\).*/\1/p')
    [ $((rx1 - rx0)) -ge "$n" ] && break
    [ $(( ($(date +%s%N) - t0) / 1000000000 )) -lt 100 ] || break
    sleep 0.5
  done
  t1=$(date +%s%N)
  kill "$flooder" 2>/dev/null || true
  wait "$flooder" 2>/dev/null || true
  say "the flood: $((rx1 - rx0)) frames in $(( (t1 - t0) / 1000000 )) ms ($(( (rx1 - rx0) * 1000 / ((t1 - t0) / 1000000) )) frames/s)"
  have=$(entries)
  rss_after=$(rss_kib)
  kept=$($CTL fdb show | grep -ci -e "$h1mac" -e "$h2mac" || true)
  say "flood: $n random MACs from h3; table $have of $cap; h1/h2 entries kept: $kept of 2"
  say "TCP h1->h2: $quiet Mbit/s without the flood, $loaded Mbit/s during it ($(( loaded * 100 / (quiet > 0 ? quiet : 1) )) %)"
  say "vswitchd RSS: $rss_before KiB before, $rss_after KiB after"
  [ "$have" -le "$cap" ] || die "the table grew past its cap"
  [ "$kept" -eq 2 ] || die "the flood evicted h1's or h2's entry"
}

abuse() { # CYCLES
  local n=$1
  start_lab 8192
  ip netns exec "$P-h1" ping -i 0.01 -W 1 -q 10.77.0.2 >"$WORK/ping.txt" 2>&1 &
  local pinger=$! slowest=0 t0 t1 ms i
  local sock="$WORK/ctl.sock"
  show_ms() {
    t0=$(date +%s%N); $CTL --timeout 5 show >/dev/null || echo "show failed" >>"$WORK/fail"
    t1=$(date +%s%N); ms=$(( (t1 - t0) / 1000000 ))
    [ "$ms" -gt "$slowest" ] && slowest=$ms
    return 0
  }
  # 1. connect/close cycles.
  python3 - "$sock" "$n" <<'PY'
import socket, sys
for _ in range(int(sys.argv[2])):
    s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); s.close()
PY
  show_ms
  # 2. more idle clients than the limit (256), held open.
  python3 - "$sock" 300 <<'PY' &
import socket, sys, time
held = []
for _ in range(int(sys.argv[2])):
    s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); held.append(s)
time.sleep(4)
PY
  local idlers=$!
  sleep 1; show_ms; show_ms
  # 3. a trickler (one byte every 100 ms), 4. 8 MB without a newline, 5. fdb show pipelined
  # without reading.
  python3 - "$sock" <<'PY' &
import socket, sys, time
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1])
for b in b'{"cmd":"show"}' * 3:
    s.send(bytes([b])); time.sleep(0.1)
PY
  local trickler=$!
  python3 - "$sock" <<'PY' &
import socket, sys
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1])
try:
    s.sendall(b"x" * (8 << 20))
except OSError:
    pass
PY
  local flooder=$!
  python3 - "$sock" <<'PY' &
import socket, sys, time
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1])
s.setblocking(False)
try:
    for _ in range(2000):
        s.send(b'{"cmd":"fdb-show"}\n')
except OSError:
    pass
time.sleep(3)
PY
  local pipeliner=$!
  for i in $(seq 10); do show_ms; sleep 0.3; done
  wait "$idlers" "$trickler" "$flooder" "$pipeliner" 2>/dev/null || true
  show_ms
  kill -INT "$pinger"; wait "$pinger" || true
  local sent lost
  sent=$(sed -n 's/^\([0-9]*\) packets transmitted.*/\1/p' "$WORK/ping.txt")
  lost=$(sed -n 's/.* \([0-9.]*\)% packet loss.*/\1/p' "$WORK/ping.txt")
  say "abuse: $n connect/close cycles, 300 idle clients, a trickler, 8 MB without a newline, 2000 pipelined fdb-show unread"
  say "pings h1->h2 meanwhile: $sent sent, $lost% lost; slowest vswitchctl show: $slowest ms"
  [ ! -e "$WORK/fail" ] || die "a vswitchctl show failed: $(cat "$WORK/fail")"
  kill -0 "$SWITCH_PID" || die "vswitchd died"
}

fds() { find "/proc/$SWITCH_PID/fd" -mindepth 1 -maxdepth 1 | wc -l; }

# Whether the switch lists a port called NAME.
has_port() { $CTL --json port list | grep -q "\"name\":\"$1\""; }

churn() { # CYCLES
  local n=$1 i fds0 rss0 fds1 rss1
  start_lab 8192
  $CTL port add "stream:$WORK/vm.sock" >/dev/null
  # Warm up once, so buffers allocated on first use are in the baseline.
  churn_cycle 0
  fds0=$(fds); rss0=$(rss_kib)
  ip netns exec "$P-h1" ping -i 0.01 -W 1 -q 10.77.0.2 >"$WORK/ping.txt" 2>&1 &
  local pinger=$!
  for i in $(seq "$n"); do churn_cycle "$i"; done
  sleep 1
  kill -INT "$pinger"; wait "$pinger" || true
  fds1=$(fds); rss1=$(rss_kib)
  local sent lost
  sent=$(sed -n 's/^\([0-9]*\) packets transmitted.*/\1/p' "$WORK/ping.txt")
  lost=$(sed -n 's/.* \([0-9.]*\)% packet loss.*/\1/p' "$WORK/ping.txt")
  say "churn: $n cycles of a vanishing TAP, port add/del and a stream VM reconnecting"
  say "vswitchd open fds: $fds0 before, $fds1 after; RSS: $rss0 KiB before, $rss1 KiB after"
  say "pings h1->h2 meanwhile: $sent sent, $lost% lost"
  [ $((fds1 - fds0)) -le 1 ] && [ $((fds0 - fds1)) -le 1 ] || die "open fds changed: $fds0 -> $fds1"
  [ $((rss1 * 10)) -le $((rss0 * 11)) ] || die "RSS grew by more than 10 %: $rss0 -> $rss1 KiB"
}

churn_cycle() { # I
  local gone="${P}c" del="${P}d" i
  # A TAP whose device disappears: its namespace is deleted under it.
  $CTL port add "$gone" >/dev/null
  ip netns add "$P-c"
  ip -n "$P-sw" link set "$gone" netns "$P-c"
  ip netns del "$P-c"
  for i in $(seq 100); do has_port "$gone" || break; sleep 0.02; done
  ! has_port "$gone" || die "the vanished TAP was not removed"
  # A port added and deleted by an operator.
  $CTL port add "$del" >/dev/null
  $CTL port del "$del" >/dev/null
  # A VM on the stream port: connects, sends a frame, hangs up.
  python3 - "$WORK/vm.sock" <<'PY'
import socket, struct, sys
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
frame = b"\xff" * 6 + b"\x02\x00\x00\x00\x00\x09" + b"\x88\xb5" + b"\x00" * 46
s.sendall(struct.pack(">I", len(frame)) + frame)
s.close()
PY
}

soak() { # MINUTES
  local minutes=$1 end rss min max ageing=300 cycles=0 pid0
  printf 'mac-ageing = 300\n' >"$WORK/soak.toml"
  EXTRA=(--config "$WORK/soak.toml")
  start_lab 8192
  pid0=$SWITCH_PID
  local mac3
  mac3=$(ip -n "$P-h3" -br link show "${P}t3" | awk '{print $3}')
  ip netns exec "$P-h1" ping -i 0.01 -W 1 -q 10.77.0.2 >"$WORK/ping.txt" 2>&1 &
  local pinger=$!
  ip netns exec "$P-h2" iperf3 -s -p 5298 >/dev/null 2>&1 &
  local server=$!
  min=$(rss_kib); max=$min
  end=$(( $(date +%s) + minutes * 60 ))
  while [ "$(date +%s)" -lt "$end" ]; do
    ip netns exec "$P-h1" timeout 30 iperf3 -c 10.77.0.2 -p 5298 -t 10 >/dev/null 2>&1 &
    local tcp=$!
    ip netns exec "$P-h3" timeout 20 mausezahn "${P}t3" -q -a rand -b "$mac3" -c 20000 -d 0 \
      -t ip >/dev/null 2>&1 || true
    $CTL port add "${P}s" >/dev/null
    sleep 1
    $CTL port del "${P}s" >/dev/null
    ageing=$(( ageing == 300 ? 301 : 300 ))
    printf 'mac-ageing = %d\n' "$ageing" >"$WORK/soak.toml"
    $CTL reload >/dev/null
    wait "$tcp" || true
    rss=$(rss_kib)
    [ "$rss" -lt "$min" ] && min=$rss
    [ "$rss" -gt "$max" ] && max=$rss
    cycles=$((cycles + 1))
  done
  kill -INT "$pinger"; wait "$pinger" || true
  kill "$server" 2>/dev/null || true
  wait "$server" 2>/dev/null || true
  local sent lost
  sent=$(sed -n 's/^\([0-9]*\) packets transmitted.*/\1/p' "$WORK/ping.txt")
  lost=$(sed -n 's/.* \([0-9.]*\)% packet loss.*/\1/p' "$WORK/ping.txt")
  kill -0 "$pid0" 2>/dev/null || die "vswitchd is gone"
  say "soak: $minutes min, $cycles rounds of TCP 10 s, 20000 random MACs, port add/del, reload"
  say "vswitchd RSS: min $min KiB, max $max KiB; restarts: 0 (same pid $pid0)"
  say "pings h1->h2: $sent sent, $lost% lost"
}

case "${1:-}" in
  soak) soak "${2:-30}" ;;
  churn) churn "${2:-1000}" ;;
  dump) dump "${2:-1000000}" ;;
  flood) flood "${2:-1000000}" ;;
  abuse) abuse "${2:-10000}" ;;
  short) dump 50000; stop_lab; abuse 1000; stop_lab; churn 20 ;;
  *) awk 'NR > 1 && !/^#/ {exit} NR > 1 {print}' "$0"; exit 2 ;;
esac
