//! Lambda authorizers (TOKEN and REQUEST), as API Gateway REST APIs run them.
//!
//! Owns: reading authorizers from the export (`x-amazon-apigateway-authtype: custom` with
//! `x-amazon-apigateway-authorizer`), identity sources and the validation expression, the
//! authorizer's input event, reading its answer (`principalId`, `policyDocument`,
//! `context`, `usageIdentifierKey`), the method ARN policies are evaluated against, and the
//! per-worker result cache ([`cache`]). Must not: call the host, decide replies (the
//! pipeline's authorizer stage does) or resolve functions (the gateway does, through the
//! same Lambda endpoints as integrations).

pub mod cache;
pub mod policy;

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;

use crate::error::ConfigError;
use crate::http::{header, Header};
use crate::lambda::event::RequestFields;
use crate::vtl::builtins::{anchored, java_regex};

/// TTL of cached results when the export sets none, and the largest allowed (seconds).
pub const DEFAULT_TTL_S: u64 = 300;
pub const MAX_TTL_S: u64 = 3600;
/// Time an authorizer function has to answer (API Gateway documents 10 s for HTTP APIs).
pub const TIMEOUT_MS: u64 = 10_000;
/// A method ARN longer than this is refused with 414, as API Gateway does.
pub const MAX_METHOD_ARN: usize = 1600;
/// Largest authorizer answer read (API Gateway documents 8 KB for WebSocket APIs; we
/// allow more, so that larger contexts work).
pub const MAX_ANSWER_BYTES: usize = 64 << 10;

/// Which event the function gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Token,
    Request,
}

/// Where an identity value comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Header(String),
    Query(String),
    StageVariable(String),
    /// A `$context` variable, by its dotted name (`identity.sourceIp`).
    Context(String),
}

/// One authorizer of the API, as the export declares it (the function is resolved by the
/// gateway from `uri`).
#[derive(Debug, Clone)]
pub struct Spec {
    pub name: String,
    /// Where the export declares it (`openapi.securityDefinitions.NAME`), for messages.
    pub location: String,
    pub kind: Kind,
    /// `authorizerUri`, as written.
    pub uri: String,
    pub ttl_ms: u64,
    pub sources: Vec<Source>,
    pub validation: Option<regex_lite::Regex>,
}

/// Reads one security scheme; `None` when it is not a Lambda authorizer.
pub fn read_scheme(name: &str, scheme: &Value, at: &str) -> Option<Result<Spec, ConfigError>> {
    let auth = scheme.get("x-amazon-apigateway-authorizer")?;
    let custom = scheme
        .get("x-amazon-apigateway-authtype")
        .and_then(Value::as_str)
        .is_some_and(|t| t.eq_ignore_ascii_case("custom"));
    let kind = auth
        .get("type")
        .and_then(Value::as_str)
        .map(str::to_ascii_lowercase);
    let kind = match kind.as_deref() {
        Some("token") => Kind::Token,
        Some("request") => Kind::Request,
        _ if !custom => return None,
        _ => {
            return Some(Err(ConfigError::new(
                format!("{at}.x-amazon-apigateway-authorizer.type"),
                "expected `token` or `request`",
            )))
        }
    };
    Some(read_spec(
        name,
        kind,
        auth,
        &format!("{at}.x-amazon-apigateway-authorizer"),
    ))
}

fn read_spec(name: &str, kind: Kind, auth: &Value, at: &str) -> Result<Spec, ConfigError> {
    let uri = auth
        .get("authorizerUri")
        .and_then(Value::as_str)
        .ok_or_else(|| ConfigError::new(format!("{at}.authorizerUri"), "missing or not a string"))?
        .to_string();
    let ttl_s = match auth.get("authorizerResultTtlInSeconds") {
        None => DEFAULT_TTL_S,
        Some(v) => v
            .as_u64()
            .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
            .filter(|t| *t <= MAX_TTL_S)
            .ok_or_else(|| {
                ConfigError::new(
                    format!("{at}.authorizerResultTtlInSeconds"),
                    format!("expected seconds from 0 to {MAX_TTL_S}"),
                )
            })?,
    };
    let raw_sources = match (auth.get("identitySource").and_then(Value::as_str), kind) {
        (Some(s), _) => s.to_string(),
        (None, Kind::Token) => "method.request.header.Authorization".into(),
        (None, Kind::Request) => String::new(),
    };
    let sources = raw_sources
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| read_source(s).ok_or(s))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|bad| {
            ConfigError::new(
                format!("{at}.identitySource"),
                format!("`{bad}`: expected method.request.header.NAME, method.request.querystring.NAME, stageVariables.NAME or context.NAME"),
            )
        })?;
    match kind {
        Kind::Token if !matches!(sources.as_slice(), [Source::Header(_)]) => {
            return Err(ConfigError::new(
                format!("{at}.identitySource"),
                "a TOKEN authorizer reads one header: method.request.header.NAME",
            ));
        }
        Kind::Request if sources.is_empty() && ttl_s > 0 => {
            return Err(ConfigError::new(
                format!("{at}.identitySource"),
                "a REQUEST authorizer with caching needs at least one identity source (they form the cache key)",
            ));
        }
        _ => {}
    }
    let validation = match auth
        .get("identityValidationExpression")
        .and_then(Value::as_str)
    {
        Some(re) if kind == Kind::Token => Some(
            java_regex(&anchored(re))
                .map_err(|m| ConfigError::new(format!("{at}.identityValidationExpression"), m))?,
        ),
        _ => None,
    };
    Ok(Spec {
        name: name.to_string(),
        location: String::new(),
        kind,
        uri,
        ttl_ms: ttl_s * 1000,
        sources,
        validation,
    })
}

fn read_source(s: &str) -> Option<Source> {
    let nonempty = |n: &str| (!n.is_empty()).then(|| n.to_string());
    if let Some(n) = s.strip_prefix("method.request.header.") {
        return nonempty(n).map(Source::Header);
    }
    if let Some(n) = s.strip_prefix("method.request.querystring.") {
        return nonempty(n).map(Source::Query);
    }
    if let Some(n) = s.strip_prefix("stageVariables.") {
        return nonempty(n).map(Source::StageVariable);
    }
    if let Some(n) = s.strip_prefix("context.") {
        return nonempty(n).map(Source::Context);
    }
    None
}

/// What identity sources read from: the request as received.
pub struct RequestView<'a> {
    pub headers: &'a [Header],
    pub query: &'a [(String, String)],
    pub stage_variables: &'a BTreeMap<String, String>,
    /// `$context` as JSON, for `context.*` sources (built only when one is used).
    pub context: &'a dyn Fn() -> Value,
}

/// Identity values, in source order; `None` where a source is absent or empty.
pub fn identity(spec: &Spec, req: &RequestView) -> Vec<Option<String>> {
    let mut context: Option<Value> = None;
    spec.sources
        .iter()
        .map(|s| {
            let v = match s {
                Source::Header(n) => header(req.headers, n).map(str::to_string),
                Source::Query(n) => req
                    .query
                    .iter()
                    .rev()
                    .find(|(k, _)| k == n)
                    .map(|(_, v)| v.clone()),
                Source::StageVariable(n) => req.stage_variables.get(n).cloned(),
                Source::Context(n) => {
                    let ctx = context.get_or_insert_with(|| (req.context)());
                    n.split('.')
                        .try_fold(&*ctx, |v, part| v.get(part))
                        .and_then(|v| match v {
                            Value::String(s) => Some(s.clone()),
                            Value::Null => None,
                            other => Some(other.to_string()),
                        })
                }
            };
            v.filter(|v| !v.trim().is_empty())
        })
        .collect()
}

/// `arn:aws:execute-api:{region}:{account}:{apiId}/{stage}/{METHOD}/{path}`, the path as
/// requested below the stage without its leading `/`.
pub fn method_arn(
    (region, account, api_id): (&str, &str, &str),
    stage: &str,
    method: &str,
    path: &str,
) -> String {
    format!(
        "arn:aws:execute-api:{region}:{account}:{api_id}/{stage}/{method}/{}",
        path.strip_prefix('/').unwrap_or(path)
    )
}

/// The TOKEN event.
pub fn token_event(token: &str, method_arn: &str) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "type": "TOKEN",
        "authorizationToken": token,
        "methodArn": method_arn,
    }))
    .unwrap_or_default()
}

/// The REQUEST event: the proxy event's request fields, without a body.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RequestEvent<'a> {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub method_arn: &'a str,
    #[serde(flatten)]
    pub request: RequestFields<'a>,
}

/// What an authorizer decided, kept in the cache and handed downstream.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    pub principal_id: String,
    pub statements: Vec<policy::Statement>,
    /// `context`, values as JSON scalars (strings, numbers, booleans).
    pub context: Vec<(String, Value)>,
    pub usage_key: Option<String>,
}

impl Decision {
    /// Approximate bytes held, for the cache budget.
    pub fn weight(&self) -> usize {
        let statements: usize = self
            .statements
            .iter()
            .map(|s| {
                s.actions
                    .iter()
                    .chain(&s.resources)
                    .map(String::len)
                    .sum::<usize>()
                    + 64
            })
            .sum();
        let context: usize = self
            .context
            .iter()
            .map(|(k, v)| k.len() + v.to_string().len() + 32)
            .sum();
        self.principal_id.len() + statements + context + 128
    }
}

/// Reads an authorizer's answer. The reason of a refusal goes to the log.
pub fn read_answer(payload: &[u8]) -> Result<Decision, String> {
    if payload.len() > MAX_ANSWER_BYTES {
        return Err(format!(
            "the answer has {} bytes, more than {MAX_ANSWER_BYTES}",
            payload.len()
        ));
    }
    let v: Value =
        serde_json::from_slice(payload).map_err(|e| format!("the answer is not JSON ({e})"))?;
    let principal_id = match v.get("principalId") {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => return Err("principalId is missing or not a string".into()),
    };
    let doc = v.get("policyDocument").ok_or("policyDocument is missing")?;
    let statements = policy::parse(doc)?;
    let context = match v.get("context") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Object(m)) => m
            .iter()
            .map(|(k, v)| match v {
                Value::String(_) | Value::Number(_) | Value::Bool(_) => Ok((k.clone(), v.clone())),
                Value::Null => Ok((k.clone(), Value::String(String::new()))),
                _ => Err(format!(
                    "context.{k} is an object or array; values must be strings, numbers or booleans"
                )),
            })
            .collect::<Result<Vec<_>, _>>()?,
        Some(_) => return Err("context is not an object".into()),
    };
    let usage_key = v
        .get("usageIdentifierKey")
        .and_then(Value::as_str)
        .map(str::to_string);
    Ok(Decision {
        principal_id,
        statements,
        context,
        usage_key,
    })
}

/// A context value as templates and the proxy event see it: stringified.
pub fn context_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn spec(auth: Value) -> Result<Spec, ConfigError> {
        let scheme = json!({"type": "apiKey", "name": "Authorization", "in": "header",
            "x-amazon-apigateway-authtype": "custom", "x-amazon-apigateway-authorizer": auth});
        read_scheme("auth", &scheme, "openapi.securityDefinitions.auth").unwrap()
    }

    #[test]
    fn schemes_are_read_as_exported() {
        let s = spec(json!({"type": "token", "authorizerUri": "u", "identityValidationExpression": "^Bearer [a-z]+$"})).unwrap();
        assert_eq!(s.kind, Kind::Token);
        assert_eq!(s.ttl_ms, 300_000);
        assert_eq!(s.sources, vec![Source::Header("Authorization".into())]);
        let s = spec(json!({"type": "REQUEST", "authorizerUri": "u", "authorizerResultTtlInSeconds": 0,
            "identitySource": "method.request.header.X-Tenant, method.request.querystring.key, stageVariables.env, context.identity.sourceIp"})).unwrap();
        assert_eq!(
            s.sources,
            vec![
                Source::Header("X-Tenant".into()),
                Source::Query("key".into()),
                Source::StageVariable("env".into()),
                Source::Context("identity.sourceIp".into())
            ]
        );
        assert_eq!(s.ttl_ms, 0);
        // Other security schemes are not authorizers.
        assert!(read_scheme(
            "k",
            &json!({"type": "apiKey", "name": "x-api-key", "in": "header"}),
            "x"
        )
        .is_none());
    }

    #[test]
    fn bad_schemes_name_their_field() {
        for (auth, field) in [
            (json!({"type": "token"}), "authorizerUri"),
            (
                json!({"type": "token", "authorizerUri": "u", "authorizerResultTtlInSeconds": 3601}),
                "authorizerResultTtlInSeconds",
            ),
            (
                json!({"type": "token", "authorizerUri": "u", "identitySource": "method.request.querystring.t"}),
                "identitySource",
            ),
            (
                json!({"type": "request", "authorizerUri": "u"}),
                "identitySource",
            ),
            (
                json!({"type": "request", "authorizerUri": "u", "identitySource": "body.x"}),
                "identitySource",
            ),
            (
                json!({"type": "token", "authorizerUri": "u", "identityValidationExpression": "(?=x)"}),
                "identityValidationExpression",
            ),
            (json!({"type": "cognito", "authorizerUri": "u"}), "type"),
        ] {
            let e = spec(auth.clone()).unwrap_err();
            assert!(e.location.ends_with(field), "{auth}: {e}");
        }
    }

    #[test]
    fn identity_sources_read_the_request() {
        let s = spec(json!({"type": "request", "authorizerUri": "u",
            "identitySource": "method.request.header.x-tenant,method.request.querystring.key,stageVariables.env,context.identity.sourceIp"})).unwrap();
        let headers = vec![("X-Tenant".to_string(), "t1".to_string())];
        let query = vec![
            ("key".to_string(), "a".to_string()),
            ("key".to_string(), "b".to_string()),
        ];
        let vars = BTreeMap::from([("env".to_string(), "prod".to_string())]);
        let ctx = || json!({"identity": {"sourceIp": "203.0.113.9"}});
        let view = RequestView {
            headers: &headers,
            query: &query,
            stage_variables: &vars,
            context: &ctx,
        };
        assert_eq!(
            identity(&s, &view),
            vec![
                Some("t1".into()),
                Some("b".into()),
                Some("prod".into()),
                Some("203.0.113.9".into())
            ]
        );
        let blank = vec![("x-tenant".to_string(), "  ".to_string())];
        let view = RequestView {
            headers: &blank,
            query: &[],
            stage_variables: &BTreeMap::new(),
            context: &ctx,
        };
        assert_eq!(identity(&s, &view)[..3], [None, None, None]);
    }

    #[test]
    fn answers_table() {
        let ok = read_answer(
            br#"{"principalId": "user-1", "policyDocument": {"Version": "2012-10-17",
            "Statement": [{"Action": "execute-api:Invoke", "Effect": "Allow", "Resource": "*"}]},
            "context": {"s": "v", "n": 1, "b": true}, "usageIdentifierKey": "k1"}"#,
        )
        .unwrap();
        assert_eq!(ok.principal_id, "user-1");
        assert_eq!(ok.context.len(), 3);
        assert_eq!(ok.usage_key.as_deref(), Some("k1"));
        assert_eq!(context_text(&ok.context[1].1), "1");
        for bad in [
            &b"not json"[..],
            br#"{"policyDocument": {"Statement": []}}"#,
            br#"{"principalId": "u"}"#,
            br#"{"principalId": "u", "policyDocument": {"Statement": []}, "context": {"o": {"a": 1}}}"#,
            br#"{"principalId": "u", "policyDocument": {"Statement": []}, "context": [1]}"#,
            br#"null"#,
        ] {
            assert!(read_answer(bad).is_err(), "{}", String::from_utf8_lossy(bad));
        }
        assert!(read_answer(&vec![b' '; MAX_ANSWER_BYTES + 1]).is_err());
    }

    #[test]
    fn method_arns() {
        let ids = ("us-east-1", "123456789012", "abc");
        assert_eq!(
            method_arn(ids, "dev", "GET", "/pets/7"),
            "arn:aws:execute-api:us-east-1:123456789012:abc/dev/GET/pets/7"
        );
        assert_eq!(
            method_arn(ids, "dev", "GET", "/"),
            "arn:aws:execute-api:us-east-1:123456789012:abc/dev/GET/"
        );
    }
}
