//! Stage `ApiKeyUsage`: the caller's API key and usage plan, then the throttles and quota,
//! counted in this Envoy's shared data or, with `usage.rateLimitService`, by the fleet's
//! rate-limit service (one or two calls, see [`crate::usage::fleet`]).
//!
//! Owns: running the check and carrying its calls. Must not: decide what a limit or an
//! answer means (the usage module does) or call the host.

use super::pipeline::{CallKind, Event, Exchange, Host, Step, Waiting};
use super::*;
use crate::http::UpstreamAnswer;
use crate::usage::fleet::{FleetCall, FleetNext, Phase, CLUSTER};

/// A fleet check in flight: who calls and which call was made.
#[derive(Debug, Clone)]
pub(super) struct FleetWait {
    key: Option<(String, usize)>,
    phase: Phase,
}

impl Gateway {
    /// Runs the stage; `None` when the request goes on to the next one.
    pub(super) fn usage_stage(&self, ex: &mut Exchange, host: &Host) -> Option<Step> {
        let routed = ex.routed.as_mut()?;
        if self.usage.fleet().is_none() {
            return match self.admit(&ex.head, routed, host.cells) {
                Ok(()) => {
                    Self::report(ex);
                    None
                }
                Err(o) => Some(Step::Reply(Box::new(o))),
            };
        }
        let caller = match self.caller_of(&ex.head, routed) {
            Ok(c) => c.map(|(k, p)| (k.id.clone(), p)),
            Err(o) => return Some(Step::Reply(Box::new(o))),
        };
        let next = self.usage.fleet_start(
            routed.route,
            caller.as_ref().map(|(k, p)| (k.as_str(), *p)),
            ex.head.now_ms,
        );
        self.fleet_next(ex, caller, next, host)
    }

    /// The answer to a fleet check's call.
    pub(super) fn rate_limit_answer(
        &self,
        ex: &mut Exchange,
        waiting: &Waiting,
        answer: &UpstreamAnswer,
        host: &Host,
    ) -> Option<Step> {
        let latency_ms = host.now_ms.saturating_sub(waiting.sent_ms);
        let Some(wait) = ex.fleet.take() else {
            return Some(self.stray(ex, "a rate-limit answer arrived for no check"));
        };
        let read = match answer.status {
            Some(200) => crate::usage::rls::decode_response(&answer.body)
                .ok_or_else(|| "the rate-limit service's answer is not a RateLimitResponse".into()),
            _ => Err(format!(
                "the rate-limit service did not answer ({})",
                answer.host_reply.as_deref().unwrap_or("no response")
            )),
        };
        ex.event(Event::RateLimit {
            latency_ms,
            failed: read.is_err(),
        });
        let route = ex.routed.as_ref()?.route;
        let caller = wait.key.as_ref().map(|(k, p)| (k.as_str(), *p));
        let next = self
            .usage
            .fleet_answer(route, caller, wait.phase, read, host.now_ms);
        self.fleet_next(ex, wait.key, next, host)
    }

    fn fleet_next(
        &self,
        ex: &mut Exchange,
        key: Option<(String, usize)>,
        next: FleetNext,
        host: &Host,
    ) -> Option<Step> {
        match next {
            FleetNext::Call(FleetCall { phase, message }) => {
                let timeout_ms = self.usage.fleet().map_or(100, |f| f.timeout_ms);
                ex.fleet = Some(FleetWait { key, phase });
                let request = UpstreamCall {
                    cluster: CLUSTER.to_string(),
                    headers: Vec::new(),
                    body: message,
                    timeout_ms,
                };
                Some(ex.call(CallKind::RateLimit, request, host.now_ms, None, false))
            }
            FleetNext::Done(check) => {
                let routed = ex.routed.as_mut()?;
                let caller = key.as_ref().map(|(k, p)| (k.as_str(), *p));
                match self.apply_check(&ex.head, routed, caller, check) {
                    Ok(()) => {
                        Self::report(ex);
                        None
                    }
                    Err(o) => Some(Step::Reply(Box::new(o))),
                }
            }
        }
    }

    /// Reports what an admitted check counted.
    fn report(ex: &mut Exchange) {
        let Some(routed) = ex.routed.as_ref() else {
            return;
        };
        let (usage, notice) = (routed.usage, routed.notice.clone());
        if let Some(u) = usage {
            ex.event(Event::Usage(u));
        }
        if let Some(n) = notice {
            ex.event(Event::Notice(n));
        }
    }

    fn stray(&self, ex: &Exchange, why: &str) -> Step {
        Step::Reply(Box::new(self.fail(
            &ex.head,
            GatewayError::IntegrationNotSupported,
            why,
        )))
    }
}
