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
    // Offline: the page must not need the network.
    let (dom, stderr) = chromium_dom(
        &format!("file://{}", index.display()),
        &dir.join("profile"),
        &["--proxy-server=127.0.0.1:9"],
    );
    assert!(
        dom.contains("<title>Pet store reference</title>"),
        "{dom}\n{stderr}"
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

const KEY: &str = "sdk-test-key-0123456789abcdef";

/// The generated JavaScript, TypeScript and Python clients call the running gateway: path
/// and query parameters, the API key option, bodies, parsed JSON answers.
#[test]
fn sdk_clients_call_the_running_gateway() {
    let stub = InvokeStub::start(|r| {
        let e = r.json();
        let seen = json!({"id": e["pathParameters"]["id"], "a": e["queryStringParameters"]["a"],
                          "method": e["httpMethod"], "body": e["body"]});
        StubReply::payload(
            json!({"statusCode": 200, "headers": {"content-type": "application/json"}, "body": seen.to_string()})
                .to_string(),
        )
    });
    let mut read = proxy_op("pets");
    read["operationId"] = json!("readPet");
    read["parameters"] = json!([{"name": "id", "in": "path", "required": true, "type": "string"}]);
    let mut write = proxy_op("pets");
    write["parameters"] = json!([{"name": "id", "in": "path", "required": true, "type": "string"},
        {"in": "body", "name": "Pet", "schema": {"$ref": "#/definitions/Pet"}}]);
    let api = json!({"swagger": "2.0", "info": {"title": "Pets"},
        "paths": {"/pets/{id}": {"get": read, "put": write}},
        "definitions": {"Pet": {"type": "object", "required": ["name"], "properties": {"name": {"type": "string"}}}}});
    let deployment = format!(
        "stage: prod\napiKeys:\n  - id: sdk\n    valueSha256: {}\napiKeyRequired: [\"/pets/{{id}}/GET\"]\nusagePlans:\n  - id: p\n    apiKeys: [sdk]\nlambda:\n  endpoint: {}\n",
        apigw_edge::apikeys::hash_value(KEY),
        stub.url()
    );
    let envoy = Envoy::start("sdk", &deployment, &api, 1);
    let dir = envoy.dir.clone();
    let d = dir.join("deployment.yaml");
    let base = format!("http://127.0.0.1:{}/prod", envoy.port);
    for lang in ["javascript", "typescript", "python"] {
        let out = dir.join(lang);
        let (ok, _, err) = cli_out(&[
            "sdk",
            d.to_str().unwrap(),
            "--lang",
            lang,
            "--out",
            out.to_str().unwrap(),
        ]);
        assert!(ok, "{lang}: {err}");
    }
    let run = |cmd: &mut Command| -> Value {
        let out = cmd.output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("{e}: {stdout}"))
    };
    let want = json!([
        {"status": 200, "body": {"id": "7", "a": "1 2", "method": "GET", "body": null}},
        {"status": 403},
        {"status": 200, "body": {"id": "8", "a": null, "method": "PUT", "body": "{\"name\":\"rex\"}"}}
    ]);
    let script = format!(
        "const ok = createClient({{ baseUrl: {base:?}, apiKey: {KEY:?} }});\n\
         const anon = createClient({{ baseUrl: {base:?} }});\n\
         const a = await ok.readPet({{ path: {{ id: 7 }}, query: {{ a: \"1 2\" }} }});\n\
         const b = await anon.readPet({{ path: {{ id: 7 }} }});\n\
         const c = await ok.putPetsId({{ path: {{ id: \"8\" }}, body: {{ name: \"rex\" }} }});\n\
         console.log(JSON.stringify([{{ status: a.status, body: a.body }}, {{ status: b.status }}, {{ status: c.status, body: c.body }}]));\n"
    );
    // JavaScript, as an ES module under Node.
    let js = dir.join("javascript");
    std::fs::write(
        js.join("use.mjs"),
        format!("import {{ createClient }} from \"./client.js\";\n{script}"),
    )
    .unwrap();
    std::fs::write(js.join("package.json"), "{\"type\": \"module\"}").unwrap();
    assert_eq!(run(Command::new("node").arg(js.join("use.mjs"))), want);

    // TypeScript: compiled strictly, then run; a call without its path parameter does not compile.
    let ts = dir.join("typescript");
    let tsc = repo().join(".work/node/node_modules/.bin/tsc");
    assert!(
        tsc.exists(),
        "TypeScript not found at {}: run ./scripts/setup.sh --sdk",
        tsc.display()
    );
    std::fs::write(
        ts.join("use.ts"),
        format!("import {{ createClient }} from \"./client.js\";\n{script}"),
    )
    .unwrap();
    std::fs::write(ts.join("package.json"), "{\"type\": \"module\"}").unwrap();
    let compile = |files: &[&str]| {
        Command::new(&tsc)
            .current_dir(&ts)
            .args([
                "--strict",
                "--target",
                "es2022",
                "--module",
                "es2022",
                "--moduleResolution",
                "bundler",
                "--lib",
                "es2022,dom",
                "--outDir",
                "out",
            ])
            .args(files)
            .output()
            .unwrap()
    };
    let out = compile(&["client.ts", "use.ts"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    std::fs::write(ts.join("out/package.json"), "{\"type\": \"module\"}").unwrap();
    assert_eq!(run(Command::new("node").arg(ts.join("out/use.js"))), want);
    std::fs::write(ts.join("bad.ts"), "import { createClient } from \"./client.js\";\nawait createClient().readPet({ query: { a: 1 } });\n").unwrap();
    let out = compile(&["client.ts", "bad.ts"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        !out.status.success() && text.contains("bad.ts") && text.contains("path"),
        "{text}"
    );

    // Python, standard library only.
    let py = format!(
        "import json, sys\nsys.path.insert(0, {:?})\nfrom client import Client\n\
         ok = Client({base:?}, api_key={KEY:?})\nanon = Client({base:?})\n\
         a = ok.read_pet(path={{'id': 7}}, query={{'a': '1 2'}})\nb = anon.read_pet(path={{'id': 7}})\n\
         c = ok.put_pets_id(path={{'id': '8'}}, body={{'name': 'rex'}})\n\
         print(json.dumps([{{'status': a.status, 'body': a.body}}, {{'status': b.status}}, {{'status': c.status, 'body': c.body}}], separators=(',', ':')))\n",
        dir.join("python").display().to_string()
    );
    let mut want_py = want.clone();
    // JSON from Python has the same shape.
    want_py[2]["body"]["body"] = json!("{\"name\": \"rex\"}");
    assert_eq!(run(Command::new("python3").args(["-c", &py])), want_py);
}
