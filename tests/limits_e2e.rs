//! API keys, usage plans, stage throttles and the CORS policy through real Envoy with two
//! workers (`--concurrency 2`) and many parallel clients, against a scripted Invoke API.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support;

use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::*;

const GOLD: &str = "goldgoldgoldgoldgoldgoldgold";
const SILVER: &str = "silversilversilversilversilver";
const OFF: &str = "offoffoffoffoffoffoffoffoff";
const LONE: &str = "lonelonelonelonelonelonelone";
const APP: &str = "http://app.test:3000";

/// Held by the tests that load the machine with many clients, so that they do not share
/// the two cores with each other.
static HEAVY: Mutex<()> = Mutex::new(());

fn sha256(value: &str) -> String {
    cli_ok(&["key".as_ref(), "hash".as_ref(), value.as_ref()])
        .trim()
        .to_string()
}

fn keyed(function: &str) -> Value {
    let mut op = proxy_op(function);
    op["security"] = json!([{"api_key": []}]);
    op
}

fn api() -> Value {
    let mut cached = keyed("cached");
    cached["x-amazon-apigateway-integration"]["cacheKeyParameters"] = json!([]);
    json!({"swagger": "2.0",
    "securityDefinitions": {"api_key": {"type": "apiKey", "name": "x-api-key", "in": "header"}},
    "paths": {
        "/quota": {"get": keyed("quota")},
        "/rate": {"get": keyed("rate")},
        "/cached": {"get": cached},
        "/open": {"get": proxy_op("open")},
        "/staged": {"get": proxy_op("staged")}
    }})
}

fn start(name: &str, stub: &InvokeStub, extra: &str) -> Envoy {
    let control = free_port();
    let deployment = format!(
        "stage: s
control: 127.0.0.1:{control}
lambda:
  endpoint: {url}
apiKeys:
  - {{id: gold, valueSha256: {gold}}}
  - {{id: silver, valueSha256: {silver}}}
  - {{id: off, enabled: false, valueSha256: {off}}}
  - {{id: lone, valueSha256: {lone}}}
usagePlans:
  - id: gold
    apiKeys: [gold, off]
    quota: {{limit: 50, period: DAY}}
    methodThrottle:
      /rate/GET: {{rateLimit: 20, burstLimit: 5}}
  - id: silver
    apiKeys: [silver]
    quota: {{limit: 3, period: MONTH}}
throttle:
  methodSettings:
    /staged/GET: {{rateLimit: 0.01, burstLimit: 2}}
cache:
  debugHeader: true
  methodSettings:
    \"*/*\": {{cachingEnabled: false}}
    /cached/GET: {{cachingEnabled: true}}
cors:
  allowOrigins: [\"{APP}\"]
  allowMethods: [GET, PUT]
  allowHeaders: [x-api-key, content-type]
  exposeHeaders: [x-amzn-requestid]
  allowCredentials: true
  maxAge: 300
{extra}",
        url = stub.url(),
        gold = sha256(GOLD),
        silver = sha256(SILVER),
        off = sha256(OFF),
        lone = sha256(LONE),
    );
    Envoy::start(name, &deployment, &api(), 2)
}

fn ok_stub() -> InvokeStub {
    InvokeStub::start(|r| {
        StubReply::payload(json!({"statusCode": 200, "body": r.function()}).to_string())
    })
}

fn invocations(stub: &InvokeStub, function: &str) -> usize {
    stub.requests()
        .iter()
        .filter(|r| r.function() == function)
        .count()
}

/// Sends `total` GETs from `clients` threads, each on fresh connections (spread over both
/// workers); returns the statuses with their `message` bodies.
fn hammer(
    port: u16,
    path: &str,
    key: &'static str,
    clients: usize,
    total: usize,
) -> Vec<(u16, String)> {
    let per = total / clients;
    let path = Arc::new(path.to_string());
    let handles: Vec<_> = (0..clients)
        .map(|_| {
            let path = path.clone();
            thread::spawn(move || {
                (0..per)
                    .map(|_| {
                        let r = request(port, "GET", &path, &[("x-api-key", key)], b"");
                        (r.status, r.text())
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    handles
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect()
}

#[test]
fn keys_are_required_and_reach_the_event() {
    let stub = ok_stub();
    let envoy = start("limits-keys", &stub, "");
    for (key, why) in [
        (None, "missing"),
        (Some("wrongwrongwrongwrongwrong"), "unknown"),
        (Some(OFF), "disabled"),
        (Some(LONE), "in no usage plan"),
    ] {
        let headers: Vec<(&str, &str)> = key.map(|k| ("x-api-key", k)).into_iter().collect();
        let r = envoy.request("GET", "/s/quota", &headers, b"");
        assert_eq!(r.status, 403, "{why}");
        assert_eq!(r.json(), json!({"message": "Forbidden"}), "{why}");
        assert_eq!(r.header("x-amzn-errortype"), Some("ForbiddenException"));
    }
    assert_eq!(invocations(&stub, "quota"), 0);
    let r = envoy.request("GET", "/s/quota", &[("x-api-key", GOLD)], b"");
    assert_eq!(r.status, 200, "{}", r.text());
    let identity = &stub.last("quota").json()["requestContext"]["identity"];
    assert_eq!(identity["apiKey"], GOLD);
    assert_eq!(identity["apiKeyId"], "gold");
    // A method without the requirement ignores keys and plans.
    assert_eq!(envoy.get("/s/open").status, 200);
    assert!(stub.last("open").json()["requestContext"]["identity"]
        .get("apiKeyId")
        .is_none());
}

#[test]
fn a_quota_of_n_admits_exactly_n_across_workers() {
    let _heavy = HEAVY.lock().unwrap_or_else(|e| e.into_inner());
    let stub = ok_stub();
    let envoy = start("limits-quota", &stub, "");
    let results = hammer(envoy.port, "/s/quota", GOLD, 16, 160);
    let admitted = results.iter().filter(|(s, _)| *s == 200).count();
    let refused: Vec<_> = results.iter().filter(|(s, _)| *s != 200).collect();
    assert_eq!(admitted, 50);
    assert_eq!(invocations(&stub, "quota"), 50);
    for (status, body) in &refused {
        assert_eq!(
            (*status, body.as_str()),
            (429, r#"{"message":"Limit Exceeded"}"#)
        );
    }
    assert_eq!(
        envoy.counter("wasmcustom.apigw_edge.usage_plan.gold.admitted"),
        50
    );
    assert_eq!(
        envoy.counter("wasmcustom.apigw_edge.usage_plan.gold.quota_exceeded"),
        110
    );
    // The control listener reports the standing.
    let deployment = envoy.dir.join("deployment.yaml");
    let out = cli_ok(&["usage".as_ref(), deployment.as_os_str(), "gold".as_ref()]);
    let standing: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        (standing["used"].as_u64(), standing["remaining"].as_u64()),
        (Some(50), Some(0))
    );
    // Keys of other plans are not affected.
    let r = envoy.request("GET", "/s/quota", &[("x-api-key", SILVER)], b"");
    assert_eq!(r.status, 200);
}

#[test]
fn a_throttle_holds_its_rate_across_workers() {
    let _heavy = HEAVY.lock().unwrap_or_else(|e| e.into_inner());
    let stub = ok_stub();
    let envoy = start("limits-rate", &stub, "");
    let started = Instant::now();
    let deadline = started + Duration::from_millis(2_000);
    let handles: Vec<_> = (0..8)
        .map(|_| {
            let port = envoy.port;
            thread::spawn(move || {
                let mut statuses = Vec::new();
                while Instant::now() < deadline {
                    let r = request(port, "GET", "/s/rate", &[("x-api-key", GOLD)], b"");
                    statuses.push(r.status);
                }
                statuses
            })
        })
        .collect();
    let statuses: Vec<u16> = handles
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    let elapsed = started.elapsed().as_secs_f64();
    let admitted = statuses.iter().filter(|s| **s == 200).count() as f64;
    let throttled = statuses.iter().filter(|s| **s == 429).count();
    // Burst 5 plus 20 per second: never more. When the clients offered at least twice
    // that, at least 80 % of it (the rest is lost to scheduling on a loaded machine).
    let allowed = 5.0 + 20.0 * elapsed;
    let offered = statuses.len() as f64;
    assert!(
        admitted <= allowed + 1.0,
        "{admitted} admitted, at most {allowed:.1}"
    );
    if offered >= 2.0 * allowed {
        assert!(
            admitted >= 0.8 * allowed,
            "{admitted} admitted of {allowed:.1} ({offered} offered)"
        );
    }
    assert!(throttled > 0);
    assert_eq!(statuses.len(), admitted as usize + throttled);
    assert!(envoy.counter("wasmcustom.apigw_edge.usage_plan.gold.throttled") > 0);
    eprintln!(
        "throttle 20/s burst 5 over {elapsed:.2}s: {admitted} admitted of {allowed:.1} allowed ({:.1} %), {throttled} throttled",
        100.0 * admitted / allowed
    );
}

#[test]
fn stage_throttles_apply_without_keys() {
    let stub = ok_stub();
    let envoy = start("limits-stage", &stub, "");
    // Burst 2, then one token per 100 s: the third and fourth requests are refused.
    let statuses: Vec<u16> = (0..4).map(|_| envoy.get("/s/staged").status).collect();
    assert_eq!(statuses, vec![200, 200, 429, 429]);
    let r = envoy.get("/s/staged");
    assert_eq!(r.json(), json!({"message": "Too Many Requests"}));
    assert_eq!(
        r.header("x-amzn-errortype"),
        Some("TooManyRequestsException")
    );
    assert_eq!(envoy.counter("wasmcustom.apigw_edge.stage.throttled"), 3);
    // Other methods have no stage throttle here.
    assert!((0..4).all(|_| envoy.get("/s/open").status == 200));
}

#[test]
fn a_limited_key_is_limited_on_cache_hits_too() {
    let stub = ok_stub();
    let envoy = start("limits-cache", &stub, "");
    let mut conn = Conn::open(envoy.port);
    let mut seen = Vec::new();
    for _ in 0..5 {
        let r = conn.send("GET", "/s/cached", &[("x-api-key", SILVER)]);
        seen.push((
            r.status,
            r.header("x-apigw-edge-cache").unwrap_or("-").to_string(),
        ));
    }
    assert_eq!(
        seen,
        vec![
            (200, "MISS".to_string()),
            (200, "HIT".to_string()),
            (200, "HIT".to_string()),
            (429, "-".to_string()),
            (429, "-".to_string()),
        ]
    );
    assert_eq!(invocations(&stub, "cached"), 1);
}

#[test]
fn cors_headers_on_preflights_errors_and_answers() {
    let stub = ok_stub();
    let envoy = start("limits-cors", &stub, "usage: {rateLimitHeaders: true}\n");
    let pre = envoy.request(
        "OPTIONS",
        "/s/quota",
        &[
            ("Origin", APP),
            ("Access-Control-Request-Method", "PUT"),
            ("Access-Control-Request-Headers", "x-api-key"),
        ],
        b"",
    );
    assert_eq!(pre.status, 204);
    assert_eq!(pre.header("access-control-allow-origin"), Some(APP));
    assert_eq!(pre.header("access-control-allow-methods"), Some("GET,PUT"));
    assert_eq!(pre.header("access-control-allow-credentials"), Some("true"));
    assert_eq!(pre.header("access-control-max-age"), Some("300"));
    assert_eq!(
        invocations(&stub, "quota"),
        0,
        "preflights never reach Lambda"
    );
    // 403 (no key), 403 (no route), 200, and 429 all carry the origin.
    let origin_only: &[(&str, &str)] = &[("Origin", APP)];
    let with_key: &[(&str, &str)] = &[("Origin", APP), ("x-api-key", SILVER)];
    let cases = [
        ("/s/quota", origin_only, 403),
        ("/s/nowhere", origin_only, 403),
        ("/s/quota", with_key, 200),
    ];
    for (path, headers, status) in cases {
        let r = envoy.request("GET", path, headers, b"");
        assert_eq!(r.status, status, "{path}");
        assert_eq!(
            r.header("access-control-allow-origin"),
            Some(APP),
            "{path} {status}"
        );
        assert_eq!(
            r.header("access-control-expose-headers"),
            Some("x-amzn-requestid")
        );
    }
    let mut last = None;
    for _ in 0..3 {
        last = Some(envoy.request(
            "GET",
            "/s/quota",
            &[("Origin", APP), ("x-api-key", SILVER)],
            b"",
        ));
    }
    let r = last.unwrap();
    assert_eq!(r.status, 429);
    assert_eq!(r.header("access-control-allow-origin"), Some(APP));
    assert_eq!(r.header("x-ratelimit-remaining"), Some("0"));
    assert!(r.header("retry-after").is_some());
    // A disallowed origin gets nothing.
    let r = envoy.request("GET", "/s/open", &[("Origin", "http://evil.test")], b"");
    assert!(r.header("access-control-allow-origin").is_none());
}

#[test]
fn exported_enable_cors_options_methods_answer_as_exported() {
    let stub = ok_stub();
    // The OPTIONS method API Gateway's "Enable CORS" writes into an export (mock integration).
    let options = json!({
        "responses": {"200": {"description": "Default response for CORS method", "headers": {
            "Access-Control-Allow-Origin": {"type": "string"},
            "Access-Control-Allow-Methods": {"type": "string"},
            "Access-Control-Allow-Headers": {"type": "string"}}}},
        "x-amazon-apigateway-integration": {
            "type": "mock",
            "requestTemplates": {"application/json": "{\"statusCode\" : 200}"},
            "passthroughBehavior": "when_no_match",
            "responses": {"default": {
                "statusCode": "200",
                "responseParameters": {
                    "method.response.header.Access-Control-Allow-Headers": "'Content-Type,X-Amz-Date,Authorization,X-Api-Key'",
                    "method.response.header.Access-Control-Allow-Methods": "'GET,OPTIONS'",
                    "method.response.header.Access-Control-Allow-Origin": "'*'"},
                "responseTemplates": {"application/json": "{}"}}}}
    });
    let api = json!({"swagger": "2.0", "paths": {"/pets": {"get": proxy_op("pets"), "options": options}}});
    let envoy = Envoy::start(
        "limits-enable-cors",
        &format!("stage: s\nlambda:\n  endpoint: {}\n", stub.url()),
        &api,
        2,
    );
    let r = envoy.request(
        "OPTIONS",
        "/s/pets",
        &[("Origin", APP), ("Access-Control-Request-Method", "GET")],
        b"",
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.text(), "{}");
    assert_eq!(r.header("access-control-allow-origin"), Some("*"));
    assert_eq!(
        r.header("access-control-allow-methods"),
        Some("GET,OPTIONS")
    );
    assert_eq!(
        r.header("access-control-allow-headers"),
        Some("Content-Type,X-Amz-Date,Authorization,X-Api-Key")
    );
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert!(r.header("x-amzn-requestid").is_some());
    assert!(stub.requests().is_empty(), "a mock never calls Lambda");
    assert_eq!(envoy.get("/s/pets").status, 200);
}
