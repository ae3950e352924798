//! AWS Signature Version 4 for the calls the gateway makes to Lambda.
//!
//! Owns: credentials (redacted in `Debug`), the canonical request, the string to sign, the
//! signing key (derived once per UTC day and kept), and the headers a signed call carries
//! (`x-amz-date`, `x-amz-security-token`, `authorization`). Signed headers are `host` (from
//! `:authority`), `content-type` and every `x-amz-*` header. Must not: read a clock or the
//! environment; the caller passes `now` and the credentials in.

use std::fmt;
use std::sync::Mutex;

use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};

use crate::http::Header;
use crate::time::Utc;

type HmacSha256 = Hmac<Sha256>;

/// The signing name of the Lambda service (Invoke API and function URLs alike).
pub const LAMBDA_SERVICE: &str = "lambda";

/// An AWS access key pair, with the session token of temporary credentials.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: Option<String>,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .field(
                "session_token",
                &self.session_token.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

/// Signs requests for one region and service with one set of credentials.
pub struct Signer {
    region: String,
    service: String,
    credentials: Credentials,
    /// `(yyyymmdd, key)`: the derived key of the last day signed.
    day_key: Mutex<Option<(String, [u8; 32])>>,
}

impl fmt::Debug for Signer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Signer")
            .field("region", &self.region)
            .field("service", &self.service)
            .field("credentials", &self.credentials)
            .finish()
    }
}

fn hmac(key: &[u8], data: &[u8]) -> [u8; 32] {
    // HMAC accepts keys of any length, so `new_from_slice` cannot fail here.
    match HmacSha256::new_from_slice(key) {
        Ok(mut mac) => {
            mac.update(data);
            mac.finalize().into_bytes().into()
        }
        Err(_) => [0; 32],
    }
}

/// The hex digit of a value below 16.
fn nibble(n: u8, upper: bool) -> char {
    let c = char::from_digit(u32::from(n & 15), 16).unwrap_or('0');
    if upper {
        c.to_ascii_uppercase()
    } else {
        c
    }
}

/// Lower-case hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    push_hex(&mut out, bytes);
    out
}

/// Appends `bytes` as lowercase hex digits.
pub fn push_hex(out: &mut String, bytes: &[u8]) {
    for b in bytes {
        out.push(nibble(b >> 4, false));
        out.push(nibble(b & 15, false));
    }
}

/// Whether two strings are equal, in time that depends on their lengths only.
pub fn constant_time_eq(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// Lower-case hex SHA-256 of `data`.
pub fn sha256_hex(data: &[u8]) -> String {
    hex(&Sha256::digest(data))
}

/// `20150830T123600Z` and `20150830` for `now_ms`.
pub fn amz_date(now_ms: u64) -> (String, String) {
    let t = Utc::from_epoch_ms(now_ms);
    let day = format!("{:04}{:02}{:02}", t.year, t.month, t.day);
    let stamp = format!("{day}T{:02}{:02}{:02}Z", t.hour, t.minute, t.second);
    (stamp, day)
}

fn unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~')
}

/// SigV4's `UriEncode`: every byte but the unreserved ones as `%XX` (upper case); `/` is
/// kept when `keep_slash`.
fn uri_encode(input: &[u8], keep_slash: bool, out: &mut String) {
    for &b in input {
        if unreserved(b) || (keep_slash && b == b'/') {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(nibble(b >> 4, true));
            out.push(nibble(b & 15, true));
        }
    }
}

/// The canonical URI of a path as sent: dot segments removed, then every byte encoded
/// (services other than S3 expect the path encoded once more than on the wire).
fn canonical_uri(path: &str) -> String {
    let mut segments: Vec<&str> = Vec::new();
    let parts: Vec<&str> = path.split('/').collect();
    let last = parts.len().saturating_sub(1);
    for (i, seg) in parts.iter().enumerate() {
        match *seg {
            "." => {}
            ".." => {
                segments.pop();
            }
            s if s.is_empty() && i != last => {}
            s => segments.push(s),
        }
    }
    let mut normalized = String::with_capacity(path.len() + 1);
    for s in &segments {
        normalized.push('/');
        normalized.push_str(s);
    }
    let ends_in_directory = path.ends_with('/') || path.ends_with("/.") || path.ends_with("/..");
    if normalized.is_empty() || (ends_in_directory && !normalized.ends_with('/')) {
        normalized.push('/');
    }
    let mut out = String::with_capacity(normalized.len() + 8);
    uri_encode(normalized.as_bytes(), true, &mut out);
    out
}

fn percent_decode(s: &str) -> Vec<u8> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        let hex_at = |j: usize| bytes.get(j).and_then(|c| char::from(*c).to_digit(16));
        match (b, hex_at(i + 1), hex_at(i + 2)) {
            (b'%', Some(h), Some(l)) => {
                out.push((h * 16 + l) as u8);
                i += 3;
            }
            (b'+', _, _) => {
                out.push(b' ');
                i += 1;
            }
            _ => {
                out.push(b);
                i += 1;
            }
        }
    }
    out
}

/// The canonical query string: each name and value decoded and encoded again, sorted by
/// name, then value.
fn canonical_query(query: &str) -> String {
    let mut pairs: Vec<(String, String)> = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            let (mut ek, mut ev) = (String::new(), String::new());
            uri_encode(&percent_decode(k), false, &mut ek);
            uri_encode(&percent_decode(v), false, &mut ev);
            (ek, ev)
        })
        .collect();
    pairs.sort();
    let mut out = String::with_capacity(query.len() + 8);
    for (i, (k, v)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        out.push_str(k);
        out.push('=');
        out.push_str(v);
    }
    out
}

/// A header value as signed: trimmed, runs of spaces folded to one.
fn canonical_value(v: &str) -> String {
    v.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn signs_header(name: &str) -> bool {
    name == "host" || name == "content-type" || name.starts_with("x-amz-")
}

/// The parts of one signature, kept for tests and debugging.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signature {
    pub canonical_request: String,
    pub string_to_sign: String,
    pub signed_headers: String,
    pub signature: String,
    pub authorization: String,
}

impl Signer {
    pub fn new(region: &str, service: &str, credentials: Credentials) -> Self {
        Signer {
            region: region.to_string(),
            service: service.to_string(),
            credentials,
            day_key: Mutex::new(None),
        }
    }

    pub fn region(&self) -> &str {
        &self.region
    }

    /// The key for `day` (`yyyymmdd`), derived at most once per day.
    fn signing_key(&self, day: &str) -> [u8; 32] {
        if let Ok(guard) = self.day_key.lock() {
            if let Some((d, key)) = guard.as_ref() {
                if d == day {
                    return *key;
                }
            }
        }
        let secret = format!("AWS4{}", self.credentials.secret_access_key);
        let k_date = hmac(secret.as_bytes(), day.as_bytes());
        let k_region = hmac(&k_date, self.region.as_bytes());
        let k_service = hmac(&k_region, self.service.as_bytes());
        let key = hmac(&k_service, b"aws4_request");
        if let Ok(mut guard) = self.day_key.lock() {
            *guard = Some((day.to_string(), key));
        }
        key
    }

    /// Computes the signature of a request given as `method`, `path` (with its query, as
    /// sent), its headers (the `host` header, or `:authority`, must be among them), the
    /// payload hash and the `x-amz-date` stamp.
    pub fn signature(
        &self,
        method: &str,
        path: &str,
        headers: &[Header],
        payload_sha256: &str,
        stamp: &str,
    ) -> Signature {
        let mut signed: Vec<(String, String)> = Vec::with_capacity(headers.len());
        for (k, v) in headers {
            let name = if k == ":authority" {
                "host".to_string()
            } else {
                k.to_ascii_lowercase()
            };
            if !signs_header(&name) {
                continue;
            }
            let value = canonical_value(v);
            match signed.iter_mut().find(|(n, _)| *n == name) {
                Some((_, existing)) => {
                    existing.push(',');
                    existing.push_str(&value);
                }
                None => signed.push((name, value)),
            }
        }
        self.signature_of(method, path, signed, payload_sha256, stamp)
    }

    /// [`Signer::signature`] over exactly these signed headers (lower-case names, values
    /// as sent): what a verifier recomputes from the client's `SignedHeaders`.
    pub fn signature_of(
        &self,
        method: &str,
        path: &str,
        mut signed: Vec<(String, String)>,
        payload_sha256: &str,
        stamp: &str,
    ) -> Signature {
        let day = stamp.get(..8).unwrap_or(stamp);
        let (path_only, query) = path.split_once('?').unwrap_or((path, ""));
        for (_, v) in signed.iter_mut() {
            *v = canonical_value(v);
        }
        signed.sort();
        let signed_headers = signed
            .iter()
            .map(|(n, _)| n.as_str())
            .collect::<Vec<_>>()
            .join(";");
        let mut canonical_request = String::with_capacity(256);
        canonical_request.push_str(method);
        canonical_request.push('\n');
        // S3 signs the path as sent: neither normalised nor encoded again.
        if self.service == "s3" {
            canonical_request.push_str(if path_only.is_empty() { "/" } else { path_only });
        } else {
            canonical_request.push_str(&canonical_uri(path_only));
        }
        canonical_request.push('\n');
        canonical_request.push_str(&canonical_query(query));
        canonical_request.push('\n');
        for (n, v) in &signed {
            canonical_request.push_str(n);
            canonical_request.push(':');
            canonical_request.push_str(v);
            canonical_request.push('\n');
        }
        canonical_request.push('\n');
        canonical_request.push_str(&signed_headers);
        canonical_request.push('\n');
        canonical_request.push_str(payload_sha256);
        let scope = format!("{day}/{}/{}/aws4_request", self.region, self.service);
        let string_to_sign = format!(
            "AWS4-HMAC-SHA256\n{stamp}\n{scope}\n{}",
            sha256_hex(canonical_request.as_bytes())
        );
        let signature = hex(&hmac(&self.signing_key(day), string_to_sign.as_bytes()));
        let authorization = format!(
            "AWS4-HMAC-SHA256 Credential={}/{scope}, SignedHeaders={signed_headers}, Signature={signature}",
            self.credentials.access_key_id
        );
        Signature {
            canonical_request,
            string_to_sign,
            signed_headers,
            signature,
            authorization,
        }
    }

    /// Signs an outgoing call in place: adds `x-amz-date`, `x-amz-security-token` (for
    /// temporary credentials) and `authorization`, replacing any earlier ones. `headers`
    /// holds the pseudo-headers `:method`, `:path` and `:authority`.
    pub fn sign(&self, headers: &mut Vec<Header>, body: &[u8], now_ms: u64) {
        headers.retain(|(k, _)| {
            !k.eq_ignore_ascii_case("authorization")
                && !k.eq_ignore_ascii_case("x-amz-date")
                && !k.eq_ignore_ascii_case("x-amz-security-token")
        });
        let (stamp, _) = amz_date(now_ms);
        headers.push(("x-amz-date".into(), stamp.clone()));
        let payload_hash = sha256_hex(body);
        // S3 requires the payload's hash as a header, signed with the others.
        if self.service == "s3" {
            headers.retain(|(k, _)| !k.eq_ignore_ascii_case("x-amz-content-sha256"));
            headers.push(("x-amz-content-sha256".into(), payload_hash.clone()));
        }
        if let Some(token) = &self.credentials.session_token {
            headers.push(("x-amz-security-token".into(), token.clone()));
        }
        let pseudo = |name: &str| {
            headers
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
                .unwrap_or_default()
        };
        let sig = self.signature(
            pseudo(":method"),
            pseudo(":path"),
            headers,
            &payload_hash,
            &stamp,
        );
        headers.push(("authorization".into(), sig.authorization));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EMPTY: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
    const STAMP: &str = "20150830T123600Z";

    fn suite_signer() -> Signer {
        Signer::new(
            "us-east-1",
            "service",
            Credentials {
                access_key_id: "AKIDEXAMPLE".into(),
                secret_access_key: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY".into(),
                session_token: None,
            },
        )
    }

    use crate::http::headers_of as h;

    /// AWS's published Signature Version 4 test suite (service `service`, us-east-1,
    /// 2015-08-30T12:36:00Z, the example key pair).
    #[test]
    fn aws_test_suite_vectors() {
        let base = [("Host", "example.amazonaws.com"), ("X-Amz-Date", STAMP)];
        for (name, method, path, want) in [
            (
                "get-vanilla",
                "GET",
                "/",
                "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31",
            ),
            (
                "get-vanilla-query-order-key-case",
                "GET",
                "/?Param2=value2&Param1=value1",
                "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500",
            ),
            (
                "get-utf8",
                "GET",
                "/\u{1234}",
                "8318018e0b0f223aa2bbf98705b62bb787dc9c0e678f255a891fd03141be5d85",
            ),
            (
                "post-vanilla",
                "POST",
                "/",
                "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b",
            ),
        ] {
            let sig = suite_signer().signature(method, path, &h(&base), EMPTY, STAMP);
            assert_eq!(sig.signed_headers, "host;x-amz-date", "{name}");
            assert_eq!(sig.signature, want, "{name}");
        }
    }

    #[test]
    fn get_vanilla_intermediate_values() {
        let base = h(&[("Host", "example.amazonaws.com"), ("X-Amz-Date", STAMP)]);
        let sig = suite_signer().signature("GET", "/", &base, EMPTY, STAMP);
        assert_eq!(
            sig.canonical_request,
            format!("GET\n/\n\nhost:example.amazonaws.com\nx-amz-date:{STAMP}\n\nhost;x-amz-date\n{EMPTY}")
        );
        assert_eq!(
            sig.string_to_sign,
            "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\nbb579772317eb040ac9ed261061d46c1f17a8133879d6129b6e1c25292927e63"
        );
        assert_eq!(
            sig.authorization,
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"
        );
    }

    #[test]
    fn canonical_uri_table() {
        for (path, want) in [
            ("/", "/"),
            ("", "/"),
            (
                "/2015-03-31/functions/hello/invocations",
                "/2015-03-31/functions/hello/invocations",
            ),
            ("/a/./b/../c", "/a/c"),
            ("/a/.", "/a/"),
            ("/a/b/..", "/a/"),
            ("/a//b", "/a/b"),
            ("/a/b/", "/a/b/"),
            ("/with space", "/with%20space"),
            ("/already%20encoded", "/already%2520encoded"),
            ("/colon:star*", "/colon%3Astar%2A"),
        ] {
            assert_eq!(canonical_uri(path), want, "{path}");
        }
    }

    #[test]
    fn canonical_query_table() {
        for (query, want) in [
            ("", ""),
            ("Qualifier=%24LATEST", "Qualifier=%24LATEST"),
            ("b=2&a=1&a=0", "a=0&a=1&b=2"),
            ("k=a+b&k2=a%20b", "k=a%20b&k2=a%20b"),
            ("flag", "flag="),
            ("x=%7e~", "x=~~"),
        ] {
            assert_eq!(canonical_query(query), want, "{query}");
        }
    }

    #[test]
    fn sign_adds_date_token_and_authorization_and_reuses_the_day_key() {
        let signer = Signer::new(
            "eu-west-1",
            LAMBDA_SERVICE,
            Credentials {
                access_key_id: "AKIDEXAMPLE".into(),
                secret_access_key: "secret".into(),
                session_token: Some("token".into()),
            },
        );
        let mut headers = h(&[
            (":method", "POST"),
            (":path", "/2015-03-31/functions/hello/invocations"),
            (":authority", "lambda.eu-west-1.amazonaws.com"),
            ("content-type", "application/json"),
            ("x-amz-invocation-type", "RequestResponse"),
            ("user-agent", "AmazonAPIGateway_local"),
            ("authorization", "stale"),
        ]);
        // 2015-08-30T12:36:00Z
        signer.sign(&mut headers, b"{}", 1_440_938_160_000);
        let get = |n: &str| crate::http::header(&headers, n).unwrap().to_string();
        assert_eq!(get("x-amz-date"), STAMP);
        assert_eq!(get("x-amz-security-token"), "token");
        let auth = get("authorization");
        assert!(auth.starts_with("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/eu-west-1/lambda/aws4_request, SignedHeaders=content-type;host;x-amz-date;x-amz-invocation-type;x-amz-security-token, Signature="), "{auth}");
        assert_eq!(
            headers.iter().filter(|(k, _)| k == "authorization").count(),
            1
        );
        // The same day signs with the cached key and gives the same answer.
        let again = signer.signature("POST", "/", &headers, EMPTY, STAMP);
        let fresh = Signer::new("eu-west-1", LAMBDA_SERVICE, signer.credentials.clone())
            .signature("POST", "/", &headers, EMPTY, STAMP);
        assert_eq!(again, fresh);
        // The next day derives a new key.
        let next = signer.signature("POST", "/", &headers, EMPTY, "20150831T000000Z");
        assert_ne!(next.signature, again.signature);
    }

    #[test]
    fn debug_output_never_shows_secrets() {
        let signer = Signer::new(
            "us-east-1",
            LAMBDA_SERVICE,
            Credentials {
                access_key_id: "AKIDEXAMPLE".into(),
                secret_access_key: "very-secret-value".into(),
                session_token: Some("session-token-value".into()),
            },
        );
        let text = format!("{signer:?}");
        assert!(text.contains("AKIDEXAMPLE"));
        assert!(!text.contains("very-secret-value") && !text.contains("session-token-value"));
    }

    #[test]
    fn amz_date_table() {
        for (ms, stamp, day) in [
            (0, "19700101T000000Z", "19700101"),
            (1_440_938_160_000, STAMP, "20150830"),
            (1_806_019_199_999, "20270325T235959Z", "20270325"),
        ] {
            assert_eq!(amz_date(ms), (stamp.to_string(), day.to_string()));
        }
    }
}
