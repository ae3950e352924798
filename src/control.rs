//! The control listener: operator actions against a running gateway.
//!
//! The rendered Envoy configuration can carry a second listener (deployment field `control`,
//! loopback by default in examples) whose wasm filter runs in this role instead of serving
//! the API. It shares the gateway's VM id, so it reaches the same shared data. Owns: the
//! control filter's configuration and the answers to its requests:
//! - `POST /cache/flush`: flush the stage cache on every worker (bumps the flush generation);
//! - `GET /cache`: the current flush generation;
//! - `GET /usage/{keyId}`: the key's quota standing (limit, used, remaining, reset);
//! - the same under `/stages/{stage}/...` for any stage of a multi-stage deployment (the
//!   unprefixed paths act on the first stage).
//!
//! Must not: serve API traffic or read anything but shared data, which it reaches through
//! [`SharedCells`] so this module stays host-independent.

use serde::{Deserialize, Serialize};

use crate::cache;
use crate::config::{Deployment, QuotaSettings};
use crate::http::Reply;
use crate::shared::{self, SharedCells};
use crate::usage::{quota, quota_cell, KeyCell};

/// What the control filter is configured with.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ControlConfig {
    pub api_id: String,
    pub stage: String,
    /// Every stage of a multi-stage deployment (`/stages/{stage}/...` reaches any of them).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stages: Vec<String>,
    /// The quota of every key whose usage plan has one, for `GET /usage/{keyId}`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub quotas: Vec<KeyQuota>,
}

/// One key's quota, as the control listener reports it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct KeyQuota {
    pub key_id: String,
    pub plan_id: String,
    pub quota: QuotaSettings,
}

impl ControlConfig {
    /// The control configuration of a deployment's stages (the first one is the default).
    pub fn of(d: &Deployment) -> ControlConfig {
        let stages: Vec<String> = d.stages.iter().map(|s| s.name.clone()).collect();
        let first = stages.first().cloned().unwrap_or_else(|| d.stage.clone());
        let serves = |s: &String| {
            if stages.is_empty() {
                *s == d.stage
            } else {
                stages.contains(s)
            }
        };
        let quotas = d
            .usage_plans
            .iter()
            .filter(|p| p.stages.as_ref().is_none_or(|s| s.iter().any(serves)))
            .filter_map(|p| Some((p, p.quota?)))
            .flat_map(|(p, quota)| {
                p.api_keys.iter().map(move |k| KeyQuota {
                    key_id: k.clone(),
                    plan_id: p.id.clone(),
                    quota,
                })
            })
            .collect();
        ControlConfig {
            api_id: d.api.id.clone(),
            stage: first,
            stages,
            quotas,
        }
    }
}

fn usage(cfg: &ControlConfig, key_id: &str, cells: &dyn SharedCells, now_ms: u64) -> Reply {
    let Some(kq) = cfg.quotas.iter().find(|q| q.key_id == key_id) else {
        return json(
            404,
            &serde_json::json!({"message": format!("no usage plan with a quota holds key `{key_id}` in stage `{}`", cfg.stage)}),
        );
    };
    let cell = quota_cell(&kq.plan_id, &kq.key_id);
    let state = match cells.get(&cell) {
        Ok((None, _)) => None,
        Ok((Some(v), _)) => match KeyCell::decode(&v) {
            Some(state) => state.quota,
            None => {
                return json(
                    503,
                    &serde_json::json!({"message": format!("cell {cell} does not hold a quota counter")}),
                )
            }
        },
        Err(e) => return json(503, &serde_json::json!({"message": e.to_string()})),
    };
    let standing = quota::standing(state, &kq.quota, now_ms);
    json(
        200,
        &serde_json::json!({
            "keyId": kq.key_id,
            "planId": kq.plan_id,
            "period": kq.quota.period,
            "limit": standing.limit,
            "used": standing.used,
            "remaining": standing.remaining(),
            "windowStartMs": standing.window_start_ms,
            "resetMs": standing.reset_ms,
        }),
    )
}

fn json(status: u16, value: &serde_json::Value) -> Reply {
    Reply::json(status, value.to_string())
}

/// Answers one control request; the second value is a line to log, if any.
pub fn handle(
    cfg: &ControlConfig,
    method: &str,
    path: &str,
    cells: &dyn SharedCells,
    now_ms: u64,
) -> (Reply, Option<String>) {
    let path = path.split('?').next().unwrap_or_default();
    if let Some(rest) = path.strip_prefix("/stages/") {
        let (name, rest) = rest.split_once('/').unwrap_or((rest, ""));
        if !cfg.stages.iter().any(|s| s == name) && cfg.stage != name {
            return (
                json(
                    404,
                    &serde_json::json!({"message": format!("no stage `{name}`")}),
                ),
                None,
            );
        }
        let one = ControlConfig {
            stage: name.to_string(),
            stages: Vec::new(),
            ..cfg.clone()
        };
        return handle(&one, method, &format!("/{rest}"), cells, now_ms);
    }
    if let Some(key_id) = path.strip_prefix("/usage/") {
        if method != "GET" {
            let mut r = json(405, &serde_json::json!({"message": "Method Not Allowed"}));
            r.headers.push(("Allow".into(), "GET".into()));
            return (r, None);
        }
        return (usage(cfg, key_id, cells, now_ms), None);
    }
    let prefix = cache::shared_prefix(&cfg.api_id, &cfg.stage);
    match (method, path.trim_end_matches('/')) {
        ("POST", "/authorizers/flush") => {
            let cell = crate::gateway::authorizer_flush_cell(&cfg.api_id, &cfg.stage);
            match shared::increment(cells, &cell) {
                Ok(generation) => (
                    json(
                        200,
                        &serde_json::json!({"flushed": true, "stage": cfg.stage, "authorizerGeneration": generation}),
                    ),
                    Some(format!(
                        "stage `{}` authorizer results flushed (generation {generation})",
                        cfg.stage
                    )),
                ),
                Err(e) => (
                    json(
                        503,
                        &serde_json::json!({"message": format!("flush failed: {e}")}),
                    ),
                    Some(format!(
                        "stage `{}` authorizer flush failed: {e}",
                        cfg.stage
                    )),
                ),
            }
        }
        (_, "/authorizers/flush") => {
            let mut r = json(405, &serde_json::json!({"message": "Method Not Allowed"}));
            r.headers.push(("Allow".into(), "POST".into()));
            (r, None)
        }
        ("POST", "/cache/flush") => match cache::flush(cells, &prefix) {
            Ok(generation) => (
                json(
                    200,
                    &serde_json::json!({"flushed": true, "stage": cfg.stage, "generation": generation}),
                ),
                Some(format!(
                    "stage `{}` cache flushed (generation {generation})",
                    cfg.stage
                )),
            ),
            Err(e) => (
                json(
                    503,
                    &serde_json::json!({"message": format!("flush failed: {e}")}),
                ),
                Some(format!("stage `{}` cache flush failed: {e}", cfg.stage)),
            ),
        },
        ("GET", "/cache") => match shared::read(cells, &cache::flush_cell(&prefix)) {
            Ok(generation) => (
                json(
                    200,
                    &serde_json::json!({"stage": cfg.stage, "flushGeneration": generation}),
                ),
                None,
            ),
            Err(e) => (
                json(503, &serde_json::json!({"message": e.to_string()})),
                None,
            ),
        },
        (_, "/cache/flush") | (_, "/cache") => {
            let mut r = json(405, &serde_json::json!({"message": "Method Not Allowed"}));
            let allow = if path.starts_with("/cache/flush") {
                "POST"
            } else {
                "GET"
            };
            r.headers.push(("Allow".into(), allow.into()));
            (r, None)
        }
        _ => (
            json(404, &serde_json::json!({"message": "Not Found"})),
            None,
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shared::memory::Cells;

    fn cfg() -> ControlConfig {
        ControlConfig {
            api_id: "local".into(),
            stage: "prod".into(),
            stages: vec!["prod".into(), "dev".into()],
            quotas: vec![KeyQuota {
                key_id: "k".into(),
                plan_id: "p".into(),
                quota: QuotaSettings {
                    limit: 10,
                    offset: 0,
                    period: crate::config::QuotaPeriod::Day,
                },
            }],
        }
    }

    #[test]
    fn stage_paths_act_on_that_stage() {
        let cells = Cells::default();
        let dev = cache::flush_cell(&cache::shared_prefix("local", "dev"));
        let prod = cache::flush_cell(&cache::shared_prefix("local", "prod"));
        let (r, _) = handle(&cfg(), "POST", "/stages/dev/cache/flush", &cells, 0);
        assert_eq!(r.status, 200);
        assert_eq!(shared::read(&cells, &dev).unwrap(), 1);
        assert_eq!(shared::read(&cells, &prod).unwrap(), 0);
        let (r, _) = handle(&cfg(), "POST", "/cache/flush", &cells, 0);
        assert_eq!(r.status, 200);
        assert_eq!(shared::read(&cells, &prod).unwrap(), 1);
        let (r, _) = handle(&cfg(), "GET", "/stages/dev/cache", &cells, 0);
        assert!(String::from_utf8_lossy(&r.body).contains("\"dev\""));
        let (r, _) = handle(&cfg(), "POST", "/stages/qa/cache/flush", &cells, 0);
        assert_eq!(r.status, 404);
        let (r, _) = handle(&cfg(), "GET", "/stages/dev/usage/k", &cells, 0);
        assert_eq!(r.status, 200);
    }

    #[test]
    fn authorizer_flush_moves_the_shared_generation() {
        let cells = Cells::default();
        let cell = crate::gateway::authorizer_flush_cell("local", "prod");
        for want in [1, 2] {
            let (r, log) = handle(&cfg(), "POST", "/authorizers/flush", &cells, 1_000);
            assert_eq!(r.status, 200);
            assert!(log.unwrap().contains("authorizer results flushed"));
            assert_eq!(shared::read(&cells, &cell).unwrap(), want);
        }
        let (r, _) = handle(&cfg(), "GET", "/authorizers/flush", &cells, 1_000);
        assert_eq!(r.status, 405);
    }

    #[test]
    fn usage_reports_the_quota_standing() {
        let cells = Cells::default();
        let (r, _) = handle(&cfg(), "GET", "/usage/k", &cells, 1_000);
        let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(
            (v["used"].as_u64(), v["remaining"].as_u64()),
            (Some(0), Some(10))
        );
        // Count three requests the way the gateway does.
        let q = cfg().quotas[0].quota;
        let mut state = None;
        for _ in 0..3 {
            state = quota::consume(state, &q, 1_000).0;
        }
        cells
            .set(&quota_cell("p", "k"), &state.unwrap().encode(), 0)
            .unwrap();
        let (r, _) = handle(&cfg(), "GET", "/usage/k", &cells, 2_000);
        let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(
            (v["used"].as_u64(), v["remaining"].as_u64()),
            (Some(3), Some(7))
        );
        assert_eq!(v["resetMs"].as_u64(), Some(86_400_000));
        assert_eq!(v["period"], "DAY");
        let (r, _) = handle(&cfg(), "GET", "/usage/other", &cells, 0);
        assert_eq!(r.status, 404);
        let (r, _) = handle(&cfg(), "POST", "/usage/k", &cells, 0);
        assert_eq!(r.status, 405);
    }

    #[test]
    fn flush_bumps_the_generation_the_cache_reads() {
        let cells = Cells::default();
        let (r, log) = handle(&cfg(), "GET", "/cache", &cells, 0);
        assert_eq!(
            (r.status, r.body_text()),
            (200, r#"{"flushGeneration":0,"stage":"prod"}"#.into())
        );
        assert!(log.is_none());
        let (r, log) = handle(&cfg(), "POST", "/cache/flush", &cells, 0);
        assert_eq!(r.status, 200);
        assert_eq!(
            r.body_text(),
            r#"{"flushed":true,"generation":1,"stage":"prod"}"#
        );
        assert!(log.unwrap().contains("flushed"));
        // The flush generation moved, and the epoch a lookup reads first, so that hits
        // check the generations again.
        let prefix = cache::shared_prefix("local", "prod");
        assert_eq!(shared::read(&cells, &cache::flush_cell(&prefix)), Ok(1));
        assert_eq!(shared::read(&cells, &cache::epoch_cell(&prefix)), Ok(1));
        // Another stage's cells are untouched.
        let other = cache::shared_prefix("local", "dev");
        assert_eq!(shared::read(&cells, &cache::flush_cell(&other)), Ok(0));
        assert_eq!(shared::read(&cells, &cache::epoch_cell(&other)), Ok(0));
    }

    #[test]
    fn other_requests_table() {
        let cells = Cells::default();
        for (method, path, status) in [
            ("GET", "/cache/flush", 405),
            ("DELETE", "/cache", 405),
            ("GET", "/", 404),
            ("POST", "/flush", 404),
            ("GET", "/cache/?x=1", 200),
        ] {
            let (r, _) = handle(&cfg(), method, path, &cells, 0);
            assert_eq!(r.status, status, "{method} {path}");
        }
        cells.fail.set(true);
        let (r, log) = handle(&cfg(), "POST", "/cache/flush", &cells, 0);
        assert_eq!(r.status, 503);
        assert!(log.unwrap().contains("failed"));
    }
}
