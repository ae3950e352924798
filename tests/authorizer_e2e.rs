//! Lambda authorizers through real Envoy with two workers, against a scripted Invoke API
//! whose `auth` function decides by the token it is given.

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

fn scheme(kind: &str, extra: Value) -> Value {
    let mut auth = json!({"type": kind, "authorizerUri": lambda_uri("auth")});
    for (k, v) in extra.as_object().unwrap() {
        auth[k] = v.clone();
    }
    json!({"type": "apiKey", "name": "Authorization", "in": "header",
           "x-amazon-apigateway-authtype": "custom", "x-amazon-apigateway-authorizer": auth})
}

fn api() -> Value {
    let guarded = |scheme: &str| {
        let mut op = proxy_op("backend");
        op["security"] = json!([{scheme: []}]);
        op
    };
    json!({
        "swagger": "2.0",
        "x-amazon-apigateway-api-key-source": "AUTHORIZER",
        "securityDefinitions": {
            "tok": scheme("token", json!({"identityValidationExpression": "^Bearer [a-z0-9-]+$", "authorizerResultTtlInSeconds": 2})),
            "req": scheme("request", json!({"identitySource": "method.request.header.X-Tenant", "authorizerResultTtlInSeconds": 300}))
        },
        "paths": {
            "/pets/{id}": {"get": guarded("tok"), "delete": guarded("tok"), "post": guarded("tok")},
            "/tenant": {"get": guarded("req")},
            "/metered": {"get": {
                "security": [{"tok": []}],
                "x-amazon-apigateway-integration": {"type": "aws_proxy", "httpMethod": "POST", "uri": lambda_uri("backend")}}},
            "/mapped": {"post": {
                "security": [{"tok": []}],
                "responses": {"200": {"description": "ok"}},
                "x-amazon-apigateway-integration": {
                    "type": "aws", "httpMethod": "POST", "uri": lambda_uri("backend"),
                    "requestTemplates": {"application/json": "{\"who\": \"$context.authorizer.principalId\", \"plan\": \"$context.authorizer.plan\"}"},
                    "responses": {"default": {"statusCode": "200"}}}}},
            "/open": {"get": proxy_op("backend")}
        }
    })
}

const KEY: &str = "meteredKeyValue0123456789";

/// `auth` decides by the token's word after `Bearer `: allow, deny, narrow (allows only
/// GET /pets/*), unauthorized, crash, garbage, slow; REQUEST events allow tenant `t1`.
fn stub() -> InvokeStub {
    InvokeStub::start(|r| {
        if r.function() == "backend" {
            let event = r.json();
            return StubReply::payload(
                json!({"statusCode": 200, "body": event.to_string()}).to_string(),
            );
        }
        let event = r.json();
        let arn = event["methodArn"].as_str().unwrap_or_default().to_string();
        let policy = |effect: &str, resource: &str| {
            json!({"principalId": "user-42",
            "policyDocument": {"Version": "2012-10-17", "Statement": [{"Action": "execute-api:Invoke", "Effect": effect, "Resource": resource}]},
            "context": {"plan": "gold", "seats": 3, "beta": true},
            "usageIdentifierKey": KEY})
        };
        let fail = |message: &str| {
            StubReply::payload(json!({"errorMessage": message, "errorType": "Error"}).to_string())
                .with_header("X-Amz-Function-Error", "Unhandled")
        };
        if event["type"] == "REQUEST" {
            let tenant = event["headers"]["X-Tenant"].as_str().unwrap_or_default();
            return if tenant == "t1" {
                StubReply::payload(policy("Allow", &arn).to_string())
            } else {
                StubReply::payload(policy("Deny", "*").to_string())
            };
        }
        let token = event["authorizationToken"].as_str().unwrap_or_default();
        match token.strip_prefix("Bearer ").unwrap_or_default() {
            "deny" => StubReply::payload(policy("Deny", "*").to_string()),
            "narrow" => StubReply::payload(
                policy("Allow", "arn:aws:execute-api:*:*:*/dev/GET/pets/*").to_string(),
            ),
            "unauthorized" => fail("Unauthorized"),
            "crash" => fail("boom"),
            "garbage" => StubReply::payload("{\"principalId\": 7}"),
            "slow" => {
                StubReply::payload(policy("Allow", "*").to_string()).delay(Duration::from_secs(11))
            }
            _ => StubReply::payload(policy("Allow", "*").to_string()),
        }
    })
}

fn deployment(stub: &InvokeStub, control: u16) -> String {
    format!(
        "stage: dev\napi:\n  id: abc123\nlambda:\n  endpoint: {}\ncontrol: 127.0.0.1:{control}\n\
         apiKeys:\n  - id: metered\n    valueSha256: {}\napiKeyRequired: [\"/metered/GET\"]\n\
         usagePlans:\n  - id: plan\n    apiKeys: [metered]\n    quota: {{limit: 3, period: DAY}}\n",
        stub.url(),
        apigw_edge::apikeys::hash_value(KEY)
    )
}

fn auth_calls(stub: &InvokeStub) -> usize {
    stub.requests()
        .iter()
        .filter(|r| r.function() == "auth")
        .count()
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

#[test]
fn outcomes_as_api_gateway_answers_them() {
    let stub = stub();
    let envoy = Envoy::start("authz-outcomes", &deployment(&stub, free_port()), &api(), 2);
    let get = |path: &str, token: Option<&str>| {
        let auth = token.map(bearer);
        let headers: Vec<(&str, &str)> =
            auth.iter().map(|a| ("Authorization", a.as_str())).collect();
        envoy.request("GET", path, &headers, b"")
    };
    // Allowed: the backend sees the principal and the context, values as strings.
    let r = get("/dev/pets/1", Some("alice"));
    assert_eq!(r.status, 200, "{}", r.text());
    let event: Value = serde_json::from_str(&r.text()).unwrap();
    let a = &event["requestContext"]["authorizer"];
    assert_eq!(
        (
            a["principalId"].as_str(),
            a["plan"].as_str(),
            a["seats"].as_str(),
            a["beta"].as_str()
        ),
        (Some("user-42"), Some("gold"), Some("3"), Some("true"))
    );
    assert!(a["integrationLatency"].is_u64());
    let sent = stub.last("auth").json();
    assert_eq!(
        sent,
        json!({"type": "TOKEN", "authorizationToken": "Bearer alice",
        "methodArn": "arn:aws:execute-api:us-east-1:123456789012:abc123/dev/GET/pets/1"})
    );

    stub.clear();
    for (path, token, status, body, kind, calls) in [
        (
            "/dev/pets/2",
            Some("deny"),
            403,
            json!({"Message": "User is not authorized to access this resource with an explicit deny"}),
            "AccessDeniedException",
            1,
        ),
        (
            "/dev/pets/3",
            Some("unauthorized"),
            401,
            json!({"message": "Unauthorized"}),
            "UnauthorizedException",
            1,
        ),
        (
            "/dev/pets/4",
            Some("crash"),
            500,
            json!({"message": null}),
            "AuthorizerConfigurationException",
            1,
        ),
        (
            "/dev/pets/5",
            Some("garbage"),
            500,
            json!({"message": null}),
            "AuthorizerConfigurationException",
            1,
        ),
        (
            "/dev/pets/6",
            None,
            401,
            json!({"message": "Unauthorized"}),
            "UnauthorizedException",
            0,
        ),
        // Fails identityValidationExpression: refused without calling the authorizer.
        (
            "/dev/pets/7",
            Some("UPPER"),
            401,
            json!({"message": "Unauthorized"}),
            "UnauthorizedException",
            0,
        ),
    ] {
        let before = auth_calls(&stub);
        let r = get(path, token);
        assert_eq!(r.status, status, "{token:?}: {}", r.text());
        assert_eq!(r.json(), body, "{token:?}");
        assert_eq!(r.header("x-amzn-errortype"), Some(kind), "{token:?}");
        assert_eq!(
            auth_calls(&stub) - before,
            calls,
            "{token:?}: authorizer calls"
        );
        assert!(r.header("x-amzn-requestid").is_some());
    }
    // A policy that names only GET /pets/*: DELETE is denied, from the cache on a worker
    // that already has it.
    let narrow = bearer("narrow");
    let mut conn = Conn::open(envoy.port);
    let r = conn.send("GET", "/dev/pets/8", &[("Authorization", narrow.as_str())]);
    assert_eq!(r.status, 200);
    let r = conn.send(
        "DELETE",
        "/dev/pets/8",
        &[("Authorization", narrow.as_str())],
    );
    assert_eq!(r.status, 403);
    assert_eq!(
        r.json(),
        json!({"Message": "User is not authorized to access this resource"})
    );
    // The REQUEST authorizer: a missing identity source is a 401 without a call.
    let before = auth_calls(&stub);
    let r = envoy.get("/dev/tenant");
    assert_eq!(r.status, 401);
    assert_eq!(auth_calls(&stub), before);
    let r = envoy.request("GET", "/dev/tenant", &[("X-Tenant", "t1")], b"");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(stub.last("auth").json()["headers"]["X-Tenant"], "t1");
    let r = envoy.request("GET", "/dev/tenant", &[("X-Tenant", "t2")], b"");
    assert_eq!(r.status, 403);
    // A body that arrives while the authorizer runs reaches the integration whole, on a
    // fresh call (no cached result) and on a cached one.
    for token in ["Bearer body-fresh", "Bearer body-fresh"] {
        let body = vec![b'x'; 300_000];
        let r = envoy.request(
            "POST",
            "/dev/pets/9",
            &[("Authorization", token), ("Content-Type", "text/plain")],
            &body,
        );
        assert_eq!(r.status, 200, "{}", r.text());
        let event: Value = serde_json::from_str(&r.text()).unwrap();
        assert_eq!(event["body"].as_str().map(str::len), Some(300_000));
    }
    // Methods without an authorizer are untouched.
    assert_eq!(envoy.get("/dev/open").status, 200);
    // The mapping template sees the decision.
    let r = envoy.request(
        "POST",
        "/dev/mapped",
        &[
            ("Authorization", "Bearer bob"),
            ("Content-Type", "application/json"),
        ],
        b"{}",
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        stub.last("backend").json(),
        json!({"who": "user-42", "plan": "gold"})
    );
}

#[test]
fn results_are_cached_per_worker_until_the_ttl_or_a_flush() {
    let stub = stub();
    let control = free_port();
    let envoy = Envoy::start("authz-cache", &deployment(&stub, control), &api(), 2);
    let token = bearer("carol");
    // One keep-alive connection stays on one worker: one call for many requests.
    let mut conn = Conn::open(envoy.port);
    for i in 0..10 {
        let r = conn.send(
            "GET",
            &format!("/dev/pets/{i}"),
            &[("Authorization", token.as_str())],
        );
        assert_eq!(r.status, 200);
    }
    assert_eq!(auth_calls(&stub), 1);
    // Fresh connections reach both workers: at most one call per worker.
    for i in 0..10 {
        let r = envoy.request(
            "GET",
            &format!("/dev/pets/{i}"),
            &[("Authorization", token.as_str())],
            b"",
        );
        assert_eq!(r.status, 200);
    }
    assert!(auth_calls(&stub) <= 2, "{} calls", auth_calls(&stub));
    // The TTL is 2 s: after it the authorizer is asked again.
    std::thread::sleep(Duration::from_millis(2200));
    let before = auth_calls(&stub);
    assert_eq!(
        conn.send("GET", "/dev/pets/1", &[("Authorization", token.as_str())])
            .status,
        200
    );
    assert_eq!(auth_calls(&stub), before + 1);
    // A flush through the control listener reaches every worker.
    let deployment = envoy.dir.join("deployment.yaml");
    let out = cli_ok(&[
        "authorizers".as_ref(),
        "flush".as_ref(),
        deployment.as_os_str(),
    ]);
    assert_eq!(
        serde_json::from_str::<Value>(&out).unwrap()["flushed"],
        true
    );
    let before = auth_calls(&stub);
    assert_eq!(
        conn.send("GET", "/dev/pets/1", &[("Authorization", token.as_str())])
            .status,
        200
    );
    assert_eq!(auth_calls(&stub), before + 1);
    assert!(envoy.log().contains("authorizer results flushed"));
    assert!(envoy.counter("wasmcustom.apigw_edge.authorizer.cache_hit") >= 9);
}

#[test]
fn the_usage_plan_key_comes_from_the_authorizer() {
    let stub = stub();
    let envoy = Envoy::start("authz-key", &deployment(&stub, free_port()), &api(), 2);
    let token = bearer("dave");
    let mut statuses = Vec::new();
    for _ in 0..5 {
        statuses.push(
            envoy
                .request(
                    "GET",
                    "/dev/metered",
                    &[("Authorization", token.as_str())],
                    b"",
                )
                .status,
        );
    }
    // The quota of 3 holds across both workers for the key named by usageIdentifierKey.
    assert_eq!(statuses, vec![200, 200, 200, 429, 429]);
    let event = stub.last("backend").json();
    assert_eq!(event["requestContext"]["identity"]["apiKeyId"], "metered");
}

#[test]
fn an_authorizer_that_times_out_is_a_500() {
    let stub = stub();
    let envoy = Envoy::start("authz-timeout", &deployment(&stub, free_port()), &api(), 1);
    let started = Instant::now();
    let r = envoy.request(
        "GET",
        "/dev/pets/1",
        &[("Authorization", "Bearer slow")],
        b"",
    );
    assert_eq!(r.status, 500, "{}", r.text());
    assert_eq!(
        r.header("x-amzn-errortype"),
        Some("AuthorizerFailureException")
    );
    assert!(started.elapsed() < Duration::from_secs(14));
    assert!(
        envoy.log().contains("did not answer within 10000 ms"),
        "{}",
        envoy.log()
    );
    assert_eq!(
        stub.requests()
            .iter()
            .filter(|r| r.function() == "backend")
            .count(),
        0
    );
}
