//! Method Test (`apigw-edge test`): one request through the filter's pipeline from the CLI,
//! against a scripted Invoke stand-in or a mock answer, with the console's report.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support;

use std::path::Path;
use std::process::Command;

use serde_json::{json, Value};
use support::*;

fn write_deployment(dir: &Path, endpoint: &str) -> std::path::PathBuf {
    let api = json!({"swagger": "2.0", "paths": {
        "/pets/{id}": {"get": proxy_op("pets"), "post": proxy_op("pets")},
        "/keyed": {"get": proxy_op("keyed")}
    }});
    std::fs::write(dir.join("api.json"), api.to_string()).unwrap();
    let deployment = dir.join("deployment.yaml");
    std::fs::write(
        &deployment,
        format!(
            "openapi: api.json\nstage: dev\napi:\n  id: pets12345\napiKeyRequired: [\"/keyed/GET\"]\nlambda:\n  endpoint: {endpoint}\n"
        ),
    )
    .unwrap();
    deployment
}

fn test_cli(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(cli()).arg("test").args(args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The execution log's lines without their time stamps.
fn log_lines(stdout: &str) -> Vec<String> {
    stdout
        .lines()
        .filter_map(|l| l.split_once(" UTC 20").map(|(_, rest)| rest))
        .filter_map(|rest| rest.split_once(" : ").map(|(_, text)| text.to_string()))
        .collect()
}

#[test]
fn method_test_calls_the_function_and_reports_like_the_console() {
    let stub = InvokeStub::start(|r| {
        let event = r.json();
        StubReply::payload(
            json!({"statusCode": 201, "headers": {"x-pet": event["pathParameters"]["id"]},
                   "body": format!("got {}", event["body"].as_str().unwrap_or("nothing"))})
            .to_string(),
        )
    });
    let dir = temp_dir("method-test");
    let deployment = write_deployment(&dir, &stub.url());
    std::fs::write(dir.join("body.json"), "{\"name\":\"rex\"}").unwrap();
    let body = format!("@{}", dir.join("body.json").display());
    let d = deployment.to_str().unwrap();
    let (code, stdout, stderr) = test_cli(&[
        d,
        "post",
        "/pets/7",
        "--query",
        "a=1 2",
        "--header",
        "X-Trace=abc",
        "--body",
        &body,
        "--stage",
        "dev",
    ]);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    // The function was called once, with the event the filter would send.
    let call = stub.last("pets");
    let event = call.json();
    assert_eq!(event["path"], "/pets/7");
    assert_eq!(event["pathParameters"], json!({"id": "7"}));
    assert_eq!(event["queryStringParameters"], json!({"a": "1 2"}));
    assert_eq!(event["headers"]["X-Trace"], "abc");
    assert_eq!(event["body"], "{\"name\":\"rex\"}");
    assert_eq!(event["requestContext"]["stage"], "dev");
    assert_eq!(event["requestContext"]["path"], "/dev/pets/7");
    assert!(
        stdout.starts_with("Request: /dev/pets/7?a=1%202\nStatus: 201\n"),
        "{stdout}"
    );
    assert!(
        stdout.contains("\nResponse body:\ngot {\"name\":\"rex\"}\n"),
        "{stdout}"
    );
    assert!(stdout.contains("x-pet=7"), "{stdout}");
    let lines = log_lines(&stdout);
    let url = format!("{}/2015-03-31/functions/pets/invocations", stub.url());
    for want in [
        "HTTP Method: POST, Resource Path: /pets/7".to_string(),
        "Method request path: {id=7}".into(),
        "Method request query string: {a=1%202}".into(),
        "Method request headers: {X-Trace=abc}".into(),
        "Method request body before transformations: {\"name\":\"rex\"}".into(),
        format!("Endpoint request URI: {url}"),
        format!("Sending request to {url}"),
        "Method response body after transformations: got {\"name\":\"rex\"}".into(),
        "Successfully completed execution".into(),
        "Method completed with status: 201".into(),
    ] {
        assert!(lines.contains(&want), "missing {want:?} in\n{stdout}");
    }
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("Received response. Status: 200, Integration latency: ")),
        "{stdout}"
    );

    // --json: the fields of API Gateway's TestInvokeMethod answer.
    let (code, stdout, _) = test_cli(&[d, "GET", "/pets/9", "--json"]);
    assert_eq!(code, 0, "{stdout}");
    let out: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(out["status"], 201);
    assert_eq!(out["body"], "got nothing");
    assert_eq!(out["headers"]["x-pet"], "9");
    assert_eq!(out["multiValueHeaders"]["x-pet"], json!(["9"]));
    assert!(out["log"]
        .as_str()
        .unwrap()
        .starts_with("Execution log for request "));
    assert!(out["latency"].is_u64());
    assert_eq!(out["gatewayError"], Value::Null);
}

#[test]
fn method_test_mocks_fails_and_refuses_like_the_gateway() {
    let stub = InvokeStub::start(|_| StubReply::payload("{\"statusCode\": 200}"));
    let dir = temp_dir("method-test-mock");
    let deployment = write_deployment(&dir, &stub.url());
    let d = deployment.to_str().unwrap();

    // A mock answer instead of the function: nothing is called.
    std::fs::write(
        dir.join("answer.json"),
        "{\"statusCode\": 418, \"body\": \"teapot\"}",
    )
    .unwrap();
    let answer = dir.join("answer.json");
    let (code, stdout, _) = test_cli(&[
        d,
        "GET",
        "/pets/1",
        "--mock-response",
        answer.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{stdout}");
    assert!(stdout.contains("Status: 418\n"), "{stdout}");
    assert!(stub.requests().is_empty());

    // Broken function output (an unhandled function error): the gateway's 502, exit 1.
    let (code, stdout, _) = test_cli(&[
        d,
        "GET",
        "/pets/1",
        "--mock-response",
        answer.to_str().unwrap(),
        "--mock-header",
        "X-Amz-Function-Error=Unhandled",
    ]);
    assert_eq!(code, 1, "{stdout}");
    assert!(stdout.contains("Status: 502\n"), "{stdout}");
    assert!(log_lines(&stdout).contains(&"Method completed with status: 502".to_string()));

    // A method that needs an API key, tested without one: 403 before any call.
    let (code, stdout, _) = test_cli(&[d, "GET", "/keyed"]);
    assert_eq!(code, 1, "{stdout}");
    assert!(stdout.contains("Status: 403\n"), "{stdout}");
    assert!(stdout.contains("{\"message\":\"Forbidden\"}"), "{stdout}");
    assert!(stub.requests().is_empty());

    // An endpoint nobody listens on: the gateway's answer for an unreachable integration.
    let dead = write_deployment(&dir, &format!("http://127.0.0.1:{}", free_port()));
    let (code, stdout, _) = test_cli(&[dead.to_str().unwrap(), "GET", "/pets/1"]);
    assert_eq!(code, 1, "{stdout}");
    assert!(stdout.contains("Status: 502\n"), "{stdout}");
    assert!(
        log_lines(&stdout)
            .iter()
            .any(|l| l.starts_with("Execution failed due to a network error: ")),
        "{stdout}"
    );

    // Usage errors name what is wrong.
    let (code, _, stderr) = test_cli(&[d, "GET"]);
    assert_eq!(code, 2);
    assert!(
        stderr.contains("takes the deployment file, a method and a path"),
        "{stderr}"
    );
    let (code, _, stderr) = test_cli(&[d, "GET", "/pets/1", "--stage", "prod"]);
    assert_eq!(code, 1);
    assert!(
        stderr.contains("serves stage `dev`, not `prod`"),
        "{stderr}"
    );
}
