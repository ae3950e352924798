//! `contentHandling` of non-proxy integrations: how a payload crosses between text and
//! binary on its way to the integration and back, given the API's binary media types.
//!
//! Owns: the request and response conversion tables API Gateway documents (base64 in both
//! directions). Must not: choose templates or know where payloads come from.

use std::borrow::Cow;

use base64::Engine;
use serde_json::Value as Json;

use crate::error::ConfigError;

/// An integration's or integration response's `contentHandling`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ContentHandling {
    /// Absent: payloads pass as they are, except where the client's `Accept` asks for the
    /// other kind (responses only).
    #[default]
    Passthrough,
    /// `CONVERT_TO_BINARY`: text is taken as base64 and decoded.
    ToBinary,
    /// `CONVERT_TO_TEXT`: binary data is base64-encoded.
    ToText,
}

impl ContentHandling {
    /// Reads `contentHandling` of `spec`; `at` locates `spec`.
    pub fn compile(spec: &Json, at: &str, errors: &mut Vec<ConfigError>) -> ContentHandling {
        match spec.get("contentHandling") {
            None | Some(Json::Null) => ContentHandling::Passthrough,
            Some(v) => match v.as_str().map(str::to_ascii_uppercase).as_deref() {
                Some("CONVERT_TO_BINARY") => ContentHandling::ToBinary,
                Some("CONVERT_TO_TEXT") => ContentHandling::ToText,
                _ => {
                    errors.push(ConfigError::new(
                        format!("{at}.contentHandling"),
                        "expected CONVERT_TO_BINARY or CONVERT_TO_TEXT",
                    ));
                    ContentHandling::Passthrough
                }
            },
        }
    }
}

/// A payload after conversion.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Payload<'a> {
    /// Text: templates apply.
    Text(Cow<'a, str>),
    /// Binary: passed through as bytes, templates do not apply.
    Binary(Cow<'a, [u8]>),
}

fn decode(text: &[u8]) -> Result<Vec<u8>, String> {
    let trimmed: Vec<u8> = text
        .iter()
        .copied()
        .filter(|b| !b.is_ascii_whitespace())
        .collect();
    base64::engine::general_purpose::STANDARD
        .decode(trimmed)
        .map_err(|e| format!("CONVERT_TO_BINARY: the payload is not base64 ({e})"))
}

fn encode(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn as_text(body: &[u8]) -> Payload<'_> {
    Payload::Text(String::from_utf8_lossy(body))
}

/// The integration request payload. `binary`: the request's `Content-Type` is one of the
/// binary media types, or its body is not UTF-8.
pub fn request(
    body: &[u8],
    binary: bool,
    handling: ContentHandling,
) -> Result<Payload<'_>, String> {
    Ok(match (binary, handling) {
        (true, ContentHandling::ToText) => Payload::Text(Cow::Owned(encode(body))),
        (true, _) => Payload::Binary(Cow::Borrowed(body)),
        (false, ContentHandling::ToBinary) => Payload::Binary(Cow::Owned(decode(body)?)),
        (false, _) => as_text(body),
    })
}

/// The method response payload. `binary`: the integration's answer is binary (its
/// `Content-Type` is a binary media type, or it is not UTF-8); `accept_binary`: the client's
/// first `Accept` type is a binary media type.
pub fn response(
    body: &[u8],
    binary: bool,
    accept_binary: bool,
    handling: ContentHandling,
) -> Result<Payload<'_>, String> {
    Ok(match (binary, handling) {
        (true, ContentHandling::ToText) => Payload::Text(Cow::Owned(encode(body))),
        (true, ContentHandling::ToBinary) => Payload::Binary(Cow::Borrowed(body)),
        (true, ContentHandling::Passthrough) if accept_binary => {
            Payload::Binary(Cow::Borrowed(body))
        }
        (true, ContentHandling::Passthrough) => Payload::Text(Cow::Owned(encode(body))),
        (false, ContentHandling::ToBinary) => Payload::Binary(Cow::Owned(decode(body)?)),
        (false, ContentHandling::Passthrough) if accept_binary => {
            Payload::Binary(Cow::Owned(decode(body)?))
        }
        (false, _) => as_text(body),
    })
}

/// The method response payload for a Lambda function's result, which is always text (JSON).
/// Where the table decodes it (`CONVERT_TO_BINARY`, or a binary `Accept` without
/// `contentHandling`), a result that is a JSON string is decoded from the string's contents:
/// a function returns its base64 text as a string.
pub fn lambda_response(
    payload: &[u8],
    accept_binary: bool,
    handling: ContentHandling,
) -> Result<Payload<'_>, String> {
    let decodes = handling == ContentHandling::ToBinary
        || (handling == ContentHandling::Passthrough && accept_binary);
    if decodes {
        if let Ok(text) = serde_json::from_slice::<String>(payload) {
            return Ok(Payload::Binary(Cow::Owned(decode(text.as_bytes())?)));
        }
    }
    response(payload, false, accept_binary, handling)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\x00";
    const PNG_B64: &str = "iVBORw0KGgoA";

    fn text(s: &str) -> Payload<'static> {
        Payload::Text(Cow::Owned(s.to_string()))
    }
    fn bin(b: &[u8]) -> Payload<'static> {
        Payload::Binary(Cow::Owned(b.to_vec()))
    }

    /// API Gateway's request table: payload kind, contentHandling, what the integration gets.
    #[test]
    fn request_table() {
        use ContentHandling::*;
        for (body, binary, handling, want) in [
            (b"hello".as_slice(), false, Passthrough, Ok(text("hello"))),
            (PNG_B64.as_bytes(), false, ToBinary, Ok(bin(PNG))),
            (b"hello".as_slice(), false, ToText, Ok(text("hello"))),
            (PNG, true, Passthrough, Ok(bin(PNG))),
            (PNG, true, ToBinary, Ok(bin(PNG))),
            (PNG, true, ToText, Ok(text(PNG_B64))),
        ] {
            assert_eq!(
                request(body, binary, handling),
                want,
                "{handling:?} {binary}"
            );
        }
        assert!(request(b"not base64!", false, ToBinary)
            .unwrap_err()
            .contains("not base64"));
    }

    /// API Gateway's response table: answer kind, Accept kind, contentHandling, reply.
    #[test]
    fn response_table() {
        use ContentHandling::*;
        for (body, binary, accept_binary, handling, want) in [
            (b"{}".as_slice(), false, false, Passthrough, Ok(text("{}"))),
            (b"{}".as_slice(), false, false, ToText, Ok(text("{}"))),
            (PNG_B64.as_bytes(), false, false, ToBinary, Ok(bin(PNG))),
            (PNG_B64.as_bytes(), false, true, Passthrough, Ok(bin(PNG))),
            (PNG_B64.as_bytes(), false, true, ToBinary, Ok(bin(PNG))),
            (b"{}".as_slice(), false, true, ToText, Ok(text("{}"))),
            (PNG, true, false, Passthrough, Ok(text(PNG_B64))),
            (PNG, true, false, ToBinary, Ok(bin(PNG))),
            (PNG, true, false, ToText, Ok(text(PNG_B64))),
            (PNG, true, true, Passthrough, Ok(bin(PNG))),
            (PNG, true, true, ToBinary, Ok(bin(PNG))),
            (PNG, true, true, ToText, Ok(text(PNG_B64))),
        ] {
            assert_eq!(
                response(body, binary, accept_binary, handling),
                want,
                "{handling:?} binary={binary} accept_binary={accept_binary}"
            );
        }
        assert!(response(b"{\"a\":1}", false, true, Passthrough).is_err());
    }

    #[test]
    fn lambda_results_are_text_and_strings_are_decoded_from_their_contents() {
        use ContentHandling::*;
        let quoted = format!("\"{PNG_B64}\"");
        for (payload, accept_binary, handling, want) in [
            (quoted.as_bytes(), false, ToBinary, Ok(bin(PNG))),
            (quoted.as_bytes(), true, Passthrough, Ok(bin(PNG))),
            (PNG_B64.as_bytes(), false, ToBinary, Ok(bin(PNG))),
            (quoted.as_bytes(), false, Passthrough, Ok(text(&quoted))),
            (quoted.as_bytes(), true, ToText, Ok(text(&quoted))),
        ] {
            assert_eq!(
                lambda_response(payload, accept_binary, handling),
                want,
                "{handling:?} {accept_binary}"
            );
        }
        assert!(lambda_response(b"{\"a\": 1}", false, ToBinary).is_err());
    }

    #[test]
    fn settings_are_read_and_checked() {
        let mut errors = Vec::new();
        for (spec, want) in [
            (serde_json::json!({}), ContentHandling::Passthrough),
            (
                serde_json::json!({"contentHandling": "CONVERT_TO_BINARY"}),
                ContentHandling::ToBinary,
            ),
            (
                serde_json::json!({"contentHandling": "convert_to_text"}),
                ContentHandling::ToText,
            ),
        ] {
            assert_eq!(ContentHandling::compile(&spec, "x", &mut errors), want);
        }
        assert!(errors.is_empty());
        ContentHandling::compile(
            &serde_json::json!({"contentHandling": "ZIP"}),
            "x",
            &mut errors,
        );
        assert_eq!(errors[0].location, "x.contentHandling");
    }
}
