#!/usr/bin/env bash
# The whole test suite: unit tests, loop tests and, as root, the end-to-end tests with real TAPs
# in network namespaces. Extra arguments go to `cargo test` (e.g. a test name filter).
#
#   sudo scripts/test.sh
#
# As root, end-to-end tests must run (VSWITCH_E2E=require turns a skip into a failure); as
# another user they are skipped with a message, and everything else runs.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" -eq 0 ]; then
  scripts/deps.sh install
  export VSWITCH_E2E=require
else
  echo "test: not root: end-to-end tests will be skipped (run: sudo $0)" >&2
  scripts/deps.sh check || true
fi
exec cargo test --locked "$@"
