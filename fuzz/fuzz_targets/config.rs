//! Configuration fuzz target: a deployment file (YAML or JSON) and an OpenAPI export, split at
//! the first NUL, must compile or fail with located errors, never panic. Also the header map
//! decoder the glue feeds with the host's bytes.

#![no_main]

use apigw_edge::config::{parse_deployment, FilterConfig};
use apigw_edge::gateway::Gateway;
use apigw_edge::http::decode_header_map;
use apigw_edge::stage_set::StageSet;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = decode_header_map(data);
    let (deployment, export) = match data.iter().position(|b| *b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &b"{\"swagger\":\"2.0\",\"paths\":{}}"[..]),
    };
    let Ok(deployment) = serde_yaml::from_slice::<serde_json::Value>(deployment) else {
        return;
    };
    let deployment = match parse_deployment(deployment) {
        Ok(d) => d,
        Err(e) => {
            assert!(e.location.starts_with("deployment"), "{e}");
            return;
        }
    };
    let Ok(openapi) = serde_json::from_slice::<serde_json::Value>(export) else {
        return;
    };
    let cfg = FilterConfig::single(deployment, openapi);
    if let Err(errors) = Gateway::compile(&cfg) {
        assert!(!errors.is_empty());
    }
    // Stages and canaries (their exports missing: located errors, never a panic).
    if let Err(errors) = StageSet::compile(&cfg) {
        assert!(!errors.is_empty());
    }
    let _ = apigw_edge::render::bootstrap(&cfg, "/f.wasm");
});
