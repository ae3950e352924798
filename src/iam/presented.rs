//! A SigV4 signature as a client presents it: in the `Authorization` header (with
//! `X-Amz-Date`, `X-Amz-Security-Token`, `X-Amz-Content-Sha256`) or in a presigned query
//! (`X-Amz-Algorithm`, `X-Amz-Credential`, `X-Amz-Date`, `X-Amz-Expires`,
//! `X-Amz-SignedHeaders`, `X-Amz-Signature`, `X-Amz-Security-Token`).
//!
//! Owns: reading those parts without trusting them (bounded lengths, every part checked),
//! the credential scope, the signed header names, and the path the canonical request is
//! built from (a presigned query without its signature). Must not: verify anything.

use super::{Failure, MAX_PRESIGNED_EXPIRES_S};
use crate::http::{header, Header};

/// Longest `Authorization` header or presigned query read.
const MAX_AUTH_BYTES: usize = 8192;
/// Most headers a signature may name.
const MAX_SIGNED_HEADERS: usize = 64;
const ALGORITHM: &str = "AWS4-HMAC-SHA256";

/// `AKID/yyyymmdd/region/service/aws4_request`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope {
    pub access_key_id: String,
    pub day: String,
    pub region: String,
    pub service: String,
}

impl Scope {
    fn parse(credential: &str) -> Result<Scope, Failure> {
        let parts: Vec<&str> = credential.split('/').collect();
        match parts.as_slice() {
            [key, day, region, service, "aws4_request"]
                if !key.is_empty()
                    && day.len() == 8
                    && day.bytes().all(|b| b.is_ascii_digit())
                    && !region.is_empty()
                    && !service.is_empty() =>
            {
                Ok(Scope {
                    access_key_id: key.to_string(),
                    day: day.to_string(),
                    region: region.to_string(),
                    service: service.to_string(),
                })
            }
            _ => Err(Failure::Incomplete(format!(
                "Credential should be of the form AKID/yyyymmdd/region/service/aws4_request, not '{credential}'."
            ))),
        }
    }
}

/// What the client sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Presented {
    pub scope: Scope,
    pub signed_headers: Vec<String>,
    /// Lower-case hex, as sent.
    pub signature: String,
    pub stamp: String,
    pub token: Option<String>,
    pub content_sha256: Option<String>,
    /// Presigned requests only.
    pub expires_s: Option<u64>,
    /// The path and query the canonical request is built from.
    pub canonical_path: String,
}

fn signed_names(list: &str) -> Result<Vec<String>, Failure> {
    let names: Vec<String> = list.split(';').map(str::to_ascii_lowercase).collect();
    if names.is_empty()
        || names.len() > MAX_SIGNED_HEADERS
        || names.iter().any(|n| n.is_empty() || n.contains([' ', ':']))
    {
        return Err(Failure::Incomplete(format!(
            "SignedHeaders should be a list of header names separated by ';', not '{list}'."
        )));
    }
    if !names.iter().any(|n| n == "host") {
        return Err(Failure::Incomplete(
            "'Host' must be a signed header.".to_string(),
        ));
    }
    Ok(names)
}

fn hex_signature(s: &str) -> Result<String, Failure> {
    if s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(s.to_ascii_lowercase())
    } else {
        Err(Failure::BadSignature)
    }
}

impl Presented {
    /// Reads the signature of a request (`path` with its query, as sent).
    pub fn read(path: &str, headers: &[Header]) -> Result<Presented, Failure> {
        match header(headers, "authorization") {
            Some(auth) => Presented::from_header(auth, path, headers),
            None => Presented::from_query(path).unwrap_or(Err(Failure::Missing)),
        }
    }

    fn from_header(auth: &str, path: &str, headers: &[Header]) -> Result<Presented, Failure> {
        if auth.len() > MAX_AUTH_BYTES {
            return Err(Failure::Incomplete("Authorization header too long.".into()));
        }
        let Some(params) = auth.trim().strip_prefix(ALGORITHM) else {
            return Err(Failure::Incomplete(format!(
                "Authorization header requires 'Credential', 'Signature' and 'SignedHeaders' parameters of the {ALGORITHM} algorithm."
            )));
        };
        let (mut credential, mut signed, mut signature) = (None, None, None);
        for part in params.split(',') {
            match part.trim().split_once('=') {
                Some(("Credential", v)) => credential = Some(v.trim()),
                Some(("SignedHeaders", v)) => signed = Some(v.trim()),
                Some(("Signature", v)) => signature = Some(v.trim()),
                _ => {}
            }
        }
        let missing: Vec<&str> = [
            ("Credential", credential),
            ("Signature", signature),
            ("SignedHeaders", signed),
        ]
        .iter()
        .filter(|(_, v)| v.is_none_or(str::is_empty))
        .map(|(n, _)| *n)
        .collect();
        if !missing.is_empty() {
            let list = missing
                .iter()
                .map(|n| format!("Authorization header requires '{n}' parameter."))
                .collect::<Vec<_>>()
                .join(" ");
            return Err(Failure::Incomplete(list));
        }
        let stamp = header(headers, "x-amz-date").ok_or_else(|| {
            Failure::Incomplete(
                "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header.".into(),
            )
        })?;
        Ok(Presented {
            scope: Scope::parse(credential.unwrap_or_default())?,
            signed_headers: signed_names(signed.unwrap_or_default())?,
            signature: hex_signature(signature.unwrap_or_default())?,
            stamp: stamp.trim().to_string(),
            token: header(headers, "x-amz-security-token").map(str::to_string),
            content_sha256: header(headers, "x-amz-content-sha256").map(|v| v.trim().to_string()),
            expires_s: None,
            canonical_path: path.to_string(),
        })
    }

    /// `None` when the query is not presigned.
    fn from_query(path: &str) -> Option<Result<Presented, Failure>> {
        let (path_only, raw) = path.split_once('?')?;
        if raw.len() > MAX_AUTH_BYTES * 2 {
            return Some(Err(Failure::Incomplete("Query string too long.".into())));
        }
        let pairs = crate::query::parse(raw);
        let get = |name: &str| {
            pairs
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
        };
        if get("X-Amz-Algorithm") != Some(ALGORITHM) {
            return None;
        }
        Some((|| {
            let need = |name: &str| {
                get(name).ok_or_else(|| {
                    Failure::Incomplete(format!(
                        "AWS query-string parameters must include '{name}'."
                    ))
                })
            };
            let expires = need("X-Amz-Expires")?
                .parse::<u64>()
                .ok()
                .filter(|e| (1..=MAX_PRESIGNED_EXPIRES_S).contains(e))
                .ok_or_else(|| {
                    Failure::Incomplete(format!(
                        "X-Amz-Expires must be a number of seconds from 1 to {MAX_PRESIGNED_EXPIRES_S}."
                    ))
                })?;
            // The canonical query is the one sent, without the signature.
            let kept: Vec<&str> = raw
                .split('&')
                .filter(|p| !p.starts_with("X-Amz-Signature="))
                .collect();
            Ok(Presented {
                scope: Scope::parse(need("X-Amz-Credential")?)?,
                signed_headers: signed_names(need("X-Amz-SignedHeaders")?)?,
                signature: hex_signature(need("X-Amz-Signature")?)?,
                stamp: need("X-Amz-Date")?.to_string(),
                token: get("X-Amz-Security-Token").map(str::to_string),
                content_sha256: None,
                expires_s: Some(expires),
                canonical_path: format!("{path_only}?{}", kept.join("&")),
            })
        })())
    }

    /// The signed headers' values as sent (`host` from `:authority`), several of one name
    /// joined with commas; `None` when one of them is missing.
    pub fn signed_values(&self, headers: &[Header]) -> Option<Vec<(String, String)>> {
        self.signed_headers
            .iter()
            .map(|name| {
                let wire = if name == "host" {
                    ":authority"
                } else {
                    name.as_str()
                };
                let values: Vec<&str> = headers
                    .iter()
                    .filter(|(k, _)| k.eq_ignore_ascii_case(wire))
                    .map(|(_, v)| v.as_str())
                    .collect();
                (!values.is_empty()).then(|| (name.clone(), values.join(",")))
            })
            .collect()
    }

    /// Whether verifying needs the body's hash (no `X-Amz-Content-Sha256` declared).
    pub fn needs_body(&self) -> bool {
        self.content_sha256.is_none()
    }
}
