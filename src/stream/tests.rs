//! The stream driver against a scripted host: which host actions each callback leads to.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use serde_json::{json, Value};

use super::*;
use crate::config::{parse_deployment, FilterConfig};
use crate::shared::memory::Cells;
use crate::stats::Op;

const FN: &str = "arn:aws:apigateway:us-east-1:lambda:path/2015-03-31/functions/arn:aws:lambda:us-east-1:123456789012:function:hello/invocations";

/// A host that answers from scripted values and writes down what it was asked to do.
#[derive(Default)]
struct Script {
    request: Vec<Header>,
    request_body: Vec<u8>,
    response: Vec<Header>,
    response_body: Vec<u8>,
    dispatch_fails: bool,
    /// The host's own way of sending integration requests (proxy-wasm's when unset).
    forwarding: Option<crate::config::Forwarding>,
    did: RefCell<Vec<String>>,
    /// The head of the last request forwarded in place of the client's.
    forwarded: RefCell<Vec<Header>>,
    /// The body of the last call dispatched.
    sent: RefCell<Vec<u8>>,
    stats: RefCell<Vec<Op>>,
    cells: Cells,
    catalogue: Option<Catalogue>,
    /// How often the clock was read.
    clock_reads: Cell<usize>,
    /// Why the host made the response itself, when it did.
    made_by_host: Option<String>,
    /// How often the host was asked that.
    asked_who_answered: Cell<usize>,
}

struct Fake(Rc<Script>);

impl Fake {
    fn note(&self, line: String) {
        self.0.did.borrow_mut().push(line);
    }
}

impl Sink for Script {
    fn apply(&self, op: Op) {
        self.stats.borrow_mut().push(op);
    }
}

impl StreamHost for Fake {
    fn request_headers(&self) -> Vec<Header> {
        self.0.request.clone()
    }
    fn connection(&self) -> Connection {
        Connection {
            protocol: "HTTP/1.1".into(),
            source_ip: "10.0.0.1".into(),
            local_port: Some(8080),
        }
    }
    fn now_ms(&self) -> u64 {
        self.0.clock_reads.set(self.0.clock_reads.get() + 1);
        1_700_000_000_000
    }
    fn request_body(&self, size: usize) -> Vec<u8> {
        self.0.request_body.iter().take(size).copied().collect()
    }
    fn response_headers(&self) -> Vec<Header> {
        self.0.response.clone()
    }
    fn response_made_by_host(&self) -> Option<String> {
        let asked = &self.0.asked_who_answered;
        asked.set(asked.get() + 1);
        self.0.made_by_host.clone()
    }
    fn response_body(&self, size: usize) -> Vec<u8> {
        self.0.response_body.iter().take(size).copied().collect()
    }
    fn send_reply(&self, reply: &Reply) {
        self.note(format!(
            "reply {} {}",
            reply.status,
            String::from_utf8_lossy(&reply.body)
        ));
    }
    fn set_request_headers(&self, headers: &[(&str, &str)]) -> bool {
        let cluster = headers
            .iter()
            .find(|(k, _)| *k == crate::http::FORWARD_CLUSTER_HEADER)
            .map_or("", |(_, v)| v);
        self.note(format!("request headers to {cluster}"));
        self.0.forwarded.replace(
            headers
                .iter()
                .map(|&(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        );
        true
    }
    fn set_request_body(&self, held: usize, body: &[u8]) -> bool {
        self.note(format!("request body {held} -> {}", body.len()));
        true
    }
    fn set_response_headers(&self, headers: &[(&str, &str)]) -> bool {
        let status = headers
            .iter()
            .find(|(k, _)| *k == ":status")
            .map_or("", |(_, v)| v);
        self.note(format!("response headers {status}"));
        true
    }
    fn set_response_header(&self, name: &str, value: &str) -> bool {
        self.note(format!("response header {name}: {value}"));
        true
    }
    fn set_response_body(&self, held: usize, body: &[u8]) -> bool {
        self.note(format!(
            "response body {held} -> {}",
            String::from_utf8_lossy(body)
        ));
        true
    }
    fn resume_request(&self) -> bool {
        self.note("resume".into());
        true
    }
    fn dispatch(&self, kind: CallKind, call: &UpstreamCall) -> Result<u64, String> {
        if self.0.dispatch_fails {
            return Err("BadArgument".into());
        }
        self.note(format!("dispatch {kind:?} to {}", call.cluster));
        self.0.sent.replace(call.body.clone());
        Ok(7)
    }
    fn set_state(&self, name: &str, _value: &str) -> bool {
        self.note(format!("state {name}"));
        true
    }
    fn cells(&self) -> &dyn SharedCells {
        &self.0.cells
    }
    fn forwarding(&self) -> crate::config::Forwarding {
        self.0
            .forwarding
            .unwrap_or(crate::config::Forwarding::default_for(false))
    }
    fn stats(&self) -> (&Catalogue, &dyn Sink) {
        match &self.0.catalogue {
            Some(c) => (c, self.0.as_ref()),
            None => unreachable!("scripts carry a catalogue"),
        }
    }
}

fn set(patch: Value) -> Rc<StageSet> {
    set_of(hello_export(), patch)
}

fn hello_export() -> Value {
    json!({"swagger": "2.0", "paths": {
        "/hello": {"x-amazon-apigateway-any-method": {"x-amazon-apigateway-integration": {
            "type": "aws_proxy", "httpMethod": "POST", "uri": FN}}},
        "/mock": {"get": {"x-amazon-apigateway-integration": {
            "type": "mock", "requestTemplates": {"application/json": "{\"statusCode\": 200}"},
            "responses": {"default": {"statusCode": "200",
                "responseTemplates": {"application/json": "{\"ok\":true}"}}}},
            "responses": {"200": {"description": "ok"}}}}}})
}

fn set_of(export: Value, patch: Value) -> Rc<StageSet> {
    let mut d = json!({"openapi": "api.json", "stage": "dev",
                       "lambda": {"endpoint": "http://127.0.0.1:9000", "signing": "NONE"}});
    if let (Some(obj), Some(p)) = (d.as_object_mut(), patch.as_object()) {
        for (k, v) in p {
            obj.insert(k.clone(), v.clone());
        }
    }
    let cfg = FilterConfig::single(parse_deployment(d).unwrap(), export);
    Rc::new(StageSet::compile(&cfg).unwrap().set)
}

fn stream(set: Rc<StageSet>, script: Script) -> (Stream<Fake>, Rc<Script>) {
    let script = Rc::new(Script {
        catalogue: Some(Catalogue::new(&[], &[])),
        ..script
    });
    let stores = Rc::new(Stores::for_set(&set));
    let s = Stream::new(Fake(script.clone()), set, stores, Rc::new(Ids::seeded(1))).unwrap();
    (s, script)
}

/// A stream of the default stage with a body-less `GET /dev/hello` (a proxy integration).
fn hello_get() -> (Stream<Fake>, Rc<Script>) {
    stream(
        set(json!({})),
        Script {
            request: head("GET", "/dev/hello"),
            ..Script::default()
        },
    )
}

/// A stream of a stage (`patch` over the defaults) with `POST /dev/hello` and a 5-byte body,
/// whose forwarded answer is a 200 carrying `payload`.
fn hello_post(patch: Value, payload: &str) -> (Stream<Fake>, Rc<Script>) {
    stream(
        set(patch),
        Script {
            request: head("POST", "/dev/hello"),
            request_body: b"hello".to_vec(),
            response: vec![(":status".into(), "200".into())],
            response_body: payload.as_bytes().to_vec(),
            ..Script::default()
        },
    )
}

fn head(method: &str, path: &str) -> Vec<Header> {
    [
        (":method", method),
        (":path", path),
        (":authority", "gw.local"),
        (":scheme", "http"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

fn did(script: &Script) -> Vec<String> {
    script.did.borrow().clone()
}

fn lambda_answer(payload: &str) -> UpstreamAnswer {
    UpstreamAnswer {
        status: Some(200),
        headers: vec![("content-type".into(), "application/json".into())],
        body: payload.as_bytes().to_vec(),
        host_reply: None,
    }
}

#[test]
fn local_answers_are_sent_and_counted() {
    for (path, want) in [
        ("/dev/mock", "reply 200 {\"ok\":true}"),
        (
            "/dev/nowhere",
            "reply 403 {\"message\":\"Missing Authentication Token\"}",
        ),
    ] {
        let (mut s, script) = stream(
            set(json!({})),
            Script {
                request: head("GET", path),
                ..Script::default()
            },
        );
        assert_eq!(s.on_request_headers(true), Flow::Pause, "{path}");
        assert_eq!(did(&script), [want], "{path}");
        let class = if want.starts_with("reply 2") { 0 } else { 1 };
        assert_eq!(
            script.stats.borrow().as_slice(),
            [Op::Add(class, 1)],
            "{path}"
        );
    }
}

#[test]
fn a_bodyless_request_dispatches_the_invoke_call_and_answers_from_it() {
    let (mut s, script) = hello_get();
    assert_eq!(s.on_request_headers(true), Flow::Pause);
    assert_eq!(
        did(&script),
        ["dispatch Integration to apigw_lambda_http_127_0_0_1_9000"]
    );
    s.on_call_answer(7, &lambda_answer(r#"{"statusCode":201,"body":"made"}"#));
    assert_eq!(did(&script)[1..], ["reply 201 made"]);
}

/// The connection header never reaches the integration; its value replaces the host's
/// connection facts only when the deployment says a filter in front writes it.
#[test]
fn the_connection_header_is_dropped_and_trusted_only_when_written_in_front() {
    for (trusted, want_ip, want_protocol) in [
        (false, "10.0.0.1", "HTTP/1.1"),
        (true, "203.0.113.7", "HTTP/2"),
    ] {
        let mut request = head("GET", "/dev/hello");
        request.push((
            crate::connection::HEADER.into(),
            "HTTP/2 203.0.113.7:1234 443".into(),
        ));
        let (mut s, script) = stream(
            set(json!({"envoy": {"connectionHeader": trusted}})),
            Script {
                request,
                ..Script::default()
            },
        );
        assert_eq!(s.on_request_headers(true), Flow::Pause);
        let event: Value = serde_json::from_slice(&script.sent.borrow()).unwrap();
        assert_eq!(event["requestContext"]["identity"]["sourceIp"], want_ip);
        assert_eq!(event["requestContext"]["protocol"], want_protocol);
        let headers = event["multiValueHeaders"].as_object().unwrap();
        assert!(
            headers
                .keys()
                .all(|k| !k.eq_ignore_ascii_case(crate::connection::HEADER)),
            "{headers:?}"
        );
    }
}

#[test]
fn a_request_with_a_body_goes_on_as_the_invoke_call_and_its_answer_is_rewritten() {
    let payload = r#"{"statusCode":202,"body":"taken"}"#;
    let (mut s, script) = hello_post(json!({}), payload);
    assert_eq!(s.on_request_headers(false), Flow::Pause);
    assert_eq!(s.on_request_body(5, true), Flow::Continue);
    let forwarded = did(&script);
    assert_eq!(
        forwarded[0],
        "request headers to apigw_lambda_http_127_0_0_1_9000"
    );
    assert!(
        forwarded[1].starts_with("request body 5 -> "),
        "{forwarded:?}"
    );
    // An answer to a call nobody made changes nothing: the forwarded request keeps its
    // state and its answer is still rewritten.
    s.on_call_answer(7, &lambda_answer("{}"));
    assert_eq!(did(&script).len(), 2);
    assert_eq!(s.on_response_headers(false), Flow::Pause);
    assert_eq!(s.on_response_body(payload.len(), true), Flow::Continue);
    assert_eq!(
        did(&script)[2..],
        [
            "response headers 202",
            &format!("response body {} -> taken", payload.len())
        ]
    );
    // Whatever of the upstream's body still comes is dropped.
    assert_eq!(s.on_response_body(3, true), Flow::Continue);
    assert_eq!(
        did(&script).last().map(String::as_str),
        Some("response body 3 -> ")
    );
}

/// The host is asked whether it made a forwarded request's answer only when the answer is
/// not a success: its own answers on that path are all errors.
#[test]
fn only_an_unsuccessful_answer_makes_the_host_say_who_answered() {
    for (status, made_by_host, asked, reply) in [
        ("200", None, 0, "response headers 202"),
        ("204", None, 0, "response headers 202"),
        (
            "504",
            Some("upstream_response_timeout"),
            1,
            "response headers 504",
        ),
        ("502", None, 1, "response headers 500"),
    ] {
        let payload = r#"{"statusCode":202,"body":"taken"}"#;
        let (mut s, script) = stream(
            set(json!({})),
            Script {
                request: head("POST", "/dev/hello"),
                request_body: b"hello".to_vec(),
                response: vec![(":status".into(), status.into())],
                response_body: payload.as_bytes().to_vec(),
                made_by_host: made_by_host.map(String::from),
                ..Script::default()
            },
        );
        s.on_request_headers(false);
        s.on_request_body(5, true);
        s.on_response_headers(false);
        s.on_response_body(payload.len(), true);
        assert_eq!(script.asked_who_answered.get(), asked, "{status}");
        assert!(
            did(&script).iter().any(|d| d == reply),
            "{status}: {:?}",
            did(&script)
        );
    }
}

/// Every stage of one callback sees the same time: the clock is read at most once per
/// callback, also when the stage logs access.
#[test]
fn the_clock_is_read_at_most_once_per_callback() {
    let clock = |script: &Script| script.clock_reads.replace(0);
    let payload = r#"{"statusCode":200,"body":"ok"}"#;
    let (mut s, script) = hello_post(
        json!({"accessLogSettings": {"format": "$context.requestId $context.responseLatency"}}),
        payload,
    );
    s.on_request_headers(false);
    assert_eq!(clock(&script), 1, "request headers");
    s.on_request_body(5, true);
    assert_eq!(clock(&script), 1, "request body");
    s.on_response_headers(false);
    assert!(clock(&script) <= 1, "response headers");
    s.on_response_body(payload.len(), true);
    assert_eq!(clock(&script), 1, "response body");
    let did = did(&script);
    assert!(did.iter().any(|l| l.starts_with("state ")), "{did:?}");
    // A dispatched call: the request's callback and the answer's, one read each.
    let (mut s, script) = hello_get();
    s.on_request_headers(true);
    assert_eq!(clock(&script), 1, "request headers");
    s.on_call_answer(7, &lambda_answer(payload));
    assert_eq!(clock(&script), 1, "answer");
}

#[test]
fn dispatch_mode_sends_every_call_as_its_own_exchange() {
    let (mut s, script) = stream(
        set(json!({"forwarding": "DISPATCH"})),
        Script {
            request: head("POST", "/dev/hello"),
            request_body: b"hello".to_vec(),
            ..Script::default()
        },
    );
    assert_eq!(s.on_request_headers(false), Flow::Pause);
    assert_eq!(s.on_request_body(5, true), Flow::Pause);
    assert_eq!(
        did(&script),
        ["dispatch Integration to apigw_lambda_http_127_0_0_1_9000"]
    );
}

#[test]
fn failures_of_the_host_or_the_call_become_server_errors() {
    // The host cannot dispatch.
    let (mut s, script) = stream(
        set(json!({})),
        Script {
            request: head("GET", "/dev/hello"),
            dispatch_fails: true,
            ..Script::default()
        },
    );
    assert_eq!(s.on_request_headers(true), Flow::Pause);
    let replies = did(&script);
    assert!(
        replies.len() == 1 && replies[0].starts_with("reply 5"),
        "{replies:?}"
    );
    // An answer with another token fails the request; the real one then finds nothing.
    let (mut s, script) = hello_get();
    s.on_request_headers(true);
    s.on_call_answer(99, &lambda_answer("{}"));
    s.on_call_answer(7, &lambda_answer(r#"{"statusCode":200}"#));
    let did = did(&script);
    assert_eq!(did.len(), 2, "{did:?}");
    assert!(did[1].starts_with("reply 5"), "{did:?}");
}

#[test]
fn a_body_over_the_limit_is_refused_before_it_is_read() {
    let (mut s, script) = stream(
        set(json!({})),
        Script {
            request: head("POST", "/dev/hello"),
            ..Script::default()
        },
    );
    s.on_request_headers(false);
    assert_eq!(s.on_request_body(11 * 1024 * 1024, false), Flow::Pause);
    assert_eq!(
        did(&script),
        ["reply 413 {\"message\":\"Request Too Long\"}"]
    );
}

#[test]
fn integration_requests_go_out_the_deployments_way_else_the_hosts() {
    use crate::config::Forwarding::{Dispatch, Router};
    // (the host's way, the deployment's, method, what the host is asked first)
    let forwarded = "request headers to apigw_lambda_http_127_0_0_1_9000";
    let dispatched = "dispatch Integration to apigw_lambda_http_127_0_0_1_9000";
    for (host, deployment, method, first) in [
        (Router, None, "POST", forwarded),
        (Dispatch, None, "POST", dispatched),
        (Dispatch, Some("ROUTER"), "POST", forwarded),
        (Router, Some("DISPATCH"), "POST", dispatched),
        // A body-less request cannot carry the event: dispatched whatever the way.
        (Router, None, "GET", dispatched),
        (Dispatch, Some("ROUTER"), "GET", dispatched),
    ] {
        let patch = deployment.map_or(json!({}), |d| json!({ "forwarding": d }));
        let (mut s, script) = stream(
            set(patch),
            Script {
                request: head(method, "/dev/hello"),
                request_body: b"hello".to_vec(),
                forwarding: Some(host),
                ..Script::default()
            },
        );
        let case = format!("{host:?} host, {deployment:?}, {method}");
        if method == "POST" {
            assert_eq!(s.on_request_headers(false), Flow::Pause, "{case}");
            s.on_request_body(5, true);
        } else {
            s.on_request_headers(true);
        }
        assert_eq!(
            did(&script).first().map(String::as_str),
            Some(first),
            "{case}"
        );
    }
}

/// The head a forwarded request goes on with, for a `POST` with `X-Forwarded-Proto: https`
/// to `path` of an API with a 5-second `/fast`, a 20-second `/slow` and a 20-second
/// `http_proxy` `/site` that passes the client's headers on.
fn forwarded_head(path: &str) -> Vec<Header> {
    let lambda = |timeout: u64| {
        json!({"post": {"x-amazon-apigateway-integration": {
            "type": "aws_proxy", "httpMethod": "POST", "uri": FN, "timeoutInMillis": timeout}}})
    };
    let export = json!({"swagger": "2.0", "paths": {
        "/fast": lambda(5000),
        "/slow": lambda(20000),
        "/site": {"post": {"x-amazon-apigateway-integration": {
            "type": "http_proxy", "httpMethod": "POST", "uri": "http://10.0.0.5:8080/site",
            "timeoutInMillis": 20000}}}}});
    let mut request = head("POST", path);
    request.push(("x-forwarded-proto".into(), "https".into()));
    let (mut s, script) = stream(
        set_of(export, json!({})),
        Script {
            request,
            request_body: b"hello".to_vec(),
            ..Script::default()
        },
    );
    assert_eq!(s.on_request_headers(false), Flow::Pause, "{path}");
    assert_eq!(s.on_request_body(5, true), Flow::Continue, "{path}");
    let head = script.forwarded.borrow().clone();
    head
}

#[test]
fn a_forwarded_head_names_only_what_the_route_does_not_know() {
    // (path, the timeout header, X-Forwarded-Proto, the keep mark)
    for (path, timeout, proto, keep) in [
        // The longest integration's timeout is the route's own: not repeated.
        ("/dev/slow", None, Some("https"), None),
        ("/dev/fast", Some("5000"), Some("https"), None),
        // An http_proxy call carries X-Forwarded-Proto of its own (the gateway's, from the
        // connection): the route keeps it.
        ("/dev/site", None, Some("http"), Some("1")),
    ] {
        let head = forwarded_head(path);
        let value = |name: &str| crate::http::header(&head, name).map(str::to_string);
        assert_eq!(
            value("x-envoy-upstream-rq-timeout-ms").as_deref(),
            timeout,
            "{path}: {head:?}"
        );
        assert_eq!(value("x-forwarded-proto").as_deref(), proto, "{path}");
        assert_eq!(
            value(crate::http::FORWARD_KEEP_PROTO_HEADER).as_deref(),
            keep,
            "{path}"
        );
    }
}
