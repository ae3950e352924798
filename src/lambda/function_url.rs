//! Function URLs: the second way to reach a function.
//!
//! Owns: the HTTP request forwarded to a function URL (`TargetKind::FunctionUrl`) and the
//! passthrough of its answer; for functions written for function URLs but reached through an
//! Invoke API (`TargetKind::InvokeV2`, local development), the payload format 2.0 event as
//! function URLs send it and the 2.0 response inference. Must not: sign (the gateway signs
//! every call the same way) or add gateway headers.

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};

use crate::error::GatewayError;
use crate::http::{header, Header, Reply, UpstreamAnswer, UpstreamCall};
use crate::lambda::invoke::{error_type, transport_failure, InvokeTarget, TransportFailure};
use crate::lambda::response::{decode_base64_body, MappingError};

/// Request headers never forwarded to a function URL: hop-by-hop headers, the client's
/// `host` (the URL's own is sent), and its own signature.
const NOT_FORWARDED: [&str; 10] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "te",
    "trailer",
    "upgrade",
    "host",
    "content-length",
    "x-envoy-expected-rq-timeout-ms",
];

/// Response headers a function URL answer cannot pass on as they are.
const RESPONSE_REMAPPED: [&str; 3] = ["connection", "date", "server"];
const RESPONSE_DROPPED: [&str; 4] = [
    "transfer-encoding",
    "content-length",
    "keep-alive",
    "x-amzn-requestid",
];

/// The forwarded request: the client's method, the path below the stage under the URL's
/// prefix, the client's query as sent, its headers (minus hop-by-hop ones) and its body.
pub fn forward(
    target: &InvokeTarget,
    prefix: &str,
    head: (&str, &str, &str),
    headers: &[Header],
    body: &[u8],
    timeout_ms: u64,
) -> UpstreamCall {
    let (method, path, raw_query) = head;
    let mut url_path = format!("{prefix}{path}");
    if url_path.is_empty() {
        url_path.push('/');
    }
    if !raw_query.is_empty() {
        url_path.push('?');
        url_path.push_str(raw_query);
    }
    let mut out: Vec<Header> = vec![
        (":method".into(), method.to_string()),
        (":path".into(), url_path),
        (":authority".into(), target.authority.clone()),
    ];
    for (k, v) in headers {
        let lower = k.to_ascii_lowercase();
        if lower.starts_with(':')
            || NOT_FORWARDED.contains(&lower.as_str())
            || lower.starts_with("proxy-")
            || (lower == "authorization" && v.starts_with("AWS4-HMAC-SHA256"))
        {
            continue;
        }
        out.push((lower, v.clone()));
    }
    UpstreamCall {
        cluster: target.cluster.clone(),
        headers: out,
        body: body.to_vec(),
        timeout_ms,
    }
}

/// The meaning of a function URL's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UrlOutcome {
    /// The function's (inferred) HTTP answer.
    Answer,
    /// The URL service refused the call (signature, permission, throttling).
    Rejected {
        status: u16,
        error_type: String,
    },
    Timeout,
    Unreachable(String),
}

/// Classifies a function URL answer. Envoy's own transport failures look as they do for
/// Invoke calls; an answer with `x-amzn-ErrorType` and an error status comes from the URL
/// service, not from the function.
pub fn classify(resp: &UpstreamAnswer) -> UrlOutcome {
    match transport_failure(resp, "the function URL") {
        Some(TransportFailure::Timeout) => return UrlOutcome::Timeout,
        Some(TransportFailure::Unreachable(why)) => return UrlOutcome::Unreachable(why),
        None => {}
    }
    match (resp.status, error_type(&resp.headers)) {
        (Some(status), Some(error_type)) if status >= 400 => {
            UrlOutcome::Rejected { status, error_type }
        }
        _ => UrlOutcome::Answer,
    }
}

/// The client reply for a function URL answer.
pub fn passthrough(resp: &UpstreamAnswer) -> Reply {
    resp.passed_through(&RESPONSE_DROPPED, &RESPONSE_REMAPPED)
}

/// What the 2.0 event is built from.
pub struct EventInput<'a> {
    pub method: &'a str,
    /// The path below the stage (`rawPath`).
    pub path: &'a str,
    pub raw_query: &'a str,
    /// Decoded query parameters in order.
    pub query: &'a [(String, String)],
    /// Request headers as the client sent them (pseudo-headers are skipped).
    pub headers: &'a [Header],
    pub host: &'a str,
    pub protocol: &'a str,
    pub source_ip: &'a str,
    pub account_id: &'a str,
    pub api_id: &'a str,
    pub request_id: &'a str,
    pub request_time: &'a str,
    pub now_ms: u64,
    /// The body as text, or base64 with `is_base64`.
    pub body: Option<&'a str>,
    pub is_base64: bool,
}

/// The payload format 2.0 event, as a function URL sends it: lower-case header names with
/// repeated headers joined by commas, cookies taken out of `cookie` into `cookies`, repeated
/// query parameters joined by commas, `routeKey` and `stage` `$default`. Absent parts are
/// left out, as function URLs do.
pub fn event(input: &EventInput<'_>) -> Vec<u8> {
    let mut headers: BTreeMap<String, String> = BTreeMap::new();
    let mut cookies: Vec<String> = Vec::new();
    for (k, v) in input.headers {
        let lower = k.to_ascii_lowercase();
        if lower.starts_with(':') {
            continue;
        }
        if lower == "cookie" {
            cookies.extend(
                v.split(';')
                    .map(str::trim)
                    .filter(|c| !c.is_empty())
                    .map(str::to_string),
            );
            continue;
        }
        headers
            .entry(lower)
            .and_modify(|e| {
                e.push(',');
                e.push_str(v);
            })
            .or_insert_with(|| v.clone());
    }
    let mut query: BTreeMap<&str, String> = BTreeMap::new();
    for (k, v) in input.query {
        query
            .entry(k.as_str())
            .and_modify(|e| {
                e.push(',');
                e.push_str(v);
            })
            .or_insert_with(|| v.clone());
    }
    let user_agent = header(input.headers, "user-agent").unwrap_or_default();
    let mut ev = Map::new();
    ev.insert("version".into(), json!("2.0"));
    ev.insert("routeKey".into(), json!("$default"));
    ev.insert("rawPath".into(), json!(input.path));
    ev.insert("rawQueryString".into(), json!(input.raw_query));
    if !cookies.is_empty() {
        ev.insert("cookies".into(), json!(cookies));
    }
    ev.insert("headers".into(), json!(headers));
    if !query.is_empty() {
        ev.insert("queryStringParameters".into(), json!(query));
    }
    ev.insert(
        "requestContext".into(),
        json!({
            "accountId": input.account_id,
            "apiId": input.api_id,
            "domainName": input.host,
            "domainPrefix": input.host.split(['.', ':']).next().unwrap_or_default(),
            "http": {
                "method": input.method,
                "path": input.path,
                "protocol": input.protocol,
                "sourceIp": input.source_ip,
                "userAgent": user_agent
            },
            "requestId": input.request_id,
            "routeKey": "$default",
            "stage": "$default",
            "time": input.request_time,
            "timeEpoch": input.now_ms
        }),
    );
    if let Some(body) = input.body {
        ev.insert("body".into(), json!(body));
    }
    ev.insert("isBase64Encoded".into(), json!(input.is_base64));
    serde_json::to_vec(&Value::Object(ev)).unwrap_or_default()
}

fn malformed(reason: impl Into<String>) -> MappingError {
    MappingError {
        error: GatewayError::MalformedProxyResponse,
        reason: format!("Malformed Lambda response (payload 2.0): {}", reason.into()),
    }
}

fn scalar_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// The 2.0 response inference: an object with `statusCode` is a structured response
/// (`headers`, `cookies` as `set-cookie`, `body`, `isBase64Encoded`); any other JSON is
/// the body of a 200 `application/json` answer (a JSON string, its text).
pub fn infer_response(payload: &[u8]) -> Result<Reply, MappingError> {
    let value: Value =
        serde_json::from_slice(payload).map_err(|e| malformed(format!("not JSON ({e})")))?;
    let structured = value.as_object().filter(|o| o.contains_key("statusCode"));
    let Some(obj) = structured else {
        let body = match &value {
            Value::String(s) => s.clone().into_bytes(),
            other => other.to_string().into_bytes(),
        };
        return Ok(Reply::json(200, body));
    };
    let status = obj
        .get("statusCode")
        .and_then(|s| match s {
            Value::Number(n) => n.as_u64(),
            Value::String(t) => t.trim().parse().ok(),
            _ => None,
        })
        .and_then(|n| u16::try_from(n).ok())
        .filter(|n| (100..=599).contains(n))
        .ok_or_else(|| malformed("statusCode is not a status between 100 and 599"))?;
    let mut headers: Vec<Header> = Vec::new();
    if let Some(h) = obj.get("headers").filter(|h| !h.is_null()) {
        let map = h
            .as_object()
            .ok_or_else(|| malformed("headers is not an object"))?;
        for (k, v) in map {
            let text =
                scalar_text(v).ok_or_else(|| malformed(format!("header {k} is not text")))?;
            if text.contains(['\r', '\n', '\0']) {
                return Err(malformed(format!("invalid header {k:?}")));
            }
            headers.push((k.clone(), text));
        }
    }
    if let Some(c) = obj.get("cookies").filter(|c| !c.is_null()) {
        let list = c
            .as_array()
            .ok_or_else(|| malformed("cookies is not a list"))?;
        for cookie in list {
            let text = cookie
                .as_str()
                .ok_or_else(|| malformed("a cookie is not text"))?;
            headers.push(("set-cookie".into(), text.to_string()));
        }
    }
    let body_text = match obj.get("body") {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    };
    let body = if obj.get("isBase64Encoded") == Some(&Value::Bool(true)) {
        decode_base64_body(&body_text)?
    } else {
        body_text.into_bytes()
    };
    let mut reply = Reply {
        status,
        headers,
        body,
    };
    reply.set_default_header("Content-Type", "application/json");
    Ok(reply)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lambda::invoke::{Endpoint, TargetKind};

    use crate::http::headers_of as h;

    #[test]
    fn forwarded_request_keeps_the_client_request_below_the_stage() {
        let (e, prefix) = Endpoint::parse_url("http://127.0.0.1:9000/lambda-url/orders").unwrap();
        let t = InvokeTarget::function_url(&e, &prefix);
        assert_eq!(
            t.kind,
            TargetKind::FunctionUrl {
                prefix: prefix.clone()
            }
        );
        let call = forward(
            &t,
            &prefix,
            ("PUT", "/orders/7", "a=1&a=2"),
            &h(&[
                (":authority", "api.example.com"),
                ("host", "api.example.com"),
                ("content-type", "application/json"),
                ("connection", "keep-alive"),
                ("Cookie", "s=1"),
                ("authorization", "AWS4-HMAC-SHA256 Credential=client"),
                ("x-api-key", "k"),
            ]),
            b"{}",
            3000,
        );
        assert_eq!(
            call.headers,
            h(&[
                (":method", "PUT"),
                (":path", "/lambda-url/orders/orders/7?a=1&a=2"),
                (":authority", "127.0.0.1:9000"),
                ("content-type", "application/json"),
                ("cookie", "s=1"),
                ("x-api-key", "k"),
            ])
        );
        assert_eq!((call.body.as_slice(), call.timeout_ms), (&b"{}"[..], 3000));
        let root = forward(
            &InvokeTarget::function_url(&e, ""),
            "",
            ("GET", "", ""),
            &[],
            b"",
            1,
        );
        assert_eq!(root.headers[1].1, "/");
    }

    fn resp(status: Option<u16>, headers: &[(&str, &str)], body: &str) -> UpstreamAnswer {
        UpstreamAnswer {
            host_reply: None,
            status,
            headers: h(headers),
            body: body.as_bytes().to_vec(),
        }
    }

    #[test]
    fn classify_table() {
        let rid = ("x-amzn-RequestId", "r");
        for (r, want) in [
            (resp(Some(201), &[rid], "{}"), UrlOutcome::Answer),
            (resp(Some(500), &[rid], "boom"), UrlOutcome::Answer),
            (
                resp(
                    Some(403),
                    &[rid, ("x-amzn-ErrorType", "AccessDeniedException")],
                    r#"{"Message":"Forbidden"}"#,
                ),
                UrlOutcome::Rejected {
                    status: 403,
                    error_type: "AccessDeniedException".into(),
                },
            ),
            (
                resp(
                    Some(429),
                    &[rid, ("x-amzn-ErrorType", "TooManyRequestsException:x")],
                    "",
                ),
                UrlOutcome::Rejected {
                    status: 429,
                    error_type: "TooManyRequestsException".into(),
                },
            ),
            (
                resp(Some(504), &[], "upstream request timeout"),
                UrlOutcome::Timeout,
            ),
            (
                resp(Some(503), &[], "upstream connect error"),
                UrlOutcome::Unreachable("upstream connect error".into()),
            ),
            (
                resp(None, &[], ""),
                UrlOutcome::Unreachable("no response from the function URL".into()),
            ),
        ] {
            assert_eq!(classify(&r), want, "{r:?}");
        }
    }

    #[test]
    fn passthrough_remaps_and_drops_transport_headers() {
        let reply = passthrough(&resp(
            Some(201),
            &[
                ("content-type", "text/plain"),
                ("content-length", "2"),
                ("date", "today"),
                ("x-amzn-RequestId", "aws"),
                ("set-cookie", "a=1"),
            ],
            "hi",
        ));
        assert_eq!(reply.status, 201);
        assert_eq!(
            reply.headers,
            h(&[
                ("content-type", "text/plain"),
                ("x-amzn-Remapped-date", "today"),
                ("set-cookie", "a=1")
            ])
        );
        assert_eq!(reply.body, b"hi");
    }

    #[test]
    fn event_has_the_function_url_shape() {
        let query = vec![
            ("a".to_string(), "1".to_string()),
            ("a".to_string(), "2".to_string()),
            ("b".to_string(), "x y".to_string()),
        ];
        let headers = h(&[
            ("Content-Type", "application/json"),
            ("X-Multi", "1"),
            ("x-multi", "2"),
            ("cookie", "s=1; t=2"),
            ("user-agent", "curl/8"),
        ]);
        let ev: Value = serde_json::from_slice(&event(&EventInput {
            method: "POST",
            path: "/orders/7",
            raw_query: "a=1&a=2&b=x+y",
            query: &query,
            headers: &headers,
            host: "api.example.com",
            protocol: "HTTP/1.1",
            source_ip: "127.0.0.1",
            account_id: "123456789012",
            api_id: "abc",
            request_id: "rid",
            request_time: "01/Dec/2026:12:00:00 +0000",
            now_ms: 1_796_126_400_000,
            body: Some("{\"n\":1}"),
            is_base64: false,
        }))
        .unwrap();
        assert_eq!(
            ev,
            json!({
                "version": "2.0",
                "routeKey": "$default",
                "rawPath": "/orders/7",
                "rawQueryString": "a=1&a=2&b=x+y",
                "cookies": ["s=1", "t=2"],
                "headers": {"content-type": "application/json", "x-multi": "1,2", "user-agent": "curl/8"},
                "queryStringParameters": {"a": "1,2", "b": "x y"},
                "requestContext": {
                    "accountId": "123456789012",
                    "apiId": "abc",
                    "domainName": "api.example.com",
                    "domainPrefix": "api",
                    "http": {"method": "POST", "path": "/orders/7", "protocol": "HTTP/1.1",
                             "sourceIp": "127.0.0.1", "userAgent": "curl/8"},
                    "requestId": "rid",
                    "routeKey": "$default",
                    "stage": "$default",
                    "time": "01/Dec/2026:12:00:00 +0000",
                    "timeEpoch": 1_796_126_400_000u64
                },
                "body": "{\"n\":1}",
                "isBase64Encoded": false
            })
        );
        let bare: Value = serde_json::from_slice(&event(&EventInput {
            method: "GET",
            path: "/",
            raw_query: "",
            query: &[],
            headers: &[],
            host: "h",
            protocol: "HTTP/1.1",
            source_ip: "1.2.3.4",
            account_id: "1",
            api_id: "a",
            request_id: "r",
            request_time: "t",
            now_ms: 0,
            body: None,
            is_base64: false,
        }))
        .unwrap();
        for absent in ["cookies", "queryStringParameters", "body"] {
            assert!(bare.get(absent).is_none(), "{absent}");
        }
    }

    #[test]
    fn response_inference_table() {
        for (payload, status, content_type, body, cookies) in [
            (
                r#"{"message":"hi"}"#,
                200,
                "application/json",
                r#"{"message":"hi"}"#,
                vec![],
            ),
            (
                r#""Hello from Lambda!""#,
                200,
                "application/json",
                "Hello from Lambda!",
                vec![],
            ),
            ("[1,2]", 200, "application/json", "[1,2]", vec![]),
            (
                r#"{"statusCode":201,"headers":{"content-type":"text/plain"},"body":"made","cookies":["a=1","b=2"]}"#,
                201,
                "text/plain",
                "made",
                vec!["a=1", "b=2"],
            ),
            (
                r#"{"statusCode":"204"}"#,
                204,
                "application/json",
                "",
                vec![],
            ),
            (
                r#"{"statusCode":200,"body":"aGk=","isBase64Encoded":true}"#,
                200,
                "application/json",
                "hi",
                vec![],
            ),
        ] {
            let r = infer_response(payload.as_bytes()).unwrap();
            assert_eq!(r.status, status, "{payload}");
            assert_eq!(r.header("content-type"), Some(content_type), "{payload}");
            assert_eq!(r.body_text(), body, "{payload}");
            let set: Vec<&str> = r
                .headers
                .iter()
                .filter(|(k, _)| k == "set-cookie")
                .map(|(_, v)| v.as_str())
                .collect();
            assert_eq!(set, cookies, "{payload}");
        }
        for bad in [
            "not json",
            r#"{"statusCode":99}"#,
            r#"{"statusCode":200,"headers":[1]}"#,
            r#"{"statusCode":200,"cookies":"a"}"#,
        ] {
            let e = infer_response(bad.as_bytes()).unwrap_err();
            assert_eq!(e.error, GatewayError::MalformedProxyResponse, "{bad}");
        }
    }
}
