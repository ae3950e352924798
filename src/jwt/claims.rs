//! Claims as API Gateway hands them to the backend: every value a string.
//!
//! Owns: the text of each claim in `requestContext.authorizer.claims` and
//! `$context.authorizer.claims.*`. REST APIs turn `exp` and `iat` into Java's date text
//! (`Sun Dec 17 07:28:12 UTC 2017`), numbers and booleans into their JSON text, and arrays
//! (`cognito:groups`) into their items joined with commas; objects keep their JSON text.
//! Must not: decide whether a token is valid.

use serde_json::{Map, Value};

/// `EEE MMM dd HH:mm:ss 'UTC' yyyy`, the text of a Java `Date` in UTC.
pub fn java_date(epoch_s: u64) -> String {
    crate::time::java_date(epoch_s.saturating_mul(1000))
}

fn scalar(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        Value::Array(items) => items.iter().map(scalar).collect::<Vec<_>>().join(","),
        other => other.to_string(),
    }
}

/// The text of one claim.
pub fn text(name: &str, v: &Value) -> String {
    match (name, v) {
        ("exp" | "iat", Value::Number(n)) => match n.as_u64().or_else(|| {
            n.as_f64()
                .filter(|f| f.is_finite() && *f >= 0.0)
                .map(|f| f as u64)
        }) {
            Some(s) => java_date(s),
            None => n.to_string(),
        },
        _ => scalar(v),
    }
}

/// Every claim as text, in the token's order.
pub fn texts(claims: &Map<String, Value>) -> Vec<(String, String)> {
    claims
        .iter()
        .map(|(k, v)| (k.clone(), text(k, v)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn claim_texts_as_api_gateway_passes_them() {
        let cases = [
            ("exp", json!(1_513_495_692), "Sun Dec 17 07:28:12 UTC 2017"),
            ("iat", json!(1_680_629_979), "Tue Apr 04 17:39:39 UTC 2023"),
            ("iat", json!(0), "Thu Jan 01 00:00:00 UTC 1970"),
            ("auth_time", json!(1_513_492_092), "1513492092"),
            ("email_verified", json!(true), "true"),
            (
                "cognito:groups",
                json!(["group-a", "group-b"]),
                "group-a,group-b",
            ),
            ("cognito:groups", json!(["admin"]), "admin"),
            ("sub", json!("abc"), "abc"),
            ("custom:n", json!(1.5), "1.5"),
            ("address", json!({"street": "x"}), r#"{"street":"x"}"#),
            ("nothing", json!(null), ""),
        ];
        for (name, value, want) in cases {
            assert_eq!(text(name, &value), want, "{name}");
        }
    }
}
