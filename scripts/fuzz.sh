#!/usr/bin/env bash
# Fuzzing: runs every cargo-fuzz target in fuzz/ (or those named) for MINUTES in all, split
# evenly, one target at a time, and prints each target's executions, executions per second and
# corpus size, and the total. Exits 1 if a target broke an invariant or crashed: its input is
# saved in fuzz/artifacts/TARGET/ (minimise it with `cargo +nightly fuzz tmin -s none TARGET
# FILE`). Needs the nightly toolchain; installs cargo-fuzz if it is missing.
#
#   scripts/fuzz.sh [MINUTES] [TARGET...]      # MINUTES defaults to 8
#
# Each target starts from its committed seeds (fuzz/corpus/TARGET/, read only) and from what
# earlier runs found (fuzz/work/TARGET/, not committed), with the keywords of its grammar in
# fuzz/dicts/TARGET.dict if there is one; libFuzzer's output is in fuzz/work/logs/TARGET.log. Targets are built without AddressSanitizer: the code they reach is
# safe Rust, and ASan would halve the executions. Overflow checks and debug assertions are on.
# CI does not fuzz: tests/fuzz_replay.rs replays fuzz/corpus/ through the same checks on stable.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"

minutes=${1:-8}
shift || true
if ! [[ $minutes =~ ^[0-9]+$ ]] || [ "$minutes" -eq 0 ]; then
  echo "usage: $0 [MINUTES] [TARGET...]" >&2
  exit 2
fi

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "fuzz: installing cargo-fuzz" >&2
  cargo install --locked cargo-fuzz
fi

# config_file writes its input to a file every run: in memory that is ten times faster.
if [ -z "${TMPDIR:-}" ] && [ -d /dev/shm ] && [ -w /dev/shm ]; then
  export TMPDIR=/dev/shm
fi

fuzz=(cargo +nightly fuzz)
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  mapfile -t targets < <("${fuzz[@]}" list)
fi
"${fuzz[@]}" build -s none

each=$((minutes * 60 / ${#targets[@]}))
each=$((each > 0 ? each : 1))
mkdir -p work/logs
echo "fuzz: ${#targets[@]} targets, ${each} s each, $(date -u '+%Y-%m-%d %H:%M UTC')"
printf '%-18s %14s %10s %8s  %s\n' target executions exec/s corpus result
total=0
failed=()
for t in "${targets[@]}"; do
  mkdir -p "work/$t"
  log="work/logs/$t.log"
  args=(-max_total_time="$each" -print_final_stats=1 -timeout=10)
  if [ -f "dicts/$t.dict" ]; then
    args+=(-dict="dicts/$t.dict")
  fi
  if "${fuzz[@]}" run -s none "$t" "work/$t" "corpus/$t" -- "${args[@]}" >"$log" 2>&1; then
    result=ok
  else
    result="FAILED: $(grep -o 'artifacts/[^ ]*' "$log" | head -n 1)"
    failed+=("$t")
  fi
  stat() { awk -v key="stat::$1:" '$1 == key { n = $2 } END { print n + 0 }' "$log"; }
  execs=$(stat number_of_executed_units)
  corpus=$(find "work/$t" "corpus/$t" -type f | wc -l)
  printf '%-18s %14d %10d %8d  %s\n' "$t" "$execs" "$(stat average_exec_per_sec)" "$corpus" \
    "$result"
  total=$((total + execs))
done
printf '%-18s %14d\n' total "$total"
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz: invariants broken in: ${failed[*]} (see fuzz/work/logs/)" >&2
  exit 1
fi
