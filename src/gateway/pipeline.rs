//! The request path as an ordered list of stages, and what the host glue is asked to do.
//!
//! Owns: the stage list ([`STAGES`], in API Gateway's order), the per-request state
//! ([`Exchange`]) that carries what each stage learnt to the next, and the few things a
//! stage can ask of the glue ([`Step`]): answer now, wait for the body, or make an outbound
//! call of a named kind and resume with its answer. Also what the pipeline reports for
//! metrics ([`Event`]). Each stage is a function on [`Gateway`]; this module only runs them
//! in order and routes call answers back to the stage that asked. Must not: call the host,
//! read clocks (the glue passes `now` in [`Host`]) or decide what a host failure means
//! beyond handing it to the waiting stage.

use std::cell::RefCell;
use std::rc::Rc;

use super::{Authorized, Gateway, Outcome, RequestHead, Routed, Start};
use crate::authorizer::cache::AuthCache;
use crate::cache::store::{Stamp, Stored};
use crate::cache::{CacheEvent, Found, Mode, ResponseCache};
use crate::error::GatewayError;
use crate::http::{UpstreamAnswer, UpstreamCall};
use crate::shared::SharedCells;
use crate::usage::UsageEvent;

/// The stages, in the order they run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// The caller's TLS client certificate, when the listener requires one.
    ClientCert,
    /// A CORS preflight the deployment's policy answers.
    Preflight,
    /// Stage, resource and method; the declared body size.
    Route,
    /// The SigV4 signature of an IAM-authorised method.
    Iam,
    /// The API's resource policy (with the IAM caller's identity policy).
    ResourcePolicy,
    /// The method's Lambda authorizer.
    Authorizer,
    /// The method's Cognito user pool or JWT authorizer.
    Token,
    /// API key, usage plan, throttles and quota.
    ApiKeyUsage,
    /// The method's request validator: required parameters, then the body's model.
    Validation,
    /// The stage cache: plan, invalidate, look up.
    Cache,
    /// The integration request, the call, and the integration and method responses.
    Integration,
}

/// API Gateway's order.
pub const STAGES: [Stage; 11] = [
    Stage::ClientCert,
    Stage::Preflight,
    Stage::Route,
    Stage::Iam,
    Stage::ResourcePolicy,
    Stage::Authorizer,
    Stage::Token,
    Stage::ApiKeyUsage,
    Stage::Validation,
    Stage::Cache,
    Stage::Integration,
];

/// An outbound call's purpose, so its answer goes back to the stage that made it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallKind {
    Authorizer,
    Integration,
    /// A check with the fleet's rate-limit service: a gRPC call whose `request.body` is
    /// the `RateLimitRequest` (see [`crate::usage::rls`]); its answer comes back with status
    /// 200 and the `RateLimitResponse` as the body, or without a status when the call failed.
    RateLimit,
}

/// An outbound HTTP call for the glue to make.
#[derive(Debug, Clone)]
pub struct Call {
    pub kind: CallKind,
    pub request: UpstreamCall,
    /// Send it in place of the client's request (through the host's router), replacing the
    /// request's headers and body, and hand the answer over before the client sees it;
    /// otherwise dispatch it as a call of its own.
    pub forward: bool,
}

/// What the glue does next.
#[derive(Debug)]
pub enum Step {
    /// Send this reply; the request is finished.
    Reply(Box<Outcome>),
    /// Buffer the whole request body, then hand it over with [`Gateway::body`].
    NeedBody,
    /// Make this call, then hand its answer over with [`Gateway::resume`].
    Call(Call),
}

/// Something worth counting, reported by the stages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Usage(UsageEvent),
    Cache(CacheEvent),
    CacheStored(Stored),
    /// Bytes a stale cache entry freed.
    CacheFreed(usize),
    /// An integration call finished: its round trip and whether it failed.
    Integration {
        latency_ms: u64,
        failed: bool,
    },
    /// An authorizer ran: `None` latency when its result came from the cache.
    Authorizer {
        latency_ms: Option<u64>,
        failed: bool,
    },
    /// A Cognito or JWT authorizer checked a token: from this worker's cache of verified
    /// tokens or verified afresh, and refused or not.
    Token {
        cached: bool,
        refused: bool,
    },
    /// A line to log at `warn` although the request goes on.
    Notice(String),
    /// A call to the fleet's rate-limit service finished.
    RateLimit {
        latency_ms: u64,
        failed: bool,
    },
}

/// What the glue lends the pipeline for one step: shared data, this worker's stores, and
/// the time.
pub struct Host<'a> {
    pub cells: &'a dyn SharedCells,
    pub store: Option<&'a RefCell<ResponseCache>>,
    pub auth_cache: Option<&'a RefCell<AuthCache>>,
    /// This worker's signing keys and verified tokens (Cognito and JWT authorizers).
    pub keys: Option<&'a RefCell<crate::jwt::ring::KeyRing>>,
    pub tokens: Option<&'a RefCell<super::TokenCache>>,
    /// This worker's mutual TLS certificates already read.
    pub certs: Option<&'a RefCell<crate::client_cert::CertCache>>,
    pub now_ms: u64,
    /// How integration requests go out when the deployment does not say (the host's
    /// cheaper way, [`crate::config::Forwarding::default_for`]).
    pub forwarding: crate::config::Forwarding,
}

impl<'a> Host<'a> {
    /// Shared data and the time, without a worker's stores (tools and tests that run one
    /// request: nothing cached, no keys fetched).
    pub fn bare(cells: &'a dyn SharedCells, now_ms: u64) -> Host<'a> {
        Host {
            cells,
            store: None,
            auth_cache: None,
            keys: None,
            tokens: None,
            certs: None,
            now_ms,
            forwarding: crate::config::Forwarding::default_for(false),
        }
    }
}

/// The call a request waits for.
#[derive(Debug, Clone)]
pub(super) struct Waiting {
    pub(super) kind: CallKind,
    pub(super) sent_ms: u64,
    /// For an authorizer call: where to cache its result.
    pub(super) auth_key: Option<String>,
}

/// One request in flight: the request and what the stages found so far.
#[derive(Debug, Clone)]
pub struct Exchange {
    pub head: RequestHead,
    /// Index into [`STAGES`] of the next stage to run.
    next: usize,
    pub(super) routed: Option<Routed>,
    pub(super) body: Option<Vec<u8>>,
    pub(super) waiting: Option<Waiting>,
    /// The cache stamp to store a fresh answer under, once the cache was consulted.
    pub(super) store_under: Option<Stamp>,
    /// A decision the authorizer stage made but the request did not get past (a denial),
    /// kept for the `$context` of the gateway response.
    pub(super) denied_by: Option<Authorized>,
    /// A check with the fleet's rate-limit service in flight.
    pub(super) fleet: Option<super::usage_stage::FleetWait>,
    events: Vec<Event>,
    /// What the access log reports of the calls: integration latency and status,
    /// authorizer latency.
    pub(super) timings: Timings,
}

/// Latencies and statuses of a request's calls, kept for its access log line.
#[derive(Debug, Clone, Default)]
pub(super) struct Timings {
    pub(super) integration_latency_ms: Option<u64>,
    pub(super) integration_status: Option<u16>,
    pub(super) authorizer_latency_ms: Option<u64>,
    pub(super) authorizer_status: Option<u16>,
}

impl Exchange {
    /// Events since the last call, for metrics.
    pub fn take_events(&mut self) -> Vec<Event> {
        std::mem::take(&mut self.events)
    }

    pub(super) fn event(&mut self, e: Event) {
        if let Event::Authorizer {
            latency_ms: Some(ms),
            ..
        } = e
        {
            self.timings.authorizer_latency_ms = Some(ms);
        }
        self.events.push(e);
    }

    /// Asks the glue for a call (sent in place of the client's request when `forward`),
    /// remembering what the request now waits for.
    pub(super) fn call(
        &mut self,
        kind: CallKind,
        request: UpstreamCall,
        now_ms: u64,
        auth_key: Option<String>,
        forward: bool,
    ) -> Step {
        self.waiting = Some(Waiting {
            kind,
            sent_ms: now_ms,
            auth_key,
        });
        Step::Call(Call {
            kind,
            request,
            forward,
        })
    }

    /// Keeps a body that arrived while a call was in flight, for the stage that needs it.
    pub fn stash_body(&mut self, body: Vec<u8>) {
        self.body.get_or_insert(body);
    }

    /// How long the last call of `kind` took, once its answer was handed over.
    pub fn latency_of(&self, kind: CallKind) -> Option<u64> {
        match kind {
            CallKind::Authorizer => self.timings.authorizer_latency_ms,
            CallKind::Integration => self.timings.integration_latency_ms,
            CallKind::RateLimit => None,
        }
    }

    /// The request body, once it was handed over (empty before).
    pub fn body_bytes(&self) -> &[u8] {
        self.body.as_deref().unwrap_or_default()
    }

    /// The call the request waits for, if any.
    pub fn waiting_for(&self) -> Option<CallKind> {
        self.waiting.as_ref().map(|w| w.kind)
    }
}

impl Gateway {
    /// A new request, before any stage has run.
    pub fn begin(&self, head: RequestHead) -> Exchange {
        Exchange {
            head,
            next: 0,
            routed: None,
            body: None,
            waiting: None,
            store_under: None,
            denied_by: None,
            fleet: None,
            events: Vec::new(),
            timings: Timings::default(),
        }
    }

    /// Runs stages until one needs something from the glue or the request is answered.
    pub fn advance(&self, ex: &mut Exchange, host: &Host) -> Step {
        while let Some(stage) = STAGES.get(ex.next).copied() {
            if let Some(step) = self.run(stage, ex, host) {
                return self.settle(ex, step);
            }
            ex.next += 1;
        }
        // Every request is answered by the integration stage; reaching the end is a bug in
        // the stage list, answered like any internal failure.
        let outcome = self.fail(
            &ex.head,
            GatewayError::IntegrationNotSupported,
            "the pipeline ended without an answer",
        );
        self.settle(ex, Step::Reply(Box::new(outcome)))
    }

    /// Hands over the whole request body and goes on.
    pub fn body(&self, ex: &mut Exchange, body: Vec<u8>, host: &Host) -> Step {
        ex.body = Some(body);
        self.advance(ex, host)
    }

    /// Hands over the answer to the call the request waits for and goes on.
    pub fn resume(&self, ex: &mut Exchange, answer: &UpstreamAnswer, host: &Host) -> Step {
        let Some(waiting) = ex.waiting.take() else {
            let outcome = self.fail(
                &ex.head,
                GatewayError::IntegrationNotSupported,
                "a call answer arrived for a request that waits for none",
            );
            return self.settle(ex, Step::Reply(Box::new(outcome)));
        };
        match waiting.kind {
            CallKind::Authorizer => ex.timings.authorizer_status = answer.status,
            CallKind::Integration => ex.timings.integration_status = answer.status,
            CallKind::RateLimit => {}
        }
        let step = match waiting.kind {
            CallKind::Authorizer => self.authorizer_answer(ex, &waiting, answer, host),
            CallKind::Integration => Some(self.integration_answer(ex, &waiting, answer, host)),
            CallKind::RateLimit => self.rate_limit_answer(ex, &waiting, answer, host),
        };
        match step {
            Some(step) => self.settle(ex, step),
            None => {
                ex.next += 1;
                self.advance(ex, host)
            }
        }
    }

    /// The glue could not make the call (`why` says what the host answered): it is
    /// answered as a call that failed to connect.
    pub fn call_failed(&self, ex: &mut Exchange, why: &str, host: &Host) -> Step {
        let step = self.resume(ex, &UpstreamAnswer::default(), host);
        if let Step::Reply(outcome) = &step {
            let mut outcome = outcome.clone();
            outcome.log = Some(format!(
                "{} {} {}: {why}",
                ex.head.request_id, ex.head.method, ex.head.path
            ));
            return Step::Reply(outcome);
        }
        step
    }

    /// The answer to a call arrived with a token the request does not wait for: the
    /// request fails (500) rather than use an answer that may not be its own.
    pub fn stray_answer(&self, ex: &mut Exchange, why: &str) -> Step {
        ex.waiting = None;
        let outcome = self.fail(&ex.head, GatewayError::IntegrationNotSupported, why);
        self.settle(ex, Step::Reply(Box::new(outcome)))
    }

    /// The resource a routed request matched and its path parameters (Method Test shows
    /// them); `None` before routing or when nothing matched.
    pub fn method_request<'a>(
        &'a self,
        ex: &'a Exchange,
    ) -> Option<(&'a str, &'a [(String, String)])> {
        let routed = ex.routed.as_ref()?;
        let route = self.routes.get(routed.route)?;
        Some((route.resource.as_str(), routed.params.as_slice()))
    }

    /// The path a client sends for `api_path` (a path of the API, such as `/pets/7`): under
    /// `/{stage}` with execute-api style paths, under the base path mapping otherwise.
    pub fn client_path(&self, api_path: &str) -> String {
        let api_path = if api_path.starts_with('/') {
            api_path.to_string()
        } else {
            format!("/{api_path}")
        };
        match &self.base_path {
            super::BasePath::Stage => format!("/{}{api_path}", self.stage),
            super::BasePath::Mapping(prefix) => format!("{prefix}{api_path}"),
        }
    }

    /// The stage this gateway serves.
    pub fn stage_name(&self) -> &str {
        &self.stage
    }

    /// Whether the integration request `call` goes out in place of the client's request:
    /// the deployment (else the host, `default`) forwards, and the host holds a body
    /// `call`'s can replace (or neither request has one).
    fn forwards(
        &self,
        head: &RequestHead,
        call: &UpstreamCall,
        default: crate::config::Forwarding,
    ) -> bool {
        self.forwarding.unwrap_or(default) == crate::config::Forwarding::Router
            && (head.body_follows || call.body.is_empty())
    }

    /// Records what a step means for metrics before the glue sees it.
    fn settle(&self, ex: &mut Exchange, step: Step) -> Step {
        if let Step::Reply(o) = &step {
            if let Some(u) = o.usage {
                ex.event(Event::Usage(u));
            }
        }
        step
    }

    fn run(&self, stage: Stage, ex: &mut Exchange, host: &Host) -> Option<Step> {
        let reply = |o: Outcome| Some(Step::Reply(Box::new(o)));
        match stage {
            Stage::ClientCert => self.client_cert_stage(&mut ex.head, host).and_then(reply),
            Stage::Preflight => self.preflight(&ex.head).and_then(reply),
            Stage::Route => match self.route(&ex.head) {
                Ok(routed) => {
                    ex.routed = Some(routed);
                    None
                }
                Err(o) => reply(o),
            },
            Stage::Iam => self.iam_stage(ex),
            Stage::ResourcePolicy => self.resource_policy_stage(ex),
            Stage::Authorizer => self.authorize(ex, host),
            Stage::Token => self.token_stage(ex, host),
            Stage::ApiKeyUsage => self.usage_stage(ex, host),
            Stage::Validation => self.validation_stage(ex),
            Stage::Cache => self.cache_stage(ex, host),
            Stage::Integration => self.integration(ex, host),
        }
    }

    /// Stage `Cache`: plans the stage cache's part (mocks are never cached), invalidates a
    /// key on an authorized refresh, and answers from this worker's store on a hit.
    fn cache_stage(&self, ex: &mut Exchange, host: &Host) -> Option<Step> {
        let routed = ex.routed.as_mut()?;
        if self.mock_of(routed).is_some() {
            return None;
        }
        if let Err(o) = self.plan_cache(&ex.head, routed) {
            return Some(Step::Reply(Box::new(o)));
        }
        let (Some(plan), Some(store), Some(stage)) = (&routed.cache, host.store, &self.cache)
        else {
            return None;
        };
        let looked = match plan.mode {
            Mode::Refresh => stage
                .invalidate(host.cells, plan.slot)
                .map(|under| Found::Fetch { under, freed: None }),
            Mode::Lookup => stage.lookup(host.cells, &mut store.borrow_mut(), plan, ex.head.now_ms),
        };
        let (under, freed) = match looked {
            Ok(Found::Hit(reply)) => {
                ex.events.push(Event::Cache(CacheEvent::Hit));
                let outcome = self.cache_hit(&ex.head, routed, reply);
                return Some(Step::Reply(Box::new(outcome)));
            }
            Ok(Found::Fetch { under, freed }) => (under, freed),
            Err(e) => {
                let line = format!(
                    "{} stage cache bypassed: shared data failed: {e}",
                    ex.head.request_id
                );
                ex.events.push(Event::Cache(CacheEvent::Error));
                ex.events.push(Event::Notice(line));
                return None;
            }
        };
        ex.store_under = Some(under);
        if plan.mode == Mode::Refresh {
            ex.events.push(Event::Cache(CacheEvent::Invalidate));
            return None;
        }
        if let Some(freed) = freed {
            ex.events.push(Event::CacheFreed(freed));
        }
        ex.events.push(Event::Cache(CacheEvent::Miss));
        None
    }

    /// Stage `Integration`: a mock answers at once; otherwise, once the body is in, the
    /// integration request is built and called.
    fn integration(&self, ex: &mut Exchange, host: &Host) -> Option<Step> {
        let routed = ex.routed.as_ref()?;
        if let Some(mock) = self.mock_of(routed) {
            let outcome = self.mock_answer(&ex.head, routed, mock);
            return Some(Step::Reply(Box::new(outcome)));
        }
        let Some(body) = &ex.body else {
            return Some(Step::NeedBody);
        };
        match self.invoke_in(&ex.head, routed, body) {
            Ok((request, context)) => {
                if let Some(r) = ex.routed.as_mut() {
                    r.template_context = context;
                }
                let forward = self.forwards(&ex.head, &request, host.forwarding);
                Some(ex.call(CallKind::Integration, request, host.now_ms, None, forward))
            }
            Err(o) => Some(Step::Reply(Box::new(o))),
        }
    }

    /// The integration's answer: mapped to the reply, and stored in the stage cache when
    /// the method is cached and the answer may be kept.
    fn integration_answer(
        &self,
        ex: &mut Exchange,
        waiting: &Waiting,
        answer: &UpstreamAnswer,
        host: &Host,
    ) -> Step {
        let Some(routed) = ex.routed.as_ref() else {
            let o = self.fail(&ex.head, GatewayError::IntegrationNotSupported, "no route");
            return Step::Reply(Box::new(o));
        };
        let mut outcome = self.finish(&ex.head, routed, answer);
        let failed = matches!(
            outcome.error,
            Some(
                GatewayError::IntegrationTimeout
                    | GatewayError::IntegrationUnreachable
                    | GatewayError::InvokeRejected
                    | GatewayError::FunctionError
                    | GatewayError::MalformedProxyResponse
                    | GatewayError::BackendFailed
            )
        );
        ex.timings.integration_latency_ms = Some(host.now_ms.saturating_sub(waiting.sent_ms));
        ex.events.push(Event::Integration {
            latency_ms: host.now_ms.saturating_sub(waiting.sent_ms),
            failed,
        });
        if let (Some(reply), Some(stamp), Some(plan), Some(store)) = (
            outcome.store.take(),
            ex.store_under.take(),
            &routed.cache,
            host.store,
        ) {
            let stored =
                store
                    .borrow_mut()
                    .put(plan.key.clone(), *reply, host.now_ms, plan.ttl_ms, stamp);
            ex.events.push(Event::CacheStored(stored));
        }
        Step::Reply(Box::new(outcome))
    }

    /// Runs the stages up to the body without outbound calls, for callers that drive the
    /// integration themselves (tests, micro-benchmarks): a request an authorizer guards is
    /// answered as if its authorizer could not be reached.
    pub fn start(&self, head: &RequestHead, cells: &dyn SharedCells) -> Start {
        let host = Host::bare(cells, head.now_ms);
        let mut ex = self.begin(head.clone());
        let mut step = self.advance(&mut ex, &host);
        if let Step::Call(_) = step {
            step = self.call_failed(&mut ex, "no calls outside the pipeline", &host);
        }
        match (step, ex.routed) {
            (Step::NeedBody, Some(routed)) => Start::NeedBody(routed),
            (Step::Reply(o), _) => Start::Respond(*o),
            (_, _) => Start::Respond(self.fail(
                head,
                GatewayError::IntegrationNotSupported,
                "the pipeline stopped early",
            )),
        }
    }
}

/// The authorizer's state for a request is shared by the stages that follow it.
pub(super) fn authorized(decision: Rc<crate::authorizer::Decision>, latency_ms: u64) -> Authorized {
    Authorized::Lambda {
        decision,
        latency_ms,
    }
}
