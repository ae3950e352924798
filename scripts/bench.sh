#!/usr/bin/env bash
# The benchmark: every configuration side by side in one run (see scripts/bench.py for the
# rows). Installs what it needs (wrk and valgrind from Debian, oha with cargo), builds the
# filter, the CLI and the minimal filters (wasm and native), then runs. Options go to
# bench.py: --rounds N --seconds S --rows B0,B1,... --out FILE. Takes about 25 minutes with
# the defaults. --profile ROW only samples that row's Envoy with perf (installed from
# Debian's linux-perf when missing).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh --fleet
if ! command -v wrk >/dev/null 2>&1; then
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo=sudo
  $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq wrk
fi
if [[ " $* " == *" --profile "* ]] && ! command -v perf >/dev/null 2>&1; then
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo=sudo
  $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq linux-perf
fi
if ! command -v valgrind >/dev/null 2>&1; then
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo=sudo
  $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq valgrind
fi
if ! command -v oha >/dev/null 2>&1 && [ ! -x "$HOME/.cargo/bin/oha" ]; then
  echo "[bench] installing oha (a few minutes)" >&2
  cargo install --quiet --locked oha
fi
cargo build --quiet --release --target wasm32-wasip1 --lib
cargo build --quiet --release --bin apigw-edge
cargo build --quiet --lib --no-default-features --features native --profile native
cargo build --quiet --release --target wasm32-wasip1 \
  --manifest-path bench/noop-filter/Cargo.toml --target-dir target/bench-noop
cargo build --quiet --release --manifest-path bench/noop-native/Cargo.toml \
  --target-dir target/bench-noop-native
cargo build --quiet --release --manifest-path tests/ratelimit-fixture/Cargo.toml \
  --target-dir target/ratelimit-fixture
exec python3 scripts/bench.py "$@"
