#!/usr/bin/env bash
# Fuzzes every parser that takes outside input, for a bounded time in total:
# `scripts/fuzz.sh [seconds]` (default 60, or $FUZZ_SECONDS), shared between the targets:
#   vtl      templates and the bodies they read (lexer, parser, evaluator, JSON, JSONPath)
#   request  whole requests through a compiled gateway: request target, query string, header
#            bytes, body, and the Lambda answer (proxy and mapped)
#   config   deployment files (YAML/JSON), OpenAPI exports, rendering, header map decoding
#   token    JWKS documents and JWTs: key reading, token reading, signature and claim checks
#   policy   resource policies: compiling documents, evaluating them for a caller
#   sigv4    SigV4 signatures presented by callers: Authorization headers, presigned queries
#   client_cert  mutual TLS certificates as Envoy forwards them (x-forwarded-client-cert)
#   validation   request bodies against a recursive draft-4 model (request validators)
# A panic, a run that outlives libFuzzer's timeout, or memory beyond its limit fails the run;
# the input is left in fuzz/artifacts/<target>/.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-${FUZZ_SECONDS:-60}}
targets=(vtl request config token policy sigv4 client_cert validation)
share=$(( seconds / ${#targets[@]} ))
[ "$share" -ge 1 ] || share=1

seed() { # target name, then the seed's bytes on stdin
  mkdir -p ".work/fuzz-corpus/$1"
  cat >".work/fuzz-corpus/$1/seed-$2"
}
for case in tests/vtl/*.case; do
  awk '/^--- template/{on=1; next} /^--- /{on=0} on' "$case" | seed vtl "$(basename "$case" .case)"
done
printf '\x01orders/7?q=a&q=b\xff%s\xff{"a":[1,{"b":"x"}]}\xff\x00{"statusCode":200,"body":"ok"}' \
  'content-type:application/json' | seed request mapped
printf '\x00hello/x?a=%%41&b\xffaccept:image/png\nx-bin:\xc0\xaf\xff\xff\x00{"statusCode":200,"isBase64Encoded":true,"body":"aGk="}' \
  | seed request proxy
printf '\x03cached?q=1\xffcache-control:max-age=0\xff\xff\x05{"errorMessage":"bad"}' | seed request cached
printf '\x02backend/a/b%%20c?q=1&r=2\xffcontent-type:text/plain\nconnection:close\xff\x89raw\xff\x00ok' | seed request http-proxy
printf '\x01convert\xffcontent-type:application/json\naccept:image/png\xffaGVsbG8=\xff\x06{"m":"x"}' | seed request http-binary
printf '\x01queue\xffcontent-type:application/json\xff{"order":1}\xff\x00<SendMessageResponse/>' | seed request aws-service
{ cat examples/hello/deployment.yaml; printf '\0'; cat examples/hello/openapi.json; } | seed config hello
# A JWKS with a P-256 key (the curve's base point) and an ES256-shaped token for it.
b64url() { base64 -w0 | tr '+/' '-_' | tr -d '='; }
jwt_head=$(printf '{"alg":"ES256","kid":"k1"}' | b64url)
jwt_claims=$(printf '{"iss":"https://cognito-idp.us-east-1.amazonaws.com/us-east-1_Fuzz","token_use":"id","scope":"openid","aud":"client","exp":1700000600,"nbf":1699999000,"cognito:groups":["a","b"]}' | b64url)
jwt_sig=$(head -c 64 /dev/zero | b64url)
{ printf '{"keys":[{"kty":"EC","crv":"P-256","kid":"k1","use":"sig",'
  printf '"x":"axfR8uEsQkf4vOblY6RA8ncDfYEt6zOg9KE5RdiYwpY","y":"T-NC4v4af5uO5-tKfA-eFivOM1drMV7Oy7ZAaDe_UfU"}]}'
  printf '\0Bearer %s.%s.%s' "$jwt_head" "$jwt_claims" "$jwt_sig"; } | seed token es256
printf '%s\0%s' \
  '{"Statement":[{"Effect":"Allow","Principal":"*","Action":"execute-api:Invoke","Resource":"execute-api:/*"},{"Effect":"Deny","Principal":{"AWS":["123456789012"]},"NotAction":"execute-api:Inv*","NotResource":"execute-api:/*/POST/*","Condition":{"NotIpAddressIfExists":{"aws:SourceIp":["192.0.2.0/24","2001:db8::/32"]},"StringLike":{"aws:UserAgent":"curl/*"},"DateLessThan":{"aws:CurrentTime":"2030-01-01T00:00:00Z"}}}]}' \
  $'192.0.2.9\ncurl/8\nhttps://app.example.com/\ndev/GET/pets' | seed policy mixed
printf '/dev/pets?b=2&a=1\0%s\0{}' $'x-amz-date: 20231114T221320Z\nx-amz-content-sha256: UNSIGNED-PAYLOAD\nauthorization: AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20231114/us-east-1/execute-api/aws4_request, SignedHeaders=host;x-amz-date, Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31' \
  | seed sigv4 header
printf '/dev/pets?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%%2F20231114%%2Fus-east-1%%2Fexecute-api%%2Faws4_request&X-Amz-Date=20231114T221320Z&X-Amz-Expires=300&X-Amz-SignedHeaders=host&X-Amz-Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31\0\0' \
  | seed sigv4 presigned
# A certificate as Envoy URL-encodes it into x-forwarded-client-cert.
printf 'Hash=00ff;Cert="%s"' "$(sed -n '/^const PEM/{s/^const PEM: &str = "//;s/";$//;p}' src/client_cert/tests.rs \
  | sed 's/\\n/%0A/g; s/+/%2B/g; s/\//%2F/g; s/=/%3D/g; s/ /%20/g')" | seed client_cert xfcc
printf '{"id":"a-1","at":"2020-02-29T10:00:00Z","n":3,"tags":["x","y"],"kids":[{"id":"b"}],"any":{"id":"c"},"one":"s","extra":"e"}' \
  | seed validation node

# cargo fuzz instruments with unstable compiler flags: the nightly toolchain when the machine
# has one, else the stable compiler in bootstrap mode. No sanitizer: the crate denies unsafe
# code outside the host glue, which no target reaches, so AddressSanitizer would find nothing
# a panic does not; without it the build is smaller (1.0 against 1.3 GB) and quicker.
toolchain=()
if rustup run nightly rustc --version >/dev/null 2>&1; then
  toolchain=(+nightly)
else
  export RUSTC_BOOTSTRAP=1
fi
run=(cargo "${toolchain[@]}" fuzz run --sanitizer none)
build=(cargo "${toolchain[@]}" fuzz build --sanitizer none)
cd fuzz
# Every target in one build (they share the instrumented dependencies and link in parallel);
# each run below then starts at once.
"${build[@]}" >../.work/fuzz-build.log 2>&1 || { tail -n 40 ../.work/fuzz-build.log >&2; exit 1; }
status=0
for target in "${targets[@]}"; do
  log="../.work/fuzz-$target.log"
  echo "fuzzing $target for ${share}s" >&2
  t_status=0
  "${run[@]}" "$target" "../.work/fuzz-corpus/$target" -- \
    -max_total_time="$share" -timeout=10 -rss_limit_mb=2048 -max_len=65536 -print_final_stats=1 \
    >"$log" 2>&1 || t_status=$?
  grep -E '^(Done|stat::number_of_executed_units)' "$log" >&2 || true
  if [ "$t_status" -ne 0 ]; then
    tail -n 60 "$log" >&2
    echo "fuzzing $target found a failure; the input is in fuzz/artifacts/$target/" >&2
    status=$t_status
  fi
done
exit "$status"
