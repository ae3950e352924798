//! Whole-request fuzz target: any request target, headers (any bytes, as the glue decodes
//! them), body and integration answer go through a compiled gateway's three steps (routing,
//! the event, template or backend request, the mapping of the answer), for Lambda, HTTP and
//! AWS service integrations. Every step must answer: a panic, a hang
//! (libFuzzer's -timeout) or unbounded memory (-rss_limit_mb) is a finding.
//!
//! Input layout, split at 0xFF bytes: request target | header lines (`name:value`, `\n`
//! separated) | request body | Lambda answer (first byte picks the Invoke status).

#![no_main]

use apigw_edge::config::{parse_deployment, FilterConfig};
use apigw_edge::gateway::{Gateway, RequestHead, Start};
use apigw_edge::http::header_text;
use apigw_edge::http::UpstreamAnswer;
use apigw_edge::shared::memory::Cells;
use libfuzzer_sys::fuzz_target;
use serde_json::json;

const FN: &str = "arn:aws:apigateway:us-east-1:lambda:path/2015-03-31/functions/arn:aws:lambda:us-east-1:123456789012:function:";

fn gateway() -> Gateway {
    let proxy = json!({"x-amazon-apigateway-integration": {
        "type": "aws_proxy", "httpMethod": "POST", "uri": format!("{FN}proxy/invocations")}});
    let mapped = json!({
        "responses": {"200": {"description": "ok"}, "400": {"description": "bad"}},
        "x-amazon-apigateway-integration": {
            "type": "aws", "httpMethod": "POST", "uri": format!("{FN}mapped/invocations"),
            "requestTemplates": {"application/json":
                "{\"all\": $input.json('$'), \"q\": \"$util.escapeJavaScript($input.params('q'))\", \"keys\": \"$input.path('$').keySet()\", \"h\": \"$input.params().header\"}"},
            "responses": {
                "default": {"statusCode": "200", "responseTemplates": {"application/json": "#set($r = $input.path('$'))$input.json('$') $r.size()"}},
                ".*bad.*": {"statusCode": "400"}
            }
        }
    });
    let openapi = json!({
        "swagger": "2.0",
        "x-amazon-apigateway-binary-media-types": ["image/*"],
        "paths": {
            "/{proxy+}": {"x-amazon-apigateway-any-method": proxy},
            "/orders/{id}": {"post": mapped},
            "/backend/{proxy+}": {"x-amazon-apigateway-any-method": {"x-amazon-apigateway-integration": {
                "type": "http_proxy", "httpMethod": "ANY", "uri": "http://127.0.0.1:8000/x/{proxy}?a=1",
                "requestParameters": {"integration.request.path.proxy": "method.request.path.proxy",
                    "integration.request.querystring.q": "method.request.querystring.q"}}}},
            "/convert": {"post": {"x-amazon-apigateway-integration": {
                "type": "http", "httpMethod": "PUT", "uri": "http://127.0.0.1:8000/c",
                "contentHandling": "CONVERT_TO_BINARY",
                "requestTemplates": {"application/json": "$input.body"},
                "responses": {
                    "default": {"statusCode": "200", "contentHandling": "CONVERT_TO_TEXT"},
                    "4\\d{2}": {"statusCode": "400", "responseTemplates": {"application/json": "$input.json('$.m')"}}
                }}}},
            "/queue": {"post": {"x-amazon-apigateway-integration": {
                "type": "aws", "httpMethod": "POST", "uri": "arn:aws:apigateway:us-east-1:sqs:path/1/q",
                "requestTemplates": {"application/json": "Action=SendMessage&MessageBody=$util.urlEncode($input.body)"},
                "responses": {"default": {"statusCode": "200"}}}}},
            "/cached": {"get": {
                "parameters": [{"name": "q", "in": "query"}],
                "x-amazon-apigateway-integration": {
                    "type": "aws_proxy", "httpMethod": "POST", "uri": format!("{FN}proxy/invocations"),
                    "cacheKeyParameters": ["method.request.querystring.q"]}}}
        }
    });
    let deployment = parse_deployment(json!({
        "openapi": "api.json", "stage": "dev",
        "lambda": {"endpoint": "http://127.0.0.1:9000"},
        "cache": {"capacityMiB": 1},
        "cors": {"allowOrigins": ["*"]}
    }))
    .unwrap_or_else(|e| panic!("fuzz deployment: {e}"));
    match Gateway::compile(&FilterConfig::single(deployment, openapi)) {
        Ok(c) => c.gateway,
        Err(e) => panic!("fuzz gateway: {e:?}"),
    }
}

thread_local! {
    static GATEWAY: Gateway = gateway();
}

const METHODS: [&str; 5] = ["GET", "POST", "PUT", "OPTIONS", "DELETE"];

fuzz_target!(|data: &[u8]| {
    let mut parts = data.split(|b| *b == 0xff);
    let target = parts.next().unwrap_or_default();
    let header_lines = parts.next().unwrap_or_default();
    let body = parts.next().unwrap_or_default();
    let answer = parts.next().unwrap_or_default();
    let method = METHODS[usize::from(target.first().copied().unwrap_or(0)) % METHODS.len()];
    let mut headers = vec![(":authority".to_string(), "api.example".to_string())];
    for line in header_lines.split(|b| *b == b'\n') {
        if let Some(i) = line.iter().position(|b| *b == b':') {
            headers.push((
                header_text(line[..i].to_ascii_lowercase()),
                header_text(line[i + 1..].to_vec()),
            ));
        }
    }
    let head = RequestHead {
        method: method.into(),
        path: format!(
            "/dev/{}",
            header_text(target.get(1..).unwrap_or_default().to_vec())
        ),
        headers,
        source_ip: "203.0.113.9".into(),
        local_port: Some(8080),
        protocol: "HTTP/1.1".into(),
        request_id: "c6af9ac6-7b61-11e6-9a41-93e8deadbeef".into(),
        now_ms: 1_700_000_000_000,
        client_cert: None,
        body_follows: false,
    };
    GATEWAY.with(|g| {
        let cells = Cells::default();
        let Start::NeedBody(routed) = g.start(&head, &cells) else {
            return;
        };
        if g.invoke(&head, &routed, body).is_err() {
            return;
        }
        let status = match answer.first() {
            None => None,
            Some(b) => Some([200, 200, 200, 429, 500, 502, 400][usize::from(*b) % 7]),
        };
        let mut resp_headers = Vec::new();
        if answer.first().is_some_and(|b| b % 3 == 0) {
            resp_headers.push(("x-amz-function-error".to_string(), "Unhandled".to_string()));
        }
        let resp = UpstreamAnswer {
            host_reply: None,
            status,
            headers: resp_headers,
            body: answer.get(1..).unwrap_or_default().to_vec(),
        };
        let outcome = g.finish(&head, &routed, &resp);
        assert!(
            (200..=599).contains(&outcome.reply.status),
            "status {}",
            outcome.reply.status
        );
    });
});
