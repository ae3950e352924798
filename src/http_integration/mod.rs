//! HTTP integrations (`http_proxy` and `http`, and AWS service integrations, which are `http`
//! integrations to a service's endpoint): the backend an integration URI names, the request
//! the gateway sends it and, for `http_proxy`, the backend's answer passed back.
//!
//! Owns: parsing integration URIs (stage variables resolved once, when the configuration is
//! compiled), each backend's Envoy cluster name, the integration request (method, path with
//! its `{name}` parameters substituted, query, headers and body, from the client's request,
//! `requestParameters` and `$context.requestOverride`), classifying the answer, and which
//! answer headers are renamed `x-amzn-Remapped-*`. Must not: render templates or pick
//! integration responses beyond calling [`crate::mapping`], or dispatch calls.

use std::collections::BTreeMap;

use serde_json::Value as Json;

use crate::aws_service::ServiceUri;
use crate::config::{Deployment, SigningMode};
use crate::error::ConfigError;
use crate::http::{Header, Reply, UpstreamAnswer, UpstreamCall};
use crate::lambda::invoke::{transport_failure, Endpoint, TransportFailure};
use crate::mapping::aws::RequestFailure;
use crate::mapping::content::ContentHandling;
use crate::mapping::{
    header_mappings, integration_reply_with, override_entries, request_plan, IntegrationResponse,
    IntegrationResponses, MapFailure, Passthrough, RequestPlan, Selector, Side, Source, Sources,
    Templates,
};
use crate::openapi::HttpKind;
use crate::vtl;

/// Headers API Gateway never sends to an integration (it sets its own, or they are
/// hop-by-hop); a `requestParameters` mapping to one is ignored with a warning.
const NOT_SENT: [&str; 4] = ["host", "content-length", "transfer-encoding", "connection"];

/// Backend answer headers an `http_proxy` reply carries as `x-amzn-Remapped-<name>`: the
/// gateway sets its own.
const REMAPPED: [&str; 4] = ["connection", "content-length", "date", "server"];
/// Backend answer headers dropped from an `http_proxy` reply (hop-by-hop).
const DROPPED: [&str; 3] = ["transfer-encoding", "keep-alive", "proxy-connection"];

/// Replaces every `${stageVariables.NAME}` in `text` with the stage's value.
pub fn resolve_stage_variables(
    text: &str,
    variables: &BTreeMap<String, String>,
) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(rest.get(..start).unwrap_or_default());
        let after = rest.get(start + 2..).unwrap_or_default();
        let Some(end) = after.find('}') else {
            return Err(format!("`{text}` has an unclosed `${{`"));
        };
        let expr = after.get(..end).unwrap_or_default();
        let Some(name) = expr.strip_prefix("stageVariables.") else {
            return Err(format!(
                "`${{{expr}}}`: only stage variables (`${{stageVariables.NAME}}`) can be used here"
            ));
        };
        let value = variables.get(name).ok_or_else(|| {
            format!("stage variable `{name}` is not set in deployment.stageVariables")
        })?;
        out.push_str(value);
        rest = after.get(end + 1..).unwrap_or_default();
    }
    out.push_str(rest);
    Ok(out)
}

/// A piece of an integration URI's path.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Literal(String),
    /// `{name}` or `{name+}`, filled from `integration.request.path.name`.
    Param(String),
}

/// Where an HTTP integration sends its requests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpTarget {
    pub endpoint: Endpoint,
    /// The Envoy cluster of the backend (one per scheme, host and port).
    pub cluster: String,
    authority: String,
    path: Vec<Piece>,
    /// The URI's own query string, without `?`.
    query: String,
}

impl HttpTarget {
    /// Parses `http(s)://host[:port][/path][?query]`, stage variables already resolved.
    pub fn parse(uri: &str) -> Result<HttpTarget, String> {
        let uri = uri.split('#').next().unwrap_or(uri);
        let after_scheme = uri.find("://").map_or(0, |i| i + 3);
        let rest = uri.get(after_scheme..).unwrap_or_default();
        let origin_end = rest
            .find(['/', '?'])
            .map_or(uri.len(), |i| i + after_scheme);
        let (origin, path_query) = uri.split_at(origin_end);
        let endpoint = Endpoint::parse(origin)?;
        let (path, query) = path_query.split_once('?').unwrap_or((path_query, ""));
        let path = if path.is_empty() { "/" } else { path };
        Ok(HttpTarget {
            cluster: endpoint.cluster_named("backend"),
            authority: endpoint.authority(),
            endpoint,
            path: pieces(path)?,
            query: query.to_string(),
        })
    }

    /// Names of the `{name}` parameters in the path.
    pub fn path_params(&self) -> impl Iterator<Item = &str> {
        self.path.iter().filter_map(|p| match p {
            Piece::Param(n) => Some(n.as_str()),
            Piece::Literal(_) => None,
        })
    }
}

fn pieces(path: &str) -> Result<Vec<Piece>, String> {
    let mut out = Vec::new();
    let mut rest = path;
    while let Some(open) = rest.find('{') {
        if open > 0 {
            out.push(Piece::Literal(
                rest.get(..open).unwrap_or_default().to_string(),
            ));
        }
        let after = rest.get(open + 1..).unwrap_or_default();
        let close = after
            .find('}')
            .ok_or_else(|| format!("`{path}` has an unclosed `{{`"))?;
        let name = after.get(..close).unwrap_or_default();
        let name = name.strip_suffix('+').unwrap_or(name);
        if name.is_empty()
            || !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
        {
            return Err(format!("`{{{name}}}` in `{path}` is not a parameter name"));
        }
        out.push(Piece::Param(name.to_string()));
        rest = after.get(close + 1..).unwrap_or_default();
    }
    if !rest.is_empty() {
        out.push(Piece::Literal(rest.to_string()));
    }
    Ok(out)
}

/// Where a `requestParameters` mapping puts its value.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Dest {
    Path(String),
    Query(String),
    Header(String),
}

/// A compiled `http` or `http_proxy` integration.
#[derive(Debug)]
pub struct HttpIntegration {
    pub target: HttpTarget,
    /// `http_proxy`: the client's request and the backend's answer pass through.
    pub proxy: bool,
    /// The integration's method; `None` for `ANY` (the client's).
    method: Option<String>,
    pub timeout_ms: u64,
    params: Vec<(Dest, Source)>,
    request_templates: Templates,
    passthrough: Passthrough,
    responses: IntegrationResponses,
    /// Headers every request carries (an AWS action's `X-Amz-Target`).
    fixed_headers: Vec<Header>,
    /// How the request payload crosses between text and binary (`contentHandling`).
    pub content_handling: ContentHandling,
    /// For an AWS service: who signs, for which service and region.
    pub signing: Option<ServiceSigning>,
}

/// How calls to an AWS service are signed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceSigning {
    pub service: String,
    pub region: String,
    pub mode: SigningMode,
}

/// What an HTTP integration needs of the client's request.
#[derive(Debug, Clone, Copy)]
pub struct ClientRequest<'a> {
    pub method: &'a str,
    /// The query string as sent, without `?`.
    pub raw_query: &'a str,
    /// The headers an integration may see (hop-by-hop and gateway-internal ones removed,
    /// `X-Forwarded-*` set), as a proxy event carries them.
    pub headers: &'a [Header],
    pub content_type: Option<&'a str>,
    /// The body after `contentHandling` (see [`crate::mapping::content`]).
    pub body: &'a [u8],
    /// The body is binary: it is sent as it is, templates do not apply.
    pub binary: bool,
}

/// The meaning of a backend's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BackendOutcome {
    /// The backend answered with this status.
    Answer(u16),
    Timeout,
    Unreachable(String),
}

/// Everything [`HttpIntegration::compile`] reads of the exported integration.
#[derive(Debug, Clone, Copy)]
pub struct Spec<'a> {
    pub integration: &'a Json,
    pub kind: HttpKind,
    pub uri: &'a str,
    pub http_method: &'a str,
    pub timeout_ms: u64,
}

impl HttpIntegration {
    /// Compiles an integration; `at` locates `x-amazon-apigateway-integration`.
    pub fn compile(
        spec: Spec,
        d: &Deployment,
        (at, method_responses): (&str, Option<Vec<u16>>),
        errors: &mut Vec<ConfigError>,
        warnings: &mut Vec<ConfigError>,
    ) -> Option<HttpIntegration> {
        if spec.kind == HttpKind::AwsService {
            return Self::compile_aws(spec, d, (at, method_responses), errors, warnings);
        }
        let target = resolve_stage_variables(spec.uri, &d.stage_variables)
            .and_then(|uri| HttpTarget::parse(&uri))
            .map_err(|m| errors.push(ConfigError::new(format!("{at}.uri"), m)))
            .ok()?;
        Self::assemble(spec, target, method_responses, at, errors, warnings)
    }

    /// Compiles an AWS service integration (`type: aws` with a service other than Lambda):
    /// an `http` integration to the service's endpoint, with its `X-Amz-Target` for actions
    /// of JSON-protocol services, signed for that service.
    fn compile_aws(
        spec: Spec,
        d: &Deployment,
        (at, method_responses): (&str, Option<Vec<u16>>),
        errors: &mut Vec<ConfigError>,
        warnings: &mut Vec<ConfigError>,
    ) -> Option<HttpIntegration> {
        let services = &d.aws;
        let service = resolve_stage_variables(spec.uri, &d.stage_variables)
            .and_then(|uri| ServiceUri::parse(&uri))
            .map_err(|m| errors.push(ConfigError::new(format!("{at}.uri"), m)))
            .ok()?;
        let endpoint = service.endpoint(&services.endpoints);
        let mut target = HttpTarget::parse(&service.url(&endpoint))
            .map_err(|m| {
                let field = if services.endpoints.contains_key(&service.service) {
                    format!("deployment.aws.endpoints.{}", service.service)
                } else {
                    format!("{at}.uri")
                };
                errors.push(ConfigError::new(field, m));
            })
            .ok()?;
        target.cluster = target
            .endpoint
            .cluster_named(&format!("aws_{}", service.service));
        let mode = services.signing.unwrap_or(if target.endpoint.tls {
            SigningMode::Envoy
        } else {
            SigningMode::None
        });
        let mut h = Self::assemble(spec, target, method_responses, at, errors, warnings)?;
        if let Some(t) = service.target_header() {
            h.fixed_headers.push(("x-amz-target".into(), t));
        }
        h.signing = Some(ServiceSigning {
            service: service.service,
            region: service.region,
            mode,
        });
        Some(h)
    }

    fn assemble(
        spec: Spec,
        target: HttpTarget,
        method_responses: Option<Vec<u16>>,
        at: &str,
        errors: &mut Vec<ConfigError>,
        warnings: &mut Vec<ConfigError>,
    ) -> Option<HttpIntegration> {
        let integ = spec.integration;
        let method = match spec.http_method.to_ascii_uppercase().as_str() {
            "ANY" => None,
            m @ ("GET" | "POST" | "PUT" | "PATCH" | "DELETE" | "HEAD" | "OPTIONS") => {
                Some(m.to_string())
            }
            other => {
                errors.push(ConfigError::new(
                    format!("{at}.httpMethod"),
                    format!("`{other}` is not an HTTP method (GET, POST, PUT, PATCH, DELETE, HEAD, OPTIONS or ANY)"),
                ));
                return None;
            }
        };
        let mut params = Vec::new();
        let mapped = header_mappings(
            integ.get("requestParameters"),
            "integration.request.",
            Side::Request,
            &format!("{at}.requestParameters"),
            errors,
        );
        for (dest, source) in mapped {
            let p_at = format!("{at}.requestParameters.integration.request.{dest}");
            let dest = if let Some(n) = dest.strip_prefix("path.") {
                Dest::Path(n.to_string())
            } else if let Some(n) = dest.strip_prefix("querystring.") {
                Dest::Query(n.to_string())
            } else if let Some(n) = dest.strip_prefix("header.") {
                if NOT_SENT.contains(&n.to_ascii_lowercase().as_str()) {
                    warnings.push(ConfigError::new(
                        p_at,
                        format!("the gateway sets {n} itself; this mapping has no effect"),
                    ));
                    continue;
                }
                Dest::Header(n.to_string())
            } else {
                errors.push(ConfigError::new(
                    p_at,
                    "expected integration.request.path.NAME, integration.request.querystring.NAME or integration.request.header.NAME",
                ));
                continue;
            };
            params.push((dest, source));
        }
        for name in target.path_params() {
            if !params
                .iter()
                .any(|(d, _)| *d == Dest::Path(name.to_string()))
            {
                errors.push(ConfigError::new(
                    format!("{at}.uri"),
                    format!("`{{{name}}}` needs a mapping such as \"integration.request.path.{name}\": \"method.request.path.{name}\" in requestParameters"),
                ));
            }
        }
        let content_handling = if spec.kind == HttpKind::Proxy {
            ContentHandling::Passthrough
        } else {
            ContentHandling::compile(integ, at, errors)
        };
        let (request_templates, passthrough, responses) = if spec.kind == HttpKind::Proxy {
            (
                Templates::default(),
                Passthrough::WhenNoMatch,
                IntegrationResponses::default(),
            )
        } else {
            (
                Templates::compile(
                    integ.get("requestTemplates"),
                    &format!("{at}.requestTemplates"),
                    errors,
                ),
                Passthrough::compile(integ, at, errors),
                IntegrationResponses::compile(integ, method_responses, at, errors),
            )
        };
        Some(HttpIntegration {
            target,
            proxy: spec.kind == HttpKind::Proxy,
            method,
            timeout_ms: spec.timeout_ms,
            params,
            request_templates,
            passthrough,
            responses,
            fixed_headers: Vec::new(),
            signing: None,
            content_handling,
        })
    }

    /// Whether building the request reads `$context`: templates (non-proxy) or a
    /// `context.*` parameter mapping.
    pub fn reads_context(&self) -> bool {
        !self.proxy
            || self
                .params
                .iter()
                .any(|(_, s)| matches!(s, Source::Context(_)))
    }

    /// The request to the backend. `env` is the template environment (its `$context` holds
    /// what a request template set in `requestOverride`); `user_agent` is sent by non-proxy
    /// integrations, which do not forward the client's headers.
    pub fn call(
        &self,
        client: &ClientRequest,
        env: &vtl::Env,
        sources: &Sources,
        user_agent: &str,
    ) -> Result<UpstreamCall, RequestFailure> {
        let body = if self.proxy || client.binary {
            client.body.to_vec()
        } else {
            match request_plan(
                &self.request_templates,
                self.passthrough,
                client.content_type,
            ) {
                RequestPlan::Unsupported => return Err(RequestFailure::UnsupportedMediaType),
                RequestPlan::PassThrough => client.body.to_vec(),
                RequestPlan::Transform(t) => t
                    .render(env)
                    .map_err(|e| RequestFailure::Map(MapFailure::from(e)))?
                    .into_bytes(),
            }
        };
        let overrides = |part: &str| override_entries(&env.context, "requestOverride", part);
        let mut path_values: Vec<(String, String)> = Vec::new();
        let mut query: Vec<(String, String)> = Vec::new();
        let mut headers: Vec<Header> = Vec::new();
        for (dest, source) in &self.params {
            let Some(value) = source.resolve(sources) else {
                continue;
            };
            match dest {
                Dest::Path(n) => path_values.push((n.clone(), value)),
                Dest::Query(n) => query.push((n.clone(), value)),
                Dest::Header(n) => headers.push((n.to_ascii_lowercase(), value)),
            }
        }
        for (n, v) in overrides("path") {
            path_values.retain(|(k, _)| *k != n);
            path_values.push((n, v));
        }
        for (n, v) in overrides("querystring") {
            query.retain(|(k, _)| *k != n);
            query.push((n, v));
        }
        for (n, v) in overrides("header") {
            let n = n.to_ascii_lowercase();
            if NOT_SENT.contains(&n.as_str()) {
                continue;
            }
            headers.retain(|(k, _)| *k != n);
            headers.push((n, v));
        }
        let path = self.path(&path_values, &query, client);
        let method = self
            .method
            .clone()
            .unwrap_or_else(|| client.method.to_string());
        let mut out: Vec<Header> = vec![
            (":method".into(), method),
            (":path".into(), path),
            (":authority".into(), self.target.authority.clone()),
        ];
        if self.proxy {
            for (k, v) in client.headers {
                let lower = k.to_ascii_lowercase();
                if NOT_SENT.contains(&lower.as_str()) || headers.iter().any(|(m, _)| *m == lower) {
                    continue;
                }
                out.push((lower, v.clone()));
            }
        } else {
            if !body.is_empty() && !headers.iter().any(|(k, _)| k == "content-type") {
                let ct = client.content_type.unwrap_or("application/json");
                out.push(("content-type".into(), ct.to_string()));
            }
            if !headers.iter().any(|(k, _)| k == "user-agent") {
                out.push(("user-agent".into(), user_agent.to_string()));
            }
        }
        for (k, v) in &self.fixed_headers {
            if !headers.iter().any(|(m, _)| m == k) {
                out.push((k.clone(), v.clone()));
            }
        }
        out.extend(headers);
        Ok(UpstreamCall {
            cluster: self.target.cluster.clone(),
            headers: out,
            body,
            timeout_ms: self.timeout_ms,
        })
    }

    /// The `:path`: the URI's path with its parameters filled in, then the URI's query, the
    /// client's (proxy integrations only, minus names a mapping sets) and the mapped ones.
    fn path(
        &self,
        values: &[(String, String)],
        mapped_query: &[(String, String)],
        client: &ClientRequest,
    ) -> String {
        let mut out = String::new();
        for piece in &self.target.path {
            match piece {
                Piece::Literal(l) => out.push_str(l),
                Piece::Param(n) => {
                    let v = values
                        .iter()
                        .rev()
                        .find(|(k, _)| k == n)
                        .map_or("", |(_, v)| v.as_str());
                    push_path_value(&mut out, v);
                }
            }
        }
        let mut parts: Vec<String> = Vec::new();
        if !self.target.query.is_empty() {
            parts.push(self.target.query.clone());
        }
        if self.proxy {
            for part in client.raw_query.split('&').filter(|p| !p.is_empty()) {
                let name = part.split_once('=').map_or(part, |(k, _)| k);
                let name = crate::query::percent_decode(name, true);
                if !mapped_query.iter().any(|(k, _)| *k == name) {
                    parts.push(part.to_string());
                }
            }
        }
        for (k, v) in mapped_query {
            parts.push(format!(
                "{}={}",
                crate::query::percent_encode(k),
                crate::query::percent_encode(v)
            ));
        }
        if !parts.is_empty() {
            out.push('?');
            out.push_str(&parts.join("&"));
        }
        out
    }

    /// What the backend's answer means.
    pub fn classify(resp: &UpstreamAnswer) -> BackendOutcome {
        match transport_failure(resp, "the HTTP backend") {
            Some(TransportFailure::Timeout) => BackendOutcome::Timeout,
            Some(TransportFailure::Unreachable(why)) => BackendOutcome::Unreachable(why),
            None => BackendOutcome::Answer(resp.status.unwrap_or(502)),
        }
    }

    /// The integration response a non-proxy integration answers a backend's status with.
    pub fn response_for(&self, status: u16) -> Result<&IntegrationResponse, MapFailure> {
        self.responses
            .select(Selector::Status(status))
            .ok_or_else(|| {
                MapFailure::Failed(format!(
                    "no integration response matches the backend's status {status} and there is no default"
                ))
            })
    }

    /// The client reply of a non-proxy integration from `response` (see
    /// [`HttpIntegration::response_for`]): its templates and header mappings, or `binary`
    /// as the body when `contentHandling` made the answer binary.
    pub fn mapped_reply(
        &self,
        response: &IntegrationResponse,
        (env, sources): (&vtl::Env, &Sources),
        accept: Option<&str>,
        binary: Option<Vec<u8>>,
    ) -> Result<Reply, MapFailure> {
        integration_reply_with(response, &self.responses, (env, sources), accept, binary)
    }
}

/// Appends a parameter value to a path: characters a path cannot carry are
/// percent-encoded; `/` (greedy parameters) and existing escapes are kept.
fn push_path_value(out: &mut String, value: &str) {
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@/%".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
}

/// The client reply of an `http_proxy` integration: the backend's status, headers and body
/// as they are, with `Connection`, `Content-Length`, `Date` and `Server` renamed
/// `x-amzn-Remapped-<name>` and hop-by-hop headers dropped.
pub fn passthrough(resp: &UpstreamAnswer) -> Reply {
    resp.passed_through(&DROPPED, &REMAPPED)
}

#[cfg(test)]
mod tests;
