//! IAM policy documents as Lambda authorizers return them, evaluated against a method ARN.
//!
//! Owns: reading `policyDocument` (`Statement` as one object or a list, `Action` and
//! `Resource` as a string or a list, `Effect` `Allow`/`Deny`) and the evaluation rule: an
//! explicit `Deny` that matches wins, else a matching `Allow` allows, else the request is
//! implicitly denied. Patterns use `*` (any run of characters, `/` included) and `?` (one
//! character). Must not: know where the policy came from or cache it.

use serde_json::Value;

/// One statement, ready to evaluate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statement {
    pub allow: bool,
    pub actions: Vec<String>,
    pub resources: Vec<String>,
}

/// The outcome of evaluating a policy for one method ARN.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Allow,
    ExplicitDeny,
    ImplicitDeny,
}

/// The action API Gateway checks.
pub const INVOKE: &str = "execute-api:Invoke";

/// Longest pattern or resource considered (API Gateway limits a policy resource to 512
/// characters and a method ARN to 1600 bytes); longer ones never match.
const MAX_PATTERN: usize = 2048;

fn strings(v: &Value, what: &str) -> Result<Vec<String>, String> {
    match v {
        Value::String(s) => Ok(vec![s.clone()]),
        Value::Array(items) => items
            .iter()
            .map(|i| {
                i.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| format!("{what} has an entry that is not a string"))
            })
            .collect(),
        _ => Err(format!("{what} is neither a string nor a list of strings")),
    }
}

/// Reads a `policyDocument`.
pub fn parse(doc: &Value) -> Result<Vec<Statement>, String> {
    let statements = match doc.get("Statement") {
        Some(Value::Array(items)) => items.iter().collect::<Vec<_>>(),
        Some(one @ Value::Object(_)) => vec![one],
        _ => return Err("policyDocument.Statement is missing or not a list".into()),
    };
    statements
        .into_iter()
        .enumerate()
        .map(|(i, s)| {
            let at = format!("policyDocument.Statement[{i}]");
            let allow = match s.get("Effect").and_then(Value::as_str) {
                Some(e) if e.eq_ignore_ascii_case("allow") => true,
                Some(e) if e.eq_ignore_ascii_case("deny") => false,
                _ => return Err(format!("{at}.Effect must be Allow or Deny")),
            };
            for unsupported in ["NotAction", "NotResource", "Condition"] {
                if s.get(unsupported).is_some() {
                    return Err(format!(
                        "{at}.{unsupported} is not supported in authorizer policies"
                    ));
                }
            }
            let actions = strings(
                s.get("Action").unwrap_or(&Value::Null),
                &format!("{at}.Action"),
            )?;
            let resources = strings(
                s.get("Resource").unwrap_or(&Value::Null),
                &format!("{at}.Resource"),
            )?;
            Ok(Statement {
                allow,
                actions,
                resources,
            })
        })
        .collect()
}

/// Evaluates statements for `execute-api:Invoke` on `method_arn`.
pub fn evaluate(statements: &[Statement], method_arn: &str) -> Verdict {
    let applies = |s: &Statement| {
        s.actions
            .iter()
            .any(|a| glob(&a.to_ascii_lowercase(), &INVOKE.to_ascii_lowercase()))
            && s.resources.iter().any(|r| glob(r, method_arn))
    };
    let mut allowed = false;
    for s in statements.iter().filter(|s| applies(s)) {
        if !s.allow {
            return Verdict::ExplicitDeny;
        }
        allowed = true;
    }
    if allowed {
        Verdict::Allow
    } else {
        Verdict::ImplicitDeny
    }
}

/// Whether `text` matches `pattern` (`*` any run, `?` one character), in time linear in
/// their product at worst and usually linear: the classic single-backtrack matcher.
pub fn glob(pattern: &str, text: &str) -> bool {
    if pattern.len() > MAX_PATTERN || text.len() > MAX_PATTERN {
        return false;
    }
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    let (mut pi, mut ti) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        match p.get(pi) {
            Some('*') => {
                star = Some((pi, ti));
                pi += 1;
            }
            Some(c) if *c == '?' || Some(c) == t.get(ti) => {
                pi += 1;
                ti += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    pi = sp + 1;
                    ti = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    p.get(pi..)
        .is_some_and(|rest| rest.iter().all(|c| *c == '*'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const ARN: &str = "arn:aws:execute-api:us-east-1:123456789012:abc123/dev/GET/pets/7";

    #[test]
    fn glob_table() {
        for (pattern, text, want) in [
            ("*", "anything/at/all", true),
            ("", "", true),
            ("", "x", false),
            ("a*c", "abbbc", true),
            ("a*c", "abbbd", false),
            ("a?c", "abc", true),
            ("a?c", "ac", false),
            ("*/GET/*", "x/dev/GET/pets/7", true),
            ("arn:aws:execute-api:*:*:abc123/*/GET/pets/*", ARN, true),
            ("arn:aws:execute-api:*:*:abc123/*/POST/*", ARN, false),
            ("**a**", "bab", true),
            ("a*b*c*d", "a-b-c-d", true),
            ("a*b*c*d", "a-b-c-", false),
        ] {
            assert_eq!(glob(pattern, text), want, "{pattern} ~ {text}");
        }
    }

    #[test]
    fn glob_is_fast_on_adversarial_patterns() {
        let text = "a".repeat(1500);
        let pattern = format!("{}b", "*a".repeat(500));
        assert!(!glob(&pattern, &text));
        assert!(!glob(&"x".repeat(5000), &"x".repeat(5000)));
    }

    fn verdict(doc: serde_json::Value) -> Verdict {
        evaluate(&parse(&doc).unwrap(), ARN)
    }

    #[test]
    fn evaluation_table() {
        let allow_all = json!({"Effect": "Allow", "Action": "execute-api:Invoke", "Resource": "*"});
        let deny_get = json!({"Effect": "Deny", "Action": ["execute-api:*"], "Resource": ["arn:aws:execute-api:us-east-1:123456789012:abc123/*/GET/*"]});
        let allow_post = json!({"Effect": "Allow", "Action": "execute-api:Invoke", "Resource": "arn:aws:execute-api:us-east-1:123456789012:abc123/dev/POST/pets/7"});
        let allow_other_action =
            json!({"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"});
        for (statements, want) in [
            (json!([allow_all]), Verdict::Allow),
            (json!(allow_all), Verdict::Allow),
            (json!([allow_all, deny_get]), Verdict::ExplicitDeny),
            (json!([deny_get, allow_all]), Verdict::ExplicitDeny),
            (json!([allow_post]), Verdict::ImplicitDeny),
            (json!([allow_other_action]), Verdict::ImplicitDeny),
            (json!([]), Verdict::ImplicitDeny),
            (
                json!([{"Effect": "allow", "Action": "*", "Resource": ["x", "arn:aws:execute-api:us-east-1:123456789012:abc123/dev/GET/pets/?"]}]),
                Verdict::Allow,
            ),
        ] {
            assert_eq!(
                verdict(json!({"Version": "2012-10-17", "Statement": statements})),
                want,
                "{statements}"
            );
        }
    }

    #[test]
    fn malformed_policies_are_refused() {
        for doc in [
            json!({}),
            json!({"Statement": "x"}),
            json!({"Statement": [{"Effect": "Maybe", "Action": "*", "Resource": "*"}]}),
            json!({"Statement": [{"Effect": "Allow", "Resource": "*"}]}),
            json!({"Statement": [{"Effect": "Allow", "Action": "*", "Resource": 7}]}),
            json!({"Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*", "Condition": {}}]}),
        ] {
            assert!(parse(&doc).is_err(), "{doc}");
        }
    }
}
