//! A bounded soak through real Envoy with two workers: mixed traffic from several clients
//! (proxy and mapped methods, cache hits, hostile header bytes, large bodies) while the
//! Invoke stand-in injects faults (timeouts, throttling, crashes, malformed and refused
//! output). Every request must be answered with an expected status, and Envoy's resident
//! memory must stop growing once warm. `APIGW_EDGE_SOAK_SECONDS` sets the length (default
//! 90).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::json;
use support::*;

/// Growth of Envoy's resident memory allowed after warm-up, in MiB.
const RSS_GROWTH_LIMIT_MIB: u64 = 24;

fn api() -> serde_json::Value {
    let proxy = json!({"x-amazon-apigateway-integration": {
        "type": "aws_proxy", "httpMethod": "POST", "uri": lambda_uri("proxyfn"), "timeoutInMillis": 300}});
    json!({"swagger": "2.0", "paths": {
        "/{proxy+}": {"x-amazon-apigateway-any-method": proxy},
        "/cached": {"get": {
            "x-amazon-apigateway-integration": {"type": "aws_proxy", "httpMethod": "POST", "uri": lambda_uri("cachedfn")}}},
        "/orders/{id}": {"post": {
            "responses": {"200": {"description": "ok"}},
            "x-amazon-apigateway-integration": {
                "type": "aws", "httpMethod": "POST", "uri": lambda_uri("mapped"), "timeoutInMillis": 300,
                "requestTemplates": {"application/json": "{\"order\": $input.json('$'), \"id\": \"$input.params('id')\"}"},
                "responses": {"default": {"statusCode": "200", "responseTemplates": {"application/json": "$input.json('$')"}}}
            }
        }}
    }})
}

/// Faults by a counter, so every kind recurs throughout the run.
fn faulty_stub() -> InvokeStub {
    let n = Arc::new(AtomicU64::new(0));
    InvokeStub::start(move |r| {
        let i = n.fetch_add(1, Ordering::Relaxed);
        let ok = || StubReply::payload(json!({"statusCode": 200, "body": "ok"}).to_string());
        if r.function() == "mapped" {
            return StubReply::payload(r#"{"done": true}"#);
        }
        match i % 20 {
            0 => ok().delay(Duration::from_millis(600)),
            1 => StubReply::emulator_error("boom"),
            2 => StubReply::payload("not json at all"),
            3 => StubReply::payload(r#"{"errorMessage": "crashed"}"#)
                .with_header("X-Amz-Function-Error", "Unhandled"),
            4 => StubReply::payload(r#"{"statusCode": 101}"#),
            5 => StubReply::payload(r#"{"message":"Rate exceeded"}"#)
                .status(429)
                .with_header("x-amzn-ErrorType", "TooManyRequestsException"),
            6 => ok().with_raw_header(b"x-amz-log-result: \xc0\xaf"),
            _ => ok(),
        }
    })
}

#[test]
fn mixed_traffic_with_faults_is_always_answered_and_memory_settles() {
    let seconds: u64 = std::env::var("APIGW_EDGE_SOAK_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(90);
    let stub = faulty_stub();
    let envoy = Envoy::start(
        "soak",
        &format!(
            "stage: dev\nlambda:\n  endpoint: {}\ncache:\n  capacityMiB: 4\n  cacheTtlInSeconds: 1\n",
            stub.url()
        ),
        &api(),
        2,
    );
    let port = envoy.port;
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let counts = Arc::new(Mutex::new(std::collections::BTreeMap::<u16, u64>::new()));
    let failures = Arc::new(Mutex::new(Vec::<String>::new()));
    let clients: Vec<_> = (0..6)
        .map(|c| {
            let counts = counts.clone();
            let failures = failures.clone();
            thread::spawn(move || {
                let mut i: u64 = 0;
                let big = format!("{{\"blob\":\"{}\"}}", "z".repeat(256 << 10));
                while Instant::now() < deadline {
                    i += 1;
                    let (what, result) = match (c + i) % 6 {
                        0 => ("cached", try_request(port, "GET", &format!("/dev/cached?k={}", i % 50), &[], b"", Duration::from_secs(10))),
                        1 => ("mapped", try_request(port, "POST", &format!("/dev/orders/{i}"), &[("Content-Type", "application/json")], br#"{"a":[1,2,{"b":"c"}]}"#, Duration::from_secs(10))),
                        2 => ("big", try_request(port, "POST", "/dev/orders/big", &[("Content-Type", "application/json")], big.as_bytes(), Duration::from_secs(10))),
                        3 => {
                            let raw = format!("GET /dev/bytes/{i} HTTP/1.1\r\nHost: a\r\nConnection: close\r\nX-Bin: ").into_bytes();
                            let mut raw = raw;
                            raw.extend_from_slice(b"\xc0\xaf\xff\r\n\r\n");
                            ("bytes", exchange(port, &raw, false, Duration::from_secs(10)))
                        }
                        4 => ("missing", try_request(port, "GET", "/other-stage/x", &[], b"", Duration::from_secs(10))),
                        _ => ("proxy", try_request(port, "GET", &format!("/dev/items/{i}?q={i}"), &[], b"", Duration::from_secs(10))),
                    };
                    match result {
                        Ok(r) if [200, 403, 429, 500, 502, 504].contains(&r.status) => {
                            *counts.lock().unwrap().entry(r.status).or_default() += 1;
                        }
                        Ok(r) => failures.lock().unwrap().push(format!("{what}: unexpected {} {}", r.status, r.text())),
                        Err(e) => failures.lock().unwrap().push(format!("{what}: no answer: {e}")),
                    }
                }
            })
        })
        .collect();
    // RSS once warm (after a fifth of the run), then at the end.
    thread::sleep(Duration::from_secs((seconds / 5).max(2)));
    let warm = rss_kib(envoy.pid()) >> 10;
    let mut samples = vec![warm];
    while Instant::now() < deadline {
        thread::sleep(
            Duration::from_secs(5).min(deadline.saturating_duration_since(Instant::now())),
        );
        samples.push(rss_kib(envoy.pid()) >> 10);
    }
    for c in clients {
        c.join().unwrap();
    }
    let end = rss_kib(envoy.pid()) >> 10;
    let counts = counts.lock().unwrap().clone();
    let total: u64 = counts.values().sum();
    let summary = format!(
        "soak {seconds}s, two workers, faults injected: {total} requests answered, by status {counts:?}; Envoy RSS MiB warm {warm}, end {end}, samples {samples:?}\n"
    );
    eprint!("{summary}");
    // Kept for the test command's closing lines.
    let name = if native() {
        "soak-summary-native.txt"
    } else {
        "soak-summary.txt"
    };
    let _ = std::fs::write(repo().join("target/e2e").join(name), &summary);
    let failures = failures.lock().unwrap();
    assert!(
        failures.is_empty(),
        "{} failures, first: {:?}",
        failures.len(),
        failures.iter().take(5).collect::<Vec<_>>()
    );
    for status in [200, 403, 500, 502, 504] {
        assert!(
            counts.get(&status).copied().unwrap_or(0) > 0,
            "no {status} seen: {counts:?}"
        );
    }
    assert!(
        end <= warm + RSS_GROWTH_LIMIT_MIB,
        "RSS grew from {warm} to {end} MiB: {samples:?}"
    );
    assert!(!envoy.log().contains("panicked"), "{}", envoy.log());
}
