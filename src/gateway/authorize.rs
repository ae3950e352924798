//! The `Authorizer` stage: a method's Lambda authorizer, its cache, and its verdict.
//!
//! Owns: reading the identity sources (a missing TOKEN, or a missing source of a cached
//! REQUEST authorizer, is a 401 without a call; so is a token that fails the validation
//! expression), the per-worker result cache (keyed by authorizer and identity values, TTL
//! from the export, dropped on a stage flush through shared data), the authorizer call and
//! the reading of its answer, and evaluating the policy (cached or fresh) against this
//! request's method ARN. Must not: call the host (the glue makes the call) or decide what a
//! transport failure is (see [`crate::lambda::invoke::classify`]).

use std::rc::Rc;

use super::pipeline::{authorized, CallKind, Event, Exchange, Host, Step, Waiting};
use super::{Gateway, Known};
use crate::authorizer::policy::{self, Verdict};
use crate::authorizer::{self, cache, Kind, RequestEvent, RequestView};
use crate::error::GatewayError;
use crate::http::{UpstreamAnswer, UpstreamCall};
use crate::lambda::invoke::{classify, InvokeOutcome};
use crate::shared;

/// Shared-data cell holding a stage's authorizer flush generation.
pub fn flush_cell(api_id: &str, stage: &str) -> String {
    format!("apigw_edge.authz.{api_id}.{stage}.flush")
}

impl Gateway {
    pub(super) fn method_arn(&self, ex: &Exchange) -> String {
        let event_path = ex.routed.as_ref().map_or("/", |r| r.event_path.as_str());
        authorizer::method_arn(
            (&self.api.region, &self.api.account_id, &self.api.id),
            &self.stage,
            &ex.head.method,
            event_path,
        )
    }

    pub(super) fn auth_fail(&self, ex: &Exchange, error: GatewayError, reason: &str) -> Step {
        let known = Known {
            route: ex.routed.as_ref().and_then(|r| self.routes.get(r.route)),
            api_key_id: None,
            auth: ex.denied_by.as_ref(),
            caller: None,
        };
        Step::Reply(Box::new(self.fail_in(&ex.head, known, error, reason)))
    }

    /// Runs the stage: `None` goes on to the next stage.
    pub(super) fn authorize(&self, ex: &mut Exchange, host: &Host) -> Option<Step> {
        let routed = ex.routed.as_ref()?;
        let index = self.routes.get(routed.route)?.authorizer?;
        let a = self.authorizers.get(index)?;
        let arn = self.method_arn(ex);
        if arn.len() > authorizer::MAX_METHOD_ARN {
            let why = format!(
                "the method ARN has {} bytes, more than {}",
                arn.len(),
                authorizer::MAX_METHOD_ARN
            );
            return Some(self.auth_fail(ex, GatewayError::UriTooLong, &why));
        }
        // The query is parsed only for an authorizer that reads it (never for TOKEN).
        let reads_query = a
            .spec
            .sources
            .iter()
            .any(|s| matches!(s, authorizer::Source::Query(_)));
        let query = match ex.head.path.split_once('?') {
            Some((_, raw)) if reads_query => crate::query::parse(raw),
            _ => Vec::new(),
        };
        let context = || {
            let f = self.facts(&ex.head);
            let known = Known {
                route: self.routes.get(routed.route),
                ..Known::default()
            };
            serde_json::to_value(self.request_context(&ex.head, known, &f)).unwrap_or_default()
        };
        let view = RequestView {
            headers: &ex.head.headers,
            query: &query,
            stage_variables: &self.stage_variables,
            context: &context,
        };
        let identity = authorizer::identity(&a.spec, &view);
        let missing = identity.iter().any(Option::is_none);
        let caching = a.spec.ttl_ms > 0;
        match a.spec.kind {
            Kind::Token if missing => {
                return Some(self.auth_fail(
                    ex,
                    GatewayError::Unauthorized,
                    &format!("authorizer `{}`: the token is missing", a.spec.name),
                ));
            }
            Kind::Token => {
                let token = identity.first().cloned().flatten().unwrap_or_default();
                if a.spec
                    .validation
                    .as_ref()
                    .is_some_and(|re| !re.is_match(&token))
                {
                    let why = format!(
                        "authorizer `{}`: the token fails identityValidationExpression",
                        a.spec.name
                    );
                    return Some(self.auth_fail(ex, GatewayError::Unauthorized, &why));
                }
            }
            Kind::Request if missing && caching => {
                let why = format!(
                    "authorizer `{}`: an identity source is missing or empty",
                    a.spec.name
                );
                return Some(self.auth_fail(ex, GatewayError::Unauthorized, &why));
            }
            Kind::Request => {}
        }
        let key = caching.then(|| cache::key(&a.spec.name, &identity));
        if let (Some(key), Some(store)) = (&key, host.auth_cache) {
            let generation =
                shared::read(host.cells, &flush_cell(&self.api.id, &self.stage)).unwrap_or(0);
            let hit = store.borrow_mut().get(key, host.now_ms, generation);
            if let Some(decision) = hit {
                ex.event(Event::Authorizer {
                    latency_ms: None,
                    failed: false,
                });
                return self.verdict(ex, decision, 0, &arn);
            }
        }
        let payload = match a.spec.kind {
            Kind::Token => authorizer::token_event(
                identity
                    .first()
                    .cloned()
                    .flatten()
                    .as_deref()
                    .unwrap_or_default(),
                &arn,
            ),
            Kind::Request => {
                let f = self.facts(&ex.head);
                let route = self.routes.get(routed.route)?;
                let known = Known {
                    route: Some(route),
                    ..Known::default()
                };
                let request_context = self.request_context(&ex.head, known, &f);
                let event = RequestEvent {
                    kind: "REQUEST",
                    method_arn: &arn,
                    request: self.request_fields(&ex.head, routed, route, &f, request_context),
                };
                serde_json::to_vec(&event).unwrap_or_default()
            }
        };
        let mut request = UpstreamCall::sync(
            &a.target,
            self.user_agent.clone(),
            payload,
            authorizer::TIMEOUT_MS,
        );
        self.sign(&mut request, host.now_ms);
        Some(ex.call(CallKind::Authorizer, request, host.now_ms, key, false))
    }

    /// The authorizer's answer: `None` goes on to the next stage.
    pub(super) fn authorizer_answer(
        &self,
        ex: &mut Exchange,
        waiting: &Waiting,
        answer: &UpstreamAnswer,
        host: &Host,
    ) -> Option<Step> {
        let routed = ex.routed.as_ref()?;
        let a = self
            .routes
            .get(routed.route)
            .and_then(|r| r.authorizer)
            .and_then(|i| self.authorizers.get(i))?;
        let latency_ms = host.now_ms.saturating_sub(waiting.sent_ms);
        let name = &a.spec.name;
        let failed = |ex: &mut Exchange, error, why: String| {
            ex.event(Event::Authorizer {
                latency_ms: Some(latency_ms),
                failed: true,
            });
            Some(self.auth_fail(ex, error, &why))
        };
        let payload = match classify(answer) {
            InvokeOutcome::Payload(p) => p,
            InvokeOutcome::FunctionError(msg) if msg.trim() == "Unauthorized" => {
                ex.event(Event::Authorizer {
                    latency_ms: Some(latency_ms),
                    failed: false,
                });
                return Some(self.auth_fail(
                    ex,
                    GatewayError::Unauthorized,
                    &format!("authorizer `{name}` answered Unauthorized"),
                ));
            }
            InvokeOutcome::FunctionError(msg) => {
                return failed(
                    ex,
                    GatewayError::AuthorizerConfiguration,
                    format!("authorizer `{name}` failed: {msg}"),
                );
            }
            InvokeOutcome::Rejected { status, error_type } => {
                return failed(ex, GatewayError::AuthorizerFailure, format!("authorizer `{name}`: Lambda rejected the invocation with status {status}: {error_type}"));
            }
            InvokeOutcome::Timeout => {
                return failed(
                    ex,
                    GatewayError::AuthorizerFailure,
                    format!(
                        "authorizer `{name}` did not answer within {} ms",
                        authorizer::TIMEOUT_MS
                    ),
                );
            }
            InvokeOutcome::Unreachable(why) => {
                return failed(
                    ex,
                    GatewayError::AuthorizerFailure,
                    format!("authorizer `{name}` unreachable: {why}"),
                );
            }
        };
        let decision = match authorizer::read_answer(payload) {
            Ok(d) => Rc::new(d),
            Err(why) => {
                return failed(
                    ex,
                    GatewayError::AuthorizerConfiguration,
                    format!("authorizer `{name}` answered an invalid result: {why}"),
                );
            }
        };
        ex.event(Event::Authorizer {
            latency_ms: Some(latency_ms),
            failed: false,
        });
        if let (Some(key), Some(store)) = (&waiting.auth_key, host.auth_cache) {
            let generation =
                shared::read(host.cells, &flush_cell(&self.api.id, &self.stage)).unwrap_or(0);
            store.borrow_mut().put(
                key.clone(),
                decision.clone(),
                host.now_ms,
                a.spec.ttl_ms,
                generation,
            );
        }
        let arn = self.method_arn(ex);
        self.verdict(ex, decision, latency_ms, &arn)
    }

    /// Evaluates a decision's policy for this request: allowed requests go on with the
    /// decision attached; denied ones are answered 403.
    fn verdict(
        &self,
        ex: &mut Exchange,
        decision: Rc<authorizer::Decision>,
        latency_ms: u64,
        arn: &str,
    ) -> Option<Step> {
        let verdict = policy::evaluate(&decision.statements, arn);
        let principal = decision.principal_id.clone();
        let state = authorized(decision, latency_ms);
        match verdict {
            Verdict::Allow => {
                if let Some(r) = ex.routed.as_mut() {
                    r.auth = Some(state);
                }
                None
            }
            Verdict::ExplicitDeny | Verdict::ImplicitDeny => {
                let (error, how) = if verdict == Verdict::ExplicitDeny {
                    (GatewayError::ExplicitDeny, "denies")
                } else {
                    (GatewayError::ImplicitDeny, "allows nothing that covers")
                };
                let why = format!("the policy of principal `{principal}` {how} {arn}");
                ex.denied_by = Some(state);
                Some(self.auth_fail(ex, error, &why))
            }
        }
    }
}
