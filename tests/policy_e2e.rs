//! Resource policies through real Envoy with two workers: source-address conditions on the
//! TCP peer, and on `X-Forwarded-For` behind a configured number of trusted proxies.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support;

use serde_json::{json, Value};
use support::*;

fn backend() -> InvokeStub {
    InvokeStub::start(|_| {
        StubReply::payload(json!({"statusCode": 200, "body": "backend"}).to_string())
    })
}

/// Everyone may call, except the two ranges; `/private` only from loopback.
fn api() -> Value {
    json!({
        "swagger": "2.0",
        "x-amazon-apigateway-policy": {
            "Version": "2012-10-17",
            "Statement": [
                {"Effect": "Allow", "Principal": "*", "Action": "execute-api:Invoke",
                 "Resource": "execute-api:/dev/GET/*"},
                {"Effect": "Deny", "Principal": "*", "Action": "execute-api:Invoke",
                 "Resource": "execute-api:/*",
                 "Condition": {"IpAddress": {"aws:SourceIp": ["192.0.2.0/24", "2001:db8::/32"]}}},
                {"Effect": "Deny", "Principal": "*", "Action": "execute-api:Invoke",
                 "Resource": "execute-api:/dev/GET/private",
                 "Condition": {"NotIpAddress": {"aws:SourceIp": "127.0.0.0/8"}}}
            ]
        },
        "paths": {
            "/public": {"get": proxy_op("backend"), "post": proxy_op("backend")},
            "/private": {"get": proxy_op("backend")}
        }
    })
}

const ARN: &str = "arn:aws:execute-api:us-east-1:123456789012:polapi/dev";

#[test]
fn policy_on_the_tcp_peer() {
    let stub = backend();
    let deployment = format!(
        "stage: dev\napi:\n  id: polapi\nlambda:\n  endpoint: {}\n",
        stub.url()
    );
    let envoy = Envoy::start("policy-peer", &deployment, &api(), 2);
    let r = envoy.get("/dev/public");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(envoy.get("/dev/private").status, 200, "loopback may call");
    // Without trusted proxies, a client's X-Forwarded-For is not its address.
    let r = envoy.request(
        "GET",
        "/dev/public",
        &[("x-forwarded-for", "192.0.2.9")],
        b"",
    );
    assert_eq!(r.status, 200, "{}", r.text());
    // POST is allowed by no statement: an anonymous caller needs an explicit allow.
    let r = envoy.request("POST", "/dev/public", &[], b"{}");
    assert_eq!(r.status, 403);
    assert_eq!(
        r.text(),
        format!("{{\"Message\":\"User: anonymous is not authorized to perform: execute-api:Invoke on resource: {ARN}/POST/public\"}}")
    );
    assert_eq!(r.header("x-amzn-ErrorType"), Some("AccessDeniedException"));
    assert_eq!(
        stub.requests().len(),
        3,
        "refused requests never reach Lambda"
    );
}

#[test]
fn policy_on_forwarded_addresses_behind_trusted_proxies() {
    let stub = backend();
    let deployment = format!(
        "stage: dev\napi:\n  id: polapi\nlambda:\n  endpoint: {}\nenvoy:\n  xffNumTrustedHops: 1\n",
        stub.url()
    );
    let envoy = Envoy::start("policy-xff", &deployment, &api(), 2);
    let cases: [(&str, &str, u16); 5] = [
        ("/dev/public", "198.51.100.7", 200),
        ("/dev/public", "192.0.2.9", 403),
        ("/dev/public", "2001:db8::5", 403),
        ("/dev/private", "198.51.100.7", 403),
        ("/dev/public", "192.0.2.9, 198.51.100.7", 200),
    ];
    for (path, xff, status) in cases {
        let r = envoy.request("GET", path, &[("x-forwarded-for", xff)], b"");
        assert_eq!(r.status, status, "{path} via {xff}: {}", r.text());
        if status == 403 {
            assert!(
                r.text().ends_with(" with an explicit deny\"}"),
                "{}",
                r.text()
            );
        }
    }
    // The event's caller is the forwarded address; X-Forwarded-For is passed on as the
    // trusted proxy sent it.
    let event = stub.last("backend").json();
    assert_eq!(
        event["requestContext"]["identity"]["sourceIp"],
        "198.51.100.7"
    );
    assert_eq!(
        event["headers"]["X-Forwarded-For"],
        "192.0.2.9, 198.51.100.7"
    );
}
