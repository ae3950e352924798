use serde_json::{json, Value};

use super::*;
use crate::config::parse_deployment;
use crate::gateway::{Host, RequestHead, Step};
use crate::shared::memory::Cells;

const FN: &str = "arn:aws:apigateway:us-east-1:lambda:path/2015-03-31/functions/arn:aws:lambda:us-east-1:123456789012:function:";

fn export(function: &str) -> Value {
    json!({"swagger": "2.0", "paths": {"/pets": {"get": {"x-amazon-apigateway-integration": {
        "type": "aws_proxy", "httpMethod": "POST", "uri": format!("{FN}{function}/invocations")}}}}})
}

fn config(patch: Value) -> FilterConfig {
    let mut d = json!({"openapi": "api.json", "lambda": {"endpoint": "http://127.0.0.1:9000"},
                       "stageVariables": {"color": "blue"}});
    if let (Some(obj), Some(p)) = (d.as_object_mut(), patch.as_object()) {
        for (k, v) in p {
            obj.insert(k.clone(), v.clone());
        }
    }
    FilterConfig {
        deployment: parse_deployment(d).unwrap(),
        openapi: export("today"),
        exports: [
            ("old.json".to_string(), export("yesterday")),
            ("next.json".to_string(), export("tomorrow")),
        ]
        .into_iter()
        .collect(),
    }
}

fn two_stages() -> StageSet {
    StageSet::compile(&config(json!({"stages": [
        {"name": "dev", "stageVariables": {"color": "green"}},
        {"name": "prod", "openapi": "old.json",
         "canarySettings": {"percentTraffic": 25, "openapi": "next.json",
                            "stageVariableOverrides": {"color": "red"}}},
        {"name": "api", "basePath": "/v1", "domainName": "api.example.com"},
        {"name": "root", "basePath": "/", "domainName": "api.example.com"},
    ]})))
    .unwrap()
    .set
}

#[test]
fn requests_find_their_stage() {
    let set = two_stages();
    assert_eq!(set.labels(), ["dev", "prod", "prod.canary", "api", "root"]);
    for (host, path, roll, label) in [
        ("gw.local:8080", "/dev/pets", 0, "dev"),
        ("gw.local", "//dev/pets?x=/prod", 0, "dev"),
        ("gw.local", "/prod/pets", 250_000, "prod"),
        ("gw.local", "/prod/pets", 249_999, "prod.canary"),
        ("gw.local", "/prod/pets", 0, "prod.canary"),
        ("api.example.com", "/v1/pets", 0, "api"),
        ("API.example.com:443", "/v1/pets", 0, "api"),
        ("api.example.com", "/pets", 0, "root"),
        // On the custom domain only its mappings serve.
        ("api.example.com", "/dev/pets", 0, "root"),
        ("other.example.com", "/v1/pets", 0, "dev"),
        ("gw.local", "/nowhere", 0, "dev"),
        ("gw.local", "/devx/pets", 0, "dev"),
    ] {
        let i = set.pick(host, path, roll);
        assert_eq!(set.label(i), label, "{host} {path} {roll}");
    }
}

/// The Lambda event a variant sends for `GET {path}`.
fn event(set: &StageSet, path: &str, roll: u32) -> Value {
    let i = set.pick("gw.local", path, roll);
    let g = set.gateway(i).unwrap();
    let cells = Cells::default();
    let host = Host::bare(&cells, 1_700_000_000_000);
    let mut ex = g.begin(RequestHead {
        method: "GET".into(),
        path: path.into(),
        headers: vec![(":authority".into(), "gw.local".into())],
        request_id: "r-1".into(),
        now_ms: 1_700_000_000_000,
        ..Default::default()
    });
    let step = match g.advance(&mut ex, &host) {
        Step::NeedBody => g.body(&mut ex, Vec::new(), &host),
        step => step,
    };
    let Step::Call(call) = step else {
        panic!("no call for {path}: {step:?}");
    };
    let body: Value = serde_json::from_slice(&call.request.body).unwrap();
    let path = crate::http::header(&call.request.headers, ":path").unwrap_or_default();
    json!({"path": path, "stage": body["requestContext"]["stage"],
           "deploymentId": body["requestContext"]["deploymentId"],
           "color": body["stageVariables"]["color"]})
}

#[test]
fn each_variant_serves_its_own_export_and_variables() {
    let set = two_stages();
    let dev = event(&set, "/dev/pets", 0);
    let prod = event(&set, "/prod/pets", 999_999);
    let canary = event(&set, "/prod/pets", 0);
    assert!(
        dev["path"].as_str().unwrap().contains("functions/today/"),
        "{dev}"
    );
    assert!(
        prod["path"]
            .as_str()
            .unwrap()
            .contains("functions/yesterday/"),
        "{prod}"
    );
    assert!(
        canary["path"]
            .as_str()
            .unwrap()
            .contains("functions/tomorrow/"),
        "{canary}"
    );
    assert_eq!(dev["color"], "green");
    assert_eq!(prod["color"], "blue");
    assert_eq!(canary["color"], "red");
    assert_eq!(prod["stage"], "prod");
    assert_eq!(canary["stage"], "prod");
    assert_ne!(prod["deploymentId"], canary["deploymentId"]);
}

#[test]
fn a_canary_takes_its_share_of_rolls() {
    let set = StageSet::compile(&config(json!({"stage": "prod",
        "canarySettings": {"percentTraffic": 10}})))
    .unwrap()
    .set;
    assert!(set.rolls());
    let canary = (0..ROLLS)
        .step_by(997)
        .filter(|r| set.label(set.pick("h", "/prod/pets", *r)) == "prod.canary")
        .count();
    let all = (0..ROLLS).step_by(997).count();
    assert_eq!(canary, all / 10 + 1, "{canary} of {all}");
    let none = StageSet::compile(&config(json!({"stage": "prod"})))
        .unwrap()
        .set;
    assert!(!none.rolls());
    assert_eq!(none.pick("h", "/prod/pets", 0), 0);
}

#[test]
fn errors_name_the_stage_that_has_them() {
    let errs = StageSet::compile(&config(json!({"stages": [
        {"name": "ok"},
        {"name": "bad", "cache": {"capacityMiB": 0}},
        {"name": "lost", "openapi": "missing.json"},
    ]})))
    .unwrap_err();
    let locations: Vec<&str> = errs.iter().map(|e| e.location.as_str()).collect();
    assert!(
        locations.contains(&"deployment.stages[1].cache.capacityMiB"),
        "{errs:?}"
    );
    assert!(
        locations.contains(&"configuration.exports.missing.json"),
        "{errs:?}"
    );
    // A shared mistake is reported once, not once per stage.
    let errs = StageSet::compile(&config(json!({"limits": {"maxBodyBytes": 0},
        "stages": [{"name": "a"}, {"name": "b"}]})))
    .unwrap_err();
    assert_eq!(
        errs.iter()
            .filter(|e| e.location == "deployment.limits.maxBodyBytes")
            .count(),
        1
    );
}

#[test]
fn stage_cache_is_shared_only_when_asked() {
    let set = StageSet::compile(&config(
        json!({"cache": {"cacheTtlInSeconds": 60}, "stages": [
            {"name": "a", "canarySettings": {"percentTraffic": 5, "useStageCache": true}},
            {"name": "b", "canarySettings": {"percentTraffic": 5}},
        ]}),
    ))
    .unwrap()
    .set;
    assert!(set.shares_stage_cache(1));
    assert!(!set.shares_stage_cache(3));
    assert!(set.gateway(3).unwrap().stage_cache().is_none());
    assert_eq!(set.stage_names(), ["a", "b"]);
    assert_eq!(set.stage("b").unwrap().stage_name(), "b");
}
