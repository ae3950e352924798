//! The example API served by real Rust Lambda functions under `cargo lambda watch`, through
//! real Envoy: the path a user takes with the demo.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::*;

/// `cargo lambda watch` in its own session, ended with its process group on drop; the
/// functions it started run in sessions of their own and end when their stdin closes.
struct Watch(Child);

impl Drop for Watch {
    fn drop(&mut self) {
        // `--` matters: without it `kill` may read the negative group id as an option.
        let group = format!("-{}", self.0.id());
        let _ = Command::new("kill")
            .args(["-s", "TERM", "--", &group])
            .status();
        let _ = self.0.wait();
    }
}

fn start_watch(port: u16, log: &std::path::Path) -> Watch {
    let venv_bin = repo().join(".venv/bin");
    assert!(
        venv_bin.join("cargo-lambda").exists(),
        "cargo-lambda is missing: run ./scripts/setup.sh"
    );
    let path = format!(
        "{}:{}",
        venv_bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    // Its own session: the watcher supervises the functions with process-group signals and
    // must not share a session with the test process.
    let child = Command::new("setsid")
        .args([
            "cargo",
            "lambda",
            "watch",
            "--invoke-address",
            "127.0.0.1",
            "--invoke-port",
            &port.to_string(),
        ])
        .current_dir(repo().join("examples/functions"))
        .env("PATH", path)
        .stdout(Stdio::null())
        .stdin(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .unwrap();
    let watch = Watch(child);
    // The first invocation may compile the functions.
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let probe = try_request(
            port,
            "POST",
            "/2015-03-31/functions/echo/invocations",
            &[("Content-Type", "application/json")],
            b"{}",
            Duration::from_secs(600),
        );
        if probe.is_ok_and(|r| r.status == 200) {
            return watch;
        }
        assert!(
            Instant::now() < deadline,
            "cargo lambda watch did not serve echo:\n{}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// The example API under `cargo lambda watch`, behind Envoy with two workers.
fn example_api(name: &str) -> (Watch, Envoy) {
    let dir = temp_dir(name);
    let lambda_port = free_port();
    let watch = start_watch(lambda_port, &dir.join("watch.log"));
    let export: Value = serde_json::from_str(
        &std::fs::read_to_string(repo().join("examples/hello/openapi.json")).unwrap(),
    )
    .unwrap();
    let deployment = format!(
        "stage: dev\nstageVariables:\n  greeting: Howdy\n  helloFunction: hello\nlambda:\n  endpoint: http://127.0.0.1:{lambda_port}\n"
    );
    let (config, port, admin) = render(&dir, &deployment, &export);
    (watch, Envoy::start_config(dir, config, port, admin, 2))
}

#[test]
fn example_api_under_cargo_lambda_watch() {
    let (_watch, envoy) = example_api("cargo-lambda");

    let r = envoy.get("/dev/hello?name=Ada");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["message"], "Howdy, Ada!");
    assert_eq!(r.json()["stage"], "dev");
    assert_eq!(r.header("x-example"), Some("hello"));
    assert_eq!(r.header("content-type"), Some("application/json"));

    // The function name comes from a stage variable in the integration URI.
    let r = envoy.get("/dev/hello/Grace");
    assert_eq!(
        (r.status, r.json()["message"].clone()),
        (200, Value::from("Howdy, Grace!"))
    );

    // A function error: cargo lambda answers HTTP 500, the client gets API Gateway's 502.
    let r = envoy.get("/dev/hello/fail");
    assert_eq!(
        (r.status, r.text().as_str()),
        (502, r#"{"message":"Internal server error"}"#)
    );
    assert!(
        envoy
            .log()
            .contains("customer function error: failing on purpose"),
        "{}",
        envoy.log()
    );

    // The echo function returns the event it received.
    let r = envoy.request(
        "POST",
        "/dev/echo/a/b?x=1&x=2",
        &[("Content-Type", "text/plain")],
        b"hi",
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.headers_named("x-echo"), vec!["one", "two"]);
    let event = r.json();
    assert_eq!(event["resource"], "/echo/{proxy+}");
    assert_eq!(event["path"], "/echo/a/b");
    assert_eq!(event["httpMethod"], "POST");
    assert_eq!(event["pathParameters"]["proxy"], "a/b");
    assert_eq!(
        event["multiValueQueryStringParameters"]["x"],
        serde_json::json!(["1", "2"])
    );
    assert_eq!(event["body"], "hi");
    assert_eq!(event["requestContext"]["path"], "/dev/echo/a/b");
    assert_eq!(
        event["requestContext"]["requestId"],
        r.header("x-amzn-requestid").unwrap()
    );

    assert_eq!(envoy.get("/dev/nope").status, 403);
    assert_eq!(envoy.get("/prod/hello").status, 403);
    // DEFAULT_4XX in the export adds CORS to the gateway's own errors.
    assert_eq!(
        envoy.get("/dev/nope").header("access-control-allow-origin"),
        Some("*")
    );

    // The non-proxy `orders` function (lambda_runtime) behind request and response
    // templates: its errors are selected by message, whether cargo lambda reports them as
    // HTTP 500 or Lambda as 200 with X-Amz-Function-Error.
    let json = [("Content-Type", "application/json")];
    let r = envoy.request("POST", "/dev/orders/o-7", &json, br#"{"quantity": 4}"#);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.json(),
        serde_json::json!({"order": "o-7", "quantity": 4, "total": 10.0})
    );
    assert_eq!(r.header("x-order-version"), Some("v1"));
    let r = envoy.request(
        "POST",
        "/dev/orders/missing-1",
        &json,
        br#"{"quantity": 1}"#,
    );
    assert_eq!(
        (r.status, r.json()),
        (
            404,
            serde_json::json!({"message": "Order NotFound: missing-1"})
        )
    );
    let r = envoy.request("POST", "/dev/orders/o-8", &json, b"{}");
    assert_eq!(
        (r.status, r.json()),
        (400, serde_json::json!({"message": "Invalid quantity 0"}))
    );
    // The request validator refuses a body that does not match the Order model before
    // the function runs.
    let r = envoy.request("POST", "/dev/orders/o-8", &json, br#"{"quantity": "four"}"#);
    assert_eq!(
        (r.status, r.json()),
        (400, serde_json::json!({"message": "Invalid request body"}))
    );
    let r = envoy.request(
        "POST",
        "/dev/orders/o-9",
        &[("Content-Type", "text/plain")],
        b"4",
    );
    assert_eq!(r.status, 415, "passthroughBehavior NEVER");
}

/// The example authorizers run under `cargo lambda watch` and read our events with the
/// official `aws_lambda_events` types: a malformed event would fail them (500), not pass.
#[test]
fn example_authorizers_under_cargo_lambda_watch() {
    let (_watch, envoy) = example_api("cargo-lambda-authorizers");

    // TOKEN: allowed, the echo function shows what the authorizer decided.
    let r = envoy.request(
        "GET",
        "/dev/profile",
        &[("Authorization", "Bearer allow-ada")],
        b"",
    );
    assert_eq!(r.status, 200, "{}\n{}", r.text(), envoy.log());
    let authorizer = &r.json()["requestContext"]["authorizer"];
    assert_eq!(authorizer["principalId"], "ada");
    assert_eq!(authorizer["user"], "ada");
    assert_eq!(authorizer["tier"], "gold");
    assert_eq!(authorizer["checked"], "true");
    // Explicit deny, Unauthorized from the function, and a missing token.
    let r = envoy.request(
        "GET",
        "/dev/profile",
        &[("Authorization", "Bearer deny")],
        b"",
    );
    assert_eq!(r.status, 403, "{}", r.text());
    assert_eq!(
        r.json(),
        serde_json::json!({"Message": "User is not authorized to access this resource with an explicit deny"})
    );
    let r = envoy.request(
        "GET",
        "/dev/profile",
        &[("Authorization", "Bearer nobody")],
        b"",
    );
    assert_eq!(
        (r.status, r.text().as_str()),
        (401, r#"{"message":"Unauthorized"}"#)
    );
    assert_eq!(envoy.get("/dev/profile").status, 401);

    // REQUEST: the official REQUEST type parses our event (tenant, path, source address).
    let r = envoy.request("GET", "/dev/reports", &[("X-Tenant", "acme")], b"");
    assert_eq!(r.status, 200, "{}\n{}", r.text(), envoy.log());
    let authorizer = &r.json()["requestContext"]["authorizer"];
    assert_eq!(authorizer["principalId"], "tenant-acme");
    assert_eq!(authorizer["tenant"], "acme");
    assert_eq!(authorizer["path"], "/reports");
    assert_eq!(authorizer["sourceIp"], "127.0.0.1");
    let r = envoy.request("GET", "/dev/reports", &[("X-Tenant", "other")], b"");
    assert_eq!(r.status, 403);
}
