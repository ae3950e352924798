//! The stage cache through real Envoy with two workers (`--concurrency 2`), against a
//! scripted Invoke API that counts invocations and answers each with a new version number,
//! so a test can tell a stored answer from a fresh one.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use support::*;

const OPS_KEY: &str = "opsopsopsopsopsopsopsopsopsops";
const READER_KEY: &str = "readerreaderreaderreaderreader";

struct Cached {
    envoy: Envoy,
    stub: InvokeStub,
}

impl Cached {
    fn invocations(&self, function: &str) -> usize {
        self.stub
            .requests()
            .iter()
            .filter(|r| r.function() == function)
            .count()
    }
}

/// Every answer carries `function#n`, n counting all invocations; `fail` answers 404 from
/// the function (a mapped non-2xx).
fn versioned_stub() -> InvokeStub {
    let n = Arc::new(AtomicU64::new(0));
    InvokeStub::start(move |r| {
        let v = n.fetch_add(1, Ordering::SeqCst) + 1;
        let status = if r.function() == "fail" { 404 } else { 200 };
        StubReply::payload(
            json!({"statusCode": status, "headers": {"X-Fn": r.function()}, "body": format!("{}#{v}", r.function())})
                .to_string(),
        )
    })
}

fn op(function: &str, keys: &[&str]) -> Value {
    let mut o = proxy_op(function);
    o["x-amazon-apigateway-integration"]["cacheKeyParameters"] = json!(keys);
    o
}

fn start(name: &str) -> Cached {
    let stub = versioned_stub();
    let api = json!({"swagger": "2.0", "paths": {
        "/items": {
            "get": op("items", &["method.request.querystring.type", "method.request.header.X-Tenant"]),
            "post": op("items_post", &[])
        },
        "/items/{id}": {"get": op("item", &["method.request.path.id"])},
        "/short": {"get": op("short", &[])},
        "/deny": {"get": op("deny", &[])},
        "/warn": {"get": op("warn", &[])},
        "/quiet": {"get": op("quiet", &[])},
        "/open": {"get": op("open", &[])},
        "/fail": {"get": op("fail", &[])},
        "/off": {"get": op("off", &[])}
    }});
    let control = free_port();
    let deployment = format!(
        "stage: s
control: 127.0.0.1:{control}
lambda:
  endpoint: {url}
apiKeys:
  - id: ops
    valueSha256: {ops}
  - id: reader
    valueSha256: {reader}
cache:
  capacityMiB: 4
  debugHeader: true
  invalidators: [ops]
  methodSettings:
    /short/GET: {{cacheTtlInSeconds: 1}}
    /deny/GET: {{unauthorizedCacheControlHeaderStrategy: FAIL_WITH_403}}
    /quiet/GET: {{unauthorizedCacheControlHeaderStrategy: SUCCEED_WITHOUT_RESPONSE_HEADER}}
    /open/GET: {{requireAuthorizationForCacheControl: false}}
    /off/GET: {{cachingEnabled: false}}
",
        url = stub.url(),
        ops = sha256(OPS_KEY),
        reader = sha256(READER_KEY),
    );
    Cached {
        envoy: Envoy::start(name, &deployment, &api, 2),
        stub,
    }
}

fn sha256(value: &str) -> String {
    cli_ok(&["key".as_ref(), "hash".as_ref(), value.as_ref()])
        .trim()
        .to_string()
}

fn cache_header(r: &Response) -> &str {
    r.header("x-apigw-edge-cache").unwrap_or("none")
}

#[test]
fn second_get_is_served_from_the_cache() {
    let c = start("cache-hit");
    let mut conn = Conn::open(c.envoy.port);
    let first = conn.get("/s/items?type=a");
    assert_eq!(first.status, 200, "{}", first.text());
    assert_eq!(
        (first.text(), cache_header(&first)),
        ("items#1".into(), "MISS")
    );
    let second = conn.get("/s/items?type=a");
    assert_eq!(
        (second.text(), cache_header(&second)),
        ("items#1".into(), "HIT")
    );
    assert_eq!(c.invocations("items"), 1, "a hit must not reach Lambda");
    // The stored answer keeps its own headers and gets this request's ids.
    assert_eq!(second.header("x-fn"), Some("items"));
    assert_eq!(second.header("content-type"), Some("application/json"));
    assert_ne!(
        second.header("x-amzn-requestid"),
        first.header("x-amzn-requestid")
    );
    assert!(second.header("x-amzn-requestid").is_some());

    // Across fresh connections, at most one miss per worker.
    for _ in 0..10 {
        let r = c.envoy.get("/s/items?type=a");
        assert_eq!(r.text().split('#').next(), Some("items"));
    }
    assert!(
        c.invocations("items") <= 2,
        "{} invocations",
        c.invocations("items")
    );
    let stats = c.envoy.stats();
    let stat = |n: &str| -> u64 { stats.get(n).and_then(|v| v.parse().ok()).unwrap_or(0) };
    assert!(stat("wasmcustom.apigw_edge.cache.hit") >= 9, "{stats:?}");
    assert!(stat("wasmcustom.apigw_edge.cache.store") >= 1);
    assert!(stat("wasmcustom.apigw_edge.cache.bytes") > 0);
}

#[test]
fn key_parameters_split_entries_and_others_do_not() {
    let c = start("cache-keys");
    let mut conn = Conn::open(c.envoy.port);
    for (path, headers, want) in [
        ("/s/items?type=a", vec![], "MISS"),
        ("/s/items?type=a&page=2", vec![], "HIT"),
        ("/s/items?page=9&type=a", vec![("x-other", "1")], "HIT"),
        ("/s/items?type=b", vec![], "MISS"),
        ("/s/items?type=a", vec![("X-Tenant", "t1")], "MISS"),
        ("/s/items?type=a", vec![("x-tenant", "t1")], "HIT"),
        ("/s/items/1", vec![], "MISS"),
        ("/s/items/2", vec![], "MISS"),
        ("/s/items/1", vec![], "HIT"),
    ] {
        let r = conn.send("GET", path, &headers);
        assert_eq!(r.status, 200, "{path}");
        assert_eq!(cache_header(&r), want, "{path} {headers:?}");
    }
    assert_eq!(c.invocations("items"), 3);
    assert_eq!(c.invocations("item"), 2);
}

#[test]
fn uncached_methods_failures_and_disabled_methods_always_invoke() {
    let c = start("cache-bypass");
    let mut conn = Conn::open(c.envoy.port);
    for _ in 0..2 {
        let r = conn.get("/s/fail");
        assert_eq!(r.status, 404);
        let r = conn.get("/s/off");
        assert_eq!((r.status, cache_header(&r)), (200, "none"));
    }
    let post = c.envoy.request("POST", "/s/items", &[], b"");
    assert_eq!((post.status, cache_header(&post)), (200, "none"));
    assert_eq!(c.invocations("fail"), 2, "non-2xx answers are not stored");
    assert_eq!(c.invocations("off"), 2);
    assert_eq!(c.invocations("items_post"), 1);
}

#[test]
fn entries_expire_after_their_ttl() {
    let c = start("cache-ttl");
    let mut conn = Conn::open(c.envoy.port);
    assert_eq!(conn.get("/s/short").text(), "short#1");
    assert_eq!(conn.get("/s/short").text(), "short#1");
    std::thread::sleep(Duration::from_millis(1100));
    let r = conn.get("/s/short");
    assert_eq!((r.text(), cache_header(&r)), ("short#2".into(), "MISS"));
    assert_eq!(c.invocations("short"), 2);
}

#[test]
fn max_age_zero_by_caller_and_strategy() {
    let c = start("cache-invalidate");
    let mut conn = Conn::open(c.envoy.port);
    let fresh = [("cache-control", "max-age=0")];
    let as_ops = [("cache-control", "max-age=0"), ("x-api-key", OPS_KEY)];
    let as_reader = [("cache-control", "max-age=0"), ("x-api-key", READER_KEY)];
    for path in ["/s/deny", "/s/warn", "/s/quiet", "/s/open"] {
        let r = conn.get(path);
        assert_eq!(cache_header(&r), "MISS", "{path}");
    }
    // An authorized caller refreshes under every strategy: fresh answer, stored for others.
    for path in ["/s/deny", "/s/warn"] {
        let before = conn.get(path).text();
        let r = conn.send("GET", path, &as_ops);
        assert_eq!((r.status, cache_header(&r)), (200, "REFRESH"), "{path}");
        assert_ne!(r.text(), before, "{path}");
        assert_eq!(
            conn.get(path).text(),
            r.text(),
            "{path}: refreshed answer is stored"
        );
    }
    // FAIL_WITH_403: unauthorized callers (no key, or a key that may not invalidate).
    for headers in [&fresh[..], &as_reader[..]] {
        let r = conn.send("GET", "/s/deny", headers);
        assert_eq!(r.status, 403, "{headers:?}");
        assert_eq!(r.json(), json!({"message": "Unauthorized"}));
        assert_eq!(r.header("x-amzn-errortype"), Some("AccessDeniedException"));
    }
    // SUCCEED_WITH_RESPONSE_HEADER: served from the cache, with a warning.
    let stored = conn.get("/s/warn").text();
    let r = conn.send("GET", "/s/warn", &as_reader);
    assert_eq!((r.text(), cache_header(&r)), (stored, "HIT"));
    assert!(r.header("warning").unwrap().contains("max-age=0 ignored"));
    // SUCCEED_WITHOUT_RESPONSE_HEADER: served from the cache, silently.
    let stored = conn.get("/s/quiet").text();
    let r = conn.send("GET", "/s/quiet", &fresh);
    assert_eq!((r.text(), cache_header(&r)), (stored, "HIT"));
    assert!(r.header("warning").is_none());
    // requireAuthorizationForCacheControl: false lets anyone refresh.
    let before = conn.get("/s/open").text();
    let r = conn.send("GET", "/s/open", &fresh);
    assert_eq!(cache_header(&r), "REFRESH");
    assert_ne!(r.text(), before);
    assert!(c.envoy.counter("wasmcustom.apigw_edge.cache.invalidate") >= 3);
}

/// Opens keep-alive connections and warms `path` on each until both workers hold an entry
/// (two misses: one per worker's store).
fn warm_both_workers(c: &Cached, path: &str, function: &str) -> Vec<Conn> {
    let mut conns = Vec::new();
    while c.invocations(function) < 2 {
        assert!(
            conns.len() < 64,
            "connections never reached the second worker"
        );
        let mut conn = Conn::open(c.envoy.port);
        assert_eq!(conn.get(path).status, 200);
        conns.push(conn);
    }
    for conn in &mut conns {
        assert_eq!(cache_header(&conn.get(path)), "HIT");
    }
    conns
}

/// The version every connection sees now; all must agree.
fn versions(conns: &mut [Conn], path: &str) -> Vec<String> {
    conns.iter_mut().map(|c| c.get(path).text()).collect()
}

#[test]
fn invalidation_reaches_every_worker_on_the_next_request() {
    let c = start("cache-workers-invalidate");
    let mut conns = warm_both_workers(&c, "/s/items?type=w", "items");
    let old = versions(&mut conns, "/s/items?type=w");
    let r = c.envoy.request(
        "GET",
        "/s/items?type=w",
        &[("cache-control", "max-age=0"), ("x-api-key", OPS_KEY)],
        b"",
    );
    assert_eq!(cache_header(&r), "REFRESH");
    // Every connection, on either worker, stops serving its old copy at once.
    let now = versions(&mut conns, "/s/items?type=w");
    for (before, after) in old.iter().zip(&now) {
        assert_ne!(before, after);
    }
}

#[test]
fn stage_flush_through_the_cli_reaches_every_worker() {
    let c = start("cache-workers-flush");
    let mut conns = warm_both_workers(&c, "/s/items/7", "item");
    let old = versions(&mut conns, "/s/items/7");
    let deployment = c.envoy.dir.join("deployment.yaml");
    let out = cli_ok(&["cache".as_ref(), "flush".as_ref(), deployment.as_os_str()]);
    let answer: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(answer["flushed"], true);
    assert_eq!(answer["generation"], 1);
    let now = versions(&mut conns, "/s/items/7");
    for (before, after) in old.iter().zip(&now) {
        assert_ne!(before, after, "a worker served a flushed entry");
    }
    assert!(c.envoy.log().contains("cache flushed (generation 1)"));
    assert_eq!(c.envoy.counter("wasmcustom.apigw_edge.cache.flush"), 1);
    let status = cli_ok(&["cache".as_ref(), "status".as_ref(), deployment.as_os_str()]);
    let status: Value = serde_json::from_str(&status).unwrap();
    assert_eq!(status["flushGeneration"], 1);
}
