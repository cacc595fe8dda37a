#!/usr/bin/env bash
# The system tools vswitch's lab and tests use, and how to get them.
#
#   scripts/deps.sh check     list what is missing (exit 1 if anything is)
#   scripts/deps.sh install   install what is missing with apt-get (root)
#
# One list for the tests and labs: .ci/run, scripts/test.sh and the lab scripts all come through
# here. Open vSwitch is on it for the VXLAN interop test (installing it starts no daemon: the
# tests run their own, in namespaces; Debian enables its service for the next boot). The
# benchmark's other switches (vde2, trafgen) are installed by `scripts/bench.sh --install`,
# which keeps their system services from starting.
set -euo pipefail

# command  Debian package (py:MODULE: a module of Debian's /usr/bin/python3)
DEPS="
ip        iproute2
ethtool   ethtool
sysctl    procps
ping      iputils-ping
arping    iputils-arping
tcpdump   tcpdump
iperf3    iperf3
lldpctl   lldpd
mausezahn netsniff-ng
tshark    tshark
setpriv   util-linux
unshare   util-linux
timeout   coreutils
qemu-system-x86_64  qemu-system-x86
cpio      cpio
xz        xz-utils
ovs-vswitchd  openvswitch-switch
py:prometheus_client  python3-prometheus-client
"

missing_packages() {
  local cmd pkg out=""
  while read -r cmd pkg; do
    [ -n "$cmd" ] || continue
    case "$cmd" in
      # A Python module for Debian's /usr/bin/python3 (the python3 first on PATH may be
      # another interpreter).
      py:*) /usr/bin/python3 -c "import ${cmd#py:}" >/dev/null 2>&1 || out="$out $pkg" ;;
      *) command -v "$cmd" >/dev/null 2>&1 || out="$out $pkg" ;;
    esac
  done <<<"$DEPS"
  echo "$out" | tr ' ' '\n' | sort -u | tr '\n' ' ' | sed 's/^ *//; s/ *$//'
}

case "${1:-check}" in
  check)
    missing=$(missing_packages)
    if [ -n "$missing" ]; then
      echo "missing packages: $missing (install: sudo $0 install)" >&2
      exit 1
    fi
    ;;
  install)
    missing=$(missing_packages)
    [ -z "$missing" ] && exit 0
    if [ "$(id -u)" -ne 0 ]; then
      echo "missing packages: $missing; run: sudo $0 install" >&2
      exit 1
    fi
    if ! command -v apt-get >/dev/null 2>&1; then
      echo "missing packages: $missing; install them with your package manager" >&2
      exit 1
    fi
    echo "installing: $missing (their system services are not started)" >&2
    # lldpd's package would start the daemon in the root namespace, where it would speak LLDP on
    # the machine's real interfaces: a policy-rc.d that says "no" keeps every service from
    # starting on install (one that exists already is left alone).
    policy=/usr/sbin/policy-rc.d
    if [ ! -e "$policy" ]; then
      trap 'rm -f "$policy"' EXIT
      printf '#!/bin/sh\nexit 101\n' >"$policy"
      chmod 755 "$policy"
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # shellcheck disable=SC2086 # word splitting of the package list is intended
    apt-get install -y -qq --no-install-recommends $missing >/dev/null
    ;;
  *)
    echo "usage: $0 check|install" >&2
    exit 2
    ;;
esac
