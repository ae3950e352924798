//! Cognito user pool and JWT authorizers, verified in the gateway without calling anyone
//! per request.
//!
//! Owns: the compiled authorizers ([`Authorizer`]: flavour, identity header, issuers,
//! audiences, clock skew) and the JWKS sources they draw keys from ([`Source`]), reading
//! them from the export and the deployment file ([`config`]), the token reader
//! ([`token`]), key sets ([`keys`]), verification ([`verify`]), the claim texts API Gateway
//! passes on ([`claims`]), and each worker's key ring with the cross-worker refresh
//! protocol in shared data ([`ring`]). Must not: call the host (the glue fetches JWKS
//! documents on the ring's word) or read clocks.

pub mod claims;
pub mod config;
pub mod keys;
pub mod ring;
pub mod token;
pub mod verify;

pub use verify::Verified;

/// Whose rules a token follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    /// A REST API `COGNITO_USER_POOLS` authorizer: ID tokens for methods without scopes,
    /// access tokens with one of the method's scopes otherwise.
    Cognito,
    /// A generic OIDC issuer, as HTTP APIs' JWT authorizers check it: audience and scopes.
    Jwt,
}

/// One Cognito or JWT authorizer.
#[derive(Debug, Clone)]
pub struct Authorizer {
    pub name: String,
    pub flavor: Flavor,
    /// The request header holding the token, lower-case.
    pub header: String,
    /// Indexes of the issuers (JWKS sources) whose tokens it accepts.
    pub issuers: Vec<usize>,
    /// Accepted `aud` / `client_id` values; empty accepts any.
    pub audiences: Vec<String>,
    /// Seconds of clock difference tolerated for `exp` and `nbf`.
    pub skew_s: u64,
}

/// Where one issuer's keys come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    /// The `iss` its tokens carry.
    pub issuer: String,
    /// The JWKS URL, as configured.
    pub url: String,
    /// The Envoy cluster that reaches it, its `:authority` and path.
    pub cluster: String,
    pub authority: String,
    pub path: String,
    pub host: String,
    pub port: u16,
    pub tls: bool,
    /// CA bundle for an HTTPS JWKS URL (`None`: the system's).
    pub ca_file: Option<String>,
    /// Refresh period, and the shortest time between two fetches (for unknown `kid`s).
    pub refresh_ms: u64,
    pub min_refresh_ms: u64,
}

/// Why a token is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// No token in the identity header.
    Missing,
    Malformed(String),
    /// `iss` names no issuer of the authorizer.
    WrongIssuer(String),
    /// The issuer's keys have not been fetched yet (a 500: never a pass).
    NoKeys {
        issuer: usize,
    },
    /// No key with this `kid` fits the token's algorithm (a refresh is asked for).
    UnknownKey {
        issuer: usize,
        kid: String,
    },
    BadSignature,
    Expired,
    NotYetValid,
    WrongAudience,
    WrongTokenUse {
        want: &'static str,
        got: String,
    },
    MissingScope,
}

impl Refusal {
    /// The line for the log (never the token itself).
    pub fn describe(&self, sources: &[Source]) -> String {
        let issuer = |i: &usize| {
            sources
                .get(*i)
                .map_or("?", |s| s.issuer.as_str())
                .to_string()
        };
        match self {
            Refusal::Missing => "no token in the identity source".into(),
            Refusal::Malformed(why) => format!("malformed token: {why}"),
            Refusal::WrongIssuer(iss) => format!("issuer `{iss}` is not accepted"),
            Refusal::NoKeys { issuer: i } => format!(
                "the signing keys of `{}` have not been fetched yet from {}; see the JWKS log lines",
                issuer(i),
                sources.get(*i).map_or("?", |s| s.url.as_str())
            ),
            Refusal::UnknownKey { issuer: i, kid } => format!(
                "no key `{kid}` for the token's algorithm in the keys of `{}`; a refresh is asked for",
                issuer(i)
            ),
            Refusal::BadSignature => "the signature does not verify".into(),
            Refusal::Expired => "the token has expired".into(),
            Refusal::NotYetValid => "the token is not valid yet (`nbf`)".into(),
            Refusal::WrongAudience => "the token's audience is not accepted".into(),
            Refusal::WrongTokenUse { want, got } => {
                format!("the method wants an {want} token; this is `{got}`")
            }
            Refusal::MissingScope => "the token holds none of the method's scopes".into(),
        }
    }
}

/// Default seconds between two fetches of a JWKS.
pub const DEFAULT_REFRESH_S: u64 = 3600;
/// Default shortest seconds between two fetches (a token with an unknown `kid` asks for one).
pub const DEFAULT_MIN_REFRESH_S: u64 = 30;
/// Default clock skew tolerated for `exp` and `nbf`.
pub const DEFAULT_SKEW_S: u64 = 0;
/// Time a JWKS fetch has to answer (API Gateway's JWKS retrieval timeout).
pub const FETCH_TIMEOUT_MS: u64 = 1500;

#[cfg(test)]
#[path = "../../tests/support/jwt_keys.rs"]
pub(crate) mod jwt_keys;
#[cfg(test)]
mod tests;
