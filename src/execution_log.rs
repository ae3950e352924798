//! Execution log lines in API Gateway's wording (what its "full request and response logs"
//! and the console's TEST panel show): the method request, each call as sent, its answer,
//! the method response.
//!
//! Owns: the text of those lines, and masking credentials in them as API Gateway does.
//! Must not: decide when to log, stamp times or write anywhere (Method Test and the filter
//! do, each its own way).

use crate::gateway::CallKind;
use crate::http::{Header, Reply, UpstreamAnswer, UpstreamCall};

/// `{name=value, ...}`, the way API Gateway's execution log prints maps (pseudo-headers
/// left out).
pub fn map_text(pairs: &[Header]) -> String {
    let items: Vec<String> = pairs
        .iter()
        .filter(|(k, _)| !k.starts_with(':'))
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    format!("{{{}}}", items.join(", "))
}

/// Bodies are logged up to this many bytes, then marked `[TRUNCATED]`.
pub const MAX_BODY_BYTES: usize = 1024;

const SECRET_HEADERS: [&str; 3] = ["authorization", "x-amz-security-token", "x-api-key"];

/// A credential as logged: its first four characters, then `****`.
fn mask(value: &str) -> String {
    let shown: String = value.chars().take(4).collect();
    format!("{shown}****")
}

/// The credentials among `headers` (API keys, tokens, signatures), to keep out of logged
/// bodies too: an event or a template can carry them.
pub fn secrets(headers: &[Header]) -> Vec<String> {
    headers
        .iter()
        .filter(|(k, v)| SECRET_HEADERS.iter().any(|s| k.eq_ignore_ascii_case(s)) && v.len() >= 8)
        .map(|(_, v)| v.clone())
        .collect()
}

/// A body as logged: text, each of `secrets` masked, cut at [`MAX_BODY_BYTES`].
pub fn body_text(body: &[u8], secrets: &[String]) -> String {
    let cut = body.len() > MAX_BODY_BYTES;
    let mut text = String::from_utf8_lossy(body.get(..MAX_BODY_BYTES).unwrap_or(body)).into_owned();
    for s in secrets {
        if text.contains(s.as_str()) {
            text = text.replace(s.as_str(), &mask(s));
        }
    }
    if cut {
        text.push_str(" [TRUNCATED]");
    }
    text
}

/// A header list for the log, with credentials masked (their first four characters kept).
pub fn masked(headers: &[Header]) -> Vec<Header> {
    headers
        .iter()
        .map(|(k, v)| {
            if SECRET_HEADERS.iter().any(|s| k.eq_ignore_ascii_case(s)) {
                (k.clone(), mask(v))
            } else {
                (k.clone(), v.clone())
            }
        })
        .collect()
}

/// The method request: path parameters (when a resource matched), query string, headers,
/// body. `path` may carry the query string.
pub fn method_request(
    params: Option<&[(String, String)]>,
    path: &str,
    headers: &[Header],
    body: &[u8],
) -> Vec<String> {
    let query = path.split_once('?').map(|(_, q)| q).unwrap_or_default();
    let query: Vec<Header> = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (k.to_string(), v.to_string())
        })
        .collect();
    let mut out = Vec::with_capacity(4);
    if let Some(params) = params {
        out.push(format!("Method request path: {}", map_text(params)));
    }
    out.push(format!("Method request query string: {}", map_text(&query)));
    out.push(format!(
        "Method request headers: {}",
        map_text(&masked(headers))
    ));
    out.push(format!(
        "Method request body before transformations: {}",
        body_text(body, &secrets(headers))
    ));
    out
}

/// A call as sent to `url`; `secrets` (the method request's, see [`secrets`]) are masked in
/// its body.
pub fn call(kind: CallKind, url: &str, call: &UpstreamCall, secrets: &[String]) -> Vec<String> {
    let what = match kind {
        CallKind::Authorizer => "Authorizer request",
        CallKind::Integration => "Endpoint request",
        CallKind::RateLimit => {
            return vec![format!(
                "Usage plan check sent to the rate-limit service {url} ({} bytes)",
                call.body.len()
            )]
        }
    };
    vec![
        format!("{what} URI: {url}"),
        format!("{what} headers: {}", map_text(&masked(&call.headers))),
        format!(
            "{what} body after transformations: {}",
            body_text(&call.body, secrets)
        ),
        format!("Sending request to {url}"),
    ]
}

/// A call's answer (or why there was none) after `latency_ms`.
pub fn answer(
    kind: CallKind,
    answer: Result<&UpstreamAnswer, &str>,
    latency_ms: u64,
) -> Vec<String> {
    let (what, latency) = match kind {
        CallKind::Authorizer => ("Authorizer", "Authorizer latency"),
        CallKind::Integration => ("Endpoint", "Integration latency"),
        CallKind::RateLimit => {
            let status = match answer {
                Ok(a) => format!("{} bytes", a.body.len()),
                Err(why) => why.to_string(),
            };
            return vec![format!(
                "Rate-limit service answered: {status}, latency: {latency_ms} ms"
            )];
        }
    };
    match answer {
        Ok(a) => {
            let status = a.status.map_or("none".to_string(), |s| s.to_string());
            vec![
                format!("Received response. Status: {status}, {latency}: {latency_ms} ms"),
                format!("{what} response headers: {}", map_text(&a.headers)),
                format!(
                    "{what} response body before transformations: {}",
                    body_text(&a.body, &[])
                ),
            ]
        }
        Err(why) => vec![format!(
            "Execution failed due to a network error: {why} ({latency}: {latency_ms} ms)"
        )],
    }
}

/// The method response as the client gets it.
pub fn method_response(reply: &Reply) -> Vec<String> {
    vec![
        format!(
            "Method response body after transformations: {}",
            body_text(&reply.body, &[])
        ),
        format!("Method response headers: {}", map_text(&reply.headers)),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(k: &str, v: &str) -> Header {
        (k.to_string(), v.to_string())
    }

    #[test]
    fn maps_print_like_api_gateway_logs() {
        assert_eq!(map_text(&[]), "{}");
        assert_eq!(
            map_text(&[h(":path", "/x"), h("a", "1"), h("b", "")]),
            "{a=1, b=}"
        );
        let m = masked(&[h("x-api-key", "abcdefgh"), h("Accept", "*/*")]);
        assert_eq!(m, vec![h("x-api-key", "abcd****"), h("Accept", "*/*")]);
    }

    #[test]
    fn credentials_stay_out_of_logged_bodies_and_long_bodies_are_cut() {
        let headers = [
            h("X-Api-Key", "key-0123456789"),
            h("Authorization", "short"),
            h("a", "long-enough-value"),
        ];
        let secrets = secrets(&headers);
        assert_eq!(secrets, ["key-0123456789"]);
        assert_eq!(
            body_text(
                br#"{"apiKey":"key-0123456789","k":"key-0123456789"}"#,
                &secrets
            ),
            r#"{"apiKey":"key-****","k":"key-****"}"#
        );
        let long = vec![b'x'; MAX_BODY_BYTES + 1];
        let text = body_text(&long, &[]);
        assert!(text.ends_with("x [TRUNCATED]"));
        assert_eq!(text.len(), MAX_BODY_BYTES + " [TRUNCATED]".len());
        assert_eq!(body_text(&[0xff, b'a'], &[]), "\u{fffd}a");
    }

    #[test]
    fn lines_of_a_request_and_its_call() {
        let req = method_request(
            Some(&[h("id", "7")]),
            "/pets/7?a=1&flag",
            &[h("Authorization", "Bearer secret")],
            b"{}",
        );
        assert_eq!(
            req,
            [
                "Method request path: {id=7}",
                "Method request query string: {a=1, flag=}",
                "Method request headers: {Authorization=Bear****}",
                "Method request body before transformations: {}",
            ]
        );
        assert_eq!(method_request(None, "/x", &[], b"").len(), 3);
        let sent = UpstreamCall {
            cluster: "lambda".into(),
            headers: vec![h(":path", "/f"), h("x-amz-security-token", "tok12345")],
            body: b"event".to_vec(),
            timeout_ms: 29_000,
        };
        assert_eq!(
            call(CallKind::Authorizer, "http://h/f", &sent, &[]),
            [
                "Authorizer request URI: http://h/f",
                "Authorizer request headers: {x-amz-security-token=tok1****}",
                "Authorizer request body after transformations: event",
                "Sending request to http://h/f",
            ]
        );
        let got = UpstreamAnswer {
            status: Some(200),
            headers: vec![h("content-type", "application/json")],
            body: b"{}".to_vec(),
            host_reply: None,
        };
        assert_eq!(
            answer(CallKind::Integration, Ok(&got), 12)[0],
            "Received response. Status: 200, Integration latency: 12 ms"
        );
        assert_eq!(
            answer(CallKind::Integration, Err("refused"), 3),
            ["Execution failed due to a network error: refused (Integration latency: 3 ms)"]
        );
        let reply = Reply {
            status: 201,
            headers: vec![h("x-a", "1")],
            body: b"ok".to_vec(),
        };
        assert_eq!(
            method_response(&reply),
            [
                "Method response body after transformations: ok",
                "Method response headers: {x-a=1}",
            ]
        );
    }
}
