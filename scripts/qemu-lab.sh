#!/usr/bin/env bash
# QEMU guests for vswitchd: a tiny Linux guest built from Debian packages, and a demo that boots
# two of them on vswitchd's QEMU socket ports. See docs/qemu.md.
#
#   scripts/qemu-lab.sh prepare   build (or reuse) the guest; prints the directory holding
#                                 vmlinux and initrd.img
#   scripts/qemu-lab.sh demo      two VMs on stream: ports, no root needed: they ping and one
#                                 fetches a file from the other, checksums compared
#   scripts/qemu-lab.sh vm NAME NETDEV-OPTIONS IP/PREFIX [ROLE [PEER]]
#                                 boot one guest in the foreground with -netdev NETDEV-OPTIONS
#                                 (its console on stdout; Ctrl-A X quits)
#
# The guest: Debian's kernel (linux-image-*-amd64, fetched with `apt-get download`, unpacked
# with dpkg-deb, never installed), its virtio-net modules, and busybox-static as userland, in an
# initramfs. It reads its address and role from the kernel command line (vs.ip=, vs.role=,
# vs.peer=, vs.bytes=) and prints VSWITCH-* markers on its console for scripts to read:
#   role serve: writes vs.bytes random bytes to /www/data, prints VSWITCH-SERVING <sha256>,
#               serves it over HTTP (busybox httpd)
#   role fetch: pings vs.peer with full-size frames (VSWITCH-PING-OK / -FAIL), fetches
#               http://PEER/data, prints VSWITCH-FETCHED <sha256> <bytes> (or -FAIL)
#   role ping:  pings vs.peer (VSWITCH-PING-OK / -FAIL)
# Then it idles (answering pings) until QEMU is stopped.
#
# Files are cached in $VSWITCH_CACHE (default ~/.cache/vswitch, or /var/cache/vswitch for root)
# so repeated runs reuse them. Needs: apt-get (for the downloads), dpkg-deb, cpio, xz, and
# qemu-system-x86_64 to boot (scripts/deps.sh install installs them).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
if [ -z "${VSWITCH_CACHE:-}" ]; then
  if [ "$(id -u)" -eq 0 ]; then VSWITCH_CACHE=/var/cache/vswitch; else VSWITCH_CACHE=$HOME/.cache/vswitch; fi
fi
GUEST="$VSWITCH_CACHE/guest"
MODULES="virtio_ring virtio_pci_modern_dev virtio_pci_legacy_dev virtio virtio_pci failover net_failover virtio_net"

die() { echo "qemu-lab: $*" >&2; exit 1; }
say() { echo "qemu-lab: $*" >&2; }
# shellcheck source=scripts/lib.sh
. "$ROOT/scripts/lib.sh"

# The guest's /init, run by the kernel as PID 1.
guest_init() {
  cat <<'INIT'
#!/bin/busybox sh
/bin/busybox mkdir -p /proc /sys /dev /tmp /www
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev 2>/dev/null
for m in MODULES; do insmod /lib/modules/$m.ko 2>/dev/null; done
arg() { for x in $(cat /proc/cmdline); do case "$x" in "vs.$1="*) echo "${x#vs.$1=}"; return;; esac; done; }
IP=$(arg ip); ROLE=$(arg role); PEER=$(arg peer); BYTES=$(arg bytes)
[ -n "$BYTES" ] || BYTES=262144
ip link set lo up
i=0; while [ ! -e /sys/class/net/eth0 ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done
ip link set eth0 up
ip addr add "$IP" dev eth0
echo "VSWITCH-READY $(cat /sys/class/net/eth0/address)"
reach() {
  # The peer may still be booting: up to 60 tries, then 3 full-size pings (1500-byte IP).
  i=0
  while [ $i -lt 60 ] && ! ping -c 1 -W 1 "$PEER" >/dev/null 2>&1; do i=$((i+1)); done
  if ping -c 3 -s 1472 -W 2 "$PEER" >/dev/null 2>&1; then echo VSWITCH-PING-OK; else echo VSWITCH-PING-FAIL; fi
}
case "$ROLE" in
  serve)
    dd if=/dev/urandom of=/www/data bs=1024 count=$((BYTES / 1024)) 2>/dev/null
    echo "VSWITCH-SERVING $(sha256sum /www/data | cut -d' ' -f1)"
    httpd -p 80 -h /www ;;
  fetch)
    reach
    # (busybox-static's wget crashes with -T; timeout bounds it instead)
    if timeout 60 wget -O /tmp/data "http://$PEER:80/data" 2>/tmp/wget.err; then
      echo "VSWITCH-FETCHED $(sha256sum /tmp/data | cut -d' ' -f1) $(wc -c < /tmp/data)"
    else
      echo "VSWITCH-FETCH-FAIL $(tail -1 /tmp/wget.err)"
    fi ;;
  ping) reach ;;
esac
echo VSWITCH-IDLE
while true; do sleep 3600; done
INIT
}

# Builds vmlinux and initrd.img in $GUEST unless they are there and newer than this script.
cmd_prepare() {
  if [ -s "$GUEST/vmlinux" ] && [ -s "$GUEST/initrd.img" ] && [ "$GUEST/initrd.img" -nt "$0" ]; then
    echo "$GUEST"
    return
  fi
  for tool in apt-get apt-cache dpkg-deb cpio xz gzip; do
    command -v "$tool" >/dev/null || die "$tool is needed to build the guest (scripts/deps.sh install)"
  done
  mkdir -p "$VSWITCH_CACHE/debs" "$GUEST"
  local work kpkg
  work=$(mktemp -d)
  # The work directory goes however the build ends (a subshell, so the trap is its own).
  (
  trap 'rm -rf "$work"' EXIT
  kpkg=$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/{print $2; exit}')
  [ -n "$kpkg" ] || die "no linux-image-*-amd64 package known to apt (apt-get update?)"
  (cd "$VSWITCH_CACHE/debs" && for p in "$kpkg" busybox-static; do
     ls "${p}"_*.deb >/dev/null 2>&1 || apt-get download -q "$p" >/dev/null 2>&1 || die "apt-get download $p failed"
   done)
  say "building the guest from $kpkg and busybox-static"
  dpkg-deb -x "$(ls "$VSWITCH_CACHE"/debs/"${kpkg}"_*.deb | head -1)" "$work/k"
  dpkg-deb -x "$(ls "$VSWITCH_CACHE"/debs/busybox-static_*.deb | head -1)" "$work/b"

  # The uncompressed kernel boots with PVH, skipping seconds of in-guest decompression.
  local bz off
  bz=$(ls "$work"/k/boot/vmlinuz-* | head -1)
  off=$(LC_ALL=C grep -obUaP '\xfd7zXZ\x00' "$bz" | head -1 | cut -d: -f1)
  [ -n "$off" ] || die "no xz payload in $bz"
  tail -c +$((off + 1)) "$bz" | xz -dc > "$work/vmlinux" 2>/dev/null || true
  [ "$(head -c 4 "$work/vmlinux" | od -An -tx1 | tr -d ' ')" = "7f454c46" ] || die "could not unpack the kernel"

  local root="$work/root"
  mkdir -p "$root/bin" "$root/lib/modules"
  cp "$work/b/bin/busybox" "$root/bin/busybox"
  local m f
  for m in $MODULES; do
    f=$(find "$work/k/lib/modules" -name "$m.ko" | head -1)
    [ -n "$f" ] && cp "$f" "$root/lib/modules/"
  done
  guest_init | sed "s/MODULES/$MODULES/" > "$root/init"
  chmod +x "$root/init"
  (cd "$root" && find . | cpio -o -H newc --quiet | gzip -1) > "$work/initrd.img"
  mv "$work/vmlinux" "$work/initrd.img" "$GUEST/"
  ) || exit 1
  chmod -R a+rX "$VSWITCH_CACHE"
  echo "$GUEST"
}

# Sets QEMU_ARGS to the command line for one guest: NAME NETDEV-OPTIONS IP [ROLE [PEER [BYTES]]].
qemu_args() {
  local name=$1 netdev=$2 ip=$3 role=${4:-} peer=${5:-} bytes=${6:-}
  local mac
  mac=$(printf '52:54:00:%02x:%02x:%02x' $((RANDOM % 256)) $((RANDOM % 256)) $((RANDOM % 256)))
  QEMU_ARGS=(-accel tcg -cpu max -machine q35 -m 256 -nodefaults -display none -no-reboot
    -kernel "$GUEST/vmlinux" -initrd "$GUEST/initrd.img"
    -append "console=ttyS0 panic=-1 quiet vs.name=$name vs.ip=$ip vs.role=$role vs.peer=$peer vs.bytes=$bytes"
    -netdev "$netdev" -device "virtio-net-pci,netdev=n0,mac=$mac")
}

cmd_vm() {
  [ $# -ge 3 ] || die "usage: $0 vm NAME NETDEV-OPTIONS IP/PREFIX [ROLE [PEER]]"
  cmd_prepare >/dev/null
  qemu_args "$1" "$2,id=n0" "$3" "${4:-}" "${5:-}"
  exec qemu-system-x86_64 "${QEMU_ARGS[@]}" -serial mon:stdio
}

# Waits (bounded) for a marker in a console log; prints the matching line.
wait_for() {
  local log=$1 marker=$2 limit=$3 i
  for i in $(seq $((limit * 10))); do
    if grep -m1 "$marker" "$log" 2>/dev/null | tr -d "\r" | grep .; then return 0; fi
    sleep 0.1
  done
  return 1
}

cmd_demo() {
  command -v qemu-system-x86_64 >/dev/null || die "qemu-system-x86_64 is needed (scripts/deps.sh install)"
  cmd_prepare >/dev/null
  local vswitchd
  # Globals: the EXIT trap runs after this function has returned.
  dir=$(mktemp -d "${TMPDIR:-/tmp}/vswitch-qemu-demo.XXXXXX")
  pids=()
  trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null; [ -n "${KEEP:-}" ] || rm -rf "$dir"' EXIT
  vswitchd=$(vswitchd_binary)
  # Stream ports only: no root, no TAP, nothing on the host's network.
  "$vswitchd" --ctl-socket "$dir/ctl" --port "stream:$dir/vm1.sock" --port "stream:$dir/vm2.sock" \
    2>"$dir/vswitchd.log" &
  pids+=($!)
  for _ in $(seq 50); do [ -S "$dir/vm2.sock" ] && break; sleep 0.1; done
  [ -S "$dir/vm2.sock" ] || die "vswitchd did not start: $(cat "$dir/vswitchd.log")"
  say "booting vm1 (server) and vm2 (client) under TCG; this takes a few seconds"
  qemu_args vm1 "stream,id=n0,server=off,addr.type=unix,addr.path=$dir/vm1.sock" \
    10.77.0.1/24 serve "" 262144
  qemu-system-x86_64 "${QEMU_ARGS[@]}" -serial "file:$dir/vm1.log" &
  pids+=($!)
  local served fetched
  served=$(wait_for "$dir/vm1.log" VSWITCH-SERVING 60) || die "vm1 did not come up: $(tail -5 "$dir/vm1.log")"
  qemu_args vm2 "stream,id=n0,server=off,addr.type=unix,addr.path=$dir/vm2.sock" \
    10.77.0.2/24 fetch 10.77.0.1
  qemu-system-x86_64 "${QEMU_ARGS[@]}" -serial "file:$dir/vm2.log" &
  pids+=($!)
  fetched=$(wait_for "$dir/vm2.log" 'VSWITCH-FETCHED\|VSWITCH-FETCH-FAIL' 120) || die "vm2 did not finish: $(tail -5 "$dir/vm2.log")"
  say "vm2: $(grep -m1 'VSWITCH-PING' "$dir/vm2.log" || echo 'no ping result')"
  say "vm1 serves $(echo "$served" | awk '{print $2}')"
  say "vm2 fetched $(echo "$fetched" | awk '{print $2, "(" $3 " bytes)"}')"
  "$ROOT/target/release/vswitchctl" -s "$dir/ctl" fdb show >&2
  [ "$(echo "$served" | awk '{print $2}')" = "$(echo "$fetched" | awk '{print $2}')" ] ||
    die "the checksums differ"
  say "the two VMs talked through vswitchd; checksums match"
}

case "${1:-}" in
  prepare) cmd_prepare ;;
  demo) cmd_demo ;;
  vm) shift; cmd_vm "$@" ;;
  *) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 2 ;;
esac
