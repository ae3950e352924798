//! Configuration errors: Envoy refuses an invalid configuration with a message naming the
//! field, and `apigw-edge validate` prints the same message. Every shipped Envoy YAML passes
//! `envoy --mode validate` and matches a fresh render.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support;

use std::process::Command;

use serde_json::json;
use support::*;

#[test]
fn envoy_refuses_invalid_configuration_naming_the_field() {
    let dir = temp_dir("invalid");
    let api = json!({"swagger": "2.0", "paths": {"/a": {"get": proxy_op("a")}}});
    let (config, _, _) = render(
        &dir,
        "stage: s\nlambda:\n  endpoint: http://127.0.0.1:9\n",
        &api,
    );
    // Break the embedded filter configuration the way a hand-edited config could be broken.
    let text = std::fs::read_to_string(&config).unwrap();
    let broken = text.replace("http://127.0.0.1:9", "ftp://127.0.0.1:9");
    assert_ne!(text, broken);
    std::fs::write(&config, broken).unwrap();
    let (ok, stderr) = envoy_validate(&config);
    assert!(!ok, "Envoy accepted an invalid configuration:\n{stderr}");
    let message =
        "deployment.lambda.endpoint: `ftp://127.0.0.1:9` must start with http:// or https://";
    assert!(
        stderr.contains(&format!("invalid configuration: {message}")),
        "{stderr}"
    );

    // The CLI reports the same message for the same deployment.
    let deployment = dir.join("deployment.yaml");
    let d = std::fs::read_to_string(&deployment)
        .unwrap()
        .replace("http://127.0.0.1:9", "ftp://127.0.0.1:9");
    std::fs::write(&deployment, d).unwrap();
    let out = Command::new(cli())
        .arg("validate")
        .arg(&deployment)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(message), "{stderr}");
}

/// Writes `deployment` into `dir` and runs `apigw-edge validate` on it.
fn validate(dir: &std::path::Path, deployment: &str) -> (Option<i32>, String) {
    std::fs::write(dir.join("deployment.yaml"), deployment).unwrap();
    let out = Command::new(cli())
        .arg("validate")
        .arg(dir.join("deployment.yaml"))
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn validate_lists_every_error_with_its_location() {
    let dir = temp_dir("validate");
    std::fs::write(
        dir.join("openapi.json"),
        json!({"swagger": "2.0", "paths": {
            "/a/{proxy+}/b": {"get": proxy_op("a")},
            "/c": {"get": {"x-amazon-apigateway-integration": {"type": "aws_proxy", "httpMethod": "GET", "uri": lambda_uri("c")}}},
            "/d": {"get": {"x-amazon-apigateway-integration": {"type": "mock"}}}
        }})
        .to_string(),
    )
    .unwrap();
    let (code, stderr) = validate(
        &dir,
        "openapi: openapi.json\nstage: s\nlambda:\n  endpoint: http://127.0.0.1:9\n  timeout: 3\n",
    );
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains("deployment.lambda.timeout: unknown field `timeout`"),
        "{stderr}"
    );
    let (code, stderr) = validate(
        &dir,
        "openapi: openapi.json\nstage: s\nlambda:\n  endpoint: http://127.0.0.1:9\n",
    );
    assert_eq!(code, Some(1), "{stderr}");
    for needle in [
        "openapi.paths./a/{proxy+}/b: Cannot create a child of a resource with a greedy path variable",
        "1 error(s)",
    ] {
        assert!(stderr.contains(needle), "missing {needle:?} in:\n{stderr}");
    }
    // API Gateway imports a non-POST Lambda integration and fails each of its calls: the
    // configuration is accepted with a warning naming the field.
    std::fs::write(
        dir.join("openapi.json"),
        json!({"swagger": "2.0", "paths": {
            "/c": {"get": {"x-amazon-apigateway-integration": {"type": "aws_proxy", "httpMethod": "GET", "uri": lambda_uri("c")}}}
        }})
        .to_string(),
    )
    .unwrap();
    let (code, stderr) = validate(
        &dir,
        "openapi: openapi.json\nstage: s\nlambda:\n  endpoint: http://127.0.0.1:9\n",
    );
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        stderr.contains("warning: ")
            && stderr.contains("openapi.paths./c.get.x-amazon-apigateway-integration.httpMethod: the Lambda integration uses httpMethod GET"),
        "{stderr}"
    );
    let out = Command::new(cli())
        .arg("validate")
        .arg(dir.join("missing.yaml"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read"));
}

fn envoy_validates(config: &std::path::Path) {
    let (ok, stderr) = envoy_validate(config);
    assert!(ok, "{} does not validate:\n{stderr}", config.display());
}

/// Renders `deployment` with the CLI the way the shipped file says it was rendered.
fn fresh_render(deployment: &str, wasm: &str) -> String {
    let args = ["render", deployment, "--wasm", wasm];
    cli_ok(&args.map(std::ffi::OsStr::new))
}

/// Reads a shipped configuration and asserts it is what the CLI renders today.
fn shipped_and_current(shipped: &str, deployment: &str, wasm: &str) -> String {
    let text = std::fs::read_to_string(repo().join(shipped)).unwrap();
    let body = text
        .lines()
        .skip_while(|l| l.starts_with('#'))
        .collect::<Vec<_>>()
        .join("\n");
    assert_eq!(
        body.trim(),
        fresh_render(deployment, wasm).trim(),
        "{shipped} is stale: run ./scripts/render-shipped.sh"
    );
    text
}

#[test]
fn shipped_envoy_configs_validate_and_match_a_fresh_render() {
    let wasm = wasm_path();
    // envoy/hello.yaml: the example, run from the repository root.
    let shipped = shipped_and_current(
        "envoy/hello.yaml",
        "examples/hello/deployment.yaml",
        "target/wasm32-wasip1/release/apigw_edge.wasm",
    );
    let dir = temp_dir("shipped");
    let local = dir.join("hello.yaml");
    std::fs::write(
        &local,
        shipped.replace(
            "target/wasm32-wasip1/release/apigw_edge.wasm",
            &wasm.to_string_lossy(),
        ),
    )
    .unwrap();
    envoy_validates(&local);

    // examples/docker: the configuration docker-compose mounts into the Envoy container.
    let shipped = shipped_and_current(
        "examples/docker/envoy.yaml",
        "examples/docker/deployment.yaml",
        "/etc/apigw-edge/apigw_edge.wasm",
    );
    let compose =
        std::fs::read_to_string(repo().join("examples/docker/docker-compose.yml")).unwrap();
    let mut mounts = 0;
    for line in compose.lines() {
        let Some(spec) = line.trim().strip_prefix("- ") else {
            continue;
        };
        let Some((host, container)) = spec.trim_matches('"').split_once(':') else {
            continue;
        };
        if !(host.starts_with("./") || host.starts_with("../")) {
            continue;
        }
        mounts += 1;
        let host_path = repo().join("examples/docker").join(host);
        assert!(
            host_path.exists(),
            "docker-compose mounts {host}, which does not exist"
        );
        if container.starts_with("/etc/apigw-edge/envoy.yaml") {
            assert!(host_path.ends_with("envoy.yaml"));
        }
    }
    assert!(
        mounts >= 3,
        "expected the Envoy config, the filter and the functions to be mounted"
    );
    let local = dir.join("docker.yaml");
    // Inside compose the functions host is `functions`; here it must resolve, so use loopback.
    let text = shipped
        .replace("/etc/apigw-edge/apigw_edge.wasm", &wasm.to_string_lossy())
        .replace("address: functions", "address: 127.0.0.1");
    std::fs::write(&local, text).unwrap();
    envoy_validates(&local);
}

#[test]
fn template_errors_name_field_line_and_column_in_envoy_and_cli() {
    let dir = temp_dir("invalid-template");
    let op = json!({"x-amazon-apigateway-integration": {
        "type": "aws", "httpMethod": "POST", "uri": lambda_uri("t"),
        "requestTemplates": {"application/json": "{\n  #set($ok = 1)\"a\": $ok\n}"},
        "responses": {"default": {"statusCode": "200"}}}});
    let api = json!({"swagger": "2.0", "paths": {"/t": {"post": op}}});
    let (config, _, _) = render(
        &dir,
        "stage: s\nlambda:\n  endpoint: http://127.0.0.1:9\n",
        &api,
    );
    let text = std::fs::read_to_string(&config).unwrap();
    let broken = text.replace("#set($ok = 1)", "#set($ok = )");
    assert_ne!(text, broken, "the template is embedded as written");
    std::fs::write(&config, broken).unwrap();
    let (ok, stderr) = envoy_validate(&config);
    assert!(!ok, "Envoy accepted a broken template");
    let message = "openapi.paths./t.post.x-amazon-apigateway-integration.requestTemplates.application/json: line 2, column 14: expected a value";
    assert!(stderr.contains(message), "{stderr}");

    let broken_api = api.to_string().replace("#set($ok = 1)", "#set($ok = )");
    std::fs::write(dir.join("openapi.json"), broken_api).unwrap();
    let (code, stderr) = validate(
        &dir,
        "openapi: openapi.json\nstage: s\nlambda:\n  endpoint: http://127.0.0.1:9\n",
    );
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains(message), "{stderr}");
}

#[test]
fn template_command_renders_a_sample() {
    let dir = temp_dir("template-cli");
    let template = dir.join("t.vtl");
    std::fs::write(
        &template,
        "#set($context.responseOverride.status = 201){\"id\": \"$input.params('id')\", \"name\": \"$input.path('$.name')\", \"stage\": \"$context.stage\", \"v\": \"$stageVariables.v\"}",
    )
    .unwrap();
    let input = dir.join("in.json");
    std::fs::write(&input, r#"{"name": "Ann"}"#).unwrap();
    let out = Command::new(cli())
        .arg("template")
        .arg(&template)
        .arg("--input")
        .arg(&input)
        .args([
            "--path",
            "id=7",
            "--stage-variable",
            "v=x",
            "--context",
            "stage=beta",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        r#"{"id": "7", "name": "Ann", "stage": "beta", "v": "x"}"#
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("responseOverride.status: 201"));

    std::fs::write(&template, "ok\n#foreach($x in $y)").unwrap();
    let out = Command::new(cli())
        .arg("template")
        .arg(&template)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("line 2, column 1: #foreach is missing its #end"),
        "{stderr}"
    );
}

/// A deployment for AWS (regional endpoint plus a function URL, Envoy's default credential
/// chain, a private CA, HTTP/2) renders into a configuration Envoy 1.40 accepts; Envoy does not
/// reach for credentials when it only validates.
#[cfg(not(target_arch = "wasm32"))]
#[test]
fn aws_deployment_renders_a_configuration_envoy_accepts() {
    let dir = temp_dir("aws-render");
    let api = json!({"swagger": "2.0", "paths": {
        "/a": {"get": proxy_op("a")},
        "/u": {"get": proxy_op("u")}
    }});
    let ca = TestCa::new(&dir);
    let (config, _, _) = render(
        &dir,
        &format!(
            "stage: prod\nlambda:\n  endpoint: https://lambda.eu-west-1.amazonaws.com\n  http2: true\n  tls: {{caFile: {}}}\n  functions:\n    u: {{url: \"https://abcdefghij.lambda-url.eu-west-1.on.aws\", authType: AWS_IAM}}\n",
            ca.ca_file.display()
        ),
        &api,
    );
    let text = std::fs::read_to_string(&config).unwrap();
    assert_eq!(
        text.matches("envoy.filters.http.aws_request_signing")
            .count(),
        2
    );
    assert!(text.contains("lambda-url.eu-west-1.on.aws"));
    envoy_validates(&config);
}
