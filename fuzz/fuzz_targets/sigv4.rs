//! SigV4 fuzz target: a request target and header lines (`name: value`), split at the first
//! NUL, with the body after a second NUL. Reading the signature (header or presigned) and
//! verifying it against a declared caller must answer or refuse, never panic.

#![no_main]

use apigw_edge::config::parse_deployment;
use apigw_edge::iam::{Callers, Presented};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut parts = data.splitn(3, |b| *b == 0);
    let path = String::from_utf8_lossy(parts.next().unwrap_or_default()).into_owned();
    let head = String::from_utf8_lossy(parts.next().unwrap_or_default()).into_owned();
    let body = parts.next();
    let mut headers: Vec<(String, String)> = vec![(":authority".into(), "api.example.com".into())];
    for line in head.lines() {
        if let Some((k, v)) = line.split_once(':') {
            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
    }
    let _ = Presented::read(&path, &headers).map(|p| (p.needs_body(), p.signed_values(&headers)));
    let Ok(d) = parse_deployment(serde_json::json!({
        "openapi": "a.json", "stage": "dev", "lambda": {"endpoint": "http://127.0.0.1:9000"},
        "iam": {"callers": [{"accessKeyId": "AKIAIOSFODNN7EXAMPLE", "secretAccessKeyEnv": "S",
            "arn": "arn:aws:iam::123456789012:user/alice"}]}
    })) else {
        return;
    };
    let mut errors = Vec::new();
    let mut callers = Callers::compile(
        &d,
        "arn:aws:execute-api:us-east-1:123456789012:a",
        &mut errors,
    );
    if callers.load(&|_| Some("secret".into())).is_err() {
        return;
    }
    let _ = callers.verify("GET", &path, &headers, body, 1_700_000_000_000);
});
