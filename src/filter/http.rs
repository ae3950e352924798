//! One HTTP request: carries out the pipeline's steps ([`Step`]) with host calls. Answers,
//! waits for the body, or makes the call a stage asks for and hands the answer back;
//! counts what the pipeline reports. Decides nothing about what a request or an answer
//! means.

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
use crate::gateway::{Exchange, Gateway, Host, Outcome, RequestHead, Step, TokenCache};
use crate::http::UpstreamAnswer;
use crate::jwt::ring::KeyRing;

enum Phase {
    Headers,
    /// Waiting for the rest of the body.
    Body(Box<Exchange>),
    /// Waiting for the answer to a call.
    Calling {
        ex: Box<Exchange>,
        token: u32,
    },
    Done,
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
}

impl Request {
    pub fn new(gateway: Rc<Gateway>, metrics: Metrics, ids: Rc<Ids>, stores: Stores) -> Self {
        Request {
            gateway,
            metrics,
            ids,
            stores,
            phase: Phase::Headers,
            ended: false,
            empty_reply_type: None,
        }
    }

    fn read_head(&self) -> RequestHead {
        let headers = host::headers(MapType::HttpRequestHeaders);
        let pseudo = |name: &str| {
            headers
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
                .unwrap_or_default()
        };
        RequestHead {
            method: pseudo(":method"),
            path: pseudo(":path"),
            source_ip: host::property_text(&["source", "address"])
                .map(|a| host::ip_of(&a))
                .unwrap_or_default(),
            local_port: host::property_u64(&["destination", "port"])
                .and_then(|p| u16::try_from(p).ok()),
            protocol: host::property_text(&["request", "protocol"])
                .unwrap_or_else(|| "HTTP/1.1".into()),
            request_id: self.ids.uuid(),
            now_ms: host::now_ms(),
            headers,
            client_cert: None,
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

    fn respond(&mut self, outcome: Outcome) -> Action {
        if let Some(line) = &outcome.log {
            if outcome.reply.status >= 500 {
                log::warn!("{line}");
            } else {
                log::debug!("{line}");
            }
        }
        self.metrics.response(outcome.reply.status);
        if outcome.reply.body.is_empty() {
            self.empty_reply_type = outcome.reply.header("content-type").map(str::to_string);
        }
        host::send_reply(&outcome.reply);
        self.phase = Phase::Done;
        Action::Pause
    }

    /// Carries out steps until the request waits for the host or is answered.
    fn drive(&mut self, mut ex: Box<Exchange>, mut step: Step) -> Action {
        loop {
            for e in ex.take_events() {
                self.metrics.event(e);
            }
            step = match step {
                Step::Reply(outcome) => return self.respond(*outcome),
                // The request ended with its headers: its body is empty. (A body that
                // arrived during a call was handed over then.)
                Step::NeedBody if self.ended => {
                    self.with_host(|g, h| g.body(&mut ex, Vec::new(), h))
                }
                Step::NeedBody => {
                    self.phase = Phase::Body(ex);
                    return Action::Pause;
                }
                Step::Call(call) => {
                    let c = &call.request;
                    let headers: Vec<(&str, &str)> = c
                        .headers
                        .iter()
                        .map(|(k, v)| (k.as_str(), v.as_str()))
                        .collect();
                    match hostcalls::dispatch_http_call(
                        &c.cluster,
                        headers,
                        Some(&c.body),
                        vec![],
                        host::millis(c.timeout_ms),
                    ) {
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
        let Phase::Calling { mut ex, token } = std::mem::replace(&mut self.phase, Phase::Done)
        else {
            return;
        };
        if token != token_id {
            let why = format!("an answer with token {token_id} arrived while waiting for {token}");
            let step = self.gateway.stray_answer(&mut ex, &why);
            self.drive(ex, step);
            return;
        }
        let mut headers = host::headers(MapType::HttpCallResponseHeaders);
        let status = headers
            .iter()
            .find(|(k, _)| k == ":status")
            .and_then(|(_, v)| v.parse::<u16>().ok());
        headers.retain(|(k, _)| !k.starts_with(':'));
        let answer = UpstreamAnswer {
            status,
            headers,
            body: host::buffer(BufferType::HttpCallResponseBody, body_size),
        };
        let step = self.with_host(|g, h| g.resume(&mut ex, &answer, h));
        self.drive(ex, step);
    }
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
        let head = self.read_head();
        #[cfg(feature = "crash-trigger")]
        crash_if_asked(&head);
        self.ended = end_of_stream;
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
            return self.respond(outcome);
        }
        if !end_of_stream {
            return Action::Pause;
        }
        let body = host::buffer(BufferType::HttpRequestBody, body_size);
        self.body_done(body)
    }

    fn on_http_response_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        if let Some(content_type) = self.empty_reply_type.take() {
            if !host::set_header(MapType::HttpResponseHeaders, "content-type", &content_type) {
                log::debug!("the host refused to keep Content-Type on an empty reply");
            }
        }
        Action::Continue
    }

    /// A body that ends with trailers has no end-of-stream body callback: the buffered body
    /// is complete here. Trailers are not part of the event, as in API Gateway.
    fn on_http_request_trailers(&mut self, _num_trailers: usize) -> Action {
        let body = host::buffer(BufferType::HttpRequestBody, usize::MAX);
        self.body_done(body)
    }
}
