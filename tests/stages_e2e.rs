//! Several stages and a canary in one gateway, through real Envoy with two workers: each
//! stage serves its own export and stage variables (execute-api paths and a custom-domain
//! base path mapping), canaries at 100 % and 0 % take all and none of their stage's
//! requests (the event's deployment, the access log's `isCanaryRequest` and the per-stage
//! stats say which served), and stage caches and throttles never leak between stages.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support;

use std::time::Duration;

use serde_json::{json, Value};
use support::*;

fn export(function: &str) -> Value {
    let mut by_id = proxy_op(function);
    by_id["x-amazon-apigateway-integration"]["cacheKeyParameters"] =
        json!(["method.request.path.id"]);
    json!({"swagger": "2.0", "paths": {
        "/pets": {"get": proxy_op(function)},
        "/pets/{id}": {"get": by_id},
        "/limited": {"get": proxy_op(function)},
    }})
}

const DEPLOYMENT: &str = r#"
stageVariables: {color: blue}
cache:
  capacityMiB: 1
  methodSettings:
    "*/*": {cachingEnabled: false}
    /pets/GET: {cachingEnabled: true, cacheTtlInSeconds: 300}
    /pets/{id}/GET: {cachingEnabled: true, cacheTtlInSeconds: 300}
throttle:
  methodSettings:
    /limited/GET: {rateLimit: 0.001, burstLimit: 1}
accessLogSettings:
  format: '{"id":"$context.requestId","stage":"$context.stage","canary":"$context.isCanaryRequest","deployment":"$context.deploymentId"}'
  path: ACCESS_LOG
stages:
  - name: dev
    stageVariables: {color: green}
  - name: prod
    openapi: old.json
    canarySettings:
      percentTraffic: 100
      openapi: next.json
      stageVariableOverrides: {color: red}
  - name: beta
    canarySettings: {percentTraffic: 0, stageVariableOverrides: {color: red}}
  - name: v1
    basePath: /v1
    domainName: api.example.com
    accessLogSettings:
      format: '{"id":"$context.requestId","stage":"$context.stage","canary":"$context.isCanaryRequest"}'
      path: V1_LOG
"#;

#[test]
fn stages_and_canaries_in_one_gateway() {
    let stub = InvokeStub::start(|r| {
        let e = r.json();
        let body = json!({
            "function": r.function(),
            "color": e["stageVariables"]["color"],
            "stage": e["requestContext"]["stage"],
            "deploymentId": e["requestContext"]["deploymentId"],
        });
        StubReply::payload(json!({"statusCode": 200, "body": body.to_string()}).to_string())
    });
    let dir = temp_dir("stages");
    std::fs::write(dir.join("old.json"), export("yesterday").to_string()).unwrap();
    std::fs::write(dir.join("next.json"), export("tomorrow").to_string()).unwrap();
    let log_path = dir.join("access.log");
    let v1_log = dir.join("v1-access.log");
    let deployment = format!(
        "lambda:\n  endpoint: {}\n{}",
        stub.url(),
        DEPLOYMENT
            .replace("ACCESS_LOG", &log_path.to_string_lossy())
            .replace("V1_LOG", &v1_log.to_string_lossy())
    );
    let (config, port, admin) = render(&dir, &deployment, &export("today"));
    let envoy = Envoy::start_config(dir, config, port, admin, 2);

    let served = |r: &Response| -> Value {
        assert_eq!(r.status, 200, "{}", r.text());
        r.json()
    };
    // Each stage its export and variables; the canary at 100 % takes every prod request.
    let dev = served(&envoy.get("/dev/pets"));
    assert_eq!(
        (&dev["function"], &dev["color"], &dev["stage"]),
        (&json!("today"), &json!("green"), &json!("dev"))
    );
    let prod = envoy.get("/prod/pets");
    let prod_body = served(&prod);
    assert_eq!(
        (
            &prod_body["function"],
            &prod_body["color"],
            &prod_body["stage"]
        ),
        (&json!("tomorrow"), &json!("red"), &json!("prod"))
    );
    // At 0 % the canary takes nothing.
    let beta = envoy.get("/beta/pets");
    let beta_body = served(&beta);
    assert_eq!(
        (&beta_body["function"], &beta_body["color"]),
        (&json!("today"), &json!("blue"))
    );
    assert_ne!(prod_body["deploymentId"], beta_body["deploymentId"]);
    // The custom domain's mapping, and only on that domain.
    let on_host = |host: &str, path: &str| {
        let raw = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
        exchange(envoy.port, raw.as_bytes(), false, Duration::from_secs(20)).unwrap()
    };
    let v1 = on_host("api.example.com", "/v1/pets");
    assert_eq!(served(&v1)["stage"], "v1");
    let elsewhere = on_host("other.example.com", "/v1/pets");
    assert_eq!(elsewhere.status, 403, "{}", elsewhere.text());
    let unknown = envoy.get("/qa/pets");
    assert_eq!(unknown.status, 403, "{}", unknown.text());

    // Caches stay apart: dev's entry does not answer beta (one connection: one worker).
    let mut conn = Conn::open(envoy.port);
    let calls = |f: &str| stub.requests().iter().filter(|r| r.function() == f).count();
    let before = calls("today");
    // A key nothing asked for before: each stage calls once, then answers from its own
    // entry (dev's entry never answers beta).
    for path in [
        "/dev/pets/c1",
        "/dev/pets/c1",
        "/beta/pets/c1",
        "/beta/pets/c1",
    ] {
        assert_eq!(conn.get(path).status, 200, "{path}");
    }
    let after = calls("today");
    assert_eq!(after - before, 2, "one call per stage: {before} -> {after}");

    // Throttles stay apart: dev's burst of one is spent, beta's is not.
    assert_eq!(envoy.get("/dev/limited").status, 200);
    assert_eq!(envoy.get("/dev/limited").status, 429);
    assert_eq!(envoy.get("/beta/limited").status, 200);

    // The access log says which side of a canary served; stats count each variant.
    let lines = json_lines(&log_path, 6);
    let line = |r: &Response| -> Value {
        let id = r.header("x-amzn-requestid").unwrap();
        lines
            .iter()
            .find(|l| l["id"] == id)
            .unwrap_or_else(|| panic!("no line for {id}: {lines:#?}"))
            .clone()
    };
    assert_eq!(line(&prod)["canary"], "true");
    assert_eq!(line(&prod)["stage"], "prod");
    assert_eq!(line(&beta)["canary"], "false");
    // A stage with its own access log file writes there, and only there.
    let v1_id = v1.header("x-amzn-requestid").unwrap();
    assert!(!lines.iter().any(|l| l["id"] == v1_id), "{lines:#?}");
    let v1_lines = json_lines(&v1_log, 1);
    assert_eq!(v1_lines.len(), 1, "{v1_lines:#?}");
    assert_eq!(v1_lines[0]["id"], v1_id);
    assert_eq!(v1_lines[0]["stage"], "v1");
    assert_eq!(v1_lines[0]["canary"], "-", "no canary on v1");
    assert_eq!(line(&prod)["deployment"], prod_body["deploymentId"]);
    assert_eq!(
        envoy.counter("wasmcustom.apigw_edge.stages.prod.canary.requests.2xx"),
        1
    );
    assert_eq!(
        envoy.counter("wasmcustom.apigw_edge.stages.prod.requests.2xx"),
        0
    );
    assert!(envoy.counter("wasmcustom.apigw_edge.stages.beta.requests.2xx") >= 3);
    assert_eq!(
        envoy.counter("wasmcustom.apigw_edge.stages.beta.canary.requests.2xx"),
        0
    );
    assert_eq!(
        envoy.counter("wasmcustom.apigw_edge.stages.dev.requests.4xx"),
        3
    );
}

#[test]
fn a_broken_stage_is_refused_naming_its_field() {
    let dir = temp_dir("stages-invalid");
    std::fs::write(dir.join("openapi.json"), export("today").to_string()).unwrap();
    std::fs::write(
        dir.join("deployment.yaml"),
        "openapi: openapi.json\nlambda: {endpoint: http://127.0.0.1:9}\nstages:\n  - name: a\n  - name: b\n    canarySettings: {percentTraffic: 120}\n  - name: c\n    openapi: missing.json\n",
    )
    .unwrap();
    let (ok, _, err) = validate_cli(&dir.join("deployment.yaml"));
    assert!(!ok);
    assert!(err.contains("missing.json"), "{err}");
    std::fs::write(dir.join("missing.json"), export("x").to_string()).unwrap();
    let (ok, _, err) = validate_cli(&dir.join("deployment.yaml"));
    assert!(!ok);
    assert!(
        err.contains("deployment.stages[1].canarySettings.percentTraffic"),
        "{err}"
    );
    std::fs::write(
        dir.join("deployment.yaml"),
        "openapi: openapi.json\nlambda: {endpoint: http://127.0.0.1:9}\nstages:\n  - name: a\n  - name: c\n    openapi: missing.json\n    canarySettings: {percentTraffic: 5}\n",
    )
    .unwrap();
    let (ok, text, err) = validate_cli(&dir.join("deployment.yaml"));
    assert!(ok, "{err}");
    assert!(
        text.contains("stage `a`: 3 methods; stage `c`: 3 methods; stage `c.canary`: 3 methods"),
        "{text}"
    );
}
