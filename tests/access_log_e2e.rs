//! Access logs (`accessLogSettings`) through real Envoy: the filter builds each request's
//! line from the stage's format and Envoy's file access logger writes it, one line per
//! request the gateway answered (successes, gateway errors, cache hits, authorizer results)
//! and none for requests Envoy refused before the gateway saw them. Execution logs
//! (`dataTraceEnabled`) in Envoy's log.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support;

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::*;

/// The console's JSON preset, then the access-log-only variables.
const FORMAT: &str = r#"{ "requestId":"$context.requestId", "extendedRequestId":"$context.extendedRequestId","ip": "$context.identity.sourceIp", "caller":"$context.identity.caller", "user":"$context.identity.user", "requestTime":"$context.requestTime", "httpMethod":"$context.httpMethod", "resourcePath":"$context.resourcePath", "status":"$context.status", "protocol":"$context.protocol", "responseLength":"$context.responseLength", "integrationLatency":"$context.integrationLatency", "integrationStatus":"$context.integration.integrationStatus", "responseLatency":"$context.responseLatency", "error":"$context.error.responseType", "principal":"$context.authorizer.principalId", "plan":"$context.authorizer.plan", "authLatency":"$context.authorizer.latency" }"#;

fn api() -> Value {
    let mut guarded = proxy_op("pets");
    guarded["security"] = json!([{"tok": []}]);
    json!({
        "swagger": "2.0",
        "securityDefinitions": {"tok": {"type": "apiKey", "name": "Authorization", "in": "header",
            "x-amazon-apigateway-authtype": "custom",
            "x-amazon-apigateway-authorizer": {"type": "token", "authorizerUri": lambda_uri("auth")}}},
        "paths": {
            "/pets/{id}": {"get": proxy_op("pets")},
            "/cached": {"get": proxy_op("pets")},
            "/guarded": {"get": guarded}
        }
    })
}

#[test]
fn one_access_log_line_per_answered_request() {
    let stub = InvokeStub::start(|r| match r.function().as_str() {
        "auth" => StubReply::payload(
            json!({"principalId": "user-42",
                   "policyDocument": {"Version": "2012-10-17", "Statement": [
                       {"Action": "execute-api:Invoke", "Effect": "Allow", "Resource": "*"}]},
                   "context": {"plan": "gold"}})
            .to_string(),
        ),
        _ if r.json()["pathParameters"]["id"] == "boom" => {
            StubReply::payload(json!({"errorMessage": "boom", "errorType": "Error"}).to_string())
                .with_header("X-Amz-Function-Error", "Unhandled")
        }
        _ => StubReply::payload(json!({"statusCode": 200, "body": "hello"}).to_string()),
    });
    let dir = repo()
        .join("target/e2e")
        .join(format!("access-log-{}", std::process::id()));
    let log_path = dir.join("access.log");
    let deployment = format!(
        "stage: prod\nlambda:\n  endpoint: {}\ncache:\n  capacityMiB: 1\n  methodSettings:\n    \"*/*\": {{cachingEnabled: false}}\n    /cached/GET: {{cachingEnabled: true}}\naccessLogSettings:\n  format: '{FORMAT}'\n  path: {}\n",
        stub.url(),
        log_path.display()
    );
    let envoy = Envoy::start("access-log", &deployment, &api(), 2);
    assert_eq!(envoy.dir, dir);

    let ok = envoy.get("/prod/pets/1");
    assert_eq!(ok.status, 200);
    let missing = envoy.get("/prod/nowhere");
    assert_eq!(missing.status, 403);
    let failed = envoy.get("/prod/pets/boom");
    assert_eq!(failed.status, 502);
    // One connection, one worker: each worker has its own stage cache.
    let mut conn = Conn::open(envoy.port);
    let miss = conn.get("/prod/cached");
    let hit = conn.get("/prod/cached");
    assert_eq!((miss.status, hit.status), (200, 200));
    let guarded = envoy.request("GET", "/prod/guarded", &[("Authorization", "allow")], b"");
    assert_eq!(guarded.status, 200, "{}", guarded.text());
    // Envoy refuses a malformed request itself: the gateway never sees it, no line.
    let raw = exchange(
        envoy.port,
        b"GET /prod/pets/1 HTTP/1.1\r\nHost: a\r\nno colon here\r\n\r\n",
        false,
        Duration::from_secs(5),
    )
    .unwrap();
    assert_eq!(raw.status, 400);

    let lines = json_lines(&log_path, 6);
    assert_eq!(lines.len(), 6, "{lines:#?}");
    let by_id = |r: &Response| -> Value {
        let id = r.header("x-amzn-requestid").unwrap();
        lines
            .iter()
            .find(|l| l["requestId"] == id)
            .unwrap_or_else(|| panic!("no line for {id}: {lines:#?}"))
            .clone()
    };
    let l = by_id(&ok);
    assert_eq!(l["extendedRequestId"], ok.header("x-amz-apigw-id").unwrap());
    assert_eq!(l["ip"], "127.0.0.1");
    assert_eq!((&l["caller"], &l["user"]), (&json!("-"), &json!("-")));
    assert_eq!(l["httpMethod"], "GET");
    assert_eq!(l["resourcePath"], "/pets/{id}");
    assert_eq!(l["status"], "200");
    assert_eq!(l["protocol"], "HTTP/1.1");
    assert_eq!(l["responseLength"], "5");
    assert_eq!(l["integrationStatus"], "200");
    assert_eq!(l["error"], "-");
    for key in ["integrationLatency", "responseLatency"] {
        let ms: u64 = l[key].as_str().unwrap().parse().unwrap();
        assert!(ms < 10_000, "{key}: {l}");
    }
    let time = l["requestTime"].as_str().unwrap();
    assert!(time.ends_with(" +0000") && time.len() == 26, "{time}");

    let l = by_id(&missing);
    assert_eq!(l["status"], "403");
    assert_eq!(l["error"], "MISSING_AUTHENTICATION_TOKEN");
    assert_eq!(
        (&l["resourcePath"], &l["integrationLatency"]),
        (&json!("-"), &json!("-"))
    );

    let l = by_id(&failed);
    assert_eq!(l["status"], "502");
    assert_eq!(l["integrationStatus"], "200");
    assert_ne!(l["error"], "-");

    let (m, h) = (by_id(&miss), by_id(&hit));
    assert_eq!(m["integrationStatus"], "200");
    assert_eq!(h["status"], "200");
    assert_eq!(
        h["integrationLatency"], "-",
        "a cache hit calls no integration"
    );

    let l = by_id(&guarded);
    assert_eq!(l["principal"], "user-42");
    assert_eq!(l["plan"], "gold");
    assert!(
        l["authLatency"].as_str().unwrap().parse::<u64>().is_ok(),
        "{l}"
    );
    // Execution logs are off by default.
    assert!(
        !envoy.log().contains("Method request path"),
        "{}",
        envoy.log()
    );
}

#[test]
fn data_trace_logs_each_request_in_full() {
    let stub = InvokeStub::start(|_| {
        StubReply::payload(json!({"statusCode": 201, "body": "made"}).to_string())
    });
    let deployment = format!(
        "stage: prod\ndataTraceEnabled: true\nlambda:\n  endpoint: {}\n",
        stub.url()
    );
    let envoy = Envoy::start("data-trace", &deployment, &api(), 1);
    let r = envoy.request(
        "GET",
        "/prod/pets/7?a=1",
        &[("x-api-key", "secretkey123"), ("Accept", "*/*")],
        b"",
    );
    assert_eq!(r.status, 201, "{}", r.text());
    let id = r.header("x-amzn-requestid").unwrap().to_string();
    let deadline = Instant::now() + Duration::from_secs(5);
    let want = [
        format!("{id} Starting execution for request: {id}"),
        format!("{id} Method request path: {{id=7}}"),
        format!("{id} Method request query string: {{a=1}}"),
        format!("{id} Endpoint request URI: 127.0.0.1:"),
        format!("{id} Received response. Status: 200, Integration latency: "),
        format!("{id} Method response body after transformations: made"),
        format!("{id} Method completed with status: 201"),
    ];
    loop {
        let log = envoy.log();
        let missing: Vec<&String> = want.iter().filter(|w| !log.contains(w.as_str())).collect();
        if missing.is_empty() {
            assert!(log.contains("x-api-key=secr****"), "{log}");
            assert!(!log.contains("secretkey123"), "{log}");
            break;
        }
        assert!(Instant::now() < deadline, "missing {missing:?} in\n{log}");
        std::thread::sleep(Duration::from_millis(100));
    }
}
