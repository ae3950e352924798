//! Rendering a deployment into an Envoy bootstrap.
//!
//! Owns: the shape of the Envoy configuration apigw-edge runs in: one listener with the wasm
//! filter (configuration embedded as a `StringValue`) in front of the router, optionally a
//! loopback control listener running the same module in its control role, one cluster per
//! Lambda endpoint (plain HTTP for local emulators, TLS with SNI and the system CA bundle for
//! AWS), and the admin interface. The configuration is compiled first, so nothing invalid is
//! ever rendered. Must not: write files or start processes (the CLI does).

use serde_json::{json, Value};

use crate::config::{FilterConfig, FunctionTarget};
use crate::control::ControlConfig;
use crate::error::ConfigError;
use crate::gateway::Gateway;
use crate::lambda::invoke::Endpoint;

/// Name of the wasm filter, its root id and VM id.
pub const FILTER_NAME: &str = "apigw_edge";
/// Name of the control listener and its filter.
pub const CONTROL_NAME: &str = "apigw_edge_control";
/// CA bundle used to verify AWS endpoints.
pub const SYSTEM_CA_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

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

fn cluster(endpoint: &Endpoint) -> Value {
    let name = endpoint.cluster_name();
    let mut c = json!({
        "name": name,
        "type": if is_ip(&endpoint.host) { "STATIC" } else { "STRICT_DNS" },
        "connect_timeout": "2s",
        "dns_lookup_family": "V4_PREFERRED",
        "load_assignment": {
            "cluster_name": name,
            "endpoints": [{"lb_endpoints": [{"endpoint": {"address": socket(&endpoint.host, endpoint.port)}}]}]
        },
        "circuit_breakers": {"thresholds": [{"max_connections": 1024, "max_pending_requests": 1024, "max_requests": 4096}]},
        "typed_extension_protocol_options": {
            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
                "common_http_protocol_options": {"idle_timeout": "60s"},
                "explicit_http_config": {"http_protocol_options": {}}
            }
        }
    });
    if let (true, Some(obj)) = (endpoint.tls, c.as_object_mut()) {
        obj.insert("transport_socket".into(), json!({
            "name": "envoy.transport_sockets.tls",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext",
                "sni": endpoint.host,
                "common_tls_context": {
                    "validation_context": {"trusted_ca": {"filename": SYSTEM_CA_BUNDLE}}
                }
            }
        }));
    }
    c
}

/// Every endpoint the deployment names, default first, without duplicates.
fn endpoints(cfg: &FilterConfig) -> Vec<Endpoint> {
    let mut out: Vec<Endpoint> = Vec::new();
    let urls = std::iter::once(cfg.deployment.lambda.endpoint.as_str()).chain(
        cfg.deployment
            .lambda
            .functions
            .values()
            .filter_map(|t| match t {
                FunctionTarget::Full {
                    endpoint: Some(e), ..
                } => Some(e.as_str()),
                _ => None,
            }),
    );
    for url in urls {
        if let Ok(e) = Endpoint::parse(url) {
            if !out.iter().any(|o| o.cluster_name() == e.cluster_name()) {
                out.push(e);
            }
        }
    }
    out
}

/// Renders the bootstrap. `wasm_path` is where Envoy will find the filter module.
pub fn bootstrap(cfg: &FilterConfig, wasm_path: &str) -> Result<Value, Vec<ConfigError>> {
    let mut errors = match Gateway::compile(cfg) {
        Ok(_) => Vec::new(),
        Err(e) => e,
    };
    let d = &cfg.deployment;
    let listen = parse_socket(&d.listen)
        .map_err(|m| errors.push(ConfigError::new("deployment.listen", m)))
        .ok();
    let admin = parse_socket(&d.admin)
        .map_err(|m| errors.push(ConfigError::new("deployment.admin", m)))
        .ok();
    let control = d.control.as_deref().and_then(|addr| {
        parse_socket(addr)
            .map_err(|m| errors.push(ConfigError::new("deployment.control", m)))
            .ok()
    });
    if d.envoy.concurrency == 0 {
        errors.push(ConfigError::new(
            "deployment.envoy.concurrency",
            "must be at least 1",
        ));
    }
    let (Some((listen_host, listen_port)), Some((admin_host, admin_port)), true) =
        (listen, admin, errors.is_empty())
    else {
        return Err(errors);
    };
    let filter_config = cfg.to_json().to_string();
    // Envoy buffers the body while the filter waits for it; leave room above the body limit.
    let buffer_limit = d
        .limits
        .max_body_bytes
        .saturating_add(1 << 20)
        .min(u64::from(u32::MAX));
    let mut listeners = vec![listener(
        FILTER_NAME,
        (&listen_host, listen_port),
        buffer_limit,
        &filter_config,
        wasm_path,
    )];
    if let Some((host, port)) = control {
        let control_config = json!({ "control": ControlConfig::of(d) }).to_string();
        listeners.push(listener(
            CONTROL_NAME,
            (&host, port),
            1 << 16,
            &control_config,
            wasm_path,
        ));
    }
    Ok(json!({
        "admin": {"address": socket(&admin_host, admin_port)},
        "static_resources": {
            "listeners": listeners,
            "clusters": endpoints(cfg).iter().map(cluster).collect::<Vec<_>>()
        }
    }))
}

/// One listener whose wasm filter (V8, VM id [`FILTER_NAME`] for every role, so all roles
/// share one shared-data space) answers every request itself.
fn listener(
    name: &str,
    (host, port): (&str, u16),
    buffer_limit: u64,
    filter_config: &str,
    wasm_path: &str,
) -> Value {
    json!({
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
                "skip_xff_append": true,
                "server_header_transformation": "PASS_THROUGH",
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
                    {
                        "name": name,
                        "typed_config": {
                            "@type": "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm",
                            "config": {
                                "name": name,
                                "root_id": FILTER_NAME,
                                // Hold the request headers while the filter reads the
                                // body (Envoy >= 1.35); without it a paused request
                                // never gets its body callbacks.
                                "allow_on_headers_stop_iteration": true,
                                "configuration": {
                                    "@type": "type.googleapis.com/google.protobuf.StringValue",
                                    "value": filter_config
                                },
                                "vm_config": {
                                    "vm_id": FILTER_NAME,
                                    "runtime": "envoy.wasm.runtime.v8",
                                    "code": {"local": {"filename": wasm_path}}
                                }
                            }
                        }
                    },
                    {
                        "name": "envoy.filters.http.router",
                        "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}
                    }
                ]
            }
        }]}]
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse_deployment;

    fn cfg(lambda: Value) -> FilterConfig {
        FilterConfig {
            deployment: parse_deployment(
                json!({"openapi": "a.json", "stage": "prod", "lambda": lambda}),
            )
            .unwrap(),
            openapi: json!({"swagger": "2.0", "paths": {"/a": {"get": {"x-amazon-apigateway-integration": {
                "type": "aws_proxy", "httpMethod": "POST",
                "uri": "arn:aws:apigateway:us-east-1:lambda:path/2015-03-31/functions/arn:aws:lambda:us-east-1:1:function:hello/invocations"}}}}}),
        }
    }

    #[test]
    fn one_cluster_per_endpoint_and_tls_for_https() {
        let c = cfg(json!({"endpoint": "https://lambda.us-east-1.amazonaws.com",
                           "functions": {"hello": {"name": "hello", "endpoint": "http://127.0.0.1:9000"},
                                         "other": {"name": "x", "endpoint": "http://127.0.0.1:9000"}}}));
        let b = bootstrap(&c, "/f.wasm").unwrap();
        let clusters = b["static_resources"]["clusters"].as_array().unwrap();
        assert_eq!(clusters.len(), 2);
        assert_eq!(clusters[0]["type"], "STRICT_DNS");
        assert_eq!(
            clusters[0]["transport_socket"]["typed_config"]["sni"],
            "lambda.us-east-1.amazonaws.com"
        );
        assert_eq!(clusters[1]["name"], "apigw_lambda_http_127_0_0_1_9000");
        assert_eq!(clusters[1]["type"], "STATIC");
        assert!(clusters[1].get("transport_socket").is_none());
        let filter = &b["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]
            ["typed_config"]["http_filters"][0];
        let embedded = filter["typed_config"]["config"]["configuration"]["value"]
            .as_str()
            .unwrap();
        let parsed = crate::config::parse_filter_config(embedded.as_bytes()).unwrap();
        assert_eq!(parsed.deployment.stage, "prod");
        assert_eq!(
            filter["typed_config"]["config"]["vm_config"]["code"]["local"]["filename"],
            "/f.wasm"
        );
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
        let wasm = |l: &Value| {
            l["filter_chains"][0]["filters"][0]["typed_config"]["http_filters"][0]["typed_config"]
                ["config"]
                .clone()
        };
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
