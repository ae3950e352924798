use serde_json::{json, Value};

use super::*;
use crate::apikeys::hash_value;
use crate::config::parse_deployment;
use crate::openapi;
use crate::shared::memory::Cells;
use crate::shared::{CellError, SharedCells};

const GOLD: &str = "goldgoldgoldgoldgoldgold";
const FREE: &str = "freefreefreefreefreefree";
const LOOSE: &str = "looselooselooselooseloose";

fn operations() -> Vec<Operation> {
    let op = json!({"x-amazon-apigateway-integration": {"type": "aws_proxy", "httpMethod": "POST", "uri": "u"}});
    let keyed = json!({"security": [{"api_key": []}],
        "x-amazon-apigateway-integration": {"type": "aws_proxy", "httpMethod": "POST", "uri": "u"}});
    let doc = json!({"swagger": "2.0",
        "securityDefinitions": {"api_key": {"type": "apiKey", "name": "x-api-key", "in": "header"}},
        "paths": {"/a": {"get": keyed.clone(), "post": keyed}, "/b": {"get": op.clone()}, "/c": {"get": op}}});
    let p = openapi::parse(&doc);
    assert!(p.errors.is_empty(), "{:?}", p.errors);
    p.export.operations
}

fn idx(ops: &[Operation], key: &str) -> usize {
    match resolve_method_key(ops, key).unwrap() {
        MethodKey::One(i) => i,
        MethodKey::All => panic!(),
    }
}

fn deployment(extra: Value) -> Deployment {
    let mut d = json!({"openapi": "x", "stage": "prod", "lambda": {"endpoint": "http://127.0.0.1:1"},
    "apiKeys": [
        {"id": "gold", "valueSha256": hash_value(GOLD)},
        {"id": "free", "valueSha256": hash_value(FREE)},
        {"id": "loose", "valueSha256": hash_value(LOOSE)}
    ]});
    for (k, v) in extra.as_object().unwrap() {
        d[k] = v.clone();
    }
    parse_deployment(d).unwrap()
}

struct Fixture {
    plans: UsagePlans,
    keys: ApiKeys,
    ops: Vec<Operation>,
}

fn fixture(extra: Value) -> Fixture {
    let d = deployment(extra);
    let ops = operations();
    let mut errors = Vec::new();
    let keys = ApiKeys::compile(&d.api_keys, &mut errors);
    let plans = UsagePlans::compile(&d, &keys, &ops, &mut errors);
    assert!(errors.is_empty(), "{errors:?}");
    Fixture { plans, keys, ops }
}

impl Fixture {
    fn check(&self, cells: &Cells, method: &str, key: Option<&str>, now_ms: u64) -> Check {
        let op = idx(&self.ops, method);
        let caller = key.map(|k| {
            let key = self.keys.identify(k).unwrap();
            (key, self.plans.plan_of(key).unwrap())
        });
        self.plans.check(cells, op, caller, now_ms)
    }

    /// The verdicts of `n` requests at `now_ms`: `.` admitted, `T` throttled, `Q` quota.
    fn run(&self, cells: &Cells, method: &str, key: Option<&str>, n: usize, now_ms: u64) -> String {
        (0..n)
            .map(|_| match self.check(cells, method, key, now_ms).verdict {
                Ok(()) => '.',
                Err((GatewayError::Throttled, _)) => 'T',
                Err((GatewayError::QuotaExceeded, _)) => 'Q',
                Err((e, _)) => panic!("{e:?}"),
            })
            .collect()
    }
}

fn plans() -> Value {
    json!({"usagePlans": [
        {"id": "gold", "apiKeys": ["gold"], "throttle": {"rateLimit": 100, "burstLimit": 5},
         "methodThrottle": {"/a/POST": {"rateLimit": 1, "burstLimit": 1}},
         "quota": {"limit": 7, "period": "DAY"}},
        {"id": "free", "apiKeys": ["free"], "throttle": {"rateLimit": 1, "burstLimit": 2}},
        {"id": "elsewhere", "stages": ["dev"], "apiKeys": ["loose"]}
    ]})
}

#[test]
fn key_requirements_from_export_and_deployment() {
    let f = fixture(json!({}));
    let required: Vec<_> = ["/a/GET", "/a/POST", "/b/GET", "/c/GET"]
        .iter()
        .map(|m| f.plans.key_required(idx(&f.ops, m)))
        .collect();
    assert_eq!(required, vec![true, true, false, false]);
    let f = fixture(json!({"apiKeyRequired": ["/b/GET"]}));
    assert!(f.plans.key_required(idx(&f.ops, "/b/GET")));
    assert!(!f.plans.key_required(idx(&f.ops, "/c/GET")));
    let f = fixture(json!({"apiKeyRequired": ["*/*"]}));
    assert!(f.plans.key_required(idx(&f.ops, "/c/GET")));
}

#[test]
fn plans_apply_per_stage() {
    let f = fixture(plans());
    let key = |k: &str| f.keys.identify(k).unwrap();
    assert_eq!(f.plans.plan_of(key(GOLD)), Some(0));
    assert_eq!(f.plans.plan_of(key(FREE)), Some(1));
    assert_eq!(
        f.plans.plan_of(key(LOOSE)),
        None,
        "its plan is for stage dev"
    );
    assert_eq!(f.plans.plan_ids(), vec!["gold", "free", "elsewhere"]);
}

#[test]
fn plan_throttle_method_override_and_quota() {
    let f = fixture(plans());
    let cells = Cells::default();
    // Burst 5 of the plan throttle, shared by the key's methods without an override.
    assert_eq!(f.run(&cells, "/a/GET", Some(GOLD), 6, 0), ".....T");
    // The method override has its own bucket (burst 1).
    assert_eq!(f.run(&cells, "/a/POST", Some(GOLD), 2, 0), ".T");
    // Quota 7 per day: 6 admitted so far; refilled tokens then run into the quota.
    assert_eq!(f.run(&cells, "/a/GET", Some(GOLD), 3, 1_000), ".QQ");
    // A new day resets the quota.
    assert_eq!(f.run(&cells, "/a/GET", Some(GOLD), 1, 86_400_000), ".");
    // Keys of other plans are not affected.
    assert_eq!(f.run(&cells, "/a/GET", Some(FREE), 3, 1_000), "..T");
}

#[test]
fn stage_throttle_applies_to_everyone_per_method() {
    let f = fixture(json!({"throttle": {"rateLimit": 1, "burstLimit": 2,
        "methodSettings": {"/c/GET": {"rateLimit": 1, "burstLimit": 1}}}}));
    let cells = Cells::default();
    assert_eq!(f.run(&cells, "/b/GET", None, 3, 0), "..T");
    assert_eq!(f.run(&cells, "/c/GET", None, 2, 0), ".T", "override");
    assert_eq!(
        f.run(&cells, "/b/GET", None, 2, 1_000),
        ".T",
        "refill at 1/s"
    );
    let check = f.check(&cells, "/b/GET", None, 1_000);
    assert_eq!(
        check.event,
        Some(UsageEvent {
            plan: None,
            kind: EventKind::Throttled
        })
    );
}

#[test]
fn plan_throttle_comes_before_the_stage_throttle() {
    let mut v = plans();
    v["throttle"] = json!({"rateLimit": 1, "burstLimit": 1});
    let f = fixture(v);
    let cells = Cells::default();
    // The stage bucket of /a/GET holds one token: the first request takes it; the second
    // is refused by the stage, after the plan admitted it.
    assert_eq!(f.run(&cells, "/a/GET", Some(FREE), 2, 0), ".T");
    let check = f.check(&cells, "/a/GET", Some(FREE), 0);
    assert_eq!(
        check.event.unwrap().plan,
        Some(1),
        "the plan throttled first"
    );
}

/// Shared data where, between a check's read and its write, another worker runs a whole
/// check of its own (the interleaving two Envoy workers can produce).
struct Racing<'a> {
    cells: &'a Cells,
    fixture: &'a Fixture,
    other_worker_admitted: std::cell::Cell<usize>,
    racing: std::cell::Cell<bool>,
}

impl SharedCells for Racing<'_> {
    fn get(&self, key: &str) -> Result<(Option<Vec<u8>>, u32), CellError> {
        self.cells.get(key)
    }

    fn set(&self, key: &str, value: &[u8], cas: u32) -> Result<(), CellError> {
        if !self.racing.replace(true) {
            let op = idx(&self.fixture.ops, "/a/GET");
            let key = self.fixture.keys.identify(GOLD).unwrap();
            let plan = self.fixture.plans.plan_of(key).unwrap();
            let other = self
                .fixture
                .plans
                .check(self.cells, op, Some((key, plan)), 5);
            if other.verdict.is_ok() {
                self.other_worker_admitted
                    .set(self.other_worker_admitted.get() + 1);
            }
        }
        self.cells.set(key, value, cas)
    }
}

#[test]
fn quota_is_exact_under_contention() {
    let f = fixture(json!({"usagePlans": [{"id": "q", "apiKeys": ["gold"],
        "quota": {"limit": 20, "offset": 0, "period": "MONTH"}}]}));
    let cells = Cells::default();
    let racing = Racing {
        cells: &cells,
        fixture: &f,
        other_worker_admitted: std::cell::Cell::new(0),
        racing: std::cell::Cell::new(false),
    };
    let op = idx(&f.ops, "/a/GET");
    let key = f.keys.identify(GOLD).unwrap();
    let mut admitted = 0;
    for _ in 0..30 {
        racing.racing.set(false);
        if f.plans
            .check(&racing, op, Some((key, 0)), 5)
            .verdict
            .is_ok()
        {
            admitted += 1;
        }
    }
    let other = racing.other_worker_admitted.get();
    assert!(
        other > 0 && admitted > 0,
        "both workers counted: {admitted} + {other}"
    );
    assert_eq!(admitted + other, 20, "{admitted} + {other}");
}

#[test]
fn rate_limit_headers_when_enabled() {
    let mut v = plans();
    v["usage"] = json!({"rateLimitHeaders": true});
    let f = fixture(v);
    let cells = Cells::default();
    let ok = f.check(&cells, "/a/GET", Some(GOLD), 1_000);
    let h = |c: &Check, n: &str| crate::http::header(&c.headers, n).map(str::to_string);
    assert_eq!(h(&ok, "x-ratelimit-limit").as_deref(), Some("7"));
    assert_eq!(h(&ok, "x-ratelimit-remaining").as_deref(), Some("6"));
    assert_eq!(h(&ok, "x-ratelimit-reset").as_deref(), Some("86399"));
    f.check(&cells, "/a/POST", Some(GOLD), 1_000);
    let throttled = f.check(&cells, "/a/POST", Some(GOLD), 1_000);
    assert_eq!(h(&throttled, "retry-after").as_deref(), Some("1"));
    // Off by default.
    let f = fixture(plans());
    assert!(f
        .check(&Cells::default(), "/a/GET", Some(GOLD), 0)
        .headers
        .is_empty());
}

#[test]
fn failure_policy() {
    let f = fixture(plans());
    let cells = Cells::default();
    cells.fail.set(true);
    let denied = f.check(&cells, "/a/GET", Some(GOLD), 0);
    assert!(matches!(
        denied.verdict,
        Err((GatewayError::UsageCheckFailed, _))
    ));
    let mut v = plans();
    v["usage"] = json!({"onCheckFailure": "ALLOW"});
    let f = fixture(v);
    let allowed = f.check(&cells, "/a/GET", Some(GOLD), 0);
    assert!(allowed.verdict.is_ok());
    assert!(allowed.log.unwrap().contains("internal error"));
}

#[test]
fn configuration_errors_name_the_field() {
    let d = deployment(json!({
        "apiKeyRequired": ["/nope/GET"],
        "usagePlans": [
            {"id": "p", "apiKeys": ["gold", "ghost"], "throttle": {"rateLimit": -1, "burstLimit": 1},
             "methodThrottle": {"*/*": {"rateLimit": 1, "burstLimit": 1}, "/x/GET": {"rateLimit": 1, "burstLimit": 1}}},
            {"id": "p", "apiKeys": ["gold"]}
        ],
        "throttle": {"rateLimit": 1}
    }));
    let mut errors = Vec::new();
    let keys = ApiKeys::compile(&d.api_keys, &mut errors);
    UsagePlans::compile(&d, &keys, &operations(), &mut errors);
    let mut got: Vec<_> = errors.iter().map(|e| e.location.as_str()).collect();
    got.sort_unstable();
    assert_eq!(
        got,
        vec![
            "deployment.apiKeyRequired[0]",
            "deployment.throttle",
            "deployment.usagePlans[0].apiKeys[1]",
            "deployment.usagePlans[0].methodThrottle.*/*",
            "deployment.usagePlans[0].methodThrottle./x/GET",
            "deployment.usagePlans[0].throttle.rateLimit",
            "deployment.usagePlans[1].apiKeys[0]",
            "deployment.usagePlans[1].id",
        ]
    );
}

/// Counts the shared-data calls a check makes.
struct Counting<'a> {
    cells: &'a Cells,
    calls: std::cell::Cell<(usize, usize)>,
}

impl SharedCells for Counting<'_> {
    fn get(&self, key: &str) -> Result<(Option<Vec<u8>>, u32), CellError> {
        let (g, s) = self.calls.get();
        self.calls.set((g + 1, s));
        self.cells.get(key)
    }

    fn set(&self, key: &str, value: &[u8], cas: u32) -> Result<(), CellError> {
        let (g, s) = self.calls.get();
        self.calls.set((g, s + 1));
        self.cells.set(key, value, cas)
    }
}

fn key_cell(cells: &Cells, plan: &str, key: &str) -> KeyCell {
    let (v, _) = cells.get(&quota_cell(plan, key)).unwrap();
    KeyCell::decode(&v.unwrap()).unwrap()
}

#[test]
fn throttle_and_quota_of_a_key_share_one_cell() {
    let plan = json!({"usagePlans": [{"id": "q", "apiKeys": ["gold"],
        "throttle": {"rateLimit": 1, "burstLimit": 2}, "quota": {"limit": 4, "period": "DAY"}}]});
    let f = fixture(plan.clone());
    let cells = Cells::default();
    let counting = Counting {
        cells: &cells,
        calls: std::cell::Cell::new((0, 0)),
    };
    let op = idx(&f.ops, "/a/GET");
    let key = f.keys.identify(GOLD).unwrap();
    let verdicts = |now_ms: u64, n: usize| -> String {
        (0..n)
            .map(
                |_| match f.plans.check(&counting, op, Some((key, 0)), now_ms).verdict {
                    Ok(()) => '.',
                    Err((GatewayError::Throttled, _)) => 'T',
                    Err((GatewayError::QuotaExceeded, _)) => 'Q',
                    Err((e, _)) => panic!("{e:?}"),
                },
            )
            .collect()
    };
    // One read and one write admit a request on both limits.
    assert_eq!(verdicts(0, 1), ".");
    assert_eq!(counting.calls.get(), (1, 1));
    // A throttled request reads and writes nothing more, and is not counted.
    assert_eq!(verdicts(0, 2), ".T");
    assert_eq!(counting.calls.get(), (3, 2));
    assert_eq!(
        key_cell(&cells, "q", "gold")
            .quota
            .map(|q| q.encode()[16..].to_vec()),
        Some(2u64.to_le_bytes().to_vec())
    );
    // Refilled tokens run into the quota: the token is taken, the request not counted.
    assert_eq!(verdicts(10_000, 2), "..");
    assert_eq!(verdicts(20_000, 1), "Q");
    assert!(key_cell(&cells, "q", "gold").bucket.is_some());

    // With a stage throttle between them, the key's throttle and its quota are two updates
    // of that cell, in API Gateway's order: a request the stage refuses is not counted.
    let mut staged = plan;
    staged["throttle"] = json!({"rateLimit": 100, "burstLimit": 100,
        "methodSettings": {"/a/GET": {"rateLimit": 1, "burstLimit": 1}}});
    let f = fixture(staged);
    let cells = Cells::default();
    assert_eq!(f.run(&cells, "/a/GET", Some(GOLD), 2, 0), ".T");
    let cell = key_cell(&cells, "q", "gold");
    assert_eq!(
        cell.quota.map(|q| q.encode()[16..].to_vec()),
        Some(1u64.to_le_bytes().to_vec())
    );
    assert!(cell.bucket.is_some());
}

#[test]
fn key_cells_read_every_layout() {
    let quota_only = quota::consume(
        None,
        &crate::config::QuotaSettings {
            limit: 5,
            offset: 0,
            period: crate::config::QuotaPeriod::Day,
        },
        0,
    )
    .0
    .unwrap();
    let bucket_only = bucket::State::decode(&[7u8; 16]).unwrap();
    for cell in [
        KeyCell {
            quota: Some(quota_only),
            bucket: None,
        },
        KeyCell {
            quota: None,
            bucket: Some(bucket_only),
        },
        KeyCell {
            quota: Some(quota_only),
            bucket: Some(bucket_only),
        },
    ] {
        assert_eq!(KeyCell::decode(&cell.encode()), Some(cell));
    }
    // A quota cell written before buckets moved in (24 bytes) is read as it is.
    assert_eq!(
        KeyCell::decode(&quota_only.encode()).unwrap().quota,
        Some(quota_only)
    );
    assert_eq!(KeyCell::decode(&[0u8; 23]), None);
}
