//! The Lambda Invoke API call and what its answer means.
//!
//! Owns: the Invoke request (`POST /2015-03-31/functions/{name}/invocations`), endpoint
//! parsing and cluster naming (shared by the filter and the Envoy renderer so they always
//! agree), and the classification of an Invoke answer: payload, function error, rejected
//! invocation, timeout or unreachable endpoint. Must not: dispatch anything.

use crate::http::{header, Header, UpstreamAnswer, UpstreamCall};

/// A parsed Lambda endpoint URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub tls: bool,
    pub host: String,
    pub port: u16,
}

impl Endpoint {
    /// Parses `http://host[:port]` or `https://host[:port]` (no path).
    pub fn parse(url: &str) -> Result<Endpoint, String> {
        let (tls, rest) = if let Some(r) = url.strip_prefix("https://") {
            (true, r)
        } else if let Some(r) = url.strip_prefix("http://") {
            (false, r)
        } else {
            return Err(format!("`{url}` must start with http:// or https://"));
        };
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        if rest.contains('/') || rest.contains('?') || rest.contains('@') {
            return Err(format!(
                "`{url}` must be a scheme, host and optional port, without a path"
            ));
        }
        let (host, port) = match rest.rsplit_once(':') {
            Some((h, p)) if !h.ends_with(']') || h.starts_with('[') => {
                let port = p
                    .parse::<u16>()
                    .ok()
                    .filter(|p| *p > 0)
                    .ok_or_else(|| format!("`{url}` has an invalid port `{p}`"))?;
                (h, port)
            }
            _ => (rest, if tls { 443 } else { 80 }),
        };
        if host.is_empty() {
            return Err(format!("`{url}` has no host"));
        }
        Ok(Endpoint {
            tls,
            host: host.to_string(),
            port,
        })
    }

    /// Parses a function URL: `http(s)://host[:port]` with an optional path prefix (no
    /// query), returned without its trailing slash.
    pub fn parse_url(url: &str) -> Result<(Endpoint, String), String> {
        let after_scheme = url.find("://").map_or(0, |i| i + 3);
        let path_at = url
            .get(after_scheme..)
            .and_then(|rest| rest.find('/'))
            .map_or(url.len(), |i| i + after_scheme);
        let (origin, path) = url.split_at(path_at);
        if path.contains('?') || path.contains('#') {
            return Err(format!("`{url}` must not have a query or fragment"));
        }
        let endpoint = Endpoint::parse(origin)?;
        Ok((endpoint, path.trim_end_matches('/').to_string()))
    }

    /// Envoy cluster name for this endpoint, the same in the filter and the renderer.
    pub fn cluster_name(&self) -> String {
        self.cluster_named("lambda")
    }

    /// `apigw_{purpose}_{scheme}_{host}_{port}`, with every character of the host that
    /// Envoy's names do not take replaced by `_`.
    pub fn cluster_named(&self, purpose: &str) -> String {
        let host: String = self
            .host
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .collect();
        format!(
            "apigw_{purpose}_{}_{}_{}",
            if self.tls { "https" } else { "http" },
            host,
            self.port
        )
    }

    /// Value of the `:authority` header sent to the endpoint.
    pub fn authority(&self) -> String {
        let default = if self.tls { 443 } else { 80 };
        if self.port == default {
            self.host.clone()
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// How a target is called.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TargetKind {
    /// The Invoke API with the REST API proxy event (payload format 1.0).
    Invoke,
    /// The Invoke API with the function URL event (payload format 2.0).
    InvokeV2,
    /// The function's URL: the request is forwarded as HTTP under this path prefix.
    FunctionUrl { prefix: String },
}

/// Where one integration invokes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvokeTarget {
    pub cluster: String,
    pub authority: String,
    /// `:path` of the Invoke call, qualifier included (the prefix, for function URLs).
    pub path: String,
    pub kind: TargetKind,
}

impl InvokeTarget {
    pub fn new(endpoint: &Endpoint, function: &str, qualifier: Option<&str>) -> Self {
        let mut path = format!("/2015-03-31/functions/{function}/invocations");
        if let Some(q) = qualifier {
            path.push_str("?Qualifier=");
            path.push_str(&crate::query::percent_encode(q));
        }
        InvokeTarget {
            cluster: endpoint.cluster_name(),
            authority: endpoint.authority(),
            path,
            kind: TargetKind::Invoke,
        }
    }

    /// A function URL, with the path prefix requests are forwarded under.
    pub fn function_url(endpoint: &Endpoint, prefix: &str) -> Self {
        InvokeTarget {
            cluster: endpoint.cluster_name(),
            authority: endpoint.authority(),
            path: prefix.to_string(),
            kind: TargetKind::FunctionUrl {
                prefix: prefix.to_string(),
            },
        }
    }
}

impl UpstreamCall {
    /// A synchronous (`RequestResponse`) invocation with a JSON payload.
    pub fn sync(
        target: &InvokeTarget,
        user_agent: String,
        payload: Vec<u8>,
        timeout_ms: u64,
    ) -> Self {
        UpstreamCall {
            cluster: target.cluster.clone(),
            headers: vec![
                (":method".into(), "POST".into()),
                (":path".into(), target.path.clone()),
                (":authority".into(), target.authority.clone()),
                ("content-type".into(), "application/json".into()),
                ("x-amz-invocation-type".into(), "RequestResponse".into()),
                ("user-agent".into(), user_agent),
            ],
            body: payload,
            timeout_ms,
        }
    }
}

/// The meaning of an Invoke answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InvokeOutcome<'a> {
    /// The function returned this payload.
    Payload(&'a [u8]),
    /// The function ran and failed; the message is its `errorMessage` when present.
    FunctionError(String),
    /// The Invoke API refused the call (status and error type).
    Rejected { status: u16, error_type: String },
    /// No answer within the integration timeout.
    Timeout,
    /// The endpoint could not be reached.
    Unreachable(String),
}

fn error_message(body: &[u8]) -> Option<String> {
    let v: serde_json::Value = serde_json::from_slice(body).ok()?;
    v.get("errorMessage")
        .map(|m| m.as_str().map_or_else(|| m.to_string(), str::to_string))
}

fn short_text(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    text.chars().take(200).collect()
}

/// A call that never got an answer from its upstream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransportFailure {
    /// No answer within the call's timeout.
    Timeout,
    /// The upstream could not be reached (the reason as Envoy gave it).
    Unreachable(String),
}

/// Whether an answer is Envoy's own report of a transport failure rather than the
/// upstream's: 504 `upstream request timeout` when the call's timeout fires, 503
/// `upstream connect error …` / `no healthy upstream` when nothing answers, or no response
/// headers at all. An answer the host marked as its own ([`UpstreamAnswer::host_reply`], a
/// forwarded request) is one whatever its body says. Answers carrying AWS's
/// `x-amzn-RequestId` are never Envoy's. `what` names the upstream in the message.
pub fn transport_failure(resp: &UpstreamAnswer, what: &str) -> Option<TransportFailure> {
    if let Some(why) = &resp.host_reply {
        return Some(if why.contains("timeout") {
            TransportFailure::Timeout
        } else {
            TransportFailure::Unreachable(format!("{what} failed: {why}"))
        });
    }
    let Some(status) = resp.status else {
        return Some(TransportFailure::Unreachable(format!(
            "no response from {what}"
        )));
    };
    if header(&resp.headers, "x-amzn-requestid").is_some() {
        return None;
    }
    let text = short_text(&resp.body);
    if status == 504 && text.starts_with("upstream request timeout") {
        return Some(TransportFailure::Timeout);
    }
    // 503 when no connection could be made; 502 when the upstream's answer was not HTTP.
    let reset = text.starts_with("upstream connect error or disconnect/reset");
    if (status == 503 && (text.starts_with("upstream") || text.starts_with("no healthy upstream")))
        || (status == 502 && reset)
    {
        return Some(TransportFailure::Unreachable(text));
    }
    None
}

/// The `x-amzn-ErrorType` of an AWS answer, without its `:` suffix.
pub fn error_type(headers: &[Header]) -> Option<String> {
    header(headers, "x-amzn-errortype").map(|t| t.split(':').next().unwrap_or(t).to_string())
}

/// Classifies an Invoke answer: Envoy's transport failures first (see
/// [`transport_failure`]), then Lambda's own answers. Lambda reports function errors as 200
/// with `X-Amz-Function-Error`; local emulators answer 500 with an `errorMessage` payload
/// instead, which is recognised by the payload having `errorMessage` and no
/// `x-amzn-ErrorType` header.
pub fn classify(resp: &UpstreamAnswer) -> InvokeOutcome<'_> {
    match transport_failure(resp, "the Lambda endpoint") {
        Some(TransportFailure::Timeout) => return InvokeOutcome::Timeout,
        Some(TransportFailure::Unreachable(why)) => return InvokeOutcome::Unreachable(why),
        None => {}
    }
    let status = resp.status.unwrap_or_default();
    if (200..300).contains(&status) {
        if header(&resp.headers, "x-amz-function-error").is_some() {
            let msg = error_message(&resp.body).unwrap_or_else(|| short_text(&resp.body));
            return InvokeOutcome::FunctionError(msg);
        }
        return InvokeOutcome::Payload(&resp.body);
    }
    let error_type = error_type(&resp.headers);
    if error_type.is_none() {
        if let Some(msg) = error_message(&resp.body) {
            return InvokeOutcome::FunctionError(msg);
        }
    }
    InvokeOutcome::Rejected {
        status,
        error_type: error_type.unwrap_or_else(|| short_text(&resp.body)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_table() {
        for (url, tls, host, port, cluster, authority) in [
            (
                "http://127.0.0.1:9000",
                false,
                "127.0.0.1",
                9000,
                "apigw_lambda_http_127_0_0_1_9000",
                "127.0.0.1:9000",
            ),
            (
                "https://lambda.eu-west-1.amazonaws.com",
                true,
                "lambda.eu-west-1.amazonaws.com",
                443,
                "apigw_lambda_https_lambda_eu_west_1_amazonaws_com_443",
                "lambda.eu-west-1.amazonaws.com",
            ),
            (
                "http://localhost/",
                false,
                "localhost",
                80,
                "apigw_lambda_http_localhost_80",
                "localhost",
            ),
        ] {
            let e = Endpoint::parse(url).unwrap();
            assert_eq!((e.tls, e.host.as_str(), e.port), (tls, host, port), "{url}");
            assert_eq!(e.cluster_name(), cluster);
            assert_eq!(e.authority(), authority);
        }
        for bad in [
            "ftp://x",
            "http://",
            "http://x:0",
            "http://x:99999",
            "http://x/path",
        ] {
            assert!(Endpoint::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn function_url_table() {
        for (url, authority, prefix) in [
            (
                "https://abc.lambda-url.eu-west-1.on.aws",
                "abc.lambda-url.eu-west-1.on.aws",
                "",
            ),
            (
                "https://abc.lambda-url.eu-west-1.on.aws/",
                "abc.lambda-url.eu-west-1.on.aws",
                "",
            ),
            (
                "http://127.0.0.1:9000/lambda-url/hello/",
                "127.0.0.1:9000",
                "/lambda-url/hello",
            ),
        ] {
            let (e, p) = Endpoint::parse_url(url).unwrap();
            assert_eq!(
                (e.authority().as_str(), p.as_str()),
                (authority, prefix),
                "{url}"
            );
        }
        for bad in ["https://x/a?b=1", "ftp://x", "https:///path"] {
            assert!(Endpoint::parse_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn target_path_with_qualifier() {
        let e = Endpoint::parse("http://127.0.0.1:9000").unwrap();
        assert_eq!(
            InvokeTarget::new(&e, "hello", None).path,
            "/2015-03-31/functions/hello/invocations"
        );
        assert_eq!(
            InvokeTarget::new(&e, "hello", Some("$LATEST")).path,
            "/2015-03-31/functions/hello/invocations?Qualifier=%24LATEST"
        );
    }

    fn resp(status: Option<u16>, headers: &[(&str, &str)], body: &str) -> UpstreamAnswer {
        UpstreamAnswer {
            host_reply: None,
            status,
            headers: headers
                .iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect(),
            body: body.as_bytes().to_vec(),
        }
    }

    #[test]
    fn classify_table() {
        let rid = ("x-amzn-RequestId", "r-1");
        let cases: Vec<(UpstreamAnswer, InvokeOutcome)> = vec![
            (resp(Some(200), &[rid], "{}"), InvokeOutcome::Payload(b"{}")),
            (
                resp(Some(200), &[rid, ("X-Amz-Function-Error", "Unhandled")], r#"{"errorMessage":"boom","errorType":"E"}"#),
                InvokeOutcome::FunctionError("boom".into()),
            ),
            (
                resp(Some(500), &[], r#"{"errorType":"E","errorMessage":"boom"}"#),
                InvokeOutcome::FunctionError("boom".into()),
            ),
            (
                resp(Some(429), &[rid, ("x-amzn-ErrorType", "TooManyRequestsException:http://internal")], r#"{"Type":"User","message":"Rate Exceeded."}"#),
                InvokeOutcome::Rejected { status: 429, error_type: "TooManyRequestsException".into() },
            ),
            (
                resp(Some(404), &[], "Function not found"),
                InvokeOutcome::Rejected { status: 404, error_type: "Function not found".into() },
            ),
            (resp(Some(504), &[], "upstream request timeout"), InvokeOutcome::Timeout),
            (
                resp(Some(503), &[], "upstream connect error or disconnect/reset before headers. reset reason: connection failure"),
                InvokeOutcome::Unreachable("upstream connect error or disconnect/reset before headers. reset reason: connection failure".into()),
            ),
            (resp(None, &[], ""), InvokeOutcome::Unreachable("no response from the Lambda endpoint".into())),
        ];
        for (r, want) in &cases {
            assert_eq!(&classify(r), want, "{r:?}");
        }
    }
}
