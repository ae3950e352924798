//! The CORS policy as a real browser sees it: headless Chromium loads a page from one
//! loopback origin and calls the gateway on another. Checks that an allowed origin's
//! preflighted request (custom header, PUT, credentials) succeeds, that the page can read
//! the bodies of the gateway's own 403 and 429, and that a disallowed origin is blocked by
//! the browser itself.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::Path;
use std::thread;

use serde_json::{json, Value};
use support::*;

const KEY: &str = "browserbrowserbrowserbrowser";

/// Serves `page` for every request on a loopback port; returns the port.
fn serve_page(page: String) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            let mut reader = BufReader::new(conn.try_clone().unwrap());
            let mut line = String::new();
            while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                line.clear();
            }
            let head = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: text/html; charset=utf-8\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                page.len()
            );
            let _ = conn.write_all(head.as_bytes());
            let _ = conn.write_all(page.as_bytes());
        }
    });
    port
}

/// The page: runs the calls in order and writes their results into the document.
fn page(gateway: u16) -> String {
    format!(
        r#"<!doctype html><html><body>running<script>
const gw = "http://127.0.0.1:{gateway}/s";
async function call(name, url, init) {{
  try {{
    const r = await fetch(url, init);
    return {{status: r.status, body: await r.text(), requestId: r.headers.get("x-amzn-requestid")}};
  }} catch (e) {{
    return {{blocked: String(e)}};
  }}
}}
(async () => {{
  const out = {{}};
  out.put = await call("put", gw + "/items/7", {{method: "PUT", credentials: "include",
    headers: {{"content-type": "application/json", "x-api-key": "{KEY}", "x-client": "page"}},
    body: JSON.stringify({{hello: "world"}})}});
  out.forbidden = await call("forbidden", gw + "/items/7", {{method: "PUT",
    headers: {{"content-type": "application/json"}}, body: "{{}}"}});
  out.first = await call("first", gw + "/limited", {{headers: {{"x-api-key": "{KEY}"}}}});
  out.limited = await call("limited", gw + "/limited", {{headers: {{"x-api-key": "{KEY}"}}}});
  out.simple = await call("simple", gw + "/open");
  document.body.textContent = "RESULT" + JSON.stringify(out);
}})();
</script></body></html>"#
    )
}

fn run_chromium(url: &str, profile: &Path) -> Value {
    let (dom, stderr) = chromium_dom(url, profile, &["--virtual-time-budget=20000"]);
    let start = dom
        .find("RESULT")
        .unwrap_or_else(|| panic!("the page did not finish:\n{dom}\n{stderr}"));
    let text = &dom[start + "RESULT".len()..];
    let end = text.find("</body>").unwrap_or(text.len());
    let json = text[..end]
        .replace("&amp;", "&")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"");
    serde_json::from_str(json.trim()).unwrap_or_else(|e| panic!("{e}: {json}"))
}

#[test]
fn a_browser_sees_the_cors_policy() {
    let stub = InvokeStub::start(|r| {
        StubReply::payload(
            json!({"statusCode": 200, "headers": {"Access-Control-Allow-Origin": "*"}, "body": format!("{} {}", r.function(), r.json()["httpMethod"].as_str().unwrap_or(""))})
                .to_string(),
        )
    });
    let keyed = |f: &str| {
        let mut op = proxy_op(f);
        op["security"] = json!([{"api_key": []}]);
        op
    };
    let api = json!({"swagger": "2.0",
    "securityDefinitions": {"api_key": {"type": "apiKey", "name": "x-api-key", "in": "header"}},
    "paths": {
        "/items/{id}": {"put": keyed("items")},
        "/limited": {"get": keyed("limited")},
        "/open": {"get": proxy_op("open")}
    }});
    let dir = temp_dir("browser");
    // The page is written for the gateway's port, and the policy names the page's origin.
    let gateway = free_port();
    let page_port = serve_page(page(gateway));
    let other_port = serve_page(page(gateway));
    let deployment = format!(
        "stage: s
lambda:
  endpoint: {url}
apiKeys:
  - {{id: page, valueSha256: {hash}}}
usagePlans:
  - id: page
    apiKeys: [page]
    quota: {{limit: 2, period: DAY}}
cors:
  allowOrigins: [\"http://127.0.0.1:{page_port}\"]
  allowMethods: [GET, PUT]
  allowHeaders: [content-type, x-api-key, x-client]
  exposeHeaders: [x-amzn-requestid]
  allowCredentials: true
",
        url = stub.url(),
        hash = apigw_edge::apikeys::hash_value(KEY),
    );
    let (config, _, admin) = render_on(&dir, &deployment, &api, gateway, free_port());
    let envoy = Envoy::start_config(dir.clone(), config, gateway, admin, 2);

    let out = run_chromium(
        &format!("http://127.0.0.1:{page_port}/"),
        &dir.join("profile-allowed"),
    );
    // The preflighted PUT with a custom header and credentials went through.
    assert_eq!(out["put"]["status"], 200, "{out}");
    assert_eq!(out["put"]["body"], "items PUT");
    assert!(out["put"]["requestId"].is_string(), "exposed header: {out}");
    let put = stub.last("items");
    assert_eq!(put.json()["headers"]["X-Client"], "page");
    // The gateway's own errors are readable by the page.
    assert_eq!(out["forbidden"]["status"], 403, "{out}");
    assert_eq!(out["forbidden"]["body"], r#"{"message":"Forbidden"}"#);
    assert_eq!(out["first"]["status"], 200, "{out}");
    assert_eq!(out["limited"]["status"], 429, "{out}");
    assert_eq!(out["limited"]["body"], r#"{"message":"Limit Exceeded"}"#);
    assert_eq!(out["simple"]["status"], 200);

    // The same page from another origin: the browser blocks every call.
    let calls_before = stub.requests().len();
    let out = run_chromium(
        &format!("http://127.0.0.1:{other_port}/"),
        &dir.join("profile-other"),
    );
    for call in ["put", "forbidden", "limited", "simple"] {
        assert!(
            out[call]["blocked"].is_string(),
            "{call} was not blocked: {out}"
        );
    }
    // Preflights stopped the PUTs before they reached Lambda.
    let puts = stub.requests()[calls_before..]
        .iter()
        .filter(|r| r.function() == "items")
        .count();
    assert_eq!(puts, 0);
    drop(envoy);
}
