//! AWS service integrations through real Envoy with two workers, against moto's emulated
//! SQS, SNS, S3, Kinesis and DynamoDB: the shipped example's methods build each service
//! request from templates and mappings, the filter signs it for that service, and what the
//! gateway sent is read back from the emulator with boto3.

#![cfg(not(target_arch = "wasm32"))]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support;

use std::process::Command;

use serde_json::{json, Value};
use support::*;

fn services(moto: &Moto, what: &str) -> Value {
    let out = stdout_ok(
        Command::new(repo().join(".venv/bin/python"))
            .arg(repo().join("tests/support/aws_services.py"))
            .arg(&moto.url)
            .arg(what),
    );
    serde_json::from_slice(&out).unwrap()
}

/// The shipped example (`examples/aws-services`), its endpoints moved to `moto`.
fn example(moto: &Moto) -> (String, Value) {
    let dir = repo().join("examples/aws-services");
    let doc = serde_json::from_slice(&std::fs::read(dir.join("openapi.json")).unwrap()).unwrap();
    let deployment = std::fs::read_to_string(dir.join("deployment.yaml"))
        .unwrap()
        .lines()
        .filter(|l| {
            !["openapi:", "listen:", "admin:"]
                .iter()
                .any(|k| l.starts_with(k))
        })
        .map(|l| l.replace("http://127.0.0.1:5000", &moto.url) + "\n")
        .collect();
    (deployment, doc)
}

#[test]
fn requests_reach_sqs_sns_s3_kinesis_and_dynamodb() {
    let moto = Moto::start();
    let made = services(&moto, "setup");
    assert_eq!(made["topic"], "arn:aws:sns:us-east-1:123456789012:events");
    let (deployment, doc) = example(&moto);
    let dir = temp_dir("aws-services");
    let (config, port, admin) = render(&dir, &deployment, &doc);
    let env = [
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
    ];
    let envoy = Envoy::start_config_env(dir, config, (port, admin), 2, &env);
    let json_ct = ("content-type", "application/json");

    let r = envoy.request(
        "POST",
        "/dev/orders",
        &[json_ct],
        br#"{"order": 1, "note": "a&b"}"#,
    );
    assert_eq!(r.status, 200, "{}\n{}", r.text(), envoy.log());
    assert!(r.text().contains("MessageId"), "{}", r.text());

    let r = envoy.request("POST", "/dev/events", &[json_ct], br#"{"event": "signup"}"#);
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.text().contains("MessageId"), "{}", r.text());

    let r = envoy.request(
        "PUT",
        "/dev/files/notes.txt",
        &[("content-type", "text/plain")],
        b"hello s3",
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let r = envoy.get("/dev/files/notes.txt");
    assert_eq!((r.status, r.text().as_str()), (200, "hello s3"));
    let r = envoy.get("/dev/files/missing.txt");
    assert_eq!(
        (r.status, r.json()),
        (404, json!({"message": "no such file"}))
    );

    let r = envoy.request("POST", "/dev/clicks", &[json_ct], br#"{"x": 10, "y": 20}"#);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["shard"], "shardId-000000000000");

    let r = envoy.request(
        "POST",
        "/dev/items",
        &[json_ct],
        br#"{"id": "i-1", "name": "lamp"}"#,
    );
    assert_eq!(
        (r.status, r.json()),
        (200, json!({"stored": true})),
        "{}",
        r.text()
    );

    let seen = services(&moto, "read");
    assert_eq!(seen["orders"], json!([r#"{"order": 1, "note": "a&b"}"#]));
    assert_eq!(seen["inbox"], json!([r#"{"event": "signup"}"#]));
    assert_eq!(seen["objects"], json!({"notes.txt": "hello s3"}));
    assert_eq!(seen["records"], json!([r#"{"x": 10, "y": 20}"#]));
    assert_eq!(
        seen["items"],
        json!([{"id": {"S": "i-1"}, "name": {"S": "lamp"}}])
    );
}
