//! Reading a compact JWS (`header.payload.signature`) without trusting it.
//!
//! Owns: the size bound, the three-part structure, base64url decoding of the header and the
//! payload and the signature, the header fields the verifier needs (`alg`, `kid`) and the
//! claims object. Only asymmetric algorithms are accepted: `none` and the HMAC family are
//! refused here, before any key is looked up. Must not: check signatures or claims (see
//! [`super::verify`]).

use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::Engine;
use serde::Deserialize;
use serde_json::{Map, Value};

use super::keys::Alg;
use super::Refusal;

/// Largest token read; a longer one is refused before it is decoded.
pub const MAX_TOKEN_BYTES: usize = 16 << 10;

/// base64url, with or without padding (issuers differ).
pub(super) const B64URL: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::URL_SAFE,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

#[derive(Debug, Deserialize)]
struct RawHeader {
    alg: String,
    #[serde(default)]
    kid: Option<String>,
}

/// A token split and decoded, nothing verified yet.
#[derive(Debug)]
pub struct Token<'a> {
    pub alg: Alg,
    pub kid: Option<String>,
    /// `header.payload`, the signed bytes.
    pub message: &'a str,
    pub signature: Vec<u8>,
    pub claims: Map<String, Value>,
}

fn malformed(why: impl Into<String>) -> Refusal {
    Refusal::Malformed(why.into())
}

/// Splits and decodes `token`. Linear in its length, which is bounded.
pub fn parse(token: &str) -> Result<Token<'_>, Refusal> {
    if token.len() > MAX_TOKEN_BYTES {
        return Err(malformed(format!(
            "the token has {} bytes, more than {MAX_TOKEN_BYTES}",
            token.len()
        )));
    }
    let mut parts = token.splitn(4, '.');
    let (Some(head), Some(payload), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(malformed("not three dot-separated parts"));
    };
    if head.is_empty() || payload.is_empty() {
        return Err(malformed("an empty part"));
    }
    let header_bytes = B64URL
        .decode(head)
        .map_err(|e| malformed(format!("header is not base64url: {e}")))?;
    let header: RawHeader = serde_json::from_slice(&header_bytes)
        .map_err(|e| malformed(format!("header is not a JSON object with `alg`: {e}")))?;
    let alg = Alg::parse(&header.alg).ok_or_else(|| {
        malformed(format!(
            "algorithm `{}` is not accepted (RS*, PS*, ES256 and ES384 are)",
            header.alg
        ))
    })?;
    if signature.is_empty() {
        return Err(malformed("no signature"));
    }
    let payload_bytes = B64URL
        .decode(payload)
        .map_err(|e| malformed(format!("payload is not base64url: {e}")))?;
    let claims: Map<String, Value> = serde_json::from_slice(&payload_bytes)
        .map_err(|e| malformed(format!("payload is not a JSON object: {e}")))?;
    let signature = B64URL
        .decode(signature)
        .map_err(|e| malformed(format!("signature is not base64url: {e}")))?;
    let message = token
        .get(..head.len() + 1 + payload.len())
        .ok_or_else(|| malformed("cannot split"))?;
    Ok(Token {
        alg,
        kid: header.kid,
        message,
        signature,
        claims,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(s: &str) -> String {
        B64URL.encode(s)
    }

    #[test]
    fn refusals_table() {
        let good_head = b64(r#"{"alg":"RS256","kid":"k1"}"#);
        let claims = b64(r#"{"sub":"u"}"#);
        let cases: Vec<(String, &str)> = vec![
            ("".into(), "three"),
            ("a.b".into(), "three"),
            ("a.b.c.d".into(), "three"),
            (format!("{good_head}..sig"), "empty part"),
            (format!("{good_head}.{claims}."), "no signature"),
            (format!("***.{claims}.sig"), "header is not base64url"),
            (
                format!("{}.{claims}.sig", b64("[1]")),
                "header is not a JSON object",
            ),
            (
                format!("{}.{claims}.sig", b64(r#"{"alg":"none"}"#)),
                "`none` is not accepted",
            ),
            (
                format!("{}.{claims}.sig", b64(r#"{"alg":"HS256"}"#)),
                "`HS256` is not accepted",
            ),
            (
                format!("{good_head}.{}.sig", b64("not json")),
                "payload is not a JSON object",
            ),
            (
                format!("{good_head}.{}.sig", b64("[]")),
                "payload is not a JSON object",
            ),
            (format!("{good_head}.%%%.sig"), "payload is not base64url"),
            ("a".repeat(MAX_TOKEN_BYTES + 1), "more than"),
        ];
        for (token, want) in cases {
            match parse(&token) {
                Err(Refusal::Malformed(why)) => {
                    assert!(why.contains(want), "{token:.60}: {why}")
                }
                other => panic!("{token:.60}: {other:?}"),
            }
        }
    }

    #[test]
    fn good_token_parts() {
        let head = b64(r#"{"alg":"ES256","kid":"k1","typ":"JWT"}"#);
        let payload = b64(r#"{"sub":"u","n":1}"#);
        let token = format!("{head}.{payload}.c2ln");
        let t = parse(&token).unwrap();
        assert_eq!(t.alg, Alg::ES256);
        assert_eq!(t.kid.as_deref(), Some("k1"));
        assert_eq!(t.message, format!("{head}.{payload}"));
        assert_eq!(t.signature, b"sig");
        assert_eq!(t.claims["sub"], "u");
        // Padded base64url is read too.
        let padded_payload = base64::engine::general_purpose::URL_SAFE.encode(r#"{"a":"bc"}"#);
        assert!(padded_payload.ends_with("=="));
        assert!(parse(&format!("{head}.{padded_payload}.c2ln")).is_ok());
    }
}
