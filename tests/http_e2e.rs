//! HTTP integrations through real Envoy with two workers: `http_proxy` passing the client's
//! request and the backend's answer through, `http` with templates, parameter mappings and
//! integration responses selected by the backend's status, stage variables in URIs, TLS to
//! a backend with a private CA, and backends that are slow, refuse connections, answer
//! garbage or answer too much. The main suite runs with the integration request forwarded in
//! place of the client's (`forwarding: ROUTER`) and dispatched (`DISPATCH`): the answers are
//! the same.

#![cfg(not(target_arch = "wasm32"))]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::time::Duration;

use serde_json::{json, Value};
use support::*;

fn http_proxy(uri: &str, extra: Value) -> Value {
    let mut integ = json!({"type": "http_proxy", "httpMethod": "ANY", "uri": uri,
        "requestParameters": {"integration.request.path.proxy": "method.request.path.proxy"}});
    if let (Some(i), Some(e)) = (integ.as_object_mut(), extra.as_object()) {
        i.extend(e.clone());
    }
    json!({"x-amazon-apigateway-integration": integ})
}

fn export(backend: u16, refused: u16, garbage: u16) -> Value {
    json!({
        "swagger": "2.0",
        "paths": {
            "/shop/{proxy+}": {"x-amazon-apigateway-any-method":
                http_proxy("http://${stageVariables.backend}/api/{proxy}?from=gw",
                    json!({"timeoutInMillis": 800}))},
            "/refused/{proxy+}": {"get": http_proxy(&format!("http://127.0.0.1:{refused}/{{proxy}}"), json!({}))},
            "/garbage/{proxy+}": {"get": http_proxy(&format!("http://127.0.0.1:{garbage}/{{proxy}}"), json!({}))},
            "/orders/{id}": {"post": {
                "responses": {"201": {}, "400": {}, "502": {"headers": {"X-Upstream": {"type": "string"}}}},
                "x-amazon-apigateway-integration": {
                    "type": "http", "httpMethod": "PUT",
                    "uri": format!("http://127.0.0.1:{backend}/v2/orders/{{id}}"),
                    "requestParameters": {
                        "integration.request.path.id": "method.request.path.id",
                        "integration.request.header.X-Tenant": "method.request.header.tenant",
                        "integration.request.querystring.source": "'gateway'"
                    },
                    "requestTemplates": {"application/json":
                        "{\"order\": \"$input.params('id')\", \"qty\": $input.json('$.qty'), \"stage\": \"$context.stage\"}"},
                    "passthroughBehavior": "NEVER",
                    "responses": {
                        "default": {"statusCode": "201",
                            "responseTemplates": {"application/json": "{\"created\": $input.json('$.id')}"}},
                        "4\\d{2}": {"statusCode": "400",
                            "responseTemplates": {"application/json": "{\"problem\": $input.json('$.error')}"}},
                        "5\\d{2}": {"statusCode": "502",
                            "responseParameters": {"method.response.header.X-Upstream": "integration.response.header.X-Backend"}}
                    }
                }
            }}
        }
    })
}

/// A port where nothing listens.
fn closed_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// A server that answers every connection with bytes that are not HTTP.
fn garbage_server() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for conn in l.incoming() {
            let Ok(mut conn) = conn else { continue };
            let mut buf = [0u8; 4096];
            let _ = conn.read(&mut buf);
            let _ =
                conn.write_all(b"SSH-2.0-OpenSSH_9.2\r\n\x00\x01\x02 definitely not http\r\n\r\n");
        }
    });
    port
}

fn backend_script(r: &Recorded) -> StubReply {
    let path = r.path.as_str();
    if path.starts_with("/api/slow") {
        return StubReply::payload("late").delay(Duration::from_millis(2500));
    }
    if path.starts_with("/api/big") {
        return StubReply::payload(vec![b'x'; 5000]);
    }
    if path.starts_with("/api/") {
        return StubReply::payload(
            json!({"method": r.method, "path": r.path, "body": String::from_utf8_lossy(&r.body)})
                .to_string(),
        )
        .status(if path.contains("missing") { 404 } else { 207 })
        .with_header("Content-Type", "application/json")
        .with_header("Set-Cookie", "a=1")
        .with_header("Set-Cookie", "b=2")
        .with_header("Server", "backend/1.0");
    }
    if path.starts_with("/v2/orders/7") {
        return StubReply::payload(r#"{"error": "no stock"}"#).status(409);
    }
    if path.starts_with("/v2/orders/4") {
        return StubReply::payload("").status(204);
    }
    if path.starts_with("/v2/orders/9") {
        return StubReply::payload("oops")
            .status(503)
            .with_header("X-Backend", "b-9");
    }
    StubReply::payload(r#"{"id": "o-1"}"#).status(200)
}

#[test]
fn http_proxy_and_http_integrations_reach_a_backend_forwarded() {
    reach_a_backend("ROUTER");
}

#[test]
fn http_proxy_and_http_integrations_reach_a_backend_dispatched() {
    reach_a_backend("DISPATCH");
}

fn reach_a_backend(forwarding: &str) {
    let backend = InvokeStub::start(backend_script);
    let (refused, garbage) = (closed_port(), garbage_server());
    let deployment = format!(
        "stage: dev\nstageVariables:\n  backend: 127.0.0.1:{}\nlambda:\n  endpoint: http://127.0.0.1:9\nlimits:\n  maxResponseBytes: 4096\nforwarding: {forwarding}\n",
        backend.port
    );
    let envoy = Envoy::start(
        &format!("http-{}", forwarding.to_lowercase()),
        &deployment,
        &export(backend.port, refused, garbage),
        2,
    );

    // http_proxy: method, path, query, headers and body go through; the answer comes back
    // as it is, with Server remapped.
    let r = envoy.request(
        "PATCH",
        "/dev/shop/items/a%20b?q=1&q=2",
        &[("x-client", "c1"), ("content-type", "text/plain")],
        b"raw body",
    );
    assert_eq!(r.status, 207, "{}\n{}", r.text(), envoy.log());
    let seen = backend.requests().pop().unwrap();
    assert_eq!(seen.method, "PATCH");
    assert_eq!(seen.path, "/api/items/a%20b?from=gw&q=1&q=2");
    assert_eq!(seen.header("x-client"), Some("c1"));
    assert_eq!(
        seen.header("host"),
        Some(format!("127.0.0.1:{}", backend.port).as_str())
    );
    // A call the native build dispatches (forwarding: DISPATCH) leaves through Envoy's async
    // client, which appends an address of its own that a module cannot turn off (see the
    // README's limits); forwarded requests and the wasm build's calls carry the caller only.
    let xff = seen.header("x-forwarded-for").unwrap_or_default();
    if native() && forwarding == "DISPATCH" {
        assert!(xff.starts_with("127.0.0.1,"), "{xff}");
    } else {
        assert_eq!(xff, "127.0.0.1");
    }
    assert_eq!(seen.body, b"raw body");
    // Nothing of the gateway's own plumbing reaches the backend or the client. (A
    // dispatched call is Envoy's internal request: its async client adds `x-envoy-internal`
    // and `x-envoy-expected-rq-timeout-ms`; the forwarding router adds nothing.)
    for (name, _) in &seen.headers {
        let name = name.to_ascii_lowercase();
        assert!(!name.starts_with("x-apigw-edge"), "{name}");
        assert!(
            forwarding == "DISPATCH" || !name.starts_with("x-envoy"),
            "{name}"
        );
    }
    assert!(r.header("x-envoy-upstream-service-time").is_none());
    assert_eq!(r.headers_named("set-cookie"), vec!["a=1", "b=2"]);
    assert_eq!(r.header("x-amzn-remapped-server"), Some("backend/1.0"));
    assert!(r.header("x-amzn-requestid").is_some());
    assert_eq!(r.json()["body"], "raw body");

    // The backend's own error statuses pass through a proxy integration.
    let r = envoy.get("/dev/shop/missing");
    assert_eq!(r.status, 404, "{}", r.text());

    // http: the template builds the body, mappings set path, query and header; integration
    // responses are chosen by the backend's status.
    let json_ct = ("content-type", "application/json");
    let r = envoy.request(
        "POST",
        "/dev/orders/5",
        &[json_ct, ("tenant", "acme"), ("x-secret", "no")],
        br#"{"qty": 3}"#,
    );
    assert_eq!(
        (r.status, r.text().as_str()),
        (201, r#"{"created": "o-1"}"#),
        "{}",
        envoy.log()
    );
    let seen = backend.requests().pop().unwrap();
    assert_eq!(seen.method, "PUT");
    assert_eq!(seen.path, "/v2/orders/5?source=gateway");
    assert_eq!(seen.header("x-tenant"), Some("acme"));
    assert_eq!(seen.header("x-secret"), None);
    assert_eq!(seen.json(), json!({"order": "5", "qty": 3, "stage": "dev"}));
    let r = envoy.request("POST", "/dev/orders/7", &[json_ct], br#"{"qty": 1}"#);
    assert_eq!(
        (r.status, r.text().as_str()),
        (400, r#"{"problem": "no stock"}"#)
    );
    let r = envoy.request("POST", "/dev/orders/9", &[json_ct], br#"{"qty": 1}"#);
    assert_eq!((r.status, r.header("x-upstream")), (502, Some("b-9")));
    // An answer without a body still gets the template's.
    let r = envoy.request("POST", "/dev/orders/4", &[json_ct], br#"{"qty": 1}"#);
    assert_eq!(
        (r.status, r.text().as_str()),
        (201, r#"{"created": null}"#),
        "{}",
        envoy.log()
    );
    assert_eq!(r.header("content-type"), Some("application/json"));
    // passthroughBehavior NEVER: a media type without a template is refused before any call.
    let before = backend.requests().len();
    let r = envoy.request(
        "POST",
        "/dev/orders/5",
        &[("content-type", "text/xml")],
        b"<a/>",
    );
    assert_eq!(
        (r.status, r.json()["message"].as_str()),
        (415, Some("Unsupported Media Type"))
    );
    assert_eq!(backend.requests().len(), before);

    // Failing backends get API Gateway's answers, quickly, and the workers keep serving.
    let r = envoy.get("/dev/shop/slow");
    assert_eq!(r.status, 504);
    assert_eq!(r.json(), json!({"message": "Endpoint request timed out"}));
    for path in ["/dev/refused/x", "/dev/garbage/x", "/dev/shop/big"] {
        let r = envoy.get(path);
        assert_eq!(r.status, 500, "{path}: {}", r.text());
        assert_eq!(
            r.json(),
            json!({"message": "Internal server error"}),
            "{path}"
        );
        assert_eq!(
            r.header("x-amzn-errortype"),
            Some("InternalServerErrorException")
        );
    }
    let log = envoy.log();
    assert!(log.contains("HTTP backend unreachable"), "{log}");
    assert!(log.contains("over limits.maxResponseBytes (4096)"), "{log}");
    let r = envoy.get("/dev/shop/items/again");
    assert_eq!(r.status, 207);
}

#[test]
fn https_backends_are_verified_against_the_configured_ca() {
    let dir = temp_dir("http-tls-ca");
    let ca = TestCa::new(&dir);
    let backend = InvokeStub::start_tls(&ca, |r| {
        StubReply::payload(format!("secure {}", r.path)).with_header("Content-Type", "text/plain")
    });
    let doc = json!({"swagger": "2.0", "paths": {
        "/s/{proxy+}": {"get": http_proxy(&format!("https://localhost:{}/{{proxy}}", backend.port), json!({}))}
    }});
    let trusted = format!(
        "stage: dev\nlambda:\n  endpoint: http://127.0.0.1:9\nhttp:\n  caFile: {}\n",
        ca.ca_file.display()
    );
    let envoy = Envoy::start("http-tls", &trusted, &doc, 2);
    let r = envoy.get("/dev/s/hello");
    assert_eq!(
        (r.status, r.text().as_str()),
        (200, "secure /hello"),
        "{}",
        envoy.log()
    );
    drop(envoy);

    // Without the private CA the backend's certificate is not trusted: no call succeeds.
    let untrusted = "stage: dev\nlambda:\n  endpoint: http://127.0.0.1:9\n";
    let envoy = Envoy::start("http-tls-untrusted", untrusted, &doc, 2);
    let r = envoy.get("/dev/s/hello");
    assert_eq!(r.status, 500, "{}", r.text());
}

/// The shipped example, against a backend serving its `site` folder.
#[test]
fn the_http_backend_example_serves_its_site() {
    let site = repo().join("examples/http-backend/site");
    let backend = InvokeStub::start(move |r| {
        let file = site.join(r.path.trim_start_matches('/'));
        match std::fs::read(&file) {
            Ok(bytes) => StubReply::payload(bytes).with_header("Content-Type", "application/json"),
            Err(_) => StubReply::payload("not found").status(404),
        }
    });
    let example = repo().join("examples/http-backend");
    let doc: Value =
        serde_json::from_slice(&std::fs::read(example.join("openapi.json")).unwrap()).unwrap();
    let deployment: String = std::fs::read_to_string(example.join("deployment.yaml"))
        .unwrap()
        .lines()
        .filter(|l| {
            !["openapi:", "listen:", "admin:"]
                .iter()
                .any(|k| l.starts_with(k))
        })
        .map(|l| l.replace("127.0.0.1:8000", &format!("127.0.0.1:{}", backend.port)) + "\n")
        .collect();
    let envoy = Envoy::start("http-example", &deployment, &doc, 2);

    let r = envoy.get("/dev/items/1");
    assert_eq!(r.status, 200, "{}\n{}", r.text(), envoy.log());
    assert_eq!(
        r.json(),
        json!({"id": "1", "name": "teapot", "stage": "dev"})
    );
    let seen = backend.requests().pop().unwrap();
    assert_eq!(seen.path, "/items/1.json");
    assert_eq!(seen.header("x-requested-by"), Some("apigw-edge"));
    let r = envoy.get("/dev/items/2");
    assert_eq!((r.status, r.json()), (404, json!({"message": "no item 2"})));
    let r = envoy.get("/dev/catalog/items/1.json");
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["price"], 18);
}

/// `contentHandling` and binary media types: an image uploaded as bytes reaches the backend
/// as base64 in a template, and a backend's image comes back as bytes.
#[test]
fn binary_payloads_cross_by_content_handling() {
    let png: &[u8] = b"\x89PNG\r\n\x1a\n\x00\xff\xfe";
    let backend = InvokeStub::start(move |r| {
        if r.path == "/image" {
            StubReply::payload(png.to_vec()).with_header("Content-Type", "image/png")
        } else {
            StubReply::payload(r.body.clone()).with_header("Content-Type", "application/json")
        }
    });
    let uri = |p: &str| format!("http://127.0.0.1:{}{p}", backend.port);
    let doc = json!({"swagger": "2.0",
    "x-amazon-apigateway-binary-media-types": ["image/png"],
    "paths": {
        "/upload": {"post": {"x-amazon-apigateway-integration": {
            "type": "http", "httpMethod": "POST", "uri": uri("/upload"),
            "contentHandling": "CONVERT_TO_TEXT",
            "requestTemplates": {"image/png": "{\"size\": \"$input.body.length()\", \"data\": \"$input.body\"}"},
            "responses": {"default": {"statusCode": "200"}}}}},
        "/image": {"get": {"x-amazon-apigateway-integration": {
            "type": "http", "httpMethod": "GET", "uri": uri("/image"),
            "responses": {"default": {"statusCode": "200",
                "responseParameters": {"method.response.header.Content-Type": "integration.response.header.Content-Type"}}}}}}
    }});
    let envoy = Envoy::start("http-binary", "stage: dev\n", &doc, 2);
    let r = envoy.request("POST", "/dev/upload", &[("content-type", "image/png")], png);
    assert_eq!(r.status, 200, "{}\n{}", r.text(), envoy.log());
    assert_eq!(r.json(), json!({"size": "16", "data": "iVBORw0KGgoA//4="}));
    let r = envoy.request("GET", "/dev/image", &[("accept", "image/png")], b"");
    assert_eq!((r.status, r.body.as_slice()), (200, png));
    assert_eq!(r.header("content-type"), Some("image/png"));
    // Asked for text, the image comes back base64-encoded.
    let r = envoy.request("GET", "/dev/image", &[("accept", "application/json")], b"");
    assert_eq!((r.status, r.text().as_str()), (200, "iVBORw0KGgoA//4="));
}
