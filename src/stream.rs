//! One HTTP stream through the gateway, whichever host runs it: carries out the pipeline's
//! steps ([`Step`]) with the calls of a [`StreamHost`]. Answers, waits for the body, or
//! makes the call a stage asks for and hands the answer back: as a call of its own, or, when
//! the pipeline says so, in place of the client's request (its headers and body replaced,
//! sent by the host's router, the upstream's answer held and rewritten into the reply).
//! Counts what the pipeline reports.
//!
//! Owns: the order of host actions for one stream (the state between callbacks). Must not:
//! decide what a request or an answer means (every rule lives in the pipeline), or call a
//! host directly; each glue (proxy-wasm, Envoy dynamic module) implements [`StreamHost`] and
//! forwards its callbacks here.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use crate::authorizer::cache::AuthCache;
use crate::cache::ResponseCache;
use crate::connection::Connection;
use crate::execution_log;
use crate::gateway::{CallKind, Exchange, Gateway, Host, Outcome, RequestHead, Step, TokenCache};
use crate::http::{Header, Reply, UpstreamAnswer, UpstreamCall};
use crate::ids::Ids;
use crate::jwt::ring::KeyRing;
use crate::shared::SharedCells;
use crate::stage_set::StageSet;
use crate::stats::{self, Catalogue, Sink};

/// What the host does with the stream after a callback.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    Continue,
    /// Hold the stream (and buffer what comes) until told to go on.
    Pause,
}

/// What a glue does for a stream. Every call reports a host refusal as a `false`, an
/// `Err` or an empty value, never a panic.
pub trait StreamHost {
    /// The request's headers, pseudo-headers included, whatever bytes they hold.
    fn request_headers(&self) -> Vec<Header>;
    /// The connection's protocol, peer and local port, asked of the host (used when the
    /// request carries no trusted connection header).
    fn connection(&self) -> Connection;
    /// Milliseconds since the Unix epoch.
    fn now_ms(&self) -> u64;
    /// Up to `size` bytes of the request body the host holds.
    fn request_body(&self, size: usize) -> Vec<u8>;
    /// The upstream's response headers, `:status` included.
    fn response_headers(&self) -> Vec<Header>;
    /// Why the host made the response itself (`None` when it came from the upstream).
    fn response_made_by_host(&self) -> Option<String>;
    /// Up to `size` bytes of the response body the host holds.
    fn response_body(&self, size: usize) -> Vec<u8>;
    /// Answers the client with a reply of the filter's own.
    fn send_reply(&self, reply: &Reply);
    /// Replaces the request's headers (pseudo-headers included).
    fn set_request_headers(&self, headers: &[(&str, &str)]) -> bool;
    /// Replaces the `held` bytes of request body with `body`.
    fn set_request_body(&self, held: usize, body: &[u8]) -> bool;
    /// Replaces the response's headers (pseudo-headers included).
    fn set_response_headers(&self, headers: &[(&str, &str)]) -> bool;
    /// Sets one response header.
    fn set_response_header(&self, name: &str, value: &str) -> bool;
    /// Replaces the `held` bytes of response body with `body`.
    fn set_response_body(&self, held: usize, body: &[u8]) -> bool;
    /// Lets a paused request go on to the host's router.
    fn resume_request(&self) -> bool;
    /// Sends `call` as a call of its own; the answer comes back through
    /// [`Stream::on_call_answer`] with the returned token.
    fn dispatch(&self, kind: CallKind, call: &UpstreamCall) -> Result<u64, String>;
    /// Stores a value in the request's state for access loggers.
    fn set_state(&self, name: &str, value: &str) -> bool;
    /// Data shared by every worker.
    fn cells(&self) -> &dyn SharedCells;
    /// The stats this gateway counts into.
    fn stats(&self) -> (&Catalogue, &dyn Sink);
    /// How integration requests go out when the deployment does not say: the way that
    /// costs this host less.
    fn forwarding(&self) -> crate::config::Forwarding {
        crate::config::Forwarding::default_for(false)
    }
}

enum Phase {
    Headers,
    /// Waiting for the rest of the body.
    Body(Box<Exchange>),
    /// Waiting for the answer to a call.
    Calling {
        ex: Box<Exchange>,
        token: u64,
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

/// One worker's stores for one stage (or canary), shared by its requests.
#[derive(Clone)]
pub struct Stores {
    pub cache: Option<Rc<RefCell<ResponseCache>>>,
    pub auth: Rc<RefCell<AuthCache>>,
    /// Signing keys of the Cognito and JWT authorizers (kept fresh by the glue).
    pub keys: Rc<RefCell<KeyRing>>,
    pub tokens: Rc<RefCell<TokenCache>>,
    /// Mutual TLS certificates already read (the `ClientCert` stage).
    pub certs: Rc<RefCell<crate::client_cert::CertCache>>,
}

impl Stores {
    /// Empty stores for every variant of `set`; a canary with `useStageCache` reads and
    /// fills its stage's cache.
    pub fn for_set(set: &StageSet) -> Vec<Stores> {
        let mut stores: Vec<Stores> = Vec::with_capacity(set.len());
        for (i, gateway) in set.gateways().enumerate() {
            let shared = match (set.shares_stage_cache(i), i.checked_sub(1)) {
                (true, Some(stage)) => stores.get(stage).and_then(|s| s.cache.clone()),
                _ => None,
            };
            let cache = shared.or_else(|| {
                gateway
                    .stage_cache()
                    .map(|c| Rc::new(RefCell::new(ResponseCache::new(c.capacity_bytes))))
            });
            stores.push(Stores {
                cache,
                auth: Rc::new(RefCell::new(AuthCache::new(
                    crate::authorizer::cache::DEFAULT_CAPACITY_BYTES,
                ))),
                keys: Rc::new(RefCell::new(KeyRing::new(gateway.jwks_sources().len()))),
                tokens: Rc::new(RefCell::new(TokenCache::new(
                    crate::gateway::TOKEN_CACHE_BYTES,
                ))),
                certs: Rc::new(RefCell::new(crate::client_cert::CertCache::new(
                    crate::client_cert::CERT_CACHE_BYTES,
                ))),
            });
        }
        stores
    }
}

/// One stream's state between host callbacks.
pub struct Stream<H: StreamHost> {
    host: H,
    /// Every stage (and canary) this gateway serves, and each one's stores.
    set: Rc<StageSet>,
    all_stores: Rc<Vec<Stores>>,
    /// The variant serving this request (the first until its headers are read).
    variant: usize,
    gateway: Rc<Gateway>,
    ids: Rc<Ids>,
    stores: Stores,
    phase: Phase,
    /// The client's request has ended (its body, if any, has been read).
    ended: bool,
    /// The `Content-Type` of a reply sent with an empty body: Envoy strips it from such
    /// local replies, so it is put back when the reply passes on its way out.
    empty_reply_type: Option<String>,
    /// Size of the request body the host holds (what a forwarded request's body replaces).
    body_len: usize,
    answering: Answering,
    /// The method request's execution log lines are written (`dataTraceEnabled`).
    traced: bool,
    /// The host clock as read in the current callback: one read per callback at most.
    clock: Cell<Option<u64>>,
}

impl<H: StreamHost> Stream<H> {
    /// A stream of a gateway whose set has at least one variant, each with its stores.
    pub fn new(
        host: H,
        set: Rc<StageSet>,
        all_stores: Rc<Vec<Stores>>,
        ids: Rc<Ids>,
    ) -> Option<Self> {
        let gateway = set.gateway(0)?.clone();
        let stores = all_stores.first()?.clone();
        Some(Stream {
            host,
            set,
            all_stores,
            variant: 0,
            gateway,
            ids,
            stores,
            phase: Phase::Headers,
            ended: false,
            empty_reply_type: None,
            body_len: 0,
            answering: Answering::Local,
            traced: false,
            clock: Cell::new(None),
        })
    }

    pub fn host(&self) -> &H {
        &self.host
    }

    /// The request's headers arrived (`end_of_stream`: it has no body).
    pub fn on_request_headers(&mut self, end_of_stream: bool) -> Flow {
        self.clock.set(None);
        let head = self.read_head(end_of_stream);
        self.ended = end_of_stream;
        self.choose_variant(&head);
        let mut ex = Box::new(self.gateway.begin(head));
        let step = self.with_host(|g, h| g.advance(&mut ex, h));
        self.drive(ex, step)
    }

    /// `size` bytes of request body are held so far.
    pub fn on_request_body(&mut self, size: usize, end_of_stream: bool) -> Flow {
        self.clock.set(None);
        let (Phase::Body(ex) | Phase::Calling { ex, .. }) = &self.phase else {
            return Flow::Pause;
        };
        if size as u64 > self.gateway.max_body_bytes() {
            let outcome = self.gateway.request_too_large(&ex.head);
            self.log_access(ex, &outcome);
            return self.respond(outcome);
        }
        if !end_of_stream {
            return Flow::Pause;
        }
        let body = self.host.request_body(size);
        self.body_done(body)
    }

    /// A body that ends with trailers has no end-of-stream body callback: the held body is
    /// complete here. Trailers are not part of the event, as in API Gateway.
    pub fn on_request_trailers(&mut self) -> Flow {
        self.clock.set(None);
        let body = self.host.request_body(usize::MAX);
        self.body_done(body)
    }

    /// The response's headers passed (`end_of_stream`: it has no body).
    pub fn on_response_headers(&mut self, end_of_stream: bool) -> Flow {
        self.clock.set(None);
        if let Phase::Forwarded { answer, .. } = &mut self.phase {
            let (status, headers) = answer_head(self.host.response_headers());
            // On this path the host's own answers (no upstream, timeout, reset) are errors, so
            // a success came from the upstream and the host need not be asked.
            let host_reply = if status.is_some_and(|s| (200..300).contains(&s)) {
                None
            } else {
                self.host.response_made_by_host()
            };
            let head = UpstreamAnswer {
                host_reply,
                status,
                headers,
                body: Vec::new(),
            };
            if end_of_stream {
                return self.forward_answered(&head, None);
            }
            *answer = Some(head);
            return Flow::Pause;
        }
        if let Some(content_type) = self.empty_reply_type.take() {
            if !self.host.set_response_header("content-type", &content_type) {
                log::debug!("the host refused to keep Content-Type on an empty reply");
            }
        }
        Flow::Continue
    }

    /// `size` bytes of response body are held so far.
    pub fn on_response_body(&mut self, size: usize, end_of_stream: bool) -> Flow {
        self.clock.set(None);
        match &mut self.phase {
            Phase::Forwarded {
                answer: Some(answer),
                ..
            } => {
                let over = size as u64 > self.gateway.max_response_bytes();
                if !end_of_stream && !over {
                    return Flow::Pause;
                }
                // An answer over the limit is handed over as far as it came; the pipeline
                // refuses it by its size.
                let mut answer = std::mem::take(answer);
                answer.body = self.host.response_body(size);
                self.forward_answered(&answer, Some(size))
            }
            Phase::Rewritten if size > 0 => {
                if !self.host.set_response_body(size, &[]) {
                    log::debug!("the host refused to drop the rest of a forwarded answer");
                }
                Flow::Continue
            }
            _ => Flow::Continue,
        }
    }

    /// The response ended with trailers: a forwarded answer's held body is complete.
    pub fn on_response_trailers(&mut self) -> Flow {
        self.clock.set(None);
        let Phase::Forwarded {
            answer: Some(answer),
            ..
        } = &mut self.phase
        else {
            return Flow::Continue;
        };
        let mut answer = std::mem::take(answer);
        answer.body = self.host.response_body(usize::MAX);
        let held = answer.body.len();
        self.forward_answered(&answer, Some(held))
    }

    /// The answer to the call `token` came (or the host gave up on it). A request forwarded
    /// from here (an authorizer's or the rate-limit service's answer let it through) is let
    /// go on.
    pub fn on_call_answer(&mut self, token: u64, answer: &UpstreamAnswer) {
        self.clock.set(None);
        let Some(mut ex) = self.waiting_ex(token) else {
            return;
        };
        let step = self.resume_with(&mut ex, answer);
        if let Flow::Continue = self.drive(ex, step) {
            if !self.host.resume_request() {
                log::error!("the host refused to let a forwarded request go on");
            }
        }
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
        let mut headers = self.host.request_headers();
        let pseudo = |headers: &[(String, String)], name: &str| {
            headers
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
                .unwrap_or_default()
        };
        // The header never reaches an integration; its value counts only when a filter in
        // front of the gateway wrote it.
        let told =
            Connection::take(&mut headers).filter(|_| self.gateway.trusts_connection_header());
        let conn = told.unwrap_or_else(|| self.host.connection());
        RequestHead {
            method: pseudo(&headers, ":method"),
            path: pseudo(&headers, ":path"),
            source_ip: conn.source_ip,
            local_port: conn.local_port,
            protocol: conn.protocol,
            request_id: self.ids.uuid(),
            now_ms: self.now_ms(),
            headers,
            client_cert: None,
            body_follows: !end_of_stream,
        }
    }

    /// The host clock, read once per callback: every stage of one callback sees the same
    /// time, and a request costs one read per callback that needs the time.
    fn now_ms(&self) -> u64 {
        if let Some(now) = self.clock.get() {
            return now;
        }
        let now = self.host.now_ms();
        self.clock.set(Some(now));
        now
    }

    /// Runs `f` with the host lent to the pipeline.
    fn with_host<T>(&self, f: impl FnOnce(&Gateway, &Host) -> T) -> T {
        // Until this worker holds every key set, adopt what another worker fetched before
        // the request is judged (the glue's timer may not have run yet).
        if !self.stores.keys.borrow().complete() {
            let log = self
                .stores
                .keys
                .borrow_mut()
                .sync(self.gateway.jwks_sources(), self.host.cells());
            for line in log {
                log::warn!("{line}");
            }
        }
        let host = Host {
            cells: self.host.cells(),
            store: self.stores.cache.as_deref(),
            auth_cache: Some(&self.stores.auth),
            keys: Some(&self.stores.keys),
            tokens: Some(&self.stores.tokens),
            certs: Some(&self.stores.certs),
            now_ms: self.now_ms(),
            forwarding: self.host.forwarding(),
        };
        f(&self.gateway, &host)
    }

    /// Hands the request's access log line to the host's access logger (when the stage
    /// logs access).
    fn log_access(&self, ex: &Exchange, outcome: &Outcome) {
        if !self.gateway.logs_access() {
            return;
        }
        if let Some(line) = self.gateway.access_line(ex, outcome, self.now_ms()) {
            if !self.host.set_state(self.gateway.access_log_state(), &line) {
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

    fn respond(&mut self, outcome: Outcome) -> Flow {
        if let Some(line) = &outcome.log {
            if outcome.reply.status >= 500 {
                log::warn!("{line}");
            } else {
                log::debug!("{line}");
            }
        }
        let (catalogue, sink) = self.host.stats();
        stats::apply(sink, catalogue.response(self.variant, outcome.reply.status));
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
        self.host.send_reply(&outcome.reply);
        self.phase = Phase::Done;
        Flow::Pause
    }

    /// Writes `reply` over the upstream's answer to a forwarded request: its status and
    /// headers, and its body over the `held` bytes of the answer's.
    fn rewrite(&mut self, reply: &Reply, held: Option<usize>) -> Flow {
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
        if !self.host.set_response_headers(&headers) {
            log::error!("the host refused the reply's headers over a forwarded answer");
        }
        if let Some(held) = held {
            if !self.host.set_response_body(held, &reply.body) {
                log::error!("the host refused the reply's body over a forwarded answer");
            }
        }
        self.phase = Phase::Rewritten;
        Flow::Continue
    }

    /// Sends the integration request in place of the client's: its headers (with the
    /// cluster and timeout for the route) and its body replace the request's, and the
    /// request goes on to the host's router.
    fn forward(&mut self, ex: Box<Exchange>, call: &UpstreamCall) -> Flow {
        // The head read at the start carries the pseudo-headers: no second read of the map.
        let scheme = crate::http::header(&ex.head.headers, ":scheme").unwrap_or("http");
        // Formatted only when sent.
        let (timeout, length);
        let mut headers: Vec<(&str, &str)> = call
            .headers
            .iter()
            .filter(|(k, _)| {
                !k.eq_ignore_ascii_case("content-length")
                    && !k.eq_ignore_ascii_case("transfer-encoding")
            })
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        headers.push((":scheme", scheme));
        // Envoy matches no route without X-Forwarded-Proto, and the route removes it unless
        // the call carries its own (marked so). The client's request already has one (Envoy
        // adds it), so the value it has is kept: one header fewer to change.
        if headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("x-forwarded-proto"))
        {
            headers.push((crate::http::FORWARD_KEEP_PROTO_HEADER, "1"));
        } else {
            let proto =
                crate::http::header(&ex.head.headers, "x-forwarded-proto").unwrap_or(scheme);
            headers.push(("x-forwarded-proto", proto));
        }
        headers.push((crate::http::FORWARD_CLUSTER_HEADER, &call.cluster));
        // The route's own timeout is the longest integration's: a call with that timeout
        // need not say it again.
        if call.timeout_ms != self.set.longest_timeout_ms() {
            timeout = call.timeout_ms.to_string();
            headers.push(("x-envoy-upstream-rq-timeout-ms", &timeout));
        }
        // The client's request has a body for the call's to replace (else neither has one).
        let with_body = ex.head.body_follows;
        if with_body {
            length = call.body.len().to_string();
            headers.push(("content-length", &length));
        }
        let placed = self.host.set_request_headers(&headers)
            && (!with_body || self.host.set_request_body(self.body_len, &call.body));
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
        Flow::Continue
    }

    /// The upstream's whole answer to a forwarded request is in (`held` bytes of body in
    /// the host, `None` when it ended with its headers): the pipeline makes the reply.
    fn forward_answered(&mut self, answer: &UpstreamAnswer, held: Option<usize>) -> Flow {
        let Phase::Forwarded { mut ex, .. } = std::mem::replace(&mut self.phase, Phase::Done)
        else {
            return Flow::Continue;
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
    fn drive(&mut self, mut ex: Box<Exchange>, mut step: Step) -> Flow {
        loop {
            for e in ex.take_events() {
                if let crate::gateway::Event::Notice(line) = &e {
                    log::warn!("{line}");
                }
                let (catalogue, sink) = self.host.stats();
                stats::apply(sink, catalogue.event(&e));
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
                    return Flow::Pause;
                }
                Step::Call(call) if call.forward => return self.forward(ex, &call.request),
                Step::Call(call) => match self.host.dispatch(call.kind, &call.request) {
                    Ok(token) => {
                        self.phase = Phase::Calling { ex, token };
                        return Flow::Pause;
                    }
                    Err(status) => {
                        let why = format!(
                            "dispatch of the {:?} call to cluster `{}` failed ({status}); is the cluster defined?",
                            call.kind, call.request.cluster
                        );
                        self.with_host(|g, h| g.call_failed(&mut ex, &why, h))
                    }
                },
            };
        }
    }

    /// The request body is complete: hand it over, now or, while a call is in flight (an
    /// authorizer's), with the exchange for the stage that needs it.
    fn body_done(&mut self, body: Vec<u8>) -> Flow {
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
                Flow::Pause
            }
            other => {
                self.phase = other;
                Flow::Pause
            }
        }
    }

    /// The exchange waiting for the call `token` answers; a stray answer fails it. An
    /// answer while no call is in flight leaves the stream as it is (a request being
    /// forwarded keeps its state).
    fn waiting_ex(&mut self, token_id: u64) -> Option<Box<Exchange>> {
        if !matches!(self.phase, Phase::Calling { .. }) {
            log::debug!("an answer with token {token_id} arrived with no call in flight");
            return None;
        }
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
}

/// Writes execution log lines of `ex` at `info` (`dataTraceEnabled`).
fn trace(ex: &Exchange, lines: Vec<String>) {
    for line in lines {
        log::info!("{} {line}", ex.head.request_id);
    }
}

/// An upstream answer's status and its headers without the pseudo-headers.
pub fn answer_head(mut headers: Vec<Header>) -> (Option<u16>, Vec<Header>) {
    let status = crate::http::header(&headers, ":status").and_then(|v| v.parse::<u16>().ok());
    headers.retain(|(k, _)| !k.starts_with(':'));
    (status, headers)
}

#[cfg(test)]
mod tests;
