//! One HTTP request: a small state machine over the core's three steps, plus the stage
//! cache: look up (or invalidate) after routing, store the answer after mapping.

use std::cell::RefCell;
use std::rc::Rc;

use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext};
use proxy_wasm::types::{Action, BufferType, MapType};

use super::cells::HostCells;
use super::host;
use super::metrics::{CacheEvent, Metrics};
use super::root::Ids;
use crate::cache::{Generations, Lookup, Mode, ResponseCache};
use crate::error::GatewayError;
use crate::gateway::{Gateway, Outcome, RequestHead, Routed, Start};
use crate::http::Reply;
use crate::lambda::invoke::InvokeResponse;

enum Phase {
    Headers,
    Body(RequestHead, Routed),
    Invoking {
        head: RequestHead,
        routed: Routed,
        token: u32,
        sent_ms: u64,
    },
    Done,
}

pub struct Request {
    gateway: Rc<Gateway>,
    metrics: Metrics,
    ids: Rc<Ids>,
    cache: Option<Rc<RefCell<ResponseCache>>>,
    /// Generations to store the answer under, set when the cache was consulted.
    store_under: Option<Generations>,
    phase: Phase,
}

impl Request {
    pub fn new(
        gateway: Rc<Gateway>,
        metrics: Metrics,
        ids: Rc<Ids>,
        cache: Option<Rc<RefCell<ResponseCache>>>,
    ) -> Self {
        Request {
            gateway,
            metrics,
            ids,
            cache,
            store_under: None,
            phase: Phase::Headers,
        }
    }

    /// Consults the stage cache for a routed request: a stored answer on a hit; otherwise
    /// remembers the generations to store the fresh answer under. A refresh first
    /// invalidates the key on every worker. When shared data fails the request bypasses
    /// the cache (served fresh, not stored).
    fn consult_cache(&mut self, head: &RequestHead, routed: &Routed) -> Option<Reply> {
        let (Some(plan), Some(store), Some(stage)) =
            (&routed.cache, &self.cache, self.gateway.stage_cache())
        else {
            return None;
        };
        let generations = match plan.mode {
            Mode::Refresh => stage.invalidate(&HostCells, plan.slot),
            Mode::Lookup => stage.generations(&HostCells, plan.slot),
        };
        let generations = match generations {
            Ok(g) => g,
            Err(e) => {
                log::warn!(
                    "{} stage cache bypassed: shared data failed: {e}",
                    head.request_id
                );
                self.metrics.cache(CacheEvent::Error);
                return None;
            }
        };
        self.store_under = Some(generations);
        if plan.mode == Mode::Refresh {
            self.metrics.cache(CacheEvent::Invalidate);
            return None;
        }
        let found = store.borrow_mut().get(&plan.key, head.now_ms, generations);
        match found {
            Lookup::Hit(reply) => {
                self.metrics.cache(CacheEvent::Hit);
                return Some(reply);
            }
            Lookup::Stale(freed) => self.metrics.cache_freed(freed),
            Lookup::Miss => {}
        }
        self.metrics.cache(CacheEvent::Miss);
        None
    }

    /// Keeps a fresh answer in this worker's store.
    fn store(&mut self, routed: &Routed, outcome: &mut Outcome) {
        let (Some(reply), Some(generations), Some(plan), Some(store)) = (
            outcome.store.take(),
            self.store_under.take(),
            &routed.cache,
            &self.cache,
        ) else {
            return;
        };
        let stored = store.borrow_mut().put(
            plan.key.clone(),
            *reply,
            host::now_ms(),
            plan.ttl_ms,
            generations,
        );
        self.metrics.cache_stored(&stored);
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
        }
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
        host::send_reply(&outcome.reply);
        self.phase = Phase::Done;
        Action::Pause
    }

    fn dispatch(&mut self, head: RequestHead, routed: Routed, body: &[u8]) -> Action {
        let call = match self.gateway.invoke(&head, &routed, body) {
            Ok(call) => call,
            Err(outcome) => return self.respond(outcome),
        };
        let headers: Vec<(&str, &str)> = call
            .headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        match hostcalls::dispatch_http_call(
            &call.cluster,
            headers,
            Some(&call.body),
            vec![],
            host::millis(call.timeout_ms),
        ) {
            Ok(token) => {
                self.phase = Phase::Invoking {
                    head,
                    routed,
                    token,
                    sent_ms: host::now_ms(),
                };
                Action::Pause
            }
            Err(status) => {
                let reason = format!(
                    "dispatch to cluster `{}` failed ({status:?}); is the cluster defined?",
                    call.cluster
                );
                let mut outcome = self
                    .gateway
                    .finish(&head, &routed, &InvokeResponse::default());
                outcome.log = Some(format!(
                    "{} {} {}: {reason}",
                    head.request_id, head.method, head.path
                ));
                self.metrics.integration(0, true);
                self.respond(outcome)
            }
        }
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

impl Context for Request {
    fn on_http_call_response(
        &mut self,
        token_id: u32,
        _num_headers: usize,
        body_size: usize,
        _num_trailers: usize,
    ) {
        let Phase::Invoking {
            head,
            routed,
            token,
            sent_ms,
        } = std::mem::replace(&mut self.phase, Phase::Done)
        else {
            return;
        };
        if token != token_id {
            log::error!(
                "{} unexpected Invoke answer (token {token_id}, waiting for {token})",
                head.request_id
            );
        }
        let mut headers = host::headers(MapType::HttpCallResponseHeaders);
        let status = headers
            .iter()
            .find(|(k, _)| k == ":status")
            .and_then(|(_, v)| v.parse::<u16>().ok());
        headers.retain(|(k, _)| !k.starts_with(':'));
        let resp = InvokeResponse {
            status,
            headers,
            body: host::buffer(BufferType::HttpCallResponseBody, body_size),
        };
        let mut outcome = self.gateway.finish(&head, &routed, &resp);
        let failed = matches!(
            outcome.error,
            Some(
                GatewayError::IntegrationTimeout
                    | GatewayError::IntegrationUnreachable
                    | GatewayError::InvokeRejected
                    | GatewayError::FunctionError
                    | GatewayError::MalformedProxyResponse
            )
        );
        self.metrics
            .integration(host::now_ms().saturating_sub(sent_ms), failed);
        self.store(&routed, &mut outcome);
        self.respond(outcome);
    }
}

impl HttpContext for Request {
    fn on_http_request_headers(&mut self, _num_headers: usize, end_of_stream: bool) -> Action {
        let head = self.read_head();
        #[cfg(feature = "crash-trigger")]
        crash_if_asked(&head);
        match self.gateway.start(&head, &HostCells) {
            Start::Respond(outcome) => {
                self.metrics.usage(outcome.usage);
                self.respond(outcome)
            }
            Start::NeedBody(routed) => {
                self.metrics.usage(routed.usage);
                if let Some(line) = &routed.notice {
                    log::warn!("{} {line}", head.request_id);
                }
                if let Some(stored) = self.consult_cache(&head, &routed) {
                    let outcome = self.gateway.cache_hit(&head, &routed, stored);
                    return self.respond(outcome);
                }
                if end_of_stream {
                    return self.dispatch(head, routed, &[]);
                }
                self.phase = Phase::Body(head, routed);
                Action::Pause
            }
        }
    }

    fn on_http_request_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        let Phase::Body(head, _) = &self.phase else {
            return Action::Pause;
        };
        if body_size as u64 > self.gateway.max_body_bytes() {
            let outcome = self.gateway.request_too_large(head);
            return self.respond(outcome);
        }
        if !end_of_stream {
            return Action::Pause;
        }
        let Phase::Body(head, routed) = std::mem::replace(&mut self.phase, Phase::Done) else {
            return Action::Pause;
        };
        let body = host::buffer(BufferType::HttpRequestBody, body_size);
        self.dispatch(head, routed, &body)
    }

    /// A body that ends with trailers has no end-of-stream body callback: the buffered body
    /// is complete here. Trailers are not part of the event, as in API Gateway.
    fn on_http_request_trailers(&mut self, _num_trailers: usize) -> Action {
        let Phase::Body(head, routed) = std::mem::replace(&mut self.phase, Phase::Done) else {
            return Action::Pause;
        };
        let body = host::buffer(BufferType::HttpRequestBody, usize::MAX);
        self.dispatch(head, routed, &body)
    }
}
