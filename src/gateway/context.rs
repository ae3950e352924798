//! What integrations and templates see of a request: the one builder of `requestContext`
//! and `$context`, the headers an integration receives, request ids and trace ids.
//!
//! Owns: [`Facts`] (values computed once per event or template environment), the
//! `requestContext` of proxy and authorizer events (also the base of every `$context`,
//! gateway responses included), the shared request part of events, and template scopes.
//! Must not: decide anything about the request.

use base64::Engine;

use super::*;
use crate::http::{header, title_case};
use crate::lambda::event::{
    AuthorizerView, Identity, MultiValues, RequestContext, RequestFields, SingleValues,
    StageVariables,
};
use crate::mapping::{self, Scope};
use crate::query;
use crate::sigv4::{hex, push_hex};
use crate::time::Utc;
use crate::vtl;

/// Request headers that never reach an integration.
pub(super) const DROPPED_REQUEST_HEADERS: [&str; 15] = [
    "connection",
    "content-length",
    "content-md5",
    "expect",
    "max-forwards",
    "proxy-authenticate",
    "server",
    "te",
    "transfer-encoding",
    "trailer",
    "upgrade",
    "www-authenticate",
    // Envoy's record of the mutual TLS certificate; events carry it as `clientCert`.
    "x-forwarded-client-cert",
    "keep-alive",
    "proxy-connection",
];

/// FNV-1a, for stable short identifiers derived from configuration.
pub(super) fn fnv1a(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

pub(super) fn base36(mut n: u64, len: usize) -> String {
    const DIGITS: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut out = Vec::with_capacity(len);
    for _ in 0..len {
        out.push(DIGITS.get((n % 36) as usize).copied().unwrap_or(b'0'));
        n /= 36;
    }
    String::from_utf8(out).unwrap_or_default()
}

/// The value of an ASCII hex digit.
fn hex_digit(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Sixteen bytes of a request id: its first 32 hex digits in pairs when it has that many
/// (a UUID), a hash of it otherwise. No allocation; a canonical UUID, as the glues make,
/// is read at its fixed offsets.
pub(super) fn id_bytes(request_id: &str) -> [u8; 16] {
    uuid_bytes(request_id.as_bytes()).unwrap_or_else(|| any_id_bytes(request_id))
}

/// Where the 16 hex pairs of a canonical UUID (8-4-4-4-12 digits) start.
const UUID_PAIRS: [usize; 16] = [0, 2, 4, 6, 9, 11, 14, 16, 19, 21, 24, 26, 28, 30, 32, 34];

/// The bytes of a canonical UUID; `None` for anything else. The same bytes as
/// [`any_id_bytes`] gives such an id, in about half its work.
pub(super) fn uuid_bytes(id: &[u8]) -> Option<[u8; 16]> {
    let id: &[u8; 36] = id.try_into().ok()?;
    if [8, 13, 18, 23].iter().any(|&at| id.get(at) != Some(&b'-')) {
        return None;
    }
    let mut out = [0u8; 16];
    for (slot, &at) in out.iter_mut().zip(UUID_PAIRS.iter()) {
        let high = hex_digit(*id.get(at)?)?;
        let low = hex_digit(*id.get(at + 1)?)?;
        *slot = high << 4 | low;
    }
    Some(out)
}

/// [`id_bytes`] of any id, in one pass.
pub(super) fn any_id_bytes(request_id: &str) -> [u8; 16] {
    let mut out = [0u8; 16];
    let mut digits = 0usize;
    for d in request_id.bytes().filter_map(hex_digit) {
        if let Some(byte) = out.get_mut(digits / 2) {
            *byte = *byte << 4 | d;
        }
        digits += 1;
        if digits == 32 {
            return out;
        }
    }
    let a = fnv1a(request_id.as_bytes());
    let b = fnv1a(&a.to_le_bytes());
    for (slot, byte) in out
        .iter_mut()
        .zip(a.to_be_bytes().into_iter().chain(b.to_be_bytes()))
    {
        *slot = byte;
    }
    out
}

/// `$context.extendedRequestId`: 16 characters, base64 of 11 bytes of the request id.
pub fn extended_request_id(request_id: &str) -> String {
    let bytes = id_bytes(request_id);
    base64::engine::general_purpose::STANDARD.encode(bytes.get(..11).unwrap_or_default())
}

/// An X-Ray style trace header: `Root=1-{epoch seconds hex}-{24 hex digits}`.
pub fn trace_id(request_id: &str, now_ms: u64) -> String {
    let bytes = id_bytes(request_id);
    let tail = bytes.get(4..16).unwrap_or_default();
    let secs = now_ms / 1000;
    let mut out = String::with_capacity(40);
    out.push_str("Root=1-");
    match u32::try_from(secs) {
        Ok(secs) => push_hex(&mut out, &secs.to_be_bytes()),
        Err(_) => out.push_str(&format!("{secs:08x}")),
    }
    out.push('-');
    push_hex(&mut out, tail);
    out
}

/// The trace header of a reply: the client's trace continued when it sent one (its `Root`
/// and `Parent` kept, a `Parent` generated when it has only a `Root`, other fields kept),
/// else a new trace.
pub fn reply_trace(client: Option<&str>, request_id: &str, now_ms: u64) -> String {
    let Some(client) = client.filter(|c| c.contains("Root=")) else {
        return trace_id(request_id, now_ms);
    };
    let fields: Vec<&str> = client
        .split(';')
        .map(str::trim)
        .filter(|f| !f.is_empty())
        .collect();
    if fields.iter().any(|f| f.starts_with("Parent=")) {
        return fields.join(";");
    }
    let bytes = id_bytes(request_id);
    let parent = hex(bytes.get(..8).unwrap_or_default());
    let mut out: Vec<String> = Vec::with_capacity(fields.len() + 1);
    for f in fields {
        out.push(f.to_string());
        if f.starts_with("Root=") {
            out.push(format!("Parent={parent}"));
        }
    }
    out.join(";")
}

impl Gateway {
    /// `$stageVariables`, fresh for each render (templates may write to it).
    pub(super) fn stage_variables_value(&self) -> vtl::Value {
        let pairs: Vec<(String, String)> = self
            .stage_variables
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        vtl::Value::string_map(&pairs, false)
    }

    /// Headers as the integration sees them: hop-by-hop and proxy-internal headers removed,
    /// names canonicalised for HTTP/1, `Host` from `:authority`, and the trace and forwarding
    /// headers API Gateway adds.
    pub(super) fn event_headers(&self, head: &RequestHead) -> Vec<(String, String)> {
        let http1 = head.protocol.starts_with("HTTP/1");
        let mut out: Vec<(String, String)> = Vec::with_capacity(head.headers.len() + 3);
        for (name, value) in &head.headers {
            if name.eq_ignore_ascii_case(":authority") {
                out.push(("Host".into(), value.clone()));
                continue;
            }
            let is = |other: &str| name.eq_ignore_ascii_case(other);
            if name.starts_with(':')
                || name
                    .get(..8)
                    .is_some_and(|p| p.eq_ignore_ascii_case("x-envoy-"))
                || DROPPED_REQUEST_HEADERS.iter().any(|d| is(d))
                || (is("authorization") && value.starts_with("AWS4-HMAC-SHA256"))
            {
                continue;
            }
            let shown = if http1 {
                title_case(name)
            } else {
                name.to_ascii_lowercase()
            };
            out.push((shown, value.clone()));
        }
        let name = |n: &str| {
            if http1 {
                n.to_string()
            } else {
                n.to_ascii_lowercase()
            }
        };
        if !out
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("x-amzn-trace-id"))
        {
            out.push((
                name("X-Amzn-Trace-Id"),
                trace_id(&head.request_id, head.now_ms),
            ));
        }
        // API Gateway appends the caller to X-Forwarded-For and sets the port and scheme the
        // client connected with, replacing whatever the client sent for those two. Behind
        // trusted proxies the caller is already in the header they sent: it is kept as is.
        let prior = out
            .iter()
            .position(|(k, _)| k.eq_ignore_ascii_case("x-forwarded-for"))
            .map(|i| out.remove(i).1);
        let forwarded_for = match prior {
            Some(prior) if self.xff_trusted => prior,
            Some(prior) => format!("{prior}, {}", head.source_ip),
            None => head.source_ip.clone(),
        };
        out.retain(|(k, _)| {
            !k.eq_ignore_ascii_case("x-forwarded-port")
                && !k.eq_ignore_ascii_case("x-forwarded-proto")
        });
        out.push((name("X-Forwarded-For"), forwarded_for));
        if let Some(port) = head.local_port {
            out.push((name("X-Forwarded-Port"), port.to_string()));
        }
        let scheme = header(&head.headers, ":scheme").unwrap_or("http");
        out.push((name("X-Forwarded-Proto"), scheme.to_string()));
        out
    }

    /// The values an event or a template environment is built from.
    pub(super) fn facts(&self, head: &RequestHead) -> Facts {
        let raw_query = head
            .path
            .split_once('?')
            .map(|(_, q)| q)
            .unwrap_or_default();
        Facts {
            headers: self.event_headers(head),
            query: query::parse(raw_query),
            host: header(&head.headers, ":authority")
                .or_else(|| header(&head.headers, "host"))
                .unwrap_or_default()
                .to_string(),
            request_time: Utc::from_epoch_ms(head.now_ms).clf(),
            extended: extended_request_id(&head.request_id),
        }
    }

    /// `requestContext` of the event, also the base of `$context`.
    pub(super) fn request_context<'a>(
        &'a self,
        head: &'a RequestHead,
        known: Known<'a>,
        f: &'a Facts,
    ) -> RequestContext<'a> {
        let api_key_id = known.api_key_id;
        RequestContext {
            account_id: &self.api.account_id,
            api_id: &self.api.id,
            deployment_id: &self.deployment_id,
            domain_name: &f.host,
            domain_prefix: f.host.split(['.', ':']).next().unwrap_or_default(),
            extended_request_id: &f.extended,
            http_method: &head.method,
            identity: Identity {
                api_key: api_key_id.and(header(&head.headers, "x-api-key")),
                api_key_id,
                access_key: known.caller.map(|c| c.access_key_id.as_str()),
                account_id: known.caller.map(|c| c.account.as_str()),
                caller: known.caller.map(|c| c.user_id.as_str()),
                user: known.caller.map(|c| c.user_id.as_str()),
                user_arn: known.caller.map(|c| c.arn.as_str()),
                client_cert: head.client_cert.as_deref(),
                ..Identity::anonymous(&head.source_ip, header(&head.headers, "user-agent"))
            },
            path: head.path.split('?').next().unwrap_or_default(),
            protocol: &head.protocol,
            request_id: &head.request_id,
            request_time: &f.request_time,
            request_time_epoch: head.now_ms,
            resource_id: known.route.map_or("", |r| r.resource_id.as_str()),
            resource_path: known.route.map_or("", |r| r.resource.as_str()),
            stage: &self.stage,
            authorizer: known.auth.map(|a| match a {
                Authorized::Lambda {
                    decision,
                    latency_ms,
                } => AuthorizerView::Lambda {
                    principal_id: &decision.principal_id,
                    context: &decision.context,
                    latency_ms: *latency_ms,
                },
                Authorized::Token(v) => AuthorizerView::Claims(&v.claims),
            }),
        }
    }

    /// The request as an event describes it (proxy events, REQUEST authorizer events).
    pub(super) fn request_fields<'a>(
        &'a self,
        head: &'a RequestHead,
        routed: &'a Routed,
        route: &'a Route,
        f: &'a Facts,
        request_context: RequestContext<'a>,
    ) -> RequestFields<'a> {
        RequestFields {
            resource: &route.resource,
            path: &routed.event_path,
            http_method: &head.method,
            headers: SingleValues(&f.headers),
            multi_value_headers: MultiValues(&f.headers),
            query_string_parameters: SingleValues(&f.query),
            multi_value_query_string_parameters: MultiValues(&f.query),
            path_parameters: SingleValues(&routed.params),
            stage_variables: StageVariables(&self.stage_variables),
            request_context,
        }
    }

    /// What templates see of a request.
    pub(super) fn scope<'a>(
        &'a self,
        head: &'a RequestHead,
        known: Known<'a>,
        params: &'a [(String, String)],
        f: &'a Facts,
        body: &'a str,
    ) -> Scope<'a> {
        Scope {
            context: mapping::context_value(&self.request_context(head, known, f)),
            ..self.scope_without_context(params, f, body)
        }
    }

    /// [`Gateway::scope`] without `$context` (`null`), for mappings that never read it:
    /// building the context is most of a scope's cost.
    pub(super) fn scope_without_context<'a>(
        &'a self,
        params: &'a [(String, String)],
        f: &'a Facts,
        body: &'a str,
    ) -> Scope<'a> {
        Scope {
            path: params,
            query: &f.query,
            headers: &f.headers,
            body,
            context: crate::vtl::Value::Null,
            stage_variables: self.stage_variables_value(),
        }
    }
}
