//! The gateway's Envoy stats: their names and kinds, and what each thing the pipeline
//! reports adds to them.
//!
//! Owns: the catalogue (one list, whichever host defines the stats) and the mapping from
//! pipeline events, answers and cache actions to [`Op`]s on catalogue entries. Must not:
//! call a host; each glue defines the catalogue's entries with its host and applies the
//! ops it is handed ([`Sink`]).

use crate::cache::{CacheEvent, Stored};
use crate::gateway::Event;
use crate::usage::{EventKind, UsageEvent};

/// What kind of stat an entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    /// Every worker adds its own changes, so the value is the total over workers.
    Gauge,
    Histogram,
}

/// One change to a catalogue entry (by its index in [`Catalogue::defs`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// Adds to a counter or a gauge (a gauge may go down).
    Add(usize, i64),
    /// Records a value in a histogram.
    Record(usize, u64),
}

/// Carries out [`Op`]s with a host's stats.
pub trait Sink {
    fn apply(&self, op: Op);
}

/// The fixed entries, in catalogue order.
const FIXED: [(&str, Kind); 26] = [
    ("apigw_edge.requests.2xx", Kind::Counter),
    ("apigw_edge.requests.4xx", Kind::Counter),
    ("apigw_edge.requests.5xx", Kind::Counter),
    ("apigw_edge.integration.errors", Kind::Counter),
    ("apigw_edge.integration.latency_ms", Kind::Histogram),
    ("apigw_edge.cache.hit", Kind::Counter),
    ("apigw_edge.cache.miss", Kind::Counter),
    ("apigw_edge.cache.store", Kind::Counter),
    ("apigw_edge.cache.evict", Kind::Counter),
    ("apigw_edge.cache.invalidate", Kind::Counter),
    ("apigw_edge.cache.flush", Kind::Counter),
    ("apigw_edge.cache.errors", Kind::Counter),
    ("apigw_edge.cache.bytes", Kind::Gauge),
    ("apigw_edge.stage.throttled", Kind::Counter),
    ("apigw_edge.authorizer.calls", Kind::Counter),
    ("apigw_edge.authorizer.cache_hit", Kind::Counter),
    ("apigw_edge.authorizer.errors", Kind::Counter),
    ("apigw_edge.authorizer.latency_ms", Kind::Histogram),
    ("apigw_edge.jwt.verified", Kind::Counter),
    ("apigw_edge.jwt.cache_hit", Kind::Counter),
    ("apigw_edge.jwt.refused", Kind::Counter),
    ("apigw_edge.jwt.jwks_fetch", Kind::Counter),
    ("apigw_edge.jwt.jwks_fetch_errors", Kind::Counter),
    ("apigw_edge.ratelimit.calls", Kind::Counter),
    ("apigw_edge.ratelimit.errors", Kind::Counter),
    ("apigw_edge.ratelimit.latency_ms", Kind::Histogram),
];

const REQUESTS_2XX: usize = 0;
const INTEGRATION_ERRORS: usize = 3;
const INTEGRATION_LATENCY: usize = 4;
const CACHE_HIT: usize = 5;
const CACHE_MISS: usize = 6;
const CACHE_STORE: usize = 7;
const CACHE_EVICT: usize = 8;
const CACHE_INVALIDATE: usize = 9;
const CACHE_FLUSH: usize = 10;
const CACHE_ERRORS: usize = 11;
const CACHE_BYTES: usize = 12;
const STAGE_THROTTLED: usize = 13;
const AUTHORIZER_CALLS: usize = 14;
const AUTHORIZER_CACHE_HIT: usize = 15;
const AUTHORIZER_ERRORS: usize = 16;
const AUTHORIZER_LATENCY: usize = 17;
const JWT_VERIFIED: usize = 18;
const JWT_CACHE_HIT: usize = 19;
const JWT_REFUSED: usize = 20;
const JWKS_FETCH: usize = 21;
const JWKS_FETCH_ERRORS: usize = 22;
const RATELIMIT_CALLS: usize = 23;
const RATELIMIT_ERRORS: usize = 24;
const RATELIMIT_LATENCY: usize = 25;

/// Up to three ops one report makes.
pub type Ops = [Option<Op>; 3];

/// Every stat of one gateway: the fixed ones, then three per usage plan (admitted,
/// throttled, quota exceeded), then three per stage and canary when there are several (2xx,
/// 4xx, 5xx answers).
#[derive(Debug, Clone)]
pub struct Catalogue {
    defs: Vec<(String, Kind)>,
    plans: usize,
    variants: usize,
}

impl Catalogue {
    /// The catalogue of a gateway with usage plans `plans` and, when it serves several,
    /// stages and canaries `variants`.
    pub fn new(plans: &[&str], variants: &[&str]) -> Self {
        let mut defs: Vec<(String, Kind)> = FIXED
            .iter()
            .map(|(name, kind)| ((*name).to_string(), *kind))
            .collect();
        for id in plans {
            for what in ["admitted", "throttled", "quota_exceeded"] {
                defs.push((format!("apigw_edge.usage_plan.{id}.{what}"), Kind::Counter));
            }
        }
        for label in variants {
            for class in ["2xx", "4xx", "5xx"] {
                defs.push((
                    format!("apigw_edge.stages.{label}.requests.{class}"),
                    Kind::Counter,
                ));
            }
        }
        Catalogue {
            defs,
            plans: plans.len(),
            variants: variants.len(),
        }
    }

    /// Name and kind of every entry, by index.
    pub fn defs(&self) -> &[(String, Kind)] {
        &self.defs
    }

    /// One finished request, counted by the class of its status (and by its variant's when
    /// the gateway serves several).
    pub fn response(&self, variant: usize, status: u16) -> Ops {
        let Some(column) = class_column(status) else {
            return [None; 3];
        };
        let per_variant = (variant < self.variants)
            .then(|| Op::Add(self.variant_base() + variant * 3 + column, 1));
        [Some(Op::Add(REQUESTS_2XX + column, 1)), per_variant, None]
    }

    /// One cache action.
    pub fn cache(&self, event: CacheEvent) -> Op {
        let i = match event {
            CacheEvent::Hit => CACHE_HIT,
            CacheEvent::Miss => CACHE_MISS,
            CacheEvent::Invalidate => CACHE_INVALIDATE,
            CacheEvent::Flush => CACHE_FLUSH,
            CacheEvent::Error => CACHE_ERRORS,
        };
        Op::Add(i, 1)
    }

    /// One JWKS fetch and whether it failed.
    pub fn jwks_fetch(&self, failed: bool) -> Ops {
        [
            Some(Op::Add(JWKS_FETCH, 1)),
            failed.then_some(Op::Add(JWKS_FETCH_ERRORS, 1)),
            None,
        ]
    }

    /// What one pipeline report adds (a notice adds nothing: the glue logs it).
    pub fn event(&self, event: &Event) -> Ops {
        match event {
            Event::Usage(u) => [self.usage(u), None, None],
            Event::Cache(c) => [Some(self.cache(*c)), None, None],
            Event::CacheStored(s) => stored(s),
            Event::CacheFreed(bytes) => [
                Some(Op::Add(CACHE_BYTES, -saturate(*bytes as u64))),
                None,
                None,
            ],
            Event::Integration { latency_ms, failed } => [
                Some(Op::Record(INTEGRATION_LATENCY, *latency_ms)),
                failed.then_some(Op::Add(INTEGRATION_ERRORS, 1)),
                None,
            ],
            Event::Authorizer { latency_ms, failed } => {
                let (first, second) = match latency_ms {
                    Some(ms) => (
                        Op::Add(AUTHORIZER_CALLS, 1),
                        Some(Op::Record(AUTHORIZER_LATENCY, *ms)),
                    ),
                    None => (Op::Add(AUTHORIZER_CACHE_HIT, 1), None),
                };
                [
                    Some(first),
                    second,
                    failed.then_some(Op::Add(AUTHORIZER_ERRORS, 1)),
                ]
            }
            Event::Token { cached, refused } => {
                let i = if *refused {
                    JWT_REFUSED
                } else if *cached {
                    JWT_CACHE_HIT
                } else {
                    JWT_VERIFIED
                };
                [Some(Op::Add(i, 1)), None, None]
            }
            Event::Notice(_) => [None; 3],
            Event::RateLimit { latency_ms, failed } => [
                Some(Op::Add(RATELIMIT_CALLS, 1)),
                failed.then_some(Op::Add(RATELIMIT_ERRORS, 1)),
                Some(Op::Record(RATELIMIT_LATENCY, *latency_ms)),
            ],
        }
    }

    fn usage(&self, event: &UsageEvent) -> Option<Op> {
        let column = match event.kind {
            EventKind::Admitted => 0,
            EventKind::Throttled => 1,
            EventKind::QuotaExceeded => 2,
        };
        match event.plan {
            Some(p) if p < self.plans => Some(Op::Add(FIXED.len() + p * 3 + column, 1)),
            Some(_) => None,
            None if event.kind == EventKind::Throttled => Some(Op::Add(STAGE_THROTTLED, 1)),
            None => None,
        }
    }

    fn variant_base(&self) -> usize {
        FIXED.len() + self.plans * 3
    }
}

/// Applies every op of `ops` to `sink`.
pub fn apply(sink: &dyn Sink, ops: Ops) {
    for op in ops.into_iter().flatten() {
        sink.apply(op);
    }
}

fn stored(s: &Stored) -> Ops {
    [
        s.stored.then_some(Op::Add(CACHE_STORE, 1)),
        (s.evicted > 0).then(|| Op::Add(CACHE_EVICT, saturate(s.evicted as u64))),
        (s.bytes_delta != 0).then_some(Op::Add(CACHE_BYTES, s.bytes_delta)),
    ]
}

fn class_column(status: u16) -> Option<usize> {
    match status / 100 {
        2 => Some(0),
        4 => Some(1),
        5 => Some(2),
        _ => None,
    }
}

fn saturate(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests;
