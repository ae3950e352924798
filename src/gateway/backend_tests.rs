//! The HTTP side of the integration stage: calls to `http_proxy` and `http` backends and the
//! replies made from their answers.

use serde_json::json;

use super::tests::{gateway_with, head};
use super::*;
use crate::http::UpstreamAnswer;
use crate::shared::memory::Cells;

fn backend_gateway() -> Gateway {
    gateway_with(
        json!({"stageVariables": {"host": "10.0.0.5:8080"}, "limits": {"maxResponseBytes": 100}}),
        json!({
            "/p/{proxy+}": {"get": {"x-amazon-apigateway-integration": {
                "type": "http_proxy", "httpMethod": "ANY",
                "uri": "http://${stageVariables.host}/{proxy}",
                "requestParameters": {"integration.request.path.proxy": "method.request.path.proxy"}}}},
            "/h": {"get": {"x-amazon-apigateway-integration": {
                "type": "http", "httpMethod": "GET", "uri": "https://api.example.com/items",
                "responses": {"default": {"statusCode": "200",
                    "responseTemplates": {"application/json": "{\"n\": $input.json('$.n')}"}},
                    "404": {"statusCode": "404"}}}}}
        }),
    )
}

fn answer(g: &Gateway, path: &str, status: Option<u16>, body: &str) -> Outcome {
    let h = head("GET", path, &[]);
    let Start::NeedBody(routed) = g.start(&h, &Cells::default()) else {
        panic!("GET {path} did not route")
    };
    let resp = UpstreamAnswer {
        host_reply: None,
        status,
        headers: vec![("Server".into(), "b".into())],
        body: body.as_bytes().to_vec(),
    };
    g.finish(&h, &routed, &resp)
}

#[test]
fn calls_go_to_the_backend_cluster() {
    let g = backend_gateway();
    for (path, cluster, want_path) in [
        (
            "/stage/p/a/b?x=1",
            "apigw_backend_http_10_0_0_5_8080",
            "/a/b?x=1",
        ),
        (
            "/stage/h?ignored=1",
            "apigw_backend_https_api_example_com_443",
            "/items",
        ),
    ] {
        let h = head("GET", path, &[]);
        let Start::NeedBody(routed) = g.start(&h, &Cells::default()) else {
            panic!("{path} did not route")
        };
        let call = g.invoke(&h, &routed, b"").unwrap();
        assert_eq!(call.cluster, cluster, "{path}");
        assert_eq!(crate::http::header(&call.headers, ":path"), Some(want_path));
    }
    let mut backends: Vec<String> = g
        .http_backends()
        .iter()
        .map(|b| b.endpoint.authority())
        .collect();
    backends.sort();
    assert_eq!(backends, vec!["10.0.0.5:8080", "api.example.com"]);
    assert!(g.clusters().contains(&"apigw_backend_http_10_0_0_5_8080"));
}

#[test]
fn answers_become_replies_or_api_gateway_errors() {
    let g = backend_gateway();
    let oversized = "x".repeat(101);
    for (path, status, body, want_status, want_body) in [
        ("/stage/p/a", Some(418), "teapot", 418, "teapot"),
        ("/stage/h", Some(200), r#"{"n": 2}"#, 200, r#"{"n": 2}"#),
        ("/stage/h", Some(404), "gone", 404, "gone"),
        (
            "/stage/p/a",
            Some(504),
            "upstream request timeout",
            504,
            r#"{"message":"Endpoint request timed out"}"#,
        ),
        (
            "/stage/p/a",
            Some(503),
            "upstream connect error or disconnect/reset before headers. reset reason: connection failure",
            500,
            r#"{"message":"Internal server error"}"#,
        ),
        ("/stage/p/a", None, "", 500, r#"{"message":"Internal server error"}"#),
        (
            "/stage/p/a",
            Some(200),
            oversized.as_str(),
            500,
            r#"{"message":"Internal server error"}"#,
        ),
    ] {
        let out = answer(&g, path, status, body);
        assert_eq!(out.reply.status, want_status, "{path} {status:?}");
        assert_eq!(out.reply.body_text(), want_body, "{path} {status:?}");
        assert_eq!(out.log.is_some(), want_status == 500 || want_status == 504);
    }
    let proxied = answer(&g, "/stage/p/a", Some(200), "ok");
    assert_eq!(proxied.reply.header("x-amzn-Remapped-Server"), Some("b"));
    let mapped = answer(&g, "/stage/h", Some(200), r#"{"n": 1}"#);
    assert_eq!(mapped.reply.header("x-amzn-Remapped-Server"), None);
    assert_eq!(mapped.reply.header("Server"), None);
}

#[test]
fn apis_without_lambda_integrations_need_no_lambda_section() {
    let compile = |paths: serde_json::Value| {
        Gateway::compile(&crate::config::FilterConfig {
            deployment: crate::config::parse_deployment(json!({"openapi": "a.json", "stage": "s"}))
                .unwrap(),
            openapi: json!({"swagger": "2.0", "paths": paths}),
            exports: Default::default(),
        })
    };
    let http_only = compile(json!({"/h": {"get": {"x-amazon-apigateway-integration": {
        "type": "http_proxy", "httpMethod": "GET", "uri": "http://127.0.0.1:8000/"}}}}));
    let g = http_only.unwrap().gateway;
    assert_eq!(g.clusters(), vec!["apigw_backend_http_127_0_0_1_8000"]);
    let errors = compile(json!({"/l": {"get": {"x-amazon-apigateway-integration": {
        "type": "aws_proxy", "httpMethod": "POST",
        "uri": "arn:aws:apigateway:us-east-1:lambda:path/2015-03-31/functions/arn:aws:lambda:us-east-1:1:function:f/invocations"}}}}))
    .unwrap_err();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0].location, "deployment.lambda.endpoint");
    assert!(
        errors[0].message.contains("openapi.paths./l.get"),
        "{}",
        errors[0].message
    );
}

#[test]
fn aws_service_calls_are_addressed_and_signed_for_their_service() {
    let mut g = gateway_with(
        json!({"aws": {"signing": "FILTER", "endpoints": {"kinesis": "http://127.0.0.1:5000"}}}),
        json!({
            "/k": {"post": {"x-amazon-apigateway-integration": {
                "type": "aws", "httpMethod": "POST",
                "uri": "arn:aws:apigateway:eu-west-1:kinesis:action/PutRecord",
                "requestTemplates": {"application/json": "{\"StreamName\": \"s\"}"}}}},
            "/q": {"post": {"x-amazon-apigateway-integration": {
                "type": "aws", "httpMethod": "POST",
                "uri": "arn:aws:apigateway:us-east-1:sqs:path/123456789012/orders"}}}
        }),
    );
    let env = |name: &str| match name {
        "AWS_ACCESS_KEY_ID" => Some("AKIDEXAMPLE".to_string()),
        "AWS_SECRET_ACCESS_KEY" => Some("secret".to_string()),
        _ => None,
    };
    g.load_credentials(&env).unwrap();
    for (path, cluster, want_path, target, scope) in [
        (
            "/stage/k",
            "apigw_aws_kinesis_http_127_0_0_1_5000",
            "/?Action=PutRecord",
            Some("Kinesis_20131202.PutRecord"),
            "/eu-west-1/kinesis/aws4_request",
        ),
        (
            "/stage/q",
            "apigw_aws_sqs_https_sqs_us_east_1_amazonaws_com_443",
            "/123456789012/orders",
            None,
            "/us-east-1/sqs/aws4_request",
        ),
    ] {
        let h = head("POST", path, &[("content-type", "application/json")]);
        let Start::NeedBody(routed) = g.start(&h, &Cells::default()) else {
            panic!("{path} did not route")
        };
        let call = g.invoke(&h, &routed, b"{}").unwrap();
        let header = |n: &str| crate::http::header(&call.headers, n);
        assert_eq!(call.cluster, cluster, "{path}");
        assert_eq!(header(":path"), Some(want_path), "{path}");
        assert_eq!(header("x-amz-target"), target, "{path}");
        let auth = header("authorization").unwrap_or_default();
        assert!(auth.contains(scope), "{path}: {auth}");
        assert!(header("x-amz-date").is_some(), "{path}");
    }
    // Without the credentials the configuration is refused, naming the field.
    let mut again = gateway_with(
        json!({"aws": {"signing": "FILTER"}}),
        json!({"/q": {"post": {"x-amazon-apigateway-integration": {
            "type": "aws", "httpMethod": "POST",
            "uri": "arn:aws:apigateway:us-east-1:sqs:path/1/q"}}}}),
    );
    let e = again.load_credentials(&|_| None).unwrap_err();
    assert_eq!(e.location, "deployment.lambda.credentials.accessKeyIdEnv");
}

#[test]
fn content_handling_converts_between_text_and_binary() {
    let g = gateway_with(
        json!({}),
        json!({
            "/up": {"post": {"x-amazon-apigateway-integration": {
                "type": "http", "httpMethod": "POST", "uri": "http://10.0.0.5/up",
                "contentHandling": "CONVERT_TO_TEXT",
                "requestTemplates": {"image/png": "{\"data\": \"$input.body\"}"},
                "responses": {"default": {"statusCode": "200", "contentHandling": "CONVERT_TO_BINARY",
                    "responseParameters": {"method.response.header.Content-Type": "'image/png'"}}}}}},
            "/raw": {"post": {"x-amazon-apigateway-integration": {
                "type": "http", "httpMethod": "POST", "uri": "http://10.0.0.5/raw",
                "contentHandling": "CONVERT_TO_BINARY",
                "responses": {"default": {"statusCode": "200"}}}}}
        }),
    );
    let png = b"\x89PNG\r\n\x1a\n\x00";
    // A binary upload reaches the template as base64 text.
    let h = head("POST", "/stage/up", &[("content-type", "image/png")]);
    let Start::NeedBody(routed) = g.start(&h, &Cells::default()) else {
        panic!()
    };
    let call = g.invoke(&h, &routed, png).unwrap();
    assert_eq!(call.body, br#"{"data": "iVBORw0KGgoA"}"#);
    // The backend's base64 answer goes back as bytes; no template applies.
    let resp = UpstreamAnswer {
        host_reply: None,
        status: Some(200),
        headers: vec![("Content-Type".into(), "text/plain".into())],
        body: b"iVBORw0KGgoA".to_vec(),
    };
    let out = g.finish(&h, &routed, &resp);
    assert_eq!(out.reply.body, png);
    assert_eq!(out.reply.header("content-type"), Some("image/png"));
    // Text converted to binary: base64 decoded before sending; not base64: 500.
    let h = head("POST", "/stage/raw", &[("content-type", "text/plain")]);
    let Start::NeedBody(routed) = g.start(&h, &Cells::default()) else {
        panic!()
    };
    assert_eq!(g.invoke(&h, &routed, b"aGk=").unwrap().body, b"hi");
    let refused = g.invoke(&h, &routed, b"not base64!").unwrap_err();
    assert_eq!(refused.reply.status, 500);
    // A binary answer to a text Accept is base64-encoded (no contentHandling).
    let h = head("POST", "/stage/raw", &[("accept", "application/json")]);
    let resp = UpstreamAnswer {
        host_reply: None,
        status: Some(200),
        headers: vec![("Content-Type".into(), "image/png".into())],
        body: png.to_vec(),
    };
    let out = g.finish(&h, &routed, &resp);
    assert_eq!(out.reply.body, b"iVBORw0KGgoA");
}

/// Which integration requests go out in place of the client's: only with `ROUTER`, and only
/// when the body Envoy holds can become the call's (the client sent one, or neither has one).
#[test]
fn integration_requests_are_forwarded_when_their_body_can_take_the_clients_place() {
    let paths = json!({
        "/p/{proxy+}": {"x-amazon-apigateway-any-method": {"x-amazon-apigateway-integration": {
            "type": "http_proxy", "httpMethod": "ANY", "uri": "http://10.0.0.5:8080/{proxy}",
            "requestParameters": {"integration.request.path.proxy": "method.request.path.proxy"}}}},
        "/l": {"x-amazon-apigateway-any-method": {"x-amazon-apigateway-integration": {
            "type": "aws_proxy", "httpMethod": "POST",
            "uri": "arn:aws:apigateway:us-east-1:lambda:path/2015-03-31/functions/arn:aws:lambda:us-east-1:123456789012:function:hello/invocations"}}},
        "/m": {"get": {"x-amazon-apigateway-integration": {
            "type": "mock", "requestTemplates": {"application/json": "{\"statusCode\": 200}"},
            "responses": {"default": {"statusCode": "200"}}}}}
    });
    let router = gateway_with(json!({}), paths.clone());
    let dispatch = gateway_with(json!({"forwarding": "DISPATCH"}), paths);
    let cells = Cells::default();
    let host = super::tests::bare_host(&cells, None);
    // (gateway, method, path, body follows the headers, body, forwarded)
    for (g, method, path, follows, body, want) in [
        (&router, "GET", "/stage/p/a", false, "", Some(true)),
        (&router, "POST", "/stage/p/a", true, "{}", Some(true)),
        (&router, "POST", "/stage/p/a", true, "", Some(true)),
        (&router, "POST", "/stage/l", true, "{\"a\":1}", Some(true)),
        // A GET has no body for the Invoke event to replace.
        (&router, "GET", "/stage/l", false, "", Some(false)),
        (&dispatch, "GET", "/stage/p/a", false, "", Some(false)),
        (&dispatch, "POST", "/stage/l", true, "{}", Some(false)),
        // A mock answers without a call.
        (&router, "GET", "/stage/m", false, "", None),
    ] {
        let mut h = head(method, path, &[]);
        h.body_follows = follows;
        let mut ex = g.begin(h);
        let mut step = g.advance(&mut ex, &host);
        if let Step::NeedBody = step {
            step = g.body(&mut ex, body.as_bytes().to_vec(), &host);
        }
        let forwarded = match step {
            Step::Call(call) => Some(call.forward),
            Step::Reply(_) => None,
            Step::NeedBody => panic!("{method} {path}: the body was handed over"),
        };
        assert_eq!(forwarded, want, "{method} {path} follows={follows}");
    }
}

/// A forwarded answer the host made itself (the upstream timed out or could not be reached)
/// is that failure whatever its body says, and an answer over `limits.maxResponseBytes` is
/// refused for every integration type.
#[test]
fn host_replies_and_oversized_answers_are_failures() {
    let g = backend_gateway();
    let h = head("GET", "/stage/p/a", &[]);
    let Start::NeedBody(routed) = g.start(&h, &Cells::default()) else {
        panic!("GET /stage/p/a did not route")
    };
    for (host_reply, body, want_status, want_log) in [
        (
            Some("upstream_response_timeout"),
            "{\"message\":\"Endpoint request timed out\"}",
            504,
            "did not answer within the integration timeout",
        ),
        (
            Some("upstream_reset_before_response_started{connection_refused}"),
            "{\"message\":\"Service Unavailable\"}",
            500,
            "connection_refused",
        ),
        (
            None,
            &"x".repeat(101),
            500,
            "(101 bytes or more) is over limits.maxResponseBytes (100)",
        ),
    ] {
        let resp = UpstreamAnswer {
            host_reply: host_reply.map(str::to_string),
            status: Some(503),
            headers: Vec::new(),
            body: body.as_bytes().to_vec(),
        };
        let out = g.finish(&h, &routed, &resp);
        assert_eq!(out.reply.status, want_status, "{host_reply:?}");
        let log = out.log.unwrap_or_default();
        assert!(log.contains(want_log), "{host_reply:?}: {log}");
    }
    let lambda = gateway_with(
        json!({"limits": {"maxResponseBytes": 10}}),
        json!({"/l": {"get": {"x-amazon-apigateway-integration": {
            "type": "aws_proxy", "httpMethod": "POST",
            "uri": "arn:aws:apigateway:us-east-1:lambda:path/2015-03-31/functions/arn:aws:lambda:us-east-1:123456789012:function:hello/invocations"}}}}),
    );
    let h = head("GET", "/stage/l", &[]);
    let Start::NeedBody(routed) = lambda.start(&h, &Cells::default()) else {
        panic!("GET /stage/l did not route")
    };
    let resp = UpstreamAnswer {
        host_reply: None,
        status: Some(200),
        headers: vec![("x-amzn-RequestId".into(), "r".into())],
        body: br#"{"statusCode": 200, "body": "a long body"}"#.to_vec(),
    };
    let out = lambda.finish(&h, &routed, &resp);
    assert_eq!(out.reply.status, 500);
    assert!(out
        .log
        .unwrap_or_default()
        .contains("maxResponseBytes (10)"));
}
