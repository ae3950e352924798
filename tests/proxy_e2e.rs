//! Lambda proxy integration through real Envoy and the built filter, against a scripted
//! Invoke API that records what it receives.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support;

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};
use support::*;

/// Answers every invocation with the invoked function's name as the body.
fn name_echo() -> InvokeStub {
    InvokeStub::start(|r| {
        StubReply::payload(json!({"statusCode": 200, "body": r.function()}).to_string())
    })
}

#[test]
fn routing_precedence_through_envoy() {
    let stub = name_echo();
    let api = json!({"swagger": "2.0", "paths": {
        "/test": {"post": proxy_op("test_post")},
        "/test/any": {"x-amazon-apigateway-any-method": proxy_op("test_any")},
        "/{proxy+}": {"options": proxy_op("greedy_options"), "get": proxy_op("greedy_get")},
        "/part1": {"get": proxy_op("part1")},
        "/part1/hardcoded-value": {"get": proxy_op("hardcoded")},
        "/items/{id}": {"get": proxy_op("item"), "x-amazon-apigateway-any-method": proxy_op("item_any")}
    }});
    let envoy = Envoy::start(
        "routing",
        &format!("stage: s\nlambda:\n  endpoint: {}\n", stub.url()),
        &api,
        1,
    );
    for (method, path, want) in [
        ("OPTIONS", "/s/test", Some("greedy_options")),
        ("POST", "/s/test", Some("test_post")),
        ("OPTIONS", "/s/test/any", Some("test_any")),
        ("GET", "/s/test/any", Some("test_any")),
        ("GET", "/s/test", Some("greedy_get")),
        ("GET", "/s/part1", Some("part1")),
        ("GET", "/s/part1/", Some("part1")),
        ("GET", "/s//part1", Some("part1")),
        ("GET", "/s/part1/hardcoded-value", Some("hardcoded")),
        ("GET", "/s/part1/random-value", Some("greedy_get")),
        ("GET", "/s/Part1", Some("greedy_get")),
        ("GET", "/s/items/7", Some("item")),
        ("DELETE", "/s/items/7", Some("item_any")),
        ("HEAD", "/s/items/7", Some("item_any")),
        ("DELETE", "/s/part1", None),
        ("HEAD", "/s/part1", None),
        ("GET", "/s", None),
        ("GET", "/s/", None),
        ("GET", "/wrong/part1", None),
        ("GET", "/", None),
        ("PUT", "/s/test", None),
    ] {
        let r = envoy.request(method, path, &[], b"");
        match want {
            Some(function) => {
                assert_eq!(r.status, 200, "{method} {path}: {}", r.text());
                if method != "HEAD" {
                    assert_eq!(r.text(), function, "{method} {path}");
                }
                assert_eq!(
                    stub.requests().last().unwrap().function(),
                    function,
                    "{method} {path}"
                );
            }
            None => {
                assert_eq!(r.status, 403, "{method} {path}");
                assert_eq!(
                    r.header("x-amzn-errortype"),
                    Some("MissingAuthenticationTokenException")
                );
                assert_eq!(r.header("content-type"), Some("application/json"));
                if method != "HEAD" {
                    assert_eq!(
                        r.text(),
                        r#"{"message":"Missing Authentication Token"}"#,
                        "{method} {path}"
                    );
                }
            }
        }
        assert!(r.header("x-amzn-requestid").is_some(), "{method} {path}");
    }
    // Path parameters keep their percent-encoding; the greedy parameter loses a trailing slash.
    envoy.get("/s/a%2Fb/c%20d/");
    let e = stub.last("greedy_get").json();
    assert_eq!(e["pathParameters"], json!({"proxy": "a%2Fb/c%20d"}));
    assert_eq!(e["path"], "/a%2Fb/c%20d/");
    assert_eq!(e["requestContext"]["path"], "/s/a%2Fb/c%20d/");
}

/// The event is the same whether the `POST`'s Invoke is sent in place of the client's
/// request or dispatched (each build's default is one of the two; both are run on both).
#[test]
fn proxy_event_field_for_field() {
    for forwarding in ["ROUTER", "DISPATCH"] {
        proxy_event_sent(forwarding);
    }
}

fn proxy_event_sent(forwarding: &str) {
    let stub = name_echo();
    let api = json!({"swagger": "2.0", "paths": {"/items/{id}": {"post": proxy_op("items"), "get": proxy_op("items")}}});
    let deployment = format!(
        "stage: prod\nstageVariables:\n  color: blue\napi:\n  id: abcdef1234\n  accountId: \"111122223333\"\nlambda:\n  endpoint: {}\nforwarding: {forwarding}\n",
        stub.url()
    );
    let envoy = Envoy::start(
        &format!("event-{}", forwarding.to_lowercase()),
        &deployment,
        &api,
        1,
    );
    let before = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let r = envoy.request(
        "POST",
        "/prod/items/42?q=a+b&q=c&enc=%2B%20x&flag",
        &[
            ("User-Agent", "e2e/1.0"),
            ("Content-Type", "application/json; charset=utf-8"),
            ("X-Forwarded-For", "198.51.100.9"),
            // Envoy overwrites the connection facts a client claims: the event shows the
            // real peer, port and protocol, and no such header.
            ("X-Apigw-Edge-Connection", "HTTP/2 203.0.113.7:1 1"),
            ("X-Repeat", "one"),
            ("X-Repeat", "two"),
            ("Accept", "*/*"),
        ],
        br#"{"a":1}"#,
    );
    let after = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    assert_eq!(r.status, 200, "{forwarding}: {}", r.text());
    let call = stub.last("items");
    assert_eq!(call.method, "POST");
    assert_eq!(call.path, "/2015-03-31/functions/items/invocations");
    assert_eq!(call.header("content-type"), Some("application/json"));
    assert_eq!(
        call.header("x-amz-invocation-type"),
        Some("RequestResponse")
    );
    // How the Invoke left shows: a dispatched call is Envoy's internal request, whose async
    // client names its timeout; the forwarding route adds no header of Envoy's.
    let envoy_headers: Vec<&str> = call
        .headers
        .iter()
        .map(|(k, _)| k.as_str())
        .filter(|k| k.to_ascii_lowercase().starts_with("x-envoy"))
        .collect();
    if forwarding == "DISPATCH" {
        assert!(
            call.header("x-envoy-expected-rq-timeout-ms").is_some(),
            "{envoy_headers:?}"
        );
    } else {
        assert!(envoy_headers.is_empty(), "{envoy_headers:?}");
    }
    let e = call.json();
    let ctx = &e["requestContext"];
    let request_id = r.header("x-amzn-requestid").unwrap();
    assert_eq!(ctx["requestId"], request_id);
    assert_eq!(
        ctx["extendedRequestId"],
        r.header("x-amz-apigw-id").unwrap()
    );
    let epoch = ctx["requestTimeEpoch"].as_u64().unwrap();
    assert!(
        (before..=after).contains(&epoch),
        "{epoch} not in {before}..{after}"
    );
    let trace = e["headers"]["X-Amzn-Trace-Id"].as_str().unwrap();
    assert_eq!(r.header("x-amzn-trace-id"), Some(trace));
    let host = format!("127.0.0.1:{}", envoy.port);
    let port = envoy.port.to_string();
    let want = json!({
        "resource": "/items/{id}",
        "path": "/items/42",
        "httpMethod": "POST",
        "headers": {
            "Host": host, "User-Agent": "e2e/1.0", "Content-Type": "application/json; charset=utf-8",
            "X-Repeat": "two", "Accept": "*/*", "X-Amzn-Trace-Id": trace,
            "X-Forwarded-For": "198.51.100.9, 127.0.0.1", "X-Forwarded-Port": port, "X-Forwarded-Proto": "http"
        },
        "multiValueHeaders": {
            "Host": [host], "User-Agent": ["e2e/1.0"], "Content-Type": ["application/json; charset=utf-8"],
            "X-Repeat": ["one", "two"], "Accept": ["*/*"], "X-Amzn-Trace-Id": [trace],
            "X-Forwarded-For": ["198.51.100.9, 127.0.0.1"], "X-Forwarded-Port": [port], "X-Forwarded-Proto": ["http"]
        },
        "queryStringParameters": {"q": "c", "enc": "+ x", "flag": ""},
        "multiValueQueryStringParameters": {"q": ["a b", "c"], "enc": ["+ x"], "flag": [""]},
        "pathParameters": {"id": "42"},
        "stageVariables": {"color": "blue"},
        "requestContext": {
            "accountId": "111122223333",
            "apiId": "abcdef1234",
            "deploymentId": ctx["deploymentId"],
            "domainName": host,
            "domainPrefix": "127",
            "extendedRequestId": ctx["extendedRequestId"],
            "httpMethod": "POST",
            "identity": {
                "accessKey": null, "accountId": null, "caller": null,
                "cognitoAuthenticationProvider": null, "cognitoAuthenticationType": null,
                "cognitoIdentityId": null, "cognitoIdentityPoolId": null, "principalOrgId": null,
                "sourceIp": "127.0.0.1", "user": null, "userAgent": "e2e/1.0", "userArn": null
            },
            "path": "/prod/items/42",
            "protocol": "HTTP/1.1",
            "requestId": request_id,
            "requestTime": ctx["requestTime"],
            "requestTimeEpoch": epoch,
            "resourceId": ctx["resourceId"],
            "resourcePath": "/items/{id}",
            "stage": "prod"
        },
        "body": "{\"a\":1}",
        "isBase64Encoded": false
    });
    assert_eq!(e, want, "{forwarding}");
    // Shapes of the generated identifiers.
    assert_eq!(request_id.len(), 36);
    assert_eq!(
        request_id.as_bytes()[14],
        b'4',
        "UUID version 4: {request_id}"
    );
    assert_eq!(ctx["extendedRequestId"].as_str().unwrap().len(), 16);
    assert_eq!(ctx["resourceId"].as_str().unwrap().len(), 6);
    let time = ctx["requestTime"].as_str().unwrap();
    assert!(time.ends_with(" +0000") && time.len() == 26, "{time}");
    // A GET without body or query: the absent collections are null.
    envoy.get("/prod/items/1");
    let e = stub.last("items");
    assert_eq!(e.method, "POST");
    let e = e.json();
    assert_eq!(e["httpMethod"], "GET");
    for key in [
        "body",
        "queryStringParameters",
        "multiValueQueryStringParameters",
    ] {
        assert_eq!(e[key], Value::Null, "{key}");
    }
    assert_eq!(e["isBase64Encoded"], false);
    // Request ids differ per request.
    let a = envoy.get("/prod/items/1");
    let b = envoy.get("/prod/items/1");
    assert_ne!(a.header("x-amzn-requestid"), b.header("x-amzn-requestid"));
}

/// A `Date` long past, on an Invoke answer.
const INVOKE_DATE: &str = "Mon, 01 Jan 2001 00:00:00 GMT";

/// Each `/{case}` path makes the stub answer with one canned Invoke reply.
fn mapping_stub() -> InvokeStub {
    InvokeStub::start(|r| {
        let e: Value = serde_json::from_slice(&r.body).unwrap();
        let case = e["pathParameters"]["case"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let p = |v: Value| StubReply::payload(v.to_string());
        match case.as_str() {
            "status-string" => p(json!({"statusCode": "201", "body": "made"})),
            "no-status" => p(json!({"headers": {"test-header": "value"}})),
            "empty" => p(json!({"statusCode": 200})),
            "multi" => p(
                json!({"multiValueHeaders": {"Set-Cookie": ["a=1", "b=2"], "tesT-Multi": ["value-multi"]},
                                  "headers": {"X-Solo": "v", "test-multi": "value-solo", "header-bool": true}, "body": "m"}),
            ),
            "content-type" => {
                p(json!({"headers": {"Content-Type": "text/html"}, "body": "<p>hi</p>"}))
            }
            // The Invoke answer's own Date never reaches the client: the gateway's reply
            // does not carry it, and Envoy adds its own.
            "remapped" => {
                p(json!({"headers": {"Server": "lambda", "Date": "yesterday"}, "body": "r"}))
                    .with_header("Date", INVOKE_DATE)
            }
            "not-found" => p(json!({"statusCode": 404, "body": "{\"error\":\"nope\"}"})),
            "unknown-key" => p(json!({"statusCode": 200, "wrongValue": "value"})),
            "bad-status" => p(json!({"statusCode": "test"})),
            "bad-multi" => p(json!({"multiValueHeaders": {"a": "not-a-list"}})),
            "bare-string" => p(json!("justAString")),
            "not-json" => StubReply::payload("this is not json"),
            "function-error" => StubReply::payload(
                json!({"errorMessage": "boom", "errorType": "Error"}).to_string(),
            )
            .with_header("X-Amz-Function-Error", "Unhandled"),
            "emulator-error" => StubReply::emulator_error("boom"),
            "rejected" => {
                StubReply::payload(json!({"Type": "User", "message": "Rate Exceeded."}).to_string())
                    .status(429)
                    .with_header("x-amzn-ErrorType", "TooManyRequestsException")
            }
            "binary" => p(
                json!({"isBase64Encoded": true, "headers": {"Content-Type": "image/png"}, "body": "iVBORw0KGgo="}),
            ),
            "bad-base64" => p(json!({"isBase64Encoded": true, "body": "***"})),
            _ => p(json!({"statusCode": 500, "body": "unknown case"})),
        }
    })
}

#[test]
fn response_mapping_rules() {
    let stub = mapping_stub();
    let api = json!({"swagger": "2.0", "x-amazon-apigateway-binary-media-types": ["image/png"],
        "paths": {"/{case}": {"get": proxy_op("mapper")}}});
    let envoy = Envoy::start(
        "mapping",
        &format!("stage: s\nlambda:\n  endpoint: {}\n", stub.url()),
        &api,
        1,
    );
    const ISE: &str = r#"{"message":"Internal server error"}"#;
    // An empty body keeps `Content-Type: application/json` with length 0, as API Gateway
    // answers (Envoy strips it from empty local replies; the filter puts it back).
    for case in ["no-status", "empty"] {
        let r = envoy.get(&format!("/s/{case}"));
        assert_eq!(
            (r.status, r.text().as_str(), r.header("content-type")),
            (200, "", Some("application/json")),
            "{case}"
        );
        assert_eq!(r.header("content-length"), Some("0"), "{case}");
    }
    for (case, status, content_type, body) in [
        ("status-string", 201, "application/json", "made"),
        ("content-type", 200, "text/html", "<p>hi</p>"),
        ("not-found", 404, "application/json", r#"{"error":"nope"}"#),
        ("unknown-key", 502, "application/json", ISE),
        ("bad-status", 502, "application/json", ISE),
        ("bad-multi", 502, "application/json", ISE),
        ("bare-string", 502, "application/json", ISE),
        ("not-json", 502, "application/json", ISE),
        ("function-error", 502, "application/json", ISE),
        ("emulator-error", 502, "application/json", ISE),
        ("rejected", 500, "application/json", ISE),
    ] {
        let r = envoy.get(&format!("/s/{case}"));
        assert_eq!(r.status, status, "{case}: {}", r.text());
        assert_eq!(r.header("content-type"), Some(content_type), "{case}");
        assert_eq!(r.text(), body, "{case}");
        assert!(r.header("x-amzn-requestid").is_some(), "{case}");
        if status >= 500 {
            assert_eq!(
                r.header("x-amzn-errortype"),
                Some("InternalServerErrorException"),
                "{case}"
            );
        }
    }
    let r = envoy.get("/s/no-status");
    assert_eq!(r.header("test-header"), Some("value"));
    let r = envoy.get("/s/multi");
    assert_eq!(r.headers_named("set-cookie"), vec!["a=1", "b=2"]);
    assert_eq!(
        r.headers_named("test-multi"),
        vec!["value-multi", "value-solo"]
    );
    assert_eq!(r.header("x-solo"), Some("v"));
    assert_eq!(r.header("header-bool"), Some("true"));
    let r = envoy.get("/s/remapped");
    assert_eq!(r.header("x-amzn-remapped-server"), Some("lambda"));
    assert_eq!(r.header("x-amzn-remapped-date"), Some("yesterday"));
    assert_ne!(r.header("server"), Some("lambda"));
    let dates = r.headers_named("date");
    assert_eq!(dates.len(), 1, "{dates:?}");
    assert_ne!(dates.first().copied(), Some(INVOKE_DATE));
    assert!(dates.iter().all(|d| d.ends_with(" GMT")), "{dates:?}");
    // Binary: decoded only when the first Accept entry is a binary media type.
    let png = [0x89u8, b'P', b'N', b'G', 0x0d, 0x0a, 0x1a, 0x0a];
    let r = envoy.request("GET", "/s/binary", &[("Accept", "image/png")], b"");
    assert_eq!((r.status, r.body.as_slice()), (200, png.as_slice()));
    assert_eq!(r.header("content-type"), Some("image/png"));
    for accept in ["*/*", "image/webp,image/png", "text/html"] {
        let r = envoy.request("GET", "/s/binary", &[("Accept", accept)], b"");
        assert_eq!(r.text(), "iVBORw0KGgo=", "{accept}");
    }
    let r = envoy.request("GET", "/s/bad-base64", &[("Accept", "image/png")], b"");
    assert_eq!((r.status, r.text().as_str()), (500, ISE));
    // Each failure left one log line saying why.
    let log = envoy.log();
    for needle in [
        "Malformed Lambda proxy response: unknown field `wrongValue`",
        "customer function error: boom",
        "Lambda rejected the invocation with status 429: TooManyRequestsException",
        "Unable to base64-decode",
    ] {
        assert!(log.contains(needle), "log lacks {needle:?}:\n{log}");
    }
}

#[test]
fn timeouts_refused_connections_and_metrics() {
    let stub = InvokeStub::start(|r| {
        let reply = StubReply::payload(json!({"statusCode": 200, "body": "ok"}).to_string());
        if r.function() == "slow" {
            reply.delay(Duration::from_millis(1500))
        } else {
            reply
        }
    });
    let closed = free_port();
    let mut slow = proxy_op("slow");
    slow["x-amazon-apigateway-integration"]["timeoutInMillis"] = json!(300);
    let api = json!({"swagger": "2.0", "paths": {
        "/slow": {"get": slow}, "/down": {"get": proxy_op("down")}, "/ok": {"get": proxy_op("ok")}
    }});
    let deployment = format!(
        "stage: s\nlambda:\n  endpoint: {}\n  functions:\n    down:\n      name: down\n      endpoint: http://127.0.0.1:{closed}\n",
        stub.url()
    );
    let envoy = Envoy::start("faults", &deployment, &api, 1);
    let started = Instant::now();
    let r = envoy.get("/s/slow");
    let took = started.elapsed();
    assert_eq!(r.status, 504, "{}", r.text());
    assert_eq!(r.text(), r#"{"message":"Endpoint request timed out"}"#);
    assert!(took < Duration::from_millis(1400), "timeout took {took:?}");
    let r = envoy.get("/s/down");
    assert_eq!(r.status, 502);
    assert_eq!(r.text(), r#"{"message":"Internal server error"}"#);
    for _ in 0..3 {
        assert_eq!(envoy.get("/s/ok").status, 200);
    }
    assert_eq!(envoy.get("/s/nothing").status, 403);
    let log = envoy.log();
    assert!(log.contains("504 INTEGRATION_TIMEOUT"), "{log}");
    assert!(log.contains("Lambda endpoint unreachable"), "{log}");
    assert_eq!(envoy.counter("wasmcustom.apigw_edge.requests.2xx"), 3);
    assert_eq!(envoy.counter("wasmcustom.apigw_edge.requests.4xx"), 1);
    assert_eq!(envoy.counter("wasmcustom.apigw_edge.requests.5xx"), 2);
    assert_eq!(envoy.counter("wasmcustom.apigw_edge.integration.errors"), 2);
    // Histograms reach the admin interface at Envoy's stats flush (every 5 s by default).
    let deadline = Instant::now() + Duration::from_secs(12);
    let mut histogram = String::new();
    while Instant::now() < deadline && !histogram.contains("P50") {
        std::thread::sleep(Duration::from_millis(500));
        histogram = envoy
            .stats()
            .get("wasmcustom.apigw_edge.integration.latency_ms")
            .cloned()
            .unwrap_or_default();
    }
    assert!(
        histogram.contains("P50"),
        "latency histogram not recorded: {histogram:?}"
    );
}

#[test]
fn request_bodies_binary_text_and_limits() {
    let stub = name_echo();
    let api = json!({"swagger": "2.0", "x-amazon-apigateway-binary-media-types": ["application/octet-stream"],
        "paths": {"/up": {"post": proxy_op("up")}}});
    let deployment = format!(
        "stage: s\nlimits:\n  maxBodyBytes: 4096\nlambda:\n  endpoint: {}\n",
        stub.url()
    );
    let envoy = Envoy::start("bodies", &deployment, &api, 1);
    let bytes: Vec<u8> = (0..=255u8).collect();
    let r = envoy.request(
        "POST",
        "/s/up",
        &[("Content-Type", "application/octet-stream")],
        &bytes,
    );
    assert_eq!(r.status, 200);
    let e = stub.last("up").json();
    assert_eq!(e["isBase64Encoded"], true);
    use base64::Engine;
    assert_eq!(
        base64::engine::general_purpose::STANDARD
            .decode(e["body"].as_str().unwrap())
            .unwrap(),
        bytes
    );
    let text = "x".repeat(4096);
    let r = envoy.request(
        "POST",
        "/s/up",
        &[("Content-Type", "text/plain")],
        text.as_bytes(),
    );
    assert_eq!(r.status, 200);
    assert_eq!(stub.last("up").json()["body"], text);
    stub.clear();
    let r = envoy.request(
        "POST",
        "/s/up",
        &[("Content-Type", "text/plain")],
        "y".repeat(4097).as_bytes(),
    );
    assert_eq!(r.status, 413, "{}", r.text());
    assert_eq!(r.text(), r#"{"message":"Request Too Long"}"#);
    assert!(
        stub.requests().is_empty(),
        "an oversized body reached Lambda"
    );
}

#[test]
fn two_workers_serve_concurrent_clients() {
    let stub = name_echo();
    let api = json!({"swagger": "2.0", "paths": {"/w": {"get": proxy_op("w")}}});
    let envoy = Envoy::start(
        "workers",
        &format!("stage: s\nlambda:\n  endpoint: {}\n", stub.url()),
        &api,
        2,
    );
    let port = envoy.port;
    let handles: Vec<_> = (0..8)
        .map(|_| {
            std::thread::spawn(move || (0..10).filter(|_| get(port, "/s/w").status == 200).count())
        })
        .collect();
    let ok: usize = handles.into_iter().map(|h| h.join().unwrap()).sum();
    assert_eq!(ok, 80);
    assert_eq!(stub.requests().len(), 80);
    assert_eq!(envoy.counter("wasmcustom.apigw_edge.requests.2xx"), 80);
}
