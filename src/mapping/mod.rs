//! Request and response mapping for integrations that are not proxies: the pieces the
//! non-proxy Lambda integration ([`aws`]) and the mock integration ([`crate::mock`]) share.
//!
//! Owns: compiled mapping templates keyed by media type and how one is chosen
//! (`Content-Type` for requests, `Accept` for responses), `passthroughBehavior`, parameter
//! mapping expressions (`method.request.header.X`, `integration.response.body.path`,
//! `stageVariables.x`, `context.x`, `'static'`) and where they read from, integration
//! responses (selection patterns as whole-string Java regexes, status, header mappings,
//! templates), the method-response check, and `$context` as templates see it. Everything is
//! compiled once; a template or expression that does not compile is a configuration error
//! naming its field. Must not: call Lambda or build events.

pub mod aws;

use std::rc::Rc;

use serde_json::Value as Json;

use crate::error::ConfigError;
use crate::http::{header, Header, Reply};
use crate::vtl::jsonpath::JsonPath;
use crate::vtl::value::write_json;
use crate::vtl::{self, Template, Value};

/// The media type a `Content-Type` or `Accept` value names: first entry, no parameters,
/// lower case.
pub fn media_key(v: &str) -> String {
    v.split(',')
        .next()
        .unwrap_or_default()
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase()
}

/// Templates by media type, in the export's order.
#[derive(Debug, Default)]
pub struct Templates(Vec<(String, Template)>);

impl Templates {
    /// Compiles `requestTemplates` / `responseTemplates`; `at` is the field's location.
    pub fn compile(v: Option<&Json>, at: &str, errors: &mut Vec<ConfigError>) -> Templates {
        let mut out = Vec::new();
        let Some(v) = v else {
            return Templates(out);
        };
        let Some(map) = v.as_object() else {
            errors.push(ConfigError::new(
                at,
                "expected an object of media type -> template",
            ));
            return Templates(out);
        };
        for (media, t) in map {
            let t_at = format!("{at}.{media}");
            let Some(text) = t.as_str() else {
                errors.push(ConfigError::new(t_at, "expected the template as a string"));
                continue;
            };
            match Template::compile(text) {
                Ok(t) => out.push((media.to_ascii_lowercase(), t)),
                Err(e) => errors.push(ConfigError::new(t_at, e.to_string())),
            }
        }
        Templates(out)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The request template for a `Content-Type` (absent means `application/json`); a
    /// `$default` template takes any type without its own.
    pub fn for_request(&self, content_type: Option<&str>) -> Option<&Template> {
        let key = content_type.map_or_else(|| "application/json".to_string(), media_key);
        self.0
            .iter()
            .find(|(m, _)| *m == key)
            .or_else(|| self.0.iter().find(|(m, _)| m == "$default"))
            .map(|(_, t)| t)
    }

    /// The response template for an `Accept` header: its media type, else
    /// `application/json`, else the first template.
    pub fn for_response(&self, accept: Option<&str>) -> Option<(&str, &Template)> {
        let key = accept.map(media_key);
        self.0
            .iter()
            .find(|(m, _)| Some(m.as_str()) == key.as_deref())
            .or_else(|| self.0.iter().find(|(m, _)| m == "application/json"))
            .or_else(|| self.0.first())
            .map(|(m, t)| (m.as_str(), t))
    }
}

/// `passthroughBehavior`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Passthrough {
    WhenNoMatch,
    WhenNoTemplates,
    Never,
}

impl Passthrough {
    pub fn compile(integ: &Json, at: &str, errors: &mut Vec<ConfigError>) -> Passthrough {
        match integ
            .get("passthroughBehavior")
            .and_then(Json::as_str)
            .map(str::to_ascii_uppercase)
            .as_deref()
        {
            None | Some("WHEN_NO_MATCH") => Passthrough::WhenNoMatch,
            Some("WHEN_NO_TEMPLATES") => Passthrough::WhenNoTemplates,
            Some("NEVER") => Passthrough::Never,
            Some(other) => {
                errors.push(ConfigError::new(
                    format!("{at}.passthroughBehavior"),
                    format!("`{other}`: expected WHEN_NO_MATCH, WHEN_NO_TEMPLATES or NEVER"),
                ));
                Passthrough::WhenNoMatch
            }
        }
    }
}

/// What the request side does with a body.
#[derive(Debug)]
pub enum RequestPlan<'t> {
    /// Render this template.
    Transform(&'t Template),
    /// Send the body as it came.
    PassThrough,
    /// Refuse with 415.
    Unsupported,
}

/// Applies `passthroughBehavior` to the request's `Content-Type`.
pub fn request_plan<'t>(
    templates: &'t Templates,
    passthrough: Passthrough,
    content_type: Option<&str>,
) -> RequestPlan<'t> {
    if let Some(t) = templates.for_request(content_type) {
        return RequestPlan::Transform(t);
    }
    match passthrough {
        Passthrough::WhenNoMatch => RequestPlan::PassThrough,
        Passthrough::WhenNoTemplates if templates.is_empty() => RequestPlan::PassThrough,
        Passthrough::WhenNoTemplates | Passthrough::Never => RequestPlan::Unsupported,
    }
}

/// Where a mapped value comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum Source {
    Static(String),
    RequestPath(String),
    RequestQuery(String),
    RequestMultiQuery(String),
    RequestHeader(String),
    RequestMultiHeader(String),
    RequestBody(Option<Rc<JsonPath>>),
    StageVariable(String),
    Context(Vec<String>),
    IntegrationHeader(String),
    IntegrationMultiHeader(String),
    IntegrationBody(Option<Rc<JsonPath>>),
}

/// Which sources a mapping may read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Request,
    Response,
}

impl Source {
    /// Parses a mapping expression.
    pub fn parse(s: &str, side: Side) -> Result<Source, String> {
        if let Some(lit) = s.strip_prefix('\'').and_then(|r| r.strip_suffix('\'')) {
            return Ok(Source::Static(lit.to_string()));
        }
        let body_path = |rest: &str| -> Result<Option<Rc<JsonPath>>, String> {
            if rest.is_empty() {
                return Ok(None);
            }
            let p = rest
                .strip_prefix('.')
                .ok_or("expected `.` before the JSONPath")?;
            JsonPath::compile(&format!("$.{p}")).map(|p| Some(Rc::new(p)))
        };
        let named = |rest: &str| -> Result<String, String> {
            if !rest.is_empty()
                && rest
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "._$-".contains(c))
            {
                Ok(rest.to_string())
            } else {
                Err("expected a name of letters, digits, `.`, `_`, `$` or `-`".into())
            }
        };
        if let Some(rest) = s.strip_prefix("method.request.") {
            return Ok(if let Some(n) = rest.strip_prefix("path.") {
                Source::RequestPath(named(n)?)
            } else if let Some(n) = rest.strip_prefix("querystring.") {
                Source::RequestQuery(named(n)?)
            } else if let Some(n) = rest.strip_prefix("multivaluequerystring.") {
                Source::RequestMultiQuery(named(n)?)
            } else if let Some(n) = rest.strip_prefix("header.") {
                Source::RequestHeader(named(n)?)
            } else if let Some(n) = rest.strip_prefix("multivalueheader.") {
                Source::RequestMultiHeader(named(n)?)
            } else if let Some(p) = rest.strip_prefix("body") {
                Source::RequestBody(body_path(p)?)
            } else {
                return Err(format!("unknown source `{s}`"));
            });
        }
        if let Some(rest) = s.strip_prefix("integration.response.") {
            if side == Side::Request {
                return Err(format!("`{s}` is only available in integration responses"));
            }
            return Ok(if let Some(n) = rest.strip_prefix("header.") {
                Source::IntegrationHeader(named(n)?)
            } else if let Some(n) = rest.strip_prefix("multivalueheader.") {
                Source::IntegrationMultiHeader(named(n)?)
            } else if let Some(p) = rest.strip_prefix("body") {
                Source::IntegrationBody(body_path(p)?)
            } else {
                return Err(format!("unknown source `{s}`"));
            });
        }
        if let Some(n) = s.strip_prefix("stageVariables.") {
            return Ok(Source::StageVariable(named(n)?));
        }
        if let Some(n) = s.strip_prefix("context.") {
            return Ok(Source::Context(
                named(n)?.split('.').map(str::to_string).collect(),
            ));
        }
        Err(format!(
            "unknown source `{s}`: expected 'static', method.request.*, integration.response.*, stageVariables.* or context.*"
        ))
    }
}

/// One request as templates and mappings see it.
#[derive(Debug)]
pub struct Scope<'a> {
    pub path: &'a [(String, String)],
    pub query: &'a [(String, String)],
    pub headers: &'a [(String, String)],
    /// The request body (empty where it is not held).
    pub body: &'a str,
    pub context: Value,
    pub stage_variables: Value,
}

impl Scope<'_> {
    /// The template environment; `$input` reads `input` (the request body for a request
    /// template, the integration's answer for a response template).
    pub fn env<'s>(&'s self, input: &'s str) -> vtl::Env<'s> {
        vtl::Env {
            input: vtl::Input {
                body: input,
                path: self.path,
                querystring: self.query,
                header: self.headers,
            },
            context: self.context.clone(),
            stage_variables: self.stage_variables.clone(),
        }
    }

    /// What parameter mappings read, with the integration's answer when there is one.
    pub fn sources<'s>(
        &'s self,
        integration_headers: &'s [Header],
        integration_body: &'s str,
    ) -> Sources<'s> {
        Sources {
            path: self.path,
            query: self.query,
            headers: self.headers,
            body: self.body,
            stage_variables: &self.stage_variables,
            context: &self.context,
            integration_headers,
            integration_body,
        }
    }
}

/// The data mapping sources read.
#[derive(Debug, Clone, Copy)]
pub struct Sources<'a> {
    pub path: &'a [(String, String)],
    pub query: &'a [(String, String)],
    pub headers: &'a [(String, String)],
    pub body: &'a str,
    pub stage_variables: &'a Value,
    pub context: &'a Value,
    pub integration_headers: &'a [Header],
    pub integration_body: &'a str,
}

fn last<'a>(pairs: &'a [(String, String)], name: &str, ci: bool) -> Option<&'a str> {
    pairs
        .iter()
        .rev()
        .find(|(k, _)| {
            if ci {
                k.eq_ignore_ascii_case(name)
            } else {
                k == name
            }
        })
        .map(|(_, v)| v.as_str())
}

fn all(pairs: &[(String, String)], name: &str, ci: bool) -> Option<String> {
    let v: Vec<&str> = pairs
        .iter()
        .filter(|(k, _)| {
            if ci {
                k.eq_ignore_ascii_case(name)
            } else {
                k == name
            }
        })
        .map(|(_, v)| v.as_str())
        .collect();
    (!v.is_empty()).then(|| v.join(","))
}

/// A value as a header carries it: strings as they are, anything else as JSON.
fn header_text(v: &Value) -> Option<String> {
    match v {
        Value::Null => None,
        Value::Str(s) => Some(s.to_string()),
        v => {
            let mut out = String::new();
            write_json(v, &mut out);
            Some(out)
        }
    }
}

/// Parses a body for a mapping; an `errorMessage` that is itself JSON is opened up, so
/// `integration.response.body.errorMessage.code` reaches into a function's custom error.
fn body_value(text: &str) -> Value {
    let Ok(v) = vtl::json::parse(text) else {
        return Value::Null;
    };
    if let Value::Map(m) = &v {
        if let Some(Value::Str(inner)) = m.get("errorMessage") {
            if let Ok(parsed @ Value::Map(_)) = vtl::json::parse(&inner) {
                m.put("errorMessage", parsed);
            }
        }
    }
    v
}

impl Source {
    /// The value, or `None` when the source has none.
    pub fn resolve(&self, s: &Sources) -> Option<String> {
        match self {
            Source::Static(v) => Some(v.clone()),
            Source::RequestPath(n) => last(s.path, n, false).map(str::to_string),
            Source::RequestQuery(n) => last(s.query, n, false).map(str::to_string),
            Source::RequestMultiQuery(n) => all(s.query, n, false),
            Source::RequestHeader(n) => last(s.headers, n, true).map(str::to_string),
            Source::RequestMultiHeader(n) => all(s.headers, n, true),
            Source::IntegrationHeader(n) => header(s.integration_headers, n).map(str::to_string),
            Source::IntegrationMultiHeader(n) => all(s.integration_headers, n, true),
            Source::RequestBody(None) => Some(s.body.to_string()),
            Source::IntegrationBody(None) => Some(s.integration_body.to_string()),
            Source::RequestBody(Some(p)) => header_text(&p.select(&body_value(s.body))),
            Source::IntegrationBody(Some(p)) => {
                header_text(&p.select(&body_value(s.integration_body)))
            }
            Source::StageVariable(n) => match s.stage_variables {
                Value::Map(m) => m.get(n).and_then(|v| header_text(&v)),
                _ => None,
            },
            Source::Context(path) => {
                let v = path
                    .iter()
                    .try_fold(s.context.clone(), |cur, name| match cur {
                        Value::Map(m) => m.get(name),
                        _ => None,
                    })?;
                header_text(&v)
            }
        }
    }
}

/// Compiles `responseParameters` (`method.response.header.X` or, with `prefix`
/// `gatewayresponse.header.`, gateway response headers).
pub fn header_mappings(
    v: Option<&Json>,
    prefix: &str,
    side: Side,
    at: &str,
    errors: &mut Vec<ConfigError>,
) -> Vec<(String, Source)> {
    let mut out = Vec::new();
    for (target, source) in v.and_then(Json::as_object).into_iter().flatten() {
        let p_at = format!("{at}.{target}");
        let Some(name) = target.strip_prefix(prefix) else {
            errors.push(ConfigError::new(p_at, format!("expected {prefix}NAME")));
            continue;
        };
        match source.as_str().map(|s| Source::parse(s, side)) {
            Some(Ok(src)) => out.push((name.to_string(), src)),
            Some(Err(m)) => errors.push(ConfigError::new(p_at, m)),
            None => errors.push(ConfigError::new(
                p_at,
                "expected a mapping expression string",
            )),
        }
    }
    out
}

fn status_of(v: &Json) -> Option<u16> {
    match v {
        Json::Number(n) => n.as_u64().and_then(|n| u16::try_from(n).ok()),
        Json::String(s) => s.trim().parse().ok(),
        _ => None,
    }
    .filter(|s| (100..600).contains(s))
}

/// One integration response.
#[derive(Debug)]
pub struct IntegrationResponse {
    /// `None` for `default`.
    pattern: Option<regex_lite::Regex>,
    pub status: u16,
    pub headers: Vec<(String, Source)>,
    pub templates: Templates,
    /// How the answer crosses between text and binary (`contentHandling`).
    pub content_handling: content::ContentHandling,
}

/// What selects an integration response.
#[derive(Debug, Clone, Copy)]
pub enum Selector<'a> {
    /// A Lambda result: the function's `errorMessage`, `None` on success.
    LambdaError(Option<&'a str>),
    /// A status code (mock integrations).
    Status(u16),
}

/// The integration responses of one method, and its method responses.
#[derive(Debug, Default)]
pub struct IntegrationResponses {
    list: Vec<IntegrationResponse>,
    /// Status codes of the method responses, when the export lists them.
    method_responses: Option<Vec<u16>>,
}

impl IntegrationResponses {
    pub fn compile(
        integ: &Json,
        method_responses: Option<Vec<u16>>,
        at: &str,
        errors: &mut Vec<ConfigError>,
    ) -> IntegrationResponses {
        let mut list = Vec::new();
        for (key, r) in integ
            .get("responses")
            .and_then(Json::as_object)
            .into_iter()
            .flatten()
        {
            let r_at = format!("{at}.responses.{key}");
            let pattern = match key.as_str() {
                "default" | "" => None,
                p => match crate::vtl::builtins::java_regex(&crate::vtl::builtins::anchored(p)) {
                    Ok(re) => Some(re),
                    Err(m) => {
                        errors.push(ConfigError::new(&r_at, m));
                        continue;
                    }
                },
            };
            let Some(status) = r.get("statusCode").and_then(status_of) else {
                errors.push(ConfigError::new(
                    format!("{r_at}.statusCode"),
                    "expected an HTTP status code",
                ));
                continue;
            };
            let headers = header_mappings(
                r.get("responseParameters"),
                "method.response.header.",
                Side::Response,
                &format!("{r_at}.responseParameters"),
                errors,
            );
            let templates = Templates::compile(
                r.get("responseTemplates"),
                &format!("{r_at}.responseTemplates"),
                errors,
            );
            let content_handling = content::ContentHandling::compile(r, &r_at, errors);
            list.push(IntegrationResponse {
                pattern,
                status,
                headers,
                templates,
                content_handling,
            });
        }
        IntegrationResponses {
            list,
            method_responses,
        }
    }

    /// The response for a result: an error message (or status code) is tried against the
    /// selection patterns first and falls back to `default`; a success takes `default`, or
    /// a pattern that matches the empty string (`.*`).
    pub fn select(&self, by: Selector) -> Option<&IntegrationResponse> {
        let patterned = |text: &str| {
            self.list
                .iter()
                .find(|r| r.pattern.as_ref().is_some_and(|p| p.is_match(text)))
        };
        let default = || self.list.iter().find(|r| r.pattern.is_none());
        match by {
            Selector::LambdaError(Some(msg)) => patterned(msg).or_else(default),
            Selector::LambdaError(None) => default().or_else(|| patterned("")),
            Selector::Status(code) => patterned(&code.to_string()).or_else(default),
        }
    }

    /// Whether a status has a method response (always, when the export lists none).
    pub fn has_method_response(&self, status: u16) -> bool {
        self.method_responses
            .as_ref()
            .is_none_or(|codes| codes.contains(&status))
    }
}

/// A JSON tree as template values; `null` becomes the empty string, as API Gateway
/// renders absent context values.
fn from_json(v: &Json) -> Value {
    match v {
        Json::Null => Value::str(""),
        Json::Bool(b) => Value::Bool(*b),
        Json::Number(n) => n
            .as_i64()
            .map(Value::Int)
            .unwrap_or_else(|| Value::Float(n.as_f64().unwrap_or_default())),
        Json::String(s) => Value::str(s.as_str()),
        Json::Array(items) => Value::list(items.iter().map(from_json).collect(), true),
        Json::Object(m) => Value::map(
            m.iter()
                .map(|(k, v)| (Rc::from(k.as_str()), from_json(v)))
                .collect(),
        ),
    }
}

/// `$context` for a request: the proxy event's `requestContext` fields (absent ones as empty
/// strings), `authorizer` (the Lambda authorizer's `principalId` and context values as
/// strings, or empty), and fresh override maps.
pub fn context_value(rc: &crate::lambda::event::RequestContext) -> Value {
    let json = serde_json::to_value(rc).unwrap_or_default();
    let v = from_json(&json);
    if let Value::Map(m) = &v {
        match m.get("authorizer") {
            Some(Value::Map(a)) => {
                if a.get("claims").is_none() {
                    a.put("claims", Value::map(Vec::new()));
                }
                if a.get("principalId").is_none() {
                    a.put("principalId", Value::str(""));
                }
            }
            _ => {
                m.put(
                    "authorizer",
                    Value::map(vec![
                        (Rc::from("principalId"), Value::str("")),
                        (Rc::from("claims"), Value::map(Vec::new())),
                    ]),
                );
            }
        }
        for (k, o) in override_maps() {
            m.put(&k, o);
        }
    }
    v
}

/// An empty `requestOverride` / `responseOverride` pair for a fresh `$context`.
pub fn override_maps() -> [(Rc<str>, Value); 2] {
    let empty = || Value::map(Vec::new());
    [
        (
            Rc::from("requestOverride"),
            Value::map(vec![
                (Rc::from("header"), empty()),
                (Rc::from("path"), empty()),
                (Rc::from("querystring"), empty()),
            ]),
        ),
        (
            Rc::from("responseOverride"),
            Value::map(vec![
                (Rc::from("header"), empty()),
                (Rc::from("status"), Value::Null),
            ]),
        ),
    ]
}

fn override_map(context: &Value, which: &str) -> Option<Rc<vtl::value::Map>> {
    let Value::Map(c) = context else { return None };
    match c.get(which) {
        Some(Value::Map(m)) => Some(m),
        _ => None,
    }
}

/// Headers a template set through `$context.<which>.header.NAME`.
pub fn override_headers(context: &Value, which: &str) -> Vec<Header> {
    override_entries(context, which, "header")
}

/// What a template set through `$context.<which>.<part>.NAME` (`part`: `header`, `path`
/// or `querystring`), as (NAME, text) pairs.
pub fn override_entries(context: &Value, which: &str, part: &str) -> Vec<(String, String)> {
    let Some(m) = override_map(context, which) else {
        return Vec::new();
    };
    let Some(Value::Map(h)) = m.get(part) else {
        return Vec::new();
    };
    let entries = h.entries.borrow();
    entries
        .iter()
        .filter_map(|(k, v)| header_text(v).map(|v| (k.to_string(), v)))
        .collect()
}

/// `$context.responseOverride.status`, when it is an integer from 100 to 599.
pub fn override_status(context: &Value) -> Option<u16> {
    let m = override_map(context, "responseOverride")?;
    m.get("status")?
        .as_index()
        .and_then(|s| u16::try_from(s).ok())
        .filter(|s| (100..600).contains(s))
}

/// Why a mapping could not produce a reply (API Gateway answers 500 for each).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MapFailure {
    /// The request body is not JSON and a template reads it as JSON.
    InvalidBody(String),
    /// Anything else: a render error, no integration response, no method response.
    Failed(String),
}

impl From<vtl::RenderError> for MapFailure {
    fn from(e: vtl::RenderError) -> Self {
        match e {
            vtl::RenderError::InvalidBody(m) => MapFailure::InvalidBody(m),
            e => MapFailure::Failed(format!("mapping template failed: {e}")),
        }
    }
}

/// Builds the reply of an integration response: status, mapped headers, the template
/// chosen by `Accept` (or the integration body as it is), then the template's overrides.
/// Response headers a mapping may not set under their own names: API Gateway sends them
/// renamed `x-amzn-Remapped-{name}`.
const REMAPPED_RESPONSE_HEADERS: [&str; 14] = [
    "authorization",
    "connection",
    "content-length",
    "content-md5",
    "date",
    "expect",
    "host",
    "max-forwards",
    "proxy-authenticate",
    "server",
    "trailer",
    "upgrade",
    "user-agent",
    "www-authenticate",
];

/// The name a mapped response header is sent under, or `None` when it is not sent
/// (`Transfer-Encoding`).
fn mapped_response_header(name: &str) -> Option<String> {
    let lower = name.to_ascii_lowercase();
    if lower == "transfer-encoding" {
        return None;
    }
    if REMAPPED_RESPONSE_HEADERS.contains(&lower.as_str()) {
        return Some(format!("x-amzn-Remapped-{name}"));
    }
    Some(name.to_string())
}

pub fn integration_reply(
    response: &IntegrationResponse,
    responses: &IntegrationResponses,
    env: &vtl::Env,
    sources: &Sources,
    accept: Option<&str>,
) -> Result<Reply, MapFailure> {
    integration_reply_with(response, responses, (env, sources), accept, None)
}

/// [`integration_reply`]; with `binary`, the reply's body is those bytes (a payload
/// [`content`] made binary: no template applies), its `Content-Type` the integration's, else
/// the client's first `Accept` type.
pub fn integration_reply_with(
    response: &IntegrationResponse,
    responses: &IntegrationResponses,
    (env, sources): (&vtl::Env, &Sources),
    accept: Option<&str>,
    binary: Option<Vec<u8>>,
) -> Result<Reply, MapFailure> {
    let (media, body) = match (binary, response.templates.for_response(accept)) {
        (Some(bytes), _) => {
            let media = header(sources.integration_headers, "content-type")
                .map(str::to_string)
                .or_else(|| accept.map(crate::lambda::response::first_media_type))
                .unwrap_or_else(|| "application/octet-stream".to_string());
            (media, bytes)
        }
        (None, Some((media, t))) => (media.to_string(), t.render(env)?.into_bytes()),
        (None, None) => (
            "application/json".to_string(),
            sources.integration_body.as_bytes().to_vec(),
        ),
    };
    if !responses.has_method_response(response.status) {
        return Err(MapFailure::Failed(format!(
            "no method response is defined for status {}",
            response.status
        )));
    }
    let status = override_status(&env.context).unwrap_or(response.status);
    let mut headers: Vec<Header> = vec![("Content-Type".into(), media)];
    let mapped = response
        .headers
        .iter()
        .filter_map(|(name, source)| source.resolve(sources).map(|v| (name.clone(), v)))
        .chain(override_headers(&env.context, "responseOverride"));
    for (name, v) in mapped {
        let Some(name) = mapped_response_header(&name) else {
            continue;
        };
        headers.retain(|(k, _)| !k.eq_ignore_ascii_case(&name));
        headers.push((name, v));
    }
    Ok(Reply {
        status,
        headers,
        body,
    })
}

pub mod content;
#[cfg(test)]
pub mod testing;
#[cfg(test)]
mod tests;
