//! The resource policy stage through the pipeline: the verdict combined with each kind of
//! method authentication, and the 403s API Gateway sends.

use serde_json::{json, Value};

use super::tests::head;
use super::*;
use crate::config::parse_deployment;
use crate::shared::memory::Cells;

const FN: &str = "arn:aws:apigateway:us-east-1:lambda:path/2015-03-31/functions/arn:aws:lambda:us-east-1:123456789012:function:";
const ARN: &str = "arn:aws:execute-api:us-east-1:123456789012:abc123/dev";

fn op(security: Value) -> Value {
    json!({"security": security, "x-amazon-apigateway-integration": {
        "type": "aws_proxy", "httpMethod": "POST", "uri": format!("{FN}backend/invocations")}})
}

fn gateway(policy: Value, extra: Value) -> Gateway {
    let mut api = json!({
        "swagger": "2.0",
        "x-amazon-apigateway-policy": policy,
        "securityDefinitions": {
            "tok": {"type": "apiKey", "name": "Authorization", "in": "header",
                "x-amazon-apigateway-authtype": "custom",
                "x-amazon-apigateway-authorizer": {"type": "token", "authorizerUri": format!("{FN}auth/invocations")}}
        },
        "paths": {"/open": {"get": op(json!([]))}, "/guarded": {"get": op(json!([{"tok": []}]))}}
    });
    for (k, v) in extra.as_object().unwrap() {
        api[k] = v.clone();
    }
    let d = json!({"openapi": "api.json", "stage": "dev", "api": {"id": "abc123"},
        "lambda": {"endpoint": "http://127.0.0.1:9000"}});
    let cfg = crate::config::FilterConfig {
        deployment: parse_deployment(d).unwrap(),
        openapi: api,
        exports: Default::default(),
    };
    Gateway::compile(&cfg).unwrap().gateway
}

/// The first thing the pipeline does with a request from `ip`: a reply, or a call.
fn first_step(g: &Gateway, path: &str, ip: &str) -> Step {
    let cells = Cells::default();
    let host = super::tests::bare_host(&cells, None);
    let mut h = head("GET", path, &[("authorization", "Bearer x")]);
    h.source_ip = ip.into();
    let mut ex = g.begin(h);
    g.advance(&mut ex, &host)
}

fn statement(effect: &str, resource: &str, condition: Value) -> Value {
    json!({"Effect": effect, "Principal": "*", "Action": "execute-api:Invoke",
           "Resource": resource, "Condition": condition})
}

#[test]
fn verdicts_combined_with_the_method_authentication() {
    let allow_all = statement("Allow", "execute-api:/*", json!({}));
    let deny_range = statement(
        "Deny",
        "execute-api:/*",
        json!({"IpAddress": {"aws:SourceIp": "192.0.2.0/24"}}),
    );
    let allow_post = statement("Allow", "execute-api:/*/POST/*", json!({}));
    let explicit = |path: &str| {
        format!("{{\"Message\":\"User: anonymous is not authorized to perform: execute-api:Invoke on resource: {ARN}/GET/{path} with an explicit deny\"}}")
    };
    let implicit = |path: &str| {
        format!("{{\"Message\":\"User: anonymous is not authorized to perform: execute-api:Invoke on resource: {ARN}/GET/{path}\"}}")
    };
    // (statements, path, source, what happens: a 403 body, or the call the request makes)
    let cases: Vec<(Value, &str, &str, Result<CallKind, String>)> = vec![
        (
            json!([allow_all.clone(), deny_range.clone()]),
            "/dev/open",
            "198.51.100.1",
            Ok(CallKind::Integration),
        ),
        (
            json!([allow_all.clone(), deny_range.clone()]),
            "/dev/open",
            "192.0.2.9",
            Err(explicit("open")),
        ),
        (
            json!([allow_post.clone()]),
            "/dev/open",
            "198.51.100.1",
            Err(implicit("open")),
        ),
        // With a Lambda authorizer, a silent policy leaves the decision to the authorizer;
        // an explicit deny refuses before it is called.
        (
            json!([allow_post]),
            "/dev/guarded",
            "198.51.100.1",
            Ok(CallKind::Authorizer),
        ),
        (
            json!([allow_all, deny_range]),
            "/dev/guarded",
            "192.0.2.9",
            Err(explicit("guarded")),
        ),
    ];
    for (statements, path, ip, want) in cases {
        let g = gateway(
            json!({"Version": "2012-10-17", "Statement": statements}),
            json!({}),
        );
        match (first_step(&g, path, ip), want) {
            (Step::Call(c), Ok(kind)) => assert_eq!(c.kind, kind, "{path} from {ip}"),
            (Step::NeedBody, Ok(CallKind::Integration)) => {}
            (Step::Reply(o), Err(body)) => {
                assert_eq!(o.reply.status, 403, "{path} from {ip}");
                assert_eq!(o.reply.body_text(), body);
                assert_eq!(
                    o.reply.header("x-amzn-ErrorType"),
                    Some("AccessDeniedException")
                );
                assert!(o.log.unwrap().contains("resource policy"));
            }
            (other, want) => panic!("{path} from {ip}: {other:?}, wanted {want:?}"),
        }
    }
}

#[test]
fn a_customised_access_denied_response_sees_the_message() {
    let deny = statement("Deny", "execute-api:/*", json!({}));
    let g = gateway(
        json!({"Statement": [deny]}),
        json!({"x-amazon-apigateway-gateway-responses": {"ACCESS_DENIED": {
            "statusCode": 401,
            "responseTemplates": {"application/json": "{\"why\": $context.error.messageString}"}}}}),
    );
    let Step::Reply(o) = first_step(&g, "/dev/open", "198.51.100.1") else {
        panic!("not a reply");
    };
    assert_eq!(o.reply.status, 401);
    let body: Value = serde_json::from_slice(&o.reply.body).unwrap();
    assert!(body["why"]
        .as_str()
        .unwrap()
        .ends_with("/dev/GET/open with an explicit deny"));
}

#[test]
fn the_deployment_file_replaces_the_export_policy_and_errors_name_fields() {
    let d = |policy: Value| {
        json!({"openapi": "api.json", "stage": "dev", "api": {"id": "abc123"},
            "lambda": {"endpoint": "http://127.0.0.1:9000"}, "resourcePolicy": {"document": policy}})
    };
    let api = json!({"swagger": "2.0", "paths": {"/open": {"get": op(json!([]))}},
        "x-amazon-apigateway-policy": {"Statement": [{"Effect": "Nope"}]}});
    let compile = |policy: Value| {
        Gateway::compile(&crate::config::FilterConfig {
            deployment: parse_deployment(d(policy)).unwrap(),
            openapi: api.clone(),
            exports: Default::default(),
        })
    };
    assert!(compile(json!({"Statement": [statement("Allow", "*", json!({}))]})).is_ok());
    let errors = compile(
        json!({"Statement": [statement("Allow", "*", json!({"StringEquals": {"aws:Nope": "x"}}))]}),
    )
    .unwrap_err();
    assert_eq!(
        errors[0].location,
        "deployment.resourcePolicy.document.Statement[0].Condition.StringEquals.aws:Nope"
    );
}
