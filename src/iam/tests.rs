//! Signature checks: good header and presigned signatures, and each way one is refused.

use serde_json::json;

use super::*;
use crate::config::parse_deployment;
use crate::http::headers_of;
use crate::sigv4::sha256_hex;

const NOW: u64 = 1_700_000_000_000; // 20231114T221320Z
const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
const KEY: &str = "AKIAIOSFODNN7EXAMPLE";
const HOST: &str = "abc123.execute-api.us-east-1.amazonaws.com";

fn callers(token: bool) -> Callers {
    let mut caller = json!({"accessKeyId": KEY, "secretAccessKeyEnv": "ALICE_SECRET",
        "arn": "arn:aws:iam::123456789012:user/alice"});
    if token {
        caller["sessionTokenEnv"] = json!("ALICE_TOKEN");
    }
    let d = parse_deployment(json!({"openapi": "a.json", "stage": "dev",
        "lambda": {"endpoint": "http://127.0.0.1:9000"}, "iam": {"callers": [caller]}}))
    .unwrap();
    let mut errors = Vec::new();
    let mut c = Callers::compile(
        &d,
        "arn:aws:execute-api:us-east-1:123456789012:abc123",
        &mut errors,
    );
    assert!(errors.is_empty(), "{errors:?}");
    c.load(&|name| match name {
        "ALICE_SECRET" => Some(SECRET.into()),
        "ALICE_TOKEN" => Some("session-token".into()),
        _ => None,
    })
    .unwrap();
    c
}

fn signer(secret: &str, region: &str, service: &str) -> Signer {
    Signer::new(
        region,
        service,
        Credentials {
            access_key_id: KEY.into(),
            secret_access_key: secret.into(),
            session_token: None,
        },
    )
}

/// A request signed in its `Authorization` header at `at_ms`.
fn signed(
    s: &Signer,
    method: &str,
    path: &str,
    body: &[u8],
    at_ms: u64,
    extra: &[(&str, &str)],
) -> Vec<Header> {
    let (stamp, _) = amz_date(at_ms);
    let mut headers = headers_of(&[(":authority", HOST), ("x-amz-date", &stamp)]);
    headers.extend(headers_of(extra));
    let sig = s.signature(method, path, &headers, &sha256_hex(body), &stamp);
    headers.push(("authorization".into(), sig.authorization));
    headers
}

#[test]
fn header_signatures_table() {
    let c = callers(false);
    let good = signer(SECRET, "us-east-1", "execute-api");
    let path = "/dev/pets?b=2&a=1";
    let ok = signed(&good, "POST", path, b"{\"a\":1}", NOW, &[]);
    assert_eq!(c.verify("POST", path, &ok, Some(b"{\"a\":1}"), NOW), Ok(0));
    type Case<'a> = (
        &'a str,
        Vec<Header>,
        &'a str,
        &'a [u8],
        u64,
        fn(&Failure) -> bool,
    );
    let cases: Vec<Case> = vec![
        ("tampered body", ok.clone(), path, b"{\"a\":2}", NOW, |f| *f == Failure::BadSignature),
        ("tampered path", ok.clone(), "/dev/pets?b=3&a=1", b"{\"a\":1}", NOW, |f| *f == Failure::BadSignature),
        ("tampered header", {
            let mut h = signed(&good, "POST", path, b"{\"a\":1}", NOW, &[("x-amz-meta", "1")]);
            if let Some(v) = h.iter_mut().find(|(k, _)| k == "x-amz-meta") { v.1 = "2".into(); }
            h
        }, path, b"{\"a\":1}", NOW, |f| *f == Failure::BadSignature),
        ("wrong secret", signed(&signer("other", "us-east-1", "execute-api"), "POST", path, b"{\"a\":1}", NOW, &[]), path, b"{\"a\":1}", NOW, |f| *f == Failure::BadSignature),
        ("wrong region", signed(&signer(SECRET, "eu-west-1", "execute-api"), "POST", path, b"{\"a\":1}", NOW, &[]), path, b"{\"a\":1}", NOW, |f| matches!(f, Failure::WrongScope(m) if m.contains("region"))),
        ("wrong service", signed(&signer(SECRET, "us-east-1", "lambda"), "POST", path, b"{\"a\":1}", NOW, &[]), path, b"{\"a\":1}", NOW, |f| matches!(f, Failure::WrongScope(m) if m.contains("execute-api"))),
        ("six minutes old", ok.clone(), path, b"{\"a\":1}", NOW + 360_000, |f| matches!(f, Failure::Expired(m) if m == "Signature expired: 20231114T221320Z is now earlier than 20231114T221420Z (20231114T221920Z - 5 min.)")),
        ("six minutes ahead", ok.clone(), path, b"{\"a\":1}", NOW - 360_000, |f| matches!(f, Failure::Expired(m) if m.starts_with("Signature not yet current"))),
        ("unsigned", headers_of(&[(":authority", HOST)]), path, b"", NOW, |f| *f == Failure::Missing),
        ("not SigV4", headers_of(&[(":authority", HOST), ("authorization", "Bearer x")]), path, b"", NOW, |f| matches!(f, Failure::Incomplete(_))),
        ("no signature", headers_of(&[(":authority", HOST), ("x-amz-date", "20231114T221320Z"), ("authorization", "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20231114/us-east-1/execute-api/aws4_request, SignedHeaders=host;x-amz-date")]), path, b"", NOW, |f| matches!(f, Failure::Incomplete(m) if m.contains("'Signature'"))),
        ("host not signed", headers_of(&[(":authority", HOST), ("x-amz-date", "20231114T221320Z"), ("authorization", &format!("AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20231114/us-east-1/execute-api/aws4_request, SignedHeaders=x-amz-date, Signature={}", "0".repeat(64)))]), path, b"", NOW, |f| matches!(f, Failure::Incomplete(m) if m.contains("Host"))),
        ("unknown key", {
            let mut h = ok.clone();
            if let Some(v) = h.iter_mut().find(|(k, _)| k == "authorization") { v.1 = v.1.replace(KEY, "AKIAUNKNOWN000000000"); }
            h
        }, path, b"{\"a\":1}", NOW, |f| *f == Failure::UnknownKey),
        ("garbage date", {
            let mut h = ok.clone();
            if let Some(v) = h.iter_mut().find(|(k, _)| k == "x-amz-date") { v.1 = "yesterday".into(); }
            h
        }, path, b"{\"a\":1}", NOW, |f| matches!(f, Failure::Incomplete(m) if m.contains("ISO-8601"))),
    ];
    for (what, headers, path, body, now, want) in cases {
        match c.verify("POST", path, &headers, Some(body), now) {
            Err(f) => assert!(want(&f), "{what}: {f:?}"),
            Ok(_) => panic!("{what}: accepted"),
        }
    }
}

#[test]
fn declared_payload_hash_and_unsigned_payload() {
    let c = callers(false);
    let good = signer(SECRET, "us-east-1", "execute-api");
    let body = b"hello";
    let (stamp, _) = amz_date(NOW);
    for declared in [sha256_hex(body), "UNSIGNED-PAYLOAD".to_string()] {
        let mut headers = headers_of(&[
            (":authority", HOST),
            ("x-amz-date", &stamp),
            ("x-amz-content-sha256", &declared),
        ]);
        let sig = good.signature("PUT", "/dev/x", &headers, &declared, &stamp);
        headers.push(("authorization".into(), sig.authorization));
        let p = Presented::read("/dev/x", &headers).unwrap();
        assert!(!p.needs_body(), "a declared hash needs no body");
        assert_eq!(c.verify("PUT", "/dev/x", &headers, Some(body), NOW), Ok(0));
        if declared != "UNSIGNED-PAYLOAD" {
            assert_eq!(
                c.verify("PUT", "/dev/x", &headers, Some(b"other"), NOW),
                Err(Failure::BadSignature),
                "a body that does not match its declared hash"
            );
        }
    }
}

#[test]
fn presigned_urls() {
    let c = callers(false);
    let good = signer(SECRET, "us-east-1", "execute-api");
    let (stamp, day) = amz_date(NOW);
    let query = format!(
        "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential={KEY}%2F{day}%2Fus-east-1%2Fexecute-api%2Faws4_request&X-Amz-Date={stamp}&X-Amz-Expires=300&X-Amz-SignedHeaders=host&q=1"
    );
    let path = format!("/dev/report?{query}");
    let headers = headers_of(&[(":authority", HOST)]);
    let sig = good.signature_of(
        "GET",
        &path,
        vec![("host".into(), HOST.into())],
        "UNSIGNED-PAYLOAD",
        &stamp,
    );
    let url = format!("{path}&X-Amz-Signature={}", sig.signature);
    assert_eq!(
        c.verify("GET", &url, &headers, Some(b""), NOW + 1000),
        Ok(0)
    );
    assert!(matches!(
        c.verify("GET", &url, &headers, Some(b""), NOW + 301_000),
        Err(Failure::Expired(_))
    ));
    let tampered = url.replace("q=1", "q=2");
    assert_eq!(
        c.verify("GET", &tampered, &headers, Some(b""), NOW),
        Err(Failure::BadSignature)
    );
    let forever = url.replace("X-Amz-Expires=300", "X-Amz-Expires=999999");
    assert!(matches!(
        c.verify("GET", &forever, &headers, Some(b""), NOW),
        Err(Failure::Incomplete(_))
    ));
}

#[test]
fn session_tokens() {
    let c = callers(true);
    let good = signer(SECRET, "us-east-1", "execute-api");
    let with = |token: &str| {
        signed(
            &good,
            "GET",
            "/dev/x",
            b"",
            NOW,
            &[("x-amz-security-token", token)],
        )
    };
    assert_eq!(
        c.verify("GET", "/dev/x", &with("session-token"), Some(b""), NOW),
        Ok(0)
    );
    assert_eq!(
        c.verify("GET", "/dev/x", &with("stolen"), Some(b""), NOW),
        Err(Failure::UnknownKey)
    );
    let without = signed(&good, "GET", "/dev/x", b"", NOW, &[]);
    assert_eq!(
        c.verify("GET", "/dev/x", &without, Some(b""), NOW),
        Err(Failure::UnknownKey),
        "temporary credentials need their token"
    );
}

#[test]
fn configuration_errors_name_their_field() {
    let cases = [
        (
            json!({"accessKeyId": "short", "secretAccessKeyEnv": "S", "arn": "arn:aws:iam::123456789012:user/a"}),
            "deployment.iam.callers[0].accessKeyId",
        ),
        (
            json!({"accessKeyId": KEY, "secretAccessKeyEnv": "S", "arn": "alice"}),
            "deployment.iam.callers[0].arn",
        ),
        (
            json!({"accessKeyId": KEY, "secretAccessKeyEnv": "S", "arn": "arn:aws:iam::123456789012:user/a",
                "policy": {"Statement": [{"Effect": "Allow", "Principal": "*", "Action": "execute-api:Invoke", "Resource": "*"}]}}),
            "deployment.iam.callers[0].policy.Statement[0].Principal",
        ),
    ];
    for (caller, field) in cases {
        let d = parse_deployment(json!({"openapi": "a.json", "stage": "dev",
            "lambda": {"endpoint": "http://127.0.0.1:9000"}, "iam": {"callers": [caller]}}))
        .unwrap();
        let mut errors = Vec::new();
        Callers::compile(&d, "arn:aws:execute-api:us-east-1:1:a", &mut errors);
        assert_eq!(errors.first().map(|e| e.location.as_str()), Some(field));
    }
    // A secret that is not in the environment is named by its variable.
    let mut c = callers(false);
    let e = c.load(&|_| None).unwrap_err();
    assert_eq!(e.location, "deployment.iam.callers[0].secretAccessKeyEnv");
    assert!(e.message.contains("ALICE_SECRET"));
}
