//! Template engine fuzz target: any bytes, split at the first NUL into a template and the
//! body `$input` reads, must compile or fail with a position, and render or fail, within
//! the work budget. A panic, a hang (libFuzzer's -timeout) or unbounded memory
//! (-rss_limit_mb) is a finding.

#![no_main]

use std::rc::Rc;

use apigw_edge::vtl::{Env, Input, Template, Value, MAX_BYTES};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (template, body) = match data.iter().position(|b| *b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &b"{\"a\": [1, {\"b\": \"x\"}], \"s\": \"it's\"}"[..]),
    };
    let Ok(template) = std::str::from_utf8(template) else {
        return;
    };
    let body = String::from_utf8_lossy(body);
    let compiled = match Template::compile(template) {
        Ok(t) => t,
        Err(e) => {
            assert!(e.line >= 1 && e.column >= 1, "{e}");
            return;
        }
    };
    let params = vec![("id".to_string(), "7".to_string())];
    let env = Env {
        input: Input {
            body: &body,
            path: &params,
            querystring: &params,
            header: &params,
        },
        context: Value::map(vec![
            (Rc::from("stage"), Value::str("fuzz")),
            (
                Rc::from("responseOverride"),
                Value::map(vec![(Rc::from("header"), Value::map(Vec::new()))]),
            ),
        ]),
        stage_variables: Value::map(vec![(Rc::from("v"), Value::str("1"))]),
    };
    if let Ok(out) = compiled.render(&env) {
        assert!(
            out.len() <= MAX_BYTES + template.len(),
            "output beyond the budget"
        );
    }
});
