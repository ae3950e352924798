//! Fleet-wide limits through a rate-limit service: two Envoy processes with two workers
//! each, the gateway in both, counting in one rate-limit service (Envoy's `RateLimitService`
//! gRPC protocol on the Limitador engine, with Redis as the shared store, limits written by
//! `apigw-edge ratelimit-config`). Together the two gateways admit exactly a key's quota and
//! a method's throttle, and a service that is down is handled as `onCheckFailure` says.

#![cfg(not(target_arch = "wasm32"))]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support;

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;
use support::*;

const KEY: &str = "fleetfleetfleetfleetfleet";
const QUOTA: usize = 10;
const BURST: usize = 5;

/// A child process killed when dropped.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn wait_port(port: u16, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "{what} did not listen on {port}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn fixture_bin() -> PathBuf {
    repo().join("target/ratelimit-fixture/release/apigw-edge-ratelimit-fixture")
}

fn start_redis(dir: &Path) -> (Proc, u16) {
    let port = free_port();
    let child = Command::new("redis-server")
        .args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
        ])
        .arg(dir)
        .stdout(Stdio::null())
        .spawn()
        .expect("redis-server (./scripts/setup.sh --fleet installs it)");
    wait_port(port, "redis-server");
    (Proc(child), port)
}

fn start_service(redis: u16, limits: &Path, port: u16, dir: &Path, delay_ms: u64) -> Proc {
    let log = std::fs::File::create(dir.join(format!("ratelimit-{delay_ms}.log"))).unwrap();
    let child = Command::new(fixture_bin())
        .arg(format!("127.0.0.1:{port}"))
        .arg(format!("redis://127.0.0.1:{redis}"))
        .arg(limits)
        .arg(delay_ms.to_string())
        .stderr(log)
        .spawn()
        .expect("the rate-limit fixture (built by the test command)");
    wait_port(port, "the rate-limit fixture");
    Proc(child)
}

fn api() -> serde_json::Value {
    json!({"swagger": "2.0", "paths": {
        "/quota": {"get": proxy_op("pets")},
        "/limited": {"get": proxy_op("pets")},
        "/free": {"get": proxy_op("pets")}
    }})
}

fn deployment(invoke: &str, rls_port: u16, on_failure: &str) -> String {
    format!(
        r#"stage: prod
lambda: {{endpoint: "{invoke}"}}
apiKeys:
  - {{id: fleet, valueSha256: {hash}}}
apiKeyRequired: [/quota/GET]
usagePlans:
  - id: shared
    apiKeys: [fleet]
    throttle: {{rateLimit: 1000, burstLimit: 1000}}
    quota: {{limit: {QUOTA}, period: DAY}}
throttle:
  methodSettings:
    /limited/GET: {{rateLimit: 0.01, burstLimit: {BURST}}}
usage:
  onCheckFailure: {on_failure}
  rateLimitService: {{address: "127.0.0.1:{rls_port}", timeoutMs: 500}}
"#,
        hash = apigw_edge::apikeys::hash_value(KEY),
    )
}

/// Sends `n` requests spread over both gateways from four threads; the statuses and
/// bodies by gateway.
fn spread(ports: [u16; 2], n: usize, path: &str, headers: &[(&str, &str)]) -> Vec<(u16, String)> {
    let headers: Vec<(String, String)> = headers
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let handles: Vec<_> = (0..4)
        .map(|t| {
            let headers = headers.clone();
            let path = path.to_string();
            std::thread::spawn(move || {
                let h: Vec<(&str, &str)> = headers
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str()))
                    .collect();
                (0..n)
                    .filter(|i| i % 4 == t)
                    .map(|i| {
                        let r = request(ports[i % 2], "GET", &path, &h, b"");
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
fn two_gateways_share_one_quota_and_one_throttle() {
    let stub = InvokeStub::start(|_| {
        StubReply::payload(json!({"statusCode": 200, "body": "ok"}).to_string())
    });
    let base = temp_dir("fleet");
    let (_redis, redis_port) = start_redis(&base);
    let rls_port = free_port();

    // Gateway A refuses requests it cannot check; gateway B serves them.
    let mut envoys = Vec::new();
    for (name, policy) in [("a", "DENY"), ("b", "ALLOW")] {
        let dir = base.join(name);
        std::fs::create_dir_all(&dir).unwrap();
        let (config, port, admin) =
            render(&dir, &deployment(&stub.url(), rls_port, policy), &api());
        envoys.push(Envoy::start_config(dir, config, port, admin, 2));
    }
    // The service's limits, as the CLI writes them for Limitador.
    let limits = base.join("limits.yaml");
    let out = Command::new(cli())
        .args(["ratelimit-config"])
        .arg(base.join("a/deployment.yaml"))
        .args(["--for", "limitador", "--out"])
        .arg(&limits)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let service = start_service(redis_port, &limits, rls_port, &base, 0);
    let ports = [envoys[0].port, envoys[1].port];

    // The quota: exactly QUOTA of 3 x QUOTA requests, from both gateways together.
    let answers = spread(ports, 3 * QUOTA, "/prod/quota", &[("x-api-key", KEY)]);
    let admitted = answers.iter().filter(|(s, _)| *s == 200).count();
    let refused: Vec<_> = answers.iter().filter(|(s, _)| *s != 200).collect();
    assert_eq!(admitted, QUOTA, "{answers:?}");
    assert!(
        refused
            .iter()
            .all(|(s, b)| *s == 429 && b.contains("Limit Exceeded")),
        "{refused:?}"
    );

    // The stage throttle of /limited: a burst of BURST across both gateways.
    let answers = spread(ports, 3 * BURST, "/prod/limited", &[]);
    let admitted = answers.iter().filter(|(s, _)| *s == 200).count();
    assert_eq!(admitted, BURST, "{answers:?}");
    assert!(answers
        .iter()
        .filter(|(s, _)| *s != 200)
        .all(|(s, b)| *s == 429 && b.contains("Too Many Requests")));

    // A method without limits makes no call.
    let calls = |e: &Envoy| e.counter("wasmcustom.apigw_edge.ratelimit.calls");
    let before = calls(&envoys[0]);
    assert_eq!(request(ports[0], "GET", "/prod/free", &[], b"").status, 200);
    assert_eq!(calls(&envoys[0]), before);
    assert!(before > 0);

    // The service goes down: DENY answers 500, ALLOW serves and says why in its log.
    drop(service);
    let denied = request(ports[0], "GET", "/prod/limited", &[], b"");
    assert_eq!(denied.status, 500, "{}", denied.text());
    let allowed = request(ports[1], "GET", "/prod/limited", &[], b"");
    assert_eq!(allowed.status, 200, "{}", allowed.text());
    assert!(envoys[0].counter("wasmcustom.apigw_edge.ratelimit.errors") >= 1);
    let deadline = Instant::now() + Duration::from_secs(5);
    while !envoys[1].log().contains("onCheckFailure: ALLOW") {
        assert!(Instant::now() < deadline, "{}", envoys[1].log());
        std::thread::sleep(Duration::from_millis(100));
    }

    // A slow service (answers after 3 s; timeoutMs is 500): a check it does not answer in
    // time is a failed one, and the request does not wait for the late answer.
    let _slow = start_service(redis_port, &limits, rls_port, &base, 3000);
    let started = Instant::now();
    let denied = request(ports[0], "GET", "/prod/limited", &[], b"");
    assert_eq!(denied.status, 500, "{}", denied.text());
    let allowed = request(ports[1], "GET", "/prod/limited", &[], b"");
    assert_eq!(allowed.status, 200, "{}", allowed.text());
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "the checks waited for the slow answers: {:?}",
        started.elapsed()
    );
}
