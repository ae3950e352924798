//! The `Token` stage: a method's Cognito user pool or JWT authorizer.
//!
//! Owns: reading the token from the authorizer's header, this worker's cache of verified
//! tokens (keyed by authorizer and token, kept until the token expires, dropped when any
//! key set changes), verifying on a miss with the worker's key ring, asking the ring for a
//! refresh when a token names an unknown `kid`, the per-request checks (time, token use,
//! scopes), and the answers API Gateway gives: 401 `Unauthorized`, 401 `The incoming token
//! has expired`, and a 500 while no keys have been fetched. Must not: fetch keys (the glue
//! does, on the ring's word) or read clocks.

use std::rc::Rc;

use super::pipeline::{Event, Exchange, Host, Step};
use super::{Authorized, Gateway};
use crate::authorizer::cache::{TtlCache, Weighed};
use crate::error::GatewayError;
use crate::http::header;
use crate::jwt::verify::{admit, token_of, verify};
use crate::jwt::{Refusal, Verified};

/// One worker's verified tokens.
pub type TokenCache = TtlCache<Rc<Verified>>;

/// Bytes each worker's verified-token cache may hold.
pub const TOKEN_CACHE_BYTES: usize = 4 << 20;
/// Longest a verified token without `exp` stays cached.
const MAX_CACHE_MS: u64 = 300_000;

impl Weighed for Rc<Verified> {
    fn weight(&self) -> usize {
        Verified::weight(self)
    }
}

impl Gateway {
    fn token_refused(&self, ex: &mut Exchange, name: &str, r: &Refusal, cached: bool) -> Step {
        ex.event(Event::Token {
            cached,
            refused: true,
        });
        let error = match r {
            Refusal::Expired => GatewayError::TokenExpired,
            Refusal::NoKeys { .. } => GatewayError::AuthorizerFailure,
            _ => GatewayError::Unauthorized,
        };
        let why = format!("authorizer `{name}`: {}", r.describe(&self.jwks));
        self.auth_fail(ex, error, &why)
    }

    /// Runs the stage: `None` goes on to the next stage.
    pub(super) fn token_stage(&self, ex: &mut Exchange, host: &Host) -> Option<Step> {
        let routed = ex.routed.as_ref()?;
        let (index, scopes) = self.routes.get(routed.route)?.token_auth.as_ref()?;
        let a = self.token_authorizers.get(*index)?;
        let raw = header(&ex.head.headers, &a.header)
            .map(token_of)
            .unwrap_or_default();
        if raw.is_empty() {
            return Some(self.token_refused(ex, &a.name, &Refusal::Missing, false));
        }
        let key = format!("{index}\u{0}{raw}");
        let generation = host.keys.map_or(0, |k| k.borrow().generation());
        let cached = host
            .tokens
            .and_then(|c| c.borrow_mut().get(&key, host.now_ms, generation));
        let (verified, was_cached) = match cached {
            Some(v) => (v, true),
            None => {
                let outcome = match host.keys {
                    Some(ring) => {
                        let ring = ring.borrow();
                        let issuers: Vec<&str> =
                            self.jwks.iter().map(|s| s.issuer.as_str()).collect();
                        verify(a, &issuers, |i| ring.keys(i), raw)
                    }
                    None => Err(Refusal::NoKeys {
                        issuer: a.issuers.first().copied().unwrap_or_default(),
                    }),
                };
                match outcome {
                    Ok(v) => (Rc::new(v), false),
                    Err(r) => {
                        if let (Refusal::UnknownKey { issuer, .. }, Some(ring)) = (&r, host.keys) {
                            ring.borrow_mut().want(*issuer);
                        }
                        return Some(self.token_refused(ex, &a.name, &r, false));
                    }
                }
            }
        };
        if let Err(r) = admit(a, &verified, scopes, host.now_ms) {
            return Some(self.token_refused(ex, &a.name, &r, was_cached));
        }
        if let (false, Some(cache)) = (was_cached, host.tokens) {
            let ttl_ms = match verified.exp_s {
                Some(exp) => exp
                    .saturating_add(a.skew_s)
                    .saturating_mul(1000)
                    .saturating_sub(host.now_ms)
                    .saturating_add(1000),
                None => MAX_CACHE_MS,
            };
            cache
                .borrow_mut()
                .put(key, verified.clone(), host.now_ms, ttl_ms, generation);
        }
        ex.event(Event::Token {
            cached: was_cached,
            refused: false,
        });
        if let Some(r) = ex.routed.as_mut() {
            r.auth = Some(Authorized::Token(verified));
        }
        None
    }
}
