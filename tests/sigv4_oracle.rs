//! Our SigV4 signer against the official `aws-sigv4` crate, over generated requests: every
//! request is signed by both with the same credentials and clock, and the signatures must
//! be equal. Paths, queries, header values and bodies are drawn from alphabets that include
//! the characters canonicalisation is about (spaces, `%`, `+`, `:`, `~`, non-ASCII).
#![cfg(not(target_arch = "wasm32"))]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::time::{Duration, SystemTime};

use apigw_edge::sigv4::{amz_date, sha256_hex, Credentials, Signer};
use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
use aws_sigv4::sign::v4;

/// A small deterministic generator (xorshift64*), so failures reproduce.
struct Gen(u64);

impl Gen {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }
    fn word(&mut self, alphabet: &[&str], max: usize) -> String {
        let n = 1 + self.below(max);
        (0..n).map(|_| self.pick(alphabet)).collect()
    }
}

const PATH_CHARS: &[&str] = &[
    "a", "Z", "0", "-", "_", ".", "~", "%20", "%2F", "%41", ":", "@", "!", "$", "%C3%A9", "(",
];
const QUERY_CHARS: &[&str] = &[
    "a", "B", "9", "-", "~", "%20", "+", "%2B", "%24", "*", "%3D",
];
const VALUE_CHARS: &[&str] = &["a", " ", "  ", "Z", "/", "=", ";", ",", "\"", "é"];

/// What the official signer is asked to sign.
struct Request<'a> {
    method: &'a str,
    url: &'a str,
    headers: &'a [(String, String)],
    body: &'a [u8],
}

fn oracle(
    creds: &Credentials,
    (region, service): (&str, &str),
    at: SystemTime,
    req: Request<'_>,
) -> String {
    oracle_with(
        SigningSettings::default(),
        creds,
        (region, service),
        at,
        req,
    )
}

fn oracle_with(
    settings: SigningSettings,
    creds: &Credentials,
    (region, service): (&str, &str),
    at: SystemTime,
    req: Request<'_>,
) -> String {
    let identity = aws_credential_types::Credentials::new(
        creds.access_key_id.clone(),
        creds.secret_access_key.clone(),
        creds.session_token.clone(),
        None,
        "oracle",
    )
    .into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name(service)
        .time(at)
        .settings(settings)
        .build()
        .unwrap()
        .into();
    let signable = SignableRequest::new(
        req.method,
        req.url,
        req.headers.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        SignableBody::Bytes(req.body),
    )
    .unwrap();
    let (_, signature) = sign(signable, &params).unwrap().into_parts();
    signature
}

#[test]
fn signatures_match_the_official_signer_over_generated_requests() {
    let mut g = Gen(0x5eed_1234_abcd_ef01);
    let mut compared = 0;
    for case in 0..600 {
        let creds = Credentials {
            access_key_id: format!("AKIA{:012}", g.next() % 1_000_000_000_000),
            secret_access_key: g.word(&["a", "B", "/", "+", "9"], 40),
            session_token: (g.below(2) == 0).then(|| g.word(&["T", "o", "k", "/", "="], 60)),
        };
        let region = g.pick(&["us-east-1", "eu-west-1", "ap-southeast-2"]);
        let service = g.pick(&["lambda", "execute-api"]);
        let method = g.pick(&["POST", "GET", "PUT", "DELETE"]);
        let host = g.pick(&[
            "lambda.us-east-1.amazonaws.com",
            "abcdefghij.lambda-url.eu-west-1.on.aws",
            "localhost:8443",
        ]);
        let segments = g.below(4);
        let mut path: String = (0..segments)
            .map(|_| format!("/{}", g.word(PATH_CHARS, 6)))
            .collect();
        if path.is_empty() || g.below(5) == 0 {
            path.push('/');
        }
        let mut query = String::new();
        for i in 0..g.below(4) {
            if i > 0 {
                query.push('&');
            }
            query.push_str(&g.word(QUERY_CHARS, 5));
            query.push('=');
            query.push_str(&g.word(QUERY_CHARS, 5));
        }
        let path_and_query = if query.is_empty() {
            path.clone()
        } else {
            format!("{path}?{query}")
        };
        let mut headers: Vec<(String, String)> = Vec::new();
        if g.below(3) > 0 {
            headers.push(("content-type".into(), "application/json".into()));
        }
        for name in [
            "x-amz-invocation-type",
            "x-amz-client-context",
            "x-amz-log-type",
        ] {
            if g.below(2) == 0 {
                headers.push((name.into(), g.word(VALUE_CHARS, 8).trim().to_string() + "v"));
            }
        }
        let body: Vec<u8> = (0..g.below(64)).map(|_| g.next() as u8).collect();
        let secs = 1_400_000_000 + g.next() % 600_000_000;
        let at = SystemTime::UNIX_EPOCH + Duration::from_secs(secs);

        let url = format!("https://{host}{path_and_query}");
        let want = oracle(
            &creds,
            (region, service),
            at,
            Request {
                method,
                url: &url,
                headers: &headers,
                body: &body,
            },
        );

        let signer = Signer::new(region, service, creds.clone());
        let (stamp, _) = amz_date(secs * 1000);
        let mut ours_headers = headers.clone();
        ours_headers.push(("host".into(), host.into()));
        ours_headers.push(("x-amz-date".into(), stamp.clone()));
        if let Some(t) = &creds.session_token {
            ours_headers.push(("x-amz-security-token".into(), t.clone()));
        }
        let ours = signer.signature(
            method,
            &path_and_query,
            &ours_headers,
            &sha256_hex(&body),
            &stamp,
        );
        assert_eq!(
            ours.signature, want,
            "case {case}: {method} https://{host}{path_and_query}\ncanonical request:\n{}",
            ours.canonical_request
        );
        compared += 1;
    }
    assert_eq!(compared, 600);
}

/// `Signer::sign`, the path the gateway takes, agrees with the oracle too.
#[test]
fn sign_in_place_matches_the_official_signer() {
    let creds = Credentials {
        access_key_id: "AKIDEXAMPLE".into(),
        secret_access_key: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY".into(),
        session_token: Some("FQoGZXIvYXdzEXAMPLE//token==".into()),
    };
    let body = br#"{"resource":"/hello","httpMethod":"GET"}"#;
    let mut headers: Vec<(String, String)> = vec![
        (":method".into(), "POST".into()),
        (
            ":path".into(),
            "/2015-03-31/functions/hello/invocations?Qualifier=%24LATEST".into(),
        ),
        (":authority".into(), "lambda.eu-west-1.amazonaws.com".into()),
        ("content-type".into(), "application/json".into()),
        ("x-amz-invocation-type".into(), "RequestResponse".into()),
        ("user-agent".into(), "AmazonAPIGateway_local".into()),
    ];
    let secs = 1_764_590_400; // 2025-12-01T12:00:00Z
    Signer::new("eu-west-1", "lambda", creds.clone()).sign(&mut headers, body, secs * 1000);
    let auth = headers
        .iter()
        .find(|(k, _)| k == "authorization")
        .map(|(_, v)| v.clone())
        .unwrap();
    let want = oracle(
        &creds,
        ("eu-west-1", "lambda"),
        SystemTime::UNIX_EPOCH + Duration::from_secs(secs),
        Request {
            method: "POST",
            url: "https://lambda.eu-west-1.amazonaws.com/2015-03-31/functions/hello/invocations?Qualifier=%24LATEST",
            headers: &[
                ("content-type".into(), "application/json".into()),
                ("x-amz-invocation-type".into(), "RequestResponse".into()),
            ],
            body,
        },
    );
    assert!(
        auth.ends_with(&format!("Signature={want}")),
        "{auth} vs {want}"
    );
}

/// S3 signs the path as sent (no second encoding, no normalisation) and the payload hash as
/// `x-amz-content-sha256`: the signer does both for the `s3` service.
#[test]
fn s3_requests_match_the_official_signer() {
    use aws_sigv4::http_request::{
        PayloadChecksumKind, PercentEncodingMode, UriPathNormalizationMode,
    };
    let creds = Credentials {
        access_key_id: "AKIDEXAMPLE".into(),
        secret_access_key: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY".into(),
        session_token: None,
    };
    let secs = 1_764_590_400;
    for (method, path, body) in [
        ("PUT", "/media/photos/a%20b%2Bc.txt", b"hello".as_slice()),
        ("GET", "/media/x/../y//z", b"".as_slice()),
    ] {
        let mut headers: Vec<(String, String)> = vec![
            (":method".into(), method.into()),
            (":path".into(), path.into()),
            (":authority".into(), "s3.us-west-2.amazonaws.com".into()),
            ("content-type".into(), "text/plain".into()),
        ];
        Signer::new("us-west-2", "s3", creds.clone()).sign(&mut headers, body, secs * 1000);
        let auth = headers
            .iter()
            .find(|(k, _)| k == "authorization")
            .map(|(_, v)| v.clone())
            .unwrap();
        let mut settings = SigningSettings::default();
        settings.percent_encoding_mode = PercentEncodingMode::Single;
        settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
        settings.uri_path_normalization_mode = UriPathNormalizationMode::Disabled;
        let url = format!("https://s3.us-west-2.amazonaws.com{path}");
        let want = oracle_with(
            settings,
            &creds,
            ("us-west-2", "s3"),
            SystemTime::UNIX_EPOCH + Duration::from_secs(secs),
            Request {
                method,
                url: &url,
                headers: &[("content-type".into(), "text/plain".into())],
                body,
            },
        );
        assert!(
            auth.ends_with(&format!("Signature={want}")),
            "{method} {path}: {auth} vs {want}"
        );
        assert!(auth.contains("x-amz-content-sha256"), "{auth}");
    }
}
