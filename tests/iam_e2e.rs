//! IAM-authorised methods through real Envoy with two workers: requests signed by the
//! official Rust SigV4 signer and by botocore's (header and presigned), identity and
//! resource policies, and each refusal API Gateway documents.

#![cfg(not(target_arch = "wasm32"))]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support;

use std::process::Command;
use std::time::{Duration, SystemTime};

use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
use aws_sigv4::sign::v4;
use serde_json::{json, Value};
use support::*;

const ALICE: (&str, &str) = (
    "AKIAALICE00000000001",
    "alice/Secret+Key0123456789abcdefghijklmn",
);
const BOB: (&str, &str) = (
    "AKIABOB0000000000002",
    "bob/Secret+Key0123456789abcdefghijklmnop",
);
const ALICE_ARN: &str = "arn:aws:iam::123456789012:user/alice";
const BOB_ARN: &str = "arn:aws:iam::123456789012:user/bob";
const ARN: &str = "arn:aws:execute-api:us-east-1:123456789012:iamapi/dev";

fn api() -> Value {
    let signed = |m: &str| {
        let mut op = proxy_op("backend");
        op["security"] = json!([{"sigv4": []}]);
        json!({ m: op })
    };
    let mut pets = signed("get");
    pets["post"] = signed("post")["post"].clone();
    json!({
        "swagger": "2.0",
        "securityDefinitions": {"sigv4": {"type": "apiKey", "name": "Authorization", "in": "header",
            "x-amazon-apigateway-authtype": "awsSigv4"}},
        "x-amazon-apigateway-policy": {"Statement": [
            {"Effect": "Allow", "Principal": {"AWS": BOB_ARN}, "Action": "execute-api:Invoke",
             "Resource": "execute-api:/dev/POST/pets"},
            {"Effect": "Allow", "Principal": "*", "Action": "execute-api:Invoke",
             "Resource": "execute-api:/dev/GET/open"}]},
        "paths": {"/pets": pets, "/open": {"get": proxy_op("backend")}}
    })
}

fn start(name: &str) -> (Envoy, InvokeStub) {
    let stub = InvokeStub::start(|_| {
        StubReply::payload(json!({"statusCode": 200, "body": "backend"}).to_string())
    });
    let deployment = format!(
        "stage: dev
api:
  id: iamapi
lambda:
  endpoint: {}
iam:
  callers:
    - accessKeyId: {}
      secretAccessKeyEnv: ALICE_SECRET
      arn: {ALICE_ARN}
      policy:
        Statement:
          - Effect: Allow
            Action: execute-api:Invoke
            Resource: execute-api:/dev/GET/*
    - accessKeyId: {}
      secretAccessKeyEnv: BOB_SECRET
      arn: {BOB_ARN}
",
        stub.url(),
        ALICE.0,
        BOB.0
    );
    let dir = temp_dir(name);
    let (config, port, admin) = render(&dir, &deployment, &api());
    let rendered = std::fs::read_to_string(&config).unwrap();
    assert!(rendered.contains("ALICE_SECRET") && !rendered.contains(ALICE.1));
    let envoy = Envoy::start_config_env(
        dir,
        config,
        (port, admin),
        2,
        &[("ALICE_SECRET", ALICE.1), ("BOB_SECRET", BOB.1)],
    );
    (envoy, stub)
}

/// The headers the official signer adds to a request, signed at `at`.
fn aws_sigv4(
    (key, secret): (&str, &str),
    method: &str,
    url: &str,
    body: &[u8],
    at: SystemTime,
) -> Vec<(String, String)> {
    let identity = aws_credential_types::Credentials::new(key, secret, None, None, "e2e").into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region("us-east-1")
        .name("execute-api")
        .time(at)
        .settings(SigningSettings::default())
        .build()
        .unwrap()
        .into();
    let signable =
        SignableRequest::new(method, url, std::iter::empty(), SignableBody::Bytes(body)).unwrap();
    let (instructions, _) = sign(signable, &params).unwrap().into_parts();
    instructions
        .headers()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn send(
    envoy: &Envoy,
    method: &str,
    path: &str,
    headers: &[(String, String)],
    body: &[u8],
) -> Response {
    let h: Vec<(&str, &str)> = headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    envoy.request(method, path, &h, body)
}

#[test]
fn signed_callers_identity_and_policies() {
    let (envoy, stub) = start("iam-signed");
    let url = |path: &str| format!("http://127.0.0.1:{}{path}", envoy.port);
    let now = SystemTime::now();

    // Alice's identity policy allows GET.
    let h = aws_sigv4(ALICE, "GET", &url("/dev/pets?kind=cat"), b"", now);
    let r = send(&envoy, "GET", "/dev/pets?kind=cat", &h, b"");
    assert_eq!(r.status, 200, "{}\n{}", r.text(), envoy.log());
    let identity = &stub.last("backend").json()["requestContext"]["identity"];
    assert_eq!(identity["userArn"], ALICE_ARN);
    assert_eq!(identity["accessKey"], ALICE.0);
    assert_eq!(identity["accountId"], "123456789012");
    assert_eq!(identity["user"], "alice");
    assert_eq!(identity["caller"], "alice");

    // ... but not POST; Bob's POST is allowed by the resource policy, his GET by nothing.
    let body = br#"{"name":"Rex"}"#;
    let h = aws_sigv4(ALICE, "POST", &url("/dev/pets"), body, now);
    let r = send(&envoy, "POST", "/dev/pets", &h, body);
    assert_eq!(r.status, 403);
    assert_eq!(
        r.text(),
        format!("{{\"Message\":\"User: {ALICE_ARN} is not authorized to perform: execute-api:Invoke on resource: {ARN}/POST/pets because no identity-based policy allows the execute-api:Invoke action\"}}")
    );
    assert_eq!(r.header("x-amzn-ErrorType"), Some("AccessDeniedException"));
    let h = aws_sigv4(BOB, "POST", &url("/dev/pets"), body, now);
    assert_eq!(send(&envoy, "POST", "/dev/pets", &h, body).status, 200);
    let h = aws_sigv4(BOB, "GET", &url("/dev/pets"), b"", now);
    assert_eq!(send(&envoy, "GET", "/dev/pets", &h, b"").status, 403);

    // Refusals, as API Gateway words them.
    let signed_a = aws_sigv4(ALICE, "POST", &url("/dev/pets"), b"{}", now);
    let stranger = aws_sigv4(
        ("AKIASTRANGER00000003", "whatever"),
        "GET",
        &url("/dev/pets"),
        b"",
        now,
    );
    let wrong_secret = aws_sigv4(
        (ALICE.0, "not-the-secret"),
        "GET",
        &url("/dev/pets"),
        b"",
        now,
    );
    let old = aws_sigv4(
        ALICE,
        "GET",
        &url("/dev/pets"),
        b"",
        now - Duration::from_secs(600),
    );
    // (what, method, headers, body, x-amzn-ErrorType, text of the body)
    type Case<'a> = (
        &'a str,
        &'a str,
        Vec<(String, String)>,
        &'a [u8],
        &'a str,
        &'a str,
    );
    let cases: Vec<Case> = vec![
        ("unsigned", "GET", vec![], b"", "MissingAuthenticationTokenException", "{\"message\":\"Missing Authentication Token\"}"),
        ("unknown key", "GET", stranger, b"", "UnrecognizedClientException", "{\"message\":\"The security token included in the request is invalid.\"}"),
        ("wrong secret", "GET", wrong_secret, b"", "InvalidSignatureException", "{\"message\":\"The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details.\"}"),
        ("tampered body", "POST", signed_a, b"{\"x\":1}", "InvalidSignatureException", "The request signature we calculated"),
        ("ten minutes old", "GET", old, b"", "InvalidSignatureException", "{\"message\":\"Signature expired: "),
    ];
    for (what, method, headers, body, error_type, text) in cases {
        let r = send(&envoy, method, "/dev/pets", &headers, body);
        assert_eq!(r.status, 403, "{what}: {}", r.text());
        assert_eq!(r.header("x-amzn-ErrorType"), Some(error_type), "{what}");
        assert!(r.text().contains(text), "{what}: {}", r.text());
    }
    // A tampered header: the signed date changed after signing.
    let mut h = aws_sigv4(ALICE, "GET", &url("/dev/pets"), b"", now);
    for (k, v) in h.iter_mut() {
        if k == "x-amz-date" {
            v.replace_range(13..15, if &v[13..15] == "00" { "01" } else { "00" });
        }
    }
    assert_eq!(send(&envoy, "GET", "/dev/pets", &h, b"").status, 403);
    // Methods without IAM are not affected by signatures.
    assert_eq!(envoy.get("/dev/open").status, 200);
}

/// Signs with botocore's signer (Python), as the AWS SDKs and CLI do.
fn botocore(method: &str, url: &str, body: &str, presign: bool) -> Value {
    let mut cmd = Command::new(repo().join(".venv/bin/python"));
    cmd.arg(repo().join("tests/support/sigv4_sign.py"))
        .args([method, url, body, ALICE.0, ALICE.1]);
    if presign {
        cmd.arg("presign");
    }
    serde_json::from_slice(&stdout_ok(&mut cmd)).unwrap()
}

#[test]
fn botocore_signed_and_presigned_requests() {
    let (envoy, stub) = start("iam-botocore");
    let base = format!("http://127.0.0.1:{}", envoy.port);
    let signed = botocore(
        "GET",
        &format!("{base}/dev/pets?kind=dog&a=b%20c"),
        "",
        false,
    );
    let headers: Vec<(String, String)> = signed["headers"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
        .collect();
    let r = send(&envoy, "GET", "/dev/pets?kind=dog&a=b%20c", &headers, b"");
    assert_eq!(r.status, 200, "{}\n{}", r.text(), envoy.log());
    assert_eq!(
        stub.last("backend").json()["requestContext"]["identity"]["userArn"],
        ALICE_ARN
    );

    let presigned = botocore("GET", &format!("{base}/dev/pets?kind=dog"), "", true);
    let url = presigned["url"].as_str().unwrap();
    let path = url.strip_prefix(&base).unwrap();
    assert!(path.contains("X-Amz-Signature="), "{path}");
    let r = envoy.get(path);
    assert_eq!(r.status, 200, "{}", r.text());
    let r = envoy.get(&path.replace("kind=dog", "kind=cat"));
    assert_eq!(r.status, 403, "a changed presigned URL is refused");
}
