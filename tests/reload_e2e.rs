//! `apigw-edge run` picks up a changed export or deployment file while it serves: no failed
//! requests across the change, the new route served afterwards, a broken change refused
//! while the running configuration keeps serving, and quota counters kept.
#![cfg(unix)]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support;

use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::*;

const KEY: &str = "reload-key-0123456789abcdef";

fn mock(body: &str) -> Value {
    json!({"responses": {"200": {"description": "ok"}},
        "x-amazon-apigateway-integration": {"type": "mock",
            "requestTemplates": {"application/json": "{\"statusCode\": 200}"},
            "responses": {"default": {"statusCode": "200", "responseTemplates": {"application/json": body}}}}})
}

/// Polls `f` until it holds or `secs` pass.
fn eventually(secs: u64, what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn run_reloads_changes_without_dropping_requests() {
    let dir = temp_dir("reload");
    let (port, admin, control) = (free_port(), free_port(), free_port());
    let api = |extra: bool| {
        let mut paths = json!({"/a": {"get": mock("{\"route\": \"a\"}")},
                               "/keyed": {"get": mock("{\"route\": \"keyed\"}")}});
        if extra {
            paths["/b"] = json!({"get": mock("{\"route\": \"b\"}")});
        }
        json!({"swagger": "2.0", "paths": paths})
    };
    std::fs::write(dir.join("api.json"), api(false).to_string()).unwrap();
    let deployment = format!(
        "openapi: api.json\nstage: prod\nlisten: 127.0.0.1:{port}\nadmin: 127.0.0.1:{admin}\ncontrol: 127.0.0.1:{control}\n\
         apiKeys:\n  - id: gold\n    valueSha256: {}\napiKeyRequired: [\"/keyed/GET\"]\n\
         usagePlans:\n  - id: plan\n    apiKeys: [gold]\n    quota: {{limit: 1000, period: DAY}}\n\
         lambda:\n  endpoint: http://127.0.0.1:9\nenvoy:\n  concurrency: 2\n",
        apigw_edge::apikeys::hash_value(KEY)
    );
    let dep = dir.join("deployment.yaml");
    std::fs::write(&dep, &deployment).unwrap();
    let log = std::fs::File::create(dir.join("run.log")).unwrap();
    let mut child = Command::new(cli())
        .arg("run")
        .arg(&dep)
        .arg("--wasm")
        .arg(wasm_path())
        .arg("--config-out")
        .arg(dir.join("run/envoy.yaml"))
        .env("APIGW_EDGE_ENVOY", envoy_bin())
        .stdout(Stdio::null())
        .stderr(log)
        .process_group(0)
        .spawn()
        .unwrap();
    let run_log = || std::fs::read_to_string(dir.join("run.log")).unwrap_or_default();
    eventually(60, "the gateway to serve", || {
        try_request(port, "GET", "/prod/a", &[], b"", Duration::from_secs(5))
            .is_ok_and(|r| r.status == 200)
    });
    for _ in 0..3 {
        let r = request(port, "GET", "/prod/keyed", &[("x-api-key", KEY)], b"");
        assert_eq!(r.status, 200, "{}", r.text());
    }

    // Clients keep calling while the export changes.
    let stop = Arc::new(AtomicBool::new(false));
    let (sent, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let load: Vec<_> = (0..2)
        .map(|_| {
            let (stop, sent, failed) = (stop.clone(), sent.clone(), failed.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let ok = try_request(port, "GET", "/prod/a", &[], b"", Duration::from_secs(5))
                        .is_ok_and(|r| r.status == 200);
                    sent.fetch_add(1, Ordering::Relaxed);
                    if !ok {
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(get(port, "/prod/b").status, 403, "not deployed yet");
    std::fs::write(dir.join("api.json"), api(true).to_string()).unwrap();
    eventually(20, "the new route", || get(port, "/prod/b").status == 200);
    assert_eq!(get(port, "/prod/b").text(), "{\"route\": \"b\"}");

    // A broken change is refused; the running configuration keeps serving.
    std::fs::write(&dep, format!("{deployment}bogusField: 1\n")).unwrap();
    eventually(20, "the refusal", || run_log().contains("change refused"));
    assert!(run_log().contains("deployment.bogusField"), "{}", run_log());
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(get(port, "/prod/b").status, 200);
    std::fs::write(&dep, &deployment).unwrap();
    eventually(20, "the third configuration", || {
        run_log().contains("configuration 3 handed to Envoy")
    });
    std::thread::sleep(Duration::from_millis(1500));

    stop.store(true, Ordering::Relaxed);
    for t in load {
        t.join().unwrap();
    }
    let (sent, failed) = (sent.load(Ordering::Relaxed), failed.load(Ordering::Relaxed));
    assert!(sent > 50, "only {sent} requests sent");
    assert_eq!(
        failed, 0,
        "{failed} of {sent} requests failed across the reloads"
    );

    // The key's quota counter survived both reloads (it lives in shared data).
    let out = Command::new(cli())
        .arg("usage")
        .arg(&dep)
        .arg("gold")
        .output()
        .unwrap();
    let usage: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
    assert_eq!(usage["used"], 3, "{usage}");

    let _ = Command::new("kill")
        .arg("--")
        .arg(format!("-{}", child.id()))
        .status();
    let _ = child.wait();
}
