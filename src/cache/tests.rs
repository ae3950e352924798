use serde_json::json;

use super::*;
use crate::apikeys::hash_value;
use crate::config::{ApiKey, CacheSettings};
use crate::openapi::{self, Operation};
use crate::shared::memory::Cells;

const ADMIN_KEY: &str = "adminadminadminadminadmin";
const USER_KEY: &str = "useruseruseruseruseruser";

fn operations() -> Vec<Operation> {
    let proxy = |keys: serde_json::Value| {
        json!({"x-amazon-apigateway-integration": {"type": "aws_proxy", "httpMethod": "POST",
            "uri": "u", "cacheKeyParameters": keys}})
    };
    let doc = json!({"swagger": "2.0", "paths": {
        "/pets": {"get": proxy(json!(["method.request.querystring.type"])), "post": proxy(json!([]))},
        "/pets/{id}": {"get": proxy(json!(["method.request.path.id"]))},
        "/": {"get": proxy(json!([]))},
        "/any": {"x-amazon-apigateway-any-method": proxy(json!([]))}
    }});
    let parsed = openapi::parse(&doc);
    assert!(parsed.errors.is_empty(), "{:?}", parsed.errors);
    parsed.export.operations
}

fn keys() -> ApiKeys {
    let mut errors = Vec::new();
    let keys = ApiKeys::compile(
        &[
            ApiKey {
                id: "admin".into(),
                name: String::new(),
                enabled: true,
                value_sha256: hash_value(ADMIN_KEY),
            },
            ApiKey {
                id: "user".into(),
                name: String::new(),
                enabled: true,
                value_sha256: hash_value(USER_KEY),
            },
        ],
        &mut errors,
    );
    assert!(errors.is_empty());
    keys
}

fn settings(v: serde_json::Value) -> CacheSettings {
    serde_json::from_value(v).unwrap()
}

fn compile(v: serde_json::Value) -> (Option<StageCache>, Vec<(String, Option<RouteCache>)>) {
    let ops = operations();
    let mut errors = Vec::new();
    let s = settings(v);
    let (stage, routes) = StageCache::compile(Some(&s), &keys(), "api", "prod", &ops, &mut errors);
    assert!(errors.is_empty(), "{errors:?}");
    let named = ops
        .iter()
        .zip(routes)
        .map(|(op, r)| (format!("{} {}", op.method.as_str(), op.resource), r))
        .collect();
    (stage, named)
}

fn rule<'a>(routes: &'a [(String, Option<RouteCache>)], name: &str) -> Option<&'a RouteCache> {
    routes
        .iter()
        .find(|(n, _)| n == name)
        .unwrap_or_else(|| panic!("no {name}"))
        .1
        .as_ref()
}

#[test]
fn only_get_is_cached_by_default_with_the_stage_ttl() {
    let (stage, routes) = compile(json!({"capacityMiB": 2}));
    assert_eq!(stage.unwrap().capacity_bytes, 2 << 20);
    for (name, ttl) in [
        ("GET /pets", Some(300_000)),
        ("GET /pets/{id}", Some(300_000)),
        ("GET /", Some(300_000)),
        ("POST /pets", None),
        ("ANY /any", None),
    ] {
        assert_eq!(rule(&routes, name).map(|r| r.ttl_ms), ttl, "{name}");
    }
    let get = rule(&routes, "GET /pets").unwrap();
    assert_eq!(get.params, vec![KeyParam::Query("type".into())]);
    assert!(get.require_authorization);
    assert_eq!(
        get.strategy,
        UnauthorizedStrategy::SucceedWithResponseHeader
    );
}

#[test]
fn method_settings_precedence() {
    let (_, routes) = compile(json!({
        "cacheTtlInSeconds": 60,
        "methodSettings": {
            "*/*": {"cacheTtlInSeconds": 120, "unauthorizedCacheControlHeaderStrategy": "FAIL_WITH_403"},
            "/pets/POST": {"cachingEnabled": true},
            "~1pets~1{id}/GET": {"cacheTtlInSeconds": 10, "requireAuthorizationForCacheControl": false},
            "//GET": {"cachingEnabled": false},
            "/any/ANY": {"cachingEnabled": true, "unauthorizedCacheControlHeaderStrategy": "SUCCEED_WITHOUT_RESPONSE_HEADER"}
        }
    }));
    // `*/*` applies where a method sets nothing itself; a method's own value wins.
    let r = rule(&routes, "GET /pets").unwrap();
    assert_eq!(
        (r.ttl_ms, r.strategy),
        (120_000, UnauthorizedStrategy::FailWith403)
    );
    assert_eq!(rule(&routes, "POST /pets").unwrap().ttl_ms, 120_000);
    let r = rule(&routes, "GET /pets/{id}").unwrap();
    assert_eq!((r.ttl_ms, r.require_authorization), (10_000, false));
    assert_eq!(r.strategy, UnauthorizedStrategy::FailWith403);
    assert!(rule(&routes, "GET /").is_none());
    let r = rule(&routes, "ANY /any").unwrap();
    assert_eq!(
        r.strategy,
        UnauthorizedStrategy::SucceedWithoutResponseHeader
    );
}

#[test]
fn disabled_stage_or_zero_ttl_caches_nothing() {
    for v in [
        json!({"enabled": false}),
        json!({"cacheTtlInSeconds": 0}),
        json!({"methodSettings": {"*/*": {"cacheTtlInSeconds": 0}}}),
    ] {
        let (_, routes) = compile(v.clone());
        assert!(routes.iter().all(|(_, r)| r.is_none()), "{v}");
    }
    let (stage, _) = compile(json!({"enabled": false}));
    assert!(stage.is_none());
}

#[test]
fn configuration_errors_name_the_field() {
    let mut ops = operations();
    ops[0].cache_key_parameters = vec!["method.request.path.nope".into()];
    let s = settings(json!({
        "cacheTtlInSeconds": 3601,
        "capacityMiB": 0,
        "invalidators": ["admin", "ghost"],
        "methodSettings": {
            "/pets/DELETE": {},
            "pets": {},
            "*/*": {"cacheTtlInSeconds": 4000}
        }
    }));
    let mut errors = Vec::new();
    StageCache::compile(Some(&s), &keys(), "api", "prod", &ops, &mut errors);
    let mut got: Vec<_> = errors.iter().map(|e| e.location.clone()).collect();
    got.sort();
    let first = format!(
        "{}.x-amazon-apigateway-integration.cacheKeyParameters[0]",
        ops[0].location
    );
    let mut want = vec![
        first,
        "deployment.cache.cacheTtlInSeconds".to_string(),
        "deployment.cache.capacityMiB".to_string(),
        "deployment.cache.invalidators[1]".to_string(),
        "deployment.cache.methodSettings./pets/DELETE".to_string(),
        "deployment.cache.methodSettings.*/*.cacheTtlInSeconds".to_string(),
        "deployment.cache.methodSettings.pets".to_string(),
    ];
    want.sort();
    assert_eq!(got, want);
    // Bad key parameters are errors even with caching off.
    let mut errors = Vec::new();
    StageCache::compile(None, &keys(), "api", "prod", &ops, &mut errors);
    assert_eq!(errors.len(), 1);
}

fn src<'a>(headers: &'a [(String, String)], query: &'a str) -> KeySource<'a> {
    KeySource {
        stage: "prod",
        method: "GET",
        resource: "/pets",
        path_params: &[],
        raw_query: query,
        headers,
    }
}

fn hdrs(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn invalidation_by_caller_and_strategy() {
    let base = |strategy: &str, require: bool| {
        json!({"invalidators": ["admin"], "methodSettings": {"/pets/GET": {
            "unauthorizedCacheControlHeaderStrategy": strategy,
            "requireAuthorizationForCacheControl": require}}})
    };
    let refresh = Some((Mode::Refresh, false));
    let lookup = Some((Mode::Lookup, false));
    let warned = Some((Mode::Lookup, true));
    for (strategy, require, headers, want) in [
        // No invalidation asked for: a lookup, whoever calls.
        ("FAIL_WITH_403", true, vec![], lookup),
        (
            "FAIL_WITH_403",
            true,
            vec![("cache-control", "max-age=60")],
            lookup,
        ),
        (
            "FAIL_WITH_403",
            true,
            vec![("cache-control", "no-cache")],
            lookup,
        ),
        // Authorized caller: refresh, under every strategy.
        (
            "FAIL_WITH_403",
            true,
            vec![("cache-control", "max-age=0"), ("x-api-key", ADMIN_KEY)],
            refresh,
        ),
        (
            "SUCCEED_WITH_RESPONSE_HEADER",
            true,
            vec![
                ("Cache-Control", "no-store, max-age=0"),
                ("x-api-key", ADMIN_KEY),
            ],
            refresh,
        ),
        // Unauthorized: a key that may not invalidate, an unknown key, no key.
        (
            "FAIL_WITH_403",
            true,
            vec![("cache-control", "max-age=0"), ("x-api-key", USER_KEY)],
            None,
        ),
        (
            "FAIL_WITH_403",
            true,
            vec![("cache-control", "max-age=0"), ("x-api-key", "nope")],
            None,
        ),
        (
            "FAIL_WITH_403",
            true,
            vec![("cache-control", "max-age=0")],
            None,
        ),
        (
            "SUCCEED_WITH_RESPONSE_HEADER",
            true,
            vec![("cache-control", "max-age=0")],
            warned,
        ),
        (
            "SUCCEED_WITHOUT_RESPONSE_HEADER",
            true,
            vec![("cache-control", "max-age=0")],
            lookup,
        ),
        // Authorization not required: anyone invalidates.
        (
            "FAIL_WITH_403",
            false,
            vec![("cache-control", "max-age=0")],
            refresh,
        ),
    ] {
        let (stage, routes) = compile(base(strategy, require));
        let stage = stage.unwrap();
        let route = rule(&routes, "GET /pets").unwrap();
        let h = hdrs(&headers);
        let got = match stage.plan(route, &src(&h, "type=a"), &keys()) {
            Decision::Use(p) => Some((p.mode, p.warn)),
            Decision::Forbidden => None,
        };
        assert_eq!(got, want, "{strategy} {require} {headers:?}");
    }
}

#[test]
fn plans_carry_the_key_slot_and_ttl() {
    let (stage, routes) = compile(json!({"cacheTtlInSeconds": 42}));
    let stage = stage.unwrap();
    let route = rule(&routes, "GET /pets").unwrap();
    let Decision::Use(a) = stage.plan(route, &src(&[], "type=a&x=1"), &keys()) else {
        panic!()
    };
    let Decision::Use(b) = stage.plan(route, &src(&[], "x=2&type=a"), &keys()) else {
        panic!()
    };
    assert_eq!(a, b);
    assert_eq!((a.ttl_ms, a.slot), (42_000, slot_of(&a.key)));
    assert!(a.slot < SLOTS);
}

#[test]
fn generations_and_epoch_follow_invalidations_and_flushes() {
    let (stage, _) = compile(json!({}));
    let stage = stage.unwrap();
    let cells = Cells::default();
    let prefix = shared_prefix("api", "prod");
    let epoch = || shared::read(&cells, &epoch_cell(&prefix)).unwrap();
    let g0 = stage.generations(&cells, 5).unwrap();
    assert_eq!((g0, epoch()), (Generations::default(), 0));
    // An invalidation moves its slot and then the epoch; the stamp holds the epoch from
    // before it, so the next lookup checks the generations.
    let s1 = stage.invalidate(&cells, 5).unwrap();
    assert_ne!(s1.generations, g0);
    assert_eq!((s1.epoch, epoch()), (0, 1));
    assert_eq!(stage.generations(&cells, 5).unwrap(), s1.generations);
    // Other slots are untouched by a key's invalidation.
    assert_eq!(stage.generations(&cells, 6).unwrap(), g0);
    // A flush (the control listener's) moves every slot's generations, and the epoch.
    assert_eq!(flush(&cells, &prefix).unwrap(), 1);
    assert_eq!(epoch(), 2);
    assert_ne!(stage.generations(&cells, 5).unwrap(), s1.generations);
    assert_ne!(stage.generations(&cells, 6).unwrap(), g0);
}

/// Shared data that counts reads, to check how many cells a lookup costs.
#[derive(Default)]
struct CountingCells {
    inner: Cells,
    reads: std::cell::Cell<usize>,
}

impl SharedCells for CountingCells {
    fn get(&self, key: &str) -> Result<(Option<Vec<u8>>, u32), CellError> {
        self.reads.set(self.reads.get() + 1);
        self.inner.get(key)
    }

    fn set(&self, key: &str, value: &[u8], cas: u32) -> Result<(), CellError> {
        self.inner.set(key, value, cas)
    }
}

#[test]
fn wants_invalidation_table() {
    for (value, want) in [
        ("max-age=0", true),
        ("MAX-AGE = 0", true),
        ("no-cache, max-age=0", true),
        ("max-age=\"0\"", true),
        ("max-age=00", false),
        ("max-age=10", false),
        ("no-cache", false),
        ("s-maxage=0", false),
    ] {
        assert_eq!(
            wants_invalidation(&hdrs(&[("cache-control", value)])),
            want,
            "{value}"
        );
    }
    assert!(!wants_invalidation(&[]));
}

#[test]
fn store_and_lookup_through_generations() {
    // The whole flow the glue runs, with in-memory shared data and two workers' stores.
    let (stage, routes) = compile(json!({}));
    let stage = stage.unwrap();
    let route = rule(&routes, "GET /pets").unwrap();
    let cells = CountingCells::default();
    let mut worker_a = ResponseCache::new(1 << 20);
    let mut worker_b = ResponseCache::new(1 << 20);
    let plan = |query: &str| {
        let Decision::Use(plan) = stage.plan(route, &src(&[], query), &keys()) else {
            panic!()
        };
        plan
    };
    let (pets, other) = (plan("type=a"), plan("type=b"));
    assert_ne!(pets.slot, other.slot);
    let reply = crate::http::Reply::json(200, "{}");
    let reads = |w: &mut ResponseCache, plan: &CachePlan, now: u64| {
        let before = cells.reads.get();
        let found = stage.lookup(&cells, w, plan, now).unwrap();
        (found, cells.reads.get() - before)
    };
    for w in [&mut worker_a, &mut worker_b] {
        // A miss reads the epoch and the generations it will store under.
        let (found, n) = reads(w, &pets, 0);
        let Found::Fetch { under, freed: None } = found else {
            panic!("{found:?}")
        };
        assert_eq!(n, 3);
        w.put(pets.key.clone(), reply.clone(), 0, pets.ttl_ms, under);
        // A hit on a quiet stage reads the epoch alone.
        assert_eq!(reads(w, &pets, 1), (Found::Hit(reply.clone()), 1));
    }
    // Another key's invalidation moves the epoch: the next hit checks the generations once.
    stage.invalidate(&cells, other.slot).unwrap();
    assert_eq!(
        reads(&mut worker_b, &pets, 2),
        (Found::Hit(reply.clone()), 3)
    );
    assert_eq!(
        reads(&mut worker_b, &pets, 2),
        (Found::Hit(reply.clone()), 1)
    );
    // Worker A refreshes the key; worker B's copy is stale on its very next lookup.
    let under = stage.invalidate(&cells, pets.slot).unwrap();
    worker_a.put(pets.key.clone(), reply.clone(), 2, pets.ttl_ms, under);
    assert!(matches!(reads(&mut worker_a, &pets, 3).0, Found::Hit(_)));
    assert!(matches!(
        reads(&mut worker_b, &pets, 3).0,
        Found::Fetch { freed: Some(n), .. } if n > 0
    ));
    // A flush makes both stale.
    flush(&cells, &shared_prefix("api", "prod")).unwrap();
    for w in [&mut worker_a, &mut worker_b] {
        assert!(matches!(reads(w, &pets, 4).0, Found::Fetch { .. }));
    }
}
