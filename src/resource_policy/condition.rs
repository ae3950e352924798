//! `Condition` blocks of resource policies: the operators and keys API Gateway's policies
//! use in practice, compiled once.
//!
//! Owns: reading `{"Operator": {"key": value-or-list}}` (with the `...IfExists` suffix),
//! refusing operators and keys it does not know (a policy that cannot be evaluated must not
//! be served as if its condition held), and evaluating each against the request's values:
//! a missing key fails a positive operator and passes a negated one (IAM's rule), unless
//! `IfExists` makes any missing key pass. Must not: read the request itself (the stage
//! hands the values in).

use std::net::IpAddr;

use ipnet::IpNet;
use serde_json::Value;

use crate::authorizer::policy::glob;
use crate::error::ConfigError;

/// The request values conditions read.
#[derive(Debug, Clone, Default)]
pub struct Facts<'a> {
    pub source_ip: Option<IpAddr>,
    pub source_vpc: Option<&'a str>,
    pub source_vpce: Option<&'a str>,
    pub referer: Option<&'a str>,
    pub user_agent: Option<&'a str>,
    pub principal_account: Option<&'a str>,
    pub now_ms: u64,
    pub secure_transport: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Key {
    SourceIp,
    SourceVpc,
    SourceVpce,
    Referer,
    UserAgent,
    PrincipalAccount,
    CurrentTime,
    EpochTime,
    SecureTransport,
}

impl Key {
    fn parse(name: &str) -> Option<Key> {
        Some(match name.to_ascii_lowercase().as_str() {
            "aws:sourceip" | "aws:vpcsourceip" => Key::SourceIp,
            "aws:sourcevpc" => Key::SourceVpc,
            "aws:sourcevpce" => Key::SourceVpce,
            "aws:referer" => Key::Referer,
            "aws:useragent" => Key::UserAgent,
            "aws:principalaccount" => Key::PrincipalAccount,
            "aws:currenttime" => Key::CurrentTime,
            "aws:epochtime" => Key::EpochTime,
            "aws:securetransport" => Key::SecureTransport,
            _ => return None,
        })
    }

    fn text<'a>(self, f: &Facts<'a>) -> Option<&'a str> {
        match self {
            Key::SourceVpc => f.source_vpc,
            Key::SourceVpce => f.source_vpce,
            Key::Referer => f.referer,
            Key::UserAgent => f.user_agent,
            Key::PrincipalAccount => f.principal_account,
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StringOp {
    Equals,
    EqualsIgnoreCase,
    Like,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cmp {
    Eq,
    Lt,
    Le,
    Gt,
    Ge,
}

#[derive(Debug, Clone)]
enum Test {
    Strings(StringOp, Vec<String>),
    Ips(Vec<IpNet>),
    /// Times in milliseconds since the epoch.
    Dates(Cmp, Vec<u64>),
    Bool(Vec<bool>),
}

/// One operator on one key.
#[derive(Debug, Clone)]
pub struct Condition {
    key: Key,
    test: Test,
    negated: bool,
    if_exists: bool,
}

fn operator(name: &str) -> Option<(bool, &'static str)> {
    let (negated, kind) = match name {
        "StringEquals" => (false, "s="),
        "StringNotEquals" => (true, "s="),
        "StringEqualsIgnoreCase" => (false, "si"),
        "StringNotEqualsIgnoreCase" => (true, "si"),
        "StringLike" => (false, "s~"),
        "StringNotLike" => (true, "s~"),
        "IpAddress" => (false, "ip"),
        "NotIpAddress" => (true, "ip"),
        "DateEquals" => (false, "d="),
        "DateNotEquals" => (true, "d="),
        "DateLessThan" => (false, "d<"),
        "DateLessThanEquals" => (false, "d<="),
        "DateGreaterThan" => (false, "d>"),
        "DateGreaterThanEquals" => (false, "d>="),
        "Bool" => (false, "b"),
        _ => return None,
    };
    Some((negated, kind))
}

/// `2024-01-31T12:00:00Z` (seconds and fraction optional) or epoch seconds, to epoch ms.
/// Years have at most four digits, as in ISO 8601 without an agreed extension.
pub fn parse_date(s: &str) -> Option<u64> {
    if let Ok(secs) = s.parse::<u64>() {
        return secs.checked_mul(1000);
    }
    let s = s.strip_suffix('Z').unwrap_or(s);
    let (date, time) = s.split_once('T').unwrap_or((s, "00:00:00"));
    let mut d = date.splitn(3, '-').map(|p| p.parse::<i64>().ok());
    let (Some(Some(y)), Some(Some(m)), Some(Some(day))) = (d.next(), d.next(), d.next()) else {
        return None;
    };
    let time = time.split('.').next().unwrap_or_default();
    let mut t = time.splitn(3, ':').map(|p| p.parse::<i64>().ok());
    let (h, min) = (t.next().flatten()?, t.next().flatten()?);
    let sec = t.next().flatten().unwrap_or(0);
    let valid = (0..=9999).contains(&y)
        && (1..=12).contains(&m)
        && (1..=31).contains(&day)
        && (0..24).contains(&h)
        && (0..60).contains(&min)
        && (0..=60).contains(&sec);
    if !valid {
        return None;
    }
    let days = crate::time::days_from_civil(y, m as u32, day as u32);
    let secs = days * 86_400 + h * 3600 + min * 60 + sec;
    u64::try_from(secs).ok()?.checked_mul(1000)
}

fn values(v: &Value) -> Option<Vec<String>> {
    match v {
        Value::String(s) => Some(vec![s.clone()]),
        Value::Bool(b) => Some(vec![b.to_string()]),
        Value::Number(n) => Some(vec![n.to_string()]),
        Value::Array(items) => items
            .iter()
            .map(|i| match i {
                Value::String(s) => Some(s.clone()),
                Value::Bool(b) => Some(b.to_string()),
                Value::Number(n) => Some(n.to_string()),
                _ => None,
            })
            .collect(),
        _ => None,
    }
}

/// Reads a statement's `Condition` block.
pub fn compile(block: &Value, at: &str) -> Result<Vec<Condition>, ConfigError> {
    let Some(ops) = block.as_object() else {
        return Err(ConfigError::new(at, "expected an object of operators"));
    };
    let mut out = Vec::new();
    for (op_name, keys) in ops {
        let op_at = format!("{at}.{op_name}");
        if op_name.contains(':') {
            return Err(ConfigError::new(
                op_at,
                "set operators (ForAnyValue:, ForAllValues:) are not supported",
            ));
        }
        let (base, if_exists) = match op_name.strip_suffix("IfExists") {
            Some(b) => (b, true),
            None => (op_name.as_str(), false),
        };
        let (negated, kind) = operator(base).ok_or_else(|| {
            ConfigError::new(op_at.clone(), "unknown or unsupported condition operator")
        })?;
        let Some(keys) = keys.as_object() else {
            return Err(ConfigError::new(
                op_at,
                "expected an object of condition keys",
            ));
        };
        for (key_name, v) in keys {
            let key_at = format!("{op_at}.{key_name}");
            let key = Key::parse(key_name).ok_or_else(|| {
                ConfigError::new(
                    key_at.clone(),
                    "unknown or unsupported condition key (aws:SourceIp, aws:VpcSourceIp, aws:SourceVpc, aws:SourceVpce, aws:Referer, aws:UserAgent, aws:PrincipalAccount, aws:CurrentTime, aws:EpochTime, aws:SecureTransport)",
                )
            })?;
            let vals = values(v).filter(|v| !v.is_empty()).ok_or_else(|| {
                ConfigError::new(key_at.clone(), "expected a value or a list of values")
            })?;
            let mismatch =
                || ConfigError::new(key_at.clone(), format!("{base} cannot test {key_name}"));
            let test = match (kind, key) {
                ("ip", Key::SourceIp) => Test::Ips(
                    vals.iter()
                        .map(|s| {
                            s.parse::<IpNet>()
                                .or_else(|_| s.parse::<IpAddr>().map(IpNet::from))
                                .map_err(|_| {
                                    ConfigError::new(
                                        key_at.clone(),
                                        format!("`{s}` is not an IP address or CIDR block"),
                                    )
                                })
                        })
                        .collect::<Result<_, _>>()?,
                ),
                ("ip", _) | (_, Key::SourceIp) => return Err(mismatch()),
                (d, Key::CurrentTime | Key::EpochTime) if d.starts_with('d') => {
                    let cmp = match d {
                        "d=" => Cmp::Eq,
                        "d<" => Cmp::Lt,
                        "d<=" => Cmp::Le,
                        "d>" => Cmp::Gt,
                        _ => Cmp::Ge,
                    };
                    Test::Dates(
                        cmp,
                        vals.iter()
                            .map(|s| {
                                parse_date(s).ok_or_else(|| {
                                    ConfigError::new(key_at.clone(), format!("`{s}` is not a date (2024-01-31T12:00:00Z) or epoch seconds"))
                                })
                            })
                            .collect::<Result<_, _>>()?,
                    )
                }
                (d, _) if d.starts_with('d') => return Err(mismatch()),
                (_, Key::CurrentTime | Key::EpochTime) => return Err(mismatch()),
                ("b", Key::SecureTransport) => Test::Bool(
                    vals.iter()
                        .map(|s| match s.to_ascii_lowercase().as_str() {
                            "true" => Ok(true),
                            "false" => Ok(false),
                            _ => Err(ConfigError::new(key_at.clone(), "expected true or false")),
                        })
                        .collect::<Result<_, _>>()?,
                ),
                ("b", _) | (_, Key::SecureTransport) => return Err(mismatch()),
                (s, _) => Test::Strings(
                    match s {
                        "s=" => StringOp::Equals,
                        "si" => StringOp::EqualsIgnoreCase,
                        _ => StringOp::Like,
                    },
                    vals,
                ),
            };
            out.push(Condition {
                key,
                test,
                negated,
                if_exists,
            });
        }
    }
    Ok(out)
}

impl Condition {
    /// Whether the condition holds for these facts.
    pub fn holds(&self, f: &Facts) -> bool {
        let matched = match &self.test {
            Test::Ips(nets) => f.source_ip.map(|ip| nets.iter().any(|n| n.contains(&ip))),
            Test::Dates(cmp, times) => Some(times.iter().any(|t| {
                let now = if self.key == Key::EpochTime {
                    f.now_ms / 1000 * 1000
                } else {
                    f.now_ms
                };
                match cmp {
                    Cmp::Eq => now == *t,
                    Cmp::Lt => now < *t,
                    Cmp::Le => now <= *t,
                    Cmp::Gt => now > *t,
                    Cmp::Ge => now >= *t,
                }
            })),
            Test::Bool(values) => Some(values.contains(&f.secure_transport)),
            Test::Strings(op, values) => self.key.text(f).map(|v| {
                values.iter().any(|want| match op {
                    StringOp::Equals => want == v,
                    StringOp::EqualsIgnoreCase => want.eq_ignore_ascii_case(v),
                    StringOp::Like => glob(want, v),
                })
            }),
        };
        match matched {
            None => self.if_exists || self.negated,
            Some(m) => m != self.negated,
        }
    }
}
