//! The `Iam` stage: the SigV4 signature of a method that requires IAM authorization.
//!
//! Owns: waiting for the body when the signature covers its hash, verifying the signature
//! against the declared callers, remembering who signed for the stages after it (the policy
//! stage decides access; events and `$context.identity` name the caller), and API Gateway's
//! 403s: `Missing Authentication Token` for an unsigned request, the invalid-token message
//! for an unknown key, `INVALID_SIGNATURE` for a signature that does not match, is
//! incomplete or out of date. Must not: decide access or read clocks (`now` comes with the
//! request).

use super::pipeline::{Exchange, Step};
use super::{Gateway, Known};
use crate::error::GatewayError;
use crate::iam::{Failure, Presented};

impl Gateway {
    /// Runs the stage: `None` goes on to the next stage.
    pub(super) fn iam_stage(&self, ex: &mut Exchange) -> Option<Step> {
        let routed = ex.routed.as_ref()?;
        let route = self.routes.get(routed.route)?;
        if !route.iam {
            return None;
        }
        // The signature is read once; a request whose signature covers the body waits for it.
        let verdict = Presented::read(&ex.head.path, &ex.head.headers).and_then(|p| {
            if p.needs_body() && ex.body.is_none() {
                return Ok(None);
            }
            self.iam
                .verify_presented(
                    &p,
                    &ex.head.method,
                    &ex.head.headers,
                    ex.body.as_deref(),
                    ex.head.now_ms,
                )
                .map(Some)
        });
        let verdict = match verdict {
            Ok(None) => return Some(Step::NeedBody),
            Ok(Some(caller)) => Ok(caller),
            Err(f) => Err(f),
        };
        let failure = match verdict {
            Ok(caller) => {
                if let Some(r) = ex.routed.as_mut() {
                    r.caller = Some(caller);
                }
                return None;
            }
            Err(f) => f,
        };
        let (error, message, why) = match &failure {
            Failure::Missing => (
                GatewayError::MissingAuthenticationToken,
                GatewayError::MissingAuthenticationToken
                    .message()
                    .to_string(),
                "the method requires a SigV4 signature and the request has none".to_string(),
            ),
            Failure::Incomplete(m) => (
                GatewayError::IncompleteSignature,
                m.clone(),
                format!("incomplete signature: {m}"),
            ),
            Failure::UnknownKey => (
                GatewayError::InvalidToken,
                GatewayError::InvalidToken.message().to_string(),
                "no declared caller has this access key (or session token)".to_string(),
            ),
            Failure::WrongScope(m) => (
                GatewayError::InvalidSignature,
                m.clone(),
                format!("signature scope: {m}"),
            ),
            Failure::Expired(m) => (GatewayError::SignatureExpired, m.clone(), m.clone()),
            Failure::BadSignature => (
                GatewayError::InvalidSignature,
                GatewayError::InvalidSignature.message().to_string(),
                "the signature does not match the request".to_string(),
            ),
        };
        let known = Known {
            route: Some(route),
            ..Known::default()
        };
        Some(Step::Reply(Box::new(self.fail_saying(
            &ex.head,
            known,
            (error, &message),
            &why,
        ))))
    }
}
