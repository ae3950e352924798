use serde_json::{json, Value};

use super::*;
use crate::apikeys::{hash_value, ApiKeys};
use crate::config::parse_deployment;
use crate::openapi::{self, resolve_method_key, MethodKey, Operation};

fn operations() -> Vec<Operation> {
    let op = json!({"x-amazon-apigateway-integration": {"type": "aws_proxy", "httpMethod": "POST", "uri": "u"}});
    let doc = json!({"swagger": "2.0", "paths": {"/a": {"get": op.clone(), "post": op.clone()}, "/b": {"get": op}}});
    openapi::parse(&doc).export.operations
}

fn plans(usage: Value) -> (UsagePlans, Vec<Operation>) {
    let d = parse_deployment(json!({"openapi": "x", "stage": "prod",
        "apiKeys": [{"id": "k1", "valueSha256": hash_value("k1k1k1k1k1k1k1k1k1k1k1")}],
        "usagePlans": [{"id": "gold", "apiKeys": ["k1"], "throttle": {"rateLimit": 5, "burstLimit": 10},
                        "methodThrottle": {"/a/POST": {"rateLimit": 1, "burstLimit": 1}},
                        "quota": {"limit": 100, "period": "DAY"}},
                       {"id": "bare", "apiKeys": []}],
        "throttle": {"methodSettings": {"/b/GET": {"rateLimit": 1, "burstLimit": 2}}},
        "usage": usage}))
    .unwrap();
    let ops = operations();
    let mut errors = Vec::new();
    let keys = ApiKeys::compile(&d.api_keys, &mut errors);
    let p = UsagePlans::compile(&d, &keys, &ops, &mut errors);
    assert!(errors.is_empty(), "{errors:?}");
    (p, ops)
}

fn op(ops: &[Operation], key: &str) -> usize {
    match resolve_method_key(ops, key).unwrap() {
        MethodKey::One(i) => i,
        MethodKey::All => panic!(),
    }
}

/// The descriptors of an encoded request, as (key, value) lists (read back with the same
/// field layout the encoder writes).
fn descriptors(message: &[u8]) -> Vec<Vec<(String, String)>> {
    fn fields(mut b: &[u8]) -> Vec<(u8, Vec<u8>)> {
        let mut out = Vec::new();
        while let [tag, len, rest @ ..] = b {
            let (v, r) = rest.split_at(*len as usize);
            out.push((tag >> 3, v.to_vec()));
            b = r;
        }
        out
    }
    fields(message)
        .into_iter()
        .filter(|(n, _)| *n == 2)
        .map(|(_, d)| {
            fields(&d)
                .into_iter()
                .map(|(_, e)| {
                    let kv = fields(&e);
                    (
                        String::from_utf8(kv[0].1.clone()).unwrap(),
                        String::from_utf8(kv[1].1.clone()).unwrap(),
                    )
                })
                .collect()
        })
        .collect()
}

fn entries(d: &[(String, String)]) -> Vec<String> {
    d.iter().map(|(k, v)| format!("{k}={v}")).collect()
}

const NOW: u64 = 1_764_633_600_000; // 2025-12-02T00:00:00Z

fn ok() -> Result<Answer, String> {
    Ok(Answer {
        overall: Code::Ok,
        statuses: vec![],
    })
}

fn over(statuses: Vec<Code>) -> Result<Answer, String> {
    Ok(Answer {
        overall: Code::OverLimit,
        statuses,
    })
}

#[test]
fn a_keyed_request_checks_throttles_then_the_quota() {
    let (p, ops) = plans(json!({"rateLimitService": {"address": "127.0.0.1:8081"}}));
    let a = op(&ops, "/a/GET");
    let caller = Some(("k1", 0));
    let FleetNext::Call(call) = p.fleet_start(a, caller, NOW) else {
        panic!("no throttle call");
    };
    assert_eq!(call.phase, Phase::Throttle);
    let ds = descriptors(&call.message);
    assert_eq!(entries(&ds[0]), ["check=none"]);
    assert_eq!(
        entries(&ds[1]),
        ["check=plan_throttle", "plan=gold", "key=k1"]
    );
    let FleetNext::Call(quota) = p.fleet_answer(a, caller, Phase::Throttle, ok(), NOW) else {
        panic!("no quota call");
    };
    assert_eq!(quota.phase, Phase::Quota);
    let ds = descriptors(&quota.message);
    assert_eq!(
        entries(&ds[0]),
        ["check=quota", "plan=gold", "key=k1", "window=20424"]
    );
    // Every call has two descriptors, so a limit's condition on either can be evaluated.
    assert_eq!(entries(&ds[1]), ["check=none"]);
    let FleetNext::Done(done) = p.fleet_answer(a, caller, Phase::Quota, ok(), NOW) else {
        panic!();
    };
    assert_eq!(done.verdict, Ok(()));
    assert_eq!(done.event.map(|e| e.kind), Some(EventKind::Admitted));
    let FleetNext::Done(refused) = p.fleet_answer(a, caller, Phase::Quota, over(vec![]), NOW)
    else {
        panic!();
    };
    assert!(matches!(
        refused.verdict,
        Err((GatewayError::QuotaExceeded, _))
    ));
}

#[test]
fn method_throttles_and_stage_throttles_have_their_descriptors() {
    let (p, ops) = plans(json!({"rateLimitService": {"address": "127.0.0.1:8081", "domain": "d"}}));
    let FleetNext::Call(call) = p.fleet_start(op(&ops, "/a/POST"), Some(("k1", 0)), NOW) else {
        panic!();
    };
    let ds = descriptors(&call.message);
    assert_eq!(
        entries(&ds[1]),
        [
            "check=plan_method_throttle",
            "plan=gold",
            "key=k1",
            "method=/a/POST"
        ]
    );
    let b = op(&ops, "/b/GET");
    let FleetNext::Call(call) = p.fleet_start(b, None, NOW) else {
        panic!();
    };
    let ds = descriptors(&call.message);
    assert_eq!(
        entries(&ds[0]),
        ["check=stage_throttle", "stage=prod", "method=/b/GET"]
    );
    assert_eq!(entries(&ds[1]), ["check=none"]);
    // Over the limit: the stage's throttle (no key), answered 429.
    let FleetNext::Done(c) = p.fleet_answer(b, None, Phase::Throttle, over(vec![]), NOW) else {
        panic!();
    };
    assert!(
        matches!(c.verdict, Err((GatewayError::Throttled, ref w)) if w.contains("stage throttle"))
    );
    // Per-descriptor statuses say which throttle refused.
    let caller = Some(("k1", 0));
    let FleetNext::Done(c) = p.fleet_answer(
        b,
        caller,
        Phase::Throttle,
        over(vec![Code::OverLimit, Code::Ok]),
        NOW,
    ) else {
        panic!();
    };
    assert_eq!(c.event.unwrap().plan, None);
    let FleetNext::Done(c) = p.fleet_answer(b, caller, Phase::Throttle, over(vec![]), NOW) else {
        panic!();
    };
    assert_eq!(
        c.event.unwrap().plan,
        Some(0),
        "without statuses: the key's plan"
    );
}

#[test]
fn nothing_to_count_means_no_call() {
    let (p, ops) = plans(json!({"rateLimitService": {"address": "127.0.0.1:8081"}}));
    let a = op(&ops, "/a/GET");
    let FleetNext::Done(c) = p.fleet_start(a, None, NOW) else {
        panic!("an unkeyed request without a stage throttle needs no call");
    };
    assert_eq!(c, Check::admitted());
    let FleetNext::Done(c) = p.fleet_start(a, Some(("k2", 1)), NOW) else {
        panic!("a plan without limits needs no call");
    };
    assert_eq!(
        c.event.map(|e| (e.plan, e.kind)),
        Some((Some(1), EventKind::Admitted))
    );
}

#[test]
fn failures_follow_on_check_failure() {
    for (policy, admitted) in [("DENY", false), ("ALLOW", true)] {
        let (p, ops) = plans(json!({"onCheckFailure": policy,
            "rateLimitService": {"address": "127.0.0.1:8081"}}));
        let b = op(&ops, "/b/GET");
        for answer in [
            Err("gRPC status 14".to_string()),
            Ok(Answer {
                overall: Code::Unknown,
                statuses: vec![],
            }),
        ] {
            let FleetNext::Done(c) = p.fleet_answer(b, None, Phase::Throttle, answer, NOW) else {
                panic!();
            };
            assert_eq!(c.verdict.is_ok(), admitted, "{policy}");
            if admitted {
                assert!(c.log.unwrap().contains("onCheckFailure: ALLOW"));
            } else {
                assert!(matches!(
                    c.verdict,
                    Err((GatewayError::UsageCheckFailed, _))
                ));
            }
        }
    }
}

#[test]
fn quota_windows_are_calendar_periods() {
    use crate::config::QuotaPeriod;
    // 2025-12-02 is a Tuesday: the week started on Monday 2025-12-01, the month on the 1st.
    assert_eq!(quota_window(QuotaPeriod::Day, NOW), "20424");
    assert_eq!(quota_window(QuotaPeriod::Week, NOW), "20423");
    assert_eq!(quota_window(QuotaPeriod::Month, NOW), "20423");
    assert_eq!(quota_window(QuotaPeriod::Day, NOW + 86_399_999), "20424");
}
