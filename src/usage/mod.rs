//! API keys on methods, usage plans and stage throttling: who may call, how fast, how often.
//!
//! Owns: compiling which methods require an API key (the export's `security`, plus the
//! deployment's `apiKeyRequired`), the usage plans that apply to this stage (per-key
//! throttle, per-key per-method throttles, quota) and the stage's per-method throttles;
//! and the per-request check, in API Gateway's order: the key's usage-plan throttle (its
//! method override if any), then the stage throttle of the method, then the key's quota.
//! Every counter lives in a shared-data cell updated with compare-and-swap, one cell per
//! (plan, key[, method]) and per stage method, all named from configuration, so limits hold
//! exactly across Envoy workers and the key space stays bounded. A key's quota cell also
//! holds its plan-wide throttle ([`KeyCell`]), so a keyed request usually costs one read and
//! one write of shared data. Submodules own the
//! arithmetic ([`bucket`], [`quota`]). Must not: read clocks or headers (the gateway hands
//! over the identified key and `now`).

pub mod bucket;
pub mod engines;
pub mod fleet;
pub mod quota;
pub mod rls;

use std::collections::BTreeMap;

use crate::apikeys::{ApiKeys, Key};
use crate::config::{CheckFailure, Deployment, QuotaSettings};
use crate::error::{ConfigError, GatewayError};
use crate::http::Header;
use crate::openapi::{method_key, resolve_method_key, MethodKey, Operation};
use crate::shared::{self, CellError, SharedCells};
use bucket::{Rate, Take};

/// A compiled usage plan.
#[derive(Debug, Clone)]
pub struct Plan {
    pub id: String,
    throttle: Option<Rate>,
    method_throttle: BTreeMap<usize, Rate>,
    quota: Option<QuotaSettings>,
}

/// What one operation asks of keys and limits.
#[derive(Debug, Clone, Default)]
struct OperationUsage {
    /// The method requires an API key.
    key_required: bool,
    /// The stage throttle of the method.
    stage_rate: Option<Rate>,
    /// `/resource/path/METHOD`, for cell names.
    method_key: String,
}

/// Everything about keys and limits for one stage.
#[derive(Debug, Clone, Default)]
pub struct UsagePlans {
    plans: Vec<Plan>,
    /// Key id -> index of the plan that applies to this stage.
    key_plan: BTreeMap<String, usize>,
    /// One record per operation, in the export's order.
    operations: Vec<OperationUsage>,
    stage_prefix: String,
    on_failure: CheckFailure,
    rate_limit_headers: bool,
    /// Counted by a fleet's rate-limit service instead of shared data.
    fleet: Option<fleet::Fleet>,
}

/// What a check counted, for per-plan stats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UsageEvent {
    /// Index of the plan (see [`UsagePlans::plan_ids`]); `None` for the stage throttle.
    pub plan: Option<usize>,
    pub kind: EventKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    Admitted,
    Throttled,
    QuotaExceeded,
}

/// The result of the usage check for one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    /// `Err` refuses the request with that error and reason.
    pub verdict: Result<(), (GatewayError, String)>,
    pub event: Option<UsageEvent>,
    /// `X-RateLimit-*` / `Retry-After`, when enabled.
    pub headers: Vec<Header>,
    /// A line to log even though the request goes on (a check failure under `ALLOW`).
    pub log: Option<String>,
}

impl Check {
    fn admitted() -> Check {
        Check {
            verdict: Ok(()),
            event: None,
            headers: Vec::new(),
            log: None,
        }
    }
}

/// The shared-data cell of a plan's quota counter for a key. Quotas count across every
/// stage of the plan, so the cell names no stage.
pub fn quota_cell(plan: &str, key: &str) -> String {
    format!("apigw-edge/usage/{plan}/{key}/quota")
}

/// What a key's quota cell holds: the quota counter and, when the key's plan also throttles
/// it plan-wide, that throttle's token bucket, so one compare-and-swap admits a request on
/// both. Stored as the counter (24 bytes), the bucket (16) or both (40).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KeyCell {
    pub quota: Option<quota::State>,
    pub bucket: Option<bucket::State>,
}

impl KeyCell {
    pub fn decode(bytes: &[u8]) -> Option<KeyCell> {
        match bytes.len() {
            16 => Some(KeyCell {
                quota: None,
                bucket: Some(bucket::State::decode(bytes)?),
            }),
            24 => Some(KeyCell {
                quota: Some(quota::State::decode(bytes)?),
                bucket: None,
            }),
            40 => Some(KeyCell {
                quota: Some(quota::State::decode(bytes.get(..24)?)?),
                bucket: Some(bucket::State::decode(bytes.get(24..)?)?),
            }),
            _ => None,
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        // One buffer of the final size (at most 40 bytes): this runs on every counted request.
        let mut out = Vec::with_capacity(40);
        if let Some(q) = &self.quota {
            q.encode_into(&mut out);
        }
        if let Some(b) = &self.bucket {
            b.encode_into(&mut out);
        }
        out
    }
}

fn plan_rate_cell(plan: &str, key: &str, method: Option<&str>) -> String {
    match method {
        None => format!("apigw-edge/usage/{plan}/{key}/rate"),
        Some(m) => format!("apigw-edge/usage/{plan}/{key}/rate{m}"),
    }
}

fn compile_rate(
    t: &crate::config::Throttle,
    at: &str,
    errors: &mut Vec<ConfigError>,
) -> Option<Rate> {
    let rate = Rate::from_settings(t);
    if rate.is_none() {
        errors.push(ConfigError::new(
            format!("{at}.rateLimit"),
            "expected a non-negative number of requests per second",
        ));
    }
    rate
}

fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
}

impl UsagePlans {
    /// Compiles the deployment's keys requirements, plans and throttles for its stage.
    pub fn compile(
        d: &Deployment,
        keys: &ApiKeys,
        operations: &[Operation],
        errors: &mut Vec<ConfigError>,
    ) -> UsagePlans {
        let mut key_required: Vec<bool> = operations.iter().map(|o| o.api_key_required).collect();
        for (i, k) in d.api_key_required.iter().enumerate() {
            match resolve_method_key(operations, k) {
                Ok(MethodKey::All) => key_required.iter_mut().for_each(|r| *r = true),
                Ok(MethodKey::One(op)) => {
                    if let Some(r) = key_required.get_mut(op) {
                        *r = true;
                    }
                }
                Err(m) => errors.push(ConfigError::new(
                    format!("deployment.apiKeyRequired[{i}]"),
                    m,
                )),
            }
        }
        let mut plans = Vec::new();
        let mut key_plan = BTreeMap::new();
        for (pi, p) in d.usage_plans.iter().enumerate() {
            let at = format!("deployment.usagePlans[{pi}]");
            if !valid_id(&p.id) {
                errors.push(ConfigError::new(
                    format!("{at}.id"),
                    "ids are 1-128 of A-Z a-z 0-9 - _ .",
                ));
            }
            if d.usage_plans.iter().take(pi).any(|o| o.id == p.id) {
                errors.push(ConfigError::new(
                    format!("{at}.id"),
                    format!("duplicate usage plan id `{}`", p.id),
                ));
            }
            let applies = p.stages.as_ref().is_none_or(|s| s.contains(&d.stage));
            let throttle = p
                .throttle
                .as_ref()
                .and_then(|t| compile_rate(t, &format!("{at}.throttle"), errors));
            let mut method_throttle = BTreeMap::new();
            for (k, t) in &p.method_throttle {
                let at = format!("{at}.methodThrottle.{k}");
                match resolve_method_key(operations, k) {
                    Ok(MethodKey::One(op)) => {
                        if let Some(r) = compile_rate(t, &at, errors) {
                            method_throttle.insert(op, r);
                        }
                    }
                    Ok(MethodKey::All) => errors.push(ConfigError::new(
                        at,
                        "use the plan's `throttle` for every method",
                    )),
                    Err(m) => errors.push(ConfigError::new(at, m)),
                }
            }
            for (ki, key) in p.api_keys.iter().enumerate() {
                let key_at = format!("{at}.apiKeys[{ki}]");
                if !keys.contains_id(key) {
                    errors.push(ConfigError::new(
                        key_at,
                        format!("no API key with id `{key}` in deployment.apiKeys"),
                    ));
                    continue;
                }
                if !applies {
                    continue;
                }
                if let Some(&other) = key_plan.get(key) {
                    let other: &crate::config::UsagePlan = match d.usage_plans.get(other) {
                        Some(o) => o,
                        None => continue,
                    };
                    errors.push(ConfigError::new(
                        key_at,
                        format!(
                            "key `{key}` is already in plan `{}` for stage `{}`; a key may be in one plan per stage",
                            other.id, d.stage
                        ),
                    ));
                    continue;
                }
                key_plan.insert(key.clone(), pi);
            }
            plans.push(Plan {
                id: p.id.clone(),
                throttle,
                method_throttle,
                quota: p.quota,
            });
        }
        let mut stage_rate = vec![None; operations.len()];
        if let Some(t) = &d.throttle {
            let default = match (t.rate_limit, t.burst_limit) {
                (Some(rate_limit), Some(burst_limit)) => compile_rate(
                    &crate::config::Throttle {
                        rate_limit,
                        burst_limit,
                    },
                    "deployment.throttle",
                    errors,
                ),
                (None, None) => None,
                _ => {
                    errors.push(ConfigError::new(
                        "deployment.throttle",
                        "set both rateLimit and burstLimit, or neither",
                    ));
                    None
                }
            };
            stage_rate.iter_mut().for_each(|r| *r = default);
            for (k, mt) in &t.method_settings {
                let at = format!("deployment.throttle.methodSettings.{k}");
                match resolve_method_key(operations, k) {
                    Ok(MethodKey::One(op)) => {
                        if let (Some(slot), Some(r)) =
                            (stage_rate.get_mut(op), compile_rate(mt, &at, errors))
                        {
                            *slot = Some(r);
                        }
                    }
                    Ok(MethodKey::All) => errors.push(ConfigError::new(
                        at,
                        "use deployment.throttle.rateLimit/burstLimit for every method",
                    )),
                    Err(m) => errors.push(ConfigError::new(at, m)),
                }
            }
        }
        UsagePlans {
            plans,
            key_plan,
            operations: operations
                .iter()
                .zip(key_required)
                .zip(stage_rate)
                .map(|((op, key_required), stage_rate)| OperationUsage {
                    key_required,
                    stage_rate,
                    method_key: method_key(op),
                })
                .collect(),
            stage_prefix: format!("apigw-edge/{}/{}/throttle", d.api.id, d.stage),
            on_failure: d.usage.on_check_failure,
            rate_limit_headers: d.usage.rate_limit_headers,
            fleet: fleet::Fleet::of(d),
        }
    }

    /// Whether a method requires an API key.
    pub fn key_required(&self, op: usize) -> bool {
        self.operations.get(op).is_some_and(|o| o.key_required)
    }

    /// Ids of the plans, in order (for per-plan stats).
    pub fn plan_ids(&self) -> Vec<&str> {
        self.plans.iter().map(|p| p.id.as_str()).collect()
    }

    /// Whether a key is in a plan for this stage (API Gateway refuses keys that are not).
    pub fn plan_of(&self, key: &Key) -> Option<usize> {
        self.key_plan.get(&key.id).copied()
    }

    fn take(
        &self,
        cells: &dyn SharedCells,
        cell: &str,
        rate: &Rate,
        now_ms: u64,
    ) -> Result<Take, CellError> {
        shared::update_state(
            cells,
            cell,
            "a token bucket",
            bucket::State::decode,
            |state| {
                let (next, verdict) = bucket::take(state, rate, now_ms);
                (next.map(|n| n.encode()), verdict)
            },
        )
    }

    /// Updates a key's quota cell: `decide` gets what it holds and returns what to write
    /// (nothing: leave it) and the result.
    fn update_key_cell<T>(
        &self,
        cells: &dyn SharedCells,
        cell: &str,
        mut decide: impl FnMut(KeyCell) -> (Option<KeyCell>, T),
    ) -> Result<T, CellError> {
        shared::update_state(cells, cell, "a quota counter", KeyCell::decode, |state| {
            let (next, out) = decide(state.unwrap_or_default());
            (next.map(|n| n.encode()), out)
        })
    }

    /// Checks one request to operation `op` by `caller` (its key and that key's plan, when
    /// the method requires a key), counting it where it is admitted.
    pub fn check(
        &self,
        cells: &dyn SharedCells,
        op: usize,
        caller: Option<(&Key, usize)>,
        now_ms: u64,
    ) -> Check {
        match self.try_check(cells, op, caller, now_ms) {
            Ok(check) => check,
            Err(e) => self.failed(format!(
                "usage plan check failed due to an internal error: {e}"
            )),
        }
    }

    /// A check that could not be made, as `usage.onCheckFailure` says: refused, or served
    /// with `reason` logged.
    fn failed(&self, reason: String) -> Check {
        match self.on_failure {
            CheckFailure::Deny => Check {
                verdict: Err((GatewayError::UsageCheckFailed, reason)),
                ..Check::admitted()
            },
            CheckFailure::Allow => Check {
                log: Some(format!(
                    "{reason}; served without limits (onCheckFailure: ALLOW)"
                )),
                ..Check::admitted()
            },
        }
    }

    fn try_check(
        &self,
        cells: &dyn SharedCells,
        op: usize,
        caller: Option<(&Key, usize)>,
        now_ms: u64,
    ) -> Result<Check, CellError> {
        let usage = self.operations.get(op);
        let method = usage.map_or("", |o| o.method_key.as_str());
        let plan = caller.and_then(|(key, pi)| Some((key, pi, self.plans.get(pi)?)));
        let mut out = Check::admitted();
        let throttled = |plan: Option<usize>, retry_after_ms: Option<u64>, what: String| {
            let mut headers = Vec::new();
            if let (true, Some(ms)) = (self.rate_limit_headers, retry_after_ms) {
                headers.push((
                    "Retry-After".to_string(),
                    ms.div_ceil(1000).max(1).to_string(),
                ));
            }
            Check {
                verdict: Err((GatewayError::Throttled, what)),
                event: Some(UsageEvent {
                    plan,
                    kind: EventKind::Throttled,
                }),
                headers,
                log: None,
            }
        };
        // The plan-wide throttle of a key whose plan also has a quota lives in the key's
        // quota cell: without a stage throttle between them (API Gateway's order is the
        // key's throttle, the stage's, then the quota), one update takes a token and
        // counts the request.
        let shared_bucket = plan.and_then(|(_, _, p)| {
            let plan_wide = p
                .throttle
                .as_ref()
                .filter(|_| !p.method_throttle.contains_key(&op));
            plan_wide.zip(p.quota.as_ref())
        });
        let stage_rate = usage.and_then(|o| o.stage_rate);
        // 1. The key's usage-plan throttle: the method's own override, else the plan's.
        let mut counted = None;
        if let Some((key, pi, p)) = plan {
            let throttled_by_plan = |retry_after_ms| {
                throttled(
                    Some(pi),
                    retry_after_ms,
                    format!(
                        "API key {} exceeded the throttle of usage plan {} on {method}",
                        key.id, p.id
                    ),
                )
            };
            match shared_bucket {
                Some((rate, q)) => {
                    let cell = quota_cell(&p.id, &key.id);
                    let count = stage_rate.is_none();
                    let (take, standing) = self.update_key_cell(cells, &cell, |mut c| {
                        let (bucket, take) = bucket::take(c.bucket, rate, now_ms);
                        let Some(bucket) = bucket else {
                            return (None, (take, None));
                        };
                        c.bucket = Some(bucket);
                        if !count {
                            return (Some(c), (take, None));
                        }
                        let (quota, standing) = quota::consume(c.quota, q, now_ms);
                        let admitted = quota.is_some();
                        c.quota = quota.or(c.quota);
                        (Some(c), (take, Some((admitted, standing))))
                    })?;
                    if let Take::Throttled { retry_after_ms } = take {
                        return Ok(throttled_by_plan(retry_after_ms));
                    }
                    counted = standing;
                }
                None => {
                    let own = p.method_throttle.get(&op);
                    if let Some(rate) = own.or(p.throttle.as_ref()) {
                        let cell = plan_rate_cell(&p.id, &key.id, own.map(|_| method));
                        if let Take::Throttled { retry_after_ms } =
                            self.take(cells, &cell, rate, now_ms)?
                        {
                            return Ok(throttled_by_plan(retry_after_ms));
                        }
                    }
                }
            }
        }
        // 2. The stage's throttle of this method.
        if let Some(rate) = stage_rate {
            let cell = format!("{}{method}", self.stage_prefix);
            if let Take::Throttled { retry_after_ms } = self.take(cells, &cell, &rate, now_ms)? {
                return Ok(throttled(
                    None,
                    retry_after_ms,
                    format!("stage throttle of {method} exceeded"),
                ));
            }
        }
        // 3. The key's quota.
        if let Some((key, pi, p)) = plan {
            out.event = Some(UsageEvent {
                plan: Some(pi),
                kind: EventKind::Admitted,
            });
            if let Some(q) = &p.quota {
                let (admitted, standing) = match counted {
                    Some(done) => done,
                    None => self.update_key_cell(cells, &quota_cell(&p.id, &key.id), |mut c| {
                        let (quota, standing) = quota::consume(c.quota, q, now_ms);
                        let admitted = quota.is_some();
                        c.quota = quota.or(c.quota);
                        (admitted.then_some(c), (admitted, standing))
                    })?,
                };
                if self.rate_limit_headers {
                    let reset = standing.reset_ms.saturating_sub(now_ms).div_ceil(1000);
                    out.headers.extend([
                        ("X-RateLimit-Limit".to_string(), standing.limit.to_string()),
                        (
                            "X-RateLimit-Remaining".to_string(),
                            standing.remaining().to_string(),
                        ),
                        ("X-RateLimit-Reset".to_string(), reset.to_string()),
                    ]);
                    if !admitted {
                        out.headers
                            .push(("Retry-After".to_string(), reset.max(1).to_string()));
                    }
                }
                if !admitted {
                    out.verdict = Err((
                        GatewayError::QuotaExceeded,
                        format!(
                            "API key {} exhausted the quota of usage plan {} ({} per {:?})",
                            key.id, p.id, standing.limit, q.period
                        ),
                    ));
                    out.event = Some(UsageEvent {
                        plan: Some(pi),
                        kind: EventKind::QuotaExceeded,
                    });
                }
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests;
