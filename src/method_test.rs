//! Method Test: one request through the gateway's pipeline outside any proxy, reported the
//! way API Gateway's console TEST panel reports it.
//!
//! Owns: driving one request through [`Gateway`]'s stages with its outbound calls answered
//! by a caller's [`Transport`], and the transcript of the run: the method request, each
//! call as sent and its answer, the method response, and execution log lines in API
//! Gateway's wording.
//! Must not: do I/O or read clocks itself (the transport does both), or run stages of its
//! own: what it reports is what the filter would do with the same request.

use std::cell::RefCell;

use crate::execution_log;
use crate::gateway::{CallKind, Event, Gateway, Host, Outcome, RequestHead, Step};
use crate::http::{Header, UpstreamAnswer, UpstreamCall};
use crate::jwt::ring::KeyRing;
use crate::shared::SharedCells;

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
    /// Fetches a document (a JWKS) with `GET`: its status and body.
    fn fetch(&mut self, url: &str) -> Result<(u16, Vec<u8>), String> {
        Err(format!("cannot fetch {url} here"))
    }
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
    // The keys of Cognito and JWT authorizers, fetched as a worker fetches them.
    let sources = gateway.jwks_sources();
    let ring = RefCell::new(KeyRing::new(sources.len()));
    let mut fetched = Vec::new();
    for (i, source) in sources.iter().enumerate() {
        let (status, body) = match transport.fetch(&source.url) {
            Ok((status, body)) => (Some(status), body),
            Err(why) => {
                fetched.push(format!("JWKS of `{}`: {why}", source.issuer));
                (None, Vec::new())
            }
        };
        let line = ring
            .borrow_mut()
            .fetched(sources, cells, i, started, status, &body);
        fetched.push(line.unwrap_or_else(|e| e));
    }
    let host = |now_ms| Host {
        keys: Some(&ring),
        ..Host::bare(cells, now_ms)
    };
    let mut ex = gateway.begin(head);
    let mut calls = Vec::new();
    let mut filter_log = fetched;
    let mut body = Some(req.body.clone());
    let mut described = false;
    let mut step = gateway.advance(&mut ex, &host(started));
    let outcome = loop {
        notices(&mut ex.take_events(), &mut filter_log);
        if !described {
            if let Some((_, params)) = gateway.method_request(&ex) {
                described = true;
                log.lines(execution_log::method_request(
                    Some(params),
                    &req.path,
                    &req.headers,
                    &req.body,
                ));
            }
        }
        step = match step {
            Step::Reply(outcome) => break *outcome,
            Step::NeedBody => {
                let now = transport.now_ms();
                gateway.body(&mut ex, body.take().unwrap_or_default(), &host(now))
            }
            // A test does not spend the fleet's limits: the rate-limit service is not
            // asked, and the check passes.
            Step::Call(call) if call.kind == CallKind::RateLimit => {
                let now = transport.now_ms();
                log.at(now);
                log.line("Usage plan check not sent to the rate-limit service (a test run does not count against the fleet's limits)".to_string());
                let ok = crate::http::UpstreamAnswer {
                    status: Some(200),
                    body: crate::usage::rls::ok_response(),
                    ..Default::default()
                };
                gateway.resume(&mut ex, &ok, &host(now))
            }
            Step::Call(_) if calls.len() >= MAX_CALLS => {
                let now = transport.now_ms();
                let why = "the request made more calls than a test run allows";
                gateway.call_failed(&mut ex, why, &host(now))
            }
            Step::Call(call) => {
                let url = transport.url(&call.request);
                log.at(transport.now_ms());
                let secrets = execution_log::secrets(&req.headers);
                log.lines(execution_log::call(
                    call.kind,
                    &url,
                    &call.request,
                    &secrets,
                ));
                let sent = transport.now_ms();
                let answer = transport.send(&call.request);
                let now = transport.now_ms();
                let latency_ms = now.saturating_sub(sent);
                log.at(now);
                let result = answer.as_ref().map_err(String::as_str);
                log.lines(execution_log::answer(call.kind, result, latency_ms));
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
        log.lines(execution_log::method_request(
            None,
            &req.path,
            &req.headers,
            &req.body,
        ));
    }
    let finished = transport.now_ms();
    let access_line = gateway.access_line(&ex, &outcome, finished);
    log.at(finished);
    let reply = &outcome.reply;
    log.lines(execution_log::method_response(reply));
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
            .push(format!("{} : {text}", crate::time::java_date(self.now_ms)));
    }

    fn lines(&mut self, texts: Vec<String>) {
        for t in texts {
            self.line(t);
        }
    }
}

fn notices(events: &mut Vec<Event>, out: &mut Vec<String>) {
    for e in events.drain(..) {
        if let Event::Notice(line) = e {
            out.push(line);
        }
    }
}

#[cfg(test)]
mod tests;
