#!/usr/bin/env bash
# Fuzzes the template engine (lexer, parser, evaluator, JSON and JSONPath) for a bounded
# time: `scripts/fuzz.sh [seconds]` (default 60, or $FUZZ_SECONDS). Seeds come from the
# snapshot cases in tests/vtl/. A panic, a render that outlives libFuzzer's timeout, or
# memory beyond its limit fails the run; the input is left in fuzz/artifacts/vtl/.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-${FUZZ_SECONDS:-60}}

corpus=.work/fuzz-corpus/vtl
mkdir -p "$corpus"
for case in tests/vtl/*.case; do
  awk '/^--- template/{on=1; next} /^--- /{on=0} on' "$case" >"$corpus/seed-$(basename "$case" .case)"
done

# cargo fuzz instruments with unstable compiler flags: the nightly toolchain when the machine
# has one, else the stable compiler in bootstrap mode without a sanitizer.
if rustup run nightly rustc --version >/dev/null 2>&1; then
  run=(cargo +nightly fuzz run)
else
  export RUSTC_BOOTSTRAP=1
  run=(cargo fuzz run --sanitizer none)
fi
log=../.work/fuzz-vtl.log
cd fuzz
status=0
"${run[@]}" vtl "../$corpus" -- \
  -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=8192 -print_final_stats=1 \
  >"$log" 2>&1 || status=$?
grep -E '^(Done|stat::number_of_executed_units)' "$log" >&2 || true
if [ "$status" -ne 0 ]; then
  tail -n 60 "$log" >&2
  echo "fuzzing found a failure; the input is in fuzz/artifacts/vtl/" >&2
fi
exit "$status"
