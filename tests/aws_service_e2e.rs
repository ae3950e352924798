//! AWS service integrations through real Envoy with two workers, against moto's emulated
//! SQS, SNS, S3, Kinesis and DynamoDB: each method's request template builds the service
//! request, the filter signs it for that service, and what the gateway sent is read back
//! from the emulator with boto3.

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

const ACCOUNT: &str = "123456789012";

fn services(moto: &Moto, what: &str) -> Value {
    let out = stdout_ok(
        Command::new(repo().join(".venv/bin/python"))
            .arg(repo().join("tests/support/aws_services.py"))
            .arg(&moto.url)
            .arg(what),
    );
    serde_json::from_slice(&out).unwrap()
}

fn aws(method: &str, uri: &str, extra: Value) -> Value {
    let mut integ = json!({"type": "aws", "httpMethod": method,
        "uri": format!("arn:aws:apigateway:us-east-1:{uri}"),
        "responses": {"default": {"statusCode": "200"}}});
    if let (Some(i), Some(e)) = (integ.as_object_mut(), extra.as_object()) {
        i.extend(e.clone());
    }
    json!({"x-amazon-apigateway-integration": integ})
}

fn export(topic: &str) -> Value {
    json!({
        "swagger": "2.0",
        "paths": {
            "/orders": {"post": aws("POST", &format!("sqs:path/{ACCOUNT}/orders"), json!({
                "requestParameters": {"integration.request.header.Content-Type": "'application/x-www-form-urlencoded'"},
                "requestTemplates": {"application/json": "Action=SendMessage&MessageBody=$util.urlEncode($input.body)"}
            }))},
            "/events": {"post": aws("POST", "sns:action/Publish", json!({
                "requestParameters": {
                    "integration.request.header.Content-Type": "'application/x-www-form-urlencoded'",
                    "integration.request.querystring.TopicArn": format!("'{topic}'"),
                    "integration.request.querystring.Message": "method.request.body"
                }
            }))},
            "/files/{key}": {
                "put": aws("PUT", "s3:path/uploads/{key}", json!({
                    "requestParameters": {
                        "integration.request.path.key": "method.request.path.key",
                        "integration.request.header.Content-Type": "method.request.header.Content-Type"
                    }
                })),
                "get": aws("GET", "s3:path/uploads/{key}", json!({
                    "requestParameters": {"integration.request.path.key": "method.request.path.key"},
                    "responses": {
                        "default": {"statusCode": "200"},
                        "404": {"statusCode": "404", "responseTemplates": {"application/json": "{\"message\": \"no such file\"}"}}
                    }
                }))
            },
            "/clicks": {"post": aws("POST", "kinesis:action/PutRecord", json!({
                "requestParameters": {"integration.request.header.Content-Type": "'application/x-amz-json-1.1'"},
                "requestTemplates": {"application/json":
                    "{\"StreamName\": \"clicks\", \"Data\": \"$util.base64Encode($input.body)\", \"PartitionKey\": \"$context.requestId\"}"},
                "responses": {"default": {"statusCode": "200", "responseTemplates": {"application/json":
                    "{\"shard\": $input.json('$.ShardId')}"}}}
            }))},
            "/items": {"post": aws("POST", "dynamodb:action/PutItem", json!({
                "requestParameters": {"integration.request.header.Content-Type": "'application/x-amz-json-1.0'"},
                "requestTemplates": {"application/json":
                    "{\"TableName\": \"items\", \"Item\": {\"id\": {\"S\": \"$input.path('$.id')\"}, \"name\": {\"S\": \"$input.path('$.name')\"}}}"},
                "responses": {
                    "default": {"statusCode": "200", "responseTemplates": {"application/json": "{\"stored\": true}"}},
                    "4\\d{2}": {"statusCode": "400", "responseTemplates": {"application/json": "{\"refused\": $input.json('$.__type')}"}}
                }
            }))}
        }
    })
}

#[test]
fn requests_reach_sqs_sns_s3_kinesis_and_dynamodb() {
    let moto = Moto::start();
    let made = services(&moto, "setup");
    let topic = made["topic"].as_str().unwrap();
    let deployment = format!(
        "stage: dev\naws:\n  signing: FILTER\n  endpoints:\n{}",
        ["sqs", "sns", "s3", "kinesis", "dynamodb"]
            .iter()
            .map(|s| format!("    {s}: {}\n", moto.url))
            .collect::<String>()
    );
    let dir = temp_dir("aws-services");
    let (config, port, admin) = render(&dir, &deployment, &export(topic));
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
