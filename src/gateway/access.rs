//! The access log line of a finished request (`accessLogSettings`).
//!
//! Owns: the values of the `$context` variables an access log format reads: the request's
//! `requestContext` (the same one its event and templates see), and the variables only
//! access logs have (status, lengths, latencies, the integration's and authorizer's
//! results, the gateway error). Must not: write the line anywhere (the glue does) or cost
//! anything when the stage has no access log.

use serde_json::Value;

use super::{Exchange, Facts, Gateway, Known, Outcome};
use crate::error::GatewayError;
use crate::lambda::event::RequestContext;
use crate::time::Utc;

impl Gateway {
    /// Whether the stage writes access log lines.
    pub fn logs_access(&self) -> bool {
        self.access_log.is_some()
    }

    /// The access log line of `ex`, answered with `outcome`, the reply leaving at `now_ms`;
    /// `None` when the stage has no access log.
    pub fn access_line(&self, ex: &Exchange, outcome: &Outcome, now_ms: u64) -> Option<String> {
        let format = self.access_log.as_ref()?;
        let routed = ex
            .routed
            .as_ref()
            .map(|r| r.known(self))
            .unwrap_or_default();
        let known = Known {
            auth: routed.auth.or(ex.denied_by.as_ref()),
            ..routed
        };
        // What `requestContext` needs, without the headers and query an event copies.
        let head = &ex.head;
        let facts = Facts {
            headers: Vec::new(),
            query: Vec::new(),
            host: crate::http::header(&head.headers, ":authority")
                .or_else(|| crate::http::header(&head.headers, "host"))
                .unwrap_or_default()
                .to_string(),
            request_time: Utc::from_epoch_ms(head.now_ms).clf(),
            extended: super::extended_request_id(&head.request_id),
        };
        let rc = self.request_context(head, known, &facts);
        // The whole context as JSON only for variables read from it by path.
        let json = std::cell::OnceCell::new();
        let t = &ex.timings;
        // An integration that was not reached answered nothing: its status is unknown, not
        // the host's stand-in answer.
        let reached = !matches!(
            outcome.error,
            Some(GatewayError::IntegrationUnreachable | GatewayError::IntegrationTimeout)
        );
        let integration_status = t.integration_status.filter(|_| reached);
        let number = |v: Option<u64>| v.map(|v| v.to_string());
        let status = |v: Option<u16>| v.map(|v| v.to_string());
        let error = outcome.error;
        Some(format.render(|path| {
            let keys: Vec<&str> = path.iter().map(String::as_str).collect();
            match keys.as_slice() {
                ["status"] => Some(outcome.reply.status.to_string()),
                ["responseLength"] => Some(outcome.reply.body.len().to_string()),
                ["responseLatency"] => Some(now_ms.saturating_sub(ex.head.now_ms).to_string()),
                ["integrationLatency"] | ["integration", "latency"] => {
                    number(t.integration_latency_ms)
                }
                ["integrationStatus"] | ["integration", "integrationStatus"] => {
                    status(integration_status)
                }
                // What the integration answered the method: the status the client got
                // when the integration's answer was used, else the call's own status.
                ["integration", "status"] => match (integration_status, error) {
                    (Some(_), None) => Some(outcome.reply.status.to_string()),
                    (s, _) => status(s),
                },
                ["authorizer", "latency" | "integrationLatency"] | ["authorize", "latency"] => {
                    number(t.authorizer_latency_ms)
                }
                ["authorizer", "status" | "integrationStatus"] => status(t.authorizer_status),
                ["error", "message"] => error.map(|e| e.message().to_string()),
                ["error", "messageString"] => error.map(|e| format!("\"{}\"", e.message())),
                ["error", "responseType"] => error.map(|e| e.response_type().name().to_string()),
                ["error", ..] => None,
                // Said only on stages with a canary, as API Gateway does.
                ["isCanaryRequest"] => match self.canary {
                    crate::config::CanaryRole::None => None,
                    crate::config::CanaryRole::Base => Some("false".into()),
                    crate::config::CanaryRole::Canary { .. } => Some("true".into()),
                },
                _ => match field(&rc, &keys) {
                    Some(v) => v.map(str::to_string),
                    None => text_at(
                        json.get_or_init(|| serde_json::to_value(&rc).unwrap_or_default()),
                        path,
                    ),
                },
            }
        }))
    }
}

/// The plain fields of `requestContext` (the presets read only these): `Some(value)` for
/// a field it has, `None` for a path to look up in its JSON.
fn field<'a>(rc: &'a RequestContext<'a>, keys: &[&str]) -> Option<Option<&'a str>> {
    let id = &rc.identity;
    let v = match keys {
        ["requestId"] => Some(rc.request_id),
        ["extendedRequestId"] => Some(rc.extended_request_id),
        ["requestTime"] => Some(rc.request_time),
        ["httpMethod"] => Some(rc.http_method),
        ["resourcePath"] => Some(rc.resource_path),
        ["resourceId"] => Some(rc.resource_id),
        ["path"] => Some(rc.path),
        ["protocol"] => Some(rc.protocol),
        ["stage"] => Some(rc.stage),
        ["domainName"] => Some(rc.domain_name),
        ["domainPrefix"] => Some(rc.domain_prefix),
        ["apiId"] => Some(rc.api_id),
        ["accountId"] => Some(rc.account_id),
        ["deploymentId"] => Some(rc.deployment_id),
        ["identity", "sourceIp"] => Some(id.source_ip),
        ["identity", "caller"] => id.caller,
        ["identity", "user"] => id.user,
        ["identity", "userArn"] => id.user_arn,
        ["identity", "userAgent"] => id.user_agent,
        ["identity", "accessKey"] => id.access_key,
        ["identity", "accountId"] => id.account_id,
        ["identity", "apiKeyId"] => id.api_key_id,
        _ => return None,
    };
    Some(v)
}

/// The value at `path` in `value` as access log text (objects and lists as JSON).
fn text_at(value: &Value, path: &[String]) -> Option<String> {
    let mut v = value;
    for key in path {
        v = v.get(key.as_str())?;
    }
    match v {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        Value::Bool(_) | Value::Number(_) | Value::Array(_) | Value::Object(_) => {
            Some(v.to_string())
        }
    }
}
