//! The authorizer stage through the pipeline: one behaviour per test, answers scripted.

use std::cell::RefCell;

use serde_json::{json, Value};

use super::tests::head;
use super::*;
use crate::authorizer::cache::AuthCache;
use crate::config::parse_deployment;
use crate::http::UpstreamAnswer;
use crate::shared::memory::Cells;

const FN: &str = "arn:aws:apigateway:us-east-1:lambda:path/2015-03-31/functions/arn:aws:lambda:us-east-1:123456789012:function:";

fn op(security: &str) -> Value {
    json!({"security": [{security: []}], "x-amazon-apigateway-integration": {
        "type": "aws_proxy", "httpMethod": "POST", "uri": format!("{FN}backend/invocations")}})
}

fn gateway(extra: Value) -> Gateway {
    gateway_with(extra, json!({}))
}

fn gateway_with(extra: Value, deployment: Value) -> Gateway {
    let mut api = json!({
        "swagger": "2.0",
        "securityDefinitions": {
            "tok": {"type": "apiKey", "name": "Authorization", "in": "header",
                "x-amazon-apigateway-authtype": "custom",
                "x-amazon-apigateway-authorizer": {"type": "token", "authorizerUri": format!("{FN}auth/invocations"),
                    "identityValidationExpression": "^Bearer .+$", "authorizerResultTtlInSeconds": 60}},
            "req": {"type": "apiKey", "name": "x", "in": "header",
                "x-amazon-apigateway-authtype": "custom",
                "x-amazon-apigateway-authorizer": {"type": "request", "authorizerUri": format!("{FN}auth/invocations"),
                    "identitySource": "method.request.header.X-Tenant, method.request.querystring.key", "authorizerResultTtlInSeconds": 60}},
            "nocache": {"type": "apiKey", "name": "x", "in": "header",
                "x-amazon-apigateway-authtype": "custom",
                "x-amazon-apigateway-authorizer": {"type": "request", "authorizerUri": format!("{FN}auth/invocations"),
                    "authorizerResultTtlInSeconds": 0}}
        },
        "paths": {
            "/pets/{id}": {"get": op("tok"), "delete": op("tok")},
            "/tenants": {"get": op("req")},
            "/open": {"get": op("nocache")},
            "/mapped": {"post": {"security": [{"tok": []}], "responses": {"200": {"description": "ok"}},
                "x-amazon-apigateway-integration": {"type": "aws", "httpMethod": "POST", "uri": format!("{FN}backend/invocations"),
                    "requestTemplates": {"application/json": "{\"p\": \"$context.authorizer.principalId\", \"tier\": \"$context.authorizer.tier\"}"},
                    "responses": {"default": {"statusCode": "200"}}}}}
        }
    });
    if let Some(obj) = extra.as_object() {
        for (k, v) in obj {
            api[k] = v.clone();
        }
    }
    let mut d = json!({"openapi": "api.json", "stage": "dev", "api": {"id": "abc123"},
        "lambda": {"endpoint": "http://127.0.0.1:9000"}});
    for (k, v) in deployment.as_object().unwrap() {
        d[k] = v.clone();
    }
    let cfg = crate::config::FilterConfig {
        deployment: parse_deployment(d).unwrap(),
        openapi: api,
        exports: Default::default(),
    };
    Gateway::compile(&cfg).unwrap().gateway
}

fn ok(payload: Value) -> UpstreamAnswer {
    UpstreamAnswer {
        host_reply: None,
        status: Some(200),
        headers: vec![],
        body: payload.to_string().into_bytes(),
    }
}

fn allow(resource: &str) -> Value {
    json!({"principalId": "user-7", "policyDocument": {"Version": "2012-10-17", "Statement": [
        {"Action": "execute-api:Invoke", "Effect": "Allow", "Resource": resource}]},
        "context": {"tier": "gold", "n": 3, "admin": false}})
}

/// Drives a request: `answers` are given to the calls in order; returns the final reply,
/// the calls made (kind and JSON payload) and the exchange.
struct Run {
    reply: Outcome,
    calls: Vec<(CallKind, Value)>,
}

struct Env {
    cells: Cells,
    auth: RefCell<AuthCache>,
    now_ms: u64,
}

impl Env {
    fn new() -> Self {
        Env {
            cells: Cells::default(),
            auth: RefCell::new(AuthCache::new(1 << 20)),
            now_ms: 1_700_000_000_000,
        }
    }

    fn run(&self, g: &Gateway, h: RequestHead, answers: &[UpstreamAnswer]) -> Run {
        let host = Host {
            cells: &self.cells,
            store: None,
            auth_cache: Some(&self.auth),
            keys: None,
            tokens: None,
            certs: None,
            now_ms: self.now_ms,
            forwarding: crate::config::Forwarding::Router,
        };
        let mut ex = g.begin(RequestHead {
            now_ms: self.now_ms,
            ..h
        });
        let mut step = g.advance(&mut ex, &host);
        let mut calls = Vec::new();
        let mut answers = answers.iter();
        loop {
            step = match step {
                Step::Reply(o) => return Run { reply: *o, calls },
                Step::NeedBody => g.body(&mut ex, b"{}".to_vec(), &host),
                Step::Call(c) => {
                    assert_eq!(ex.waiting_for(), Some(c.kind));
                    calls.push((c.kind, serde_json::from_slice(&c.request.body).unwrap()));
                    let answer = answers
                        .next()
                        .cloned()
                        .unwrap_or_else(|| ok(json!({"statusCode": 200, "body": "backend"})));
                    g.resume(&mut ex, &answer, &host)
                }
            };
        }
    }
}

fn json_body(o: &Outcome) -> Value {
    serde_json::from_slice(&o.reply.body).unwrap()
}

#[test]
fn token_event_then_allowed_request_carries_the_decision_downstream() {
    let g = gateway(json!({}));
    let env = Env::new();
    let r = env.run(
        &g,
        head("GET", "/dev/pets/7", &[("authorization", "Bearer abc")]),
        &[ok(allow("*"))],
    );
    assert_eq!(r.reply.reply.status, 200, "{}", r.reply.reply.body_text());
    let (kind, event) = &r.calls[0];
    assert_eq!(*kind, CallKind::Authorizer);
    assert_eq!(
        event,
        &json!({"type": "TOKEN", "authorizationToken": "Bearer abc",
                "methodArn": "arn:aws:execute-api:us-east-1:123456789012:abc123/dev/GET/pets/7"})
    );
    let (kind, proxy_event) = &r.calls[1];
    assert_eq!(*kind, CallKind::Integration);
    assert_eq!(
        proxy_event["requestContext"]["authorizer"],
        json!({"principalId": "user-7", "tier": "gold", "n": "3", "admin": "false", "integrationLatency": 0})
    );
}

#[test]
fn denials_and_refusals_answer_as_api_gateway_does() {
    let g = gateway(json!({}));
    let deny = json!({"principalId": "u", "policyDocument": {"Statement": [
        {"Action": "execute-api:Invoke", "Effect": "Allow", "Resource": "*"},
        {"Action": "execute-api:Invoke", "Effect": "Deny", "Resource": "arn:aws:execute-api:*:*:abc123/*/GET/*"}]}});
    let other = allow("arn:aws:execute-api:us-east-1:123456789012:abc123/dev/POST/*");
    let bearer = [("authorization", "Bearer t")];
    let function_error = |msg: &str| UpstreamAnswer {
        host_reply: None,
        status: Some(200),
        headers: vec![("x-amz-function-error".into(), "Unhandled".into())],
        body: json!({"errorMessage": msg, "errorType": "Error"})
            .to_string()
            .into_bytes(),
    };
    for (what, headers, answer, status, body, kind, calls) in [
        (
            "explicit deny",
            &bearer[..],
            Some(ok(deny)),
            403,
            json!({"Message": "User is not authorized to access this resource with an explicit deny"}),
            "AccessDeniedException",
            1,
        ),
        (
            "no matching allow",
            &bearer[..],
            Some(ok(other)),
            403,
            json!({"Message": "User is not authorized to access this resource"}),
            "AccessDeniedException",
            1,
        ),
        (
            "Unauthorized",
            &bearer[..],
            Some(function_error("Unauthorized")),
            401,
            json!({"message": "Unauthorized"}),
            "UnauthorizedException",
            1,
        ),
        (
            "no token",
            &[][..],
            None,
            401,
            json!({"message": "Unauthorized"}),
            "UnauthorizedException",
            0,
        ),
        (
            "fails validation",
            &[("authorization", "Basic x")][..],
            None,
            401,
            json!({"message": "Unauthorized"}),
            "UnauthorizedException",
            0,
        ),
        (
            "crash",
            &bearer[..],
            Some(function_error("boom")),
            500,
            json!({"message": null}),
            "AuthorizerConfigurationException",
            1,
        ),
        (
            "malformed",
            &bearer[..],
            Some(ok(json!({"principalId": "u"}))),
            500,
            json!({"message": null}),
            "AuthorizerConfigurationException",
            1,
        ),
        (
            "timeout",
            &bearer[..],
            Some(UpstreamAnswer {
                host_reply: None,
                status: Some(504),
                headers: vec![("x-envoy-upstream-service-time".into(), "0".into())],
                body: b"upstream request timeout".to_vec(),
            }),
            500,
            json!({"message": null}),
            "AuthorizerFailureException",
            1,
        ),
        (
            "unreachable",
            &bearer[..],
            Some(UpstreamAnswer::default()),
            500,
            json!({"message": null}),
            "AuthorizerFailureException",
            1,
        ),
    ] {
        let env = Env::new();
        let answers: Vec<UpstreamAnswer> = answer.into_iter().collect();
        let r = env.run(&g, head("GET", "/dev/pets/7", headers), &answers);
        assert_eq!(
            r.reply.reply.status,
            status,
            "{what}: {}",
            r.reply.reply.body_text()
        );
        assert_eq!(json_body(&r.reply), body, "{what}");
        assert_eq!(
            r.reply.reply.header("x-amzn-ErrorType"),
            Some(kind),
            "{what}"
        );
        assert_eq!(r.calls.len(), calls, "{what}: calls made");
        assert!(r.reply.log.is_some(), "{what}: a refusal is logged");
    }
}

#[test]
fn a_cached_policy_is_evaluated_against_each_method_arn() {
    let g = gateway(json!({}));
    let env = Env::new();
    let narrow = allow("arn:aws:execute-api:us-east-1:123456789012:abc123/dev/GET/pets/7");
    let bearer = [("authorization", "Bearer same")];
    let first = env.run(&g, head("GET", "/dev/pets/7", &bearer), &[ok(narrow)]);
    assert_eq!(first.reply.reply.status, 200);
    // Same token within the TTL: no authorizer call, the cached policy decides.
    let again = env.run(&g, head("GET", "/dev/pets/7", &bearer), &[]);
    assert_eq!(again.reply.reply.status, 200);
    assert_eq!(again.calls.len(), 1, "only the integration is called");
    // The classic surprise: the policy named one method, so another is denied from cache.
    let other = env.run(&g, head("DELETE", "/dev/pets/7", &bearer), &[]);
    assert_eq!(other.reply.reply.status, 403);
    assert!(other.calls.is_empty());
    // After the TTL the authorizer is called again.
    let env2 = Env {
        now_ms: env.now_ms + 61_000,
        ..Env::new()
    };
    *env2.auth.borrow_mut() =
        std::mem::replace(&mut *env.auth.borrow_mut(), AuthCache::new(1 << 20));
    let later = env2.run(&g, head("GET", "/dev/pets/7", &bearer), &[ok(allow("*"))]);
    assert_eq!(later.calls.len(), 2);
}

#[test]
fn a_flush_reaches_the_cache_through_shared_data() {
    let g = gateway(json!({}));
    let env = Env::new();
    let bearer = [("authorization", "Bearer t")];
    env.run(&g, head("GET", "/dev/pets/7", &bearer), &[ok(allow("*"))]);
    assert_eq!(
        env.run(&g, head("GET", "/dev/pets/7", &bearer), &[])
            .calls
            .len(),
        1
    );
    crate::shared::increment(&env.cells, &authorizer_flush_cell("abc123", "dev")).unwrap();
    let after = env.run(&g, head("GET", "/dev/pets/7", &bearer), &[ok(allow("*"))]);
    assert_eq!(after.calls[0].0, CallKind::Authorizer);
}

#[test]
fn request_authorizers_read_their_identity_sources() {
    let g = gateway(json!({}));
    let env = Env::new();
    // Cached REQUEST authorizer: a missing source is a 401 without a call.
    let r = env.run(&g, head("GET", "/dev/tenants", &[("x-tenant", "t1")]), &[]);
    assert_eq!(r.reply.reply.status, 401);
    assert!(r.calls.is_empty());
    let r = env.run(
        &g,
        head("GET", "/dev/tenants?key=k1", &[("x-tenant", "t1")]),
        &[ok(allow("*"))],
    );
    assert_eq!(r.reply.reply.status, 200);
    let event = &r.calls[0].1;
    assert_eq!(event["type"], "REQUEST");
    assert_eq!(
        event["methodArn"],
        "arn:aws:execute-api:us-east-1:123456789012:abc123/dev/GET/tenants"
    );
    assert_eq!(event["resource"], "/tenants");
    assert_eq!(event["httpMethod"], "GET");
    assert_eq!(event["headers"]["X-Tenant"], "t1");
    assert_eq!(event["queryStringParameters"], json!({"key": "k1"}));
    assert_eq!(event["requestContext"]["resourcePath"], "/tenants");
    assert!(event.get("body").is_none());
    // Different identity values are cached apart.
    let other = env.run(
        &g,
        head("GET", "/dev/tenants?key=k2", &[("x-tenant", "t1")]),
        &[ok(allow("*"))],
    );
    assert_eq!(other.calls[0].0, CallKind::Authorizer);
    // Without caching, the authorizer is called even with no identity at all.
    let open = env.run(&g, head("GET", "/dev/open", &[]), &[ok(allow("*"))]);
    assert_eq!(open.reply.reply.status, 200);
    let twice = env.run(&g, head("GET", "/dev/open", &[]), &[ok(allow("*"))]);
    assert_eq!(twice.calls[0].0, CallKind::Authorizer);
}

#[test]
fn templates_and_gateway_responses_see_the_authorizer() {
    let g = gateway(
        json!({"x-amazon-apigateway-gateway-responses": {"ACCESS_DENIED": {
        "statusCode": "403",
        "responseTemplates": {"application/json": "{\"who\": \"$context.authorizer.principalId\", \"why\": \"$context.authorizer.reason\"}"}}}}),
    );
    let env = Env::new();
    let bearer = [
        ("authorization", "Bearer t"),
        ("content-type", "application/json"),
    ];
    let r = env.run(&g, head("POST", "/dev/mapped", &bearer), &[ok(allow("*"))]);
    let sent = &r.calls[1].1;
    assert_eq!(sent, &json!({"p": "user-7", "tier": "gold"}));
    let deny = json!({"principalId": "eve", "context": {"reason": "suspended"},
        "policyDocument": {"Statement": [{"Action": "execute-api:Invoke", "Effect": "Deny", "Resource": "*"}]}});
    let env = Env::new();
    let r = env.run(&g, head("GET", "/dev/pets/1", &bearer), &[ok(deny)]);
    assert_eq!(r.reply.reply.status, 403);
    assert_eq!(
        json_body(&r.reply),
        json!({"who": "eve", "why": "suspended"})
    );
}

#[test]
fn the_api_key_can_come_from_the_authorizer() {
    let value = "k1-value-0123456789abcdef0123";
    let g = gateway_with(
        json!({"x-amazon-apigateway-api-key-source": "AUTHORIZER"}),
        json!({"apiKeys": [{"id": "k1", "valueSha256": crate::apikeys::hash_value(value)}],
               "apiKeyRequired": ["/pets/{id}/GET"],
               "usagePlans": [{"id": "p", "apiKeys": ["k1"], "quota": {"limit": 1, "period": "DAY"}}]}),
    );
    let with_key = |key: &str| {
        ok(json!({"principalId": "u", "usageIdentifierKey": key,
        "policyDocument": {"Statement": [{"Action": "execute-api:Invoke", "Effect": "Allow", "Resource": "*"}]}}))
    };
    let env = Env::new();
    let bearer = [("authorization", "Bearer t"), ("x-api-key", "ignored")];
    let r = env.run(&g, head("GET", "/dev/pets/1", &bearer), &[with_key(value)]);
    assert_eq!(r.reply.reply.status, 200, "{}", r.reply.reply.body_text());
    assert_eq!(r.calls[1].1["requestContext"]["identity"]["apiKeyId"], "k1");
    // The quota of one is used: the next request of the same key is refused (from cache).
    let r = env.run(&g, head("GET", "/dev/pets/1", &bearer), &[]);
    assert_eq!(r.reply.reply.status, 429);
    // A key the authorizer names that the stage does not know: 403 Forbidden.
    let env = Env::new();
    let r = env.run(
        &g,
        head("GET", "/dev/pets/1", &bearer),
        &[with_key("unknown-key-value-000000000000")],
    );
    assert_eq!(r.reply.reply.status, 403);
    assert_eq!(json_body(&r.reply), json!({"message": "Forbidden"}));
}

#[test]
fn the_cors_policy_decorates_authorizer_refusals() {
    let g = gateway_with(
        json!({}),
        json!({"cors": {"allowOrigins": ["https://app.example"]}}),
    );
    let env = Env::new();
    let h = head("GET", "/dev/pets/7", &[("origin", "https://app.example")]);
    let r = env.run(&g, h, &[]);
    assert_eq!(r.reply.reply.status, 401);
    assert_eq!(
        r.reply.reply.header("access-control-allow-origin"),
        Some("https://app.example")
    );
}
