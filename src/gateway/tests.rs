use serde_json::{json, Value};

use super::*;
use crate::cache::Mode;
use crate::config::{parse_deployment, FilterConfig};
use crate::http::UpstreamAnswer;
use crate::shared::memory::Cells;

const FN: &str = "arn:aws:apigateway:us-east-1:lambda:path/2015-03-31/functions/arn:aws:lambda:us-east-1:123456789012:function:";

fn proxy_op(function: &str) -> Value {
    json!({"x-amazon-apigateway-integration": {"type": "aws_proxy", "httpMethod": "POST", "uri": format!("{FN}{function}/invocations")}})
}

pub(super) fn gateway_with(deployment: Value, paths: Value) -> Gateway {
    let mut d = json!({"openapi": "api.json", "stage": "stage", "lambda": {"endpoint": "http://127.0.0.1:9000"}});
    for (k, v) in deployment.as_object().unwrap() {
        d[k] = v.clone();
    }
    let cfg = FilterConfig {
        deployment: parse_deployment(d).unwrap(),
        openapi: json!({"swagger": "2.0", "paths": paths, "x-amazon-apigateway-binary-media-types": ["image/png"]}),
        exports: Default::default(),
    };
    Gateway::compile(&cfg).unwrap().gateway
}

fn gateway() -> Gateway {
    gateway_with(
        json!({}),
        json!({
            "/{proxy+}": {"x-amazon-apigateway-any-method": proxy_op("proxyfn")},
            "/hardcoded": {"get": proxy_op("hardfn")},
            "/": {"get": proxy_op("rootfn")},
            "/mock": {"get": {"x-amazon-apigateway-integration": {"type": "http", "httpMethod": "GET", "uri": "http://h/", "connectionType": "VPC_LINK"}}}
        }),
    )
}

pub(super) fn head(method: &str, path: &str, headers: &[(&str, &str)]) -> RequestHead {
    let mut h: Vec<Header> = vec![(":authority".into(), "abc123.execute-api.local:8080".into())];
    h.extend(headers.iter().map(|(a, b)| (a.to_string(), b.to_string())));
    RequestHead {
        method: method.into(),
        path: path.into(),
        headers: h,
        source_ip: "203.0.113.7".into(),
        local_port: Some(8080),
        protocol: "HTTP/1.1".into(),
        request_id: "c6af9ac6-7b61-11e6-9a41-93e8deadbeef".into(),
        now_ms: 1_428_582_896_000,
        client_cert: None,
        body_follows: false,
    }
}

/// What the stage tests lend the pipeline: shared data and no stores of a worker (a
/// certificate cache when given), at a fixed time.
pub(super) fn bare_host<'a>(
    cells: &'a Cells,
    certs: Option<&'a std::cell::RefCell<crate::client_cert::CertCache>>,
) -> Host<'a> {
    Host {
        certs,
        ..Host::bare(cells, 1_700_000_000_000)
    }
}

/// Runs a request through the pipeline, handing `body` over when asked, to the
/// integration call (`Ok`, its JSON payload: the event) or a reply.
pub(super) fn run_to_call(
    g: &Gateway,
    h: RequestHead,
    body: &[u8],
    host: &Host,
) -> Result<Value, Outcome> {
    let mut ex = g.begin(h);
    let mut step = g.advance(&mut ex, host);
    loop {
        step = match step {
            Step::Reply(o) => return Err(*o),
            Step::NeedBody => g.body(&mut ex, body.to_vec(), host),
            Step::Call(c) => return Ok(serde_json::from_slice(&c.request.body).unwrap()),
        };
    }
}

/// Runs start + invoke and returns the event as JSON.
fn event(g: &Gateway, h: &RequestHead, body: &[u8]) -> Value {
    event_counted(g, h, body, &Cells::default())
}

/// [`event`] with the shared data the usage checks count in.
fn event_counted(g: &Gateway, h: &RequestHead, body: &[u8], cells: &Cells) -> Value {
    let Start::NeedBody(routed) = g.start(h, cells) else {
        panic!("{} {} did not route", h.method, h.path)
    };
    let call = g.invoke(h, &routed, body).unwrap();
    serde_json::from_slice(&call.body).unwrap()
}

#[test]
fn path_table_recorded_against_aws() {
    let g = gateway();
    for (raw, path, ctx_path, params) in [
        (
            "/stage/proxy-value",
            "/proxy-value",
            "/stage/proxy-value",
            json!({"proxy": "proxy-value"}),
        ),
        (
            "/stage/proxy-value/",
            "/proxy-value/",
            "/stage/proxy-value/",
            json!({"proxy": "proxy-value"}),
        ),
        (
            "/stage/proxy-value//double-slash",
            "/proxy-value//double-slash",
            "/stage/proxy-value//double-slash",
            json!({"proxy": "proxy-value//double-slash"}),
        ),
        (
            "/stage//proxy-value",
            "/proxy-value",
            "/stage//proxy-value",
            json!({"proxy": "proxy-value"}),
        ),
        (
            "/stage//hardcoded",
            "/hardcoded",
            "/stage//hardcoded",
            json!(null),
        ),
        (
            "/stage/proxy-value/api/user/test%2Balias@gmail.com/plus/test+alias@gmail.com",
            "/proxy-value/api/user/test%2Balias@gmail.com/plus/test+alias@gmail.com",
            "/stage/proxy-value/api/user/test%2Balias@gmail.com/plus/test+alias@gmail.com",
            json!({"proxy": "proxy-value/api/user/test%2Balias@gmail.com/plus/test+alias@gmail.com"}),
        ),
        ("/stage", "/", "/stage", json!(null)),
        ("/stage/", "/", "/stage/", json!(null)),
        // An extra slash before the stage is served like none.
        (
            "//stage/proxy-value",
            "/proxy-value",
            "//stage/proxy-value",
            json!({"proxy": "proxy-value"}),
        ),
    ] {
        let e = event(&g, &head("GET", raw, &[]), b"");
        assert_eq!(e["path"], path, "{raw}");
        assert_eq!(e["requestContext"]["path"], ctx_path, "{raw}");
        assert_eq!(e["pathParameters"], params, "{raw}");
    }
}

#[test]
fn missing_authentication_token_cases() {
    let g = gateway();
    for (method, path) in [
        ("GET", "/prod/proxy-value"),
        ("GET", "/stagex/proxy-value"),
        ("GET", "/"),
        ("POST", "/stage"),
        ("TRACE", "/stage/proxy-value"),
        ("GET", "*"),
    ] {
        let Start::Respond(out) = g.start(&head(method, path, &[]), &Cells::default()) else {
            panic!("{method} {path} routed");
        };
        assert_eq!(out.reply.status, 403, "{method} {path}");
        assert_eq!(
            out.reply.body_text(),
            r#"{"message":"Missing Authentication Token"}"#
        );
        assert_eq!(
            out.reply.header("x-amzn-ErrorType"),
            Some("MissingAuthenticationTokenException")
        );
        assert_eq!(
            out.reply.header("x-amzn-RequestId"),
            Some("c6af9ac6-7b61-11e6-9a41-93e8deadbeef")
        );
        assert!(out
            .log
            .as_deref()
            .unwrap()
            .contains("MISSING_AUTHENTICATION_TOKEN"));
    }
    // POST /stage/hardcoded falls back to the greedy ANY sibling.
    let e = event(&g, &head("POST", "/stage/hardcoded", &[]), b"");
    assert_eq!(e["resource"], "/{proxy+}");
}

#[test]
fn full_event_fields() {
    let g = gateway_with(
        json!({"stageVariables": {"color": "blue"}, "api": {"id": "abc123", "accountId": "111122223333"}}),
        json!({"/pets/{petId}": {"post": proxy_op("pets")}}),
    );
    let h = head(
        "POST",
        "/stage/pets/42?name=me&tag=a&tag=b+c&enc=%2B",
        &[
            ("user-agent", "curl/8.0"),
            ("content-type", "application/json"),
            ("content-length", "7"),
            ("connection", "keep-alive"),
            ("x-forwarded-for", "198.51.100.1"),
            ("x-forwarded-proto", "https"),
            ("x-forwarded-port", "1"),
            ("x-envoy-internal", "true"),
            ("x-multi", "one"),
            ("x-multi", "two"),
        ],
    );
    let e = event(&g, &h, br#"{"a":1}"#);
    let want = json!({
        "resource": "/pets/{petId}",
        "path": "/pets/42",
        "httpMethod": "POST",
        "headers": {
            "Host": "abc123.execute-api.local:8080",
            "User-Agent": "curl/8.0",
            "Content-Type": "application/json",
            "X-Multi": "two",
            "X-Amzn-Trace-Id": "Root=1-552671f0-7b6111e69a4193e8deadbeef",
            "X-Forwarded-For": "198.51.100.1, 203.0.113.7",
            "X-Forwarded-Port": "8080",
            "X-Forwarded-Proto": "http"
        },
        "multiValueHeaders": {
            "Host": ["abc123.execute-api.local:8080"],
            "User-Agent": ["curl/8.0"],
            "Content-Type": ["application/json"],
            "X-Multi": ["one", "two"],
            "X-Amzn-Trace-Id": ["Root=1-552671f0-7b6111e69a4193e8deadbeef"],
            "X-Forwarded-For": ["198.51.100.1, 203.0.113.7"],
            "X-Forwarded-Port": ["8080"],
            "X-Forwarded-Proto": ["http"]
        },
        "queryStringParameters": {"name": "me", "tag": "b c", "enc": "+"},
        "multiValueQueryStringParameters": {"name": ["me"], "tag": ["a", "b c"], "enc": ["+"]},
        "pathParameters": {"petId": "42"},
        "stageVariables": {"color": "blue"},
        "requestContext": {
            "accountId": "111122223333",
            "apiId": "abc123",
            "deploymentId": e["requestContext"]["deploymentId"],
            "domainName": "abc123.execute-api.local:8080",
            "domainPrefix": "abc123",
            "extendedRequestId": "xq+axnthEeaaQZM=",
            "httpMethod": "POST",
            "identity": {
                "accessKey": null, "accountId": null, "caller": null,
                "cognitoAuthenticationProvider": null, "cognitoAuthenticationType": null,
                "cognitoIdentityId": null, "cognitoIdentityPoolId": null, "principalOrgId": null,
                "sourceIp": "203.0.113.7", "user": null, "userAgent": "curl/8.0", "userArn": null
            },
            "path": "/stage/pets/42",
            "protocol": "HTTP/1.1",
            "requestId": "c6af9ac6-7b61-11e6-9a41-93e8deadbeef",
            "requestTime": "09/Apr/2015:12:34:56 +0000",
            "requestTimeEpoch": 1_428_582_896_000u64,
            "resourceId": e["requestContext"]["resourceId"],
            "resourcePath": "/pets/{petId}",
            "stage": "stage"
        },
        "body": "{\"a\":1}",
        "isBase64Encoded": false
    });
    assert_eq!(e, want);
    assert_eq!(e["requestContext"]["resourceId"].as_str().unwrap().len(), 6);
    assert_eq!(
        e["requestContext"]["deploymentId"].as_str().unwrap().len(),
        6
    );
}

#[test]
fn invoke_call_shape() {
    let g = gateway_with(
        json!({"stageVariables": {"alias": "live"}, "lambda": {"endpoint": "http://127.0.0.1:9000", "functions": {"renamed": "local-name"}}}),
        json!({
            "/a": {"get": proxy_op("plain:${stageVariables.alias}")},
            "/b": {"get": proxy_op("renamed")}
        }),
    );
    for (path, want) in [
        (
            "/stage/a",
            "/2015-03-31/functions/plain/invocations?Qualifier=live",
        ),
        ("/stage/b", "/2015-03-31/functions/local-name/invocations"),
    ] {
        let h = head("GET", path, &[]);
        let Start::NeedBody(r) = g.start(&h, &Cells::default()) else {
            panic!()
        };
        let call = g.invoke(&h, &r, b"").unwrap();
        assert_eq!(crate::http::header(&call.headers, ":path"), Some(want));
        assert_eq!(crate::http::header(&call.headers, ":method"), Some("POST"));
        assert_eq!(
            crate::http::header(&call.headers, ":authority"),
            Some("127.0.0.1:9000")
        );
        assert_eq!(call.cluster, "apigw_lambda_http_127_0_0_1_9000");
        assert_eq!(call.timeout_ms, 29_000);
    }
}

#[test]
fn bodies_text_binary_and_absent() {
    let g = gateway();
    let e = event(
        &g,
        &head("POST", "/stage/x", &[("content-type", "image/png")]),
        &[0x89, b'P'],
    );
    assert_eq!(
        (e["body"].clone(), e["isBase64Encoded"].clone()),
        (json!("iVA="), json!(true))
    );
    let e = event(
        &g,
        &head("POST", "/stage/x", &[("content-type", "text/plain")]),
        b"hi",
    );
    assert_eq!(
        (e["body"].clone(), e["isBase64Encoded"].clone()),
        (json!("hi"), json!(false))
    );
    let e = event(&g, &head("POST", "/stage/x", &[]), &[0xff, 0xfe]);
    assert_eq!(
        (e["body"].clone(), e["isBase64Encoded"].clone()),
        (json!("//4="), json!(true))
    );
    let e = event(&g, &head("GET", "/stage/x", &[]), b"");
    assert_eq!(
        (e["body"].clone(), e["isBase64Encoded"].clone()),
        (json!(null), json!(false))
    );
    assert_eq!(e["queryStringParameters"], json!(null));
    assert_eq!(e["stageVariables"], json!(null));
}

#[test]
fn http2_keeps_lower_case_names() {
    let g = gateway();
    let mut h = head("GET", "/stage/x", &[("accept", "*/*")]);
    h.protocol = "HTTP/2".into();
    let e = event(&g, &h, b"");
    assert_eq!(e["headers"]["accept"], "*/*");
    assert!(e["headers"]["x-amzn-trace-id"].is_string());
}

#[test]
fn custom_domain_base_path() {
    let g = gateway_with(
        json!({"basePath": "/v1"}),
        json!({"/pets": {"get": proxy_op("pets")}}),
    );
    let e = event(&g, &head("GET", "/v1/pets", &[]), b"");
    assert_eq!(e["path"], "/v1/pets");
    assert_eq!(e["resource"], "/pets");
    assert_eq!(e["requestContext"]["path"], "/v1/pets");
    assert_eq!(e["requestContext"]["stage"], "stage");
    for bad in ["/stage/pets", "/v1x/pets", "/pets"] {
        assert!(
            matches!(
                g.start(&head("GET", bad, &[]), &Cells::default()),
                Start::Respond(_)
            ),
            "{bad}"
        );
    }
    let root = gateway_with(
        json!({"basePath": "/"}),
        json!({"/pets": {"get": proxy_op("pets")}}),
    );
    assert_eq!(
        event(&root, &head("GET", "/pets", &[]), b"")["path"],
        "/pets"
    );
}

#[test]
fn oversized_body_is_refused() {
    let g = gateway_with(
        json!({"limits": {"maxBodyBytes": 4}}),
        json!({"/a": {"post": proxy_op("a")}}),
    );
    let Start::Respond(out) = g.start(
        &head("POST", "/stage/a", &[("content-length", "5")]),
        &Cells::default(),
    ) else {
        panic!()
    };
    assert_eq!(out.reply.status, 413);
    let h = head("POST", "/stage/a", &[]);
    let Start::NeedBody(r) = g.start(&h, &Cells::default()) else {
        panic!()
    };
    assert_eq!(g.invoke(&h, &r, b"12345").unwrap_err().reply.status, 413);
}

#[test]
fn unsupported_integration_answers_500() {
    let g = gateway();
    let h = head("GET", "/stage/mock", &[]);
    let Start::NeedBody(r) = g.start(&h, &Cells::default()) else {
        panic!()
    };
    let out = g.invoke(&h, &r, b"").unwrap_err();
    assert_eq!(out.reply.status, 500);
    assert!(out.log.unwrap().contains("through a VPC link"));
}

#[test]
fn mock_integrations_answer_on_the_headers() {
    let cors_mock = json!({"x-amazon-apigateway-integration": {"type": "mock",
        "requestTemplates": {"application/json": "{\"statusCode\": 200}"},
        "responses": {"default": {"statusCode": "200",
            "responseParameters": {"method.response.header.Access-Control-Allow-Origin": "'*'"},
            "responseTemplates": {"application/json": "{}"}}}}});
    let broken = json!({"x-amazon-apigateway-integration": {"type": "mock", "responses": {"default": {"statusCode": "200"}}}});
    let vtl = json!({"x-amazon-apigateway-integration": {"type": "mock",
        "requestTemplates": {"application/json": "#if(1){\"statusCode\": 201}#end"},
        "responses": {"default": {"statusCode": "200"}, "201": {"statusCode": "201"}}}});
    let cfg = FilterConfig {
        deployment: parse_deployment(json!({"openapi": "a", "stage": "stage", "lambda": {"endpoint": "http://127.0.0.1:9000"}})).unwrap(),
        openapi: json!({"swagger": "2.0", "paths": {"/a": {"options": cors_mock, "get": broken, "put": vtl}}}), exports: Default::default() };
    let compiled = Gateway::compile(&cfg).unwrap();
    assert!(compiled.warnings.is_empty(), "{:?}", compiled.warnings);
    let g = compiled.gateway;
    let Start::Respond(out) = g.start(&head("PUT", "/stage/a", &[]), &Cells::default()) else {
        panic!("a mock does not wait for the body")
    };
    assert_eq!(
        out.reply.status, 201,
        "a request template with VTL selects the status"
    );
    let Start::Respond(out) = g.start(&head("OPTIONS", "/stage/a", &[]), &Cells::default()) else {
        panic!("a mock does not wait for the body")
    };
    assert_eq!(
        (out.reply.status, out.reply.body_text()),
        (200, "{}".into())
    );
    assert_eq!(out.reply.header("access-control-allow-origin"), Some("*"));
    assert!(out.reply.header("x-amzn-requestid").is_some());
    let Start::Respond(out) = g.start(&head("GET", "/stage/a", &[]), &Cells::default()) else {
        panic!()
    };
    assert_eq!(out.reply.status, 500);
    assert!(out.log.unwrap().contains("statusCode"));
}

fn finish(
    g: &Gateway,
    status: Option<u16>,
    headers: &[(&str, &str)],
    body: &str,
    accept: Option<&str>,
) -> Outcome {
    let mut h = head("GET", "/stage/x", &[]);
    if let Some(a) = accept {
        h.headers.push(("accept".into(), a.into()));
    }
    let resp = UpstreamAnswer {
        host_reply: None,
        status,
        headers: headers
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect(),
        body: body.as_bytes().to_vec(),
    };
    let Start::NeedBody(routed) = g.start(&h, &Cells::default()) else {
        panic!("GET /stage/x did not route")
    };
    g.finish(&h, &routed, &resp)
}

#[test]
fn finish_table() {
    let g = gateway();
    let rid = ("x-amzn-RequestId", "lambda-req");
    for (status, headers, body, want_status, want_body) in [
        (
            Some(200),
            vec![rid],
            r#"{"statusCode":201,"body":"made"}"#,
            201,
            "made",
        ),
        (
            Some(200),
            vec![rid, ("X-Amz-Function-Error", "Unhandled")],
            r#"{"errorMessage":"boom"}"#,
            502,
            r#"{"message":"Internal server error"}"#,
        ),
        (
            Some(500),
            vec![],
            r#"{"errorType":"x","errorMessage":"boom"}"#,
            502,
            r#"{"message":"Internal server error"}"#,
        ),
        (
            Some(200),
            vec![rid],
            r#"{"statusCode":200,"extra":1}"#,
            502,
            r#"{"message":"Internal server error"}"#,
        ),
        (
            Some(404),
            vec![rid, ("x-amzn-ErrorType", "ResourceNotFoundException")],
            "{}",
            500,
            r#"{"message":"Internal server error"}"#,
        ),
        (
            Some(504),
            vec![],
            "upstream request timeout",
            504,
            r#"{"message":"Endpoint request timed out"}"#,
        ),
        (
            Some(503),
            vec![],
            "upstream connect error or disconnect/reset before headers",
            502,
            r#"{"message":"Internal server error"}"#,
        ),
        (
            None,
            vec![],
            "",
            502,
            r#"{"message":"Internal server error"}"#,
        ),
    ] {
        let out = finish(&g, status, &headers, body, None);
        assert_eq!(out.reply.status, want_status, "{status:?} {body}");
        assert_eq!(out.reply.body_text(), want_body, "{status:?} {body}");
        assert_eq!(
            out.reply.header("x-amzn-RequestId"),
            Some("c6af9ac6-7b61-11e6-9a41-93e8deadbeef")
        );
        assert!(out.reply.header("x-amz-apigw-id").is_some());
        assert_eq!(out.log.is_some(), want_status >= 500, "{body}");
    }
    let ok = finish(
        &g,
        Some(200),
        &[rid],
        r#"{"isBase64Encoded":true,"body":"aGk="}"#,
        Some("image/png"),
    );
    assert_eq!(ok.reply.body, b"hi");
    assert!(ok
        .reply
        .header("X-Amzn-Trace-Id")
        .unwrap()
        .starts_with("Root=1-"));
}

#[test]
fn compile_collects_every_error() {
    let cfg = FilterConfig {
        deployment: parse_deployment(json!({
            "openapi": "a", "stage": "bad stage", "stageVariables": {"ok": "has space"},
            "lambda": {"endpoint": "http://127.0.0.1:9000", "functions": {"x": {"name": "y", "endpoint": "nope"}}},
            "accessLogSettings": {"format": "$context.status"}
        }))
        .unwrap(),
        openapi: json!({"swagger": "2.0", "paths": {
            "/a": {"get": proxy_op("${stageVariables.missing}")},
            "/b/{proxy+}/c": {"get": proxy_op("b")}
        }}), exports: Default::default() };
    let errs = Gateway::compile(&cfg).unwrap_err();
    let locations: Vec<_> = errs.iter().map(|e| e.location.as_str()).collect();
    assert_eq!(
        locations,
        vec![
            "deployment.stage",
            "deployment.stageVariables.ok",
            "deployment.lambda.functions.x.endpoint",
            "deployment.accessLogSettings.format",
            "openapi.paths./b/{proxy+}/c",
            "openapi.paths./a.get.x-amazon-apigateway-integration.uri",
        ]
    );
}

#[test]
fn ids_are_stable_and_shaped() {
    assert_eq!(
        extended_request_id("c6af9ac6-7b61-11e6-9a41-93e8deadbeef").len(),
        16
    );
    assert_eq!(extended_request_id("not-a-uuid").len(), 16);
    // A request id's bytes: its first 32 hex digits in pairs, or a hash when it has fewer.
    let uuid = "c6af9ac6-7b61-11e6-9a41-93e8deadbeef";
    for (id, want) in [
        (uuid, uuid.replace('-', "")),
        (
            "C6AF9AC6-7B61-11E6-9A41-93E8DEADBEEF",
            uuid.replace('-', ""),
        ),
        (&format!("{uuid}a"), uuid.replace('-', "")),
        (&format!("x{uuid}-77"), uuid.replace('-', "")),
        ("not-a-uuid", "e287cc0c0ba2f0c05600c5ce47e23ee7".into()),
    ] {
        assert_eq!(
            crate::sigv4::hex(&super::context::id_bytes(id)),
            want,
            "{id}"
        );
    }
    assert_eq!(
        trace_id("c6af9ac6-7b61-11e6-9a41-93e8deadbeef", 1000),
        "Root=1-00000001-7b6111e69a4193e8deadbeef"
    );
}

#[test]
fn a_uuid_read_at_its_offsets_gives_the_general_reading() {
    let ids = crate::ids::Ids::seeded(7);
    let mut canonical: Vec<String> = (0..200).map(|_| ids.uuid()).collect();
    canonical.push("C6AF9AC6-7B61-11E6-9A41-93E8DEADBEEF".into());
    let others = [
        "c6af9ac6-7b61-11e6-9a41-93e8deadbeeg",
        "c6af9ac6x7b61-11e6-9a41-93e8deadbeef",
        "c6af9ac67b61-11e6-9a41-93e8deadbeef0",
        "c6af9ac6-7b61-11e6-9a41-93e8deadbee",
        "------------------------------------",
    ];
    for id in &canonical {
        assert!(super::context::uuid_bytes(id.as_bytes()).is_some(), "{id}");
    }
    for id in others {
        assert!(super::context::uuid_bytes(id.as_bytes()).is_none(), "{id}");
    }
    for id in canonical.iter().map(String::as_str).chain(others) {
        assert_eq!(
            super::context::id_bytes(id),
            super::context::any_id_bytes(id),
            "{id}"
        );
    }
}

#[test]
fn a_client_trace_is_continued_on_the_reply() {
    let id = "c6af9ac6-7b61-11e6-9a41-93e8deadbeef";
    let root = "Root=1-5759e988-bd862e3fe1be46a994272793";
    for (client, want) in [
        (None, "Root=1-00000001-7b6111e69a4193e8deadbeef".to_string()),
        (Some(root), format!("{root};Parent=c6af9ac67b6111e6")),
        (
            Some("Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"),
            "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"
                .to_string(),
        ),
        (
            Some(&format!("{root};Sampled=0")),
            format!("{root};Parent=c6af9ac67b6111e6;Sampled=0"),
        ),
        (
            Some("garbage"),
            "Root=1-00000001-7b6111e69a4193e8deadbeef".to_string(),
        ),
    ] {
        assert_eq!(
            super::context::reply_trace(client, id, 1000),
            want,
            "{client:?}"
        );
    }
    // Through the pipeline: the integration's reply carries the continued trace.
    let g = gateway();
    let h = head("GET", "/stage/hardcoded", &[("x-amzn-trace-id", root)]);
    let Start::NeedBody(r) = g.start(&h, &Cells::default()) else {
        panic!("not routed")
    };
    let resp = UpstreamAnswer {
        host_reply: None,
        status: Some(200),
        headers: vec![],
        body: br#"{"statusCode":200,"body":"x"}"#.to_vec(),
    };
    let out = g.finish(&h, &r, &resp);
    assert_eq!(
        out.reply.header("X-Amzn-Trace-Id"),
        Some(format!("{root};Parent=c6af9ac67b6111e6").as_str())
    );
}

fn cached_gateway(cache: Value) -> Gateway {
    gateway_with(
        json!({
            "cache": cache,
            "apiKeys": [{"id": "ops", "valueSha256": crate::apikeys::hash_value("opsopsopsopsopsopsopsops")}]
        }),
        json!({
            "/pets": {"get": {"x-amazon-apigateway-integration": {"type": "aws_proxy", "httpMethod": "POST",
                "uri": format!("{FN}pets/invocations"),
                "cacheKeyParameters": ["method.request.querystring.type"]}}, "post": proxy_op("pets")}
        }),
    )
}

fn routed(g: &Gateway, h: &RequestHead) -> Routed {
    match g.start(h, &Cells::default()) {
        Start::NeedBody(r) => r,
        Start::Respond(o) => panic!("{} {}: {}", h.method, h.path, o.reply.body_text()),
    }
}

fn lambda_ok(body: &str) -> UpstreamAnswer {
    UpstreamAnswer {
        host_reply: None,
        status: Some(200),
        headers: vec![],
        body: json!({"statusCode": 200, "headers": {"X-From": "fn"}, "body": body})
            .to_string()
            .into_bytes(),
    }
}

#[test]
fn cached_methods_get_a_plan_and_others_do_not() {
    let g = cached_gateway(json!({}));
    let get = routed(&g, &head("GET", "/stage/pets?type=cat&page=2", &[]));
    let plan = get.cache.as_ref().unwrap();
    assert_eq!(plan.mode, Mode::Lookup);
    let other = routed(&g, &head("GET", "/stage/pets?page=3&type=cat", &[]));
    assert_eq!(
        other.cache.as_ref().unwrap().key,
        plan.key,
        "unlisted parameter"
    );
    let dog = routed(&g, &head("GET", "/stage/pets?type=dog", &[]));
    assert_ne!(dog.cache.as_ref().unwrap().key, plan.key);
    assert!(routed(&g, &head("POST", "/stage/pets", &[]))
        .cache
        .is_none());
    // No cache section: nothing is planned.
    assert!(routed(&gateway(), &head("GET", "/stage/x", &[]))
        .cache
        .is_none());
}

#[test]
fn finish_offers_2xx_answers_without_per_request_headers() {
    let g = cached_gateway(json!({"debugHeader": true}));
    let h = head("GET", "/stage/pets?type=cat", &[]);
    let r = routed(&g, &h);
    let out = g.finish(&h, &r, &lambda_ok("cats"));
    assert_eq!(out.reply.header("X-Apigw-Edge-Cache"), Some("MISS"));
    let stored = out.store.unwrap();
    assert_eq!(stored.body_text(), "cats");
    assert_eq!(stored.header("x-from"), Some("fn"));
    for name in [
        "x-amzn-requestid",
        "x-amz-apigw-id",
        "x-amzn-trace-id",
        "x-apigw-edge-cache",
    ] {
        assert!(stored.header(name).is_none(), "{name} stored");
    }
    // A hit gets this request's own ids.
    let h2 = head("GET", "/stage/pets?type=cat", &[]);
    let mut h2 = h2;
    h2.request_id = "00000000-0000-4000-8000-000000000001".into();
    let hit = g.cache_hit(&h2, &r, *stored);
    assert_eq!(
        hit.reply.header("x-amzn-requestid"),
        Some(h2.request_id.as_str())
    );
    assert_eq!(hit.reply.header("X-Apigw-Edge-Cache"), Some("HIT"));
    assert_eq!(hit.reply.body_text(), "cats");
    // Failures and non-2xx answers are not offered.
    let err = g.finish(
        &h,
        &r,
        &UpstreamAnswer {
            host_reply: None,
            status: Some(200),
            headers: vec![],
            body: b"nope".to_vec(),
        },
    );
    assert_eq!(err.reply.status, 502);
    assert!(err.store.is_none());
    let not_found = UpstreamAnswer {
        body: br#"{"statusCode":404}"#.to_vec(),
        ..lambda_ok("")
    };
    assert!(g.finish(&h, &r, &not_found).store.is_none());
}

#[test]
fn unauthorized_invalidation_by_strategy() {
    let deny = cached_gateway(
        json!({"methodSettings": {"*/*": {"unauthorizedCacheControlHeaderStrategy": "FAIL_WITH_403"}}}),
    );
    let h = head("GET", "/stage/pets", &[("cache-control", "max-age=0")]);
    let Start::Respond(out) = deny.start(&h, &Cells::default()) else {
        panic!("not refused")
    };
    assert_eq!(out.reply.status, 403);
    assert_eq!(out.reply.body_text(), r#"{"message":"Unauthorized"}"#);
    assert!(out.log.unwrap().contains("ACCESS_DENIED"));
    // The same request from an allowed key refreshes.
    let deny_ops = cached_gateway(json!({"invalidators": ["ops"],
        "methodSettings": {"*/*": {"unauthorizedCacheControlHeaderStrategy": "FAIL_WITH_403"}}}));
    let h = head(
        "GET",
        "/stage/pets",
        &[
            ("cache-control", "max-age=0"),
            ("x-api-key", "opsopsopsopsopsopsopsops"),
        ],
    );
    assert_eq!(routed(&deny_ops, &h).cache.unwrap().mode, Mode::Refresh);
    // The default strategy serves, with a warning header on the reply.
    let warn = cached_gateway(json!({}));
    let h = head("GET", "/stage/pets", &[("cache-control", "max-age=0")]);
    let r = routed(&warn, &h);
    let out = warn.finish(&h, &r, &lambda_ok("x"));
    assert!(out
        .reply
        .header("warning")
        .unwrap()
        .contains("max-age=0 ignored"));
    let hit = warn.cache_hit(&h, &r, *out.store.unwrap());
    assert!(hit.reply.header("warning").is_some());
}

fn limited_gateway(extra: Value) -> Gateway {
    let mut d = json!({
        "apiKeys": [
            {"id": "a", "valueSha256": crate::apikeys::hash_value("aaaaaaaaaaaaaaaaaaaaaaaa")},
            {"id": "off", "enabled": false, "valueSha256": crate::apikeys::hash_value("offoffoffoffoffoffoffoff")},
            {"id": "lone", "valueSha256": crate::apikeys::hash_value("lonelonelonelonelonelone")}
        ],
        "usagePlans": [{"id": "basic", "apiKeys": ["a", "off"], "quota": {"limit": 2, "period": "DAY"}}],
        "apiKeyRequired": ["/keyed/GET"],
        "cors": {"allowOrigins": ["http://app.test"], "allowMethods": ["GET"], "allowHeaders": ["x-api-key"]}
    });
    for (k, v) in extra.as_object().unwrap() {
        d[k] = v.clone();
    }
    gateway_with(
        d,
        json!({"/keyed": {"get": proxy_op("keyed")}, "/open": {"get": proxy_op("open")}}),
    )
}

fn outcome_of(g: &Gateway, h: &RequestHead, cells: &Cells) -> Result<Routed, Outcome> {
    match g.start(h, cells) {
        Start::NeedBody(r) => Ok(r),
        Start::Respond(o) => Err(o),
    }
}

#[test]
fn api_keys_are_checked_in_order() {
    let g = limited_gateway(json!({}));
    let cells = Cells::default();
    for (headers, why) in [
        (vec![], "x-api-key is missing"),
        (vec![("x-api-key", "nope")], "unknown or disabled"),
        (
            vec![("x-api-key", "offoffoffoffoffoffoffoff")],
            "unknown or disabled",
        ),
        (
            vec![("x-api-key", "lonelonelonelonelonelone")],
            "no usage plan",
        ),
    ] {
        let o = outcome_of(&g, &head("GET", "/stage/keyed", &headers), &cells).unwrap_err();
        assert_eq!(o.reply.status, 403, "{headers:?}");
        assert_eq!(o.reply.body_text(), r#"{"message":"Forbidden"}"#);
        assert_eq!(
            o.reply.header("x-amzn-errortype"),
            Some("ForbiddenException")
        );
        let log = o.log.unwrap();
        assert!(
            log.contains(why) && log.contains("INVALID_API_KEY"),
            "{log}"
        );
    }
    // Methods without the requirement ignore the header.
    assert!(outcome_of(&g, &head("GET", "/stage/open", &[]), &cells).is_ok());
}

#[test]
fn the_key_reaches_the_event_and_the_quota_counts() {
    let g = limited_gateway(json!({}));
    let cells = Cells::default();
    let h = head(
        "GET",
        "/stage/keyed",
        &[("x-api-key", "aaaaaaaaaaaaaaaaaaaaaaaa")],
    );
    let event = event_counted(&g, &h, b"", &cells);
    assert_eq!(
        event["requestContext"]["identity"]["apiKey"],
        "aaaaaaaaaaaaaaaaaaaaaaaa"
    );
    assert_eq!(event["requestContext"]["identity"]["apiKeyId"], "a");
    assert!(outcome_of(&g, &h, &cells).is_ok());
    let o = outcome_of(&g, &h, &cells).unwrap_err();
    assert_eq!(
        (o.reply.status, o.reply.body_text()),
        (429, r#"{"message":"Limit Exceeded"}"#.into())
    );
    assert_eq!(
        o.usage.unwrap().kind,
        crate::usage::EventKind::QuotaExceeded
    );
    // Methods that need no key have no key fields in the event.
    let event = event_counted(&g, &head("GET", "/stage/open", &[]), b"", &cells);
    assert!(event["requestContext"]["identity"]
        .get("apiKeyId")
        .is_none());
}

#[test]
fn cors_on_preflights_errors_and_answers() {
    let g = limited_gateway(json!({}));
    let cells = Cells::default();
    // A preflight is answered before routing, even for a path with no OPTIONS method.
    let pre = head(
        "OPTIONS",
        "/stage/keyed",
        &[
            ("origin", "http://app.test"),
            ("access-control-request-method", "GET"),
            ("access-control-request-headers", "x-api-key"),
        ],
    );
    let o = outcome_of(&g, &pre, &cells).unwrap_err();
    assert_eq!(o.reply.status, 204);
    assert_eq!(
        o.reply.header("access-control-allow-headers"),
        Some("x-api-key")
    );
    assert!(o.reply.header("x-amzn-requestid").is_some());
    // The gateway's own errors carry the CORS headers: 403s and 429s alike.
    for path in ["/stage/keyed", "/stage/nowhere"] {
        let o = outcome_of(
            &g,
            &head("GET", path, &[("origin", "http://app.test")]),
            &cells,
        )
        .unwrap_err();
        assert_eq!(o.reply.status, 403);
        assert_eq!(
            o.reply.header("access-control-allow-origin"),
            Some("http://app.test"),
            "{path}"
        );
    }
    // A function's answer gets them too, replacing the function's own.
    let h = head("GET", "/stage/open", &[("origin", "http://app.test")]);
    let routed = outcome_of(&g, &h, &cells).unwrap();
    let resp = UpstreamAnswer {
        host_reply: None,
        status: Some(200),
        headers: vec![],
        body: br#"{"statusCode":200,"headers":{"Access-Control-Allow-Origin":"*"}}"#.to_vec(),
    };
    let o = g.finish(&h, &routed, &resp);
    assert_eq!(
        o.reply.header("access-control-allow-origin"),
        Some("http://app.test")
    );
    assert_eq!(o.reply.header("vary"), Some("Origin"));
}

#[test]
fn rate_limit_headers_reach_replies() {
    let g = limited_gateway(json!({"usage": {"rateLimitHeaders": true}}));
    let cells = Cells::default();
    let h = head(
        "GET",
        "/stage/keyed",
        &[("x-api-key", "aaaaaaaaaaaaaaaaaaaaaaaa")],
    );
    let routed = outcome_of(&g, &h, &cells).unwrap();
    let o = g.finish(&h, &routed, &lambda_ok("x"));
    assert_eq!(o.reply.header("x-ratelimit-remaining"), Some("1"));
    outcome_of(&g, &h, &cells).unwrap();
    let o = outcome_of(&g, &h, &cells).unwrap_err();
    assert_eq!(o.reply.header("x-ratelimit-remaining"), Some("0"));
    assert!(o.reply.header("retry-after").is_some());
}

#[test]
fn lambda_non_proxy_content_handling() {
    let g = gateway_with(
        json!({}),
        json!({"/img": {"post": {"x-amazon-apigateway-integration": {
            "type": "aws", "httpMethod": "POST", "uri": format!("{FN}img/invocations"),
            "contentHandling": "CONVERT_TO_TEXT",
            "requestTemplates": {"image/png": "{\"image\": \"$input.body\"}"},
            "responses": {"default": {"statusCode": "200", "contentHandling": "CONVERT_TO_BINARY",
                "responseParameters": {"method.response.header.Content-Type": "'image/png'"}}}}}}}),
    );
    let png = b"\x89PNG\r\n\x1a\n\x00";
    let h = head("POST", "/stage/img", &[("content-type", "image/png")]);
    let Start::NeedBody(routed) = g.start(&h, &Cells::default()) else {
        panic!()
    };
    // The upload reaches the template as base64 text.
    let call = g.invoke(&h, &routed, png).unwrap();
    assert_eq!(call.body, br#"{"image": "iVBORw0KGgoA"}"#);
    // The function returns its image as a base64 string; the client gets the bytes.
    let resp = UpstreamAnswer {
        host_reply: None,
        status: Some(200),
        headers: vec![("x-amzn-RequestId".into(), "r".into())],
        body: br#""iVBORw0KGgoA""#.to_vec(),
    };
    let out = g.finish(&h, &routed, &resp);
    assert_eq!(out.reply.body, png);
    assert_eq!(out.reply.header("content-type"), Some("image/png"));
}
