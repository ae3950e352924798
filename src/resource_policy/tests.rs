//! Resource policies: evaluation table and configuration errors.

use std::net::IpAddr;

use serde_json::{json, Value};

use super::condition::parse_date;
use super::*;

const PREFIX: &str = "arn:aws:execute-api:us-east-1:123456789012:abc123";
const GET_PETS: &str = "arn:aws:execute-api:us-east-1:123456789012:abc123/dev/GET/pets";
const POST_PETS: &str = "arn:aws:execute-api:us-east-1:123456789012:abc123/dev/POST/pets";
const NOW: u64 = 1_700_000_000_000; // 2023-11-14T22:13:20Z

fn policy(statements: Value) -> Policy {
    Policy::compile(
        &json!({"Version": "2012-10-17", "Statement": statements}),
        PREFIX,
        "p",
    )
    .unwrap()
}

fn allow_all() -> Value {
    json!({"Effect": "Allow", "Principal": "*", "Action": "execute-api:Invoke", "Resource": "execute-api:/*"})
}

fn facts(ip: &str) -> Facts<'static> {
    Facts {
        source_ip: ip.parse::<IpAddr>().ok(),
        user_agent: Some("curl/8.0"),
        referer: Some("https://app.example.com/page"),
        now_ms: NOW,
        ..Facts::default()
    }
}

#[test]
fn evaluation_table() {
    let deny_ips = json!({"Effect": "Deny", "Principal": "*", "Action": "execute-api:Invoke",
        "Resource": "execute-api:/*",
        "Condition": {"IpAddress": {"aws:SourceIp": ["192.0.2.0/24", "2001:db8::/32"]}}});
    let only_ips = json!({"Effect": "Deny", "Principal": "*", "Action": "execute-api:Invoke",
        "Resource": "execute-api:/*",
        "Condition": {"NotIpAddress": {"aws:SourceIp": "10.0.0.0/8"}}});
    let cases: Vec<(&str, Value, &str, &str, Verdict)> = vec![
        (
            "allow all",
            json!([allow_all()]),
            GET_PETS,
            "198.51.100.7",
            Verdict::Allow,
        ),
        (
            "empty policy is silent",
            json!([]),
            GET_PETS,
            "198.51.100.7",
            Verdict::Silent,
        ),
        (
            "denied range v4",
            json!([allow_all(), deny_ips]),
            GET_PETS,
            "192.0.2.9",
            Verdict::ExplicitDeny,
        ),
        (
            "denied range v6",
            json!([allow_all(), deny_ips]),
            GET_PETS,
            "2001:db8::1",
            Verdict::ExplicitDeny,
        ),
        (
            "outside the denied ranges",
            json!([allow_all(), deny_ips]),
            GET_PETS,
            "198.51.100.7",
            Verdict::Allow,
        ),
        (
            "allow-list by NotIpAddress: outside",
            json!([allow_all(), only_ips]),
            GET_PETS,
            "198.51.100.7",
            Verdict::ExplicitDeny,
        ),
        (
            "allow-list by NotIpAddress: inside",
            json!([allow_all(), only_ips]),
            GET_PETS,
            "10.1.2.3",
            Verdict::Allow,
        ),
        (
            "resource of another method",
            json!([{"Effect": "Allow", "Principal": "*", "Action": "execute-api:Invoke", "Resource": "execute-api:/dev/POST/*"}]),
            GET_PETS,
            "1.1.1.1",
            Verdict::Silent,
        ),
        (
            "full ARN with wildcard",
            json!([{"Effect": "Allow", "Principal": "*", "Action": "execute-api:*", "Resource": format!("{PREFIX}/*/GET/*")}]),
            GET_PETS,
            "1.1.1.1",
            Verdict::Allow,
        ),
        (
            "NotResource",
            json!([allow_all(), {"Effect": "Deny", "Principal": "*", "Action": "execute-api:Invoke", "NotResource": "execute-api:/dev/GET/*"}]),
            POST_PETS,
            "1.1.1.1",
            Verdict::ExplicitDeny,
        ),
        (
            "NotResource spares the named",
            json!([allow_all(), {"Effect": "Deny", "Principal": "*", "Action": "execute-api:Invoke", "NotResource": "execute-api:/dev/GET/*"}]),
            GET_PETS,
            "1.1.1.1",
            Verdict::Allow,
        ),
        (
            "NotAction excludes Invoke",
            json!([{"Effect": "Allow", "Principal": "*", "NotAction": "execute-api:Invoke", "Resource": "*"}]),
            GET_PETS,
            "1.1.1.1",
            Verdict::Silent,
        ),
        (
            "action names are case-insensitive",
            json!([{"Effect": "Allow", "Principal": "*", "Action": "EXECUTE-API:invoke", "Resource": "*"}]),
            GET_PETS,
            "1.1.1.1",
            Verdict::Allow,
        ),
        (
            "AWS principals never match anonymous callers",
            json!([{"Effect": "Allow", "Principal": {"AWS": "123456789012"}, "Action": "execute-api:Invoke", "Resource": "*"}]),
            GET_PETS,
            "1.1.1.1",
            Verdict::Silent,
        ),
        (
            "user agent",
            json!([allow_all(), {"Effect": "Deny", "Principal": "*", "Action": "execute-api:Invoke", "Resource": "*", "Condition": {"StringLike": {"aws:UserAgent": "curl/*"}}}]),
            GET_PETS,
            "1.1.1.1",
            Verdict::ExplicitDeny,
        ),
        (
            "referer allow-list",
            json!([{"Effect": "Allow", "Principal": "*", "Action": "execute-api:Invoke", "Resource": "*", "Condition": {"StringLike": {"aws:Referer": ["https://app.example.com/*"]}}}]),
            GET_PETS,
            "1.1.1.1",
            Verdict::Allow,
        ),
        (
            "missing key fails a positive operator",
            json!([{"Effect": "Allow", "Principal": "*", "Action": "execute-api:Invoke", "Resource": "*", "Condition": {"StringEquals": {"aws:SourceVpc": "vpc-1"}}}]),
            GET_PETS,
            "1.1.1.1",
            Verdict::Silent,
        ),
        (
            "missing key passes a negated operator",
            json!([allow_all(), {"Effect": "Deny", "Principal": "*", "Action": "execute-api:Invoke", "Resource": "*", "Condition": {"StringNotEquals": {"aws:SourceVpce": "vpce-1"}}}]),
            GET_PETS,
            "1.1.1.1",
            Verdict::ExplicitDeny,
        ),
        (
            "IfExists passes a missing key",
            json!([{"Effect": "Allow", "Principal": "*", "Action": "execute-api:Invoke", "Resource": "*", "Condition": {"StringEqualsIfExists": {"aws:SourceVpc": "vpc-1"}}}]),
            GET_PETS,
            "1.1.1.1",
            Verdict::Allow,
        ),
        (
            "before a date",
            json!([{"Effect": "Allow", "Principal": "*", "Action": "execute-api:Invoke", "Resource": "*", "Condition": {"DateLessThan": {"aws:CurrentTime": "2024-01-01T00:00:00Z"}}}]),
            GET_PETS,
            "1.1.1.1",
            Verdict::Allow,
        ),
        (
            "after a date",
            json!([{"Effect": "Allow", "Principal": "*", "Action": "execute-api:Invoke", "Resource": "*", "Condition": {"DateGreaterThan": {"aws:CurrentTime": "2024-01-01T00:00:00Z"}}}]),
            GET_PETS,
            "1.1.1.1",
            Verdict::Silent,
        ),
        (
            "conditions are ANDed",
            json!([{"Effect": "Allow", "Principal": "*", "Action": "execute-api:Invoke", "Resource": "*", "Condition": {"IpAddress": {"aws:SourceIp": "1.1.1.0/24"}, "StringEquals": {"aws:UserAgent": "wget"}}}]),
            GET_PETS,
            "1.1.1.1",
            Verdict::Silent,
        ),
    ];
    for (what, statements, arn, ip, want) in cases {
        let p = policy(statements);
        assert_eq!(p.evaluate(arn, None, &facts(ip)), want, "{what}");
    }
}

#[test]
fn aws_principals_match_signed_callers() {
    let p = policy(
        json!([{"Effect": "Allow", "Principal": {"AWS": ["arn:aws:iam::111122223333:root", "arn:aws:iam::123456789012:user/alice"]},
        "Action": "execute-api:Invoke", "Resource": "*"}]),
    );
    let f = facts("1.1.1.1");
    let alice = Caller {
        arn: "arn:aws:iam::123456789012:user/alice",
        account: "123456789012",
    };
    let bob = Caller {
        arn: "arn:aws:iam::123456789012:user/bob",
        account: "123456789012",
    };
    let other = Caller {
        arn: "arn:aws:iam::111122223333:user/x",
        account: "111122223333",
    };
    assert_eq!(p.evaluate(GET_PETS, Some(&alice), &f), Verdict::Allow);
    assert_eq!(p.evaluate(GET_PETS, Some(&bob), &f), Verdict::Silent);
    assert_eq!(
        p.evaluate(GET_PETS, Some(&other), &f),
        Verdict::Allow,
        "the account's root names the account"
    );
}

#[test]
fn configuration_errors_name_their_field() {
    let base = |s: Value| json!({"Statement": [s]});
    let cases = [
        (json!({"Version": "2012-10-17"}), "p.Statement"),
        (
            base(json!({"Effect": "Maybe", "Principal": "*", "Action": "x", "Resource": "*"})),
            "p.Statement[0].Effect",
        ),
        (
            base(
                json!({"Effect": "Allow", "Principal": {"Service": "x"}, "Action": "x", "Resource": "*"}),
            ),
            "p.Statement[0].Principal.Service",
        ),
        (
            base(
                json!({"Effect": "Allow", "Principal": {"AWS": "alice"}, "Action": "x", "Resource": "*"}),
            ),
            "p.Statement[0].Principal.AWS",
        ),
        (
            base(json!({"Effect": "Allow", "Principal": "*", "Resource": "*"})),
            "p.Statement[0].Action",
        ),
        (
            base(
                json!({"Effect": "Allow", "Principal": "*", "Action": "x", "Resource": "arn:aws:s3:::b"}),
            ),
            "p.Statement[0].Resource",
        ),
        (
            base(
                json!({"Effect": "Allow", "Principal": "*", "Action": "x", "Resource": "*", "Condition": {"NumericLessThan": {"aws:EpochTime": 1}}}),
            ),
            "p.Statement[0].Condition.NumericLessThan",
        ),
        (
            base(
                json!({"Effect": "Allow", "Principal": "*", "Action": "x", "Resource": "*", "Condition": {"StringEquals": {"aws:MadeUp": "x"}}}),
            ),
            "p.Statement[0].Condition.StringEquals.aws:MadeUp",
        ),
        (
            base(
                json!({"Effect": "Allow", "Principal": "*", "Action": "x", "Resource": "*", "Condition": {"IpAddress": {"aws:SourceIp": "300.1.1.1/8"}}}),
            ),
            "p.Statement[0].Condition.IpAddress.aws:SourceIp",
        ),
        (
            base(
                json!({"Effect": "Allow", "Principal": "*", "Action": "x", "Resource": "*", "Condition": {"IpAddress": {"aws:UserAgent": "1.1.1.1"}}}),
            ),
            "p.Statement[0].Condition.IpAddress.aws:UserAgent",
        ),
        (
            base(
                json!({"Effect": "Allow", "Principal": "*", "Action": "x", "Resource": "*", "Condition": {"DateLessThan": {"aws:CurrentTime": "tomorrow"}}}),
            ),
            "p.Statement[0].Condition.DateLessThan.aws:CurrentTime",
        ),
        (
            base(
                json!({"Effect": "Allow", "Principal": "*", "Action": "x", "Resource": "*", "Condition": {"ForAnyValue:StringLike": {"aws:UserAgent": "x"}}}),
            ),
            "p.Statement[0].Condition.ForAnyValue:StringLike",
        ),
        (
            json!({"Statement": [allow_all()], "Padding": "x".repeat(9000)}),
            "p",
        ),
    ];
    for (doc, field) in cases {
        let e = Policy::compile(&doc, PREFIX, "p").unwrap_err();
        assert_eq!(e.location, field, "{doc:.80}: {e:?}");
    }
    // A policy written as a JSON string (as exports sometimes carry it) is read.
    let text = json!({"Statement": [allow_all()]}).to_string();
    assert!(Policy::compile(&Value::String(text), PREFIX, "p").is_ok());
}

#[test]
fn dates() {
    assert_eq!(parse_date("2023-11-14T22:13:20Z"), Some(NOW));
    assert_eq!(parse_date("2023-11-14T22:13:20.123Z"), Some(NOW));
    assert_eq!(parse_date("1700000000"), Some(NOW));
    assert_eq!(
        parse_date("2023-11-14"),
        Some(NOW - (22 * 3600 + 13 * 60 + 20) * 1000)
    );
    // Years beyond four digits are not ISO 8601 dates (and used to overflow the arithmetic).
    assert_eq!(
        parse_date("9999-12-31T23:59:59Z"),
        Some(253_402_300_799_000)
    );
    for bad in [
        "",
        "2023-13-01T00:00:00Z",
        "2023-11-14T25:00:00Z",
        "soon",
        "10000-01-01T00:00:00Z",
        "202222222222230-01-01T00:00:00Z",
        "-9223372036854775808-01-01T00:00:00Z",
    ] {
        assert_eq!(parse_date(bad), None, "{bad}");
    }
}
