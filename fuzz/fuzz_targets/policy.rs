//! Resource policy fuzz target: a policy document and the caller's facts (address,
//! user agent, referer, method ARN, one per line), split at the first NUL. Compiling must
//! accept or refuse with a located error, evaluating must answer, never panic.

#![no_main]

use apigw_edge::resource_policy::{Caller, Facts, Policy};
use libfuzzer_sys::fuzz_target;

const PREFIX: &str = "arn:aws:execute-api:us-east-1:123456789012:abc123";

fuzz_target!(|data: &[u8]| {
    let (doc, facts) = match data.iter().position(|b| *b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &b""[..]),
    };
    let Ok(doc) = serde_json::from_slice::<serde_json::Value>(doc) else {
        return;
    };
    let policy = match Policy::compile(&doc, PREFIX, "policy") {
        Ok(p) => p,
        Err(e) => {
            assert!(e.location.starts_with("policy"), "{e:?}");
            return;
        }
    };
    let text = String::from_utf8_lossy(facts);
    let mut lines = text.lines();
    let ip = lines.next().unwrap_or_default();
    let ua = lines.next();
    let referer = lines.next();
    let arn = lines
        .next()
        .map(|p| format!("{PREFIX}/{p}"))
        .unwrap_or_else(|| format!("{PREFIX}/dev/GET/pets"));
    let facts = Facts {
        source_ip: ip.parse().ok(),
        user_agent: ua,
        referer,
        now_ms: 1_700_000_000_000,
        ..Facts::default()
    };
    let _ = policy.evaluate(&arn, None, &facts);
    let caller = Caller {
        arn: "arn:aws:iam::123456789012:user/alice",
        account: "123456789012",
    };
    let _ = policy.evaluate(&arn, Some(&caller), &facts);
});
