#!/usr/bin/env bash
# Runs every check and test of apigw-edge, installing what it needs first (idempotent).
#   formatting, clippy (native and wasm32), the release filter and the native module builds,
#   unit tests natively and on wasm32 (Node WASI), end-to-end tests through real Envoy
#   (scripted Invoke API, the example functions under cargo lambda watch, headless Chromium
#   for CORS, hostile input, a VM crash and reload, a 14,000-method export, a soak of
#   $APIGW_EDGE_SOAK_SECONDS, default 90) with the wasm build and again with the native
#   module, the demo in --check mode, and a bounded fuzz run of every parser of outside input
#   ($FUZZ_SECONDS, default 90).
set -euo pipefail
cd "$(dirname "$0")/.."
started=$(date +%s)
step() { printf '\n==> %s (at %ds)\n' "$*" "$(( $(date +%s) - started ))" >&2; }
mkdir -p .work
# A one-off run (CI) gains nothing from incremental compilation or debug info but their disk
# use, and it drops each build's outputs once no later step needs them (`drop_after_use`):
# CI machines may have little disk, and every target directory here is several hundred MB.
if [ -n "${CI:-}" ]; then
  export CARGO_INCREMENTAL=0 CARGO_PROFILE_DEV_DEBUG=0
fi
drop_after_use() { if [ -n "${CI:-}" ]; then rm -rf "$@"; fi; }
results=.work/test-results.log
: >"$results"
# Runs a test command, keeping its `test result:` lines for the closing count.
run_tests() {
  "$@" 2>&1 | tee -a "$results"
}

step "setup"
./scripts/setup.sh --browser --fuzz --sdk --fleet

step "cargo fmt --check"
cargo fmt --check
for crate in bench/core bench/noop-filter bench/noop-native tests/ratelimit-fixture; do
  cargo fmt --check --manifest-path "$crate/Cargo.toml"
done

step "clippy (native, default features)"
cargo clippy --all-targets -- -D warnings
step "clippy (native, core only: no proxy-wasm outside src/filter)"
cargo clippy --lib --no-default-features -- -D warnings
step "clippy (native module: Envoy dynamic-module glue)"
cargo clippy --lib --no-default-features --features native -- -D warnings
step "clippy (wasm32-wasip1)"
cargo clippy --all-targets --target wasm32-wasip1 -- -D warnings
cargo clippy --lib --target wasm32-wasip1 --features crash-trigger -- -D warnings

step "clippy (benchmark crates: core micro-benchmarks, minimal wasm and native filters)"
cargo clippy --manifest-path bench/core/Cargo.toml --target-dir target/bench-core -- -D warnings
cargo clippy --manifest-path bench/noop-filter/Cargo.toml --target wasm32-wasip1 \
  --target-dir target/bench-noop -- -D warnings
cargo clippy --manifest-path bench/noop-native/Cargo.toml --target-dir target/bench-noop-native \
  -- -D warnings

step "core micro-benchmarks still run (a few milliseconds per step)"
CORE_BENCH_MS=5 cargo run --quiet --manifest-path bench/core/Cargo.toml --target-dir target/bench-core
drop_after_use target/bench-core target/bench-noop target/bench-noop-native

step "clippy (rate-limit service fixture)"
cargo clippy --manifest-path tests/ratelimit-fixture/Cargo.toml \
  --target-dir target/ratelimit-fixture -- -D warnings

step "release filter (wasm32-wasip1)"
cargo build --release --target wasm32-wasip1 --lib
wasm=target/wasm32-wasip1/release/apigw_edge.wasm
echo "filter module: $wasm, $(stat -c %s "$wasm") bytes" >&2
step "native filter (Envoy dynamic module)"
cargo build --lib --no-default-features --features native --profile native
native=target/native/libapigw_edge.so
echo "native module: $native, $(stat -c %s "$native") bytes" >&2
step "crash-trigger filter (test-only build: a request header aborts the VM)"
cargo build --profile crash-test --target wasm32-wasip1 --lib --features crash-trigger

step "rate-limit service fixture (Limitador on Redis, for the fleet tests)"
cargo build --release --manifest-path tests/ratelimit-fixture/Cargo.toml \
  --target-dir target/ratelimit-fixture
# The fleet tests need only its binary.
drop_after_use target/ratelimit-fixture/debug target/ratelimit-fixture/release/{build,deps,.fingerprint}

step "example functions"
cargo build --manifest-path examples/functions/Cargo.toml

step "tests (host target: unit, and end-to-end through Envoy with the wasm build)"
run_tests cargo test

step "end-to-end tests against the native build (Envoy dynamic module)"
# Every suite again, the filter being libapigw_edge.so; the soak is shorter the second time.
run_tests env APIGW_EDGE_MODULE=native \
  APIGW_EDGE_SOAK_SECONDS="${APIGW_EDGE_NATIVE_SOAK_SECONDS:-20}" cargo test --test '*_e2e'

step "core unit tests on wasm32-wasip1 (Node WASI)"
run_tests cargo test --target wasm32-wasip1 --no-default-features --lib

step "demo (--check)"
# The tests built the CLI already; the demo need not build a release one.
APIGW_EDGE_CLI=target/debug/apigw-edge ./scripts/demo.sh --check

# The fuzz build has its own target directory; nothing after this reads the others but the
# soak summaries in target/e2e.
drop_after_use target/{debug,release,native,crash-test,wasm32-wasip1,ratelimit-fixture} \
  examples/functions/target
step "fuzz templates, requests and configuration (${FUZZ_SECONDS:-90} s in all)"
FUZZ_SECONDS=${FUZZ_SECONDS:-90} ./scripts/fuzz.sh

[ -f target/e2e/soak-summary.txt ] && cat target/e2e/soak-summary.txt >&2
[ -f target/e2e/soak-summary-native.txt ] && sed 's/^/native: /' target/e2e/soak-summary-native.txt >&2
echo "all checks passed in $(( $(date +%s) - started ))s" >&2
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } }
     END { printf "tests: %d passed, %d failed\n", p, f }' "$results"
