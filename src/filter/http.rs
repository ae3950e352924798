//! One HTTP request: proxy-wasm's callbacks handed to the core's [`Stream`], and the host
//! calls it asks for ([`StreamHost`]) made with proxy-wasm. Decides nothing.

use std::rc::Rc;

use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext};
use proxy_wasm::types::{Action, BufferType, MapType};

use super::cells::HostCells;
use super::host;
use super::metrics::Metrics;
use crate::connection::{self, Connection};
use crate::gateway::CallKind;
use crate::http::{Header, Reply, UpstreamAnswer, UpstreamCall};
use crate::ids::Ids;
use crate::shared::SharedCells;
use crate::stage_set::StageSet;
use crate::stats::{Catalogue, Sink};
use crate::stream::{answer_head, Flow, Stores, Stream, StreamHost};
use crate::usage::rls;

/// proxy-wasm's calls for one stream.
pub struct WasmHost {
    metrics: Metrics,
}

impl StreamHost for WasmHost {
    fn request_headers(&self) -> Vec<Header> {
        host::headers(MapType::HttpRequestHeaders)
    }

    fn connection(&self) -> Connection {
        Connection {
            protocol: host::property_text(&["request", "protocol"])
                .unwrap_or_else(|| "HTTP/1.1".into()),
            source_ip: host::property_text(&["source", "address"])
                .map(|a| connection::ip_of(&a))
                .unwrap_or_default(),
            local_port: host::property_u64(&["destination", "port"])
                .and_then(|p| u16::try_from(p).ok()),
        }
    }

    fn now_ms(&self) -> u64 {
        host::now_ms()
    }

    fn request_body(&self, size: usize) -> Vec<u8> {
        host::buffer(BufferType::HttpRequestBody, size)
    }

    fn response_headers(&self) -> Vec<Header> {
        host::headers(MapType::HttpResponseHeaders)
    }

    fn response_made_by_host(&self) -> Option<String> {
        host::property_text(&["response", "code_details"]).filter(|d| d != "via_upstream")
    }

    fn response_body(&self, size: usize) -> Vec<u8> {
        host::buffer(BufferType::HttpResponseBody, size)
    }

    fn send_reply(&self, reply: &Reply) {
        host::send_reply(reply);
    }

    fn set_request_headers(&self, headers: &[(&str, &str)]) -> bool {
        host::set_headers(MapType::HttpRequestHeaders, headers)
    }

    fn set_request_body(&self, held: usize, body: &[u8]) -> bool {
        host::set_buffer(BufferType::HttpRequestBody, held, body)
    }

    fn set_response_headers(&self, headers: &[(&str, &str)]) -> bool {
        host::set_headers(MapType::HttpResponseHeaders, headers)
    }

    fn set_response_header(&self, name: &str, value: &str) -> bool {
        host::set_header(MapType::HttpResponseHeaders, name, value)
    }

    fn set_response_body(&self, held: usize, body: &[u8]) -> bool {
        host::set_buffer(BufferType::HttpResponseBody, held, body)
    }

    fn resume_request(&self) -> bool {
        host::resume_request()
    }

    fn dispatch(&self, kind: CallKind, c: &UpstreamCall) -> Result<u64, String> {
        let sent = if kind == CallKind::RateLimit {
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
        sent.map(u64::from).map_err(|status| format!("{status:?}"))
    }

    fn set_state(&self, name: &str, value: &str) -> bool {
        host::set_state(name, value)
    }

    fn cells(&self) -> &dyn SharedCells {
        &HostCells
    }

    fn stats(&self) -> (&Catalogue, &dyn Sink) {
        (self.metrics.catalogue(), &self.metrics)
    }
}

pub struct Request {
    stream: Stream<WasmHost>,
}

impl Request {
    /// A request of a gateway whose set has at least one variant, each with its stores.
    pub fn new(
        set: Rc<StageSet>,
        all_stores: Rc<Vec<Stores>>,
        metrics: Metrics,
        ids: Rc<Ids>,
    ) -> Option<Self> {
        let stream = Stream::new(WasmHost { metrics }, set, all_stores, ids)?;
        Some(Request { stream })
    }
}

fn action(flow: Flow) -> Action {
    match flow {
        Flow::Continue => Action::Continue,
        Flow::Pause => Action::Pause,
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
        let (status, mut headers) = answer_head(host::headers(MapType::HttpCallResponseHeaders));
        // Envoy's async client adds its own timing header to the answer; the router that
        // carries forwarded requests is configured not to, and the answers agree.
        headers.retain(|(k, _)| k != "x-envoy-upstream-service-time");
        let answer = UpstreamAnswer {
            host_reply: None,
            status,
            headers,
            body: host::buffer(BufferType::HttpCallResponseBody, body_size),
        };
        self.stream.on_call_answer(u64::from(token_id), &answer);
    }

    fn on_grpc_call_response(&mut self, token_id: u32, status_code: u32, response_size: usize) {
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
        self.stream.on_call_answer(u64::from(token_id), &answer);
    }
}

/// Aborts the VM on request, so tests can show that Envoy reloads it. Only builds with the
/// `crash-trigger` feature have it; release builds never do.
#[cfg(feature = "crash-trigger")]
#[allow(clippy::panic)]
fn crash_if_asked() {
    let headers = host::headers(MapType::HttpRequestHeaders);
    if crate::http::header(&headers, "x-apigw-edge-crash").is_some() {
        panic!("crash requested (crash-trigger build)");
    }
}

impl HttpContext for Request {
    fn on_http_request_headers(&mut self, _num_headers: usize, end_of_stream: bool) -> Action {
        #[cfg(feature = "crash-trigger")]
        crash_if_asked();
        action(self.stream.on_request_headers(end_of_stream))
    }

    fn on_http_request_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        action(self.stream.on_request_body(body_size, end_of_stream))
    }

    fn on_http_request_trailers(&mut self, _num_trailers: usize) -> Action {
        action(self.stream.on_request_trailers())
    }

    fn on_http_response_headers(&mut self, _num_headers: usize, end_of_stream: bool) -> Action {
        action(self.stream.on_response_headers(end_of_stream))
    }

    fn on_http_response_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        action(self.stream.on_response_body(body_size, end_of_stream))
    }

    fn on_http_response_trailers(&mut self, _num_trailers: usize) -> Action {
        action(self.stream.on_response_trailers())
    }
}
