//! Non-proxy Lambda integrations, VTL mock integrations and gateway responses through real
//! Envoy (two workers) and the built filter, against a scripted Invoke API.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support;

use serde_json::{json, Value};
use support::*;

fn aws_op(function: &str, extra: Value) -> Value {
    let mut integ = json!({"type": "aws", "httpMethod": "POST", "uri": lambda_uri(function)});
    for (k, v) in extra.as_object().unwrap() {
        integ[k] = v.clone();
    }
    json!({
        "responses": {"200": {"description": "ok"}, "202": {"description": "accepted"},
                      "400": {"description": "bad"}, "404": {"description": "missing"},
                      "500": {"description": "error"}},
        "x-amazon-apigateway-integration": integ
    })
}

/// An API in the shape exports have: an order lookup with request and response templates
/// and error mapping, an asynchronous job submission, a VTL mock and custom gateway
/// responses.
fn api() -> Value {
    let orders = aws_op(
        "orders",
        json!({
            "passthroughBehavior": "never",
            "requestTemplates": {"application/json": concat!(
                "#set($expand = $input.params('expand'))\n",
                "{\n",
                "  \"orderId\": \"$input.params('id')\",\n",
                "  \"expand\": #if($expand == \"\")null#{else}\"$util.escapeJavaScript($expand)\"#end,\n",
                "  \"note\": \"$!util.escapeJavaScript($input.path('$.note')).replaceAll(\"\\\\'\", \"'\")\",\n",
                "  \"lines\": [#foreach($l in $input.path('$.lines'))\"$l.sku x$l.qty\"#if($foreach.hasNext), #end#end],\n",
                "  \"stage\": \"$context.stage\",\n",
                "  \"env\": \"$stageVariables.env\",\n",
                "  \"agent\": \"$input.params('User-Agent')\"\n",
                "}"
            )},
            "responses": {
                "default": {
                    "statusCode": "200",
                    "responseParameters": {
                        "method.response.header.X-Order-Version": "integration.response.body.version",
                        "method.response.header.X-Stage": "context.stage",
                        "method.response.header.X-Static": "'fixed'"
                    },
                    "responseTemplates": {
                        "application/json": "{\"id\": \"$input.path('$.id')\", \"total\": $input.json('$.total'), \"items\": $input.path('$.items').size()}",
                        "application/xml": "<order id=\"$input.path('$.id')\"/>"
                    }
                },
                ".*NotFound.*": {
                    "statusCode": "404",
                    "responseTemplates": {"application/json": "{\"message\": \"$util.escapeJavaScript($input.path('$.errorMessage'))\"}"}
                },
                ".*\"code\".*": {
                    "statusCode": "400",
                    "responseParameters": {"method.response.header.X-Error-Code": "integration.response.body.errorMessage.code"},
                    "responseTemplates": {"application/json": "#set($e = $util.parseJson($input.path('$.errorMessage'))){\"error\": \"$e.code\"}"}
                },
                "Internal.*": {
                    "statusCode": "500",
                    "responseTemplates": {"application/json": "#set($context.responseOverride.status = 503){\"message\": \"try later\"}"}
                }
            }
        }),
    );
    let jobs = aws_op(
        "jobs",
        json!({
            "requestParameters": {"integration.request.header.X-Amz-Invocation-Type": "'Event'"},
            "requestTemplates": {"application/json": "$input.json('$')"},
            "responses": {"default": {"statusCode": "202",
                "responseTemplates": {"application/json": "{\"accepted\": true, \"requestId\": \"$context.requestId\"}"}}}
        }),
    );
    let undeclared = aws_op(
        "undeclared",
        json!({"responses": {"default": {"statusCode": "418"}}}),
    );
    let status_mock = json!({
        "responses": {"200": {"description": "ok"}, "409": {"description": "conflict"}},
        "x-amazon-apigateway-integration": {
            "type": "mock",
            "requestTemplates": {"application/json": "#if($input.params('busy') == 'yes'){\"statusCode\": 409}#{else}{\"statusCode\": 200}#end"},
            "responses": {
                "default": {"statusCode": "200",
                    "responseParameters": {"method.response.header.X-Echo": "method.request.querystring.echo"},
                    "responseTemplates": {"application/json": "{\"ok\": true, \"stage\": \"$context.stage\"}"}},
                "409": {"statusCode": "409", "responseTemplates": {"application/json": "{\"ok\": false}"}}
            }
        }
    });
    json!({
        "swagger": "2.0",
        "paths": {
            "/orders/{id}": {"post": orders},
            "/jobs": {"post": jobs},
            "/teapot": {"get": undeclared},
            "/status": {"get": status_mock}
        },
        "x-amazon-apigateway-gateway-responses": {
            "DEFAULT_4XX": {
                "responseParameters": {"gatewayresponse.header.Access-Control-Allow-Origin": "'*'"},
                "responseTemplates": {"application/json": "{\"message\":$context.error.messageString,\"type\":\"$context.error.responseType\"}"}
            },
            "MISSING_AUTHENTICATION_TOKEN": {
                "statusCode": "404",
                "responseParameters": {"gatewayresponse.header.X-Stage": "stageVariables.env"},
                "responseTemplates": {"application/json": "{\"message\":\"Not Found\",\"path\":\"$context.path\"}"}
            },
            "DEFAULT_5XX": {"statusCode": "502"}
        }
    })
}

/// The Invoke API as the functions behave: `orders` fails by the order id, `jobs` is
/// invoked asynchronously.
fn stub() -> InvokeStub {
    InvokeStub::start(|r| {
        if r.function() == "jobs" {
            return StubReply::payload("").status(202);
        }
        if r.function() != "orders" {
            return StubReply::payload("{}");
        }
        let event = r.json();
        let error = |msg: &str| {
            StubReply::payload(json!({"errorMessage": msg, "errorType": "Error"}).to_string())
                .with_header("X-Amz-Function-Error", "Unhandled")
        };
        match event["orderId"].as_str().unwrap_or_default() {
            "missing" => error("Order NotFound: missing"),
            "invalid" => error(r#"{"code":"E42","reason":"bad sku"}"#),
            "crash" => error("Internal failure"),
            // How local emulators report a function error: HTTP 500 and the error payload.
            "emulated" => StubReply::emulator_error("Order NotFound (emulator)"),
            id => StubReply::payload(
                json!({"id": id, "total": 12.5, "items": [1, 2, 3], "version": "v7"}).to_string(),
            ),
        }
    })
}

fn start(stub: &InvokeStub, name: &str) -> Envoy {
    Envoy::start(
        name,
        &format!(
            "stage: s\nstageVariables:\n  env: e2e\nlambda:\n  endpoint: {}\n",
            stub.url()
        ),
        &api(),
        2,
    )
}

const JSON: (&str, &str) = ("Content-Type", "application/json");

#[test]
fn request_template_builds_the_event() {
    let stub = stub();
    let envoy = start(&stub, "mapping-request");
    let body =
        json!({"note": "it's \"fine\"", "lines": [{"sku": "a", "qty": 2}, {"sku": "b", "qty": 1}]});
    let r = envoy.request(
        "POST",
        "/s/orders/o-1?expand=items",
        &[JSON, ("User-Agent", "e2e/1")],
        body.to_string().as_bytes(),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let event = stub.last("orders").json();
    assert_eq!(
        event,
        json!({
            "orderId": "o-1", "expand": "items", "note": "it's \"fine\"",
            "lines": ["a x2", "b x1"], "stage": "s", "env": "e2e", "agent": "e2e/1"
        })
    );
    assert_eq!(
        stub.last("orders").header("x-amz-invocation-type"),
        Some("RequestResponse")
    );
    // No query parameter: the template's #if writes null.
    envoy.request(
        "POST",
        "/s/orders/o-2",
        &[JSON],
        br#"{"note": "", "lines": []}"#,
    );
    assert_eq!(stub.last("orders").json()["expand"], Value::Null);
}

#[test]
fn response_templates_headers_and_error_patterns() {
    let stub = stub();
    let envoy = start(&stub, "mapping-response");
    let r = envoy.request("POST", "/s/orders/o-1", &[JSON], b"{}");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json(), json!({"id": "o-1", "total": 12.5, "items": 3}));
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.header("x-order-version"), Some("v7"));
    assert_eq!(r.header("x-stage"), Some("s"));
    assert_eq!(r.header("x-static"), Some("fixed"));

    let r = envoy.request(
        "POST",
        "/s/orders/o-1",
        &[JSON, ("Accept", "application/xml")],
        b"{}",
    );
    assert_eq!(r.text(), r#"<order id="o-1"/>"#);
    assert_eq!(r.header("content-type"), Some("application/xml"));

    for (id, status, body) in [
        (
            "missing",
            404,
            json!({"message": "Order NotFound: missing"}),
        ),
        (
            "emulated",
            404,
            json!({"message": "Order NotFound (emulator)"}),
        ),
        ("invalid", 400, json!({"error": "E42"})),
        ("crash", 503, json!({"message": "try later"})),
    ] {
        let r = envoy.request("POST", &format!("/s/orders/{id}"), &[JSON], b"{}");
        assert_eq!(r.status, status, "{id}: {}", r.text());
        assert_eq!(r.json(), body, "{id}");
        assert!(r.header("x-amzn-requestid").is_some());
    }
    let r = envoy.request("POST", "/s/orders/invalid", &[JSON], b"{}");
    assert_eq!(r.header("x-error-code"), Some("E42"));
}

#[test]
fn passthrough_never_and_bad_bodies_are_refused_before_lambda() {
    let stub = stub();
    let envoy = start(&stub, "mapping-refused");
    let r = envoy.request(
        "POST",
        "/s/orders/o-1",
        &[("Content-Type", "text/plain")],
        b"hello",
    );
    assert_eq!(r.status, 415, "{}", r.text());
    // DEFAULT_4XX customises every 4xx: its template and CORS header.
    assert_eq!(
        r.json(),
        json!({"message": "Unsupported Media Type", "type": "UNSUPPORTED_MEDIA_TYPE"})
    );
    assert_eq!(r.header("access-control-allow-origin"), Some("*"));
    assert_eq!(r.header("x-amzn-errortype"), Some("BadRequestException"));

    let r = envoy.request("POST", "/s/orders/o-1", &[JSON], b"{not json");
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(r.json()["type"], "BAD_REQUEST_BODY");
    assert!(stub.requests().is_empty(), "{:?}", stub.requests());
}

#[test]
fn asynchronous_invocation() {
    let stub = stub();
    let envoy = start(&stub, "mapping-async");
    let r = envoy.request("POST", "/s/jobs", &[JSON], br#"{"job": 1}"#);
    assert_eq!(r.status, 202, "{}", r.text());
    let body = r.json();
    assert_eq!(body["accepted"], true);
    assert_eq!(
        body["requestId"].as_str(),
        r.header("x-amzn-requestid"),
        "$context.requestId is the request's id"
    );
    let call = stub.last("jobs");
    assert_eq!(call.header("x-amz-invocation-type"), Some("Event"));
    assert_eq!(call.json(), json!({"job": 1}));
}

#[test]
fn undeclared_method_response_is_a_500() {
    let stub = stub();
    let envoy = start(&stub, "mapping-undeclared");
    let r = envoy.get("/s/teapot");
    // DEFAULT_5XX overrides the status of every 5xx.
    assert_eq!(r.status, 502, "{}", r.text());
    assert_eq!(r.json(), json!({"message": "Internal server error"}));
    assert!(envoy
        .log()
        .contains("no method response is defined for status 418"));
}

#[test]
fn vtl_mock_and_custom_missing_token_response() {
    let stub = stub();
    let envoy = start(&stub, "mapping-mock");
    let r = envoy.get("/s/status?echo=hi");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json(), json!({"ok": true, "stage": "s"}));
    assert_eq!(r.header("x-echo"), Some("hi"));
    let r = envoy.get("/s/status?busy=yes");
    assert_eq!((r.status, r.json()), (409, json!({"ok": false})));

    let r = envoy.get("/s/nowhere");
    assert_eq!(r.status, 404);
    assert_eq!(
        r.json(),
        json!({"message": "Not Found", "path": "/s/nowhere"})
    );
    assert_eq!(r.header("x-stage"), Some("e2e"));
    assert_eq!(r.header("access-control-allow-origin"), Some("*"));
    assert!(stub.requests().is_empty(), "mocks never call Lambda");
}
