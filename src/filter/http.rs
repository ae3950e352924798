//! One HTTP request: a small state machine over the core's three steps.

use std::rc::Rc;

use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext};
use proxy_wasm::types::{Action, BufferType, MapType};

use super::host;
use super::metrics::Metrics;
use super::root::Ids;
use crate::error::GatewayError;
use crate::gateway::{Gateway, Outcome, RequestHead, Routed, Start};
use crate::lambda::invoke::InvokeResponse;

enum Phase {
    Headers,
    Body(RequestHead, Routed),
    Invoking {
        head: RequestHead,
        token: u32,
        sent_ms: u64,
    },
    Done,
}

pub struct Request {
    gateway: Rc<Gateway>,
    metrics: Metrics,
    ids: Rc<Ids>,
    phase: Phase,
}

impl Request {
    pub fn new(gateway: Rc<Gateway>, metrics: Metrics, ids: Rc<Ids>) -> Self {
        Request {
            gateway,
            metrics,
            ids,
            phase: Phase::Headers,
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
        let headers: Vec<(&str, &str)> = outcome
            .reply
            .headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let body = Some(outcome.reply.body.as_slice());
        if let Err(status) =
            hostcalls::send_http_response(u32::from(outcome.reply.status), headers, body)
        {
            log::error!("could not send the response: {status:?}");
        }
        self.phase = Phase::Done;
        Action::Pause
    }

    fn dispatch(&mut self, head: RequestHead, routed: &Routed, body: &[u8]) -> Action {
        let call = match self.gateway.invoke(&head, routed, body) {
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
                let mut outcome = self.gateway.finish(&head, &InvokeResponse::default());
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
        let outcome = self.gateway.finish(&head, &resp);
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
        self.respond(outcome);
    }
}

impl HttpContext for Request {
    fn on_http_request_headers(&mut self, _num_headers: usize, end_of_stream: bool) -> Action {
        let head = self.read_head();
        match self.gateway.start(&head) {
            Start::Respond(outcome) => self.respond(outcome),
            Start::NeedBody(routed) if end_of_stream => self.dispatch(head, &routed, &[]),
            Start::NeedBody(routed) => {
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
        self.dispatch(head, &routed, &body)
    }

    /// A body that ends with trailers has no end-of-stream body callback: the buffered body
    /// is complete here. Trailers are not part of the event, as in API Gateway.
    fn on_http_request_trailers(&mut self, _num_trailers: usize) -> Action {
        let Phase::Body(head, routed) = std::mem::replace(&mut self.phase, Phase::Done) else {
            return Action::Pause;
        };
        let body = host::buffer(BufferType::HttpRequestBody, usize::MAX);
        self.dispatch(head, &routed, &body)
    }
}
