//! Signed calls to Lambda through real Envoy, against a loopback HTTPS stand-in with a test
//! CA that checks every signature with the official `aws-sigv4` signer and answers as Lambda
//! (or a function URL) would: Envoy's signer and the filter's, credentials from the
//! environment, wrong and expired credentials, certificate checks, function URLs, and the
//! payload 2.0 event for functions reached through an Invoke API.
#![cfg(not(target_arch = "wasm32"))]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
use aws_sigv4::sign::v4;
use serde_json::{json, Value};
use support::*;

const KEY_ID: &str = "AKIDAPIGWEDGETEST01";
const SECRET: &str = "apigw-edge-test-secret/do-not-log/Z8q";
const TOKEN: &str = "session-token-for-tests==";
const REGION: &str = "eu-west-1";

/// What the stand-in accepts, and how it checks a request.
struct Verifier {
    checked: AtomicUsize,
}

/// A refusal as AWS words it: status, `x-amzn-ErrorType`, message.
type Refusal = (u16, &'static str, String);

impl Verifier {
    fn new() -> Arc<Verifier> {
        Arc::new(Verifier {
            checked: AtomicUsize::new(0),
        })
    }

    fn verify(&self, r: &Recorded) -> Result<(), Refusal> {
        let auth = r.header("authorization").ok_or((
            403,
            "MissingAuthenticationTokenException",
            "Missing Authentication Token".to_string(),
        ))?;
        let rest = auth.strip_prefix("AWS4-HMAC-SHA256 Credential=").ok_or((
            400,
            "IncompleteSignatureException",
            auth.to_string(),
        ))?;
        let (credential, rest) = rest.split_once(", SignedHeaders=").unwrap();
        let (signed_headers, signature) = rest.split_once(", Signature=").unwrap();
        let scope: Vec<&str> = credential.split('/').collect();
        if scope[0] != KEY_ID {
            return Err((
                403,
                "UnrecognizedClientException",
                "The security token included in the request is invalid.".into(),
            ));
        }
        match r.header("x-amz-security-token") {
            Some(TOKEN) => {}
            Some("expired-token") => {
                return Err((
                    403,
                    "ExpiredTokenException",
                    "The security token included in the request is expired".into(),
                ))
            }
            _ => {
                return Err((
                    403,
                    "UnrecognizedClientException",
                    "The security token included in the request is invalid.".into(),
                ))
            }
        }
        assert_eq!(&scope[2..], &[REGION, "lambda", "aws4_request"], "{auth}");
        let stamp = r.header("x-amz-date").unwrap();
        let at = parse_stamp(stamp);
        let skew = SystemTime::now()
            .duration_since(at)
            .unwrap_or_else(|e| e.duration());
        if skew > Duration::from_secs(300) {
            return Err((
                403,
                "InvalidSignatureException",
                format!("Signature expired: {stamp}"),
            ));
        }
        // Sign the same request with the official signer, over the headers the caller signed.
        let names: Vec<&str> = signed_headers.split(';').collect();
        let headers: Vec<(String, String)> = names
            .iter()
            .filter(|n| !matches!(**n, "x-amz-date" | "x-amz-security-token"))
            .map(|n| {
                let values: Vec<&str> = r
                    .headers
                    .iter()
                    .filter(|(k, _)| k.eq_ignore_ascii_case(n))
                    .map(|(_, v)| v.as_str())
                    .collect();
                (n.to_string(), values.join(","))
            })
            .collect();
        let identity = aws_credential_types::Credentials::new(
            KEY_ID,
            SECRET,
            Some(TOKEN.to_string()),
            None,
            "stand-in",
        )
        .into();
        let mut settings = SigningSettings::default();
        settings.excluded_headers = Some(Vec::new());
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(REGION)
            .name("lambda")
            .time(at)
            .settings(settings)
            .build()
            .unwrap()
            .into();
        let host = r.header("host").unwrap();
        let url = format!("https://{host}{}", r.path);
        let signable = SignableRequest::new(
            &r.method,
            &url,
            headers.iter().map(|(k, v)| (k.as_str(), v.as_str())),
            SignableBody::Bytes(&r.body),
        )
        .unwrap();
        let (_, want) = sign(signable, &params).unwrap().into_parts();
        if want != signature {
            return Err((
                403,
                "InvalidSignatureException",
                "The request signature we calculated does not match the signature you provided."
                    .into(),
            ));
        }
        self.checked.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }

    fn checked(&self) -> usize {
        self.checked.load(Ordering::SeqCst)
    }
}

fn parse_stamp(stamp: &str) -> SystemTime {
    let n = |a: usize, b: usize| stamp[a..b].parse::<i64>().unwrap();
    let days = days_from_civil(n(0, 4), n(4, 6), n(6, 8));
    let secs = days * 86_400 + n(9, 11) * 3600 + n(11, 13) * 60 + n(13, 15);
    UNIX_EPOCH + Duration::from_secs(secs as u64)
}

fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    apigw_edge::time::days_from_civil(y, m as u32, d as u32)
}

fn refused((status, kind, message): Refusal) -> StubReply {
    StubReply::payload(json!({ "message": message }).to_string())
        .status(status)
        .with_header("x-amzn-ErrorType", kind)
}

/// A Lambda Invoke API that checks signatures and answers a proxy response.
fn signed_lambda(ca: &TestCa, verifier: &Arc<Verifier>) -> InvokeStub {
    let v = verifier.clone();
    InvokeStub::start_tls(ca, move |r| match v.verify(r) {
        Ok(()) => StubReply::payload(
            json!({"statusCode": 200, "body": format!("signed call to {}", r.path)}).to_string(),
        ),
        Err(refusal) => refused(refusal),
    })
}

fn api() -> Value {
    json!({"swagger": "2.0", "paths": {
        "/hello": {"get": proxy_op("hello"), "post": proxy_op("hello")},
        "/live": {"get": {"x-amazon-apigateway-integration": {"type": "aws_proxy", "httpMethod": "POST",
            "uri": lambda_uri("hello:${stageVariables.alias}")}}}
    }})
}

fn good_env() -> Vec<(&'static str, &'static str)> {
    vec![
        ("AWS_ACCESS_KEY_ID", KEY_ID),
        ("AWS_SECRET_ACCESS_KEY", SECRET),
        ("AWS_SESSION_TOKEN", TOKEN),
    ]
}

fn start(name: &str, deployment: &str, env: &[(&str, &str)]) -> Envoy {
    let dir = temp_dir(name);
    let (config, port, admin) = render(&dir, deployment, &api());
    let text = std::fs::read_to_string(&config).unwrap();
    for (_, value) in env {
        assert!(
            !text.contains(value),
            "a credential value reached the rendered configuration"
        );
    }
    Envoy::start_config_env(dir, config, (port, admin), 1, env)
}

fn deployment(stub: &InvokeStub, ca: &TestCa, signing: &str, credentials: &str) -> String {
    format!(
        "stage: prod\nstageVariables: {{alias: live}}\nlambda:\n  endpoint: {}\n  region: {REGION}\n  signing: {signing}\n  tls: {{caFile: {}}}\n  credentials: {credentials}\n",
        stub.https_url(),
        ca.ca_file.display()
    )
}

#[test]
fn envoy_signs_invoke_calls_through_its_upstream_filter() {
    let dir = temp_dir("sign-envoy-ca");
    let ca = TestCa::new(&dir);
    let verifier = Verifier::new();
    let lambda = signed_lambda(&ca, &verifier);
    let envoy = start(
        "sign-envoy",
        &deployment(&lambda, &ca, "ENVOY", "{provider: ENVIRONMENT}"),
        &good_env(),
    );
    let r = envoy.get("/prod/hello");
    assert_eq!(
        (r.status, r.text()),
        (
            200,
            "signed call to /2015-03-31/functions/hello/invocations".into()
        ),
        "{}",
        envoy.log()
    );
    let r = envoy.get("/prod/live");
    assert_eq!(
        r.text(),
        "signed call to /2015-03-31/functions/hello/invocations?Qualifier=live"
    );
    // A POST is forwarded through Envoy's router; the cluster's signer signs it the same.
    let r = envoy.request(
        "POST",
        "/prod/hello",
        &[("content-type", "application/json")],
        br#"{"a": 1}"#,
    );
    assert_eq!(
        r.status,
        200,
        "{}
{}",
        r.text(),
        envoy.log()
    );
    assert_eq!(verifier.checked(), 3);
    let call = lambda.last("hello");
    assert!(call
        .header("authorization")
        .unwrap()
        .contains(&format!("Credential={KEY_ID}/")));
    assert_eq!(call.header("x-amz-security-token"), Some(TOKEN));
    let signed: u64 = envoy
        .stats()
        .iter()
        .filter(|(k, _)| k.ends_with(".aws_request_signing.signing_added"))
        .map(|(_, v)| v.parse::<u64>().unwrap())
        .sum();
    assert_eq!(signed, 3, "Envoy's signer did not count the calls");
}

#[test]
fn filter_signs_invoke_calls_with_credentials_from_named_variables() {
    let dir = temp_dir("sign-filter-ca");
    let ca = TestCa::new(&dir);
    let verifier = Verifier::new();
    let lambda = signed_lambda(&ca, &verifier);
    let envoy = start(
        "sign-filter",
        &deployment(
            &lambda,
            &ca,
            "FILTER",
            "{accessKeyIdEnv: GW_KEY, secretAccessKeyEnv: GW_SECRET, sessionTokenEnv: GW_TOKEN}",
        ),
        &[
            ("GW_KEY", KEY_ID),
            ("GW_SECRET", SECRET),
            ("GW_TOKEN", TOKEN),
        ],
    );
    for path in ["/prod/hello", "/prod/live", "/prod/hello"] {
        let r = envoy.get(path);
        assert_eq!(r.status, 200, "{path}: {}\n{}", r.text(), envoy.log());
    }
    // Forwarded through Envoy's router, the filter's signature still holds.
    let r = envoy.request(
        "POST",
        "/prod/hello",
        &[("content-type", "application/json")],
        br#"{"a": 1}"#,
    );
    assert_eq!(r.status, 200, "{}\n{}", r.text(), envoy.log());
    assert_eq!(verifier.checked(), 4);
    // Envoy's signer is not in the path: the filter's own headers are the only signed ones.
    let call = lambda.last("hello");
    let auth = call.header("authorization").unwrap();
    assert!(
        auth.contains("SignedHeaders=content-type;host;x-amz-date;x-amz-invocation-type;x-amz-security-token,"),
        "{auth}"
    );
    assert!(call.header("x-amz-content-sha256").is_none());
}

#[test]
fn wrong_or_expired_credentials_answer_500_and_log_no_secret() {
    let dir = temp_dir("sign-wrong-ca");
    let ca = TestCa::new(&dir);
    let verifier = Verifier::new();
    let lambda = signed_lambda(&ca, &verifier);
    let wrong_secret = "WRONG-secret-value-never-logged";
    let env = |key: &'static str, secret: &'static str, token: Option<&'static str>| {
        let mut env = vec![
            ("AWS_ACCESS_KEY_ID", key),
            ("AWS_SECRET_ACCESS_KEY", secret),
        ];
        env.extend(token.map(|t| ("AWS_SESSION_TOKEN", t)));
        env
    };
    for (signing, env, error_type) in [
        (
            "ENVOY",
            env(KEY_ID, wrong_secret, Some(TOKEN)),
            "InvalidSignatureException",
        ),
        (
            "FILTER",
            env(KEY_ID, wrong_secret, Some(TOKEN)),
            "InvalidSignatureException",
        ),
        (
            "FILTER",
            env(KEY_ID, SECRET, Some("expired-token")),
            "ExpiredTokenException",
        ),
        (
            "FILTER",
            env("AKIDSOMEONEELSE", SECRET, None),
            "UnrecognizedClientException",
        ),
    ] {
        let credentials = if signing == "ENVOY" {
            "{provider: ENVIRONMENT}"
        } else {
            "{}"
        };
        let envoy = start(
            "sign-wrong",
            &deployment(&lambda, &ca, signing, credentials),
            &env,
        );
        let r = envoy.get("/prod/hello");
        assert_eq!(
            (r.status, r.text()),
            (500, r#"{"message":"Internal server error"}"#.to_string()),
            "{signing} {error_type}"
        );
        assert_eq!(
            r.header("x-amzn-ErrorType"),
            Some("InternalServerErrorException")
        );
        let log = envoy.log();
        assert!(
            log.contains(&format!(
                "Lambda rejected the invocation with status 403: {error_type}"
            )),
            "{signing} {error_type}:\n{log}"
        );
        for (_, value) in &env {
            if *value != KEY_ID && *value != "AKIDSOMEONEELSE" {
                assert!(!log.contains(value), "{signing}: the log shows a secret");
            }
        }
    }
    assert_eq!(verifier.checked(), 0);
}

#[test]
fn missing_credentials_make_envoy_refuse_the_configuration() {
    let dir = temp_dir("sign-missing");
    let ca = TestCa::new(&dir);
    let lambda = InvokeStub::start_tls(&ca, |_| StubReply::payload("{}"));
    let (config, _, _) = render(
        &dir,
        &deployment(
            &lambda,
            &ca,
            "FILTER",
            "{accessKeyIdEnv: GW_KEY_MISSING, secretAccessKeyEnv: GW_SECRET_MISSING}",
        ),
        &api(),
    );
    let text = std::fs::read_to_string(&config).unwrap();
    // The wasm VM sees only the variables the configuration names; the native module
    // reads Envoy's own environment.
    assert!(native() || (text.contains("GW_KEY_MISSING") && text.contains("host_env_keys")));
    let (ok, stderr) = envoy_validate(&config);
    assert!(!ok, "Envoy accepted a configuration without credentials");
    assert!(
        stderr.contains("invalid configuration: deployment.lambda.credentials.accessKeyIdEnv: environment variable GW_KEY_MISSING is not set where the filter runs"),
        "{stderr}"
    );
    let (ok, stderr) = envoy_validate_with_env(
        &config,
        &[("GW_KEY_MISSING", KEY_ID), ("GW_SECRET_MISSING", SECRET)],
    );
    assert!(ok, "{stderr}");
    assert!(!stderr.contains(SECRET));
}

#[test]
fn a_certificate_from_an_untrusted_ca_is_refused() {
    let dir = temp_dir("sign-untrusted");
    let ca = TestCa::new(&dir);
    let lambda = InvokeStub::start_tls(&ca, |_| StubReply::payload(r#"{"statusCode":200}"#));
    // The system bundle does not hold the test CA.
    let envoy = start(
        "sign-untrusted",
        &format!(
            "stage: prod\nstageVariables: {{alias: live}}\nlambda:\n  endpoint: {}\n  signing: NONE\n",
            lambda.https_url()
        ),
        &[],
    );
    let r = envoy.get("/prod/hello");
    assert_eq!(
        (r.status, r.text()),
        (502, r#"{"message":"Internal server error"}"#.to_string())
    );
    assert!(lambda.requests().is_empty());
    assert!(envoy.log().contains("Lambda endpoint unreachable"));
}

/// A function URL stand-in: checks the signature when there is one and answers as the
/// function URL service does after inferring the function's response.
fn function_url(ca: &TestCa, verifier: &Arc<Verifier>) -> InvokeStub {
    let v = verifier.clone();
    InvokeStub::start_tls(ca, move |r| {
        if r.header("authorization").is_some() {
            if let Err(refusal) = v.verify(r) {
                return refused(refusal);
            }
        }
        StubReply {
            raw_headers: Vec::new(),
            status: 201,
            headers: vec![
                ("content-type".into(), "text/plain".into()),
                ("set-cookie".into(), "session=abc; Path=/".into()),
                ("x-amzn-RequestId".into(), "url-request".into()),
            ],
            body: format!(
                "{} {} cookie={} body={}",
                r.method,
                r.path,
                r.header("cookie").unwrap_or("-"),
                String::from_utf8_lossy(&r.body)
            )
            .into_bytes(),
            delay: Duration::ZERO,
        }
    })
}

#[test]
fn function_urls_get_the_request_signed_and_their_answer_passes_through() {
    let dir = temp_dir("url-ca");
    let ca = TestCa::new(&dir);
    let verifier = Verifier::new();
    let url = function_url(&ca, &verifier);
    for (signing, credentials, env) in [
        ("FILTER", "{}", good_env()),
        ("ENVOY", "{provider: ENVIRONMENT}", good_env()),
    ] {
        let before = verifier.checked();
        let envoy = start(
            "url-signed",
            &format!(
                "stage: prod\nstageVariables: {{alias: live}}\nlambda:\n  endpoint: http://127.0.0.1:9\n  region: {REGION}\n  signing: {signing}\n  tls: {{caFile: {}}}\n  credentials: {credentials}\n  functions:\n    hello:\n      url: {}/app\n      authType: AWS_IAM\n",
                ca.ca_file.display(),
                url.https_url()
            ),
            &env,
        );
        let r = envoy.request(
            "GET",
            "/prod/hello?b=2&a=1",
            &[("cookie", "theme=dark"), ("x-api-key", "k")],
            b"",
        );
        assert_eq!(r.status, 201, "{signing}: {}\n{}", r.text(), envoy.log());
        assert_eq!(
            r.text(),
            "GET /app/hello?b=2&a=1 cookie=theme=dark body=",
            "{signing}"
        );
        assert_eq!(r.header("content-type"), Some("text/plain"));
        assert_eq!(r.header("set-cookie"), Some("session=abc; Path=/"));
        let rid = r.header("x-amzn-RequestId").unwrap();
        assert_ne!(rid, "url-request", "the gateway's own request id is sent");
        assert_eq!(verifier.checked(), before + 1, "{signing}");
    }
}

#[test]
fn function_urls_with_auth_none_are_not_signed() {
    let url = InvokeStub::start(|r| {
        StubReply::payload(format!(
            "auth={} path={}",
            r.header("authorization").unwrap_or("none"),
            r.path
        ))
        .with_header("content-type", "text/plain")
    });
    let envoy = start(
        "url-none",
        &format!(
            "stage: prod\nstageVariables: {{alias: live}}\nlambda:\n  endpoint: http://127.0.0.1:9\n  functions:\n    hello:\n      url: {}/lambda-url/hello/\n      authType: NONE\n",
            url.url()
        ),
        &[],
    );
    let r = envoy.get("/prod/hello");
    assert_eq!(
        (r.status, r.text()),
        (200, "auth=none path=/lambda-url/hello/hello".to_string()),
        "{}",
        envoy.log()
    );
}

#[test]
fn payload_2_0_event_and_response_inference_through_the_invoke_api() {
    let lambda = InvokeStub::start(|r| {
        let ev = r.json();
        if ev["rawQueryString"] == "structured" {
            StubReply::payload(
                json!({"statusCode": 201, "cookies": ["a=1", "b=2"], "body": "made",
                       "headers": {"content-type": "text/plain"}})
                .to_string(),
            )
        } else {
            StubReply::payload(json!({"message": "hi"}).to_string())
        }
    });
    let envoy = start(
        "payload-v2",
        &format!(
            "stage: prod\nstageVariables: {{alias: live}}\nlambda:\n  endpoint: {}\n  functions:\n    hello: {{name: hello, payloadFormatVersion: \"2.0\"}}\n",
            lambda.url()
        ),
        &[],
    );
    let r = envoy.request(
        "GET",
        "/prod/hello?x=1&x=2&y=a+b",
        &[
            ("cookie", "s=1; t=2"),
            ("x-multi", "1"),
            ("user-agent", "e2e"),
        ],
        b"",
    );
    assert_eq!(
        (r.status, r.header("content-type"), r.text()),
        (
            200,
            Some("application/json"),
            r#"{"message":"hi"}"#.to_string()
        )
    );
    let ev = lambda.last("hello").json();
    assert_eq!(ev["version"], "2.0");
    assert_eq!(ev["routeKey"], "$default");
    assert_eq!(ev["rawPath"], "/hello");
    assert_eq!(ev["rawQueryString"], "x=1&x=2&y=a+b");
    assert_eq!(ev["cookies"], json!(["s=1", "t=2"]));
    assert_eq!(ev["queryStringParameters"], json!({"x": "1,2", "y": "a b"}));
    assert_eq!(ev["headers"]["x-multi"], "1");
    assert!(ev["headers"].get("cookie").is_none());
    assert_eq!(ev["requestContext"]["http"]["method"], "GET");
    assert_eq!(ev["requestContext"]["http"]["path"], "/hello");
    assert_eq!(ev["requestContext"]["http"]["sourceIp"], "127.0.0.1");
    assert_eq!(ev["requestContext"]["http"]["userAgent"], "e2e");
    assert_eq!(ev["requestContext"]["stage"], "$default");
    assert_eq!(ev["isBase64Encoded"], false);
    for absent in ["body", "multiValueHeaders", "resource", "httpMethod"] {
        assert!(ev.get(absent).is_none(), "{absent}");
    }

    let r = envoy.get("/prod/hello?structured");
    assert_eq!((r.status, r.text()), (201, "made".to_string()));
    assert_eq!(r.header("content-type"), Some("text/plain"));
    assert_eq!(r.headers_named("set-cookie"), vec!["a=1", "b=2"]);
}
