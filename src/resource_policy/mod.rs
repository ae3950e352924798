//! An API's resource policy, compiled once and evaluated per request.
//!
//! Owns: reading the policy document (`x-amazon-apigateway-policy` in the export, or
//! `resourcePolicy.document` in the deployment file): `Effect`, `Principal` (`*` and AWS
//! accounts or ARNs), `Action` / `NotAction`, `Resource` / `NotResource` with wildcards
//! and the `execute-api:/stage/METHOD/path` short form expanded to the API's ARN, and
//! `Condition` blocks ([`condition`]); the 8,192-character limit; and evaluating the policy
//! for one request: an explicit deny wins, then an allow, else the policy is silent.
//! Must not: decide what the verdict means for a method (the policy stage combines it with
//! the method's authentication) or read the request.

pub mod condition;

use serde_json::Value;

pub use condition::Facts;

use crate::authorizer::policy::glob;
use crate::error::ConfigError;

/// Longest policy document accepted (API Gateway's limit).
pub const MAX_POLICY_CHARS: usize = 8192;
/// The action every request asks for.
pub const INVOKE: &str = "execute-api:Invoke";

/// Who a statement is about.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Principal {
    /// `"*"` or `{"AWS": "*"}`: everyone, anonymous callers included.
    Anyone,
    /// AWS accounts (`123456789012`, `arn:aws:iam::123456789012:root`) and IAM ARNs: only
    /// callers signed as one of them.
    Aws(Vec<String>),
}

#[derive(Debug, Clone)]
struct Patterns {
    negated: bool,
    patterns: Vec<String>,
}

impl Patterns {
    fn matches(&self, text: &str, case_insensitive: bool) -> bool {
        let any = self.patterns.iter().any(|p| {
            if case_insensitive {
                glob(&p.to_ascii_lowercase(), &text.to_ascii_lowercase())
            } else {
                glob(p, text)
            }
        });
        any != self.negated
    }
}

#[derive(Debug, Clone)]
struct Statement {
    allow: bool,
    principal: Principal,
    actions: Patterns,
    resources: Patterns,
    conditions: Vec<condition::Condition>,
}

/// A signed caller, as far as policies see one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller<'a> {
    pub arn: &'a str,
    pub account: &'a str,
}

/// What a policy says about a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Allow,
    ExplicitDeny,
    /// No statement applies.
    Silent,
}

/// A compiled resource policy.
#[derive(Debug, Clone)]
pub struct Policy {
    statements: Vec<Statement>,
}

fn strings(v: &Value, at: &str) -> Result<Vec<String>, ConfigError> {
    match v {
        Value::String(s) => Ok(vec![s.clone()]),
        Value::Array(items) if !items.is_empty() => items
            .iter()
            .map(|i| {
                i.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| ConfigError::new(at, "expected strings"))
            })
            .collect(),
        _ => Err(ConfigError::new(
            at,
            "expected a string or a non-empty list of strings",
        )),
    }
}

fn principal(v: &Value, at: &str) -> Result<Principal, ConfigError> {
    match v {
        Value::String(s) if s == "*" => Ok(Principal::Anyone),
        Value::Object(m) => {
            if let Some(k) = m.keys().find(|k| k.as_str() != "AWS") {
                return Err(ConfigError::new(
                    format!("{at}.{k}"),
                    "only AWS principals (accounts and IAM ARNs) and \"*\" apply to an API",
                ));
            }
            let list = strings(m.get("AWS").unwrap_or(&Value::Null), &format!("{at}.AWS"))?;
            if list.iter().any(|p| p == "*") {
                return Ok(Principal::Anyone);
            }
            for p in &list {
                let account = p.len() == 12 && p.bytes().all(|b| b.is_ascii_digit());
                if !account && !p.starts_with("arn:aws") {
                    return Err(ConfigError::new(
                        format!("{at}.AWS"),
                        format!("`{p}` is neither an account id nor an ARN"),
                    ));
                }
            }
            Ok(Principal::Aws(list))
        }
        _ => Err(ConfigError::new(at, "expected \"*\" or {\"AWS\": ...}")),
    }
}

impl Policy {
    /// Compiles a policy document for the API `arn_prefix`
    /// (`arn:aws:execute-api:{region}:{account}:{apiId}`). Errors name their field under `at`.
    pub fn compile(doc: &Value, arn_prefix: &str, at: &str) -> Result<Policy, ConfigError> {
        Policy::compile_as(doc, arn_prefix, at, false)
    }

    /// Compiles an identity policy (a caller's own permissions): statements have no
    /// `Principal`, since they apply to the caller they are attached to.
    pub fn compile_identity(
        doc: &Value,
        arn_prefix: &str,
        at: &str,
    ) -> Result<Policy, ConfigError> {
        Policy::compile_as(doc, arn_prefix, at, true)
    }

    fn compile_as(
        doc: &Value,
        arn_prefix: &str,
        at: &str,
        identity: bool,
    ) -> Result<Policy, ConfigError> {
        let doc = match doc {
            // The export may hold the policy as a JSON string.
            Value::String(s) => serde_json::from_str(s)
                .map_err(|e| ConfigError::new(at, format!("not a JSON policy document: {e}")))?,
            other => other.clone(),
        };
        let size = doc.to_string().chars().count();
        if size > MAX_POLICY_CHARS {
            return Err(ConfigError::new(
                at,
                format!("the policy has {size} characters, more than {MAX_POLICY_CHARS}"),
            ));
        }
        let statements = match doc.get("Statement") {
            Some(Value::Array(items)) => items.iter().collect::<Vec<_>>(),
            Some(one @ Value::Object(_)) => vec![one],
            _ => {
                return Err(ConfigError::new(
                    format!("{at}.Statement"),
                    "missing or not a list",
                ))
            }
        };
        let mut out = Vec::with_capacity(statements.len());
        for (i, s) in statements.into_iter().enumerate() {
            let sat = format!("{at}.Statement[{i}]");
            let allow = match s.get("Effect").and_then(Value::as_str) {
                Some("Allow") => true,
                Some("Deny") => false,
                _ => {
                    return Err(ConfigError::new(
                        format!("{sat}.Effect"),
                        "expected Allow or Deny",
                    ))
                }
            };
            if s.get("NotPrincipal").is_some() {
                return Err(ConfigError::new(
                    format!("{sat}.NotPrincipal"),
                    "not supported",
                ));
            }
            let principal = match (identity, s.get("Principal")) {
                (true, None) => Principal::Anyone,
                (true, Some(_)) => {
                    return Err(ConfigError::new(
                        format!("{sat}.Principal"),
                        "an identity policy names no principal: it applies to its caller",
                    ))
                }
                (false, p) => principal(p.unwrap_or(&Value::Null), &format!("{sat}.Principal"))?,
            };
            let pick = |yes: &str, no: &str| -> Result<Patterns, ConfigError> {
                match (s.get(yes), s.get(no)) {
                    (Some(v), None) => Ok(Patterns {
                        negated: false,
                        patterns: strings(v, &format!("{sat}.{yes}"))?,
                    }),
                    (None, Some(v)) => Ok(Patterns {
                        negated: true,
                        patterns: strings(v, &format!("{sat}.{no}"))?,
                    }),
                    _ => Err(ConfigError::new(
                        format!("{sat}.{yes}"),
                        format!("exactly one of {yes} and {no} is required"),
                    )),
                }
            };
            let actions = pick("Action", "NotAction")?;
            let mut resources = pick("Resource", "NotResource")?;
            for r in &mut resources.patterns {
                *r = expand(r, arn_prefix).ok_or_else(|| {
                    ConfigError::new(
                        format!("{sat}.Resource"),
                        format!("`{r}` is not an execute-api ARN (arn:aws:execute-api:..., execute-api:/stage/METHOD/path or *)"),
                    )
                })?;
            }
            let conditions = match s.get("Condition") {
                None => Vec::new(),
                Some(c) => condition::compile(c, &format!("{sat}.Condition"))?,
            };
            out.push(Statement {
                allow,
                principal,
                actions,
                resources,
                conditions,
            });
        }
        Ok(Policy { statements: out })
    }

    /// What the policy says about invoking `method_arn` with these facts, for `caller`
    /// (`None`: an anonymous caller).
    pub fn evaluate(&self, method_arn: &str, caller: Option<&Caller>, facts: &Facts) -> Verdict {
        let mut allowed = false;
        for s in &self.statements {
            let who = match (&s.principal, caller) {
                (Principal::Anyone, _) => true,
                (Principal::Aws(_), None) => false,
                (Principal::Aws(list), Some(c)) => list.iter().any(|p| {
                    p == c.account
                        || p == c.arn
                        || p.strip_prefix("arn:aws:iam::")
                            .and_then(|r| r.strip_suffix(":root"))
                            .is_some_and(|acct| acct == c.account)
                }),
            };
            if !who
                || !s.actions.matches(INVOKE, true)
                || !s.resources.matches(method_arn, false)
                || !s.conditions.iter().all(|c| c.holds(facts))
            {
                continue;
            }
            if !s.allow {
                return Verdict::ExplicitDeny;
            }
            allowed = true;
        }
        if allowed {
            Verdict::Allow
        } else {
            Verdict::Silent
        }
    }
}

/// A resource as the API's full ARN pattern: `execute-api:/rest` becomes
/// `{arn_prefix}/rest`; `*` and `arn:aws:execute-api:...` stay.
fn expand(r: &str, arn_prefix: &str) -> Option<String> {
    if r == "*" || r.starts_with("arn:aws:execute-api:") || r.starts_with("arn:aws-") {
        return Some(r.to_string());
    }
    r.strip_prefix("execute-api:/")
        .map(|rest| format!("{arn_prefix}/{rest}"))
}

#[cfg(test)]
mod tests;
