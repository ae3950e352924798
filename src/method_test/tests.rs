use std::cell::Cell;

use serde_json::{json, Value};

use super::*;
use crate::config::{parse_deployment, FilterConfig};
use crate::shared::memory::Cells;

const FN: &str = "arn:aws:apigateway:us-east-1:lambda:path/2015-03-31/functions/arn:aws:lambda:us-east-1:123456789012:function:";
const NOW: u64 = 1_796_204_400_000;

fn gateway(deployment: Value) -> Gateway {
    let mut d = json!({"openapi": "api.json", "stage": "prod", "lambda": {"endpoint": "http://127.0.0.1:9000"}});
    for (k, v) in deployment.as_object().unwrap() {
        d[k] = v.clone();
    }
    let proxy = json!({"x-amazon-apigateway-integration": {"type": "aws_proxy", "httpMethod": "POST", "uri": format!("{FN}pets/invocations")}});
    let cfg = FilterConfig {
        deployment: parse_deployment(d).unwrap(),
        openapi: json!({"swagger": "2.0", "paths": {"/pets/{id}": {"get": proxy, "post": proxy}}}),
        exports: Default::default(),
    };
    Gateway::compile(&cfg).unwrap().gateway
}

/// Answers every call with `answer` (or fails it), 7 ms after it was sent.
struct Canned {
    answer: Result<UpstreamAnswer, String>,
    clock: Cell<u64>,
}

impl Canned {
    fn new(answer: Result<UpstreamAnswer, String>) -> Canned {
        Canned {
            answer,
            clock: Cell::new(NOW),
        }
    }
}

impl Transport for Canned {
    fn url(&self, call: &UpstreamCall) -> String {
        let path = crate::http::header(&call.headers, ":path").unwrap_or_default();
        format!("http://127.0.0.1:9000{path}")
    }
    fn send(&mut self, _call: &UpstreamCall) -> Result<UpstreamAnswer, String> {
        self.clock.set(self.clock.get() + 7);
        self.answer.clone()
    }
    fn now_ms(&self) -> u64 {
        self.clock.get()
    }
}

fn lambda_answer(payload: Value) -> UpstreamAnswer {
    UpstreamAnswer {
        status: Some(200),
        headers: vec![("content-type".into(), "application/json".into())],
        body: payload.to_string().into_bytes(),
        host_reply: None,
    }
}

fn request(method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> TestRequest {
    TestRequest {
        method: method.into(),
        path: path.into(),
        headers: headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        body: body.as_bytes().to_vec(),
    }
}

/// The log's lines without their time stamps.
fn texts(t: &Transcript) -> Vec<String> {
    t.log
        .iter()
        .map(|l| l.split_once(" : ").unwrap().1.to_string())
        .collect()
}

#[test]
fn a_proxy_method_is_reported_like_the_console() {
    let g = gateway(json!({}));
    let mut lambda = Canned::new(Ok(lambda_answer(
        json!({"statusCode": 201, "headers": {"x-pet": "7"}, "body": "{\"ok\":true}"}),
    )));
    let t = run(
        &g,
        request(
            "post",
            "/pets/7?a=1&b=2",
            &[
                ("Content-Type", "application/json"),
                ("Authorization", "secret-token"),
            ],
            "{\"name\":\"rex\"}",
        ),
        &mut lambda,
        &Cells::default(),
        "req-1",
    );
    assert_eq!(t.client_path, "/prod/pets/7?a=1&b=2");
    assert_eq!(t.outcome.reply.status, 201);
    assert_eq!(t.outcome.reply.body, b"{\"ok\":true}");
    assert!(!t.is_gateway_error());
    assert_eq!(t.latency_ms, 7);
    assert_eq!(t.calls.len(), 1);
    let sent = &t.calls[0];
    assert_eq!(sent.kind, CallKind::Integration);
    assert_eq!(sent.latency_ms, 7);
    assert_eq!(
        sent.url,
        "http://127.0.0.1:9000/2015-03-31/functions/pets/invocations"
    );
    let event: Value = serde_json::from_slice(&sent.call.body).unwrap();
    assert_eq!(event["pathParameters"], json!({"id": "7"}));
    assert_eq!(
        event["requestContext"]["identity"]["sourceIp"],
        "test-invoke-source-ip"
    );
    assert_eq!(event["requestContext"]["stage"], "prod");
    let lines = texts(&t);
    let want_start = [
        "Starting execution for request: req-1".to_string(),
        "HTTP Method: POST, Resource Path: /pets/7".into(),
        "Method request path: {id=7}".into(),
        "Method request query string: {a=1, b=2}".into(),
        "Method request headers: {Content-Type=application/json, Authorization=secr****}".into(),
        "Method request body before transformations: {\"name\":\"rex\"}".into(),
        "Endpoint request URI: http://127.0.0.1:9000/2015-03-31/functions/pets/invocations".into(),
    ];
    assert_eq!(lines[..want_start.len()], want_start);
    for want in [
        "Sending request to http://127.0.0.1:9000/2015-03-31/functions/pets/invocations",
        "Received response. Status: 200, Integration latency: 7 ms",
        "Endpoint response headers: {content-type=application/json}",
        "Method response body after transformations: {\"ok\":true}",
        "Successfully completed execution",
    ] {
        assert!(lines.iter().any(|l| l == want), "{want}\n{lines:#?}");
    }
    assert_eq!(lines.last().unwrap(), "Method completed with status: 201");
    assert!(t.log[0].starts_with("Wed Dec 02 09:40:00 UTC 2026 : "));
    assert!(t.filter_log.is_empty());
    assert_eq!(t.access_line, None);
    // With access logging, the line the filter would hand to Envoy.
    let g = gateway(
        json!({"accessLogSettings": {"format": "$context.requestId $context.status $context.resourcePath $context.integrationLatency"}}),
    );
    let t = run(
        &g,
        request("GET", "/pets/7", &[], ""),
        &mut lambda,
        &Cells::default(),
        "req-2",
    );
    assert_eq!(t.access_line.as_deref(), Some("req-2 201 /pets/{id} 7"));
}

#[test]
fn gateway_errors_are_reported_and_flagged() {
    // A method that needs an API key, tested without one: 403 from the gateway, no call.
    let g = gateway(json!({"apiKeyRequired": ["/pets/{id}/GET"]}));
    let mut lambda = Canned::new(Ok(lambda_answer(json!({"statusCode": 200}))));
    let t = run(
        &g,
        request("GET", "/pets/7", &[], ""),
        &mut lambda,
        &Cells::default(),
        "r",
    );
    assert_eq!(t.outcome.reply.status, 403);
    assert!(t.is_gateway_error());
    assert!(t.calls.is_empty());
    let lines = texts(&t);
    assert!(
        lines.iter().any(|l| l == "Method request path: {id=7}"),
        "{lines:#?}"
    );
    assert!(!lines
        .iter()
        .any(|l| l == "Successfully completed execution"));
    assert_eq!(lines.last().unwrap(), "Method completed with status: 403");
    // A path no resource matches: still a transcript, with the gateway's 403.
    let t = run(
        &g,
        request("GET", "/nowhere", &[], ""),
        &mut lambda,
        &Cells::default(),
        "r",
    );
    assert_eq!(t.outcome.reply.status, 403);
    assert!(t.is_gateway_error());
    assert!(!texts(&t)
        .iter()
        .any(|l| l.starts_with("Method request path")));
}

#[test]
fn broken_function_output_and_unreachable_endpoints_fail_as_in_the_filter() {
    let g = gateway(json!({}));
    let table: [(Result<UpstreamAnswer, String>, u16, &str); 2] = [
        (
            Ok(lambda_answer(json!("not a proxy answer"))),
            502,
            "Received response. Status: 200, Integration latency: 7 ms",
        ),
        (
            Err("connection refused".into()),
            502,
            "Execution failed due to a network error: connection refused (Integration latency: 7 ms)",
        ),
    ];
    for (answer, status, line) in table {
        let mut lambda = Canned::new(answer);
        let t = run(
            &g,
            request("GET", "/pets/1", &[], ""),
            &mut lambda,
            &Cells::default(),
            "r",
        );
        assert_eq!(t.outcome.reply.status, status, "{line}");
        assert!(t.is_gateway_error(), "{line}");
        assert!(!t.filter_log.is_empty(), "{line}");
        let lines = texts(&t);
        assert!(lines.iter().any(|l| l == line), "{line}\n{lines:#?}");
        assert!(
            lines.iter().any(|l| l.starts_with("Execution failed: ")),
            "{lines:#?}"
        );
    }
}

#[test]
fn paths_get_the_stage_or_the_base_path() {
    let g = gateway(json!({}));
    assert_eq!(g.client_path("/pets/1"), "/prod/pets/1");
    assert_eq!(g.client_path("pets/1"), "/prod/pets/1");
    let g = gateway(json!({"basePath": "/v1"}));
    assert_eq!(g.client_path("/pets/1?x=1"), "/v1/pets/1?x=1");
    let g = gateway(json!({"basePath": "/"}));
    assert_eq!(g.client_path("/pets/1"), "/pets/1");
}

/// Serves a JWKS besides answering calls.
struct WithKeys {
    inner: Canned,
    jwks: String,
}

impl Transport for WithKeys {
    fn url(&self, call: &UpstreamCall) -> String {
        self.inner.url(call)
    }
    fn send(&mut self, call: &UpstreamCall) -> Result<UpstreamAnswer, String> {
        self.inner.send(call)
    }
    fn now_ms(&self) -> u64 {
        self.inner.now_ms()
    }
    fn fetch(&mut self, url: &str) -> Result<(u16, Vec<u8>), String> {
        assert_eq!(url, "http://127.0.0.1:5000/pool/.well-known/jwks.json");
        Ok((200, self.jwks.clone().into_bytes()))
    }
}

#[test]
fn cognito_methods_are_tested_with_the_pools_keys() {
    use crate::jwt::jwt_keys::{jwks, TestKey};
    let iss = "http://127.0.0.1:5000/pool";
    let pool = json!({"type": "apiKey", "name": "Authorization", "in": "header",
        "x-amazon-apigateway-authtype": "cognito_user_pools",
        "x-amazon-apigateway-authorizer": {"type": "cognito_user_pools",
            "providerARNs": ["arn:aws:cognito-idp:us-east-1:123456789012:userpool/us-east-1_Pool"]}});
    let mut op = json!({"x-amazon-apigateway-integration": {"type": "aws_proxy", "httpMethod": "POST", "uri": format!("{FN}pets/invocations")}});
    op["security"] = json!([{"pool": []}]);
    let d = json!({"openapi": "api.json", "stage": "prod", "lambda": {"endpoint": "http://127.0.0.1:9000"},
        "jwt": {"pools": {"us-east-1_Pool": {"issuer": iss, "jwksUrl": format!("{iss}/.well-known/jwks.json")}}}});
    let g = Gateway::compile(&FilterConfig {
        deployment: parse_deployment(d).unwrap(),
        openapi: json!({"swagger": "2.0", "securityDefinitions": {"pool": pool}, "paths": {"/me": {"get": op}}}), exports: Default::default() })
    .unwrap()
    .gateway;
    let key = TestKey::rsa("k1", 7);
    let token = key.sign(&json!({"sub": "u-1", "iss": iss, "token_use": "id",
        "cognito:username": "alice", "exp": NOW / 1000 + 600}));
    let mut t = WithKeys {
        inner: Canned::new(Ok(lambda_answer(json!({"statusCode": 200, "body": "me"})))),
        jwks: jwks(&[&key]),
    };
    let r = run(
        &g,
        request("GET", "/me", &[("Authorization", &token)], ""),
        &mut t,
        &Cells::default(),
        "r",
    );
    assert_eq!(r.outcome.reply.status, 200, "{:?}", r.filter_log);
    let event: Value = serde_json::from_slice(&r.calls[0].call.body).unwrap();
    assert_eq!(
        event["requestContext"]["authorizer"]["claims"]["cognito:username"],
        "alice"
    );
    assert!(
        r.filter_log[0].starts_with("JWKS of `http://127.0.0.1:5000/pool` fetched"),
        "{:?}",
        r.filter_log
    );
    // Without the keys (the issuer cannot be reached), the token cannot be checked.
    let mut lambda = Canned::new(Ok(lambda_answer(json!({"statusCode": 200}))));
    let r = run(
        &g,
        request("GET", "/me", &[("Authorization", &token)], ""),
        &mut lambda,
        &Cells::default(),
        "r",
    );
    assert!(r.is_gateway_error());
    assert!(r.calls.is_empty());
    assert!(
        r.filter_log[0].contains("cannot fetch"),
        "{:?}",
        r.filter_log
    );
}

#[test]
fn fleet_limits_are_not_spent_by_a_test() {
    let g = gateway(json!({
        "throttle": {"methodSettings": {"/pets/{id}/GET": {"rateLimit": 1, "burstLimit": 1}}},
        "usage": {"rateLimitService": {"address": "127.0.0.1:1"}}
    }));
    let mut lambda = Canned::new(Ok(lambda_answer(json!({"statusCode": 200, "body": "ok"}))));
    for _ in 0..3 {
        let t = run(
            &g,
            request("GET", "/pets/7", &[], ""),
            &mut lambda,
            &Cells::default(),
            "r",
        );
        assert_eq!(t.outcome.reply.status, 200);
        assert_eq!(t.calls.len(), 1, "only the integration is called");
        assert!(texts(&t)
            .iter()
            .any(|l| l.starts_with("Usage plan check not sent to the rate-limit service")));
    }
}
