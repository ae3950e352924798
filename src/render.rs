//! Rendering a deployment into an Envoy bootstrap.
//!
//! Owns: the shape of the Envoy configuration apigw-edge runs in: one listener with the wasm
//! filter (configuration embedded as a `StringValue`) in front of the router, optionally a
//! loopback control listener running the same module in its control role, one cluster per
//! Lambda endpoint or function URL and one per HTTP integration backend (plain HTTP for local emulators; TLS with SNI and the
//! system or a private CA bundle for AWS; Envoy's SigV4 signer as an upstream filter where
//! Envoy signs), and the admin interface. The configuration is compiled first, so nothing invalid is
//! ever rendered. Must not: write files or start processes (the CLI does).

use serde_json::{json, Value};

use crate::config::{
    CertificateFiles, CredentialProvider, Deployment, EnvoySettings, FilterConfig, Forwarding,
    Lambda, ListenerTls, SigningMode,
};
use crate::connection;
use crate::control::ControlConfig;
use crate::error::ConfigError;
use crate::gateway::Backend;
use crate::http::{FORWARD_CLUSTER_HEADER, FORWARD_KEEP_PROTO_HEADER};
use crate::lambda::invoke::Endpoint;
use crate::lambda::upstream::{Upstream, Upstreams};
use crate::sigv4::LAMBDA_SERVICE;
use crate::stage_set::StageSet;

/// Name of the wasm filter, its root id and VM id.
pub const FILTER_NAME: &str = "apigw_edge";
/// Name of the control listener and its filter.
pub const CONTROL_NAME: &str = "apigw_edge_control";
/// CA bundle used to verify AWS endpoints.
pub const SYSTEM_CA_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

/// Splits `host:port` / `[v6]:port` for an address Envoy listens on: the host must be an IP
/// address (Envoy does not resolve names for listeners).
pub fn parse_listen(addr: &str) -> Result<(String, u16), String> {
    let (host, port) = parse_socket(addr)?;
    if !is_ip(&host) {
        return Err(format!(
            "`{addr}`: `{host}` is not an IP address (listeners bind to an address, such as 127.0.0.1 or [::1])"
        ));
    }
    Ok((host, port))
}

/// Splits `host:port` / `[v6]:port`.
pub fn parse_socket(addr: &str) -> Result<(String, u16), String> {
    let (host, port) = addr
        .rsplit_once(':')
        .ok_or_else(|| format!("`{addr}` must be host:port"))?;
    let port = port
        .parse::<u16>()
        .ok()
        .filter(|p| *p > 0)
        .ok_or_else(|| format!("`{addr}` has an invalid port"))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() {
        return Err(format!("`{addr}` has no host"));
    }
    Ok((host.to_string(), port))
}

fn socket(host: &str, port: u16) -> Value {
    json!({"socket_address": {"address": host, "port_value": port}})
}

fn is_ip(host: &str) -> bool {
    host.parse::<std::net::IpAddr>().is_ok()
}

fn duration(ms: u32) -> String {
    if ms.is_multiple_of(1000) {
        format!("{}s", ms / 1000)
    } else {
        format!("{}.{:03}s", ms / 1000, ms % 1000)
    }
}

/// Envoy's SigV4 signer as an upstream HTTP filter of a Lambda cluster: it signs every call
/// the wasm filter dispatches to the cluster (`dispatch_http_call` goes through the
/// cluster's upstream filters), with Envoy's credential providers.
fn signing_filters(service: &str, region: &str, lambda: &Lambda) -> Value {
    let mut signing = json!({
        "@type": "type.googleapis.com/envoy.extensions.filters.http.aws_request_signing.v3.AwsRequestSigning",
        "service_name": service,
        "region": region,
        "use_unsigned_payload": false
    });
    if let (CredentialProvider::Environment, Some(obj)) =
        (lambda.credentials.provider, signing.as_object_mut())
    {
        obj.insert(
            "credential_provider".into(),
            json!({"custom_credential_provider_chain": true, "environment_credential_provider": {}}),
        );
    }
    json!([
        {"name": "envoy.filters.http.aws_request_signing", "typed_config": signing},
        {"name": "envoy.filters.http.upstream_codec", "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.upstream_codec.v3.UpstreamCodec"}}
    ])
}

fn cluster(upstream: &Upstream, lambda: &Lambda, client: Option<&CertificateFiles>) -> Value {
    let endpoint = &upstream.endpoint;
    let name = endpoint.cluster_name();
    let protocol = if lambda.http2 {
        json!({"http2_protocol_options": {}})
    } else {
        json!({"http_protocol_options": {}})
    };
    let mut options = json!({
        "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
        "common_http_protocol_options": {"idle_timeout": "60s"},
        "explicit_http_config": protocol
    });
    if let (SigningMode::Envoy, Some(obj)) = (upstream.signing, options.as_object_mut()) {
        obj.insert(
            "http_filters".into(),
            signing_filters(LAMBDA_SERVICE, &upstream.region, lambda),
        );
    }
    let tls = endpoint.tls.then(|| {
        let ca = lambda.tls.ca_file.as_deref().unwrap_or(SYSTEM_CA_BUNDLE);
        let alpn = if lambda.http2 { "h2" } else { "http/1.1" };
        (ca, alpn, client)
    });
    endpoint_cluster(
        (&name, endpoint),
        (lambda.connect_timeout_ms, lambda.max_requests),
        options,
        tls,
    )
}

/// CA bundle, ALPN protocol and client certificate of an upstream TLS connection.
type UpstreamTls<'a> = (&'a str, &'a str, Option<&'a CertificateFiles>);

/// The cluster of one endpoint: static for an IP address, DNS otherwise; its connect timeout
/// and circuit breaker (`limits`), its HTTP protocol `options`, and with `tls`, TLS with SNI
/// and the server's certificate verified.
fn endpoint_cluster(
    (name, endpoint): (&str, &Endpoint),
    (connect_timeout_ms, max_requests): (u32, u32),
    options: Value,
    tls: Option<UpstreamTls>,
) -> Value {
    let mut c = json!({
        "name": name,
        "type": if is_ip(&endpoint.host) { "STATIC" } else { "STRICT_DNS" },
        "connect_timeout": duration(connect_timeout_ms),
        "dns_lookup_family": "V4_PREFERRED",
        "load_assignment": {
            "cluster_name": name,
            "endpoints": [{"lb_endpoints": [{"endpoint": {"address": socket(&endpoint.host, endpoint.port)}}]}]
        },
        "circuit_breakers": {"thresholds": [{"max_connections": 1024, "max_pending_requests": 1024, "max_requests": max_requests}]},
        "typed_extension_protocol_options": {
            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": options
        }
    });
    if let (Some((ca, alpn, client)), Some(obj)) = (tls, c.as_object_mut()) {
        obj.insert(
            "transport_socket".into(),
            tls_socket(&endpoint.host, ca, alpn, client),
        );
    }
    c
}

/// The cluster of an HTTP integration backend: HTTP/1.1 with keep-alive; for `https://`,
/// TLS with SNI, the certificate verified against the system or `http.caFile` bundle, and
/// the stage's client certificate presented when the deployment has one.
fn backend_cluster(b: &Backend, d: &Deployment) -> Value {
    let (endpoint, name) = (b.endpoint, b.cluster);
    let http = &d.http;
    // AWS services: their own CA setting, no client certificate, Envoy's signer when it
    // signs. HTTP backends: `http.caFile` and the stage's client certificate.
    let (ca_file, client) = match b.signing {
        Some(_) => (d.aws.ca_file.as_deref(), None),
        None => (http.ca_file.as_deref(), d.client_certificate.as_ref()),
    };
    let mut options = json!({
        "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
        "common_http_protocol_options": {"idle_timeout": "60s"},
        "explicit_http_config": {"http_protocol_options": {}}
    });
    if let (Some(s), Some(obj)) = (
        b.signing.filter(|s| s.mode == SigningMode::Envoy),
        options.as_object_mut(),
    ) {
        obj.insert(
            "http_filters".into(),
            signing_filters(&s.service, &s.region, &d.lambda),
        );
    }
    let tls = endpoint
        .tls
        .then(|| (ca_file.unwrap_or(SYSTEM_CA_BUNDLE), "http/1.1", client));
    endpoint_cluster(
        (name, endpoint),
        (http.connect_timeout_ms, http.max_requests),
        options,
        tls,
    )
}

/// A certificate and key as Envoy's `tls_certificates` entry.
fn tls_certificate(files: &CertificateFiles) -> Value {
    json!({
        "certificate_chain": {"filename": files.certificate_file},
        "private_key": {"filename": files.private_key_file}
    })
}

/// An upstream TLS transport socket that verifies the server's certificate against `ca`
/// and requires it to name `host`; with `client`, the gateway presents that certificate.
fn tls_socket(host: &str, ca: &str, alpn: &str, client: Option<&CertificateFiles>) -> Value {
    let mut socket = json!({
        "name": "envoy.transport_sockets.tls",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext",
            "sni": host,
            "common_tls_context": {
                "alpn_protocols": [alpn],
                // The certificate must name the host (wildcards included), not just
                // chain to a trusted CA.
                "validation_context": {
                    "trusted_ca": {"filename": ca},
                    "match_typed_subject_alt_names": [{
                        "san_type": if is_ip(host) { "IP_ADDRESS" } else { "DNS" },
                        "matcher": {"exact": host}
                    }]
                }
            }
        }
    });
    let common = socket
        .pointer_mut("/typed_config/common_tls_context")
        .and_then(Value::as_object_mut);
    if let (Some(files), Some(common)) = (client, common) {
        common.insert("tls_certificates".into(), json!([tls_certificate(files)]));
    }
    socket
}

/// The listener's TLS: the server certificate, and with a truststore, mutual TLS (a client
/// certificate the truststore vouches for is required in the handshake).
fn downstream_tls(tls: &ListenerTls) -> Value {
    let mut common = json!({
        "alpn_protocols": ["h2", "http/1.1"],
        "tls_certificates": [tls_certificate(&CertificateFiles {
            certificate_file: tls.certificate_file.clone(),
            private_key_file: tls.private_key_file.clone(),
        })]
    });
    if let (Some(truststore), Some(obj)) = (&tls.truststore, common.as_object_mut()) {
        obj.insert(
            "validation_context".into(),
            json!({"trusted_ca": {"filename": truststore}}),
        );
    }
    json!({
        "name": "envoy.transport_sockets.tls",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext",
            "common_tls_context": common,
            "require_client_certificate": tls.truststore.is_some()
        }
    })
}

/// The cluster a JWKS document is fetched through (HTTP/1.1, TLS for `https` URLs).
fn jwks_cluster(s: &crate::jwt::Source, lambda: &Lambda) -> Value {
    let mut c = json!({
        "name": s.cluster,
        "type": if is_ip(&s.host) { "STATIC" } else { "STRICT_DNS" },
        "connect_timeout": duration(lambda.connect_timeout_ms),
        "dns_lookup_family": "V4_PREFERRED",
        "load_assignment": {
            "cluster_name": s.cluster,
            "endpoints": [{"lb_endpoints": [{"endpoint": {"address": socket(&s.host, s.port)}}]}]
        }
    });
    if let (true, Some(obj)) = (s.tls, c.as_object_mut()) {
        let ca = s.ca_file.as_deref().unwrap_or(SYSTEM_CA_BUNDLE);
        obj.insert(
            "transport_socket".into(),
            tls_socket(&s.host, ca, "http/1.1", None),
        );
    }
    c
}

/// The cluster of the fleet's rate-limit service (`usage.rateLimitService`): gRPC over
/// plain HTTP/2.
fn ratelimit_cluster(
    s: &crate::config::RateLimitService,
    errors: &mut Vec<ConfigError>,
) -> Option<Value> {
    let (host, port) = parse_socket(&s.address)
        .map_err(|m| {
            errors.push(ConfigError::new(
                "deployment.usage.rateLimitService.address",
                m,
            ))
        })
        .ok()?;
    let name = crate::usage::fleet::CLUSTER;
    Some(json!({
        "name": name,
        "type": if is_ip(&host) { "STATIC" } else { "STRICT_DNS" },
        "connect_timeout": duration(s.connect_timeout_ms),
        "dns_lookup_family": "V4_PREFERRED",
        "typed_extension_protocol_options": {
            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
                "explicit_http_config": {"http2_protocol_options": {}}
            }
        },
        "load_assignment": {
            "cluster_name": name,
            "endpoints": [{"lb_endpoints": [{"endpoint": {"address": socket(&host, port)}}]}]
        }
    }))
}

/// Which build of the filter Envoy runs, and where Envoy finds it.
#[derive(Debug, Clone, Copy)]
pub enum Module<'a> {
    /// The proxy-wasm module (`apigw_edge.wasm`), in V8.
    Wasm(&'a str),
    /// The Envoy dynamic module (`libapigw_edge.so`), native code.
    Native(&'a str),
}

impl Module<'_> {
    /// Where the filter's access log lines are in a request's filter state (the wasm host
    /// prefixes the names a module sets).
    fn state_prefix(&self) -> &'static str {
        match self {
            Module::Wasm(_) => "wasm.",
            Module::Native(_) => "",
        }
    }

    /// Whether the gateway gets the request's connection facts (protocol, peer address,
    /// local port) from a header Envoy writes in front of it (see `connection_filter`).
    /// Reading them from the host costs the wasm build three property calls per request;
    /// the native build reads them directly, for less than the extra filter costs.
    fn connection_header(&self) -> bool {
        matches!(self, Module::Wasm(_))
    }

    /// How this build sends integration requests under `deployment` (its own way when the
    /// deployment does not say).
    fn forwarding(&self, deployment: Option<Forwarding>) -> Forwarding {
        deployment.unwrap_or(Forwarding::default_for(matches!(self, Module::Native(_))))
    }
}

/// Renders the bootstrap. `wasm_path` is where Envoy will find the filter module.
pub fn bootstrap(cfg: &FilterConfig, wasm_path: &str) -> Result<Value, Vec<ConfigError>> {
    bootstrap_for(cfg, Module::Wasm(wasm_path))
}

/// Renders the bootstrap for either build of the filter.
pub fn bootstrap_for(cfg: &FilterConfig, module: Module) -> Result<Value, Vec<ConfigError>> {
    let d = &cfg.deployment;
    let mut access_logs: Vec<String> = Vec::new();
    let (mut errors, upstreams, longest_timeout_ms, jwks, iam_env, backends) =
        match StageSet::compile(cfg) {
            Ok(c) => {
                access_logs = c.set.access_log_paths().to_vec();
                // Every stage's and canary's clusters, each once.
                let mut env: Vec<String> = Vec::new();
                let mut clusters: Vec<Value> = Vec::new();
                let mut backend_names = std::collections::BTreeSet::new();
                let mut jwks = Vec::new();
                for g in c.set.gateways() {
                    let backends = g.http_backends();
                    let filter_signed = backends
                        .iter()
                        .any(|b| b.signing.is_some_and(|s| s.mode == SigningMode::Filter));
                    env.extend(g.iam_env_keys());
                    if filter_signed {
                        env.extend(g.upstreams().credential_env_keys());
                    }
                    for b in &backends {
                        if backend_names.insert(b.cluster.to_string()) {
                            clusters.push(backend_cluster(b, d));
                        }
                    }
                    jwks.extend(g.jwks_sources().iter().cloned());
                }
                env.sort();
                env.dedup();
                let upstreams = c
                    .set
                    .gateway(0)
                    .map(|g| g.upstreams().clone())
                    .unwrap_or_default();
                let longest = c.set.longest_timeout_ms();
                (Vec::new(), upstreams, longest, jwks, env, clusters)
            }
            Err(e) => (
                e,
                Upstreams::default(),
                0,
                Vec::new(),
                Vec::new(),
                Vec::new(),
            ),
        };
    let listen = parse_listen(&d.listen)
        .map_err(|m| errors.push(ConfigError::new("deployment.listen", m)))
        .ok();
    let rls = d
        .usage
        .rate_limit_service
        .as_ref()
        .and_then(|s| ratelimit_cluster(s, &mut errors));
    let admin = parse_listen(&d.admin)
        .map_err(|m| errors.push(ConfigError::new("deployment.admin", m)))
        .ok();
    let control = d.control.as_deref().and_then(|addr| {
        parse_listen(addr)
            .map_err(|m| errors.push(ConfigError::new("deployment.control", m)))
            .ok()
    });
    check_envoy_settings(&d.envoy, longest_timeout_ms, &mut errors);
    let (Some((listen_host, listen_port)), Some((admin_host, admin_port)), true) =
        (listen, admin, errors.is_empty())
    else {
        return Err(errors);
    };
    // For the wasm build, the listener's first filter writes each request's connection facts
    // into a header the gateway reads with the others (see `connection_filter`).
    let mut embedded = cfg.to_json();
    if let Some(envoy) = embedded
        .pointer_mut("/deployment/envoy")
        .and_then(Value::as_object_mut)
        .filter(|_| module.connection_header())
    {
        envoy.insert("connectionHeader".into(), json!(true));
    }
    let filter_config = embedded.to_string();
    // Envoy buffers the body while the filter waits for it, and a forwarded request's
    // answer while the filter rewrites it; leave room above both limits.
    let buffer_limit = d
        .limits
        .max_body_bytes
        .max(d.limits.max_response_bytes)
        .saturating_add(1 << 20)
        .min(u64::from(u32::MAX));
    // The VM gets only the variables it reads: signing credentials and IAM callers' secrets.
    let mut env_keys = upstreams.env_keys();
    for k in iam_env {
        if !env_keys.contains(&k) {
            env_keys.push(k);
        }
    }
    let mut listeners = vec![listener(
        FILTER_NAME,
        (&listen_host, listen_port),
        buffer_limit,
        &filter_config,
        (module, &env_keys),
        &d.envoy,
    )];
    if let (Some(tls), Some(gateway)) = (&d.tls, listeners.first_mut()) {
        secure(gateway, tls);
    }
    if let (Forwarding::Router, Some(gateway)) =
        (module.forwarding(d.forwarding), listeners.first_mut())
    {
        forwarding_route(gateway, longest_timeout_ms);
    }
    if let Some(gateway) = listeners.first_mut() {
        if module.connection_header() {
            connection_header(gateway, d.envoy.xff_num_trusted_hops);
        }
        if !access_logs.is_empty() {
            access_log(gateway, &access_logs, module.state_prefix());
        }
    }
    if let Some((host, port)) = control {
        let control_config = json!({ "control": ControlConfig::of(d) }).to_string();
        listeners.push(listener(
            CONTROL_NAME,
            (&host, port),
            1 << 16,
            &control_config,
            (module, &env_keys),
            &d.envoy,
        ));
    }
    let mut clusters: Vec<Value> = upstreams
        .clusters
        .values()
        .map(|u| cluster(u, &d.lambda, d.client_certificate.as_ref()))
        .collect();
    clusters.extend(backends);
    clusters.extend(rls);
    let mut seen = std::collections::BTreeSet::new();
    for s in &jwks {
        if seen.insert(s.cluster.clone()) {
            clusters.push(jwks_cluster(s, &d.lambda));
        }
    }
    Ok(json!({
        "admin": {"address": socket(&admin_host, admin_port)},
        "overload_manager": overload_manager(&d.envoy),
        "static_resources": {
            "listeners": listeners,
            "clusters": clusters
        }
    }))
}

/// TLS on the gateway's listener. With mutual TLS, Envoy also records the verified client
/// certificate in `x-forwarded-client-cert` (replacing anything a client sent) for the
/// filter to read.
fn secure(listener: &mut Value, tls: &ListenerTls) {
    if let Some(chain) = listener
        .pointer_mut("/filter_chains/0")
        .and_then(Value::as_object_mut)
    {
        chain.insert("transport_socket".into(), downstream_tls(tls));
    }
    let hcm = listener
        .pointer_mut("/filter_chains/0/filters/0/typed_config")
        .and_then(Value::as_object_mut);
    if let (true, Some(hcm)) = (tls.truststore.is_some(), hcm) {
        hcm.insert("forward_client_cert_details".into(), json!("SANITIZE_SET"));
        hcm.insert(
            "set_current_client_cert_details".into(),
            json!({"cert": true}),
        );
    }
}

/// Refuses Envoy settings that cannot work: a zero limit, or a stream idle timeout that
/// would end requests still waiting for their integration.
fn check_envoy_settings(e: &EnvoySettings, longest_timeout_ms: u64, errors: &mut Vec<ConfigError>) {
    let positive = [
        ("concurrency", u64::from(e.concurrency)),
        (
            "requestHeadersTimeoutMs",
            u64::from(e.request_headers_timeout_ms),
        ),
        ("requestTimeoutMs", u64::from(e.request_timeout_ms)),
        ("streamIdleTimeoutMs", u64::from(e.stream_idle_timeout_ms)),
        ("idleTimeoutMs", u64::from(e.idle_timeout_ms)),
        ("maxConnections", e.max_connections),
        ("maxHeapMiB", u64::from(e.max_heap_mib)),
    ];
    for (field, value) in positive {
        if value == 0 {
            errors.push(ConfigError::new(
                format!("deployment.envoy.{field}"),
                "must be at least 1",
            ));
        }
    }
    if u64::from(e.stream_idle_timeout_ms) <= longest_timeout_ms {
        errors.push(ConfigError::new(
            "deployment.envoy.streamIdleTimeoutMs",
            format!(
                "must be longer than the longest integration timeout ({longest_timeout_ms} ms), or requests waiting for it are cut off"
            ),
        ));
    }
}

/// Envoy's own rejections and what clients see of them, API Gateway style: status, the
/// `message` body, and `x-amzn-ErrorType`. An error status not listed gets the last row's
/// body.
const LOCAL_REPLIES: [(u16, &str, &str); 8] = [
    (400, "Bad Request", "BadRequestException"),
    (404, "Not Found", "NotFoundException"),
    (408, "Request Timeout", "RequestTimeoutException"),
    (413, "Request Too Long", "RequestTooLargeException"),
    (
        431,
        "Request Header Fields Too Large",
        "RequestHeaderFieldsTooLargeException",
    ),
    (503, "Service Unavailable", "ServiceUnavailableException"),
    (
        504,
        "Endpoint request timed out",
        "InternalServerErrorException",
    ),
    (0, "Internal server error", "InternalServerErrorException"),
];

/// Replies Envoy makes itself (malformed requests, oversized headers or bodies, timeouts,
/// overload) rewritten to API Gateway's JSON shape. The filter's own replies always carry
/// `x-amzn-RequestId` and are left as they are. Every mapper compares the status before it
/// evaluates the expression that looks for that header, so the filter's successful replies
/// (a cache hit, a dispatched integration's answer) pass without an expression evaluated.
fn local_reply_config() -> Value {
    let not_ours = json!({"extension_filter": {
        "name": "envoy.access_loggers.extension_filters.cel",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.access_loggers.filters.cel.v3.ExpressionFilter",
            "expression": "!('x-amzn-requestid' in response.headers)"
        }
    }});
    let mappers: Vec<Value> = LOCAL_REPLIES
        .iter()
        .map(|(status, message, error_type)| {
            // The last row takes every error status the rows before it did not.
            let (op, status) = if *status == 0 {
                ("GE", 400)
            } else {
                ("EQ", *status)
            };
            let filter = json!({"and_filter": {"filters": [
                {"status_code_filter": {"comparison": {"op": op, "value": {"default_value": status, "runtime_key": "apigw_edge.unused"}}}},
                not_ours
            ]}});
            json!({
                "filter": filter,
                "headers_to_add": [{
                    "header": {"key": "x-amzn-ErrorType", "value": error_type},
                    "append_action": "OVERWRITE_IF_EXISTS_OR_ADD"
                }],
                "body_format_override": {
                    "json_format": {"message": message},
                    "content_type": "application/json"
                }
            })
        })
        .collect();
    json!({ "mappers": mappers })
}

/// The route integration requests sent in place of the client's request take: to the
/// cluster the filter names in [`FORWARD_CLUSTER_HEADER`] (removed before the request
/// leaves), within the route's timeout (the longest integration's) or the shorter one the
/// filter sets in `x-envoy-upstream-rq-timeout-ms`. Only the filter sets the cluster
/// header: it replaces the whole request head when it forwards and answers every other
/// request itself. Envoy adds
/// none of its own headers to the request or the answer, so both stay as they are when
/// the filter dispatches the call instead.
fn forwarding_route(gateway: &mut Value, longest_timeout_ms: u64) {
    let hcm = "/filter_chains/0/filters/0/typed_config";
    let timeout = duration(u32::try_from(longest_timeout_ms.max(1)).unwrap_or(u32::MAX));
    let present = |name: &str| json!({"name": name, "present_match": true});
    let route = |keeps_proto: bool| {
        let mut matching = vec![present(FORWARD_CLUSTER_HEADER)];
        let mut removed = vec![FORWARD_CLUSTER_HEADER];
        if keeps_proto {
            matching.push(present(FORWARD_KEEP_PROTO_HEADER));
            removed.push(FORWARD_KEEP_PROTO_HEADER);
        } else {
            removed.push("x-forwarded-proto");
        }
        json!({
            "match": {"prefix": "/", "headers": matching},
            "route": {"cluster_header": FORWARD_CLUSTER_HEADER, "timeout": timeout},
            "request_headers_to_remove": removed
        })
    };
    if let Some(routes) = gateway
        .pointer_mut(&format!("{hcm}/route_config/virtual_hosts/0/routes"))
        .and_then(Value::as_array_mut)
    {
        routes.splice(0..0, [route(true), route(false)]);
    }
    let router = gateway
        .pointer_mut(&format!("{hcm}/http_filters"))
        .and_then(Value::as_array_mut)
        .and_then(|f| f.last_mut())
        .and_then(|f| f.pointer_mut("/typed_config"))
        .and_then(Value::as_object_mut);
    if let Some(router) = router {
        router.insert("suppress_envoy_headers".into(), json!(true));
    }
}

/// Has Envoy write the request's protocol, peer address and local port into
/// [`connection::HEADER`], replacing any value a client sent, so the gateway reads them with
/// the request's headers instead of asking the host for three properties per request.
///
/// With no trusted proxies the connection manager writes it as the headers arrive (an early
/// header mutation: no filter per request). Behind trusted proxies the peer address must be
/// the one Envoy takes from `X-Forwarded-For`, which it has not read yet at that point, so
/// a `header_mutation` filter in front of the gateway's writes it instead.
fn connection_header(gateway: &mut Value, trusted_hops: u32) {
    let mutation = json!({"append": {
        "header": {"key": connection::HEADER, "value": connection::ENVOY_FORMAT},
        "append_action": "OVERWRITE_IF_EXISTS_OR_ADD"
    }});
    let Some(hcm) = gateway
        .pointer_mut("/filter_chains/0/filters/0/typed_config")
        .and_then(Value::as_object_mut)
    else {
        return;
    };
    if trusted_hops == 0 {
        hcm.insert(
            "early_header_mutation_extensions".into(),
            json!([{
                "name": CONNECTION_NAME,
                "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.http.early_header_mutation.header_mutation.v3.HeaderMutation",
                    "mutations": [mutation]
                }
            }]),
        );
    } else if let Some(filters) = hcm.get_mut("http_filters").and_then(Value::as_array_mut) {
        filters.insert(
            0,
            json!({
                "name": CONNECTION_NAME,
                "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.filters.http.header_mutation.v3.HeaderMutation",
                    "mutations": {"request_mutations": [mutation]}
                }
            }),
        );
    }
}

/// The name of what writes [`connection::HEADER`] in a rendered configuration.
const CONNECTION_NAME: &str = "apigw-edge-connection";

/// Envoy's file access loggers on the gateway's listener, one per file, each writing the
/// line the filter built for a request (its filter state under the file's name, see
/// [`crate::access_log::state_name`]). Requests the filter never saw (Envoy refused them
/// first) have no line and are skipped.
fn access_log(gateway: &mut Value, paths: &[String], prefix: &str) {
    let loggers: Vec<Value> = paths
        .iter()
        .enumerate()
        .map(|(i, path)| {
            let state = format!("{prefix}{}", crate::access_log::state_name(i));
            json!({
                "name": "envoy.access_loggers.file",
                "filter": {"extension_filter": {
                    "name": "envoy.access_loggers.extension_filters.cel",
                    "typed_config": {
                        "@type": "type.googleapis.com/envoy.extensions.access_loggers.filters.cel.v3.ExpressionFilter",
                        "expression": format!("'{state}' in filter_state")
                    }
                }},
                "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog",
                    "path": path,
                    "log_format": {"text_format_source": {
                        "inline_string": format!("%FILTER_STATE({state}:PLAIN)%\n")
                    }}
                }
            })
        })
        .collect();
    let hcm = gateway
        .pointer_mut("/filter_chains/0/filters/0/typed_config")
        .and_then(Value::as_object_mut);
    if let Some(hcm) = hcm {
        hcm.insert("access_log".into(), Value::Array(loggers));
    }
}

/// Memory and connection limits for the whole process.
fn overload_manager(e: &EnvoySettings) -> Value {
    let heap = "envoy.resource_monitors.fixed_heap";
    json!({
        "refresh_interval": "0.25s",
        "resource_monitors": [
            {"name": heap, "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.resource_monitors.fixed_heap.v3.FixedHeapConfig",
                "max_heap_size_bytes": u64::from(e.max_heap_mib) << 20
            }},
            {"name": "envoy.resource_monitors.global_downstream_max_connections", "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.resource_monitors.downstream_connections.v3.DownstreamConnectionsConfig",
                "max_active_downstream_connections": e.max_connections
            }}
        ],
        "actions": [
            {"name": "envoy.overload_actions.shrink_heap",
             "triggers": [{"name": heap, "threshold": {"value": 0.90}}]},
            {"name": "envoy.overload_actions.stop_accepting_requests",
             "triggers": [{"name": heap, "threshold": {"value": 0.95}}]}
        ]
    })
}

/// One listener whose wasm filter (V8, VM id [`FILTER_NAME`] for every role, so all roles
/// share one shared-data space) answers every request itself. `env_keys` are the
/// environment variables Envoy passes into the VM (credentials for in-filter signing), by
/// name only: their values never appear in the configuration.
fn listener(
    name: &str,
    (host, port): (&str, u16),
    buffer_limit: u64,
    filter_config: &str,
    (module, env_keys): (Module, &[String]),
    limits: &EnvoySettings,
) -> Value {
    let mut common = json!({"idle_timeout": duration(limits.idle_timeout_ms)});
    if let (true, Some(obj)) = (
        limits.max_requests_per_connection > 0,
        common.as_object_mut(),
    ) {
        obj.insert(
            "max_requests_per_connection".into(),
            json!(limits.max_requests_per_connection),
        );
    }
    let filter = match module {
        Module::Wasm(path) => wasm_filter(name, filter_config, path, env_keys),
        Module::Native(path) => native_filter(name, filter_config, path),
    };
    let mut listener = json!({
        "name": name,
        "address": socket(host, port),
        "per_connection_buffer_limit_bytes": buffer_limit,
        "filter_chains": [{"filters": [{
            "name": "envoy.filters.network.http_connection_manager",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
                "stat_prefix": name,
                "generate_request_id": false,
                // The real TCP peer is `sourceIp`; X-Forwarded-For is left to the
                // filter, which appends the caller as API Gateway does.
                "use_remote_address": true,
                "xff_num_trusted_hops": limits.xff_num_trusted_hops,
                "skip_xff_append": true,
                "server_header_transformation": "PASS_THROUGH",
                // Slow or idle clients cannot hold a worker's connections forever.
                "request_headers_timeout": duration(limits.request_headers_timeout_ms),
                "request_timeout": duration(limits.request_timeout_ms),
                "stream_idle_timeout": duration(limits.stream_idle_timeout_ms),
                "common_http_protocol_options": common,
                "route_config": {
                    "name": name,
                    "virtual_hosts": [{
                        "name": name,
                        "domains": ["*"],
                        "routes": [{
                            "match": {"prefix": "/"},
                            "direct_response": {"status": 500, "body": {"inline_string": "{\"message\":\"Internal server error\"}"}}
                        }]
                    }]
                },
                "http_filters": [
                    filter,
                    {
                        "name": "envoy.filters.http.router",
                        "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}
                    }
                ]
            }
        }]}]
    });
    // The gateway's listener answers Envoy's own rejections in API Gateway's shape; the
    // control listener's replies are the CLI's, left as they are.
    let hcm = listener
        .pointer_mut("/filter_chains/0/filters/0/typed_config")
        .and_then(Value::as_object_mut);
    if let (FILTER_NAME, Some(hcm)) = (name, hcm) {
        hcm.insert("local_reply_config".into(), local_reply_config());
    }
    listener
}

/// The wasm filter: V8, VM id [`FILTER_NAME`] for every role, so all roles share one
/// shared-data space. `env_keys` are the environment variables Envoy passes into the VM
/// (credentials for in-filter signing), by name only: their values never appear in the
/// configuration.
fn wasm_filter(name: &str, filter_config: &str, wasm_path: &str, env_keys: &[String]) -> Value {
    let mut vm_config = json!({
        "vm_id": FILTER_NAME,
        "runtime": "envoy.wasm.runtime.v8",
        "code": {"local": {"filename": wasm_path}}
    });
    if let (false, Some(obj)) = (env_keys.is_empty(), vm_config.as_object_mut()) {
        obj.insert(
            "environment_variables".into(),
            json!({ "host_env_keys": env_keys }),
        );
    }
    json!({
        "name": name,
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm",
            "config": {
                "name": name,
                "root_id": FILTER_NAME,
                // Hold the request headers while the filter reads the body (Envoy >= 1.35);
                // without it a paused request never gets its body callbacks.
                "allow_on_headers_stop_iteration": true,
                // A VM that aborts (a panic) is replaced by a fresh one for the next request
                // instead of failing every request after it.
                "failure_policy": "FAIL_RELOAD",
                "reload_config": {"backoff": {"base_interval": "0.1s", "max_interval": "5s"}},
                "configuration": {
                    "@type": "type.googleapis.com/google.protobuf.StringValue",
                    "value": filter_config
                },
                "vm_config": vm_config
            }
        }
    })
}

/// The native filter: Envoy's dynamic-module HTTP filter loading `libapigw_edge.so` from
/// `path`, once per process for every role (they share its cells). The module reads
/// credentials from Envoy's own environment.
fn native_filter(name: &str, filter_config: &str, path: &str) -> Value {
    json!({
        "name": name,
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.dynamic_modules.v3.DynamicModuleFilter",
            "dynamic_module_config": {
                "name": FILTER_NAME,
                "module": {"local": {"filename": path}},
                // Never unloaded: worker threads keep their compiled copies in
                // thread-local storage of the module.
                "do_not_close": true,
                // The stats keep the names the wasm build gives them, so dashboards and
                // alerts do not change with the build.
                "metrics_namespace": "wasmcustom"
            },
            "filter_name": name,
            "filter_config": {
                "@type": "type.googleapis.com/google.protobuf.StringValue",
                "value": filter_config
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse_deployment;

    #[test]
    fn listener_tls_mutual_tls_and_the_client_certificate_for_backends() {
        let mut c = cfg(json!({"endpoint": "https://lambda.us-east-1.amazonaws.com"}));
        c.deployment.control = Some("127.0.0.1:9902".into());
        c.deployment.tls = Some(ListenerTls {
            certificate_file: "/certs/server.pem".into(),
            private_key_file: "/certs/server.key".into(),
            truststore: Some("/certs/ca.pem".into()),
        });
        c.deployment.client_certificate = Some(CertificateFiles {
            certificate_file: "/certs/gw.pem".into(),
            private_key_file: "/certs/gw.key".into(),
        });
        let b = bootstrap(&c, "/f.wasm").unwrap();
        let gw = &b["static_resources"]["listeners"][0];
        let tls = &gw["filter_chains"][0]["transport_socket"]["typed_config"];
        assert_eq!(tls["require_client_certificate"], true);
        let common = &tls["common_tls_context"];
        assert_eq!(
            common["tls_certificates"][0]["certificate_chain"]["filename"],
            "/certs/server.pem"
        );
        assert_eq!(
            common["validation_context"]["trusted_ca"]["filename"],
            "/certs/ca.pem"
        );
        let hcm = &gw["filter_chains"][0]["filters"][0]["typed_config"];
        assert_eq!(hcm["forward_client_cert_details"], "SANITIZE_SET");
        assert_eq!(hcm["set_current_client_cert_details"]["cert"], true);
        // The loopback control listener stays plain.
        let control = &b["static_resources"]["listeners"][1];
        assert!(control["filter_chains"][0]
            .get("transport_socket")
            .is_none());
        let lambda = &b["static_resources"]["clusters"][0]["transport_socket"]["typed_config"];
        assert_eq!(
            lambda["common_tls_context"]["tls_certificates"][0]["private_key"]["filename"],
            "/certs/gw.key"
        );

        // TLS without a truststore: no client certificates asked for, none recorded.
        if let Some(t) = c.deployment.tls.as_mut() {
            t.truststore = None;
        }
        c.deployment.client_certificate = None;
        let b = bootstrap(&c, "/f.wasm").unwrap();
        let gw = &b["static_resources"]["listeners"][0];
        let tls = &gw["filter_chains"][0]["transport_socket"]["typed_config"];
        assert_eq!(tls["require_client_certificate"], false);
        assert!(tls["common_tls_context"]
            .get("validation_context")
            .is_none());
        let hcm = &gw["filter_chains"][0]["filters"][0]["typed_config"];
        assert!(hcm.get("forward_client_cert_details").is_none());
        let lambda = &b["static_resources"]["clusters"][0]["transport_socket"]["typed_config"];
        assert!(lambda["common_tls_context"]
            .get("tls_certificates")
            .is_none());
    }

    fn cfg(lambda: Value) -> FilterConfig {
        FilterConfig {
            deployment: parse_deployment(
                json!({"openapi": "a.json", "stage": "prod", "lambda": lambda}),
            )
            .unwrap(),
            openapi: json!({"swagger": "2.0", "paths": {"/a": {"get": {"x-amazon-apigateway-integration": {
                "type": "aws_proxy", "httpMethod": "POST",
                "uri": "arn:aws:apigateway:us-east-1:lambda:path/2015-03-31/functions/arn:aws:lambda:us-east-1:1:function:hello/invocations"}}}}}),
            exports: Default::default(),
        }
    }

    /// With `forwarding: ROUTER` the gateway's listener routes forwarded requests by the
    /// filter's cluster header (one route for requests whose `X-Forwarded-Proto` the filter
    /// added, which removes it again) and its router adds no headers; with `DISPATCH` only
    /// the catch-all remains. The buffer limit covers the largest answer held.
    #[test]
    fn access_logs_are_written_by_envoys_file_logger_from_the_filters_line() {
        let mut c = cfg(json!({"endpoint": "http://127.0.0.1:9000"}));
        let b = bootstrap(&c, "/f.wasm").unwrap();
        assert!(hcm(&b).get("access_log").is_none());
        c.deployment.access_log_settings = Some(crate::config::AccessLogSettings {
            format: "$context.requestId".into(),
            path: "/var/log/apigw/access.log".into(),
        });
        let b = bootstrap(&c, "/f.wasm").unwrap();
        let log = hcm(&b)["access_log"].clone();
        assert_eq!(
            log,
            json!([{
                "name": "envoy.access_loggers.file",
                "filter": {"extension_filter": {
                    "name": "envoy.access_loggers.extension_filters.cel",
                    "typed_config": {
                        "@type": "type.googleapis.com/envoy.extensions.access_loggers.filters.cel.v3.ExpressionFilter",
                        "expression": "'wasm.apigw_edge_access_log' in filter_state"
                    }
                }},
                "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog",
                    "path": "/var/log/apigw/access.log",
                    "log_format": {"text_format_source": {
                        "inline_string": "%FILTER_STATE(wasm.apigw_edge_access_log:PLAIN)%\n"
                    }}
                }
            }])
        );
    }

    #[test]
    fn connection_facts_come_from_a_header_envoy_overwrites() {
        let mut c = cfg(json!({"endpoint": "http://127.0.0.1:9000"}));
        c.deployment.control = Some("127.0.0.1:9902".into());
        let b = bootstrap(&c, "/f.wasm").unwrap();
        let listeners = b["static_resources"]["listeners"].as_array().unwrap();
        let names = filter_names;
        assert_eq!(
            names(&listeners[0]),
            [FILTER_NAME, "envoy.filters.http.router"]
        );
        assert_eq!(names(&listeners[1])[0], CONTROL_NAME);
        let early = &listeners[0]["filter_chains"][0]["filters"][0]["typed_config"]
            ["early_header_mutation_extensions"];
        assert_eq!(early[0]["name"], "apigw-edge-connection");
        assert_eq!(
            early[0]["typed_config"]["mutations"][0]["append"],
            json!({
                "header": {"key": "x-apigw-edge-connection",
                           "value": "%PROTOCOL% %DOWNSTREAM_REMOTE_ADDRESS% %DOWNSTREAM_LOCAL_PORT%"},
                "append_action": "OVERWRITE_IF_EXISTS_OR_ADD"
            })
        );
        // The gateway is told to trust the header; the deployment itself is left as written.
        let embedded = wasm_config(&b)["configuration"]["value"]
            .as_str()
            .unwrap()
            .to_string();
        match crate::config::parse_plugin_config(embedded.as_bytes()).unwrap() {
            crate::config::PluginConfig::Gateway(g) => {
                assert!(g.deployment.envoy.connection_header)
            }
            crate::config::PluginConfig::Control(_) => panic!("gateway configuration expected"),
        }
        assert!(!c.deployment.envoy.connection_header);
    }

    /// Behind trusted proxies the peer address is the one Envoy reads from
    /// `X-Forwarded-For`, known only once the connection manager has read the headers: a
    /// filter writes the header then, and no early mutation does.
    #[test]
    fn behind_trusted_proxies_a_filter_writes_the_connection_header() {
        let mut c = cfg(json!({"endpoint": "http://127.0.0.1:9000"}));
        c.deployment.envoy.xff_num_trusted_hops = 1;
        let b = bootstrap(&c, "/f.wasm").unwrap();
        let listener = &b["static_resources"]["listeners"][0];
        assert_eq!(
            filter_names(listener),
            [CONNECTION_NAME, FILTER_NAME, "envoy.filters.http.router"]
        );
        assert!(listener["filter_chains"][0]["filters"][0]["typed_config"]
            .get("early_header_mutation_extensions")
            .is_none());
        let mutation = http_filter(listener, "header_mutation.v3.HeaderMutation");
        assert_eq!(
            mutation["mutations"]["request_mutations"][0]["append"]["header"]["value"],
            connection::ENVOY_FORMAT
        );
    }

    #[test]
    fn forwarded_requests_get_routes_by_the_cluster_header() {
        let routes = |b: &Value| {
            b.pointer("/static_resources/listeners/0/filter_chains/0/filters/0/typed_config/route_config/virtual_hosts/0/routes")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default()
        };
        let mut c = cfg(json!({"endpoint": "http://127.0.0.1:9000"}));
        c.deployment.limits.max_response_bytes = 20 << 20;
        let b = bootstrap(&c, "/f.wasm").unwrap();
        let listener = &b["static_resources"]["listeners"][0];
        assert_eq!(
            listener["per_connection_buffer_limit_bytes"],
            json!((20 << 20) + (1 << 20))
        );
        let r = routes(&b);
        assert_eq!(r.len(), 3);
        assert_eq!(
            r[0]["match"]["headers"],
            json!([{"name": FORWARD_CLUSTER_HEADER, "present_match": true},
                   {"name": FORWARD_KEEP_PROTO_HEADER, "present_match": true}])
        );
        assert_eq!(
            r[0]["request_headers_to_remove"],
            json!([FORWARD_CLUSTER_HEADER, FORWARD_KEEP_PROTO_HEADER])
        );
        assert_eq!(r[1]["route"]["cluster_header"], FORWARD_CLUSTER_HEADER);
        assert_eq!(r[1]["route"]["timeout"], "29s");
        assert_eq!(
            r[1]["request_headers_to_remove"],
            json!([FORWARD_CLUSTER_HEADER, "x-forwarded-proto"])
        );
        assert!(r[2].get("direct_response").is_some());
        let router = http_filter(listener, "router.v3.Router");
        assert_eq!(router["suppress_envoy_headers"], true);

        c.deployment.forwarding = Some(Forwarding::Dispatch);
        let b = bootstrap(&c, "/f.wasm").unwrap();
        let r = routes(&b);
        assert_eq!(r.len(), 1);
        assert!(r[0].get("direct_response").is_some());

        // The native build dispatches unless the deployment asks for forwarding.
        let native = Module::Native("/lib/libapigw_edge.so");
        for (forwarding, route_count) in [
            (None, 1),
            (Some(Forwarding::Dispatch), 1),
            (Some(Forwarding::Router), 3),
        ] {
            c.deployment.forwarding = forwarding;
            let r = routes(&bootstrap_for(&c, native).unwrap());
            assert_eq!(r.len(), route_count, "{forwarding:?}");
        }
    }

    #[test]
    fn each_jwks_host_gets_a_cluster_with_its_trust_store() {
        let mut c = cfg(json!({"endpoint": "http://127.0.0.1:9000"}));
        let pool = |id: &str| {
            json!({"type": "apiKey", "name": "Authorization", "in": "header",
                "x-amazon-apigateway-authtype": "cognito_user_pools",
                "x-amazon-apigateway-authorizer": {"type": "cognito_user_pools",
                    "providerARNs": [format!("arn:aws:cognito-idp:eu-west-1:1:userpool/{id}")]}})
        };
        c.openapi["securityDefinitions"] =
            json!({"a": pool("eu-west-1_A"), "b": pool("eu-west-1_B")});
        c.openapi["paths"]["/a"]["get"]["security"] = json!([{"a": []}]);
        c.openapi["paths"]["/b"] = c.openapi["paths"]["/a"].clone();
        c.openapi["paths"]["/b"]["get"]["security"] = json!([{"b": []}]);
        c.deployment.jwt = serde_json::from_value(json!({"pools": {"eu-west-1_B": {
            "jwksUrl": "https://idp.example.com:8443/b/keys", "caFile": "/etc/private-ca.pem"}}}))
        .unwrap();
        let b = bootstrap(&c, "/f.wasm").unwrap();
        let all = clusters(&b);
        let find = |name: &str| all.iter().find(|c| c["name"] == name).cloned().unwrap();
        let cognito = find("apigw_jwks_https_cognito_idp_eu_west_1_amazonaws_com_443");
        assert_eq!(cognito["type"], "STRICT_DNS");
        let tls = &cognito["transport_socket"]["typed_config"];
        assert_eq!(tls["sni"], "cognito-idp.eu-west-1.amazonaws.com");
        assert_eq!(
            tls["common_tls_context"]["validation_context"]["trusted_ca"]["filename"],
            SYSTEM_CA_BUNDLE
        );
        let private = find("apigw_jwks_https_idp_example_com_8443");
        let tls = &private["transport_socket"]["typed_config"];
        assert_eq!(
            tls["common_tls_context"]["validation_context"]["trusted_ca"]["filename"],
            "/etc/private-ca.pem"
        );
        assert_eq!(all.len(), 3, "the Lambda cluster and one per JWKS host");
    }

    fn clusters(b: &Value) -> Vec<Value> {
        b["static_resources"]["clusters"]
            .as_array()
            .unwrap()
            .clone()
    }

    /// The native build: the same listeners and embedded configuration, the dynamic-module
    /// filter instead of the Wasm one (no VM), the stats' names kept, the access logger
    /// reading the module's filter state name.
    #[test]
    fn the_native_build_loads_the_module_with_the_same_configuration() {
        let mut c = cfg(json!({"endpoint": "http://127.0.0.1:9000"}));
        c.deployment.access_log_settings = Some(crate::config::AccessLogSettings {
            format: "$context.requestId".into(),
            path: "/var/log/apigw/access.log".into(),
        });
        c.deployment.control = Some("127.0.0.1:9902".into());
        // Both builds forwarding, so that their routes agree (unset, the native build
        // dispatches and has no forwarding routes: see the forwarding test).
        c.deployment.forwarding = Some(Forwarding::Router);
        let wasm = bootstrap(&c, "/f.wasm").unwrap();
        let native = bootstrap_for(&c, Module::Native("/lib/libapigw_edge.so")).unwrap();
        let listeners = native["static_resources"]["listeners"].as_array().unwrap();
        assert_eq!(listeners.len(), 2);
        for l in listeners {
            let f = http_filter(l, "dynamic_modules.v3.DynamicModuleFilter");
            assert_eq!(
                f["dynamic_module_config"],
                json!({"name": FILTER_NAME, "module": {"local": {"filename": "/lib/libapigw_edge.so"}},
                       "do_not_close": true, "metrics_namespace": "wasmcustom"})
            );
            assert_eq!(
                f["filter_config"]["@type"],
                "type.googleapis.com/google.protobuf.StringValue"
            );
        }
        let embedded = |b: &Value| {
            http_filter(&b["static_resources"]["listeners"][0], "Wasm")["config"]["configuration"]
                ["value"]
                .clone()
        };
        let native_config =
            http_filter(&listeners[0], "DynamicModuleFilter")["filter_config"]["value"].clone();
        // The native build reads the connection's facts itself: no header filter in front,
        // and the configuration does not tell the gateway to trust that header.
        let parse = |v: Value| serde_json::from_str::<Value>(v.as_str().unwrap()).unwrap();
        let mut wasm_config = parse(embedded(&wasm));
        assert_eq!(wasm_config["deployment"]["envoy"]["connectionHeader"], true);
        wasm_config["deployment"]["envoy"]["connectionHeader"] = json!(false);
        assert_eq!(parse(native_config), wasm_config);
        let names = |b: &Value| filter_names(&b["static_resources"]["listeners"][0]);
        assert_eq!(names(&wasm), [FILTER_NAME, "envoy.filters.http.router"]);
        assert_eq!(names(&native), [FILTER_NAME, "envoy.filters.http.router"]);
        let early = |b: &Value| {
            b["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
                .get("early_header_mutation_extensions")
                .is_some()
        };
        assert!(early(&wasm));
        assert!(!early(&native));
        assert!(!native.to_string().contains("vm_config"));
        let log = hcm(&native)["access_log"][0].clone();
        assert_eq!(
            log["typed_config"]["log_format"]["text_format_source"]["inline_string"],
            "%FILTER_STATE(apigw_edge_access_log:PLAIN)%\n"
        );
        assert_eq!(
            log["filter"]["extension_filter"]["typed_config"]["expression"],
            "'apigw_edge_access_log' in filter_state"
        );
        // Everything but the filter (and the wasm build's connection header) is the same.
        let without_filters = |b: &Value| {
            let mut b = b.clone();
            for l in b["static_resources"]["listeners"].as_array_mut().unwrap() {
                let hcm = &mut l["filter_chains"][0]["filters"][0]["typed_config"];
                hcm["http_filters"] = Value::Null;
                hcm["access_log"] = Value::Null;
                if let Some(hcm) = hcm.as_object_mut() {
                    hcm.remove("early_header_mutation_extensions");
                }
            }
            b
        };
        assert_eq!(without_filters(&native), without_filters(&wasm));
    }

    /// The typed configuration of a listener's HTTP filter whose type ends with `kind`.
    fn http_filter(listener: &Value, kind: &str) -> Value {
        listener["filter_chains"][0]["filters"][0]["typed_config"]["http_filters"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["typed_config"].clone())
            .find(|t| t["@type"].as_str().unwrap().ends_with(kind))
            .unwrap()
    }

    fn wasm_config(b: &Value) -> Value {
        http_filter(&b["static_resources"]["listeners"][0], "wasm.v3.Wasm")["config"].clone()
    }

    #[test]
    fn one_cluster_per_endpoint_and_tls_for_https() {
        let c = cfg(json!({"endpoint": "https://lambda.us-east-1.amazonaws.com",
                           "functions": {"hello": {"name": "hello", "endpoint": "http://127.0.0.1:9000"},
                                         "other": {"name": "x", "endpoint": "http://127.0.0.1:9000"}}}));
        let b = bootstrap(&c, "/f.wasm").unwrap();
        let clusters = clusters(&b);
        assert_eq!(clusters.len(), 2);
        assert_eq!(clusters[0]["name"], "apigw_lambda_http_127_0_0_1_9000");
        assert_eq!(clusters[0]["type"], "STATIC");
        assert!(clusters[0].get("transport_socket").is_none());
        assert_eq!(clusters[1]["type"], "STRICT_DNS");
        let tls = &clusters[1]["transport_socket"]["typed_config"];
        assert_eq!(tls["sni"], "lambda.us-east-1.amazonaws.com");
        assert_eq!(
            tls["common_tls_context"]["validation_context"]["trusted_ca"]["filename"],
            SYSTEM_CA_BUNDLE
        );
        assert_eq!(
            tls["common_tls_context"]["alpn_protocols"],
            json!(["http/1.1"])
        );
        let config = wasm_config(&b);
        let embedded = config["configuration"]["value"].as_str().unwrap();
        let parsed = crate::config::parse_filter_config(embedded.as_bytes()).unwrap();
        assert_eq!(parsed.deployment.stage, "prod");
        assert_eq!(config["vm_config"]["code"]["local"]["filename"], "/f.wasm");
    }

    #[test]
    fn a_fleet_rate_limit_service_gets_an_http2_cluster() {
        let mut c = cfg(json!({"endpoint": "http://127.0.0.1:9000"}));
        c.deployment.usage.rate_limit_service = Some(crate::config::RateLimitService {
            address: "127.0.0.1:8081".into(),
            domain: "d".into(),
            timeout_ms: 50,
            connect_timeout_ms: 1000,
        });
        let v = bootstrap(&c, "f.wasm").unwrap();
        let clusters = v["static_resources"]["clusters"].as_array().unwrap();
        let rls = clusters
            .iter()
            .find(|c| c["name"] == crate::usage::fleet::CLUSTER)
            .unwrap();
        assert_eq!(
            rls["typed_extension_protocol_options"]
                ["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"]["explicit_http_config"],
            json!({"http2_protocol_options": {}})
        );
        assert_eq!(
            rls["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]
                ["socket_address"]["port_value"],
            8081
        );
        c.deployment
            .usage
            .rate_limit_service
            .as_mut()
            .unwrap()
            .address = "nowhere".into();
        let errs = bootstrap(&c, "f.wasm").unwrap_err();
        assert!(
            errs.iter()
                .any(|e| e.location == "deployment.usage.rateLimitService.address"),
            "{errs:?}"
        );
    }

    #[test]
    fn http_backends_get_one_cluster_each_with_verified_tls() {
        let integ = |uri: &str| {
            json!({"get": {"x-amazon-apigateway-integration": {
                "type": "http", "httpMethod": "GET", "uri": uri}}})
        };
        let c = FilterConfig {
            deployment: parse_deployment(json!({
                "openapi": "a.json", "stage": "prod",
                "lambda": {"endpoint": "http://127.0.0.1:9000"},
                "http": {"caFile": "/etc/private-ca.pem", "connectTimeoutMs": 1500},
                "clientCertificate": {"certificateFile": "/c.pem", "privateKeyFile": "/k.pem"}
            }))
            .unwrap(),
            openapi: json!({"swagger": "2.0", "paths": {
                "/a": integ("https://api.example.com/a"),
                "/b": integ("https://api.example.com/b?x=1"),
                "/c": integ("http://10.1.2.3:8080/c")
            }}),
            exports: Default::default(),
        };
        let b = bootstrap(&c, "/f.wasm").unwrap();
        let clusters = clusters(&b);
        let names: Vec<&str> = clusters.iter().filter_map(|c| c["name"].as_str()).collect();
        assert_eq!(
            names,
            vec![
                "apigw_lambda_http_127_0_0_1_9000",
                "apigw_backend_https_api_example_com_443",
                "apigw_backend_http_10_1_2_3_8080"
            ]
        );
        let tls_backend = &clusters[1];
        assert_eq!(tls_backend["type"], "STRICT_DNS");
        assert_eq!(tls_backend["connect_timeout"], "1.500s");
        let tls = &tls_backend["transport_socket"]["typed_config"];
        assert_eq!(tls["sni"], "api.example.com");
        let common = &tls["common_tls_context"];
        assert_eq!(
            common["validation_context"]["trusted_ca"]["filename"],
            "/etc/private-ca.pem"
        );
        assert_eq!(
            common["validation_context"]["match_typed_subject_alt_names"][0]["matcher"]["exact"],
            "api.example.com"
        );
        assert_eq!(
            common["tls_certificates"][0]["certificate_chain"]["filename"],
            "/c.pem"
        );
        assert_eq!(clusters[2]["type"], "STATIC");
        assert!(clusters[2].get("transport_socket").is_none());
    }

    #[test]
    fn aws_services_get_their_own_signed_clusters() {
        let c = FilterConfig {
            deployment: parse_deployment(json!({
                "openapi": "a.json", "stage": "prod",
                "aws": {"endpoints": {"s3": "http://127.0.0.1:5000"}}
            }))
            .unwrap(),
            openapi: json!({"swagger": "2.0", "paths": {
                "/q": {"post": {"x-amazon-apigateway-integration": {"type": "aws", "httpMethod": "POST",
                    "uri": "arn:aws:apigateway:eu-west-1:sqs:path/1/q"}}},
                "/f": {"get": {"x-amazon-apigateway-integration": {"type": "aws", "httpMethod": "GET",
                    "uri": "arn:aws:apigateway:eu-west-1:s3:path/b/k"}}}
            }}),
            exports: Default::default(),
        };
        let b = bootstrap(&c, "/f.wasm").unwrap();
        let clusters = clusters(&b);
        let sqs = clusters
            .iter()
            .find(|c| c["name"] == "apigw_aws_sqs_https_sqs_eu_west_1_amazonaws_com_443")
            .unwrap();
        let filters = &sqs["typed_extension_protocol_options"]
            ["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"]["http_filters"];
        assert_eq!(filters[0]["typed_config"]["service_name"], "sqs");
        assert_eq!(filters[0]["typed_config"]["region"], "eu-west-1");
        assert_eq!(
            sqs["transport_socket"]["typed_config"]["sni"],
            "sqs.eu-west-1.amazonaws.com"
        );
        // An emulator over plain HTTP: unsigned by default, no TLS.
        let s3 = clusters
            .iter()
            .find(|c| c["name"] == "apigw_aws_s3_http_127_0_0_1_5000")
            .unwrap();
        assert!(s3["typed_extension_protocol_options"]
            ["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"]
            .get("http_filters")
            .is_none());
        assert!(s3.get("transport_socket").is_none());
    }

    #[test]
    fn envoy_signing_is_an_upstream_filter_of_the_signed_clusters_only() {
        let c = cfg(json!({"endpoint": "https://lambda.eu-west-1.amazonaws.com",
                           "functions": {"local": {"name": "x", "endpoint": "http://127.0.0.1:9000"}}}));
        let b = bootstrap(&c, "/f.wasm").unwrap();
        let options = |c: &Value| {
            c["typed_extension_protocol_options"]
                ["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"]
                .clone()
        };
        let [local, aws] = <[Value; 2]>::try_from(clusters(&b)).unwrap();
        assert!(options(&local).get("http_filters").is_none());
        let filters = options(&aws)["http_filters"].clone();
        assert_eq!(filters[0]["name"], "envoy.filters.http.aws_request_signing");
        let signing = &filters[0]["typed_config"];
        assert_eq!(
            (signing["service_name"].as_str(), signing["region"].as_str()),
            (Some("lambda"), Some("eu-west-1"))
        );
        // The default chain: no provider configured, Envoy picks its own.
        assert!(signing.get("credential_provider").is_none());
        assert_eq!(filters[1]["name"], "envoy.filters.http.upstream_codec");
        assert!(wasm_config(&b)["vm_config"]
            .get("environment_variables")
            .is_none());

        let c = cfg(
            json!({"endpoint": "https://localhost:8443", "region": "eu-north-1",
                           "credentials": {"provider": "ENVIRONMENT"}, "http2": true,
                           "connectTimeoutMs": 1500, "maxRequests": 64,
                           "tls": {"caFile": "/etc/private-ca.pem"}}),
        );
        let b = bootstrap(&c, "/f.wasm").unwrap();
        let cl = &clusters(&b)[0];
        let o = options(cl);
        assert_eq!(
            o["explicit_http_config"],
            json!({"http2_protocol_options": {}})
        );
        let signing = &o["http_filters"][0]["typed_config"];
        assert_eq!(signing["region"], "eu-north-1");
        assert_eq!(
            signing["credential_provider"],
            json!({"custom_credential_provider_chain": true, "environment_credential_provider": {}})
        );
        assert_eq!(cl["connect_timeout"], "1.500s");
        assert_eq!(cl["circuit_breakers"]["thresholds"][0]["max_requests"], 64);
        let tls = &cl["transport_socket"]["typed_config"]["common_tls_context"];
        assert_eq!(
            tls["validation_context"]["trusted_ca"]["filename"],
            "/etc/private-ca.pem"
        );
        assert_eq!(tls["alpn_protocols"], json!(["h2"]));
    }

    #[test]
    fn filter_signing_passes_variable_names_never_values() {
        let c = cfg(
            json!({"endpoint": "https://lambda.eu-west-1.amazonaws.com", "signing": "FILTER",
                           "credentials": {"accessKeyIdEnv": "GW_KEY", "secretAccessKeyEnv": "GW_SECRET"}}),
        );
        let b = bootstrap(&c, "/f.wasm").unwrap();
        assert_eq!(
            wasm_config(&b)["vm_config"]["environment_variables"],
            json!({"host_env_keys": ["GW_KEY", "GW_SECRET", "AWS_SESSION_TOKEN"]})
        );
        let options = &clusters(&b)[0]["typed_extension_protocol_options"]
            ["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"];
        assert!(options.get("http_filters").is_none());
    }

    #[test]
    fn unsigned_function_url_and_signed_invoke_api_get_their_own_clusters() {
        let c = cfg(json!({"endpoint": "https://lambda.us-east-1.amazonaws.com",
                           "functions": {"hello": {"url": "https://abcd.lambda-url.us-east-1.on.aws", "authType": "NONE"}}}));
        let b = bootstrap(&c, "/f.wasm").unwrap();
        let names: Vec<String> = clusters(&b)
            .iter()
            .map(|c| c["name"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(
            names,
            vec![
                "apigw_lambda_https_abcd_lambda_url_us_east_1_on_aws_443",
                "apigw_lambda_https_lambda_us_east_1_amazonaws_com_443"
            ]
        );
        let signed: Vec<bool> = clusters(&b)
            .iter()
            .map(|c| {
                c["typed_extension_protocol_options"]
                    ["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"]
                    .get("http_filters")
                    .is_some()
            })
            .collect();
        assert_eq!(signed, vec![false, true]);
    }

    #[test]
    fn control_listener_shares_the_vm_id() {
        let mut c = cfg(json!({"endpoint": "http://127.0.0.1:9000"}));
        let b = bootstrap(&c, "/f.wasm").unwrap();
        assert_eq!(
            b["static_resources"]["listeners"].as_array().unwrap().len(),
            1
        );
        c.deployment.control = Some("127.0.0.1:9902".into());
        let b = bootstrap(&c, "/f.wasm").unwrap();
        let listeners = b["static_resources"]["listeners"].as_array().unwrap();
        assert_eq!(listeners.len(), 2);
        assert_eq!(
            listeners[1]["address"]["socket_address"]["port_value"],
            9902
        );
        let wasm = |l: &Value| http_filter(l, "wasm.v3.Wasm")["config"].clone();
        let hcm = |l: &Value| l["filter_chains"][0]["filters"][0]["typed_config"].clone();
        assert!(hcm(&listeners[0]).get("local_reply_config").is_some());
        assert!(hcm(&listeners[1]).get("local_reply_config").is_none());
        let (main, control) = (wasm(&listeners[0]), wasm(&listeners[1]));
        assert_eq!(main["vm_config"], control["vm_config"]);
        let embedded = control["configuration"]["value"].as_str().unwrap();
        match crate::config::parse_plugin_config(embedded.as_bytes()).unwrap() {
            crate::config::PluginConfig::Control(cc) => {
                assert_eq!((cc.api_id.as_str(), cc.stage.as_str()), ("local", "prod"))
            }
            other => panic!("{other:?}"),
        }
        c.deployment.control = Some("nowhere".into());
        let errs = bootstrap(&c, "/f.wasm").unwrap_err();
        assert_eq!(errs[0].location, "deployment.control");
    }

    #[test]
    fn invalid_config_is_not_rendered() {
        let mut c = cfg(json!({"endpoint": "ftp://x"}));
        c.deployment.listen = "nowhere".into();
        let errs = bootstrap(&c, "/f.wasm").unwrap_err();
        let locations: Vec<_> = errs.iter().map(|e| e.location.as_str()).collect();
        assert_eq!(
            locations,
            vec!["deployment.lambda.endpoint", "deployment.listen"]
        );
    }

    /// The names of a listener's HTTP filters, in order.
    fn filter_names(listener: &Value) -> Vec<String> {
        listener["filter_chains"][0]["filters"][0]["typed_config"]["http_filters"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["name"].as_str().unwrap().to_string())
            .collect()
    }

    fn hcm(b: &Value) -> Value {
        b["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
            .clone()
    }

    #[test]
    fn listeners_are_hardened_and_overridable() {
        let mut c = cfg(json!({"endpoint": "http://127.0.0.1:9000"}));
        let b = bootstrap(&c, "/f.wasm").unwrap();
        let h = hcm(&b);
        assert_eq!(h["request_headers_timeout"], "10s");
        assert_eq!(h["request_timeout"], "60s");
        assert_eq!(h["stream_idle_timeout"], "60s");
        assert_eq!(h["common_http_protocol_options"]["idle_timeout"], "60s");
        assert_eq!(
            h["common_http_protocol_options"]["max_requests_per_connection"],
            10_000
        );
        let om = &b["overload_manager"];
        assert_eq!(
            om["resource_monitors"][0]["typed_config"]["max_heap_size_bytes"],
            1u64 << 30
        );
        assert_eq!(
            om["resource_monitors"][1]["typed_config"]["max_active_downstream_connections"],
            10_000
        );
        assert_eq!(wasm_config(&b)["failure_policy"], "FAIL_RELOAD");

        c.deployment.envoy.request_headers_timeout_ms = 2500;
        c.deployment.envoy.max_requests_per_connection = 0;
        c.deployment.envoy.max_heap_mib = 256;
        let h = hcm(&bootstrap(&c, "/f.wasm").unwrap());
        assert_eq!(h["request_headers_timeout"], "2.500s");
        assert!(h["common_http_protocol_options"]
            .get("max_requests_per_connection")
            .is_none());
    }

    #[test]
    fn envoy_rejections_get_api_gateway_bodies_but_filter_replies_are_left_alone() {
        let b = bootstrap(
            &cfg(json!({"endpoint": "http://127.0.0.1:9000"})),
            "/f.wasm",
        )
        .unwrap();
        let mappers = hcm(&b)["local_reply_config"]["mappers"]
            .as_array()
            .unwrap()
            .clone();
        assert_eq!(mappers.len(), LOCAL_REPLIES.len());
        let m431 = &mappers[4];
        let filters = &m431["filter"]["and_filter"]["filters"];
        assert_eq!(
            filters[0]["status_code_filter"]["comparison"]["value"]["default_value"],
            431
        );
        assert!(filters[1]["extension_filter"]["typed_config"]["expression"]
            .as_str()
            .unwrap()
            .contains("x-amzn-requestid"));
        assert_eq!(
            m431["body_format_override"]["json_format"]["message"],
            "Request Header Fields Too Large"
        );
        assert_eq!(
            m431["headers_to_add"][0]["header"]["key"],
            "x-amzn-ErrorType"
        );
        // The last mapper catches every other error status Envoy answers itself, and looks
        // at the answer's headers only for an error.
        let last = &mappers[7]["filter"]["and_filter"]["filters"];
        assert_eq!(last[0]["status_code_filter"]["comparison"]["op"], "GE");
        assert_eq!(
            last[0]["status_code_filter"]["comparison"]["value"]["default_value"],
            400
        );
        assert!(last[1].get("extension_filter").is_some());
        for m in &mappers {
            let first = &m["filter"]["and_filter"]["filters"][0];
            assert!(first.get("status_code_filter").is_some(), "{m}");
        }
    }

    #[test]
    fn envoy_settings_read_by_their_documented_names() {
        let d = parse_deployment(json!({"openapi": "a.json", "stage": "prod",
            "lambda": {"endpoint": "http://127.0.0.1:9000"},
            "envoy": {"maxHeapMiB": 256, "maxConnections": 5, "requestHeadersTimeoutMs": 1500}}))
        .unwrap();
        assert_eq!(d.envoy.max_heap_mib, 256);
        assert_eq!(d.envoy.max_connections, 5);
        assert_eq!(d.envoy.request_headers_timeout_ms, 1500);
    }

    #[test]
    fn envoy_settings_that_cannot_work_are_refused() {
        let mut c = cfg(json!({"endpoint": "http://127.0.0.1:9000"}));
        c.deployment.envoy.max_connections = 0;
        c.deployment.envoy.stream_idle_timeout_ms = 29_000;
        let errs = bootstrap(&c, "/f.wasm").unwrap_err();
        let locations: Vec<_> = errs.iter().map(|e| e.location.as_str()).collect();
        assert_eq!(
            locations,
            vec![
                "deployment.envoy.maxConnections",
                "deployment.envoy.streamIdleTimeoutMs"
            ]
        );
        assert!(errs[1].message.contains("29000 ms"), "{}", errs[1]);
    }

    #[test]
    fn listen_addresses_must_be_ip_addresses_with_valid_ports() {
        for bad in [
            "999.1.1.1:8080",
            "127.0.0.1:99999",
            "localhost:8080",
            "127.0.0.1:0",
        ] {
            let mut c = cfg(json!({"endpoint": "http://127.0.0.1:9000"}));
            c.deployment.listen = bad.into();
            let errs = bootstrap(&c, "/f.wasm").unwrap_err();
            assert_eq!(errs[0].location, "deployment.listen", "{bad}");
        }
        assert!(parse_listen("[::1]:8080").is_ok());
    }

    #[test]
    fn socket_table() {
        assert_eq!(
            parse_socket("127.0.0.1:8080").unwrap(),
            ("127.0.0.1".to_string(), 8080)
        );
        assert_eq!(parse_socket("[::1]:80").unwrap(), ("::1".to_string(), 80));
        assert!(parse_socket("x").is_err());
        assert!(parse_socket(":80").is_err());
    }
}
