//! Micro-benchmarks of the host-independent core, the same code natively and on wasm32
//! (`cargo run --release --manifest-path bench/core/Cargo.toml`, and with `--target
//! wasm32-wasip1` under Node's WASI), so `scripts/bench.sh` can print a wasm/native ratio
//! per step.
//! Each step runs the benchmark API (`bench/`) as the filter would: route and admit, build
//! the proxy event, render the request template, map a Lambda answer, sign a call, verify a
//! Cognito ID token (RS256, and ES256) as on a worker's first request with that token, verify
//! an IAM caller's SigV4 signature, evaluate a resource policy with an IP condition, read a
//! mutual TLS caller's certificate, validate a 1 KB body against a request model, identify an
//! API key among 10,000, build an access log line; and three whole requests through the stream
//! driver against a host that answers at once (what the filter computes per request, without
//! the host's own work): a proxied `GET` (dispatch, answer, reply), a `POST` with a 334-byte JSON
//! body forwarded through the host's router (body, Invoke, answer rewritten) and a
//! stage-cache hit.
//! Prints one `core <step> <ns per op>` line per step. With `CORE_BENCH_STEP=<step>` and
//! `CORE_BENCH_RUNS=<n>` it runs only that step `n` times, untimed, for an instruction
//! counter (`scripts/bench.py` counts with valgrind).
//! With the `jemalloc` feature (`scripts/bench.py` builds with it) it allocates natively with
//! jemalloc: a size-class allocator with thread caches like the tcmalloc Envoy lends the
//! native build, whose cost per allocation does not depend on what the set-up left in the
//! heap (with glibc's `malloc` the same step's count moved by a fifth when only the set-up
//! changed). On wasm32 it uses the target's own allocator, as the filter does.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

#[cfg(all(feature = "jemalloc", not(target_arch = "wasm32")))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

use std::cell::RefCell;
use std::collections::HashMap;
use std::hint::black_box;
use std::time::{Duration, Instant};

use apigw_edge::client_cert::ClientCert;
use apigw_edge::config::{parse_deployment, FilterConfig};
use apigw_edge::gateway::{Gateway, RequestHead, Start};
use apigw_edge::http::UpstreamAnswer;
use apigw_edge::iam::Callers;
use apigw_edge::jwt::keys::KeySet;
use apigw_edge::jwt::verify::{admit, verify};
use apigw_edge::jwt::{Authorizer, Flavor};
use apigw_edge::resource_policy::{Facts, Policy};
use apigw_edge::shared::{CellError, SharedCells};
use apigw_edge::sigv4::{Credentials, Signer, LAMBDA_SERVICE};
use apigw_edge::stage_set::StageSet;
use apigw_edge::stats::{Catalogue, Op, Sink};
use apigw_edge::stream::{Stores, Stream, StreamHost};

const API: &str = include_str!("../../api.json");
const DEPLOYMENT: &str = include_str!("../../deployment.yaml");
const ORDER: &str = include_str!("../../order.json");
const COGNITO: &str = include_str!("../../cognito.json");
const KEY: &str = "bench-key-0123456789abcdefghij";
const STAND_IN: &str = r#"{"statusCode":200,"headers":{"content-type":"application/json"},"body":"{\"message\":\"hello from the stand-in\"}"}"#;

/// Shared data as one worker sees it.
#[derive(Default)]
struct Cells(RefCell<HashMap<String, (Vec<u8>, u32)>>);

impl SharedCells for Cells {
    fn get(&self, key: &str) -> Result<(Option<Vec<u8>>, u32), CellError> {
        Ok(match self.0.borrow().get(key) {
            Some((v, cas)) => (Some(v.clone()), *cas),
            None => (None, 0),
        })
    }
    fn set(&self, key: &str, value: &[u8], _cas: u32) -> Result<(), CellError> {
        let mut map = self.0.borrow_mut();
        let cas = map.get(key).map_or(1, |(_, c)| c.wrapping_add(1));
        map.insert(key.to_string(), (value.to_vec(), cas));
        Ok(())
    }
}

/// A host that answers every stream call at once from fixed values and keeps nothing
/// but the last reply's status: the stream steps measure the filter's own work.
struct QuickHost {
    request: Vec<(String, String)>,
    /// The request's body, held whole when the host is asked for it.
    body: &'static [u8],
    answer: Vec<(String, String)>,
    cells: std::rc::Rc<Cells>,
    catalogue: std::rc::Rc<Catalogue>,
    replied: std::cell::Cell<u16>,
    /// The clock, a millisecond further for each request (the key's throttle refills).
    now_ms: u64,
}

impl Sink for QuickHost {
    fn apply(&self, op: Op) {
        black_box(op);
    }
}

impl StreamHost for QuickHost {
    fn request_headers(&self) -> Vec<(String, String)> {
        self.request.clone()
    }
    fn connection(&self) -> apigw_edge::connection::Connection {
        apigw_edge::connection::Connection {
            protocol: "HTTP/1.1".into(),
            source_ip: "127.0.0.1".into(),
            local_port: Some(8080),
        }
    }
    fn now_ms(&self) -> u64 {
        self.now_ms
    }
    fn request_body(&self, _size: usize) -> Vec<u8> {
        self.body.to_vec()
    }
    fn response_headers(&self) -> Vec<(String, String)> {
        self.answer.clone()
    }
    fn response_made_by_host(&self) -> Option<String> {
        None
    }
    fn response_body(&self, _size: usize) -> Vec<u8> {
        STAND_IN.as_bytes().to_vec()
    }
    fn send_reply(&self, reply: &apigw_edge::http::Reply) {
        self.replied.set(reply.status);
        black_box(reply);
    }
    fn set_request_headers(&self, headers: &[(&str, &str)]) -> bool {
        black_box(headers);
        true
    }
    fn set_request_body(&self, _held: usize, body: &[u8]) -> bool {
        black_box(body);
        true
    }
    fn set_response_headers(&self, headers: &[(&str, &str)]) -> bool {
        black_box(headers);
        true
    }
    fn set_response_header(&self, _name: &str, _value: &str) -> bool {
        true
    }
    fn set_response_body(&self, _held: usize, body: &[u8]) -> bool {
        black_box(body);
        true
    }
    fn resume_request(&self) -> bool {
        true
    }
    fn dispatch(
        &self,
        _kind: apigw_edge::gateway::CallKind,
        call: &apigw_edge::http::UpstreamCall,
    ) -> Result<u64, String> {
        black_box(call);
        Ok(1)
    }
    fn set_state(&self, _name: &str, _value: &str) -> bool {
        true
    }
    fn cells(&self) -> &dyn SharedCells {
        self.cells.as_ref()
    }
    fn stats(&self) -> (&Catalogue, &dyn Sink) {
        (self.catalogue.as_ref(), self)
    }
}

fn config() -> FilterConfig {
    let mut d: serde_json::Value = serde_yaml::from_str(DEPLOYMENT).unwrap();
    d["lambda"]["endpoint"] = "http://127.0.0.1:9000".into();
    FilterConfig {
        deployment: parse_deployment(d).unwrap(),
        openapi: serde_json::from_str(API).unwrap(),
        exports: Default::default(),
    }
}

fn gateway() -> Gateway {
    Gateway::compile(&config()).unwrap().gateway
}

/// Runs one whole `GET` of `path` through a new stream, as the filter does for each
/// request: the request's headers, then the answer to the call they lead to (none for a
/// reply from the stage cache). Returns the reply's status.
fn whole_get(
    set: &std::rc::Rc<StageSet>,
    stores: &std::rc::Rc<Vec<Stores>>,
    ids: &std::rc::Rc<apigw_edge::ids::Ids>,
    host: QuickHost,
    path: &str,
) -> u16 {
    let mut host = host;
    host.request = owned(&[
        (":method", "GET"),
        (":path", path),
        (":authority", "api.example.com"),
        (":scheme", "http"),
        ("user-agent", "wrk"),
        ("accept", "*/*"),
        ("x-api-key", KEY),
    ]);
    let mut s = Stream::new(host, set.clone(), stores.clone(), ids.clone()).unwrap();
    s.on_request_headers(true);
    if s.host().replied.get() == 0 {
        let answer = UpstreamAnswer {
            host_reply: None,
            status: Some(200),
            headers: vec![("x-amzn-requestid".into(), "stand-in".into())],
            body: STAND_IN.as_bytes().to_vec(),
        };
        s.on_call_answer(1, &answer);
    }
    s.host().replied.get()
}

/// Runs one whole `POST` of [`ORDER`] to `path` through a new stream, forwarded through
/// the host's router as the filter does for a request with a body: the request's headers,
/// its body (replaced by the Invoke's), then the answer's headers and body. Returns the
/// status the answer was given.
#[inline(never)]
fn whole_post(
    set: &std::rc::Rc<StageSet>,
    stores: &std::rc::Rc<Vec<Stores>>,
    ids: &std::rc::Rc<apigw_edge::ids::Ids>,
    host: QuickHost,
    path: &str,
) -> Option<u16> {
    let mut host = host;
    let length = ORDER.len().to_string();
    host.request = owned(&[
        (":method", "POST"),
        (":path", path),
        (":authority", "api.example.com"),
        (":scheme", "http"),
        ("user-agent", "wrk"),
        ("accept", "*/*"),
        ("content-type", "application/json"),
        ("content-length", &length),
        ("x-api-key", KEY),
    ]);
    host.body = ORDER.as_bytes();
    host.answer = vec![
        (":status".into(), "200".into()),
        ("content-type".into(), "application/json".into()),
        ("x-amzn-requestid".into(), "stand-in".into()),
    ];
    let mut s = Stream::new(host, set.clone(), stores.clone(), ids.clone()).unwrap();
    s.on_request_headers(false);
    s.on_request_body(ORDER.len(), true);
    if s.host().replied.get() != 0 {
        return None;
    }
    s.on_response_headers(false);
    s.on_response_body(STAND_IN.len(), true);
    Some(200)
}

/// Header pairs as the host hands them over.
fn owned(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn head(method: &str, path: &str, now_ms: u64) -> RequestHead {
    RequestHead {
        method: method.into(),
        path: path.into(),
        headers: owned(&[
            (":authority", "api.example.com"),
            (":scheme", "http"),
            ("user-agent", "wrk"),
            ("accept", "*/*"),
            ("content-type", "application/json"),
            ("x-api-key", KEY),
        ]),
        source_ip: "127.0.0.1".into(),
        local_port: Some(8080),
        protocol: "HTTP/1.1".into(),
        request_id: "c412d592-1e2e-4b96-8775-5a995112f4e7".into(),
        now_ms,
        client_cert: None,
        body_follows: false,
    }
}

/// Runs `f` until about `budget` has passed and returns nanoseconds per call, after a
/// warm-up of a quarter of the budget (on wasm32 the engine compiles hot code again, better,
/// while it runs: without it the first steps measured look slower than they are).
fn measure(budget: Duration, mut f: impl FnMut(u64)) -> f64 {
    let mut i = 0u64;
    let warm = Instant::now();
    while i < 50 || warm.elapsed() < budget / 4 {
        f(i);
        i += 1;
    }
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < budget {
        for _ in 0..100 {
            f(i);
            i += 1;
        }
        n += 100;
    }
    start.elapsed().as_nanos() as f64 / n as f64
}

fn main() {
    let budget = Duration::from_millis(
        std::env::var("CORE_BENCH_MS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(400),
    );
    let gw = gateway();
    let cells = Cells::default();
    let now = 1_796_126_400_000u64;
    let routed = |method: &str, path: &str| match gw.start(&head(method, path, now), &cells) {
        Start::NeedBody(r) => r,
        Start::Respond(o) => panic!("{path}: {}", o.reply.body_text()),
    };
    let hello = routed("GET", "/prod/hello");
    let order = routed("POST", "/prod/orders/7?currency=EUR");
    let answer = UpstreamAnswer {
        host_reply: None,
        status: Some(200),
        headers: vec![("x-amzn-requestid".into(), "stand-in".into())],
        body: STAND_IN.as_bytes().to_vec(),
    };
    let signer = Signer::new(
        "us-east-1",
        LAMBDA_SERVICE,
        Credentials {
            access_key_id: "AKIDEXAMPLE".into(),
            secret_access_key: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY".into(),
            session_token: Some("token".into()),
        },
    );
    let call = gw
        .invoke(&head("GET", "/prod/hello", now), &hello, b"")
        .unwrap();

    let cognito: serde_json::Value = serde_json::from_str(COGNITO).unwrap();
    let (keys, _) = KeySet::parse(cognito["jwks"].to_string().as_bytes()).unwrap();
    let id_token = cognito["id_token"].as_str().unwrap();
    let es256_token = cognito["id_token_es256"].as_str().unwrap();
    let pool = Authorizer {
        name: "pool".into(),
        flavor: Flavor::Cognito,
        header: "authorization".into(),
        issuers: vec![0],
        audiences: Vec::new(),
        skew_s: 0,
    };
    let issuer = ["https://cognito-idp.us-east-1.amazonaws.com/us-east-1_bench"];

    let iam_deployment = parse_deployment(serde_json::json!({
        "openapi": "a.json", "stage": "prod", "lambda": {"endpoint": "http://127.0.0.1:9000"},
        "iam": {"callers": [{"accessKeyId": "AKIAIOSFODNN7EXAMPLE", "secretAccessKeyEnv": "S",
            "arn": "arn:aws:iam::123456789012:user/bench"}]}
    }))
    .unwrap();
    let mut errors = Vec::new();
    let mut callers = Callers::compile(
        &iam_deployment,
        "arn:aws:execute-api:us-east-1:1:a",
        &mut errors,
    );
    callers
        .load(&|_| Some("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY".into()))
        .unwrap();
    assert!(errors.is_empty(), "{errors:?}");
    let iam_signer = Signer::new(
        "us-east-1",
        "execute-api",
        Credentials {
            access_key_id: "AKIAIOSFODNN7EXAMPLE".into(),
            secret_access_key: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY".into(),
            session_token: None,
        },
    );
    let iam_path = "/prod/hello?name=Ada";
    let mut iam_headers = vec![
        (":method".to_string(), "GET".to_string()),
        (":path".to_string(), iam_path.to_string()),
        (":authority".to_string(), "api.example.com".to_string()),
    ];
    iam_signer.sign(&mut iam_headers, b"", now);
    let policy = Policy::compile(
        &serde_json::json!({"Statement": [
            {"Effect": "Allow", "Principal": "*", "Action": "execute-api:Invoke", "Resource": "execute-api:/*"},
            {"Effect": "Deny", "Principal": "*", "Action": "execute-api:Invoke", "Resource": "execute-api:/*",
             "Condition": {"IpAddress": {"aws:SourceIp": ["192.0.2.0/24", "198.51.100.0/24", "2001:db8::/32"]}}}]}),
        "arn:aws:execute-api:us-east-1:123456789012:bench12345",
        "policy",
    )
    .unwrap();
    let facts = Facts {
        source_ip: "203.0.113.7".parse().ok(),
        now_ms: now,
        ..Facts::default()
    };

    // A mutual TLS caller's certificate as Envoy forwards it (EC P-256, 3 RDNs).
    let xfcc = {
        let pem = "-----BEGIN CERTIFICATE-----\nMIIBhzCCASygAwIBAgIJAJ8eLTxLWml4MAoGCCqGSM49BAMCMDkxCzAJBgNVBAYT\nAlVTMRUwEwYDVQQKDAxFeGFtcGxlIENvcnAxEzARBgNVBAMMCkV4YW1wbGUgQ0Ew\nHhcNMjUwNTI4MTIzMDAyWhcNMzUwODA1MDkzNjA0WjBYMQswCQYDVQQGEwJVUzEV\nMBMGA1UECgwMRXhhbXBsZSBDb3JwMRUwEwYDVQQLDAxQYXltZW50cywgRVUxGzAZ\nBgNVBAMMEmNsaWVudC5leGFtcGxlLmNvbTBZMBMGByqGSM49AgEGCCqGSM49AwEH\nA0IABJ+thK6uCLvvfwEAFNgs72oJ3isM+HG1zgxPHROlmlk0B8tFdp8QcOLCRw/l\nsb/mMTPAsM3GTqS/N5Go7CoH/U8wCgYIKoZIzj0EAwIDSQAwRgIhAMEjcV10ckG8\niM3cU+b9TaX2fohk2UhbVYs7O2VQmvd8AiEAoPoxi6yr/dDeHggWm9n4jKtWa13g\nIyoJdAVzcJOm4/w=\n-----END CERTIFICATE-----\n";
        let mut cert = String::new();
        for b in pem.bytes() {
            if b.is_ascii_alphanumeric() {
                cert.push(char::from(b));
            } else {
                cert.push_str(&format!("%{b:02X}"));
            }
        }
        format!("Hash=00ff;Cert=\"{cert}\"")
    };

    // A request validator's body model (draft 4, a recursive $ref) and a 1 KB body.
    let (models, check) = {
        use apigw_edge::validation::{compile, read_method_request, ApiValidation};
        let api = serde_json::json!({"swagger": "2.0",
            "x-amazon-apigateway-request-validators": {"all": {"validateRequestBody": true}},
            "x-amazon-apigateway-request-validator": "all",
            "definitions": {"Order": {"type": "object", "required": ["id", "lines"], "properties": {
                "id": {"type": "string", "pattern": "^o-[0-9]+$"},
                "placed": {"type": "string", "format": "date-time"},
                "lines": {"type": "array", "maxItems": 100, "items": {"$ref": "#/definitions/Line"}}}},
                "Line": {"type": "object", "required": ["sku", "quantity"], "properties": {
                    "sku": {"type": "string", "minLength": 3}, "quantity": {"type": "integer", "minimum": 1},
                    "gift": {"type": "boolean"}}}}});
        let op = serde_json::json!({"parameters": [{"name": "b", "in": "body",
            "schema": {"$ref": "#/definitions/Order"}}]});
        let request =
            read_method_request(&op, &serde_json::json!({}), &["application/json".into()]);
        let mut errors = Vec::new();
        let (models, mut checks) = compile(
            &ApiValidation::read(&api),
            &[(&request, "bench")],
            &mut errors,
        );
        assert!(errors.is_empty(), "{errors:?}");
        (models, checks.pop().flatten().unwrap())
    };
    let order_model = check.model_for(None).unwrap();
    let order_body = serde_json::json!({"id": "o-42", "placed": "2026-12-01T10:00:00Z",
        "lines": (0..20).map(|i| serde_json::json!({"sku": format!("sku-{i}"), "quantity": i + 1, "gift": i % 2 == 0}))
            .collect::<Vec<_>>()})
    .to_string();

    // An http_proxy route: the backend request and the passed-through answer.
    let backend_gw = Gateway::compile(&FilterConfig {
        deployment: parse_deployment(serde_json::json!({"openapi": "a.json", "stage": "prod"}))
            .unwrap(),
        openapi: serde_json::json!({"swagger": "2.0", "paths": {"/shop/{proxy+}": {
            "x-amazon-apigateway-any-method": {"x-amazon-apigateway-integration": {
                "type": "http_proxy", "httpMethod": "ANY", "uri": "http://127.0.0.1:8000/{proxy}",
                "requestParameters": {"integration.request.path.proxy": "method.request.path.proxy"}}}}}}), exports: Default::default() })
    .unwrap()
    .gateway;
    let shop_path = "/prod/shop/items/42?fields=name,price";
    let shop = match backend_gw.start(&head("GET", shop_path, now), &cells) {
        Start::NeedBody(r) => r,
        Start::Respond(o) => panic!("{shop_path}: {}", o.reply.body_text()),
    };
    let backend_answer = UpstreamAnswer {
        host_reply: None,
        status: Some(200),
        headers: vec![
            ("content-type".into(), "application/json".into()),
            ("server".into(), "backend".into()),
        ],
        body: STAND_IN.as_bytes().to_vec(),
    };

    // An access log line (the console's JSON preset) of a finished request.
    let logged_gw = Gateway::compile(&FilterConfig {
        deployment: parse_deployment(serde_json::json!({"openapi": "a.json", "stage": "prod",
            "accessLogSettings": {"format": r#"{ "requestId":"$context.requestId", "extendedRequestId":"$context.extendedRequestId","ip": "$context.identity.sourceIp", "caller":"$context.identity.caller", "user":"$context.identity.user", "requestTime":"$context.requestTime", "httpMethod":"$context.httpMethod", "resourcePath":"$context.resourcePath", "status":"$context.status", "protocol":"$context.protocol", "responseLength":"$context.responseLength" }"#}}))
        .unwrap(),
        openapi: serde_json::json!({"swagger": "2.0", "paths": {"/ping": {"get": {
            "responses": {"200": {"description": "ok"}},
            "x-amazon-apigateway-integration": {"type": "mock",
                "requestTemplates": {"application/json": "{\"statusCode\": 200}"},
                "responses": {"default": {"statusCode": "200"}}}}}}}), exports: Default::default() })
    .unwrap()
    .gateway;
    let mut logged = logged_gw.begin(head("GET", "/prod/ping", now));
    let logged_host = apigw_edge::gateway::Host::bare(&cells, now);
    let logged_outcome = match logged_gw.advance(&mut logged, &logged_host) {
        apigw_edge::gateway::Step::Reply(o) => *o,
        other => panic!("/ping: {other:?}"),
    };

    let set = std::rc::Rc::new(StageSet::compile(&config()).unwrap().set);
    let stores = std::rc::Rc::new(Stores::for_set(&set));
    let ids = std::rc::Rc::new(apigw_edge::ids::Ids::seeded(1));
    let stream_cells = std::rc::Rc::new(Cells::default());
    let catalogue = std::rc::Rc::new(Catalogue::new(&["bench"], &["prod"]));
    let quick = |i: u64| QuickHost {
        request: Vec::new(),
        body: b"",
        answer: vec![(":status".into(), "200".into())],
        cells: stream_cells.clone(),
        catalogue: catalogue.clone(),
        replied: std::cell::Cell::new(0),
        now_ms: now + i,
    };
    // The user pool's keys are in hand, as in Envoy once the first fetch answered.
    let jwks = cognito["jwks"].to_string();
    let sources = set.gateway(0).unwrap().jwks_sources();
    for i in 0..sources.len() {
        stores[0]
            .keys
            .borrow_mut()
            .fetched(
                sources,
                stream_cells.as_ref(),
                i,
                now,
                Some(200),
                jwks.as_bytes(),
            )
            .unwrap();
    }
    assert!(stores[0].keys.borrow().complete());
    // The first request fills the stage cache; every later one is a hit.
    assert_eq!(
        whole_get(&set, &stores, &ids, quick(0), "/prod/cached"),
        200
    );
    assert_eq!(whole_get(&set, &stores, &ids, quick(0), "/prod/hello"), 200);

    // A deployment with 10,000 API keys; the step identifies one of them.
    let key_value = |i: usize| format!("benchkey{i:0>24}");
    let many_keys: Vec<apigw_edge::config::ApiKey> = (0..10_000)
        .map(|i| apigw_edge::config::ApiKey {
            id: format!("k{i}"),
            name: String::new(),
            enabled: true,
            value_sha256: apigw_edge::apikeys::hash_value(&key_value(i)),
        })
        .collect();
    let mut key_errors = Vec::new();
    let api_keys = apigw_edge::apikeys::ApiKeys::compile(&many_keys, &mut key_errors);
    assert!(key_errors.is_empty());
    let presented_key = key_value(7_777);

    type Step<'a> = Box<dyn FnMut(u64) + 'a>;
    let mut steps: Vec<(&str, Step)> = vec![
        (
            "stream_proxied_get",
            Box::new(|i: u64| {
                let status = whole_get(&set, &stores, &ids, quick(i), "/prod/hello");
                assert_eq!(status, 200);
            }),
        ),
        (
            "stream_forwarded_post",
            Box::new(|i: u64| {
                let status = whole_post(&set, &stores, &ids, quick(i), "/prod/hello");
                assert_eq!(status, Some(200));
            }),
        ),
        (
            "stream_cache_hit",
            Box::new(|i: u64| {
                let status = whole_get(&set, &stores, &ids, quick(i), "/prod/cached");
                assert_eq!(status, 200);
            }),
        ),
        (
            "access_line",
            Box::new(|i: u64| {
                black_box(
                    logged_gw
                        .access_line(&logged, &logged_outcome, now + i % 7)
                        .unwrap(),
                );
            }),
        ),
        (
            "validate_body",
            Box::new(|_: u64| {
                models.validate(order_model, order_body.as_bytes()).unwrap();
            }),
        ),
        (
            "client_cert",
            Box::new(|_: u64| {
                black_box(ClientCert::from_xfcc(xfcc.as_bytes()).unwrap());
            }),
        ),
        (
            "iam_verify",
            Box::new(|_: u64| {
                black_box(
                    callers
                        .verify("GET", iam_path, &iam_headers, Some(b""), now)
                        .unwrap(),
                );
            }),
        ),
        (
            "resource_policy",
            Box::new(|_: u64| {
                black_box(policy.evaluate(
                    "arn:aws:execute-api:us-east-1:123456789012:bench12345/prod/GET/hello",
                    None,
                    &facts,
                ));
            }),
        ),
        (
            "jwt_verify_rs256",
            Box::new(|_: u64| {
                let v = verify(&pool, &issuer, |_| Some(&keys), id_token).unwrap();
                admit(&pool, &v, &[], now).unwrap();
                black_box(v);
            }),
        ),
        (
            "jwt_verify_es256",
            Box::new(|_: u64| {
                let v = verify(&pool, &issuer, |_| Some(&keys), es256_token).unwrap();
                admit(&pool, &v, &[], now).unwrap();
                black_box(v);
            }),
        ),
        (
            "route_and_admit",
            Box::new(|i: u64| {
                let h = head("GET", "/prod/hello", now + i);
                black_box(gw.start(&h, &cells));
            }),
        ),
        (
            "api_key_of_10k",
            Box::new(|_: u64| {
                assert!(black_box(api_keys.identify(&presented_key)).is_some());
            }),
        ),
        (
            "proxy_event",
            Box::new(|_: u64| {
                let h = head("GET", "/prod/hello?name=Ada", now);
                black_box(gw.invoke(&h, &hello, b"").unwrap());
            }),
        ),
        (
            "request_template",
            Box::new(|_: u64| {
                let h = head("POST", "/prod/orders/7?currency=EUR", now);
                black_box(gw.invoke(&h, &order, ORDER.as_bytes()).unwrap());
            }),
        ),
        (
            "proxy_response",
            Box::new(|_: u64| {
                let h = head("GET", "/prod/hello", now);
                black_box(gw.finish(&h, &hello, &answer));
            }),
        ),
        (
            "response_template",
            Box::new(|_: u64| {
                let h = head("POST", "/prod/orders/7", now);
                black_box(gw.finish(&h, &order, &answer));
            }),
        ),
        (
            "sigv4_sign",
            Box::new(|_: u64| {
                let mut headers = call.headers.clone();
                signer.sign(&mut headers, &call.body, now);
                black_box(headers);
            }),
        ),
        (
            "http_proxy_call",
            Box::new(|_: u64| {
                let h = head("GET", shop_path, now);
                black_box(backend_gw.invoke(&h, &shop, b"").unwrap());
            }),
        ),
        (
            "http_proxy_answer",
            Box::new(|_: u64| {
                let h = head("GET", shop_path, now);
                black_box(backend_gw.finish(&h, &shop, &backend_answer));
            }),
        ),
    ];
    // Under an instruction counter: one step run a given number of times, untimed (the
    // count with 0 runs is the set-up's, to subtract).
    if let Ok(runs) = std::env::var("CORE_BENCH_RUNS") {
        let runs: u64 = runs.parse().expect("CORE_BENCH_RUNS is a number of runs");
        let only = std::env::var("CORE_BENCH_STEP").unwrap_or_default();
        let (_, step) = steps
            .iter_mut()
            .find(|(name, _)| *name == only)
            .expect("CORE_BENCH_STEP names a step");
        for i in 0..runs {
            step(i);
        }
        return;
    }
    for (name, step) in steps {
        let ns = measure(budget, step);
        println!("core {name} {ns:.0}");
    }
}
