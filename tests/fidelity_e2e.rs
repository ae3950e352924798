//! Behaviours recorded against API Gateway, through real Envoy: null references in
//! templates, lenient mock templates, reserved and remapped headers, trace continuation,
//! paths with extra slashes, Lambda URIs with a doubled slash, non-POST Lambda integrations
//! and binary media types with wildcards.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support;

use serde_json::{json, Value};
use support::*;

fn integration(kind: &str, function: &str, extra: Value) -> Value {
    let mut i = json!({"type": kind, "httpMethod": "POST", "uri": lambda_uri(function)});
    for (k, v) in extra.as_object().unwrap() {
        i[k] = v.clone();
    }
    json!({"responses": {"200": {"description": "ok"}}, "x-amazon-apigateway-integration": i})
}

fn api() -> Value {
    let reserved =
        json!({"requestParameters": {"integration.request.header.Authorization": "'x'"}});
    json!({
        "swagger": "2.0",
        "x-amazon-apigateway-binary-media-types": ["*/test"],
        "paths": {
            "/nulls": {"post": integration("aws", "mapped", json!({
                "requestTemplates": {"application/json": "#set($r = $input.path('$.missing')){\"version\": \"$stageVariables.version\", \"r\": \"$r\", \"enc\": \"$util.urlEncode($input.body.testAccess)\", \"same\": #if($r == \"\")true#{else}false#end}"},
                "responses": {"default": {"statusCode": "200",
                    "responseParameters": {"method.response.header.Date": "'mapped'", "method.response.header.Age": "'7'",
                                           "method.response.header.Transfer-Encoding": "'chunked'"}}}
            }))},
            "/proxy": {"get": integration("aws_proxy", "proxyfn", json!({
                // Ignored for proxy integrations: the event and the response are not altered.
                "requestParameters": {"integration.request.header.X-Extra": "'1'"},
                "requestTemplates": {"application/json": "{\"changed\": true}"},
                "responses": {"default": {"statusCode": "200", "responseParameters": {"method.response.header.X-Added": "'1'"}}}
            }))},
            "/doubled": {"get": {"x-amazon-apigateway-integration": {"type": "aws_proxy", "httpMethod": "POST",
                "uri": lambda_uri("proxyfn").replace("path/", "path//")}}},
            "/get-method": {"get": {"x-amazon-apigateway-integration": {"type": "aws_proxy", "httpMethod": "GET", "uri": lambda_uri("proxyfn")}}},
            "/reserved-proxy": {"get": integration("aws_proxy", "proxyfn", reserved.clone())},
            "/reserved-mapped": {"post": integration("aws", "mapped", reserved)},
            "/binary": {"get": integration("aws_proxy", "binaryfn", json!({}))},
            "/empty": {"get": integration("aws_proxy", "emptyfn", json!({}))},
            "/ctx": {"post": integration("aws", "mapped", json!({
                "requestTemplates": {"application/json": "#set($n = 'tag')#set($context.requestOverride.querystring[$n] = 'from-request'){}"},
                "responses": {"default": {"statusCode": "200", "responseTemplates": {"application/json":
                    "{\"seen\": \"$context.requestOverride.querystring.tag\", \"stage\": \"$context['stage']\"}"}}}
            }))},
            "/mock": {"get": {"responses": {"200": {"description": "ok"}}, "x-amazon-apigateway-integration": {"type": "mock",
                "requestTemplates": {"application/json": "{statusCode: 200}"},
                "responses": {"default": {"statusCode": "200"}}}}}
        }
    })
}

fn stub() -> InvokeStub {
    InvokeStub::start(|r| match r.function().as_str() {
        "mapped" => StubReply::payload(r#"{"ok": true}"#),
        "binaryfn" => {
            StubReply::payload(r#"{"statusCode": 200, "isBase64Encoded": true, "body": "aGk="}"#)
        }
        "emptyfn" => StubReply::payload(r#"{"statusCode": 200}"#),
        _ => {
            StubReply::payload(json!({"statusCode": 200, "body": r.json().to_string()}).to_string())
        }
    })
}

#[test]
fn behaviours_recorded_against_api_gateway() {
    let stub = stub();
    let envoy = Envoy::start(
        "fidelity",
        &format!("stage: dev\nlambda:\n  endpoint: {}\n", stub.url()),
        &api(),
        1,
    );
    let json_ct = [("Content-Type", "application/json")];

    // Null references render as nothing; `$r == ""` holds for a null `$r`.
    let r = envoy.request("POST", "/dev/nulls", &json_ct, b"{\"a\": 1}");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        stub.last("mapped").json(),
        json!({"version": "", "r": "", "enc": "", "same": true})
    );
    // Mapped response headers API Gateway reserves are renamed; Transfer-Encoding is not sent.
    assert_eq!(r.header("x-amzn-remapped-date"), Some("mapped"));
    assert_eq!(r.header("age"), Some("7"));
    assert_eq!(r.header("transfer-encoding"), None);

    // Proxy integrations ignore request parameters, request templates and response
    // parameters.
    let r = envoy.get("/dev/proxy");
    assert_eq!(r.status, 200);
    let event: Value = serde_json::from_str(&r.text()).unwrap();
    assert!(event["headers"].get("X-Extra").is_none(), "{event}");
    assert_eq!(event["httpMethod"], "GET");
    assert_eq!(r.header("x-added"), None);

    // A client's trace is continued: its Root is kept and a Parent added.
    let root = "Root=1-5759e988-bd862e3fe1be46a994272793";
    let r = envoy.request("GET", "/dev/proxy", &[("X-Amzn-Trace-Id", root)], b"");
    let trace = r.header("x-amzn-trace-id").unwrap();
    assert!(trace.starts_with(&format!("{root};Parent=")), "{trace}");
    let with_parent = format!("{root};Parent=53995c3f42cd8ad8;Sampled=1");
    let r = envoy.request(
        "GET",
        "/dev/proxy",
        &[("X-Amzn-Trace-Id", &with_parent)],
        b"",
    );
    assert_eq!(r.header("x-amzn-trace-id"), Some(with_parent.as_str()));

    // An extra slash before the stage, and a Lambda URI with a doubled slash.
    assert_eq!(envoy.get("//dev/proxy").status, 200);
    assert_eq!(envoy.get("/dev/doubled").status, 200);

    // What API Gateway imports but fails at every call: 500 without a trace header; the
    // other methods are served.
    for (method, path) in [
        ("GET", "/dev/get-method"),
        ("GET", "/dev/reserved-proxy"),
        ("POST", "/dev/reserved-mapped"),
    ] {
        let r = envoy.request(method, path, &json_ct, b"{}");
        assert_eq!(r.status, 500, "{path}: {}", r.text());
        assert_eq!(r.json(), json!({"message": "Internal server error"}));
        assert_eq!(
            r.header("x-amzn-errortype"),
            Some("InternalServerErrorException")
        );
        assert_eq!(r.header("x-amzn-trace-id"), None, "{path}");
    }
    assert!(
        envoy.log().contains("reserved header Authorization"),
        "{}",
        envoy.log()
    );

    // An Accept with a wildcard never matches a binary media type, even written the same way.
    let r = envoy.request("GET", "/dev/binary", &[("Accept", "*/test")], b"");
    assert_eq!(r.text(), "aGk=");

    // An empty proxy response keeps its Content-Type (Envoy drops it from empty local
    // replies; the filter puts it back).
    let r = envoy.get("/dev/empty");
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "");
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.header("content-length"), Some("0"));

    // `$context` is one writable map: what the request template set, the response
    // template reads.
    let r = envoy.request("POST", "/dev/ctx", &json_ct, b"{}");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json(), json!({"seen": "from-request", "stage": "dev"}));

    // A mock request template that is not strict JSON still selects its status.
    let r = envoy.get("/dev/mock");
    assert_eq!(r.status, 200, "{}", r.text());
}
