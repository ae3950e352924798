//! `apigw-edge export` and `apigw-edge docs`: the stage's API as OpenAPI 3.0 and Swagger
//! 2.0 documents pointing at the gateway, and an HTML reference read back in headless
//! Chromium from disk.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{json, Value};
use support::*;

fn write_api(dir: &Path) -> PathBuf {
    let mut keyed = proxy_op("pets");
    keyed["parameters"] = json!([{"name": "id", "in": "path", "required": true, "type": "string"}]);
    keyed["responses"] =
        json!({"200": {"description": "ok", "schema": {"$ref": "#/definitions/Pet"}}});
    let mut guarded = proxy_op("pets");
    guarded["security"] = json!([{"tok": []}]);
    let api = json!({
        "swagger": "2.0",
        "info": {"title": "Pet store", "version": "1"},
        "securityDefinitions": {"tok": {"type": "apiKey", "name": "Authorization", "in": "header",
            "x-amazon-apigateway-authtype": "custom",
            "x-amazon-apigateway-authorizer": {"type": "token", "authorizerUri": lambda_uri("auth")}}},
        "paths": {"/pets/{id}": {"get": keyed}, "/me": {"get": guarded}},
        "definitions": {"Pet": {"type": "object", "properties": {"name": {"type": "string"}}}},
        "x-amazon-apigateway-documentation": {"version": "1", "documentationParts": [
            {"location": {"type": "METHOD", "path": "/pets/{id}", "method": "GET"}, "properties": {"summary": "Read one pet"}},
            {"location": {"type": "MODEL", "name": "Pet"}, "properties": {"description": "A pet in the store"}}]}
    });
    std::fs::write(dir.join("api.json"), api.to_string()).unwrap();
    let deployment = dir.join("deployment.yaml");
    std::fs::write(
        &deployment,
        "openapi: api.json\nstage: prod\nlisten: 127.0.0.1:8181\napiKeyRequired: [\"/pets/{id}/GET\"]\nlambda:\n  endpoint: http://127.0.0.1:9000\n",
    )
    .unwrap();
    deployment
}

fn cli_out(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(cli()).args(args).output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn export_writes_clean_documents_pointing_at_the_gateway() {
    let dir = temp_dir("export");
    let d = write_api(&dir);
    let d = d.to_str().unwrap();
    let (ok, out, err) = cli_out(&["export", d]);
    assert!(ok, "{err}");
    let oas: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(oas["openapi"], "3.0.1");
    assert_eq!(
        oas["servers"],
        json!([{"url": "http://127.0.0.1:8181/{basePath}", "variables": {"basePath": {"default": "prod"}}}])
    );
    assert_eq!(oas["paths"]["/pets/{id}"]["get"]["summary"], "Read one pet");
    assert_eq!(
        oas["components"]["schemas"]["Pet"]["description"],
        "A pet in the store"
    );
    assert!(!out.contains("x-amazon-apigateway"), "{out}");

    let file = dir.join("swagger.json");
    let (ok, _, err) = cli_out(&[
        "export",
        d,
        "--type",
        "swagger",
        "--extensions",
        "apigateway",
        "--stage",
        "prod",
        "--out",
        file.to_str().unwrap(),
    ]);
    assert!(ok, "{err}");
    let sw: Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    assert_eq!(sw["swagger"], "2.0");
    assert_eq!(
        (&sw["host"], &sw["basePath"]),
        (&json!("127.0.0.1:8181"), &json!("/prod"))
    );
    assert_eq!(
        sw["paths"]["/pets/{id}"]["get"]["x-amazon-apigateway-integration"]["type"],
        "aws_proxy"
    );
    assert!(sw.get("x-amazon-apigateway-documentation").is_none());

    let (ok, _, err) = cli_out(&["export", d, "--type", "raml"]);
    assert!(
        !ok && err.contains("--type takes oas30 or swagger"),
        "{err}"
    );
    let (ok, _, err) = cli_out(&["export", d, "--stage", "dev"]);
    assert!(
        !ok && err.contains("serves stage `prod`, not `dev`"),
        "{err}"
    );
}

#[test]
fn docs_open_from_disk_in_a_browser() {
    let dir = temp_dir("docs");
    let d = write_api(&dir);
    let site = dir.join("site");
    let (ok, _, err) = cli_out(&["docs", d.to_str().unwrap(), "--out", site.to_str().unwrap()]);
    assert!(ok, "{err}");
    let index = site.join("index.html");
    let chromium = std::env::var_os("APIGW_EDGE_CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"));
    assert!(
        chromium.exists(),
        "Chromium not found at {}: run ./scripts/setup.sh",
        chromium.display()
    );
    // Offline: the page must not need the network.
    let out = Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-extensions",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--proxy-server=127.0.0.1:9",
            "--dump-dom",
        ])
        .arg(format!("--user-data-dir={}", dir.join("profile").display()))
        .arg(format!("file://{}", index.display()))
        .output()
        .unwrap();
    let dom = String::from_utf8_lossy(&out.stdout);
    assert!(
        dom.contains("<title>Pet store reference</title>"),
        "{dom}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(dom.matches("<section class=\"method\"").count(), 2, "{dom}");
    for want in [
        "<code id=\"base-url\">http://127.0.0.1:8181/prod</code>",
        "<span class=\"verb\">GET</span> <code>/pets/{id}</code>",
        "<p class=\"summary\">Read one pet</p>",
        "Authorization: API key in the <code>x-api-key</code> header",
        "Authorization: Lambda authorizer <code>tok</code> (identity from <code>method.request.header.Authorization</code>)",
        "<td><a href=\"#model-pet\">Pet</a></td>",
        "<section class=\"model\" id=\"model-pet\"><h3>Pet</h3><p>A pet in the store</p>",
        "-H 'x-api-key: YOUR_API_KEY'",
    ] {
        assert!(dom.contains(want), "missing {want} in\n{dom}");
    }
}
