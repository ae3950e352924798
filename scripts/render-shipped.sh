#!/usr/bin/env bash
# Regenerates the Envoy configurations kept in the repository from their deployment files.
# The test suite fails when they are stale.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --quiet --bin apigw-edge
cli=target/debug/apigw-edge
{
  echo "# Rendered by ./scripts/render-shipped.sh from examples/hello/deployment.yaml; do not edit."
  echo "# Run from the repository root: .venv/bin/envoy -c envoy/hello.yaml"
  "$cli" render examples/hello/deployment.yaml --wasm target/wasm32-wasip1/release/apigw_edge.wasm
} > envoy/hello.yaml
{
  echo "# Rendered by ./scripts/render-shipped.sh from examples/docker/deployment.yaml; do not edit."
  echo "# Mounted into the Envoy container by docker-compose.yml."
  "$cli" render examples/docker/deployment.yaml --wasm /etc/apigw-edge/apigw_edge.wasm
} > examples/docker/envoy.yaml
echo "rendered envoy/hello.yaml and examples/docker/envoy.yaml"
