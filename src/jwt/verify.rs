//! Verifying a token against an authorizer: the part that can be cached, and the part
//! checked on every request.
//!
//! Owns: picking the issuer by `iss`, the key by `kid` and algorithm, the signature check
//! (see [`super::keys`]), the audience, and reading `exp`, `nbf`, `token_use`
//! and scopes ([`verify`]); then, per request, time against `now` with the clock skew,
//! Cognito's ID-or-access rule and the method's scopes ([`admit`]). Must not: fetch keys,
//! read clocks or build replies.

use serde_json::{Map, Value};

use super::claims;
use super::keys::KeySet;
use super::token;
use super::{Authorizer, Flavor, Refusal};

/// What a valid signature vouches for, cacheable until `exp`.
#[derive(Debug, Clone)]
pub struct Verified {
    /// Index of the issuer (in the gateway's JWKS sources) that signed the token.
    pub issuer: usize,
    /// Every claim as API Gateway passes it on.
    pub claims: Vec<(String, String)>,
    pub exp_s: Option<u64>,
    nbf_s: Option<u64>,
    token_use: Option<String>,
    scopes: Vec<String>,
}

impl Verified {
    /// Approximate bytes held, for the cache budget.
    pub fn weight(&self) -> usize {
        self.claims
            .iter()
            .map(|(k, v)| k.len() + v.len() + 48)
            .sum::<usize>()
            + self.scopes.iter().map(|s| s.len() + 24).sum::<usize>()
            + 128
    }
}

/// The token in an identity header value: the value itself, or what follows `Bearer `.
pub fn token_of(value: &str) -> &str {
    let v = value.trim();
    match v.get(..7) {
        Some(p) if p.eq_ignore_ascii_case("bearer ") => v.get(7..).unwrap_or_default().trim(),
        _ => v,
    }
}

fn seconds(claims: &Map<String, Value>, name: &str) -> Result<Option<u64>, Refusal> {
    match claims.get(name) {
        None => Ok(None),
        Some(v) => v
            .as_u64()
            .or_else(|| {
                v.as_f64()
                    .filter(|f| f.is_finite() && *f >= 0.0)
                    .map(|f| f as u64)
            })
            .map(Some)
            .ok_or_else(|| Refusal::Malformed(format!("`{name}` is not a number of seconds"))),
    }
}

fn strings(v: Option<&Value>) -> Vec<String> {
    match v {
        Some(Value::String(s)) => s.split_whitespace().map(str::to_string).collect(),
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect(),
        _ => Vec::new(),
    }
}

/// Checks the token's structure, issuer, signature and audience. `keys(i)` gives the key
/// set of issuer `i` (in the gateway's sources), if it has been fetched.
pub fn verify<'k>(
    a: &Authorizer,
    issuers: &[&str],
    keys: impl Fn(usize) -> Option<&'k KeySet>,
    raw: &str,
) -> Result<Verified, Refusal> {
    let t = token::parse(raw)?;
    let iss = t
        .claims
        .get("iss")
        .and_then(Value::as_str)
        .ok_or_else(|| Refusal::Malformed("no `iss` claim".into()))?;
    let issuer = a
        .issuers
        .iter()
        .copied()
        .find(|i| issuers.get(*i).is_some_and(|s| *s == iss))
        .ok_or_else(|| Refusal::WrongIssuer(iss.to_string()))?;
    let set = keys(issuer).ok_or(Refusal::NoKeys { issuer })?;
    let key = set
        .find(t.kid.as_deref(), t.alg)
        .ok_or_else(|| Refusal::UnknownKey {
            issuer,
            kid: t.kid.clone().unwrap_or_default(),
        })?;
    if !key.verify(t.alg, t.message.as_bytes(), &t.signature) {
        return Err(Refusal::BadSignature);
    }
    let token_use = t
        .claims
        .get("token_use")
        .and_then(Value::as_str)
        .map(str::to_string);
    if !a.audiences.is_empty() {
        let mut presented = strings(t.claims.get("aud"));
        presented.extend(strings(t.claims.get("client_id")));
        if !presented.iter().any(|p| a.audiences.contains(p)) {
            return Err(Refusal::WrongAudience);
        }
    }
    let mut scopes = strings(t.claims.get("scope"));
    scopes.extend(strings(t.claims.get("scp")));
    Ok(Verified {
        issuer,
        exp_s: seconds(&t.claims, "exp")?,
        nbf_s: seconds(&t.claims, "nbf")?,
        claims: claims::texts(&t.claims),
        token_use,
        scopes,
    })
}

/// Checks what depends on the time and the method: `exp` and `nbf` against `now` with the
/// authorizer's skew, and scopes (Cognito: no scopes wants an ID token, scopes want an
/// access token holding one of them; JWT: any one of the scopes).
pub fn admit(a: &Authorizer, v: &Verified, scopes: &[String], now_ms: u64) -> Result<(), Refusal> {
    let now_s = now_ms / 1000;
    match v.exp_s {
        Some(exp) if now_s > exp.saturating_add(a.skew_s) => return Err(Refusal::Expired),
        None if a.flavor == Flavor::Cognito => {
            return Err(Refusal::Malformed("no `exp` claim".into()))
        }
        _ => {}
    }
    if v.nbf_s
        .is_some_and(|nbf| now_s.saturating_add(a.skew_s) < nbf)
    {
        return Err(Refusal::NotYetValid);
    }
    if a.flavor == Flavor::Cognito {
        let want = if scopes.is_empty() { "id" } else { "access" };
        if v.token_use.as_deref() != Some(want) {
            return Err(Refusal::WrongTokenUse {
                want,
                got: v.token_use.clone().unwrap_or_default(),
            });
        }
    }
    if !scopes.is_empty() && !v.scopes.iter().any(|s| scopes.contains(s)) {
        return Err(Refusal::MissingScope);
    }
    Ok(())
}
