use serde_json::{json, Value};

use super::*;
use crate::config::parse_deployment;

fn deployment(patch: Value) -> Deployment {
    let mut v = json!({"openapi": "api.json", "lambda": {"endpoint": "http://127.0.0.1:9000"}});
    if let (Some(obj), Some(p)) = (v.as_object_mut(), patch.as_object()) {
        for (k, val) in p {
            obj.insert(k.clone(), val.clone());
        }
    }
    parse_deployment(v).unwrap()
}

fn summary(vs: &[Variant]) -> Vec<(String, CanaryRole, Option<String>)> {
    vs.iter()
        .map(|v| (v.label(), v.deployment.canary_role, v.export.clone()))
        .collect()
}

#[test]
fn one_stage_is_one_variant() {
    let vs = variants(&deployment(json!({"stage": "prod"}))).unwrap();
    assert_eq!(summary(&vs), vec![("prod".into(), CanaryRole::None, None)]);
}

#[test]
fn stages_and_canaries_expand_in_order() {
    let d = deployment(json!({
        "stageVariables": {"fn": "base", "shared": "top"},
        "cache": {"cacheTtlInSeconds": 60},
        "stages": [
            {"name": "dev", "openapi": "dev.json", "stageVariables": {"fn": "dev"}},
            {"name": "prod", "basePath": "/v1", "domainName": "api.example.com",
             "canarySettings": {"percentTraffic": 12.5, "openapi": "next.json",
                                "stageVariableOverrides": {"fn": "next"}}},
        ]
    }));
    let vs = variants(&d).unwrap();
    assert_eq!(
        summary(&vs),
        vec![
            ("dev".into(), CanaryRole::None, Some("dev.json".into())),
            ("prod".into(), CanaryRole::Base, None),
            (
                "prod.canary".into(),
                CanaryRole::Canary {
                    per_million: 125_000
                },
                Some("next.json".into())
            ),
        ]
    );
    let var = |i: usize, k: &str| vs[i].deployment.stage_variables.get(k).cloned();
    assert_eq!(var(0, "fn").as_deref(), Some("dev"));
    assert_eq!(var(0, "shared").as_deref(), Some("top"));
    assert_eq!(var(1, "fn").as_deref(), Some("base"));
    assert_eq!(var(2, "fn").as_deref(), Some("next"));
    assert_eq!(vs[1].domain.as_deref(), Some("api.example.com"));
    assert_eq!(vs[1].deployment.base_path.as_deref(), Some("/v1"));
    assert!(vs[0].deployment.stages.is_empty());
    // Without useStageCache the canary is not cached; the stage is.
    assert!(vs[1].deployment.cache.is_some());
    assert!(vs[2].deployment.cache.is_none());
}

#[test]
fn canary_on_a_single_stage_file() {
    let vs = variants(&deployment(json!({
        "stage": "prod",
        "cache": {},
        "canarySettings": {"percentTraffic": 100, "useStageCache": true}
    })))
    .unwrap();
    assert_eq!(vs.len(), 2);
    assert_eq!(
        vs[1].deployment.canary_role,
        CanaryRole::Canary {
            per_million: 1_000_000
        }
    );
    assert!(
        vs[1].deployment.cache.is_some(),
        "useStageCache keeps the cache"
    );
}

#[test]
fn mistakes_are_named() {
    for (patch, location) in [
        (json!({}), "deployment.stage"),
        (
            json!({"stage": "a", "stages": [{"name": "b"}]}),
            "deployment.stage",
        ),
        (
            json!({"stages": [{"name": "b"}, {"name": "b"}]}),
            "deployment.stages[1].name",
        ),
        (
            json!({"stages": [{"name": "a", "basePath": "/v1"}, {"name": "b", "basePath": "/v1/"}]}),
            "deployment.stages[1].basePath",
        ),
        (
            json!({"stages": [{"name": "a", "domainName": "x.example"}]}),
            "deployment.stages[0].domainName",
        ),
        (
            json!({"basePath": "/v1", "stages": [{"name": "a"}]}),
            "deployment.basePath",
        ),
        (
            json!({"canarySettings": {"percentTraffic": 5}, "stages": [{"name": "a"}]}),
            "deployment.canarySettings",
        ),
        (
            json!({"stages": [{"name": "a", "canarySettings": {"percentTraffic": 100.5}}]}),
            "deployment.stages[0].canarySettings.percentTraffic",
        ),
        (
            json!({"stage": "a", "canarySettings": {"percentTraffic": -1}}),
            "deployment.canarySettings.percentTraffic",
        ),
    ] {
        let errs = variants(&deployment(patch.clone())).unwrap_err();
        assert!(
            errs.iter().any(|e| e.location == location),
            "{patch}: {errs:?}"
        );
    }
}

#[test]
fn errors_in_a_stage_point_at_its_settings() {
    let d = deployment(json!({
        "stageVariables": {"top": "x"},
        "stages": [{"name": "a", "stageVariables": {"own": "y"},
                    "canarySettings": {"percentTraffic": 1, "stageVariableOverrides": {"c": "z"}}}]
    }));
    let vs = variants(&d).unwrap();
    let at = |v: &Variant, loc: &str| v.relocate(ConfigError::new(loc, "m")).location;
    assert_eq!(
        at(&vs[0], "deployment.stageVariables.own"),
        "deployment.stages[0].stageVariables.own"
    );
    assert_eq!(
        at(&vs[0], "deployment.stageVariables.top"),
        "deployment.stageVariables.top"
    );
    assert_eq!(at(&vs[0], "deployment.stage"), "deployment.stages[0].name");
    assert_eq!(
        at(&vs[1], "deployment.stageVariables.c"),
        "deployment.stages[0].canarySettings.stageVariableOverrides.c"
    );
    assert_eq!(at(&vs[0], "deployment.stagesX"), "deployment.stagesX");
    assert_eq!(at(&vs[0], "deployment.cache.ttl"), "deployment.cache.ttl");
}
