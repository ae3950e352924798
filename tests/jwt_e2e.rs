//! Cognito user pool and JWT authorizers through real Envoy with two workers: tokens from a
//! Cognito emulator (moto), and an issuer stand-in whose JWKS fetches are counted, rotated,
//! and unreachable at start.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

#[path = "support/jwt_keys.rs"]
mod jwt_keys;
mod support;

use std::process::Command;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use jwt_keys::{jwks, TestKey};
use serde_json::{json, Value};
use support::*;

fn backend() -> InvokeStub {
    InvokeStub::start(|_| {
        StubReply::payload(json!({"statusCode": 200, "body": "backend"}).to_string())
    })
}

fn now_s() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Requests `path` with `token` until the status is `want` (keys arrive asynchronously).
fn until_status(envoy: &Envoy, path: &str, token: &str, want: u16, within: Duration) -> Response {
    let deadline = Instant::now() + within;
    loop {
        let r = envoy.request("GET", path, &[("authorization", token)], b"");
        if r.status == want || Instant::now() > deadline {
            return r;
        }
        thread::sleep(Duration::from_millis(100));
    }
}

/// A pool, a client and a signed-in user on the emulator, through boto3.
fn sign_in(moto: &Moto) -> Value {
    let out = stdout_ok(
        Command::new(repo().join(".venv/bin/python"))
            .arg(repo().join("tests/support/cognito.py"))
            .arg(&moto.url),
    );
    serde_json::from_slice(&out).unwrap()
}

#[test]
fn cognito_user_pool_tokens_from_an_emulator() {
    let moto = Moto::start();
    let user = sign_in(&moto);
    let pool = user["pool"].as_str().unwrap();
    let (id_token, access_token) = (
        user["id_token"].as_str().unwrap(),
        user["access_token"].as_str().unwrap(),
    );
    let stub = backend();
    let guarded = |scopes: Value| {
        let mut op = proxy_op("backend");
        op["security"] = json!([{ "pool": scopes }]);
        op
    };
    let api = json!({
        "swagger": "2.0",
        "securityDefinitions": {
            "pool": {"type": "apiKey", "name": "Authorization", "in": "header",
                "x-amazon-apigateway-authtype": "cognito_user_pools",
                "x-amazon-apigateway-authorizer": {"type": "cognito_user_pools",
                    "providerARNs": [format!("arn:aws:cognito-idp:us-east-1:123456789012:userpool/{pool}")]}}
        },
        "paths": {
            "/me": {"get": guarded(json!([]))},
            "/orders": {"get": guarded(json!(["aws.cognito.signin.user.admin"]))},
            "/admin": {"get": guarded(json!(["orders/write"]))}
        }
    });
    let deployment = format!(
        "stage: dev\nlambda:\n  endpoint: {}\njwt:\n  pools:\n    {pool}:\n      jwksUrl: {}/{pool}/.well-known/jwks.json\n",
        stub.url(),
        moto.url
    );
    let envoy = Envoy::start("jwt-cognito", &deployment, &api, 2);

    let r = until_status(&envoy, "/dev/me", id_token, 200, Duration::from_secs(10));
    assert_eq!(r.status, 200, "{}\n{}", r.text(), envoy.log());
    let event = stub.last("backend").json();
    let claims = &event["requestContext"]["authorizer"]["claims"];
    assert_eq!(claims["cognito:username"], "alice");
    assert_eq!(claims["token_use"], "id");
    let mut groups: Vec<&str> = claims["cognito:groups"]
        .as_str()
        .unwrap()
        .split(',')
        .collect();
    groups.sort_unstable();
    assert_eq!(
        groups,
        ["admins", "ops"],
        "a list becomes comma-joined text"
    );
    assert_eq!(claims["aud"], user["client"]);
    // `exp` as a Java date: `Tue Dec 01 21:03:28 UTC 2026`.
    let exp: Vec<&str> = claims["exp"].as_str().unwrap().split(' ').collect();
    assert_eq!(exp.len(), 6, "{claims}");
    assert_eq!(exp[4], "UTC");
    assert!(exp[5].parse::<u32>().is_ok_and(|y| y >= 2026));
    assert!(claims["auth_time"].as_str().unwrap().parse::<u64>().is_ok());

    // `Bearer ` in front is accepted too; the access token with the pool's scope works on
    // a method that wants it, and nowhere else.
    let bearer = format!("Bearer {access_token}");
    let cases: [(&str, &str, u16, &str); 7] = [
        ("/dev/orders", &bearer, 200, "backend"),
        (
            "/dev/orders",
            id_token,
            401,
            r#"{"message":"Unauthorized"}"#,
        ),
        (
            "/dev/me",
            access_token,
            401,
            r#"{"message":"Unauthorized"}"#,
        ),
        (
            "/dev/admin",
            access_token,
            401,
            r#"{"message":"Unauthorized"}"#,
        ),
        ("/dev/me", "", 401, r#"{"message":"Unauthorized"}"#),
        (
            "/dev/me",
            "eyJhbGciOiJub25lIn0.e30.",
            401,
            r#"{"message":"Unauthorized"}"#,
        ),
        (
            "/dev/me",
            &id_token.replace('.', ".x"),
            401,
            r#"{"message":"Unauthorized"}"#,
        ),
    ];
    for (path, token, status, body) in cases {
        let headers: Vec<(&str, &str)> = if token.is_empty() {
            vec![]
        } else {
            vec![("authorization", token)]
        };
        let r = envoy.request("GET", path, &headers, b"");
        assert_eq!(r.status, status, "{path} {token:.24}: {}", r.text());
        assert_eq!(r.text(), body, "{path} {token:.24}");
    }
    // A tampered payload (another user, same signature) is refused.
    let parts: Vec<&str> = id_token.split('.').collect();
    let forged = {
        use base64::Engine;
        let b = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let mut c: Value = serde_json::from_slice(&b.decode(parts[1]).unwrap()).unwrap();
        c["cognito:username"] = json!("mallory");
        format!("{}.{}.{}", parts[0], b.encode(c.to_string()), parts[2])
    };
    let r = envoy.request("GET", "/dev/me", &[("authorization", &forged)], b"");
    assert_eq!(r.status, 401);
    assert!(envoy.counter("wasmcustom.apigw_edge.jwt.refused") >= 7);
    assert!(envoy.counter("wasmcustom.apigw_edge.jwt.jwks_fetch") >= 1);
}

/// An issuer stand-in serving a JWKS that a test can change.
struct Issuer {
    stub: InvokeStub,
    doc: Arc<Mutex<String>>,
}

impl Issuer {
    fn start(port: Option<u16>, keys: &[&TestKey]) -> Issuer {
        let doc = Arc::new(Mutex::new(jwks(keys)));
        let served = doc.clone();
        let script = move |_: &Recorded| {
            StubReply::payload(served.lock().unwrap().clone())
                .with_header("content-type", "application/json")
        };
        let stub = match port {
            Some(p) => InvokeStub::start_at(p, script),
            None => InvokeStub::start(script),
        };
        Issuer { stub, doc }
    }

    fn serve(&self, keys: &[&TestKey]) {
        *self.doc.lock().unwrap() = jwks(keys);
    }

    fn fetches(&self) -> usize {
        self.stub
            .requests()
            .iter()
            .filter(|r| r.method == "GET" && r.path == "/keys")
            .count()
    }
}

const ISSUER: &str = "https://login.example.com/tenant";

fn reports_api() -> Value {
    json!({"swagger": "2.0", "paths": {"/reports": {"get": proxy_op("backend")}}})
}

/// A deployment whose generic JWT authorizer guards `GET /reports`.
fn jwt_deployment(backend: &InvokeStub, jwks_port: u16, refresh_s: u64) -> String {
    format!(
        "stage: dev
lambda:
  endpoint: {}
jwt:
  refreshSeconds: {refresh_s}
  minRefreshSeconds: 1
  authorizers:
    corp:
      issuer: {ISSUER}
      jwksUrl: http://127.0.0.1:{jwks_port}/keys
      audiences: [api://reports]
      methods:
        /reports/GET: [reports.read]
",
        backend.url()
    )
}

fn token(key: &TestKey) -> String {
    key.sign(
        &json!({"iss": ISSUER, "sub": "svc-1", "aud": "api://reports",
        "scope": "openid reports.read", "exp": now_s() + 3600}),
    )
}

#[test]
fn jwks_is_fetched_once_per_refresh_by_all_workers_together() {
    let k1 = TestKey::rsa("k1", 21);
    let issuer = Issuer::start(None, &[&k1]);
    let stub = backend();
    let envoy = Envoy::start(
        "jwt-refresh",
        &jwt_deployment(&stub, issuer.stub.port, 2),
        &reports_api(),
        2,
    );
    let t = token(&k1);
    let r = until_status(&envoy, "/dev/reports", &t, 200, Duration::from_secs(10));
    assert_eq!(r.status, 200, "{}\n{}", r.text(), envoy.log());
    let first = issuer.fetches();
    let started = Instant::now();
    while started.elapsed() < Duration::from_millis(8500) {
        let r = envoy.request("GET", "/dev/reports", &[("authorization", &t)], b"");
        assert_eq!(r.status, 200, "{}", r.text());
        thread::sleep(Duration::from_millis(40));
    }
    let during = issuer.fetches() - first;
    // One fetch per 2 s refresh across both workers: about four in 8.5 s. Each worker
    // fetching for itself would make it eight or more.
    assert!((3..=6).contains(&during), "{during} fetches in 8.5 s");
    assert_eq!(
        envoy.counter("wasmcustom.apigw_edge.jwt.jwks_fetch") as usize,
        issuer.fetches()
    );
}

#[test]
fn a_rotated_key_is_fetched_when_a_token_names_it_and_no_sooner_than_allowed() {
    let k1 = TestKey::rsa("k1", 31);
    let k2 = TestKey::ec("k2", 32);
    let issuer = Issuer::start(None, &[&k1]);
    let stub = backend();
    let envoy = Envoy::start(
        "jwt-rotate",
        &jwt_deployment(&stub, issuer.stub.port, 3600),
        &reports_api(),
        2,
    );
    let r = until_status(
        &envoy,
        "/dev/reports",
        &token(&k1),
        200,
        Duration::from_secs(10),
    );
    assert_eq!(r.status, 200, "{}\n{}", r.text(), envoy.log());
    assert_eq!(issuer.fetches(), 1);
    issuer.serve(&[&k1, &k2]);
    let rotated = token(&k2);
    let r = envoy.request("GET", "/dev/reports", &[("authorization", &rotated)], b"");
    assert_eq!(r.status, 401, "unknown until fetched");
    let r = until_status(
        &envoy,
        "/dev/reports",
        &rotated,
        200,
        Duration::from_secs(5),
    );
    assert_eq!(r.status, 200, "{}\n{}", r.text(), envoy.log());
    let after_rotation = issuer.fetches();
    assert!(after_rotation <= 3, "{after_rotation}");
    // Tokens naming a key nobody has ask for refreshes at most once a second.
    let stray = token(&TestKey::ec("k-unknown", 33));
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(3) {
        let r = envoy.request("GET", "/dev/reports", &[("authorization", &stray)], b"");
        assert_eq!(r.status, 401);
        thread::sleep(Duration::from_millis(20));
    }
    let extra = issuer.fetches() - after_rotation;
    assert!(
        (1..=4).contains(&extra),
        "{extra} fetches for 3 s of unknown kids"
    );
    // Both keys still verify.
    assert_eq!(
        envoy
            .request(
                "GET",
                "/dev/reports",
                &[("authorization", &token(&k1))],
                b""
            )
            .status,
        200
    );
}

#[test]
fn an_issuer_down_at_start_answers_500_until_it_is_up() {
    let k1 = TestKey::ec("k1", 41);
    let port = free_port();
    let stub = backend();
    let envoy = Envoy::start(
        "jwt-down",
        &jwt_deployment(&stub, port, 3600),
        &reports_api(),
        2,
    );
    let t = token(&k1);
    thread::sleep(Duration::from_millis(700));
    let r = envoy.request("GET", "/dev/reports", &[("authorization", &t)], b"");
    assert_eq!(r.status, 500, "never a pass without keys: {}", r.text());
    assert_eq!(r.text(), r#"{"message":null}"#);
    assert_eq!(
        r.header("x-amzn-ErrorType"),
        Some("AuthorizerFailureException")
    );
    assert!(stub.requests().is_empty());
    let log = envoy.log();
    assert!(log.contains("have not been fetched yet"), "{log}");
    assert!(
        log.contains("has no keys yet: its methods answer 500"),
        "{log}"
    );
    // The issuer comes up: the next attempt (backing off from 1 s) gets the keys.
    let issuer = Issuer::start(Some(port), &[&k1]);
    let r = until_status(&envoy, "/dev/reports", &t, 200, Duration::from_secs(20));
    assert_eq!(r.status, 200, "{}\n{}", r.text(), envoy.log());
    assert!(issuer.fetches() >= 1);
    assert!(envoy.counter("wasmcustom.apigw_edge.jwt.jwks_fetch_errors") >= 1);
}
