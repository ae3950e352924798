//! The limits a fleet's rate-limit service needs, written for the engines users run:
//! Kuadrant's Limitador (a list of limits in a namespace, conditions and variables over
//! `descriptors[i]`) and Envoy's reference service (a domain and a tree of descriptors).
//!
//! Owns: turning each stage's compiled throttles and each plan's throttles and quota into
//! one limit per counter the gateway's descriptors (see [`super::fleet`]) name, and how a
//! token-bucket throttle becomes the fixed window these engines count in: Limitador gets a
//! window of `burst / rate` seconds holding `burst` requests (the same long-run rate, bursts
//! up to `burst`); Envoy's service has second, minute and hour units, so a throttle becomes
//! `rate` per second (per minute or hour when below one per second) and its burst is not
//! expressed. Quotas count per window value, so their periods are the gateway's calendar
//! periods. Must not: talk to an engine.

use serde_json::{json, Value};

use super::bucket::Rate;
use super::UsagePlans;
use crate::config::QuotaPeriod;

/// An engine `ratelimit-config` writes for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    Limitador,
    EnvoyRatelimit,
}

impl Engine {
    pub fn parse(s: &str) -> Option<Engine> {
        match s {
            "limitador" => Some(Engine::Limitador),
            "envoy-ratelimit" => Some(Engine::EnvoyRatelimit),
            _ => None,
        }
    }
}

/// One counter the gateway asks about.
#[derive(Debug, Clone, PartialEq)]
enum Limit {
    /// A stage's throttle of one method (descriptor 0).
    Stage {
        stage: String,
        method: String,
        rate: Rate,
    },
    /// A plan's throttle, per key, across the methods without their own (descriptor 1).
    Plan { plan: String, rate: Rate },
    /// A plan's throttle of one method, per key (descriptor 1).
    PlanMethod {
        plan: String,
        method: String,
        rate: Rate,
    },
    /// A plan's quota, per key and window (descriptor 0 of the quota call).
    Quota {
        plan: String,
        limit: u64,
        period: QuotaPeriod,
    },
}

impl UsagePlans {
    /// The counters of this stage (plans come once per stage that has them; see
    /// [`config`], which keeps the first).
    fn limits(&self, stage: &str) -> Vec<Limit> {
        let mut out = Vec::new();
        for o in &self.operations {
            if let Some(rate) = o.stage_rate {
                out.push(Limit::Stage {
                    stage: stage.to_string(),
                    method: o.method_key.clone(),
                    rate,
                });
            }
        }
        for p in &self.plans {
            if let Some(rate) = p.throttle {
                out.push(Limit::Plan {
                    plan: p.id.clone(),
                    rate,
                });
            }
            for (op, rate) in &p.method_throttle {
                let method = self
                    .operations
                    .get(*op)
                    .map_or(String::new(), |o| o.method_key.clone());
                out.push(Limit::PlanMethod {
                    plan: p.id.clone(),
                    method,
                    rate: *rate,
                });
            }
            if let Some(q) = p.quota {
                out.push(Limit::Quota {
                    plan: p.id.clone(),
                    limit: q.limit,
                    period: q.period,
                });
            }
        }
        out
    }
}

/// A CEL string literal.
fn lit(s: &str) -> String {
    format!("'{}'", s.replace('\\', "\\\\").replace('\'', "\\'"))
}

fn per_second(rate: &Rate) -> f64 {
    rate.per_second_micro as f64 / 1_000_000.0
}

/// Limitador's window for a throttle: (max value, seconds).
fn limitador_window(rate: &Rate) -> (u64, u64) {
    let r = per_second(rate);
    if r <= 0.0 {
        return (rate.burst, 366 * 86_400);
    }
    let seconds = (rate.burst.max(1) as f64 / r).ceil().max(1.0) as u64;
    (rate.burst, seconds)
}

fn period_seconds(p: QuotaPeriod) -> u64 {
    match p {
        QuotaPeriod::Day => 86_400,
        QuotaPeriod::Week => 7 * 86_400,
        QuotaPeriod::Month => 31 * 86_400,
    }
}

fn limitador_limit(namespace: &str, l: &Limit) -> Value {
    let d = |i: usize, k: &str, v: &str| format!("descriptors[{i}].{k} == {}", lit(v));
    let (name, max, seconds, conditions, variables): (String, u64, u64, Vec<String>, Vec<&str>) =
        match l {
            Limit::Stage {
                stage,
                method,
                rate,
            } => {
                let (max, seconds) = limitador_window(rate);
                (
                    format!("stage {stage} {method}"),
                    max,
                    seconds,
                    vec![
                        d(0, "check", "stage_throttle"),
                        d(0, "stage", stage),
                        d(0, "method", method),
                    ],
                    vec![],
                )
            }
            Limit::Plan { plan, rate } => {
                let (max, seconds) = limitador_window(rate);
                (
                    format!("plan {plan} throttle"),
                    max,
                    seconds,
                    vec![d(1, "check", "plan_throttle"), d(1, "plan", plan)],
                    vec!["descriptors[1].key"],
                )
            }
            Limit::PlanMethod { plan, method, rate } => {
                let (max, seconds) = limitador_window(rate);
                (
                    format!("plan {plan} {method}"),
                    max,
                    seconds,
                    vec![
                        d(1, "check", "plan_method_throttle"),
                        d(1, "plan", plan),
                        d(1, "method", method),
                    ],
                    vec!["descriptors[1].key"],
                )
            }
            Limit::Quota {
                plan,
                limit,
                period,
            } => (
                format!("plan {plan} quota"),
                *limit,
                period_seconds(*period),
                vec![d(0, "check", "quota"), d(0, "plan", plan)],
                vec!["descriptors[0].key", "descriptors[0].window"],
            ),
        };
    // One condition: `&&` stops at the first entry that differs, so the other entries of
    // another kind of descriptor are never read.
    json!({
        "name": name,
        "namespace": namespace,
        "max_value": max,
        "seconds": seconds,
        "conditions": [conditions.join(" && ")],
        "variables": variables,
    })
}

/// Envoy's service: a unit and requests per unit for a throttle.
fn envoy_rate(rate: &Rate) -> Value {
    let r = per_second(rate);
    let (unit, n) = if r >= 1.0 {
        ("second", r.ceil())
    } else if r * 60.0 >= 1.0 {
        ("minute", (r * 60.0).ceil())
    } else {
        ("hour", (r * 3600.0).ceil().max(1.0))
    };
    json!({"unit": unit, "requests_per_unit": n as u64})
}

/// Adds a path of descriptor entries (key, value or any) ending in a rate limit to the
/// tree, merging paths that share a beginning (the service refuses a level that names the
/// same key and value twice).
fn insert(level: &mut Vec<Value>, path: &[(&str, Option<&str>)], rate: &Value) {
    let Some(((key, value), rest)) = path.split_first() else {
        return;
    };
    let same = |n: &Value| {
        n.get("key").and_then(Value::as_str) == Some(*key)
            && n.get("value").and_then(Value::as_str) == *value
    };
    let i = match level.iter().position(same) {
        Some(i) => i,
        None => {
            let mut n = json!({ "key": key });
            if let (Some(v), Some(obj)) = (value, n.as_object_mut()) {
                obj.insert("value".into(), json!(v));
            }
            level.push(n);
            level.len() - 1
        }
    };
    let Some(Value::Object(node)) = level.get_mut(i) else {
        return;
    };
    if rest.is_empty() {
        node.insert("rate_limit".into(), rate.clone());
        return;
    }
    let children = node
        .entry("descriptors")
        .or_insert_with(|| Value::Array(Vec::new()));
    if let Value::Array(children) = children {
        insert(children, rest, rate);
    }
}

/// The path of entries and the rate limit of a counter in Envoy's service.
fn envoy_path(l: &Limit) -> (Vec<(&str, Option<&str>)>, Value) {
    match l {
        Limit::Stage {
            stage,
            method,
            rate,
        } => (
            vec![
                ("check", Some("stage_throttle")),
                ("stage", Some(stage)),
                ("method", Some(method)),
            ],
            envoy_rate(rate),
        ),
        Limit::Plan { plan, rate } => (
            vec![
                ("check", Some("plan_throttle")),
                ("plan", Some(plan)),
                ("key", None),
            ],
            envoy_rate(rate),
        ),
        Limit::PlanMethod { plan, method, rate } => (
            vec![
                ("check", Some("plan_method_throttle")),
                ("plan", Some(plan)),
                ("key", None),
                ("method", Some(method)),
            ],
            envoy_rate(rate),
        ),
        Limit::Quota {
            plan,
            limit,
            period,
        } => {
            let unit = match period {
                QuotaPeriod::Day => "day",
                QuotaPeriod::Week => "week",
                QuotaPeriod::Month => "month",
            };
            (
                vec![
                    ("check", Some("quota")),
                    ("plan", Some(plan)),
                    ("key", None),
                    ("window", None),
                ],
                json!({"unit": unit, "requests_per_unit": limit}),
            )
        }
    }
}

/// The configuration of `engine` for the stages' usage checks (`stages`: each stage's
/// name and compiled usage plans; plans shared by stages are written once).
pub fn config(engine: Engine, domain: &str, stages: &[(&str, &UsagePlans)]) -> Value {
    let mut limits: Vec<Limit> = Vec::new();
    for (stage, usage) in stages {
        for l in usage.limits(stage) {
            if !limits.contains(&l) {
                limits.push(l);
            }
        }
    }
    match engine {
        Engine::Limitador => {
            Value::Array(limits.iter().map(|l| limitador_limit(domain, l)).collect())
        }
        Engine::EnvoyRatelimit => {
            let mut tree = Vec::new();
            for l in &limits {
                let (path, rate) = envoy_path(l);
                insert(&mut tree, &path, &rate);
            }
            json!({ "domain": domain, "descriptors": tree })
        }
    }
}

#[cfg(test)]
mod tests;
