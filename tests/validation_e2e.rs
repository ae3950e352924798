//! Request validation through real Envoy with two workers: required parameters and body
//! models (Swagger 2.0 and OpenAPI 3.0 exports), the answers API Gateway gives, a
//! customised BAD_REQUEST_BODY response with the validation details, and refused requests
//! never reaching the function.

#![cfg(not(target_arch = "wasm32"))]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support;

use serde_json::{json, Value};
use support::*;

fn swagger() -> Value {
    let mut create = proxy_op("backend");
    create["parameters"] = json!([
        {"name": "X-Tenant", "in": "header", "required": true, "type": "string"},
        {"name": "dryRun", "in": "query", "required": false, "type": "string"},
        {"name": "Pet", "in": "body", "required": true, "schema": {"$ref": "#/definitions/Pet"}}
    ]);
    let mut find = proxy_op("backend");
    find["x-amazon-apigateway-request-validator"] = json!("params-only");
    find["parameters"] = json!([
        {"name": "petId", "in": "path", "required": true, "type": "string"},
        {"name": "fields", "in": "query", "required": true, "type": "string"}
    ]);
    json!({
        "swagger": "2.0",
        "x-amazon-apigateway-request-validators": {
            "all": {"validateRequestBody": true, "validateRequestParameters": true},
            "params-only": {"validateRequestBody": false, "validateRequestParameters": true}
        },
        "x-amazon-apigateway-request-validator": "all",
        "definitions": {
            "Pet": {"type": "object", "required": ["name", "kind"], "additionalProperties": false,
                "properties": {
                    "name": {"type": "string", "minLength": 1, "maxLength": 40},
                    "kind": {"enum": ["cat", "dog"]},
                    "born": {"type": "string", "format": "date-time"},
                    "friends": {"type": "array", "maxItems": 1000, "items": {"$ref": "#/definitions/Pet"}}
                }}
        },
        "x-amazon-apigateway-gateway-responses": {
            "BAD_REQUEST_BODY": {"statusCode": 400, "responseTemplates": {"application/json":
                "{\"message\": $context.error.messageString, \"details\": \"$context.error.validationErrorString\"}"}}
        },
        "paths": {
            "/pets": {"post": create},
            "/pets/{petId}": {"get": find},
            "/open": {"post": {"x-amazon-apigateway-request-validator": "params-only",
                "x-amazon-apigateway-integration": proxy_op("backend")["x-amazon-apigateway-integration"]}}
        }
    })
}

#[test]
fn parameters_and_bodies_are_validated_before_the_function_runs() {
    let stub = InvokeStub::start(|_| StubReply::payload(r#"{"statusCode":200,"body":"ran"}"#));
    let deployment = format!("stage: dev\nlambda:\n  endpoint: {}\n", stub.url());
    let envoy = Envoy::start("validation", &deployment, &swagger(), 2);
    let json = ("content-type", "application/json");
    let tenant = ("x-tenant", "acme");
    let pet = br#"{"name":"Rex","kind":"dog","born":"2020-02-29T10:00:00Z","friends":[{"name":"Tom","kind":"cat"}]}"#;

    let r = envoy.request("POST", "/dev/pets", &[json, tenant], pet);
    assert_eq!(
        (r.status, r.text().as_str()),
        (200, "ran"),
        "{}",
        envoy.log()
    );
    assert_eq!(stub.requests().len(), 1);

    // (path, headers, body, status, body or part of it)
    type Case<'a> = (&'a str, Vec<(&'a str, &'a str)>, &'a [u8], &'a str);
    let refused: [Case; 7] = [
        (
            "/dev/pets",
            vec![json],
            pet,
            r#"{"message":"Missing required request parameters: [X-Tenant]"}"#,
        ),
        (
            "/dev/pets",
            vec![json, ("x-tenant", "  ")],
            pet,
            r#"{"message":"Missing required request parameters: [X-Tenant]"}"#,
        ),
        (
            "/dev/pets/7",
            vec![],
            b"",
            r#"{"message":"Missing required request parameters: [fields]"}"#,
        ),
        (
            "/dev/pets",
            vec![json, tenant],
            br#"{"name":"Rex"}"#,
            "kind",
        ),
        (
            "/dev/pets",
            vec![json, tenant],
            br#"{"name":"Rex","kind":"dog","born":"yesterday"}"#,
            "/born",
        ),
        (
            "/dev/pets",
            vec![json, tenant],
            br#"{"name":"Rex","kind":"dog","friends":[{"name":"Tom","kind":"fish"}]}"#,
            "/friends/0/kind",
        ),
        (
            "/dev/pets",
            vec![json, tenant],
            b"{\"name\": ",
            "Invalid JSON",
        ),
    ];
    for (path, headers, body, expected) in refused {
        let method = if path == "/dev/pets" { "POST" } else { "GET" };
        let r = envoy.request(method, path, &headers, body);
        assert_eq!(r.status, 400, "{path} {}", r.text());
        assert_eq!(r.header("x-amzn-errortype"), Some("BadRequestException"));
        if expected.starts_with('{') {
            assert_eq!(r.text(), expected);
        } else {
            let v = r.json();
            assert_eq!(v["message"], "Invalid request body", "{v}");
            let details = v["details"].as_str().unwrap();
            assert!(details.contains(expected), "{expected}: {details}");
        }
    }
    assert_eq!(
        stub.requests().len(),
        1,
        "refused requests never reach Lambda"
    );

    // The parameters-only validator lets any body through; a method without a body model
    // is not held for its body.
    let r = envoy.request("GET", "/dev/pets/7?fields=name", &[], b"");
    assert_eq!(r.status, 200);
    let r = envoy.request("POST", "/dev/open", &[json], b"not even json");
    assert_eq!(r.status, 200, "{}", r.text());

    // A large valid body (a thousand nested friends) is checked and passed on.
    let friends: Vec<Value> = (0..1000)
        .map(|i| json!({"name": format!("f{i}"), "kind": "cat"}))
        .collect();
    let big = json!({"name": "Rex", "kind": "dog", "friends": friends}).to_string();
    let r = envoy.request("POST", "/dev/pets", &[json, tenant], big.as_bytes());
    assert_eq!(r.status, 200, "{}", r.text());
    let too_many: Vec<Value> = (0..1001)
        .map(|i| json!({"name": format!("f{i}"), "kind": "cat"}))
        .collect();
    let big = json!({"name": "Rex", "kind": "dog", "friends": too_many}).to_string();
    let r = envoy.request("POST", "/dev/pets", &[json, tenant], big.as_bytes());
    assert_eq!(r.status, 400, "maxItems");
}

#[test]
fn openapi_3_request_bodies_by_content_type() {
    let stub = InvokeStub::start(|_| StubReply::payload(r#"{"statusCode":200,"body":"ran"}"#));
    let mut op = proxy_op("backend");
    op["requestBody"] = json!({"required": true, "content": {
        "application/json": {"schema": {"$ref": "#/components/schemas/Note"}},
        "text/plain": {"schema": {"type": "string"}}
    }});
    let api = json!({
        "openapi": "3.0.1",
        "x-amazon-apigateway-request-validators": {"body": {"validateRequestBody": true}},
        "x-amazon-apigateway-request-validator": "body",
        "components": {"schemas": {"Note": {"type": "object", "required": ["text"],
            "properties": {"text": {"type": "string"}, "tags": {"type": "array", "uniqueItems": true}}}}},
        "paths": {"/notes": {"post": op}}
    });
    let deployment = format!("stage: dev\nlambda:\n  endpoint: {}\n", stub.url());
    let envoy = Envoy::start("validation-oas3", &deployment, &api, 2);
    let cases: [(&str, &[u8], u16); 6] = [
        (
            "application/json",
            br#"{"text":"hi","tags":["a","b"]}"#,
            200,
        ),
        ("application/json; charset=utf-8", br#"{"text":"hi"}"#, 200),
        ("application/json", br#"{"tags":["a"]}"#, 400),
        (
            "application/json",
            br#"{"text":"hi","tags":["a","a"]}"#,
            400,
        ),
        // No model for this content type: not validated.
        ("application/xml", b"<note/>", 200),
        // An empty JSON body counts as {} (and lacks `text`).
        ("application/json", b"", 400),
    ];
    for (content_type, body, status) in cases {
        let r = envoy.request(
            "POST",
            "/dev/notes",
            &[("content-type", content_type)],
            body,
        );
        assert_eq!(r.status, status, "{content_type} {}", r.text());
    }
}
