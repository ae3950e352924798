//! The `Validation` stage through the pipeline: its answers, its place after the API key
//! check, and `$context.error.validationErrorString` in gateway responses.

use serde_json::{json, Value};

use super::tests::head;
use super::*;
use crate::config::{parse_deployment, FilterConfig};
use crate::shared::memory::Cells;

const FN: &str = "arn:aws:apigateway:us-east-1:lambda:path/2015-03-31/functions/arn:aws:lambda:us-east-1:123456789012:function:";

fn gateway(extra: Value) -> Gateway {
    gateway_with(extra, json!({}))
}

fn gateway_with(extra: Value, deployment: Value) -> Gateway {
    let op = json!({
        "x-amazon-apigateway-request-validator": "all",
        "parameters": [
            {"name": "petId", "in": "path", "required": true, "type": "string"},
            {"name": "dryRun", "in": "query", "required": true, "type": "string"},
            {"name": "body", "in": "body", "schema": {"$ref": "#/definitions/Pet"}}
        ],
        "x-amazon-apigateway-integration": {"type": "aws_proxy", "httpMethod": "POST",
            "uri": format!("{FN}backend/invocations")}});
    let mut api = json!({"swagger": "2.0",
        "x-amazon-apigateway-request-validators": {
            "all": {"validateRequestBody": true, "validateRequestParameters": true}},
        "definitions": {"Pet": {"type": "object", "required": ["name"],
            "properties": {"name": {"type": "string"}}}},
        "paths": {"/pets/{petId}": {"put": op}}});
    for (k, v) in extra.as_object().unwrap() {
        api[k] = v.clone();
    }
    let mut d = json!({"openapi": "api.json", "stage": "dev",
        "lambda": {"endpoint": "http://127.0.0.1:9000"}});
    for (k, v) in deployment.as_object().unwrap() {
        d[k] = v.clone();
    }
    let cfg = FilterConfig {
        deployment: parse_deployment(d).unwrap(),
        openapi: api,
        exports: Default::default(),
    };
    Gateway::compile(&cfg).unwrap().gateway
}

/// Runs the pipeline with `body` to the integration call (`Ok`, the event) or a reply.
fn run(g: &Gateway, path: &str, body: &str) -> Result<Value, Outcome> {
    run_with(g, path, body, &[])
}

fn run_with(
    g: &Gateway,
    path: &str,
    body: &str,
    headers: &[(&str, &str)],
) -> Result<Value, Outcome> {
    let cells = Cells::default();
    let host = super::tests::bare_host(&cells, None);
    let mut all = vec![("content-type", "application/json")];
    all.extend_from_slice(headers);
    super::tests::run_to_call(g, head("PUT", path, &all), body.as_bytes(), &host)
}

#[test]
fn parameters_then_body_with_api_gateways_answers() {
    let g = gateway(json!({}));
    let cases = [
        (
            "/dev/pets/7",
            r#"{"name":"Rex"}"#,
            r#"{"message":"Missing required request parameters: [dryRun]"}"#,
        ),
        (
            "/dev/pets/7?dryRun=",
            "{}",
            r#"{"message":"Missing required request parameters: [dryRun]"}"#,
        ),
        (
            "/dev/pets/7?dryRun=yes",
            r#"{"nom":"Rex"}"#,
            r#"{"message":"Invalid request body"}"#,
        ),
        (
            "/dev/pets/7?dryRun=yes",
            "not json",
            r#"{"message":"Invalid request body"}"#,
        ),
    ];
    for (path, body, answer) in cases {
        let o = run(&g, path, body).unwrap_err();
        assert_eq!(o.reply.status, 400, "{path} {body}");
        assert_eq!(
            String::from_utf8_lossy(&o.reply.body),
            answer,
            "{path} {body}"
        );
        assert_eq!(
            o.reply.header("x-amzn-ErrorType"),
            Some("BadRequestException")
        );
    }
    let event = run(&g, "/dev/pets/7?dryRun=yes", r#"{"name":"Rex"}"#).unwrap();
    assert_eq!(event["body"], r#"{"name":"Rex"}"#);
}

#[test]
fn gateway_responses_see_the_validation_details() {
    let g = gateway(json!({"x-amazon-apigateway-gateway-responses": {
        "BAD_REQUEST_BODY": {"statusCode": 422, "responseTemplates": {"application/json":
            "{\"message\": $context.error.messageString, \"why\": \"$context.error.validationErrorString\"}"}},
        "BAD_REQUEST_PARAMETERS": {"responseTemplates": {"application/json":
            "{\"type\": \"$context.error.responseType\"}"}}}}));
    let o = run(&g, "/dev/pets/7?dryRun=1", r#"{"nom":"Rex"}"#).unwrap_err();
    assert_eq!(o.reply.status, 422);
    let body: Value = serde_json::from_slice(&o.reply.body).unwrap();
    assert_eq!(body["message"], "Invalid request body");
    let why = body["why"].as_str().unwrap();
    assert!(why.starts_with("[at /: ") && why.contains("name"), "{why}");
    let o = run(&g, "/dev/pets/7", "{}").unwrap_err();
    assert_eq!(o.reply.status, 400);
    assert_eq!(
        String::from_utf8_lossy(&o.reply.body),
        r#"{"type": "BAD_REQUEST_PARAMETERS"}"#
    );
}

#[test]
fn validation_runs_after_the_api_key_check() {
    let key = "aaaaaaaaaaaaaaaaaaaaaaaa";
    let g = gateway_with(
        json!({}),
        json!({"apiKeys": [{"id": "a", "valueSha256": crate::apikeys::hash_value(key)}],
            "usagePlans": [{"id": "p", "apiKeys": ["a"]}],
            "apiKeyRequired": ["/pets/{petId}/PUT"]}),
    );
    // No key: the key check answers; the missing parameter is never looked at.
    let o = run(&g, "/dev/pets/7", "{}").unwrap_err();
    assert_eq!(o.reply.status, 403);
    // With the key the request reaches validation.
    let o = run_with(&g, "/dev/pets/7", "{}", &[("x-api-key", key)]).unwrap_err();
    assert_eq!(o.reply.status, 400);
    assert!(run_with(
        &g,
        "/dev/pets/7?dryRun=1",
        r#"{"name":"a"}"#,
        &[("x-api-key", key)]
    )
    .is_ok());
}
