//! One HTTP request: carries out the pipeline's steps ([`Step`]) with host calls. Answers,
//! waits for the body, or makes the call a stage asks for and hands the answer back: as a
//! call of its own, or, when the pipeline says so, in place of the client's request (its
//! headers and body replaced, sent by Envoy's router, the upstream's answer held and
//! rewritten into the reply). Counts what the pipeline reports. Decides nothing about what
//! a request or an answer means.

use std::cell::RefCell;
use std::rc::Rc;

use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext};
use proxy_wasm::types::{Action, BufferType, MapType};

use super::cells::HostCells;
use super::host;
use super::metrics::Metrics;
use super::root::Ids;
use crate::authorizer::cache::AuthCache;
use crate::cache::ResponseCache;
use crate::connection::{self, Connection};
use crate::execution_log;
use crate::gateway::{CallKind, Exchange, Gateway, Host, Outcome, RequestHead, Step, TokenCache};
use crate::http::{UpstreamAnswer, UpstreamCall};
use crate::jwt::ring::KeyRing;
use crate::stage_set::StageSet;
use crate::usage::rls;

enum Phase {
    Headers,
    /// Waiting for the rest of the body.
    Body(Box<Exchange>),
    /// Waiting for the answer to a call.
    Calling {
        ex: Box<Exchange>,
        token: u32,
    },
    /// The request went on as the integration request; waiting for the upstream's answer
    /// (its head, once it came, while its body is buffered).
    Forwarded {
        ex: Box<Exchange>,
        answer: Option<UpstreamAnswer>,
    },
    /// The reply was written over the upstream's answer: whatever of its body still comes
    /// is dropped.
    Rewritten,
    Done,
}

/// How a reply made from a forwarded request's answer reaches the client.
#[derive(Clone, Copy)]
enum Answering {
    /// A reply of the filter's own.
    Local,
    /// Written over the upstream's answer, whose body (`Some(bytes held)`) or lack of one
    /// (`None`) is replaced.
    InPlace(Option<usize>),
}

/// This worker's stores, shared by its requests.
#[derive(Clone)]
pub struct Stores {
    pub cache: Option<Rc<RefCell<ResponseCache>>>,
    pub auth: Rc<RefCell<AuthCache>>,
    /// Signing keys of the Cognito and JWT authorizers (kept fresh by the root context).
    pub keys: Rc<RefCell<KeyRing>>,
    pub tokens: Rc<RefCell<TokenCache>>,
    /// Mutual TLS certificates already read (the `ClientCert` stage).
    pub certs: Rc<RefCell<crate::client_cert::CertCache>>,
}

pub struct Request {
    /// Every stage (and canary) this gateway serves, and each one's stores.
    set: Rc<StageSet>,
    all_stores: Rc<Vec<Stores>>,
    /// The variant serving this request (the first until its headers are read).
    variant: usize,
    gateway: Rc<Gateway>,
    metrics: Metrics,
    ids: Rc<Ids>,
    stores: Stores,
    phase: Phase,
    /// The client's request has ended (its body, if any, has been read).
    ended: bool,
    /// The `Content-Type` of a reply sent with an empty body: Envoy strips it from such
    /// local replies, so it is put back when the reply passes on its way out.
    empty_reply_type: Option<String>,
    /// Size of the request body Envoy holds (what a forwarded request's body replaces).
    body_len: usize,
    answering: Answering,
    /// The method request's execution log lines are written (`dataTraceEnabled`).
    traced: bool,
}

impl Request {
    /// A request of a gateway whose set has at least one variant, each with its stores.
    pub fn new(
        set: Rc<StageSet>,
        all_stores: Rc<Vec<Stores>>,
        metrics: Metrics,
        ids: Rc<Ids>,
    ) -> Option<Self> {
        let gateway = set.gateway(0)?.clone();
        let stores = all_stores.first()?.clone();
        Some(Request {
            set,
            all_stores,
            variant: 0,
            gateway,
            metrics,
            ids,
            stores,
            phase: Phase::Headers,
            ended: false,
            empty_reply_type: None,
            body_len: 0,
            answering: Answering::Local,
            traced: false,
        })
    }

    /// Hands the request to the variant (stage, or its canary) that serves it.
    fn choose_variant(&mut self, head: &RequestHead) {
        if self.set.len() < 2 {
            return;
        }
        let roll = if self.set.rolls() { self.ids.roll() } else { 0 };
        let authority = crate::http::header(&head.headers, ":authority").unwrap_or_default();
        let i = self.set.pick(authority, &head.path, roll);
        if let (Some(g), Some(s)) = (self.set.gateway(i), self.all_stores.get(i)) {
            self.variant = i;
            self.gateway = g.clone();
            self.stores = s.clone();
        }
    }

    fn read_head(&self, end_of_stream: bool) -> RequestHead {
        let mut headers = host::headers(MapType::HttpRequestHeaders);
        let pseudo = |headers: &[(String, String)], name: &str| {
            headers
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
                .unwrap_or_default()
        };
        let told = if self.gateway.trusts_connection_header() {
            Connection::take(&mut headers)
        } else {
            None
        };
        let conn = told.unwrap_or_else(|| Connection {
            protocol: host::property_text(&["request", "protocol"])
                .unwrap_or_else(|| "HTTP/1.1".into()),
            source_ip: host::property_text(&["source", "address"])
                .map(|a| connection::ip_of(&a))
                .unwrap_or_default(),
            local_port: host::property_u64(&["destination", "port"])
                .and_then(|p| u16::try_from(p).ok()),
        });
        RequestHead {
            method: pseudo(&headers, ":method"),
            path: pseudo(&headers, ":path"),
            source_ip: conn.source_ip,
            local_port: conn.local_port,
            protocol: conn.protocol,
            request_id: self.ids.uuid(),
            now_ms: host::now_ms(),
            headers,
            client_cert: None,
            body_follows: !end_of_stream,
        }
    }

    /// Runs `f` with the host lent to the pipeline.
    fn with_host<T>(&self, f: impl FnOnce(&Gateway, &Host) -> T) -> T {
        // Until this worker holds every key set, adopt what another worker fetched before
        // the request is judged (the root context's tick may not have run yet).
        if !self.stores.keys.borrow().complete() {
            let log = self
                .stores
                .keys
                .borrow_mut()
                .sync(self.gateway.jwks_sources(), &HostCells);
            for line in log {
                log::warn!("{line}");
            }
        }
        let host = Host {
            cells: &HostCells,
            store: self.stores.cache.as_deref(),
            auth_cache: Some(&self.stores.auth),
            keys: Some(&self.stores.keys),
            tokens: Some(&self.stores.tokens),
            certs: Some(&self.stores.certs),
            now_ms: host::now_ms(),
        };
        f(&self.gateway, &host)
    }

    /// Hands the request's access log line to the host's access logger (when the stage
    /// logs access).
    fn log_access(&self, ex: &Exchange, outcome: &Outcome) {
        if !self.gateway.logs_access() {
            return;
        }
        if let Some(line) = self.gateway.access_line(ex, outcome, host::now_ms()) {
            if !host::set_state(self.gateway.access_log_state(), &line) {
                log::warn!(
                    "the host refused the access log line of {}",
                    ex.head.request_id
                );
            }
        }
    }

    /// Writes the method request's execution log lines once (`dataTraceEnabled`).
    fn trace_method_request(&mut self, ex: &Exchange) {
        if self.traced {
            return;
        }
        self.traced = true;
        let params = self.gateway.method_request(ex).map(|(_, p)| p);
        let mut lines = vec![format!(
            "Starting execution for request: {}",
            ex.head.request_id
        )];
        lines.extend(execution_log::method_request(
            params,
            &ex.head.path,
            &ex.head.headers,
            ex.body_bytes(),
        ));
        trace(ex, lines);
    }

    /// Hands a call's answer to the pipeline, writing its execution log lines first when
    /// the stage traces data.
    fn resume_with(&self, ex: &mut Exchange, answer: &UpstreamAnswer) -> Step {
        let kind = ex.waiting_for();
        let step = self.with_host(|g, h| g.resume(ex, answer, h));
        if let (true, Some(kind)) = (self.gateway.traces_data(), kind) {
            let latency = ex.latency_of(kind).unwrap_or(0);
            trace(ex, execution_log::answer(kind, Ok(answer), latency));
        }
        step
    }

    fn respond(&mut self, outcome: Outcome) -> Action {
        if let Some(line) = &outcome.log {
            if outcome.reply.status >= 500 {
                log::warn!("{line}");
            } else {
                log::debug!("{line}");
            }
        }
        self.metrics.response(outcome.reply.status);
        self.metrics
            .variant_response(self.variant, outcome.reply.status);
        if let Answering::InPlace(held) = self.answering {
            if held.is_some() || outcome.reply.body.is_empty() {
                return self.rewrite(&outcome.reply, held);
            }
            // The upstream's answer ended with its headers: a body cannot be added to it,
            // so the reply goes out as the filter's own.
        }
        if outcome.reply.body.is_empty() {
            self.empty_reply_type = outcome.reply.header("content-type").map(str::to_string);
        }
        host::send_reply(&outcome.reply);
        self.phase = Phase::Done;
        Action::Pause
    }

    /// Writes `reply` over the upstream's answer to a forwarded request: its status and
    /// headers, and its body over the `held` bytes of the answer's.
    fn rewrite(&mut self, reply: &crate::http::Reply, held: Option<usize>) -> Action {
        let status = reply.status.to_string();
        let length = reply.body.len().to_string();
        let mut headers: Vec<(&str, &str)> = Vec::with_capacity(reply.headers.len() + 2);
        headers.push((":status", &status));
        headers.extend(
            reply
                .headers
                .iter()
                .filter(|(k, _)| !k.eq_ignore_ascii_case("content-length"))
                .map(|(k, v)| (k.as_str(), v.as_str())),
        );
        headers.push(("content-length", &length));
        if !host::set_headers(MapType::HttpResponseHeaders, &headers) {
            log::error!("the host refused the reply's headers over a forwarded answer");
        }
        if let Some(held) = held {
            if !host::set_buffer(BufferType::HttpResponseBody, held, &reply.body) {
                log::error!("the host refused the reply's body over a forwarded answer");
            }
        }
        self.phase = Phase::Rewritten;
        Action::Continue
    }

    /// Sends the integration request in place of the client's: its headers (with the
    /// cluster and timeout for the route) and its body replace the request's, and the
    /// request goes on to Envoy's router.
    fn forward(&mut self, ex: Box<Exchange>, call: &UpstreamCall) -> Action {
        // The head read at the start carries the pseudo-headers: no second read of the map.
        let scheme = crate::http::header(&ex.head.headers, ":scheme")
            .unwrap_or("http")
            .to_string();
        let timeout = call.timeout_ms.to_string();
        let length = call.body.len().to_string();
        let mut headers: Vec<(&str, &str)> = call
            .headers
            .iter()
            .filter(|(k, _)| {
                !k.eq_ignore_ascii_case("content-length")
                    && !k.eq_ignore_ascii_case("transfer-encoding")
            })
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        headers.push((":scheme", &scheme));
        // Envoy matches no route without X-Forwarded-Proto; one the call does not carry
        // is added for the match and removed by the route (marked so).
        if !headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("x-forwarded-proto"))
        {
            headers.push(("x-forwarded-proto", &scheme));
            headers.push((crate::http::FORWARD_ADDED_PROTO_HEADER, "1"));
        }
        headers.push((crate::http::FORWARD_CLUSTER_HEADER, &call.cluster));
        headers.push(("x-envoy-upstream-rq-timeout-ms", &timeout));
        if ex.head.body_follows {
            headers.push(("content-length", &length));
        }
        let placed = host::set_headers(MapType::HttpRequestHeaders, &headers)
            && (!ex.head.body_follows
                || host::set_buffer(BufferType::HttpRequestBody, self.body_len, &call.body));
        if !placed {
            let why = format!(
                "the host refused the integration request in place of the client's (cluster `{}`)",
                call.cluster
            );
            let mut ex = ex;
            let step = self.with_host(|g, h| g.call_failed(&mut ex, &why, h));
            return self.drive(ex, step);
        }
        self.phase = Phase::Forwarded { ex, answer: None };
        Action::Continue
    }

    /// The upstream's whole answer to a forwarded request is in (`held` bytes of body in
    /// the host, `None` when it ended with its headers): the pipeline makes the reply.
    fn forward_answered(&mut self, answer: &UpstreamAnswer, held: Option<usize>) -> Action {
        let Phase::Forwarded { mut ex, .. } = std::mem::replace(&mut self.phase, Phase::Done)
        else {
            return Action::Continue;
        };
        self.answering = Answering::InPlace(held);
        let step = self.resume_with(&mut ex, answer);
        let step = match step {
            Step::Reply(_) => step,
            // Every integration ends with its answer; anything else is a pipeline bug,
            // answered as an internal failure rather than another call from the response.
            _ => self.gateway.stray_answer(
                &mut ex,
                "the pipeline asked for more after the integration's answer",
            ),
        };
        self.drive(ex, step)
    }

    /// Carries out steps until the request waits for the host or is answered.
    fn drive(&mut self, mut ex: Box<Exchange>, mut step: Step) -> Action {
        loop {
            for e in ex.take_events() {
                self.metrics.event(e);
            }
            if let (true, Step::Call(call)) = (self.gateway.traces_data(), &step) {
                self.trace_method_request(&ex);
                let c = &call.request;
                let authority = crate::http::header(&c.headers, ":authority").unwrap_or("");
                let path = crate::http::header(&c.headers, ":path").unwrap_or("/");
                let url = format!("{authority}{path} (cluster {})", c.cluster);
                let secrets = execution_log::secrets(&ex.head.headers);
                trace(&ex, execution_log::call(call.kind, &url, c, &secrets));
            }
            step = match step {
                Step::Reply(outcome) => {
                    self.log_access(&ex, &outcome);
                    if self.gateway.traces_data() {
                        self.trace_method_request(&ex);
                        let mut lines = execution_log::method_response(&outcome.reply);
                        lines.push(format!(
                            "Method completed with status: {}",
                            outcome.reply.status
                        ));
                        trace(&ex, lines);
                    }
                    return self.respond(*outcome);
                }
                // The request ended with its headers: its body is empty. (A body that
                // arrived during a call was handed over then.)
                Step::NeedBody if self.ended => {
                    self.with_host(|g, h| g.body(&mut ex, Vec::new(), h))
                }
                Step::NeedBody => {
                    self.phase = Phase::Body(ex);
                    return Action::Pause;
                }
                Step::Call(call) if call.forward => return self.forward(ex, &call.request),
                Step::Call(call) => {
                    let c = &call.request;
                    let sent = if call.kind == CallKind::RateLimit {
                        hostcalls::dispatch_grpc_call(
                            &rls::grpc_service(&c.cluster),
                            rls::SERVICE,
                            rls::METHOD,
                            vec![],
                            Some(&c.body),
                            host::millis(c.timeout_ms),
                        )
                    } else {
                        let headers: Vec<(&str, &str)> = c
                            .headers
                            .iter()
                            .map(|(k, v)| (k.as_str(), v.as_str()))
                            .collect();
                        hostcalls::dispatch_http_call(
                            &c.cluster,
                            headers,
                            Some(&c.body),
                            vec![],
                            host::millis(c.timeout_ms),
                        )
                    };
                    match sent {
                        Ok(token) => {
                            self.phase = Phase::Calling { ex, token };
                            return Action::Pause;
                        }
                        Err(status) => {
                            let why = format!(
                                "dispatch of the {:?} call to cluster `{}` failed ({status:?}); is the cluster defined?",
                                call.kind, c.cluster
                            );
                            self.with_host(|g, h| g.call_failed(&mut ex, &why, h))
                        }
                    }
                }
            };
        }
    }

    /// The request body is complete: hand it over, now or, while a call is in flight (an
    /// authorizer's), with the exchange for the stage that needs it.
    fn body_done(&mut self, body: Vec<u8>) -> Action {
        self.ended = true;
        self.body_len = body.len();
        match std::mem::replace(&mut self.phase, Phase::Done) {
            Phase::Body(mut ex) => {
                let step = self.with_host(|g, h| g.body(&mut ex, body, h));
                self.drive(ex, step)
            }
            Phase::Calling { mut ex, token } => {
                ex.stash_body(body);
                self.phase = Phase::Calling { ex, token };
                Action::Pause
            }
            other => {
                self.phase = other;
                Action::Pause
            }
        }
    }
}

impl Context for Request {
    fn on_http_call_response(
        &mut self,
        token_id: u32,
        _num_headers: usize,
        body_size: usize,
        _num_trailers: usize,
    ) {
        let Some(ex) = self.waiting_ex(token_id) else {
            return;
        };
        let (status, mut headers) = answer_head(MapType::HttpCallResponseHeaders);
        // Envoy's async client adds its own timing header to the answer; the router that
        // carries forwarded requests is configured not to, and the answers agree.
        headers.retain(|(k, _)| k != "x-envoy-upstream-service-time");
        let answer = UpstreamAnswer {
            host_reply: None,
            status,
            headers,
            body: host::buffer(BufferType::HttpCallResponseBody, body_size),
        };
        self.answered(ex, &answer);
    }

    fn on_grpc_call_response(&mut self, token_id: u32, status_code: u32, response_size: usize) {
        let Some(ex) = self.waiting_ex(token_id) else {
            return;
        };
        // The rate-limit service's answer: status 200 and the message, or why there is none.
        let answer = if status_code == 0 {
            UpstreamAnswer {
                status: Some(200),
                body: host::buffer(
                    BufferType::GrpcReceiveBuffer,
                    response_size.min(rls::MAX_RESPONSE_BYTES),
                ),
                ..UpstreamAnswer::default()
            }
        } else {
            UpstreamAnswer {
                host_reply: Some(format!("gRPC status {status_code}")),
                ..UpstreamAnswer::default()
            }
        };
        self.answered(ex, &answer);
    }
}

impl Request {
    /// The exchange waiting for the call `token_id` answers; a stray answer fails it.
    fn waiting_ex(&mut self, token_id: u32) -> Option<Box<Exchange>> {
        let Phase::Calling { mut ex, token } = std::mem::replace(&mut self.phase, Phase::Done)
        else {
            return None;
        };
        if token != token_id {
            let why = format!("an answer with token {token_id} arrived while waiting for {token}");
            let step = self.gateway.stray_answer(&mut ex, &why);
            self.drive(ex, step);
            return None;
        }
        Some(ex)
    }

    /// Hands a call's answer to the pipeline and carries on.
    fn answered(&mut self, mut ex: Box<Exchange>, answer: &UpstreamAnswer) {
        let step = self.resume_with(&mut ex, answer);
        // A request forwarded from here (an authorizer's or the rate-limit service's answer
        // let it through) goes on.
        if let Action::Continue = self.drive(ex, step) {
            if !host::resume_request() {
                log::error!("the host refused to let a forwarded request go on");
            }
        }
    }
}

/// Writes execution log lines of `ex` at `info` (`dataTraceEnabled`).
fn trace(ex: &Exchange, lines: Vec<String>) {
    for line in lines {
        log::info!("{} {line}", ex.head.request_id);
    }
}

/// An upstream answer's status and its headers without the pseudo-headers.
fn answer_head(map: MapType) -> (Option<u16>, Vec<(String, String)>) {
    let mut headers = host::headers(map);
    let status = crate::http::header(&headers, ":status").and_then(|v| v.parse::<u16>().ok());
    headers.retain(|(k, _)| !k.starts_with(':'));
    (status, headers)
}

/// Aborts the VM on request, so tests can show that Envoy reloads it. Only builds with the
/// `crash-trigger` feature have it; release builds never do.
#[cfg(feature = "crash-trigger")]
#[allow(clippy::panic)]
fn crash_if_asked(head: &RequestHead) {
    if crate::http::header(&head.headers, "x-apigw-edge-crash").is_some() {
        panic!("{} crash requested (crash-trigger build)", head.request_id);
    }
}

impl HttpContext for Request {
    fn on_http_request_headers(&mut self, _num_headers: usize, end_of_stream: bool) -> Action {
        let head = self.read_head(end_of_stream);
        #[cfg(feature = "crash-trigger")]
        crash_if_asked(&head);
        self.ended = end_of_stream;
        self.choose_variant(&head);
        let mut ex = Box::new(self.gateway.begin(head));
        let step = self.with_host(|g, h| g.advance(&mut ex, h));
        self.drive(ex, step)
    }

    fn on_http_request_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        let (Phase::Body(ex) | Phase::Calling { ex, .. }) = &self.phase else {
            return Action::Pause;
        };
        if body_size as u64 > self.gateway.max_body_bytes() {
            let outcome = self.gateway.request_too_large(&ex.head);
            self.log_access(ex, &outcome);
            return self.respond(outcome);
        }
        if !end_of_stream {
            return Action::Pause;
        }
        let body = host::buffer(BufferType::HttpRequestBody, body_size);
        self.body_done(body)
    }

    fn on_http_response_headers(&mut self, _num_headers: usize, end_of_stream: bool) -> Action {
        if let Phase::Forwarded { answer, .. } = &mut self.phase {
            let (status, headers) = answer_head(MapType::HttpResponseHeaders);
            let head = UpstreamAnswer {
                host_reply: host::property_text(&["response", "code_details"])
                    .filter(|d| d != "via_upstream"),
                status,
                headers,
                body: Vec::new(),
            };
            if end_of_stream {
                return self.forward_answered(&head, None);
            }
            *answer = Some(head);
            return Action::Pause;
        }
        if let Some(content_type) = self.empty_reply_type.take() {
            if !host::set_header(MapType::HttpResponseHeaders, "content-type", &content_type) {
                log::debug!("the host refused to keep Content-Type on an empty reply");
            }
        }
        Action::Continue
    }

    fn on_http_response_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        match &mut self.phase {
            Phase::Forwarded {
                answer: Some(answer),
                ..
            } => {
                let over = body_size as u64 > self.gateway.max_response_bytes();
                if !end_of_stream && !over {
                    return Action::Pause;
                }
                // An answer over the limit is handed over as far as it came; the pipeline
                // refuses it by its size.
                let mut answer = std::mem::take(answer);
                answer.body = host::buffer(BufferType::HttpResponseBody, body_size);
                self.forward_answered(&answer, Some(body_size))
            }
            Phase::Rewritten if body_size > 0 => {
                if !host::set_buffer(BufferType::HttpResponseBody, body_size, &[]) {
                    log::debug!("the host refused to drop the rest of a forwarded answer");
                }
                Action::Continue
            }
            _ => Action::Continue,
        }
    }

    fn on_http_response_trailers(&mut self, _num_trailers: usize) -> Action {
        let Phase::Forwarded {
            answer: Some(answer),
            ..
        } = &mut self.phase
        else {
            return Action::Continue;
        };
        let mut answer = std::mem::take(answer);
        answer.body = host::buffer(BufferType::HttpResponseBody, usize::MAX);
        let held = answer.body.len();
        self.forward_answered(&answer, Some(held))
    }

    /// A body that ends with trailers has no end-of-stream body callback: the buffered body
    /// is complete here. Trailers are not part of the event, as in API Gateway.
    fn on_http_request_trailers(&mut self, _num_trailers: usize) -> Action {
        let body = host::buffer(BufferType::HttpRequestBody, usize::MAX);
        self.body_done(body)
    }
}
