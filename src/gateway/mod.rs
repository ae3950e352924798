//! One compiled API stage and what it does with each request.
//!
//! Owns: [`Gateway`] (the compiled stage: routes, each with its integration, cache rule
//! and authorizer; keys, plans, CORS, gateway responses, upstreams), the values that cross
//! the pipeline ([`RequestHead`], [`Routed`], [`Outcome`]), and the module tree:
//! `compile` (configuration to gateway), `pipeline` (the stage list and the steps the glue
//! carries out), `stages` and `authorize` (the stages before the integration),
//! `integration` (the integration request and response), `context` (`$context`, events,
//! ids) and `reply` (gateway responses and per-request headers). Every reply leaves with
//! `x-amzn-RequestId` and `x-amz-apigw-id`; every failure comes with one log line. Must not:
//! call the host, read clocks or generate randomness: the glue passes the request id and
//! `now` in.

use std::collections::BTreeMap;
use std::rc::Rc;

use crate::apikeys::ApiKeys;
use crate::cache::{CachePlan, RouteCache, StageCache};
use crate::config::Api;
use crate::cors::CorsPolicy;
use crate::error::{ConfigError, GatewayError};
use crate::gateway_responses::GatewayResponses;
use crate::http::UpstreamCall;
use crate::http::{Header, Reply};
use crate::http_integration::HttpIntegration;
use crate::lambda::invoke::InvokeTarget;
use crate::lambda::upstream::Upstreams;
use crate::mapping::aws::AwsMapping;
use crate::mock::Mock;
use crate::router::Router;
use crate::sigv4::Signer;
use crate::usage::{UsageEvent, UsagePlans};

/// One Envoy cluster of HTTP integrations: an HTTP backend, or an AWS service endpoint
/// (with how its calls are signed).
#[derive(Debug, Clone, Copy)]
pub struct Backend<'a> {
    pub cluster: &'a str,
    pub endpoint: &'a crate::lambda::invoke::Endpoint,
    pub signing: Option<&'a crate::http_integration::ServiceSigning>,
}

/// What a caller needs to call one method (for generated documentation and SDKs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MethodAuth {
    pub resource: String,
    /// `GET`, `POST`, ... or `ANY`.
    pub method: String,
    pub api_key: bool,
    /// The Lambda authorizer guarding it: its name and the header or identity sources it
    /// reads (`method.request.header.Authorization`).
    pub authorizer: Option<(String, Vec<String>)>,
    /// The Cognito or JWT authorizer guarding it, and the scopes it requires.
    pub token: Option<(String, Vec<String>)>,
    /// Callers sign with SigV4 (`AWS_IAM`).
    pub iam: bool,
}

/// An identity source as the export writes it.
fn source_text(s: &crate::authorizer::Source) -> String {
    use crate::authorizer::Source;
    match s {
        Source::Header(n) => format!("method.request.header.{n}"),
        Source::Query(n) => format!("method.request.querystring.{n}"),
        Source::StageVariable(n) => format!("stageVariables.{n}"),
        Source::Context(n) => format!("context.{n}"),
    }
}

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
    /// An `http_proxy` or `http` integration.
    Http(Box<HttpIntegration>),
    Mock(Box<Mock>),
    /// Every call is answered 500 with this reason in the log: an integration type not
    /// served yet, or one API Gateway also fails at every call.
    Refused {
        reason: String,
    },
}

#[derive(Debug)]
struct Route {
    resource: String,
    /// `GET`, `POST`, ... or `ANY`.
    method: &'static str,
    resource_id: String,
    action: RouteAction,
    cache: Option<RouteCache>,
    /// Index into [`Gateway::authorizers`] of the authorizer guarding the method.
    authorizer: Option<usize>,
    /// Index into [`Gateway::token_authorizers`] of the Cognito or JWT authorizer guarding
    /// the method, and the method's scopes.
    token_auth: Option<(usize, Vec<String>)>,
    /// The method requires a SigV4 signature (`AWS_IAM`).
    iam: bool,
    /// What the method's request validator checks.
    validation: Option<crate::validation::Check>,
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
    /// Largest answer accepted from an HTTP backend.
    max_response_bytes: u64,
    /// Whether integration requests may go out in place of the client's request (`None`:
    /// as the host prefers, `Host::forwarding`).
    forwarding: Option<crate::config::Forwarding>,
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
    /// The API's resource policy, and `aws:SourceVpc` / `aws:SourceVpce` for its conditions.
    resource_policy: Option<crate::resource_policy::Policy>,
    policy_network: (Option<String>, Option<String>),
    /// Envoy takes the caller's address from `X-Forwarded-For` (trusted proxies in front).
    xff_trusted: bool,
    /// The stage's access log format, compiled.
    access_log: Option<crate::access_log::AccessLog>,
    /// The per-request state name its lines are handed to the host under (one per access
    /// log file of the deployment).
    access_log_state: String,
    /// Log each request's execution in full (`dataTraceEnabled`).
    data_trace: bool,
    /// A filter in front writes each request's connection facts into
    /// [`crate::connection::HEADER`].
    connection_header: bool,
    /// Every request model, compiled.
    models: crate::validation::Models,
    /// The listener requires client certificates: Envoy's `x-forwarded-client-cert` holds the
    /// one each request came with.
    mtls: bool,
    /// Callers of IAM-authorised methods.
    iam: crate::iam::Callers,
    /// Cognito user pool and JWT authorizers.
    token_authorizers: Vec<crate::jwt::Authorizer>,
    /// Where their keys come from (the glue fetches them on the key ring's word).
    jwks: Vec<crate::jwt::Source>,
    /// API keys come from the authorizer's `usageIdentifierKey`, not `x-api-key`.
    api_key_from_authorizer: bool,
    /// Which side of the stage's canary release this gateway serves.
    canary: crate::config::CanaryRole,
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
    /// The caller's TLS client certificate (mutual TLS); set by the `ClientCert` stage.
    pub client_cert: Option<Rc<crate::client_cert::ClientCert>>,
    /// More than headers follow (a body, perhaps empty, or trailers): the host holds a body
    /// the integration request's body can replace when the request is forwarded.
    pub body_follows: bool,
}

/// What the method's authorizer established for this request.
#[derive(Debug, Clone)]
pub enum Authorized {
    /// A Lambda authorizer's decision, and how long the call took (0 for a cached result).
    Lambda {
        decision: Rc<crate::authorizer::Decision>,
        latency_ms: u64,
    },
    /// A Cognito or JWT authorizer's verified token.
    Token(Rc<crate::jwt::Verified>),
}

/// What the pipeline knows of a request when it builds `$context` or an event.
#[derive(Clone, Copy, Default)]
struct Known<'a> {
    route: Option<&'a Route>,
    api_key_id: Option<&'a str>,
    auth: Option<&'a Authorized>,
    /// The IAM caller who signed the request.
    caller: Option<&'a crate::iam::Caller>,
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
    /// Index of the IAM caller who signed the request (`AWS_IAM` methods).
    caller: Option<usize>,
    /// `$context` as the request template left it (templates may write to it), for the
    /// response template to read.
    template_context: Option<crate::vtl::Value>,
}

impl Routed {
    fn known<'a>(&'a self, g: &'a Gateway) -> Known<'a> {
        Known {
            route: g.routes.get(self.route),
            api_key_id: self.api_key_id.as_deref(),
            auth: self.auth.as_ref(),
            caller: self.caller.and_then(|i| g.iam.get(i)),
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

impl Gateway {
    /// The Lambda clusters and who signs calls to them.
    pub fn upstreams(&self) -> &Upstreams {
        &self.upstreams
    }

    /// Signs a call in place when this filter signs its cluster.
    fn sign(&self, call: &mut UpstreamCall, now_ms: u64) {
        if let Some(signer) = self.signers.get(&call.cluster) {
            signer.sign(&mut call.headers, &call.body, now_ms);
        }
    }

    /// Largest request body accepted.
    pub fn max_body_bytes(&self) -> u64 {
        self.max_body_bytes
    }

    /// The largest upstream answer a forwarded request's reply is made from.
    pub fn max_response_bytes(&self) -> u64 {
        self.max_response_bytes
    }

    /// Ids of the usage plans, in the order [`UsageEvent::plan`] refers to them.
    /// The stage's API keys requirements, usage plans and throttles, compiled.
    pub fn usage_plans(&self) -> &UsagePlans {
        &self.usage
    }

    /// The per-request state name of this stage's access log lines.
    pub fn access_log_state(&self) -> &str {
        &self.access_log_state
    }

    /// Names the state its access log lines go under (see
    /// [`crate::access_log::state_name`]).
    pub fn set_access_log_state(&mut self, name: String) {
        self.access_log_state = name;
    }

    /// How many methods the stage serves.
    pub fn method_count(&self) -> usize {
        self.routes.len()
    }

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
                RouteAction::Http(h) => h.timeout_ms,
                RouteAction::Mock(_) | RouteAction::Refused { .. } => 0,
            })
            .max()
            .unwrap_or(0)
    }

    /// Whether a request's connection facts are read from [`crate::connection::HEADER`]
    /// (a filter in front overwrites it) rather than from host properties.
    pub fn trusts_connection_header(&self) -> bool {
        self.connection_header
    }

    /// What callers need for each method, in the export's order.
    pub fn method_auth(&self) -> Vec<MethodAuth> {
        self.routes
            .iter()
            .enumerate()
            .map(|(i, r)| MethodAuth {
                resource: r.resource.clone(),
                method: r.method.to_string(),
                api_key: self.usage.key_required(i),
                authorizer: r.authorizer.and_then(|a| self.authorizers.get(a)).map(|a| {
                    let sources = a.spec.sources.iter().map(source_text).collect();
                    (a.spec.name.clone(), sources)
                }),
                token: r.token_auth.as_ref().and_then(|(t, scopes)| {
                    let name = self.token_authorizers.get(*t)?.name.clone();
                    Some((name, scopes.clone()))
                }),
                iam: r.iam,
            })
            .collect()
    }

    /// Whether each request's execution is logged in full (`dataTraceEnabled`).
    pub fn traces_data(&self) -> bool {
        self.data_trace
    }

    /// The JWKS documents the gateway's Cognito and JWT authorizers need.
    pub fn jwks_sources(&self) -> &[crate::jwt::Source] {
        &self.jwks
    }

    /// Names of the environment variables the VM must be given (IAM callers' secrets).
    pub fn iam_env_keys(&self) -> Vec<String> {
        self.iam.env_keys()
    }

    /// The HTTP backends the gateway's `http` and `http_proxy` integrations call, one per
    /// Envoy cluster.
    pub fn http_backends(&self) -> Vec<Backend<'_>> {
        let mut out: Vec<Backend> = Vec::new();
        for r in &self.routes {
            if let RouteAction::Http(h) = &r.action {
                if !out.iter().any(|b| b.cluster == h.target.cluster) {
                    out.push(Backend {
                        cluster: &h.target.cluster,
                        endpoint: &h.target.endpoint,
                        signing: h.signing.as_ref(),
                    });
                }
            }
        }
        out
    }

    /// Every Envoy cluster this gateway invokes through.
    pub fn clusters(&self) -> Vec<&str> {
        let mut out: Vec<&str> =
            self.routes
                .iter()
                .filter_map(|r| match &r.action {
                    RouteAction::LambdaProxy { target, .. }
                    | RouteAction::LambdaAws { target, .. } => Some(target.cluster.as_str()),
                    RouteAction::Http(h) => Some(h.target.cluster.as_str()),
                    RouteAction::Mock(_) | RouteAction::Refused { .. } => None,
                })
                .collect();
        out.sort_unstable();
        out.dedup();
        out
    }
}

mod access;
mod authorize;
#[cfg(test)]
mod authorize_tests;
mod backend;
#[cfg(test)]
mod backend_tests;
#[cfg(test)]
mod client_cert_tests;
mod compile;
mod context;
mod iam_stage;
mod integration;
mod pipeline;
mod policy_stage;
#[cfg(test)]
mod policy_stage_tests;
mod reply;
mod stages;
#[cfg(test)]
mod tests;
mod token_auth;
#[cfg(test)]
mod token_auth_tests;
mod usage_stage;
#[cfg(test)]
mod validation_tests;

pub use authorize::flush_cell as authorizer_flush_cell;
pub use context::{extended_request_id, trace_id};
pub use pipeline::{Call, CallKind, Event, Exchange, Host, Stage, Step, STAGES};
pub use token_auth::{TokenCache, TOKEN_CACHE_BYTES};
