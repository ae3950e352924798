//! The benchmark's reference filters, with none of the gateway's logic.
//!
//! - Configuration empty: lets every request through untouched (row B3, the fixed cost of a
//!   wasm VM in the request path).
//! - Configuration `dispatch`: answers every request itself with the body of one
//!   `dispatch_http_call` to the `lambda` cluster, sending a fixed 1.4 KB payload (row BD,
//!   the floor of any proxy-wasm design that calls Lambda for each request).
//! - Configuration `calls KIND N`: makes N host calls of one kind per request, then lets it
//!   through as the empty configuration does (rows X*: the cost of one call is the row's CPU
//!   per request over B3's, divided by N). Kinds: `headers` (read the request header map),
//!   `property` (`source.address`), `shared_get`, `shared_cas` (read, then write with the
//!   version read), `metric` (increment a counter), `time` (the clock), `set_header`.
//! - Configuration `reply K`: answers every request itself with a local reply carrying K
//!   headers and a small JSON body.
//! - Configuration `forward`: sends each request with a body on to the `lambda` cluster in
//!   place of the client's, as the gateway forwards through Envoy's router: holds the body,
//!   replaces the head with a fixed Invoke head (routed by the cluster header, as the rendered
//!   configuration routes) and the body with the fixed 1.4 KB payload, then holds the answer
//!   and replaces its status, headers and body (row BF, the floor of the gateway's forwarded
//!   `POST`, TF, as BD is of dispatching).
//! - Configuration `gateway dispatch CLUSTER AUTHORITY`: makes the host calls the gateway
//!   makes for a proxied `GET` (row T), in the same order and with payloads of the same
//!   sizes, and nothing else: reads the request headers and the clock, reads and writes a
//!   usage-plan cell, counts the request, dispatches a 1.6 KB Invoke to `CLUSTER`; on the
//!   answer reads its headers and body and the clock, records a latency and a count and
//!   answers with the gateway's four headers (row BT: T without the pipeline's own work).
//! - Configuration `gateway hit`: the same for a stage-cache hit (row TH): the request's
//!   headers and clock, the usage-plan cell, the cache's epoch cell, three counts and the
//!   cached answer (row BTH).

use std::time::Duration;

use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, BufferType, ContextType, LogLevel, MapType, MetricType};

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Warn);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(Root { mode: Mode::Pass }) });
}}

#[derive(Clone, Copy)]
enum Kind {
    Headers,
    Property,
    SharedGet,
    SharedCas,
    Metric(u32),
    Time,
    SetHeader,
}

#[derive(Clone, Copy)]
enum Mode {
    Pass,
    Dispatch,
    Calls(Kind, u32),
    Reply(usize),
    Forward,
    Gateway(Shape, GatewayMetrics),
}

/// Which of the gateway's answers [`Gateway`] imitates.
#[derive(Clone, Copy)]
enum Shape {
    /// A proxied `GET`: dispatch, then answer (the cluster and authority are leaked once).
    Dispatch {
        cluster: &'static str,
        authority: &'static str,
    },
    /// A stage-cache hit: answer at once.
    Hit,
}

struct Root {
    mode: Mode,
}

impl Context for Root {}

impl RootContext for Root {
    fn on_configure(&mut self, size: usize) -> bool {
        let config = hostcalls::get_buffer(BufferType::PluginConfiguration, 0, size)
            .ok()
            .flatten()
            .unwrap_or_default();
        let config = String::from_utf8_lossy(&config);
        let words: Vec<&str> = config.split_whitespace().collect();
        let number = |i: usize| {
            words
                .get(i)
                .and_then(|w| w.parse::<u32>().ok())
                .unwrap_or(1)
        };
        self.mode = match words.first().copied() {
            Some("dispatch") => Mode::Dispatch,
            Some("reply") => Mode::Reply(number(1) as usize),
            Some("forward") => Mode::Forward,
            Some("gateway") => {
                let shape = match words.get(1).copied() {
                    Some("dispatch") => Shape::Dispatch {
                        cluster: leak(words.get(2).copied().unwrap_or("lambda")),
                        authority: leak(words.get(3).copied().unwrap_or("lambda")),
                    },
                    Some("hit") => Shape::Hit,
                    _ => return false,
                };
                let _ = hostcalls::set_shared_data(PLAN_CELL, Some(&[0u8; 40]), None);
                Mode::Gateway(shape, GatewayMetrics::define())
            }
            Some("calls") => {
                let kind = match words.get(1).copied() {
                    Some("headers") => Kind::Headers,
                    Some("property") => Kind::Property,
                    Some("shared_get") => Kind::SharedGet,
                    Some("shared_cas") => Kind::SharedCas,
                    Some("metric") => Kind::Metric(
                        hostcalls::define_metric(MetricType::Counter, "bench_noop_calls")
                            .unwrap_or(0),
                    ),
                    Some("time") => Kind::Time,
                    Some("set_header") => Kind::SetHeader,
                    _ => return false,
                };
                if let Kind::SharedGet | Kind::SharedCas = kind {
                    let _ = hostcalls::set_shared_data(KEY, Some(&[0u8; 16]), None);
                }
                Mode::Calls(kind, number(2))
            }
            _ => Mode::Pass,
        };
        true
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(match self.mode {
            Mode::Pass => Box::new(Pass),
            Mode::Dispatch => Box::new(Dispatch),
            Mode::Calls(kind, n) => Box::new(Calls { kind, n }),
            Mode::Reply(k) => Box::new(Reply { headers: k }),
            Mode::Forward => Box::new(Forward),
            Mode::Gateway(shape, metrics) => Box::new(Gateway { shape, metrics }),
        })
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

/// The host's ids of the counters and histogram [`Gateway`] updates.
#[derive(Clone, Copy)]
struct GatewayMetrics {
    requests: u32,
    successes: u32,
    cache_hits: u32,
    latency: u32,
}

impl GatewayMetrics {
    /// Defines them once, at configuration, as the gateway defines its own.
    fn define() -> Self {
        let define = |kind, name| hostcalls::define_metric(kind, name).unwrap_or(0);
        GatewayMetrics {
            requests: define(MetricType::Counter, "bench_gateway_requests"),
            successes: define(MetricType::Counter, "bench_gateway_2xx"),
            cache_hits: define(MetricType::Counter, "bench_gateway_cache_hits"),
            latency: define(MetricType::Histogram, "bench_gateway_latency"),
        }
    }
}

/// Keeps a configuration word for the VM's lifetime (once per VM, at configuration).
fn leak(word: &str) -> &'static str {
    Box::leak(word.to_string().into_boxed_str())
}

struct Pass;

impl Context for Pass {}

impl HttpContext for Pass {}

/// A payload the size of a Lambda proxy event.
const PAYLOAD: [u8; 1400] = [b' '; 1400];

struct Dispatch;

impl Context for Dispatch {
    fn on_http_call_response(&mut self, _token: u32, _headers: usize, body_size: usize, _t: usize) {
        let body = hostcalls::get_buffer(BufferType::HttpCallResponseBody, 0, body_size)
            .ok()
            .flatten()
            .unwrap_or_default();
        let _ = hostcalls::send_http_response(
            200,
            vec![("content-type", "application/json")],
            Some(&body),
        );
    }
}

impl HttpContext for Dispatch {
    fn on_http_request_headers(&mut self, _headers: usize, _end_of_stream: bool) -> Action {
        invoke(
            "lambda",
            vec![
                (":method", "POST"),
                (":path", "/2015-03-31/functions/hello/invocations"),
                (":authority", "lambda"),
                ("content-type", "application/json"),
            ],
            &PAYLOAD,
        );
        Action::Pause
    }
}

/// Sends an Invoke to `cluster`; answers 500 itself when the host refuses to send it.
fn invoke(cluster: &str, head: Vec<(&str, &str)>, payload: &[u8]) {
    let sent = hostcalls::dispatch_http_call(
        cluster,
        head,
        Some(payload),
        vec![],
        Duration::from_secs(29),
    );
    if sent.is_err() {
        let _ = hostcalls::send_http_response(500, vec![], None);
    }
}

/// The shared-data key the `shared_*` kinds read and write.
const KEY: &str = "bench-noop";

struct Calls {
    kind: Kind,
    n: u32,
}

impl Context for Calls {}

impl HttpContext for Calls {
    fn on_http_request_headers(&mut self, _headers: usize, _end_of_stream: bool) -> Action {
        for i in 0..self.n {
            match self.kind {
                Kind::Headers => {
                    let _ = hostcalls::get_map_bytes(MapType::HttpRequestHeaders);
                }
                Kind::Property => {
                    let _ = hostcalls::get_property(vec!["source", "address"]);
                }
                Kind::SharedGet => {
                    let _ = hostcalls::get_shared_data(KEY);
                }
                Kind::SharedCas => {
                    if let Ok((Some(v), cas)) = hostcalls::get_shared_data(KEY) {
                        let _ = hostcalls::set_shared_data(KEY, Some(&v), cas);
                    }
                }
                Kind::Metric(id) => {
                    let _ = hostcalls::increment_metric(id, 1);
                }
                Kind::Time => {
                    let _ = hostcalls::get_current_time();
                }
                Kind::SetHeader => {
                    let value = [b'a' + (i % 26) as u8];
                    let _ = hostcalls::set_map_value_bytes(
                        MapType::HttpRequestHeaders,
                        "x-bench",
                        Some(&value),
                    );
                }
            }
        }
        Action::Continue
    }
}

/// A small JSON body, like a cache hit's.
const REPLY_BODY: &[u8] = br#"{"message":"Missing Authentication Token"}"#;

/// Header names and values of the `reply` mode (up to 32).
const NAMES: [&str; 32] = [
    "x-h00", "x-h01", "x-h02", "x-h03", "x-h04", "x-h05", "x-h06", "x-h07", "x-h08", "x-h09",
    "x-h10", "x-h11", "x-h12", "x-h13", "x-h14", "x-h15", "x-h16", "x-h17", "x-h18", "x-h19",
    "x-h20", "x-h21", "x-h22", "x-h23", "x-h24", "x-h25", "x-h26", "x-h27", "x-h28", "x-h29",
    "x-h30", "x-h31",
];

struct Reply {
    headers: usize,
}

impl Context for Reply {}

impl HttpContext for Reply {
    fn on_http_request_headers(&mut self, _headers: usize, _end_of_stream: bool) -> Action {
        let mut headers = vec![("content-type", "application/json")];
        headers.extend(
            NAMES
                .iter()
                .take(self.headers)
                .map(|n| (*n, "c6af9ac6-7b61-11e6-9a41-93e8deadbeef")),
        );
        let _ = hostcalls::send_http_response(200, headers, Some(REPLY_BODY));
        Action::Pause
    }
}

/// The Invoke head [`Forward`] puts in place of the client's.
const INVOKE_HEAD: [(&str, &str); 8] = [
    (":method", "POST"),
    (":path", "/2015-03-31/functions/hello/invocations"),
    (":authority", "lambda"),
    (":scheme", "http"),
    ("content-type", "application/json"),
    ("content-length", "1400"),
    ("x-forwarded-proto", "http"),
    ("x-apigw-edge-cluster", "lambda"),
];

/// The client's answer [`Forward`] puts in place of the Invoke answer.
const ANSWER_BODY: &[u8] = br#"{"message":"hello from the stand-in"}"#;

struct Forward;

impl Context for Forward {}

impl HttpContext for Forward {
    fn on_http_request_headers(&mut self, _headers: usize, end_of_stream: bool) -> Action {
        if end_of_stream {
            let _ = hostcalls::send_http_response(400, vec![], None);
        }
        Action::Pause
    }

    fn on_http_request_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        if !end_of_stream {
            return Action::Pause;
        }
        let _ = hostcalls::set_map(MapType::HttpRequestHeaders, INVOKE_HEAD.to_vec());
        let _ = hostcalls::set_buffer(BufferType::HttpRequestBody, 0, body_size, &PAYLOAD);
        Action::Continue
    }

    fn on_http_response_headers(&mut self, _headers: usize, end_of_stream: bool) -> Action {
        if end_of_stream {
            return Action::Continue;
        }
        Action::Pause
    }

    fn on_http_response_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        if !end_of_stream {
            return Action::Pause;
        }
        let length = ANSWER_BODY.len().to_string();
        let _ = hostcalls::set_map(
            MapType::HttpResponseHeaders,
            vec![
                (":status", "200"),
                ("content-type", "application/json"),
                ("content-length", &length),
                ("x-amzn-requestid", "c6af9ac6-7b61-11e6-9a41-93e8deadbeef"),
            ],
        );
        let _ = hostcalls::set_buffer(BufferType::HttpResponseBody, 0, body_size, ANSWER_BODY);
        Action::Continue
    }
}

/// The shared-data cell standing for a usage plan's throttle and quota (the gateway's key
/// is 34 bytes, its value 40).
const PLAN_CELL: &str = "apigw-edge/bench12345/prod/u/bench";
/// The stage cache's epoch cell, the one cell a hit reads while nothing was invalidated
/// (never written, as in the benchmark).
const EPOCH_CELL: &str = "apigw-edge/bench12345/prod/cache/epoch";

/// The gateway's headers on a proxied answer and a cache hit (the same four).
const GATEWAY_HEADERS: [(&str, &str); 4] = [
    ("content-type", "application/json"),
    ("x-amzn-requestid", "c412d592-1e2e-4b96-8775-5a995112f4e7"),
    ("x-amz-apigw-id", "xBLVkh4uS5aHdVo="),
    (
        "x-amzn-trace-id",
        "Root=1-6b0ed070-1e2e4b9687755a995112f4e7",
    ),
];

/// A payload the size of the gateway's proxy event for the benchmark's `GET` as `oha` sends
/// it (`scripts/bench.sh --instructions` compares the bytes both rows send the stand-in).
/// The event carries the client's headers, so under `wrk`, which sends three fewer
/// (`accept`, `accept-encoding`, `user-agent`), the gateway's is 191 bytes smaller.
const EVENT: [u8; 1603] = [b' '; 1603];

struct Gateway {
    shape: Shape,
    metrics: GatewayMetrics,
}

impl Gateway {
    /// What the gateway does with the host before it decides: the request's headers, the
    /// clock, the plan's cell read and written with the version read, the request counted.
    fn admit(&self) {
        let _ = hostcalls::get_map_bytes(MapType::HttpRequestHeaders);
        let _ = hostcalls::get_current_time();
        if let Ok((Some(v), cas)) = hostcalls::get_shared_data(PLAN_CELL) {
            let _ = hostcalls::set_shared_data(PLAN_CELL, Some(&v), cas);
        }
        let _ = hostcalls::increment_metric(self.metrics.requests, 1);
    }

    fn answer(&self, body: &[u8]) {
        let _ = hostcalls::send_http_response(200, GATEWAY_HEADERS.to_vec(), Some(body));
    }
}

impl Context for Gateway {
    fn on_http_call_response(&mut self, _token: u32, _headers: usize, body_size: usize, _t: usize) {
        let _ = hostcalls::get_map_bytes(MapType::HttpCallResponseHeaders);
        let _ = hostcalls::get_buffer(BufferType::HttpCallResponseBody, 0, body_size);
        let _ = hostcalls::get_current_time();
        let _ = hostcalls::record_metric(self.metrics.latency, 1);
        let _ = hostcalls::increment_metric(self.metrics.successes, 1);
        self.answer(ANSWER_BODY);
    }
}

impl HttpContext for Gateway {
    fn on_http_request_headers(&mut self, _headers: usize, _end_of_stream: bool) -> Action {
        self.admit();
        match self.shape {
            Shape::Dispatch { cluster, authority } => invoke(
                cluster,
                vec![
                    (":method", "POST"),
                    (
                        ":path",
                        "/2015-03-31/functions/arn:aws:lambda:us-east-1:123456789012:function:hello/invocations",
                    ),
                    (":authority", authority),
                    ("content-type", "application/json"),
                    ("x-amz-invocation-type", "RequestResponse"),
                    ("user-agent", "AmazonAPIGateway_bench12345"),
                ],
                &EVENT,
            ),
            Shape::Hit => {
                let _ = hostcalls::get_shared_data(EPOCH_CELL);
                let _ = hostcalls::increment_metric(self.metrics.cache_hits, 1);
                let _ = hostcalls::increment_metric(self.metrics.successes, 1);
                self.answer(ANSWER_BODY);
            }
        }
        Action::Pause
    }
}
