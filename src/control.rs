//! The control listener: operator actions against a running gateway.
//!
//! The rendered Envoy configuration can carry a second listener (deployment field `control`,
//! loopback by default in examples) whose wasm filter runs in this role instead of serving
//! the API. It shares the gateway's VM id, so it reaches the same shared data. Owns: the
//! control filter's configuration and the answers to its requests:
//! - `POST /cache/flush`: flush the stage cache on every worker (bumps the flush generation);
//! - `GET /cache`: the current flush generation.
//!
//! Must not: serve API traffic or read anything but shared data, which it reaches through
//! [`SharedCells`] so this module stays host-independent.

use serde::{Deserialize, Serialize};

use crate::cache;
use crate::http::Reply;
use crate::shared::{self, SharedCells};

/// What the control filter is configured with.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ControlConfig {
    pub api_id: String,
    pub stage: String,
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
) -> (Reply, Option<String>) {
    let path = path.split('?').next().unwrap_or_default();
    let flush = cache::flush_cell(&cache::shared_prefix(&cfg.api_id, &cfg.stage));
    match (method, path.trim_end_matches('/')) {
        ("POST", "/cache/flush") => match shared::increment(cells, &flush) {
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
        ("GET", "/cache") => match shared::read(cells, &flush) {
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
        }
    }

    #[test]
    fn flush_bumps_the_generation_the_cache_reads() {
        let cells = Cells::default();
        let (r, log) = handle(&cfg(), "GET", "/cache", &cells);
        assert_eq!(
            (r.status, r.body_text()),
            (200, r#"{"flushGeneration":0,"stage":"prod"}"#.into())
        );
        assert!(log.is_none());
        let (r, log) = handle(&cfg(), "POST", "/cache/flush", &cells);
        assert_eq!(r.status, 200);
        assert_eq!(
            r.body_text(),
            r#"{"flushed":true,"generation":1,"stage":"prod"}"#
        );
        assert!(log.unwrap().contains("flushed"));
        let cell = cache::flush_cell(&cache::shared_prefix("local", "prod"));
        assert_eq!(shared::read(&cells, &cell), Ok(1));
        // Another stage's cells are untouched.
        let other = cache::flush_cell(&cache::shared_prefix("local", "dev"));
        assert_eq!(shared::read(&cells, &other), Ok(0));
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
            let (r, _) = handle(&cfg(), method, path, &cells);
            assert_eq!(r.status, status, "{method} {path}");
        }
        cells.fail.set(true);
        let (r, log) = handle(&cfg(), "POST", "/cache/flush", &cells);
        assert_eq!(r.status, 503);
        assert!(log.unwrap().contains("failed"));
    }
}
