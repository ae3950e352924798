#!/usr/bin/env bash
# Brings up the example API on 127.0.0.1:8080: the example Rust Lambda functions under
# `cargo lambda watch` (Invoke API on 127.0.0.1:9000) and Envoy with the apigw-edge filter in
# front of them (admin on 127.0.0.1:9901). Installs what it needs first (idempotent).
#   ./scripts/demo.sh           serve until Ctrl-C
#   ./scripts/demo.sh --check   send the example requests once, verify them, stop
set -euo pipefail
cd "$(dirname "$0")/.."
check=false
[ "${1:-}" = "--check" ] && check=true

./scripts/setup.sh
cargo build --release --target wasm32-wasip1 --lib
# $APIGW_EDGE_CLI: a CLI binary built already (the test command passes its debug build).
cli=${APIGW_EDGE_CLI:-target/release/apigw-edge}
[ -n "${APIGW_EDGE_CLI:-}" ] || cargo build --release --bin apigw-edge
cargo build --manifest-path examples/functions/Cargo.toml
mkdir -p .work

for port in 8080 9000 9901 9902; do
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    echo "port 127.0.0.1:$port is already in use; stop what is listening there first" >&2
    exit 1
  fi
done

pids=()
cleanup() {
  for pid in "${pids[@]}"; do
    kill -s TERM -- "-$pid" 2>/dev/null || true
  done
}
trap cleanup EXIT INT TERM

# Each service runs in a session of its own so that stopping it stops everything it started.
(cd examples/functions && PATH="$PWD/../../.venv/bin:$PATH" exec setsid cargo lambda watch \
  --invoke-address 127.0.0.1 --invoke-port 9000) >.work/lambda.log 2>&1 </dev/null &
pids+=($!)
printf 'waiting for cargo lambda watch' >&2
for _ in $(seq 1 600); do
  if curl -sf -o /dev/null -X POST http://127.0.0.1:9000/2015-03-31/functions/echo/invocations -d '{}'; then
    break
  fi
  printf '.' >&2
  sleep 1
done
echo >&2

"$cli" validate examples/hello/deployment.yaml
setsid "$cli" run examples/hello/deployment.yaml >.work/envoy.log 2>&1 </dev/null &
pids+=($!)
for _ in $(seq 1 100); do
  curl -sf -o /dev/null http://127.0.0.1:9901/ready && break
  sleep 0.2
done

failures=0
try() {
  local want=$1 cmd=$2
  echo "\$ $cmd"
  local out status
  out=$(eval "$cmd -s -w '\n%{http_code}'")
  status=${out##*$'\n'}
  echo "${out%$'\n'*}"
  echo "  -> HTTP $status"
  if [ "$status" != "$want" ]; then
    echo "  expected HTTP $want" >&2
    failures=$((failures + 1))
  fi
  echo
}
echo
echo "apigw-edge is serving examples/hello on http://127.0.0.1:8080 (stages dev and prod). Try:"
echo
try 200 "curl 'http://127.0.0.1:8080/dev/hello?name=Ada'"
try 200 "curl http://127.0.0.1:8080/dev/hello/Grace"
try 200 "curl -X POST 'http://127.0.0.1:8080/dev/echo/anything?x=1&x=2' -H 'Content-Type: application/json' -d '{\"hello\":\"world\"}'"
try 502 "curl -i http://127.0.0.1:8080/dev/hello/fail"
# A non-proxy integration: request and response templates around a plain Lambda function.
try 200 "curl -X POST http://127.0.0.1:8080/dev/orders/o-7 -H 'Content-Type: application/json' -d '{\"quantity\":4}'"
try 404 "curl -i -X POST http://127.0.0.1:8080/dev/orders/missing-1 -H 'Content-Type: application/json' -d '{\"quantity\":1}'"
# Request validation: the body must match the Order model (quantity 1-1000) or nothing runs.
try 400 "curl -i -X POST http://127.0.0.1:8080/dev/orders/o-8 -H 'Content-Type: application/json' -d '{\"quantity\":\"four\"}'"
try 403 "curl -i http://127.0.0.1:8080/dev/no/such/route"
# Lambda authorizers (examples/functions/src/bin/*_authorizer.rs): a TOKEN authorizer on
# /profile, a REQUEST authorizer on /reports. The echo function shows requestContext.authorizer.
try 200 "curl http://127.0.0.1:8080/dev/profile -H 'Authorization: Bearer allow-ada'"
try 403 "curl -i http://127.0.0.1:8080/dev/profile -H 'Authorization: Bearer deny'"
try 401 "curl -i http://127.0.0.1:8080/dev/profile -H 'Authorization: Bearer nobody'"
try 401 "curl -i http://127.0.0.1:8080/dev/profile"
try 200 "curl http://127.0.0.1:8080/dev/reports -H 'X-Tenant: acme'"
try 403 "curl -i http://127.0.0.1:8080/dev/reports -H 'X-Tenant: other'"

# The prod stage: its own greeting, and a canary release serving a tenth of its requests
# with the next one (each name is a new cache key; the canary is not cached).
echo "\$ for n in 1 2 ... 20; do curl http://127.0.0.1:8080/prod/hello/Ada\$n; done"
welcome=0 canary=0 other=0
for n in $(seq 1 20); do
  body=$(curl -s "http://127.0.0.1:8080/prod/hello/Ada$n")
  case "$body" in
    *'"Welcome, Ada'*) welcome=$((welcome + 1)) ;;
    *'"Hi, Ada'*) canary=$((canary + 1)) ;;
    *) other=$((other + 1)); echo "  unexpected: $body" >&2 ;;
  esac
done
echo "  -> $welcome x \"Welcome, ...\" (stage prod), $canary x \"Hi, ...\" (its canary)"
if [ "$other" -ne 0 ] || [ "$welcome" -eq 0 ]; then
  echo "  expected prod's greeting, and the canary's on about a tenth" >&2
  failures=$((failures + 1))
fi
echo

# The stage cache: the first request above stored Ada's greeting; this one is a hit.
cache_state() {
  curl -s -o /dev/null -D - "http://127.0.0.1:8080/dev/hello?name=Ada" |
    tr -d '\r' | awk -F': ' 'tolower($1) == "x-apigw-edge-cache" { print $2 }'
}
expect_cache() {
  local want=$1 got
  got=$(cache_state)
  echo "  -> X-Apigw-Edge-Cache: $got"
  if [ "$got" != "$want" ]; then
    echo "  expected $want" >&2
    failures=$((failures + 1))
  fi
  echo
}
echo "\$ curl -i 'http://127.0.0.1:8080/dev/hello?name=Ada'    # again: served from the stage cache"
expect_cache HIT
echo "\$ apigw-edge cache flush examples/hello/deployment.yaml"
"$cli" cache flush examples/hello/deployment.yaml || failures=$((failures + 1))
echo "\$ curl -i 'http://127.0.0.1:8080/dev/hello?name=Ada'    # after the flush: fetched again"
expect_cache MISS
echo "\$ apigw-edge test examples/hello/deployment.yaml GET /hello/Grace    # Method Test: the pipeline without Envoy"
if out=$("$cli" test examples/hello/deployment.yaml GET /hello/Grace --header 'Accept=*/*'); then
  echo "$out" | grep -E '^(Request|Status|Latency):|Endpoint request URI|Method completed'
else
  echo "$out" | tail -5
  echo "  expected the Method Test to succeed" >&2
  failures=$((failures + 1))
fi
echo
echo "\$ apigw-edge test examples/hello/deployment.yaml GET /hello/Grace --stage prod"
if out=$("$cli" test examples/hello/deployment.yaml GET /hello/Grace --stage prod); then
  echo "$out" | grep -E '^(Status:|\{)'
else
  echo "$out" | tail -5
  echo "  expected the Method Test of stage prod to succeed" >&2
  failures=$((failures + 1))
fi
echo
echo "Metrics: curl -s http://127.0.0.1:9901/stats | grep apigw_edge"
echo "Logs: .work/envoy.log (Envoy and the filter), .work/lambda.log (functions)"
echo "Edit examples/hello/openapi.json or deployment.yaml: changes are applied while it runs."

if $check; then
  if [ "$failures" -ne 0 ]; then
    echo "demo check: $failures request(s) did not answer as expected" >&2
    tail -20 .work/envoy.log >&2
    exit 1
  fi
  echo "demo check: all example requests answered as expected" >&2
  exit 0
fi
echo
echo "Press Ctrl-C to stop."
wait
