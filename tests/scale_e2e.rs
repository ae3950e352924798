//! A large API through real Envoy: an export of 14,000 methods (about 5 MB, near API
//! Gateway's 6 MB import limit) must load, route, and fit in memory at 1 and 4 workers.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support;

use serde_json::{json, Map, Value};
use support::*;

/// Resident memory Envoy may hold with the large export at 4 workers. Measured: 293 MiB
/// (246 MiB before the JSON Schema validator made the module 1.5 MB larger; 664 MiB before
/// the export was read path by path, slimmed and its routes shared). About 170 MiB of it is
/// Envoy with V8 and the module before any API is loaded.
const RSS_LIMIT_4_WORKERS_MIB: u64 = 340;
/// What each worker beyond the first may add (measured: about 19 MiB).
const RSS_PER_WORKER_MIB: u64 = 30;

/// 7,000 resources with GET and POST each, documented the way exports are: summaries,
/// parameters, responses with models, and a mapped method every tenth resource.
pub fn large_export() -> Value {
    let mut paths = Map::new();
    for i in 0..7_000 {
        let get = json!({
            "summary": format!("Fetch item {i}"),
            "operationId": format!("getItem{i}"),
            "produces": ["application/json"],
            "parameters": [
                {"name": "id", "in": "path", "required": true, "type": "string"},
                {"name": "expand", "in": "query", "required": false, "type": "string"}
            ],
            "responses": {"200": {"description": "200 response", "schema": {"$ref": "#/definitions/Empty"}}},
            "x-amazon-apigateway-integration": {
                "type": "aws_proxy", "httpMethod": "POST", "uri": lambda_uri("items"),
                "passthroughBehavior": "when_no_match", "timeoutInMillis": 29000,
                "responses": {"default": {"statusCode": "200"}}
            }
        });
        let post = if i % 10 == 0 {
            json!({
                "summary": format!("Replace item {i}"),
                "responses": {"200": {"description": "200 response"}},
                "x-amazon-apigateway-integration": {
                    "type": "aws", "httpMethod": "POST", "uri": lambda_uri("items"),
                    "requestTemplates": {"application/json": format!("{{\"item\": {i}, \"body\": $input.json('$')}}")},
                    "responses": {"default": {"statusCode": "200"}}
                }
            })
        } else {
            json!({
                "summary": format!("Replace item {i}"),
                "responses": {"200": {"description": "200 response"}},
                "x-amazon-apigateway-integration": {
                    "type": "aws_proxy", "httpMethod": "POST", "uri": lambda_uri("items")
                }
            })
        };
        paths.insert(
            format!("/catalogue/section{}/items{i}/{{id}}", i % 50),
            json!({"get": get, "post": post}),
        );
    }
    json!({
        "swagger": "2.0",
        "info": {"title": "large", "version": "1"},
        "paths": paths,
        "definitions": {"Empty": {"type": "object", "title": "Empty Schema"}}
    })
}

#[test]
fn a_14000_method_export_loads_routes_and_fits_in_memory() {
    let api = large_export();
    let size = serde_json::to_vec(&api).unwrap().len();
    assert!(size > 4 << 20, "export is only {size} bytes");
    let stub = InvokeStub::start(|_| {
        StubReply::payload(json!({"statusCode": 200, "body": "ok"}).to_string())
    });
    let mut rss = Vec::new();
    for workers in [1, 4] {
        let envoy = Envoy::start(
            &format!("scale-{workers}"),
            &format!("stage: prod\nlambda:\n  endpoint: {}\n", stub.url()),
            &api,
            workers,
        );
        // Every worker has configured by the time it serves; touch each a few times.
        for i in (0..7_000).step_by(997) {
            let r = envoy.get(&format!("/prod/catalogue/section{}/items{i}/x", i % 50));
            assert_eq!(r.status, 200, "{}", r.text());
        }
        let kib = rss_kib(envoy.pid());
        eprintln!(
            "export of {size} bytes, {workers} worker(s): RSS {} MiB",
            kib >> 10
        );
        rss.push(kib >> 10);
    }
    assert!(
        rss[1] < RSS_LIMIT_4_WORKERS_MIB && rss[1] < rss[0] + 3 * RSS_PER_WORKER_MIB,
        "RSS at 4 workers is {} MiB (1 worker: {} MiB)",
        rss[1],
        rss[0]
    );
}
