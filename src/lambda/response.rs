//! The Lambda proxy response contract and its mapping to the client reply.
//!
//! Owns: strict parsing of `{statusCode, headers, multiValueHeaders, body, isBase64Encoded}`
//! (anything else is a malformed response, as API Gateway treats it), the header merge rule,
//! header remapping, the binary decision (first `Accept` entry against the API's binary media
//! types) and the default `Content-Type`. Must not: add gateway headers (request id, CORS):
//! the pipeline adds those to every reply alike.

use std::borrow::Cow;
use std::collections::BTreeMap;

use base64::Engine;
use serde::Deserialize;

use crate::error::GatewayError;
use crate::http::Reply;

#[derive(Deserialize)]
#[serde(untagged)]
enum StatusCode<'a> {
    Number(serde_json::Number),
    #[serde(borrow)]
    Text(Cow<'a, str>),
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Scalar<'a> {
    #[serde(borrow)]
    Text(Cow<'a, str>),
    Number(serde_json::Number),
    Bool(bool),
}

impl Scalar<'_> {
    fn to_text(&self) -> Cow<'_, str> {
        match self {
            Scalar::Text(s) => Cow::Borrowed(s.as_ref()),
            Scalar::Number(n) => Cow::Owned(n.to_string()),
            Scalar::Bool(b) => Cow::Borrowed(if *b { "true" } else { "false" }),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct ProxyResponse<'a> {
    #[serde(default, borrow)]
    status_code: Option<StatusCode<'a>>,
    #[serde(default, borrow)]
    headers: Option<BTreeMap<Cow<'a, str>, Option<Scalar<'a>>>>,
    #[serde(default, borrow)]
    multi_value_headers: Option<BTreeMap<Cow<'a, str>, Option<Vec<Scalar<'a>>>>>,
    #[serde(default, borrow)]
    body: Option<Cow<'a, str>>,
    #[serde(default)]
    is_base64_encoded: Option<bool>,
}

/// A mapping failure: the error the client gets and the reason for the log line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MappingError {
    pub error: GatewayError,
    pub reason: String,
}

fn malformed(reason: impl Into<String>) -> MappingError {
    MappingError {
        error: GatewayError::MalformedProxyResponse,
        reason: format!("Malformed Lambda proxy response: {}", reason.into()),
    }
}

/// A function's base64 response body, decoded; a body that is not base64 fails the
/// request as API Gateway fails it.
pub fn decode_base64_body(text: &str) -> Result<Vec<u8>, MappingError> {
    base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .map_err(|e| MappingError {
            error: GatewayError::BinaryDecodeFailed,
            reason: format!("Unable to base64-decode the response body: {e}"),
        })
}

/// Header values one proxy response may carry (keeps the merge below cheap; Envoy would not
/// accept many more on a response either).
pub const MAX_RESPONSE_HEADERS: usize = 500;

/// Response headers a Lambda may not set directly; they reach the client renamed.
const REMAPPED: [&str; 4] = ["connection", "content-length", "date", "server"];
/// Response headers that are dropped.
const DROPPED: [&str; 1] = ["transfer-encoding"];

fn valid_header(name: &str, value: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_graphic() && b != b':' && b != b'"' && b != b',' || b == b'-')
        && !value.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0)
}

/// The media type of an `Accept` or `Content-Type` value's first entry, lower-cased,
/// parameters removed.
pub fn first_media_type(value: &str) -> String {
    let first = value.split(',').next().unwrap_or_default();
    first
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase()
}

/// Whether `media` (already normalised) is one of the binary media types. A configured
/// `type/*` matches any subtype and `*/*` matches everything; a left-side wildcard such as
/// `*/json` matches nothing, not even an `Accept` of `*/json` written the same way, as in
/// API Gateway.
pub fn is_binary(media: &str, binary_media_types: &[String]) -> bool {
    if media.is_empty() {
        return false;
    }
    binary_media_types.iter().any(|t| {
        let t = t.to_ascii_lowercase();
        if t == "*/*" {
            return true;
        }
        match t.strip_suffix("/*") {
            Some(kind) if kind != "*" => media.split_once('/').is_some_and(|(mk, _)| mk == kind),
            _ if t.starts_with("*/") => false,
            _ => t == media,
        }
    })
}

/// Maps a proxy response payload to the reply. `accept` is the request's `Accept` header.
pub fn map(
    payload: &[u8],
    binary_media_types: &[String],
    accept: Option<&str>,
) -> Result<Reply, MappingError> {
    let text = std::str::from_utf8(payload).map_err(|_| malformed("output is not UTF-8"))?;
    // One parse when the output is well formed; a second, into a plain JSON value, only to
    // say what is wrong with it. (A derived struct also reads a JSON array, so an output
    // that does not start as an object is refused even when it parses.)
    let resp: ProxyResponse = match serde_json::from_str(text) {
        Ok(resp) if text.trim_start().starts_with('{') => resp,
        parsed => {
            let value: serde_json::Value =
                serde_json::from_str(text).map_err(|e| malformed(format!("not JSON ({e})")))?;
            if !value.is_object() {
                return Err(malformed("output is not a JSON object"));
            }
            return Err(malformed(match parsed {
                Err(e) => e.to_string(),
                Ok(_) => "output is not a JSON object".to_string(),
            }));
        }
    };

    let status = match &resp.status_code {
        None => 200,
        Some(StatusCode::Number(n)) => n
            .as_u64()
            .and_then(|n| u16::try_from(n).ok())
            .ok_or_else(|| malformed(format!("statusCode {n} is not an integer")))?,
        Some(StatusCode::Text(s)) => s
            .trim()
            .parse::<u16>()
            .map_err(|_| malformed(format!("statusCode \"{s}\" is not an integer")))?,
    };
    // An informational status cannot be a final answer (100 would break the client's
    // framing, 101 would hand the connection over): API Gateway refuses such output too.
    if !(200..=599).contains(&status) {
        return Err(malformed(format!("statusCode {status} is out of range")));
    }

    let count = resp.headers.as_ref().map_or(0, BTreeMap::len)
        + resp
            .multi_value_headers
            .iter()
            .flatten()
            .map(|(_, v)| v.as_ref().map_or(1, Vec::len))
            .sum::<usize>();
    if count > MAX_RESPONSE_HEADERS {
        return Err(malformed(format!(
            "{count} header values, more than {MAX_RESPONSE_HEADERS}"
        )));
    }
    let mut headers: Vec<(String, String)> = Vec::with_capacity(count);
    for (name, values) in resp.multi_value_headers.iter().flatten() {
        for v in values.iter().flatten() {
            headers.push((name.to_string(), v.to_text().into_owned()));
        }
    }
    for (name, value) in resp.headers.iter().flatten() {
        let Some(value) = value else { continue };
        let value = value.to_text();
        let existing = resp
            .multi_value_headers
            .iter()
            .flatten()
            .find(|(k, _)| k.eq_ignore_ascii_case(name));
        match existing {
            Some((multi_name, values)) => {
                let dup = values.iter().flatten().any(|v| v.to_text() == value);
                if !dup {
                    headers.push((multi_name.to_string(), value.into_owned()));
                }
            }
            None => headers.push((name.to_string(), value.into_owned())),
        }
    }
    let mut mapped = Vec::with_capacity(headers.len() + 1);
    for (name, value) in headers {
        if !valid_header(&name, &value) {
            return Err(malformed(format!("invalid header {name:?}")));
        }
        let lower = name.to_ascii_lowercase();
        if DROPPED.contains(&lower.as_str()) {
            continue;
        }
        if REMAPPED.contains(&lower.as_str()) {
            mapped.push((format!("x-amzn-Remapped-{name}"), value));
        } else {
            mapped.push((name, value));
        }
    }

    let body_text = resp.body.as_deref().unwrap_or_default();
    let wants_binary = resp.is_base64_encoded == Some(true)
        && is_binary(
            &first_media_type(accept.unwrap_or_default()),
            binary_media_types,
        );
    let body = if wants_binary {
        decode_base64_body(body_text)?
    } else {
        body_text.as_bytes().to_vec()
    };

    let mut reply = Reply {
        status,
        headers: mapped,
        body,
    };
    reply.set_default_header("Content-Type", "application/json");
    Ok(reply)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(payload: &str) -> Reply {
        map(payload.as_bytes(), &[], None).unwrap()
    }

    fn err(payload: &str) -> MappingError {
        map(payload.as_bytes(), &[], None).unwrap_err()
    }

    #[test]
    fn status_rules() {
        for (payload, status) in [
            (r#"{"statusCode":200}"#, 200),
            (r#"{"statusCode":"201"}"#, 201),
            (r#"{"headers":{"test-header":"value"}}"#, 200),
            (r#"{"statusCode":404,"body":"nope"}"#, 404),
            (r#"{"statusCode":204,"headers":null,"body":null}"#, 204),
        ] {
            assert_eq!(ok(payload).status, status, "{payload}");
        }
    }

    #[test]
    fn malformed_table() {
        for payload in [
            r#"{"statusCode":200,"wrongValue":"value"}"#,
            r#"{"statusCode":"test"}"#,
            r#"{"statusCode":200.5}"#,
            r#"{"statusCode":99}"#,
            r#"{"statusCode":100}"#,
            r#"{"statusCode":"101"}"#,
            r#"{"statusCode":199}"#,
            r#"{"statusCode":600}"#,
            r#"{"statusCode":200,"multiValueHeaders":{"a":"notalist"}}"#,
            r#""justAString""#,
            "not json",
            "null",
            "[1]",
            "",
            r#"{"statusCode":200,"body":{"a":1}}"#,
            r#"{"statusCode":200,"cookies":["a=b"]}"#,
            r#"{"statusCode":200,"headers":{"x":"a\r\nb"}}"#,
        ] {
            let e = err(payload);
            assert_eq!(e.error, GatewayError::MalformedProxyResponse, "{payload}");
            assert!(
                e.reason.starts_with("Malformed Lambda proxy response"),
                "{payload}"
            );
        }
        // What the reason says: not JSON, JSON but not an object (arrays included, which a
        // derived struct would otherwise read field by field), or the field that is wrong.
        for (payload, says) in [
            ("not json", "not JSON ("),
            ("", "not JSON ("),
            ("null", "not a JSON object"),
            (r#""justAString""#, "not a JSON object"),
            ("[1]", "not a JSON object"),
            ("[]", "not a JSON object"),
            ("[200]", "not a JSON object"),
            (" \n[200, null, null]", "not a JSON object"),
            (r#"{"statusCode":200,"wrongValue":"value"}"#, "wrongValue"),
            (r#"{"statusCode":200,"statusCode":201}"#, "duplicate field"),
        ] {
            let e = err(payload);
            assert!(e.reason.contains(says), "{payload}: {}", e.reason);
        }
    }

    #[test]
    fn too_many_header_values_are_malformed() {
        let values: Vec<String> = (0..=MAX_RESPONSE_HEADERS)
            .map(|i| format!("\"{i}\""))
            .collect();
        let payload = format!(
            r#"{{"statusCode":200,"multiValueHeaders":{{"x":[{}]}}}}"#,
            values.join(",")
        );
        let e = err(&payload);
        assert_eq!(e.error, GatewayError::MalformedProxyResponse);
        let fewer = format!(
            r#"{{"statusCode":200,"multiValueHeaders":{{"x":[{}]}}}}"#,
            values[1..].join(",")
        );
        assert_eq!(ok(&fewer).status, 200);
    }

    #[test]
    fn empty_body_and_default_content_type() {
        let r = ok(r#"{"statusCode":200}"#);
        assert!(r.body.is_empty());
        assert_eq!(r.header("content-type"), Some("application/json"));
        let r = ok(r#"{"headers":{"Content-Type":"text/html"},"body":"<p>"}"#);
        assert_eq!(r.header("content-type"), Some("text/html"));
        assert_eq!(r.body_text(), "<p>");
    }

    #[test]
    fn header_merge_and_scalars() {
        let r = ok(
            r#"{"multiValueHeaders":{"tesT-Multi":["value-multi"],"Set-Cookie":["a=1","b=2"]},
                        "headers":{"test-multi":"value-solo","set-cookie":"a=1","header-bool":true,"n":5}}"#,
        );
        let got: Vec<(&str, &str)> = r
            .headers
            .iter()
            .map(|(a, b)| (a.as_str(), b.as_str()))
            .collect();
        assert_eq!(
            got,
            vec![
                ("Set-Cookie", "a=1"),
                ("Set-Cookie", "b=2"),
                ("tesT-Multi", "value-multi"),
                ("header-bool", "true"),
                ("n", "5"),
                ("tesT-Multi", "value-solo"),
                ("Content-Type", "application/json"),
            ]
        );
    }

    #[test]
    fn hop_headers_remapped_or_dropped() {
        let r = ok(
            r#"{"headers":{"Content-Length":"5","Server":"x","Transfer-Encoding":"chunked","Date":"d","Connection":"close"}}"#,
        );
        let names: Vec<&str> = r.headers.iter().map(|(a, _)| a.as_str()).collect();
        assert_eq!(
            names,
            vec![
                "x-amzn-Remapped-Connection",
                "x-amzn-Remapped-Content-Length",
                "x-amzn-Remapped-Date",
                "x-amzn-Remapped-Server",
                "Content-Type"
            ]
        );
    }

    #[test]
    fn binary_rule_uses_first_accept_entry() {
        let types = vec!["image/png".to_string(), "application/*".to_string()];
        let payload = r#"{"isBase64Encoded":true,"body":"iVBORw=="}"#;
        for (accept, binary) in [
            (Some("image/png"), true),
            (Some("image/png,image/*,*/*;q=0.8"), true),
            (Some("image/webp,image/png,*/*;q=0.8"), false),
            (Some("image/jpg"), false),
            (Some("image/*"), false),
            (Some("*/*"), false),
            (None, false),
            (Some("application/whatever"), true),
            (Some("application/*"), true),
        ] {
            let r = map(payload.as_bytes(), &types, accept).unwrap();
            let want: &[u8] = if binary {
                &[0x89, b'P', b'N', b'G']
            } else {
                b"iVBORw=="
            };
            assert_eq!(r.body, want, "{accept:?}");
        }
        // isBase64Encoded false: never decoded.
        let r = map(br#"{"body":"iVBORw=="}"#, &types, Some("image/png")).unwrap();
        assert_eq!(r.body, b"iVBORw==");
        // Invalid base64 with a binary Accept: 500.
        let e = map(
            br#"{"isBase64Encoded":true,"body":"***"}"#,
            &types,
            Some("image/png"),
        )
        .unwrap_err();
        assert_eq!(e.error, GatewayError::BinaryDecodeFailed);
    }

    #[test]
    fn media_type_matching() {
        let t = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(is_binary("image/png", &t(&["*/*"])));
        assert!(!is_binary("application/test", &t(&["*/test"])));
        assert!(!is_binary("*/test", &t(&["*/test"])));
        assert!(is_binary("image/png", &t(&["IMAGE/PNG"])));
        assert!(!is_binary("", &t(&["*/*"])));
        assert_eq!(first_media_type("Image/PNG; q=1, */*"), "image/png");
    }
}
