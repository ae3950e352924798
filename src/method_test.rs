//! Method Test: one request through the gateway's pipeline outside any proxy, reported the
//! way API Gateway's console TEST panel reports it.
//!
//! Owns: driving one request through [`Gateway`]'s stages with its outbound calls answered
//! by a caller's [`Transport`], and the transcript of the run: the method request, each
//! call as sent and its answer, the method response, and execution log lines in API
//! Gateway's wording.
//! Must not: do I/O or read clocks itself (the transport does both), or run stages of its
//! own: what it reports is what the filter would do with the same request.

use crate::gateway::{CallKind, Event, Gateway, Host, Outcome, RequestHead, Step};
use crate::http::{Header, UpstreamAnswer, UpstreamCall};
use crate::shared::SharedCells;
use crate::time::Utc;

/// The request to test, as the console takes it: a path of the API (without the stage),
/// query, headers and body.
#[derive(Debug, Clone, Default)]
pub struct TestRequest {
    pub method: String,
    /// A path of the API, such as `/pets/7`, with its query string if any.
    pub path: String,
    pub headers: Vec<Header>,
    pub body: Vec<u8>,
}

/// Makes the run's outbound calls and tells the time.
pub trait Transport {
    /// The URL a call goes to, for the transcript.
    fn url(&self, call: &UpstreamCall) -> String;
    /// Sends a call; `Err` says why it could not be made (the gateway then answers as it
    /// does when Envoy cannot reach the integration).
    fn send(&mut self, call: &UpstreamCall) -> Result<UpstreamAnswer, String>;
    /// Milliseconds since the Unix epoch.
    fn now_ms(&self) -> u64;
}

/// One outbound call of the run.
#[derive(Debug, Clone)]
pub struct Sent {
    pub kind: CallKind,
    pub url: String,
    pub call: UpstreamCall,
    pub answer: Result<UpstreamAnswer, String>,
    pub latency_ms: u64,
}

/// What a test run did.
#[derive(Debug, Clone)]
pub struct Transcript {
    pub request_id: String,
    /// The path a client would have sent (with the stage or base path).
    pub client_path: String,
    pub outcome: Outcome,
    pub calls: Vec<Sent>,
    /// API Gateway-style execution log lines, time-stamped.
    pub log: Vec<String>,
    /// Lines the filter would log for this request (warnings and failures).
    pub filter_log: Vec<String>,
    /// The request's access log line, when the stage has `accessLogSettings`.
    pub access_line: Option<String>,
    pub latency_ms: u64,
}

impl Transcript {
    /// Whether the answer is one of the gateway's own errors (not the integration's).
    pub fn is_gateway_error(&self) -> bool {
        self.outcome.error.is_some()
    }
}

/// At most this many calls per run (an authorizer and the integration need two).
const MAX_CALLS: usize = 8;

/// Runs `req` through `gateway`'s pipeline, answering its calls with `transport`.
pub fn run(
    gateway: &Gateway,
    req: TestRequest,
    transport: &mut dyn Transport,
    cells: &dyn SharedCells,
    request_id: &str,
) -> Transcript {
    let started = transport.now_ms();
    let client_path = gateway.client_path(&req.path);
    let mut headers = req.headers.clone();
    if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
        headers.insert(0, (":authority".into(), "test-invoke".into()));
    }
    let head = RequestHead {
        method: req.method.to_ascii_uppercase(),
        path: client_path.clone(),
        headers,
        source_ip: "test-invoke-source-ip".into(),
        local_port: None,
        protocol: "HTTP/1.1".into(),
        request_id: request_id.to_string(),
        now_ms: started,
        client_cert: None,
        body_follows: !req.body.is_empty(),
    };
    let mut log = Log::new(started);
    log.line(format!("Starting execution for request: {request_id}"));
    log.line(format!(
        "HTTP Method: {}, Resource Path: {}",
        head.method,
        req.path.split('?').next().unwrap_or_default()
    ));
    let host = |now_ms| Host {
        cells,
        store: None,
        auth_cache: None,
        keys: None,
        tokens: None,
        certs: None,
        now_ms,
    };
    let mut ex = gateway.begin(head);
    let mut calls = Vec::new();
    let mut filter_log = Vec::new();
    let mut body = Some(req.body.clone());
    let mut described = false;
    let mut step = gateway.advance(&mut ex, &host(started));
    let outcome = loop {
        notices(&mut ex.take_events(), &mut filter_log);
        if !described {
            if let Some((resource, params)) = gateway.method_request(&ex) {
                described = true;
                describe_method_request(&mut log, resource, params, &req);
            }
        }
        step = match step {
            Step::Reply(outcome) => break *outcome,
            Step::NeedBody => {
                let now = transport.now_ms();
                gateway.body(&mut ex, body.take().unwrap_or_default(), &host(now))
            }
            Step::Call(_) if calls.len() >= MAX_CALLS => {
                let now = transport.now_ms();
                let why = "the request made more calls than a test run allows";
                gateway.call_failed(&mut ex, why, &host(now))
            }
            Step::Call(call) => {
                let url = transport.url(&call.request);
                log.at(transport.now_ms());
                describe_call(&mut log, call.kind, &url, &call.request);
                let sent = transport.now_ms();
                let answer = transport.send(&call.request);
                let now = transport.now_ms();
                let latency_ms = now.saturating_sub(sent);
                log.at(now);
                describe_answer(&mut log, call.kind, &answer, latency_ms);
                let next = match &answer {
                    Ok(a) => gateway.resume(&mut ex, a, &host(now)),
                    Err(why) => gateway.call_failed(&mut ex, why, &host(now)),
                };
                calls.push(Sent {
                    kind: call.kind,
                    url,
                    call: call.request,
                    answer,
                    latency_ms,
                });
                next
            }
        };
    };
    notices(&mut ex.take_events(), &mut filter_log);
    if !described {
        describe_method_request(&mut log, "", &[], &req);
    }
    let finished = transport.now_ms();
    let access_line = gateway.access_line(&ex, &outcome, finished);
    log.at(finished);
    let reply = &outcome.reply;
    log.line(format!(
        "Method response body after transformations: {}",
        String::from_utf8_lossy(&reply.body)
    ));
    log.line(format!(
        "Method response headers: {}",
        map_text(&reply.headers)
    ));
    if let Some(line) = &outcome.log {
        filter_log.push(line.clone());
        if outcome.error.is_some() || reply.status >= 500 {
            log.line(format!("Execution failed: {line}"));
        }
    }
    if outcome.error.is_none() {
        log.line("Successfully completed execution".into());
    } else if let Some(e) = &outcome.error {
        log.line(format!("Gateway response type: {e:?}"));
    }
    log.line(format!("Method completed with status: {}", reply.status));
    Transcript {
        request_id: request_id.to_string(),
        client_path,
        outcome,
        calls,
        log: log.lines,
        filter_log,
        access_line,
        latency_ms: finished.saturating_sub(started),
    }
}

/// Time-stamped lines.
struct Log {
    now_ms: u64,
    lines: Vec<String>,
}

impl Log {
    fn new(now_ms: u64) -> Log {
        Log {
            now_ms,
            lines: Vec::new(),
        }
    }

    fn at(&mut self, now_ms: u64) {
        self.now_ms = now_ms;
    }

    fn line(&mut self, text: String) {
        self.lines
            .push(format!("{} : {text}", Utc::execution_log(self.now_ms)));
    }
}

fn notices(events: &mut Vec<Event>, out: &mut Vec<String>) {
    for e in events.drain(..) {
        if let Event::Notice(line) = e {
            out.push(line);
        }
    }
}

/// `{name=value, ...}`, the way API Gateway's execution log prints maps.
pub fn map_text(pairs: &[Header]) -> String {
    let items: Vec<String> = pairs
        .iter()
        .filter(|(k, _)| !k.starts_with(':'))
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    format!("{{{}}}", items.join(", "))
}

/// A header list for the log, with credentials masked as API Gateway masks them.
fn masked(headers: &[Header]) -> Vec<Header> {
    headers
        .iter()
        .map(|(k, v)| {
            let secret = ["authorization", "x-amz-security-token", "x-api-key"]
                .iter()
                .any(|s| k.eq_ignore_ascii_case(s));
            if secret {
                let shown: String = v.chars().take(4).collect();
                (k.clone(), format!("{shown}****"))
            } else {
                (k.clone(), v.clone())
            }
        })
        .collect()
}

fn describe_method_request(
    log: &mut Log,
    resource: &str,
    params: &[(String, String)],
    req: &TestRequest,
) {
    let query = req.path.split_once('?').map(|(_, q)| q).unwrap_or_default();
    let query: Vec<Header> = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (k.to_string(), v.to_string())
        })
        .collect();
    if !resource.is_empty() {
        log.line(format!("Method request path: {}", map_text(params)));
    }
    log.line(format!("Method request query string: {}", map_text(&query)));
    log.line(format!(
        "Method request headers: {}",
        map_text(&masked(&req.headers))
    ));
    log.line(format!(
        "Method request body before transformations: {}",
        String::from_utf8_lossy(&req.body)
    ));
}

fn describe_call(log: &mut Log, kind: CallKind, url: &str, call: &UpstreamCall) {
    let what = match kind {
        CallKind::Authorizer => "Authorizer request",
        CallKind::Integration => "Endpoint request",
    };
    log.line(format!("{what} URI: {url}"));
    log.line(format!(
        "{what} headers: {}",
        map_text(&masked(&call.headers))
    ));
    log.line(format!(
        "{what} body after transformations: {}",
        String::from_utf8_lossy(&call.body)
    ));
    log.line(format!("Sending request to {url}"));
}

fn describe_answer(
    log: &mut Log,
    kind: CallKind,
    answer: &Result<UpstreamAnswer, String>,
    latency_ms: u64,
) {
    let (what, latency) = match kind {
        CallKind::Authorizer => ("Authorizer", "Authorizer latency"),
        CallKind::Integration => ("Endpoint", "Integration latency"),
    };
    match answer {
        Ok(a) => {
            let status = a.status.map_or("none".to_string(), |s| s.to_string());
            log.line(format!(
                "Received response. Status: {status}, {latency}: {latency_ms} ms"
            ));
            log.line(format!("{what} response headers: {}", map_text(&a.headers)));
            log.line(format!(
                "{what} response body before transformations: {}",
                String::from_utf8_lossy(&a.body)
            ));
        }
        Err(why) => log.line(format!(
            "Execution failed due to a network error: {why} ({latency}: {latency_ms} ms)"
        )),
    }
}

#[cfg(test)]
mod tests;
