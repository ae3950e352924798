//! Envoy stats of the filter, defined once per VM.
//!
//! Envoy lists them under the `wasmcustom.` prefix, e.g.
//! `wasmcustom.apigw_edge.requests.2xx`.

use std::rc::Rc;

use proxy_wasm::hostcalls;
use proxy_wasm::types::MetricType;

use crate::usage::{EventKind, UsageEvent};

#[derive(Debug, Default, Clone)]
pub struct Metrics {
    responses_2xx: Option<u32>,
    responses_4xx: Option<u32>,
    responses_5xx: Option<u32>,
    integration_errors: Option<u32>,
    integration_latency_ms: Option<u32>,
    cache_hit: Option<u32>,
    cache_miss: Option<u32>,
    cache_store: Option<u32>,
    cache_evict: Option<u32>,
    cache_invalidate: Option<u32>,
    cache_flush: Option<u32>,
    cache_errors: Option<u32>,
    cache_bytes: Option<u32>,
    stage_throttled: Option<u32>,
    authorizer_calls: Option<u32>,
    authorizer_cache_hits: Option<u32>,
    authorizer_errors: Option<u32>,
    authorizer_latency_ms: Option<u32>,
    token_verified: Option<u32>,
    token_cache_hits: Option<u32>,
    token_refused: Option<u32>,
    jwks_fetches: Option<u32>,
    jwks_fetch_errors: Option<u32>,
    ratelimit_calls: Option<u32>,
    ratelimit_errors: Option<u32>,
    ratelimit_latency_ms: Option<u32>,
    /// Per usage plan: admitted, throttled, quota exceeded.
    plans: Rc<Vec<[Option<u32>; 3]>>,
    /// Per stage and canary, when there are several: 2xx, 4xx, 5xx answers.
    variants: Rc<Vec<[Option<u32>; 3]>>,
}

pub use crate::cache::CacheEvent;

fn define(kind: MetricType, name: &str) -> Option<u32> {
    let id = hostcalls::define_metric(kind, name).ok();
    if id.is_none() {
        log::warn!("could not define metric {name}");
    }
    id
}

fn add(id: Option<u32>, n: i64) {
    if let (Some(id), true) = (id, n != 0) {
        let _ = hostcalls::increment_metric(id, n);
    }
}

impl Metrics {
    /// Defines every stat; `plans` are the usage plan ids and `variants` the names of the
    /// stages and canaries when there are several (each gets its own counters).
    pub fn define(plans: &[&str], variants: &[&str]) -> Self {
        let per_variant = variants
            .iter()
            .map(|label| {
                ["2xx", "4xx", "5xx"].map(|class| {
                    define(
                        MetricType::Counter,
                        &format!("apigw_edge.stages.{label}.requests.{class}"),
                    )
                })
            })
            .collect();
        let per_plan = plans
            .iter()
            .map(|id| {
                ["admitted", "throttled", "quota_exceeded"].map(|what| {
                    define(
                        MetricType::Counter,
                        &format!("apigw_edge.usage_plan.{id}.{what}"),
                    )
                })
            })
            .collect();
        Metrics {
            stage_throttled: define(MetricType::Counter, "apigw_edge.stage.throttled"),
            authorizer_calls: define(MetricType::Counter, "apigw_edge.authorizer.calls"),
            authorizer_cache_hits: define(MetricType::Counter, "apigw_edge.authorizer.cache_hit"),
            authorizer_errors: define(MetricType::Counter, "apigw_edge.authorizer.errors"),
            token_verified: define(MetricType::Counter, "apigw_edge.jwt.verified"),
            token_cache_hits: define(MetricType::Counter, "apigw_edge.jwt.cache_hit"),
            token_refused: define(MetricType::Counter, "apigw_edge.jwt.refused"),
            jwks_fetches: define(MetricType::Counter, "apigw_edge.jwt.jwks_fetch"),
            jwks_fetch_errors: define(MetricType::Counter, "apigw_edge.jwt.jwks_fetch_errors"),
            ratelimit_calls: define(MetricType::Counter, "apigw_edge.ratelimit.calls"),
            ratelimit_errors: define(MetricType::Counter, "apigw_edge.ratelimit.errors"),
            ratelimit_latency_ms: define(MetricType::Histogram, "apigw_edge.ratelimit.latency_ms"),
            authorizer_latency_ms: define(
                MetricType::Histogram,
                "apigw_edge.authorizer.latency_ms",
            ),
            plans: Rc::new(per_plan),
            variants: Rc::new(per_variant),
            responses_2xx: define(MetricType::Counter, "apigw_edge.requests.2xx"),
            responses_4xx: define(MetricType::Counter, "apigw_edge.requests.4xx"),
            responses_5xx: define(MetricType::Counter, "apigw_edge.requests.5xx"),
            integration_errors: define(MetricType::Counter, "apigw_edge.integration.errors"),
            integration_latency_ms: define(
                MetricType::Histogram,
                "apigw_edge.integration.latency_ms",
            ),
            cache_hit: define(MetricType::Counter, "apigw_edge.cache.hit"),
            cache_miss: define(MetricType::Counter, "apigw_edge.cache.miss"),
            cache_store: define(MetricType::Counter, "apigw_edge.cache.store"),
            cache_evict: define(MetricType::Counter, "apigw_edge.cache.evict"),
            cache_invalidate: define(MetricType::Counter, "apigw_edge.cache.invalidate"),
            cache_flush: define(MetricType::Counter, "apigw_edge.cache.flush"),
            cache_errors: define(MetricType::Counter, "apigw_edge.cache.errors"),
            // Every worker adds its own change, so the gauge is the total over workers.
            cache_bytes: define(MetricType::Gauge, "apigw_edge.cache.bytes"),
        }
    }

    /// Counts one cache event.
    pub fn cache(&self, event: CacheEvent) {
        let id = match event {
            CacheEvent::Hit => self.cache_hit,
            CacheEvent::Miss => self.cache_miss,
            CacheEvent::Invalidate => self.cache_invalidate,
            CacheEvent::Flush => self.cache_flush,
            CacheEvent::Error => self.cache_errors,
        };
        add(id, 1);
    }

    /// Records what a store into the cache did.
    pub fn cache_stored(&self, stored: &crate::cache::Stored) {
        if stored.stored {
            add(self.cache_store, 1);
        }
        add(
            self.cache_evict,
            i64::try_from(stored.evicted).unwrap_or(i64::MAX),
        );
        add(self.cache_bytes, stored.bytes_delta);
    }

    /// Counts what a usage check did.
    pub fn usage(&self, event: Option<UsageEvent>) {
        let Some(event) = event else { return };
        let column = match event.kind {
            EventKind::Admitted => 0,
            EventKind::Throttled => 1,
            EventKind::QuotaExceeded => 2,
        };
        let id = match event.plan {
            Some(p) => self
                .plans
                .get(p)
                .and_then(|ids| ids.get(column))
                .copied()
                .flatten(),
            None if event.kind == EventKind::Throttled => self.stage_throttled,
            None => None,
        };
        add(id, 1);
    }

    /// Records bytes freed outside a store (expired or invalidated entries dropped).
    pub fn cache_freed(&self, bytes: usize) {
        add(self.cache_bytes, -i64::try_from(bytes).unwrap_or(i64::MAX));
    }

    /// Counts one finished request by the class of its status.
    pub fn response(&self, status: u16) {
        let id = match status / 100 {
            2 => self.responses_2xx,
            4 => self.responses_4xx,
            5 => self.responses_5xx,
            _ => None,
        };
        if let Some(id) = id {
            let _ = hostcalls::increment_metric(id, 1);
        }
    }

    /// Counts one finished request of variant `i` by the class of its status (when the
    /// gateway serves several).
    pub fn variant_response(&self, i: usize, status: u16) {
        let column = match status / 100 {
            2 => 0,
            4 => 1,
            5 => 2,
            _ => return,
        };
        let id = self
            .variants
            .get(i)
            .and_then(|ids| ids.get(column))
            .copied()
            .flatten();
        add(id, 1);
    }

    /// Records what the pipeline reported.
    pub fn event(&self, event: crate::gateway::Event) {
        use crate::gateway::Event;
        match event {
            Event::Usage(u) => self.usage(Some(u)),
            Event::Cache(c) => self.cache(c),
            Event::CacheStored(s) => self.cache_stored(&s),
            Event::CacheFreed(bytes) => self.cache_freed(bytes),
            Event::Integration { latency_ms, failed } => self.integration(latency_ms, failed),
            Event::Authorizer { latency_ms, failed } => {
                match latency_ms {
                    Some(ms) => {
                        add(self.authorizer_calls, 1);
                        if let Some(id) = self.authorizer_latency_ms {
                            let _ = hostcalls::record_metric(id, ms);
                        }
                    }
                    None => add(self.authorizer_cache_hits, 1),
                }
                if failed {
                    add(self.authorizer_errors, 1);
                }
            }
            Event::Token { cached, refused } => {
                add(
                    if refused {
                        self.token_refused
                    } else if cached {
                        self.token_cache_hits
                    } else {
                        self.token_verified
                    },
                    1,
                );
            }
            Event::Notice(line) => log::warn!("{line}"),
            Event::RateLimit { latency_ms, failed } => {
                add(self.ratelimit_calls, 1);
                if failed {
                    add(self.ratelimit_errors, 1);
                }
                if let Some(id) = self.ratelimit_latency_ms {
                    let _ = hostcalls::record_metric(id, latency_ms);
                }
            }
        }
    }

    /// Counts one JWKS fetch and whether it failed.
    pub fn jwks_fetch(&self, failed: bool) {
        add(self.jwks_fetches, 1);
        if failed {
            add(self.jwks_fetch_errors, 1);
        }
    }

    /// Records one Invoke round trip.
    pub fn integration(&self, latency_ms: u64, failed: bool) {
        if let Some(id) = self.integration_latency_ms {
            let _ = hostcalls::record_metric(id, latency_ms);
        }
        if failed {
            if let Some(id) = self.integration_errors {
                let _ = hostcalls::increment_metric(id, 1);
            }
        }
    }
}
