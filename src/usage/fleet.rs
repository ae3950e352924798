//! Throttles and quotas counted by a rate-limit service that a fleet of gateways shares
//! (`usage.rateLimitService`), in API Gateway's order and with its answers.
//!
//! Owns: the descriptors a request is checked with and what the service's answers mean.
//! A check is at most two calls: the throttles (descriptor 0: the stage throttle of the
//! method; descriptor 1: the key's usage-plan throttle, the method's own when the plan
//! sets one), then, when both pass and the key's plan has a quota, the quota (descriptor 0,
//! with the quota window's first day, so windows are calendar periods whatever the
//! engine's counters do). A descriptor with nothing to count is `check: none`, so every
//! call has the same shape: two descriptors (Limitador evaluates every limit's condition
//! against every request, and fails on a `descriptors[1]` that is not there). Entries (`check`, `stage`, `method`, `plan`, `key`, `window`)
//! are what `apigw-edge ratelimit-config` writes limits for. A failed, slow or unreadable
//! answer follows `usage.onCheckFailure`. Must not: make the call (the glue does, with
//! `dispatch_grpc_call`) or count anything itself.

use super::rls::{self, Answer, Code};
use super::{Check, EventKind, UsageEvent, UsagePlans};
use crate::config::Deployment;
use crate::error::GatewayError;

/// The Envoy cluster of the rate-limit service in rendered configurations.
pub const CLUSTER: &str = "apigw_ratelimit";

/// The service a deployment counts in.
#[derive(Debug, Clone)]
pub struct Fleet {
    pub domain: String,
    pub timeout_ms: u64,
    stage: String,
}

impl Fleet {
    pub fn of(d: &Deployment) -> Option<Fleet> {
        let s = d.usage.rate_limit_service.as_ref()?;
        Some(Fleet {
            domain: s.domain.clone(),
            timeout_ms: u64::from(s.timeout_ms),
            stage: d.stage.clone(),
        })
    }
}

/// Which call of a check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Throttle,
    Quota,
}

/// One call to the service: the encoded `RateLimitRequest`.
#[derive(Debug, Clone)]
pub struct FleetCall {
    pub phase: Phase,
    pub message: Vec<u8>,
}

/// What comes next in a fleet check.
#[derive(Debug)]
pub enum FleetNext {
    Call(FleetCall),
    Done(Check),
}

/// The calling key: its id and the index of its plan.
pub type Caller<'a> = Option<(&'a str, usize)>;

const NONE: [(&str, &str); 1] = [("check", "none")];

impl UsagePlans {
    /// The rate-limit service of a fleet, when the deployment counts there.
    pub fn fleet(&self) -> Option<&Fleet> {
        self.fleet.as_ref()
    }

    /// The first call of a check of operation `op` (or the check itself, when nothing is
    /// limited).
    pub fn fleet_start(&self, op: usize, caller: Caller, now_ms: u64) -> FleetNext {
        match self.throttle_call(op, caller) {
            Some(call) => FleetNext::Call(call),
            None => self.after_throttles(caller, now_ms),
        }
    }

    /// What the answer to `phase` (or the reason there is none) means.
    pub fn fleet_answer(
        &self,
        op: usize,
        caller: Caller,
        phase: Phase,
        answer: Result<Answer, String>,
        now_ms: u64,
    ) -> FleetNext {
        let answer = match answer {
            Ok(a) if a.overall != Code::Unknown => a,
            Ok(_) => {
                return FleetNext::Done(self.failed(
                    "usage plan check failed: the rate-limit service answered UNKNOWN".into(),
                ))
            }
            Err(why) => {
                return FleetNext::Done(self.failed(format!("usage plan check failed: {why}")))
            }
        };
        let method = self.method_of(op);
        match (phase, answer.overall) {
            (Phase::Throttle, Code::OverLimit) => {
                let plan_throttle = self.plan_throttle(op, caller).is_some();
                let by_plan = match answer.statuses.get(1) {
                    Some(code) => *code == Code::OverLimit,
                    None => plan_throttle,
                };
                let (plan, what) = match caller {
                    Some((key, pi)) if by_plan => (
                        Some(pi),
                        format!(
                            "API key {key} exceeded the throttle of usage plan {} on {method} (rate-limit service)",
                            self.plan_id(pi)
                        ),
                    ),
                    _ => (
                        None,
                        format!("stage throttle of {method} exceeded (rate-limit service)"),
                    ),
                };
                FleetNext::Done(Check {
                    verdict: Err((GatewayError::Throttled, what)),
                    event: Some(UsageEvent {
                        plan,
                        kind: EventKind::Throttled,
                    }),
                    ..Check::admitted()
                })
            }
            (Phase::Throttle, _) => self.after_throttles(caller, now_ms),
            (Phase::Quota, Code::OverLimit) => {
                let Some((key, pi)) = caller else {
                    return FleetNext::Done(Check::admitted());
                };
                FleetNext::Done(Check {
                    verdict: Err((
                        GatewayError::QuotaExceeded,
                        format!(
                            "API key {key} exhausted the quota of usage plan {} (rate-limit service)",
                            self.plan_id(pi)
                        ),
                    )),
                    event: Some(UsageEvent {
                        plan: Some(pi),
                        kind: EventKind::QuotaExceeded,
                    }),
                    ..Check::admitted()
                })
            }
            (Phase::Quota, _) => FleetNext::Done(self.admitted(caller)),
        }
    }

    fn method_of(&self, op: usize) -> &str {
        self.operations
            .get(op)
            .map_or("", |o| o.method_key.as_str())
    }

    fn plan_id(&self, pi: usize) -> &str {
        self.plans.get(pi).map_or("", |p| p.id.as_str())
    }

    /// The key's plan throttle for `op`: `Some(true)` when the method has its own.
    fn plan_throttle(&self, op: usize, caller: Caller) -> Option<bool> {
        let p = self.plans.get(caller?.1)?;
        if p.method_throttle.contains_key(&op) {
            Some(true)
        } else {
            p.throttle.as_ref().map(|_| false)
        }
    }

    fn throttle_call(&self, op: usize, caller: Caller) -> Option<FleetCall> {
        let fleet = self.fleet.as_ref()?;
        let stage_rate = self.operations.get(op).and_then(|o| o.stage_rate);
        let plan_throttle = self.plan_throttle(op, caller);
        if stage_rate.is_none() && plan_throttle.is_none() {
            return None;
        }
        let method = self.method_of(op);
        let stage: Vec<(&str, &str)> = match stage_rate {
            Some(_) => vec![
                ("check", "stage_throttle"),
                ("stage", fleet.stage.as_str()),
                ("method", method),
            ],
            None => NONE.to_vec(),
        };
        let plan: Vec<(&str, &str)> = match (plan_throttle, caller) {
            (Some(own), Some((key, pi))) => {
                let mut d = vec![
                    (
                        "check",
                        if own {
                            "plan_method_throttle"
                        } else {
                            "plan_throttle"
                        },
                    ),
                    ("plan", self.plan_id(pi)),
                    ("key", key),
                ];
                if own {
                    d.push(("method", method));
                }
                d
            }
            _ => NONE.to_vec(),
        };
        Some(FleetCall {
            phase: Phase::Throttle,
            message: rls::encode_request(&fleet.domain, &[stage, plan], 1),
        })
    }

    /// The quota call, or the admitted check when the key's plan has no quota.
    fn after_throttles(&self, caller: Caller, now_ms: u64) -> FleetNext {
        let quota = caller.and_then(|(key, pi)| {
            let p = self.plans.get(pi)?;
            Some((key, p, p.quota.as_ref()?))
        });
        let (Some((key, p, q)), Some(fleet)) = (quota, self.fleet.as_ref()) else {
            return FleetNext::Done(self.admitted(caller));
        };
        let window = quota_window(q.period, now_ms);
        let descriptor = vec![
            ("check", "quota"),
            ("plan", p.id.as_str()),
            ("key", key),
            ("window", window.as_str()),
        ];
        FleetNext::Call(FleetCall {
            phase: Phase::Quota,
            message: rls::encode_request(&fleet.domain, &[descriptor, NONE.to_vec()], 1),
        })
    }

    fn admitted(&self, caller: Caller) -> Check {
        Check {
            event: caller.map(|(_, pi)| UsageEvent {
                plan: Some(pi),
                kind: EventKind::Admitted,
            }),
            ..Check::admitted()
        }
    }
}

/// The quota window of `now_ms` as the `window` entry: the UTC day number its period
/// starts on.
pub fn quota_window(period: crate::config::QuotaPeriod, now_ms: u64) -> String {
    let (start, _) = super::quota::window(period, now_ms);
    (start / super::quota::DAY_MS).to_string()
}

#[cfg(test)]
mod tests;
