use super::*;
use crate::cache::{CacheEvent, Stored};
use crate::gateway::Event;
use crate::usage::{EventKind, UsageEvent};

fn names(cat: &Catalogue, ops: Ops) -> Vec<String> {
    ops.into_iter()
        .flatten()
        .map(|op| {
            let (i, v) = match op {
                Op::Add(i, n) => (i, n.to_string()),
                Op::Record(i, v) => (i, format!("={v}")),
            };
            format!("{} {v}", cat.defs()[i].0)
        })
        .collect()
}

#[test]
fn the_catalogue_lists_fixed_plan_and_variant_stats() {
    let cat = Catalogue::new(&["gold"], &["prod", "prod.canary"]);
    let defs = cat.defs();
    assert_eq!(defs.len(), FIXED.len() + 3 + 6);
    assert_eq!(
        defs[0],
        ("apigw_edge.requests.2xx".to_string(), Kind::Counter)
    );
    assert_eq!(defs[CACHE_BYTES].1, Kind::Gauge);
    assert_eq!(defs[RATELIMIT_LATENCY].0, "apigw_edge.ratelimit.latency_ms");
    assert_eq!(
        defs[FIXED.len() + 2].0,
        "apigw_edge.usage_plan.gold.quota_exceeded"
    );
    assert_eq!(
        defs.last().map(|d| d.0.as_str()),
        Some("apigw_edge.stages.prod.canary.requests.5xx")
    );
}

#[test]
fn each_report_adds_what_it_should() {
    let cat = Catalogue::new(&["gold"], &["dev", "prod"]);
    let usage = |plan, kind| Event::Usage(UsageEvent { plan, kind });
    let table: Vec<(Ops, Vec<&str>)> = vec![
        (
            cat.response(0, 200),
            vec![
                "apigw_edge.requests.2xx 1",
                "apigw_edge.stages.dev.requests.2xx 1",
            ],
        ),
        (
            cat.response(1, 503),
            vec![
                "apigw_edge.requests.5xx 1",
                "apigw_edge.stages.prod.requests.5xx 1",
            ],
        ),
        (cat.response(0, 302), vec![]),
        (cat.response(7, 404), vec!["apigw_edge.requests.4xx 1"]),
        (
            cat.event(&usage(Some(0), EventKind::Throttled)),
            vec!["apigw_edge.usage_plan.gold.throttled 1"],
        ),
        (
            cat.event(&usage(None, EventKind::Throttled)),
            vec!["apigw_edge.stage.throttled 1"],
        ),
        (cat.event(&usage(None, EventKind::Admitted)), vec![]),
        (cat.event(&usage(Some(9), EventKind::Admitted)), vec![]),
        (
            cat.event(&Event::Cache(CacheEvent::Hit)),
            vec!["apigw_edge.cache.hit 1"],
        ),
        (
            cat.event(&Event::CacheStored(Stored {
                stored: true,
                evicted: 2,
                bytes_delta: -10,
            })),
            vec![
                "apigw_edge.cache.store 1",
                "apigw_edge.cache.evict 2",
                "apigw_edge.cache.bytes -10",
            ],
        ),
        (
            cat.event(&Event::CacheFreed(5)),
            vec!["apigw_edge.cache.bytes -5"],
        ),
        (
            cat.event(&Event::Integration {
                latency_ms: 7,
                failed: true,
            }),
            vec![
                "apigw_edge.integration.latency_ms =7",
                "apigw_edge.integration.errors 1",
            ],
        ),
        (
            cat.event(&Event::Authorizer {
                latency_ms: Some(3),
                failed: false,
            }),
            vec![
                "apigw_edge.authorizer.calls 1",
                "apigw_edge.authorizer.latency_ms =3",
            ],
        ),
        (
            cat.event(&Event::Authorizer {
                latency_ms: None,
                failed: true,
            }),
            vec![
                "apigw_edge.authorizer.cache_hit 1",
                "apigw_edge.authorizer.errors 1",
            ],
        ),
        (
            cat.event(&Event::Token {
                cached: true,
                refused: false,
            }),
            vec!["apigw_edge.jwt.cache_hit 1"],
        ),
        (
            cat.event(&Event::Token {
                cached: true,
                refused: true,
            }),
            vec!["apigw_edge.jwt.refused 1"],
        ),
        (
            cat.event(&Event::Token {
                cached: false,
                refused: false,
            }),
            vec!["apigw_edge.jwt.verified 1"],
        ),
        (cat.event(&Event::Notice("x".into())), vec![]),
        (
            cat.event(&Event::RateLimit {
                latency_ms: 4,
                failed: true,
            }),
            vec![
                "apigw_edge.ratelimit.calls 1",
                "apigw_edge.ratelimit.errors 1",
                "apigw_edge.ratelimit.latency_ms =4",
            ],
        ),
        (
            cat.jwks_fetch(true),
            vec![
                "apigw_edge.jwt.jwks_fetch 1",
                "apigw_edge.jwt.jwks_fetch_errors 1",
            ],
        ),
        (
            [Some(cat.cache(CacheEvent::Flush)), None, None],
            vec!["apigw_edge.cache.flush 1"],
        ),
    ];
    for (i, (ops, want)) in table.into_iter().enumerate() {
        assert_eq!(names(&cat, ops), want, "row {i}");
    }
}
