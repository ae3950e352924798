//! The request pipeline: one compiled API stage and what it does with each request.
//!
//! Owns: compiling a [`FilterConfig`] into a [`Gateway`] once (routes, invoke targets,
//! stage variables substituted), and the three per-request steps the host glue calls:
//! [`Gateway::start`] (stage and route matching, before the body), [`Gateway::invoke`]
//! (the Lambda proxy event and Invoke call, once the body is in) and [`Gateway::finish`]
//! (mapping the Invoke answer to the client reply). For methods the stage cache covers,
//! [`Gateway::start`] also returns the [`CachePlan`] (key, slot, lookup or refresh) that the
//! glue carries out against its per-worker store, [`Gateway::cache_hit`] turns a stored
//! answer into a reply, and [`Gateway::finish`] hands back what may be stored. Every reply
//! leaves with `x-amzn-RequestId` and `x-amz-apigw-id`; every failure comes with one log line.
//! Must not: call the host, read clocks or generate randomness: the glue passes the request
//! id and `now` in.

use std::collections::{BTreeMap, HashMap};
use std::rc::Rc;

use base64::Engine;

use crate::apikeys::ApiKeys;
use crate::cache::{self, CachePlan, Decision, KeySource, Mode, RouteCache, StageCache};
use crate::config::{Api, FilterConfig};
use crate::cors::CorsPolicy;
use crate::error::{ConfigError, GatewayError};
use crate::gateway_responses::GatewayResponses;
use crate::http::{header, title_case, Header, Reply};
use crate::lambda::event::{
    AuthorizerView, Identity, MultiValues, ProxyEvent, RequestContext, RequestFields, SingleValues,
    StageVariables,
};
use crate::lambda::function_url::{self, UrlOutcome};
use crate::lambda::invoke::{
    classify, InvokeOutcome, InvokeResponse, InvokeTarget, LambdaCall, TargetKind,
};
use crate::lambda::response::{self, first_media_type, is_binary};
use crate::lambda::upstream::Upstreams;
use crate::mapping::aws::{AwsMapping, RequestFailure};
use crate::mapping::{self, MapFailure, Scope, Sources};
use crate::mock::{Mock, MockFailure};
use crate::openapi::{self, Integration, Method};
use crate::query;
use crate::router::Router;
use crate::shared::SharedCells;
use crate::sigv4::Signer;
use crate::time::Utc;
use crate::usage::{UsageEvent, UsagePlans};
use crate::vtl;

/// How a request path maps onto the stage.
#[derive(Debug, Clone, PartialEq, Eq)]
enum BasePath {
    /// `/{stage}/…`, the default execute-api endpoint style.
    Stage,
    /// A custom-domain base path mapping (`""` for the empty mapping).
    Mapping(String),
}

#[derive(Debug)]
enum RouteAction {
    LambdaProxy {
        target: Rc<InvokeTarget>,
        timeout_ms: u64,
    },
    /// The non-proxy Lambda integration, mapped by templates.
    LambdaAws {
        target: Rc<InvokeTarget>,
        timeout_ms: u64,
        mapping: Box<AwsMapping>,
    },
    Mock(Box<Mock>),
    Unsupported {
        kind: String,
    },
}

#[derive(Debug)]
struct Route {
    resource: String,
    resource_id: String,
    action: RouteAction,
    cache: Option<RouteCache>,
    /// Index into [`Gateway::authorizers`] of the authorizer guarding the method.
    authorizer: Option<usize>,
}

/// A Lambda authorizer, its function resolved.
#[derive(Debug)]
struct Authorizer {
    spec: crate::authorizer::Spec,
    target: Rc<InvokeTarget>,
}

/// A compiled API stage.
#[derive(Debug)]
pub struct Gateway {
    stage: String,
    base_path: BasePath,
    router: Router,
    routes: Vec<Route>,
    stage_variables: BTreeMap<String, String>,
    binary_media_types: Vec<String>,
    api: Api,
    deployment_id: String,
    max_body_bytes: u64,
    user_agent: String,
    api_keys: ApiKeys,
    cache: Option<StageCache>,
    usage: UsagePlans,
    cors: Option<CorsPolicy>,
    gateway_responses: GatewayResponses,
    upstreams: Upstreams,
    /// Signers of the clusters this filter signs, by cluster (see [`Gateway::load_credentials`]).
    signers: BTreeMap<String, Signer>,
    authorizers: Vec<Authorizer>,
    /// API keys come from the authorizer's `usageIdentifierKey`, not `x-api-key`.
    api_key_from_authorizer: bool,
}

/// Request values computed once for an event or a template environment.
struct Facts {
    /// Headers as the integration sees them.
    headers: Vec<(String, String)>,
    query: Vec<(String, String)>,
    host: String,
    request_time: String,
    extended: String,
}

/// A compiled gateway plus the warnings compilation produced.
#[derive(Debug)]
pub struct Compiled {
    pub gateway: Gateway,
    pub warnings: Vec<ConfigError>,
}

/// The request as the host glue reads it, before the body.
#[derive(Debug, Clone, Default)]
pub struct RequestHead {
    pub method: String,
    /// `:path` as received: raw path plus query string.
    pub path: String,
    /// Request headers in arrival order, `:authority` included.
    pub headers: Vec<Header>,
    /// Address of the immediate TCP peer.
    pub source_ip: String,
    /// Port the listener accepted the connection on.
    pub local_port: Option<u16>,
    /// `HTTP/1.1`, `HTTP/2`, ...
    pub protocol: String,
    /// Unique id of this request (a UUID), generated by the host glue.
    pub request_id: String,
    /// Arrival time in milliseconds since the Unix epoch.
    pub now_ms: u64,
}

/// What an authorizer decided for this request, and how long it took.
#[derive(Debug, Clone)]
pub struct Authorized {
    pub decision: Rc<crate::authorizer::Decision>,
    /// Milliseconds the authorizer call took (0 for a cached result).
    pub latency_ms: u64,
}

/// What the pipeline knows of a request when it builds `$context` or an event.
#[derive(Clone, Copy, Default)]
struct Known<'a> {
    route: Option<&'a Route>,
    api_key_id: Option<&'a str>,
    auth: Option<&'a Authorized>,
}

/// A request that matched a route and waits for its body.
#[derive(Debug, Clone)]
pub struct Routed {
    route: usize,
    params: Vec<(String, String)>,
    /// `path` of the event.
    event_path: String,
    /// What the stage cache does for this request; `None` when the method is not cached.
    pub cache: Option<CachePlan>,
    /// Id of the caller's API key, when the method requires one.
    api_key_id: Option<String>,
    /// What the usage check counted, for per-plan stats.
    pub usage: Option<UsageEvent>,
    /// `X-RateLimit-*` headers for the reply, when enabled.
    limit_headers: Vec<Header>,
    /// A line to log although the request goes on.
    pub notice: Option<String>,
    /// The authorizer's decision, for methods one guards.
    pub auth: Option<Authorized>,
}

impl Routed {
    fn known<'a>(&'a self, g: &'a Gateway) -> Known<'a> {
        Known {
            route: g.routes.get(self.route),
            api_key_id: self.api_key_id.as_deref(),
            auth: self.auth.as_ref(),
        }
    }
}

/// A finished request: the reply, the error that produced it if any, and the log line.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub reply: Reply,
    pub error: Option<GatewayError>,
    /// One line saying why the request failed; `None` on success.
    pub log: Option<String>,
    /// The answer to keep in the stage cache (without per-request headers), when the method
    /// is cached and the answer may be stored.
    pub store: Option<Box<Reply>>,
    /// What the usage check counted when it refused the request, for per-plan stats.
    pub usage: Option<UsageEvent>,
}

impl Outcome {
    fn ok(reply: Reply) -> Outcome {
        Outcome {
            reply,
            error: None,
            log: None,
            store: None,
            usage: None,
        }
    }
}

/// What to do after the request headers.
#[derive(Debug)]
pub enum Start {
    /// Answer now.
    Respond(Outcome),
    /// Wait for the whole body, then call [`Gateway::invoke`].
    NeedBody(Routed),
}

const STAGE_NAME_MAX: usize = 128;
/// Request headers that never reach an integration.
const DROPPED_REQUEST_HEADERS: [&str; 14] = [
    "connection",
    "content-length",
    "content-md5",
    "expect",
    "max-forwards",
    "proxy-authenticate",
    "server",
    "te",
    "transfer-encoding",
    "trailer",
    "upgrade",
    "www-authenticate",
    "keep-alive",
    "proxy-connection",
];

/// FNV-1a, for stable short identifiers derived from configuration.
fn fnv1a(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

fn base36(mut n: u64, len: usize) -> String {
    const DIGITS: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut out = Vec::with_capacity(len);
    for _ in 0..len {
        out.push(DIGITS.get((n % 36) as usize).copied().unwrap_or(b'0'));
        n /= 36;
    }
    String::from_utf8(out).unwrap_or_default()
}

/// Bytes of a request id: its hex digits when it is a UUID, a hash otherwise.
fn id_bytes(request_id: &str) -> Vec<u8> {
    let hex: Vec<u8> = request_id.bytes().filter(u8::is_ascii_hexdigit).collect();
    if hex.len() >= 32 {
        hex.chunks(2)
            .filter_map(|c| {
                std::str::from_utf8(c)
                    .ok()
                    .and_then(|s| u8::from_str_radix(s, 16).ok())
            })
            .collect()
    } else {
        let a = fnv1a(request_id.as_bytes());
        let b = fnv1a(&a.to_le_bytes());
        [a.to_be_bytes(), b.to_be_bytes()].concat()
    }
}

/// `$context.extendedRequestId`: 16 characters, base64 of 11 bytes of the request id.
pub fn extended_request_id(request_id: &str) -> String {
    let bytes = id_bytes(request_id);
    base64::engine::general_purpose::STANDARD.encode(bytes.get(..11).unwrap_or(&bytes))
}

/// An X-Ray style trace header: `Root=1-{epoch seconds hex}-{24 hex digits}`.
pub fn trace_id(request_id: &str, now_ms: u64) -> String {
    let bytes = id_bytes(request_id);
    let tail: String = bytes
        .iter()
        .skip(4)
        .take(12)
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("Root=1-{:08x}-{tail}", now_ms / 1000)
}

fn validate_stage(d: &crate::config::Deployment, errors: &mut Vec<ConfigError>) {
    let valid = !d.stage.is_empty()
        && d.stage.len() <= STAGE_NAME_MAX
        && d.stage
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !valid {
        errors.push(ConfigError::new(
            "deployment.stage",
            "stage names are 1-128 of A-Z a-z 0-9 - _",
        ));
    }
    for (name, value) in &d.stage_variables {
        let at = format!("deployment.stageVariables.{name}");
        if name.is_empty()
            || name.len() > 64
            || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        {
            errors.push(ConfigError::new(&at, "names are 1-64 of A-Z a-z 0-9 _"));
        }
        let ok_value = !value.is_empty()
            && value.len() <= 512
            && value
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-._~:/?#&=,".contains(&b));
        if !ok_value {
            errors.push(ConfigError::new(
                &at,
                "values are 1-512 of A-Z a-z 0-9 - . _ ~ : / ? # & = ,",
            ));
        }
    }
}

fn base_path(d: &crate::config::Deployment, errors: &mut Vec<ConfigError>) -> BasePath {
    match d.base_path.as_deref() {
        None => BasePath::Stage,
        Some("/") | Some("") => BasePath::Mapping(String::new()),
        Some(p) => {
            let trimmed = p.trim_end_matches('/');
            let valid = trimmed.starts_with('/')
                && trimmed.split('/').skip(1).all(|s| {
                    !s.is_empty()
                        && s.bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b"-._".contains(&b))
                });
            if !valid {
                errors.push(ConfigError::new(
                    "deployment.basePath",
                    "expected `/` or a path such as `/v1` (segments of A-Z a-z 0-9 - . _)",
                ));
            }
            BasePath::Mapping(trimmed.to_string())
        }
    }
}

impl Gateway {
    /// Compiles a configuration; every problem is reported, each with its location.
    pub fn compile(cfg: &FilterConfig) -> Result<Compiled, Vec<ConfigError>> {
        Gateway::compile_parsed(&cfg.deployment, openapi::parse(&cfg.openapi))
    }

    /// Compiles a deployment and its export, already read (see [`openapi::parse_text`]).
    pub fn compile_parsed(
        d: &crate::config::Deployment,
        parsed: openapi::Parsed,
    ) -> Result<Compiled, Vec<ConfigError>> {
        let mut errors = Vec::new();
        validate_stage(d, &mut errors);
        let base_path = base_path(d, &mut errors);
        if d.limits.max_body_bytes == 0 {
            errors.push(ConfigError::new(
                "deployment.limits.maxBodyBytes",
                "must be greater than 0",
            ));
        }
        let upstreams = Upstreams::compile(d, &mut errors);
        let digest = parsed.digest;
        errors.extend(parsed.errors);
        let mut export = parsed.export;
        let gateway_responses =
            GatewayResponses::compile(export.gateway_responses.as_ref(), &mut errors);
        let api_keys = ApiKeys::compile(&d.api_keys, &mut errors);
        let usage = UsagePlans::compile(d, &api_keys, &export.operations, &mut errors);
        let cors = d.cors.as_ref().map(|c| CorsPolicy::compile(c, &mut errors));
        let (stage_cache, mut route_caches) = StageCache::compile(
            d.cache.as_ref(),
            &api_keys,
            &d.api.id,
            &d.stage,
            &export.operations,
            &mut errors,
        );
        let router = match Router::build(&export.operations) {
            Ok(r) => Some(r),
            Err(e) => {
                errors.extend(e);
                None
            }
        };

        let mut warnings = parsed.warnings;
        let mut routes = Vec::with_capacity(export.operations.len());
        let api_key_from_authorizer = export.api_key_from_authorizer;
        // Methods that call the same function share one target (large APIs have thousands
        // of methods and a handful of functions).
        let mut targets: HashMap<String, Rc<InvokeTarget>> = HashMap::new();
        let mut target_of = |uri: &str, at: String, errors: &mut Vec<ConfigError>| {
            if let Some(t) = targets.get(uri) {
                return Some(t.clone());
            }
            let t = Rc::new(upstreams.target(d, uri, at, errors)?);
            targets.insert(uri.to_string(), t.clone());
            Some(t)
        };
        let mut authorizers = Vec::with_capacity(export.authorizers.len());
        for spec in std::mem::take(&mut export.authorizers) {
            let at = format!(
                "{}.x-amazon-apigateway-authorizer.authorizerUri",
                spec.location
            );
            let Some(target) = target_of(&spec.uri, at.clone(), &mut errors) else {
                continue;
            };
            if target.kind != TargetKind::Invoke {
                errors.push(ConfigError::new(at, "an authorizer is invoked through the Invoke API; its function cannot be a function URL or a payload 2.0 target"));
                continue;
            }
            authorizers.push(Authorizer { spec, target });
        }
        for (i, op) in export.operations.iter().enumerate() {
            let authorizer = match op.authorizer.as_deref() {
                None => None,
                Some(name) => match authorizers.iter().position(|a| a.spec.name == name) {
                    Some(a) => Some(a),
                    None => {
                        let what = export
                            .unsupported_schemes
                            .iter()
                            .find(|(n, _)| n == name)
                            .map_or("this kind of authorizer", |(_, w)| w.as_str());
                        errors.push(ConfigError::new(
                            format!("{}.security", op.location),
                            format!("`{name}`: {what} are not supported yet; the method cannot be served without its authorizer"),
                        ));
                        continue;
                    }
                },
            };
            let action = match &op.integration {
                Integration::Unsupported { kind } => {
                    RouteAction::Unsupported { kind: kind.clone() }
                }
                Integration::Mock(integ) => {
                    let at = format!("{}.x-amazon-apigateway-integration", op.location);
                    RouteAction::Mock(Box::new(Mock::compile(
                        integ,
                        op.method_responses.clone(),
                        &at,
                        &mut errors,
                    )))
                }
                Integration::AwsProxy { uri, timeout_ms } => {
                    let at = format!("{}.x-amazon-apigateway-integration.uri", op.location);
                    let Some(target) = target_of(uri, at, &mut errors) else {
                        continue;
                    };
                    RouteAction::LambdaProxy {
                        target,
                        timeout_ms: *timeout_ms,
                    }
                }
                Integration::Aws {
                    uri,
                    timeout_ms,
                    spec,
                } => {
                    let at = format!("{}.x-amazon-apigateway-integration", op.location);
                    let mapping = AwsMapping::compile(
                        spec,
                        op.method_responses.clone(),
                        &at,
                        &mut errors,
                        &mut warnings,
                    );
                    let Some(target) = target_of(uri, format!("{at}.uri"), &mut errors) else {
                        continue;
                    };
                    if target.kind != TargetKind::Invoke {
                        errors.push(ConfigError::new(
                            format!("{at}.uri"),
                            "a non-proxy integration invokes through the Invoke API with its template's payload; its function cannot be a function URL or a payload 2.0 target",
                        ));
                        continue;
                    }
                    RouteAction::LambdaAws {
                        target,
                        timeout_ms: *timeout_ms,
                        mapping: Box::new(mapping),
                    }
                }
            };
            routes.push(Route {
                resource: op.resource.clone(),
                resource_id: base36(fnv1a(op.resource.as_bytes()), 6),
                action,
                cache: route_caches.get_mut(i).and_then(Option::take),
                authorizer,
            });
        }

        let (Some(router), true) = (router, errors.is_empty()) else {
            return Err(errors);
        };
        let deployment_id = base36(
            fnv1a(format!("{}/{}/{digest:x}", d.api.id, d.stage).as_bytes()),
            6,
        );
        Ok(Compiled {
            gateway: Gateway {
                stage: d.stage.clone(),
                base_path,
                router,
                routes,
                stage_variables: d.stage_variables.clone(),
                binary_media_types: export.binary_media_types,
                user_agent: format!("AmazonAPIGateway_{}", d.api.id),
                api: d.api.clone(),
                deployment_id,
                max_body_bytes: d.limits.max_body_bytes,
                api_keys,
                cache: stage_cache,
                usage,
                cors,
                gateway_responses,
                upstreams,
                signers: BTreeMap::new(),
                authorizers,
                api_key_from_authorizer,
            },
            warnings,
        })
    }

    /// The Lambda clusters and who signs calls to them.
    pub fn upstreams(&self) -> &Upstreams {
        &self.upstreams
    }

    /// Loads the credentials of the clusters this filter signs (`lambda.signing: FILTER`)
    /// through `lookup`, the wasm VM's environment. Without them the configuration is
    /// refused; nothing is loaded for other signing modes.
    pub fn load_credentials(
        &mut self,
        lookup: &dyn Fn(&str) -> Option<String>,
    ) -> Result<(), ConfigError> {
        self.signers = self.upstreams.signers(lookup)?;
        Ok(())
    }

    /// Signs a call in place when this filter signs its cluster.
    fn sign(&self, call: &mut LambdaCall, now_ms: u64) {
        if let Some(signer) = self.signers.get(&call.cluster) {
            signer.sign(&mut call.headers, &call.body, now_ms);
        }
    }

    /// Largest request body accepted.
    pub fn max_body_bytes(&self) -> u64 {
        self.max_body_bytes
    }

    /// Ids of the usage plans, in the order [`UsageEvent::plan`] refers to them.
    pub fn plan_ids(&self) -> Vec<&str> {
        self.usage.plan_ids()
    }

    /// The stage cache, when caching is on.
    pub fn stage_cache(&self) -> Option<&StageCache> {
        self.cache.as_ref()
    }

    /// The longest integration timeout of any method (0 when none calls out).
    pub fn max_integration_timeout_ms(&self) -> u64 {
        self.routes
            .iter()
            .map(|r| match &r.action {
                RouteAction::LambdaProxy { timeout_ms, .. }
                | RouteAction::LambdaAws { timeout_ms, .. } => *timeout_ms,
                RouteAction::Mock(_) | RouteAction::Unsupported { .. } => 0,
            })
            .max()
            .unwrap_or(0)
    }

    /// Every Envoy cluster this gateway invokes through.
    pub fn clusters(&self) -> Vec<&str> {
        let mut out: Vec<&str> =
            self.routes
                .iter()
                .filter_map(|r| match &r.action {
                    RouteAction::LambdaProxy { target, .. }
                    | RouteAction::LambdaAws { target, .. } => Some(target.cluster.as_str()),
                    RouteAction::Mock(_) | RouteAction::Unsupported { .. } => None,
                })
                .collect();
        out.sort_unstable();
        out.dedup();
        out
    }

    /// Splits a raw request path into the event `path` and the path to match, or `None`
    /// when it is outside this stage.
    fn split_path<'p>(&self, raw: &'p str) -> Option<(&'p str, String)> {
        let rest = match &self.base_path {
            BasePath::Stage => raw.strip_prefix('/')?.strip_prefix(self.stage.as_str())?,
            BasePath::Mapping(prefix) => raw.strip_prefix(prefix.as_str())?,
        };
        if !rest.is_empty() && !rest.starts_with('/') {
            return None;
        }
        let trimmed = rest.trim_start_matches('/');
        let event_path = match &self.base_path {
            BasePath::Stage if trimmed.is_empty() => "/",
            BasePath::Stage => raw.get(raw.len() - trimmed.len() - 1..).unwrap_or("/"),
            BasePath::Mapping(_) => raw,
        };
        let mut match_path = String::with_capacity(trimmed.len() + 1);
        match_path.push('/');
        match_path.push_str(trimmed.strip_suffix('/').unwrap_or(trimmed));
        Some((event_path, match_path))
    }

    fn fail(&self, head: &RequestHead, error: GatewayError, reason: &str) -> Outcome {
        self.fail_in(head, Known::default(), error, reason)
    }

    /// A failure, with what the pipeline already knows of the request (for the
    /// `$context` of customised gateway responses).
    fn fail_in(
        &self,
        head: &RequestHead,
        known: Known,
        error: GatewayError,
        reason: &str,
    ) -> Outcome {
        let reply = self.finalize(self.error_reply(head, known, error), head, false);
        Outcome {
            log: Some(format!(
                "{} {} {} -> {} {}: {reason}",
                head.request_id,
                head.method,
                head.path,
                error.status(),
                error.response_type().name()
            )),
            reply,
            error: Some(error),
            store: None,
            usage: None,
        }
    }

    /// The gateway response for an error: built in, or as the export customises it. A
    /// customised response's templates see the same `$context` as mapping templates, plus
    /// `$context.error`.
    fn error_reply(&self, head: &RequestHead, known: Known, error: GatewayError) -> Reply {
        if !self.gateway_responses.is_customised(error) {
            return error.to_reply();
        }
        let mut message_string = String::new();
        vtl::value::json_string(error.message(), &mut message_string);
        let f = self.facts(head);
        let context = mapping::context_value(&self.request_context(head, known, &f));
        if let vtl::Value::Map(m) = &context {
            m.put(
                "error",
                vtl::Value::map(vec![
                    ("message".into(), vtl::Value::str(error.message())),
                    ("messageString".into(), vtl::Value::str(message_string)),
                    (
                        "responseType".into(),
                        vtl::Value::str(error.response_type().name()),
                    ),
                    ("validationErrorString".into(), vtl::Value::str("")),
                ]),
            );
        }
        let stage_variables = self.stage_variables_value();
        let sources = Sources {
            path: &[],
            query: &f.query,
            headers: &head.headers,
            body: "",
            stage_variables: &stage_variables,
            context: &context,
            integration_headers: &[],
            integration_body: "",
        };
        self.gateway_responses
            .reply(error, header(&head.headers, "accept"), &sources, &context)
    }

    /// `$stageVariables`, fresh for each render (templates may write to it).
    fn stage_variables_value(&self) -> vtl::Value {
        let pairs: Vec<(String, String)> = self
            .stage_variables
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        vtl::Value::string_map(&pairs, false)
    }

    /// Adds the per-request headers and applies the CORS policy: every reply but a
    /// preflight's leaves through here.
    fn finalize(&self, reply: Reply, head: &RequestHead, integration: bool) -> Reply {
        let mut reply = self.stamp(reply, head, integration);
        if let Some(cors) = &self.cors {
            cors.decorate(&mut reply, &head.headers);
        }
        reply
    }

    /// Adds `x-amzn-RequestId`, `x-amz-apigw-id` and, for integration answers,
    /// `X-Amzn-Trace-Id`.
    fn stamp(&self, mut reply: Reply, head: &RequestHead, integration: bool) -> Reply {
        reply
            .headers
            .push(("x-amzn-RequestId".into(), head.request_id.clone()));
        reply.headers.push((
            "x-amz-apigw-id".into(),
            extended_request_id(&head.request_id),
        ));
        if integration {
            reply.set_default_header("X-Amzn-Trace-Id", &trace_id(&head.request_id, head.now_ms));
        }
        reply
    }

    /// Stage `Preflight`: a CORS preflight the deployment's policy answers.
    fn preflight(&self, head: &RequestHead) -> Option<Outcome> {
        let reply = self.cors.as_ref()?.preflight(&head.method, &head.headers)?;
        Some(Outcome::ok(self.stamp(reply, head, false)))
    }

    /// Stage `Route`: the stage, the resource and method, and the declared body size.
    fn route(&self, head: &RequestHead) -> Result<Routed, Outcome> {
        let raw_path = head.path.split('?').next().unwrap_or_default();
        let Some((event_path, match_path)) = self.split_path(raw_path) else {
            return Err(self.fail(
                head,
                GatewayError::MissingAuthenticationToken,
                "path is outside the stage",
            ));
        };
        let Some(found) =
            Method::from_request(&head.method).and_then(|m| self.router.find(m, &match_path))
        else {
            return Err(self.fail(
                head,
                GatewayError::MissingAuthenticationToken,
                "no resource and method match",
            ));
        };
        let too_large = header(&head.headers, "content-length")
            .and_then(|v| v.trim().parse::<u64>().ok())
            .is_some_and(|n| n > self.max_body_bytes);
        if too_large {
            return Err(self.request_too_large(head));
        }
        Ok(Routed {
            route: found.operation,
            params: found.params,
            event_path: event_path.to_string(),
            cache: None,
            api_key_id: None,
            usage: None,
            limit_headers: Vec::new(),
            notice: None,
            auth: None,
        })
    }

    /// Stage `ApiKeyUsage`: the API key (from `x-api-key`, or from the authorizer's
    /// `usageIdentifierKey` when the API's key source is `AUTHORIZER`), its usage plan, and
    /// the plan's and the stage's throttles and quota, counted in `cells` (shared by all
    /// workers).
    fn admit(
        &self,
        head: &RequestHead,
        routed: &mut Routed,
        cells: &dyn SharedCells,
    ) -> Result<(), Outcome> {
        let op = routed.route;
        let caller = if self.usage.key_required(op) {
            let (presented, from) = if self.api_key_from_authorizer {
                let key = routed
                    .auth
                    .as_ref()
                    .and_then(|a| a.decision.usage_key.as_deref());
                (key, "the authorizer's usageIdentifierKey")
            } else {
                (header(&head.headers, "x-api-key"), "x-api-key")
            };
            let Some(key) = presented.and_then(|v| self.api_keys.identify(v)) else {
                let why = if presented.is_some() {
                    format!("unknown or disabled API key in {from}")
                } else {
                    format!("the method requires an API key and {from} is missing")
                };
                let known = routed.known(self);
                return Err(self.fail_in(head, known, GatewayError::InvalidApiKey, &why));
            };
            let Some(plan) = self.usage.plan_of(key) else {
                let why = format!(
                    "API key {} is in no usage plan of stage {}",
                    key.id, self.stage
                );
                let known = routed.known(self);
                return Err(self.fail_in(head, known, GatewayError::InvalidApiKey, &why));
            };
            Some((key, plan))
        } else {
            None
        };
        let check = self.usage.check(cells, op, caller, head.now_ms);
        if let Err((error, reason)) = &check.verdict {
            let mut outcome = self.fail_in(head, routed.known(self), *error, reason);
            outcome.reply.headers.extend(check.headers);
            outcome.usage = check.event;
            return Err(outcome);
        }
        routed.api_key_id = caller.map(|(k, _)| k.id.clone());
        routed.usage = check.event;
        routed.limit_headers = check.headers;
        routed.notice = check.log;
        Ok(())
    }

    /// The mock integration of a route, when it has one.
    fn mock_of(&self, routed: &Routed) -> Option<&Mock> {
        match self.routes.get(routed.route).map(|r| &r.action) {
            Some(RouteAction::Mock(mock)) => Some(mock),
            _ => None,
        }
    }

    /// Stage `Cache` (planning): what the stage cache does for this request.
    fn plan_cache(&self, head: &RequestHead, routed: &mut Routed) -> Result<(), Outcome> {
        routed.cache = match self.cache_decision(head, routed.route, &routed.params) {
            Some(Decision::Forbidden) => return Err(self.fail_in(
                head,
                routed.known(self),
                GatewayError::CacheInvalidationForbidden,
                "Cache-Control: max-age=0 from a caller not allowed to invalidate (FAIL_WITH_403)",
            )),
            Some(Decision::Use(plan)) => Some(plan),
            None => None,
        };
        Ok(())
    }

    fn cache_decision(
        &self,
        head: &RequestHead,
        route: usize,
        params: &[(String, String)],
    ) -> Option<Decision> {
        let stage_cache = self.cache.as_ref()?;
        let route = self.routes.get(route)?;
        let rule = route.cache.as_ref()?;
        let src = KeySource {
            stage: &self.stage,
            method: &head.method,
            resource: &route.resource,
            path_params: params,
            raw_query: head
                .path
                .split_once('?')
                .map(|(_, q)| q)
                .unwrap_or_default(),
            headers: &head.headers,
        };
        Some(stage_cache.plan(rule, &src, &self.api_keys))
    }

    /// Adds what the cache says about a reply: the ignored-invalidation warning and, when
    /// enabled, the debug header.
    fn annotate_cached(&self, reply: &mut Reply, plan: &CachePlan, what: &str) {
        if plan.warn {
            reply
                .headers
                .push((cache::WARNING.0.into(), cache::WARNING.1.into()));
        }
        if self.cache.as_ref().is_some_and(|c| c.debug_header) {
            reply
                .headers
                .push((cache::DEBUG_HEADER.into(), what.into()));
        }
    }

    /// The reply for a stored answer found by the glue.
    pub fn cache_hit(&self, head: &RequestHead, routed: &Routed, stored: Reply) -> Outcome {
        let mut reply = self.finalize(stored, head, true);
        if let Some(plan) = &routed.cache {
            self.annotate_cached(&mut reply, plan, "HIT");
        }
        reply.headers.extend(routed.limit_headers.iter().cloned());
        Outcome::ok(reply)
    }

    /// The reply for a body over [`Gateway::max_body_bytes`].
    pub fn request_too_large(&self, head: &RequestHead) -> Outcome {
        self.fail(
            head,
            GatewayError::RequestTooLarge,
            &format!("request body exceeds {} bytes", self.max_body_bytes),
        )
    }

    /// Headers as the integration sees them: hop-by-hop and proxy-internal headers removed,
    /// names canonicalised for HTTP/1, `Host` from `:authority`, and the trace and forwarding
    /// headers API Gateway adds.
    fn event_headers(&self, head: &RequestHead) -> Vec<(String, String)> {
        let http1 = head.protocol.starts_with("HTTP/1");
        let mut out: Vec<(String, String)> = Vec::with_capacity(head.headers.len() + 3);
        for (name, value) in &head.headers {
            let lower = name.to_ascii_lowercase();
            if lower == ":authority" {
                out.push(("Host".into(), value.clone()));
                continue;
            }
            if lower.starts_with(':')
                || lower.starts_with("x-envoy-")
                || DROPPED_REQUEST_HEADERS.contains(&lower.as_str())
                || (lower == "authorization" && value.starts_with("AWS4-HMAC-SHA256"))
            {
                continue;
            }
            out.push((if http1 { title_case(name) } else { lower }, value.clone()));
        }
        let name = |n: &str| {
            if http1 {
                n.to_string()
            } else {
                n.to_ascii_lowercase()
            }
        };
        if !out
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("x-amzn-trace-id"))
        {
            out.push((
                name("X-Amzn-Trace-Id"),
                trace_id(&head.request_id, head.now_ms),
            ));
        }
        // API Gateway appends the caller to X-Forwarded-For and sets the port and scheme the
        // client connected with, replacing whatever the client sent for those two.
        let prior = out
            .iter()
            .position(|(k, _)| k.eq_ignore_ascii_case("x-forwarded-for"))
            .map(|i| out.remove(i).1);
        let forwarded_for = match prior {
            Some(prior) => format!("{prior}, {}", head.source_ip),
            None => head.source_ip.clone(),
        };
        out.retain(|(k, _)| {
            !k.eq_ignore_ascii_case("x-forwarded-port")
                && !k.eq_ignore_ascii_case("x-forwarded-proto")
        });
        out.push((name("X-Forwarded-For"), forwarded_for));
        if let Some(port) = head.local_port {
            out.push((name("X-Forwarded-Port"), port.to_string()));
        }
        let scheme = header(&head.headers, ":scheme").unwrap_or("http");
        out.push((name("X-Forwarded-Proto"), scheme.to_string()));
        out
    }

    /// The values an event or a template environment is built from.
    fn facts(&self, head: &RequestHead) -> Facts {
        let raw_query = head
            .path
            .split_once('?')
            .map(|(_, q)| q)
            .unwrap_or_default();
        Facts {
            headers: self.event_headers(head),
            query: query::parse(raw_query),
            host: header(&head.headers, ":authority")
                .or_else(|| header(&head.headers, "host"))
                .unwrap_or_default()
                .to_string(),
            request_time: Utc::from_epoch_ms(head.now_ms).clf(),
            extended: extended_request_id(&head.request_id),
        }
    }

    /// `requestContext` of the event, also the base of `$context`.
    fn request_context<'a>(
        &'a self,
        head: &'a RequestHead,
        known: Known<'a>,
        f: &'a Facts,
    ) -> RequestContext<'a> {
        let api_key_id = known.api_key_id;
        RequestContext {
            account_id: &self.api.account_id,
            api_id: &self.api.id,
            deployment_id: &self.deployment_id,
            domain_name: &f.host,
            domain_prefix: f.host.split(['.', ':']).next().unwrap_or_default(),
            extended_request_id: &f.extended,
            http_method: &head.method,
            identity: Identity {
                api_key: api_key_id.and(header(&head.headers, "x-api-key")),
                api_key_id,
                ..Identity::anonymous(&head.source_ip, header(&head.headers, "user-agent"))
            },
            path: head.path.split('?').next().unwrap_or_default(),
            protocol: &head.protocol,
            request_id: &head.request_id,
            request_time: &f.request_time,
            request_time_epoch: head.now_ms,
            resource_id: known.route.map_or("", |r| r.resource_id.as_str()),
            resource_path: known.route.map_or("", |r| r.resource.as_str()),
            stage: &self.stage,
            authorizer: known.auth.map(|a| AuthorizerView {
                principal_id: &a.decision.principal_id,
                context: &a.decision.context,
                latency_ms: a.latency_ms,
            }),
        }
    }

    /// The request as an event describes it (proxy events, REQUEST authorizer events).
    fn request_fields<'a>(
        &'a self,
        head: &'a RequestHead,
        routed: &'a Routed,
        route: &'a Route,
        f: &'a Facts,
        request_context: RequestContext<'a>,
    ) -> RequestFields<'a> {
        RequestFields {
            resource: &route.resource,
            path: &routed.event_path,
            http_method: &head.method,
            headers: SingleValues(&f.headers),
            multi_value_headers: MultiValues(&f.headers),
            query_string_parameters: SingleValues(&f.query),
            multi_value_query_string_parameters: MultiValues(&f.query),
            path_parameters: SingleValues(&routed.params),
            stage_variables: StageVariables(&self.stage_variables),
            request_context,
        }
    }

    /// What templates see of a request.
    fn scope<'a>(
        &'a self,
        head: &'a RequestHead,
        known: Known<'a>,
        params: &'a [(String, String)],
        f: &'a Facts,
        body: &'a str,
    ) -> Scope<'a> {
        Scope {
            path: params,
            query: &f.query,
            headers: &f.headers,
            body,
            context: mapping::context_value(&self.request_context(head, known, f)),
            stage_variables: self.stage_variables_value(),
        }
    }

    /// Answers a mock integration (on the request headers: mocks see no body).
    fn mock_answer(&self, head: &RequestHead, routed: &Routed, mock: &Mock) -> Outcome {
        let f = self.facts(head);
        let scope = self.scope(head, routed.known(self), &routed.params, &f, "");
        let (env, sources) = (scope.env(""), scope.sources(&[], ""));
        let content_type = header(&head.headers, "content-type");
        match mock.respond(
            &env,
            &sources,
            content_type,
            header(&head.headers, "accept"),
        ) {
            Ok(reply) => Outcome::ok(self.finalize(reply, head, false)),
            Err(MockFailure::UnsupportedMediaType) => self.fail(
                head,
                GatewayError::UnsupportedMediaType,
                "passthroughBehavior refuses the request's Content-Type",
            ),
            Err(MockFailure::Map(MapFailure::InvalidBody(m))) => {
                self.fail(head, GatewayError::InvalidRequestBody, &m)
            }
            Err(MockFailure::Map(MapFailure::Failed(m))) => {
                self.fail(head, GatewayError::MockFailed, &m)
            }
        }
    }

    /// Step 2, with the whole body: build the event (or render the request template, or
    /// forward the request to a function URL) and the call, signed when this filter signs.
    pub fn invoke(
        &self,
        head: &RequestHead,
        routed: &Routed,
        body: &[u8],
    ) -> Result<LambdaCall, Outcome> {
        let mut call = self.build_call(head, routed, body)?;
        self.sign(&mut call, head.now_ms);
        Ok(call)
    }

    fn build_call(
        &self,
        head: &RequestHead,
        routed: &Routed,
        body: &[u8],
    ) -> Result<LambdaCall, Outcome> {
        let Some(route) = self.routes.get(routed.route) else {
            return Err(self.fail(
                head,
                GatewayError::IntegrationNotSupported,
                "route table out of step",
            ));
        };
        let (target, timeout_ms, aws) = match &route.action {
            RouteAction::LambdaProxy { target, timeout_ms } => (target, *timeout_ms, None),
            RouteAction::LambdaAws {
                target,
                timeout_ms,
                mapping,
            } => (target, *timeout_ms, Some(mapping)),
            RouteAction::Unsupported { kind } => {
                let reason = format!(
                    "integration type `{kind}` of {} is not served yet",
                    route.resource
                );
                return Err(self.fail(head, GatewayError::IntegrationNotSupported, &reason));
            }
            RouteAction::Mock(_) => {
                return Err(self.fail(
                    head,
                    GatewayError::IntegrationNotSupported,
                    "a mock integration is answered on the request headers",
                ));
            }
        };
        if body.len() as u64 > self.max_body_bytes {
            return Err(self.request_too_large(head));
        }
        if let TargetKind::FunctionUrl { prefix } = &target.kind {
            let raw_query = head.path.split_once('?').map_or("", |(_, q)| q);
            return Ok(function_url::forward(
                target,
                prefix,
                (&head.method, &routed.event_path, raw_query),
                &self.event_headers(head),
                body,
                timeout_ms,
            ));
        }
        let f = self.facts(head);
        let request_context = self.request_context(head, routed.known(self), &f);
        let content_type = header(&head.headers, "content-type");
        if let Some(mapping) = aws {
            let text = String::from_utf8_lossy(body);
            let scope = self.scope(head, routed.known(self), &routed.params, &f, &text);
            let (env, sources) = (scope.env(&text), scope.sources(&[], ""));
            return match mapping.request(&env, &sources, content_type) {
                Ok((payload, extra)) => {
                    let mut call =
                        LambdaCall::sync(target, self.user_agent.clone(), payload, timeout_ms);
                    for (name, value) in extra {
                        call.headers.retain(|(k, _)| !k.eq_ignore_ascii_case(&name));
                        call.headers.push((name.to_ascii_lowercase(), value));
                    }
                    Ok(call)
                }
                Err(RequestFailure::UnsupportedMediaType) => Err(self.fail(
                    head,
                    GatewayError::UnsupportedMediaType,
                    &format!(
                        "passthroughBehavior refuses Content-Type {}",
                        content_type.unwrap_or("(none)")
                    ),
                )),
                Err(RequestFailure::Map(MapFailure::InvalidBody(m))) => {
                    Err(self.fail(head, GatewayError::InvalidRequestBody, &m))
                }
                Err(RequestFailure::Map(MapFailure::Failed(m))) => {
                    Err(self.fail(head, GatewayError::MappingFailed, &m))
                }
            };
        }
        let binary = content_type
            .map(first_media_type)
            .is_some_and(|ct| is_binary(&ct, &self.binary_media_types));
        let (body_text, is_base64) = match std::str::from_utf8(body) {
            _ if body.is_empty() => (None, false),
            Ok(text) if !binary => (Some(std::borrow::Cow::Borrowed(text)), false),
            _ => (
                Some(std::borrow::Cow::Owned(
                    base64::engine::general_purpose::STANDARD.encode(body),
                )),
                true,
            ),
        };
        if target.kind == TargetKind::InvokeV2 {
            let raw_query = head.path.split_once('?').map_or("", |(_, q)| q);
            let payload = function_url::event(&function_url::EventInput {
                method: &head.method,
                path: &routed.event_path,
                raw_query,
                query: &f.query,
                headers: &head.headers,
                host: &f.host,
                protocol: &head.protocol,
                source_ip: &head.source_ip,
                account_id: &self.api.account_id,
                api_id: &self.api.id,
                request_id: &head.request_id,
                request_time: &f.request_time,
                now_ms: head.now_ms,
                body: body_text.as_deref(),
                is_base64,
            });
            return Ok(LambdaCall::sync(
                target,
                self.user_agent.clone(),
                payload,
                timeout_ms,
            ));
        }
        let event = ProxyEvent {
            request: self.request_fields(head, routed, route, &f, request_context),
            body: body_text.as_deref(),
            is_base64_encoded: is_base64,
        };
        Ok(LambdaCall::sync(
            target,
            self.user_agent.clone(),
            event.to_vec(),
            timeout_ms,
        ))
    }

    /// Step 3: map the Invoke answer to the client reply, and say what the cache may keep.
    pub fn finish(&self, head: &RequestHead, routed: &Routed, resp: &InvokeResponse) -> Outcome {
        let mut outcome = match self.map_invoke(head, routed, resp) {
            Ok(reply) => {
                // The answer is kept as mapped: per-request headers and CORS are added
                // afresh to every reply made from it.
                let store = (routed.cache.is_some() && cache::store::cacheable(&reply))
                    .then(|| Box::new(reply.clone()));
                Outcome {
                    store,
                    ..Outcome::ok(self.finalize(reply, head, true))
                }
            }
            Err(outcome) => outcome,
        };
        outcome
            .reply
            .headers
            .extend(routed.limit_headers.iter().cloned());
        if let Some(plan) = &routed.cache {
            let what = match plan.mode {
                Mode::Lookup => "MISS",
                Mode::Refresh => "REFRESH",
            };
            self.annotate_cached(&mut outcome.reply, plan, what);
        }
        outcome
    }

    /// The mapped reply (before [`Gateway::finalize`]), or the failure.
    fn map_invoke(
        &self,
        head: &RequestHead,
        routed: &Routed,
        resp: &InvokeResponse,
    ) -> Result<Reply, Outcome> {
        const INVOKE: TargetKind = TargetKind::Invoke;
        let (aws, kind) = match self.routes.get(routed.route).map(|r| (r, &r.action)) {
            Some((route, RouteAction::LambdaAws { mapping, .. })) => {
                (Some((route, mapping)), &INVOKE)
            }
            Some((_, RouteAction::LambdaProxy { target, .. })) => (None, &target.kind),
            _ => (None, &INVOKE),
        };
        if let TargetKind::FunctionUrl { .. } = kind {
            return match function_url::classify(resp) {
                UrlOutcome::Answer => Ok(function_url::passthrough(resp)),
                UrlOutcome::Rejected { status, error_type } => Err(self.fail(
                    head,
                    GatewayError::InvokeRejected,
                    &format!(
                        "the function URL refused the call with status {status}: {error_type}"
                    ),
                )),
                UrlOutcome::Timeout => Err(self.fail(
                    head,
                    GatewayError::IntegrationTimeout,
                    "the function URL did not answer within the integration timeout",
                )),
                UrlOutcome::Unreachable(why) => Err(self.fail(
                    head,
                    GatewayError::IntegrationUnreachable,
                    &format!("function URL unreachable: {why}"),
                )),
            };
        }
        let (payload, function_error) = match classify(resp) {
            InvokeOutcome::Payload(p) => (p, None),
            InvokeOutcome::FunctionError(msg) if aws.is_some() => (resp.body.as_slice(), Some(msg)),
            InvokeOutcome::FunctionError(msg) => {
                return Err(self.fail(
                    head,
                    GatewayError::FunctionError,
                    &format!("Lambda execution failed due to customer function error: {msg}"),
                ));
            }
            InvokeOutcome::Rejected { status, error_type } => {
                return Err(self.fail(
                    head,
                    GatewayError::InvokeRejected,
                    &format!("Lambda rejected the invocation with status {status}: {error_type}"),
                ));
            }
            InvokeOutcome::Timeout => {
                return Err(self.fail(
                    head,
                    GatewayError::IntegrationTimeout,
                    "Lambda did not answer within the integration timeout",
                ));
            }
            InvokeOutcome::Unreachable(why) => {
                return Err(self.fail(
                    head,
                    GatewayError::IntegrationUnreachable,
                    &format!("Lambda endpoint unreachable: {why}"),
                ));
            }
        };
        let Some((_, mapping)) = aws else {
            if *kind == TargetKind::InvokeV2 {
                return function_url::infer_response(payload)
                    .map_err(|e| self.fail(head, e.error, &e.reason));
            }
            return response::map(
                payload,
                &self.binary_media_types,
                header(&head.headers, "accept"),
            )
            .map_err(|e| self.fail(head, e.error, &e.reason));
        };
        let f = self.facts(head);
        let scope = self.scope(head, routed.known(self), &routed.params, &f, "");
        let text = String::from_utf8_lossy(payload);
        let (env, sources) = (scope.env(&text), scope.sources(&resp.headers, &text));
        mapping
            .response(
                function_error.as_deref(),
                &env,
                &sources,
                header(&head.headers, "accept"),
            )
            .map_err(|e| match e {
                MapFailure::InvalidBody(m) | MapFailure::Failed(m) => {
                    self.fail(head, GatewayError::MappingFailed, &m)
                }
            })
    }
}

mod authorize;
#[cfg(test)]
mod authorize_tests;
mod pipeline;
#[cfg(test)]
mod tests;

pub use authorize::flush_cell as authorizer_flush_cell;
pub use pipeline::{Call, CallKind, Event, Exchange, Host, Stage, Step, STAGES};
