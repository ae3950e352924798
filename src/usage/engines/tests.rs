use serde_json::{json, Value};

use super::*;
use crate::apikeys::{hash_value, ApiKeys};
use crate::config::parse_deployment;
use crate::openapi;

fn usage(stage: &str) -> UsagePlans {
    let op = json!({"x-amazon-apigateway-integration": {"type": "aws_proxy", "httpMethod": "POST", "uri": "u"}});
    let ops = openapi::parse(
        &json!({"swagger": "2.0", "paths": {"/a": {"get": op.clone(), "post": op}}}),
    )
    .export
    .operations;
    let d = parse_deployment(json!({"openapi": "x", "stage": stage,
        "apiKeys": [{"id": "k1", "valueSha256": hash_value("k1k1k1k1k1k1k1k1k1k1k1")}],
        "usagePlans": [{"id": "gold", "apiKeys": ["k1"], "throttle": {"rateLimit": 5, "burstLimit": 10},
                        "methodThrottle": {"/a/POST": {"rateLimit": 0.5, "burstLimit": 2}},
                        "quota": {"limit": 1000, "period": "WEEK"}}],
        "throttle": {"methodSettings": {"/a/GET": {"rateLimit": 0.01, "burstLimit": 1}}}}))
    .unwrap();
    let mut errors = Vec::new();
    let keys = ApiKeys::compile(&d.api_keys, &mut errors);
    let u = UsagePlans::compile(&d, &keys, &ops, &mut errors);
    assert!(errors.is_empty(), "{errors:?}");
    u
}

#[test]
fn limitador_limits_match_the_descriptors() {
    let (dev, prod) = (usage("dev"), usage("prod"));
    let v = config(Engine::Limitador, "ns", &[("dev", &dev), ("prod", &prod)]);
    let limits = v.as_array().unwrap();
    // Two stage throttles, and the plan's three counters once.
    assert_eq!(limits.len(), 5, "{v:#}");
    let find = |name: &str| -> &Value {
        limits
            .iter()
            .find(|l| l["name"] == name)
            .unwrap_or_else(|| panic!("{name}: {v:#}"))
    };
    for (name, max, seconds, condition, variables) in [
        (
            "stage prod /a/GET",
            1,
            100,
            "descriptors[0].check == 'stage_throttle' && descriptors[0].stage == 'prod' && descriptors[0].method == '/a/GET'",
            json!([]),
        ),
        (
            "plan gold throttle",
            10,
            2,
            "descriptors[1].check == 'plan_throttle' && descriptors[1].plan == 'gold'",
            json!(["descriptors[1].key"]),
        ),
        (
            "plan gold /a/POST",
            2,
            4,
            "descriptors[1].check == 'plan_method_throttle' && descriptors[1].plan == 'gold' && descriptors[1].method == '/a/POST'",
            json!(["descriptors[1].key"]),
        ),
        (
            "plan gold quota",
            1000,
            604_800,
            "descriptors[0].check == 'quota' && descriptors[0].plan == 'gold'",
            json!(["descriptors[0].key", "descriptors[0].window"]),
        ),
    ] {
        let l = find(name);
        assert_eq!(l["namespace"], "ns");
        assert_eq!(l["max_value"], max, "{name}");
        assert_eq!(l["seconds"], seconds, "{name}");
        assert_eq!(l["conditions"], json!([condition]), "{name}");
        assert_eq!(l["variables"], variables, "{name}");
    }
}

#[test]
fn envoy_ratelimit_tree_merges_shared_entries() {
    let (dev, prod) = (usage("dev"), usage("prod"));
    let v = config(
        Engine::EnvoyRatelimit,
        "ns",
        &[("dev", &dev), ("prod", &prod)],
    );
    assert_eq!(v["domain"], "ns");
    let top = v["descriptors"].as_array().unwrap();
    let checks: Vec<&str> = top.iter().map(|d| d["value"].as_str().unwrap()).collect();
    assert_eq!(
        checks,
        [
            "stage_throttle",
            "plan_throttle",
            "plan_method_throttle",
            "quota"
        ]
    );
    let stages = &top[0]["descriptors"];
    assert_eq!(stages.as_array().unwrap().len(), 2, "{v:#}");
    assert_eq!(
        stages[1]["descriptors"][0],
        json!({"key": "method", "value": "/a/GET", "rate_limit": {"unit": "hour", "requests_per_unit": 36}})
    );
    assert_eq!(
        top[1]["descriptors"][0]["descriptors"][0],
        json!({"key": "key", "rate_limit": {"unit": "second", "requests_per_unit": 5}})
    );
    assert_eq!(
        top[2]["descriptors"][0]["descriptors"][0]["descriptors"][0]["rate_limit"],
        json!({"unit": "minute", "requests_per_unit": 30})
    );
    assert_eq!(
        top[3]["descriptors"][0]["descriptors"][0]["descriptors"][0],
        json!({"key": "window", "rate_limit": {"unit": "week", "requests_per_unit": 1000}})
    );
}

#[test]
fn cel_literals_are_quoted() {
    assert_eq!(lit("a'b\\c"), "'a\\'b\\\\c'");
    assert_eq!(Engine::parse("limitador"), Some(Engine::Limitador));
    assert_eq!(
        Engine::parse("envoy-ratelimit"),
        Some(Engine::EnvoyRatelimit)
    );
    assert_eq!(Engine::parse("redis"), None);
}
