//! Rendering a deployment into an Envoy bootstrap.
//!
//! Owns: the shape of the Envoy configuration apigw-edge runs in: one listener with the wasm
//! filter (configuration embedded as a `StringValue`) in front of the router, optionally a
//! loopback control listener running the same module in its control role, one cluster per
//! Lambda endpoint or function URL (plain HTTP for local emulators; TLS with SNI and the
//! system or a private CA bundle for AWS; Envoy's SigV4 signer as an upstream filter where
//! Envoy signs), and the admin interface. The configuration is compiled first, so nothing invalid is
//! ever rendered. Must not: write files or start processes (the CLI does).

use serde_json::{json, Value};

use crate::config::{CredentialProvider, FilterConfig, Lambda, SigningMode};
use crate::control::ControlConfig;
use crate::error::ConfigError;
use crate::gateway::Gateway;
use crate::lambda::upstream::{Upstream, Upstreams};
use crate::sigv4::LAMBDA_SERVICE;

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

fn duration(ms: u32) -> String {
    if ms % 1000 == 0 {
        format!("{}s", ms / 1000)
    } else {
        format!("{}.{:03}s", ms / 1000, ms % 1000)
    }
}

/// Envoy's SigV4 signer as an upstream HTTP filter of a Lambda cluster: it signs every call
/// the wasm filter dispatches to the cluster (`dispatch_http_call` goes through the
/// cluster's upstream filters), with Envoy's credential providers.
fn signing_filters(upstream: &Upstream, lambda: &Lambda) -> Value {
    let mut signing = json!({
        "@type": "type.googleapis.com/envoy.extensions.filters.http.aws_request_signing.v3.AwsRequestSigning",
        "service_name": LAMBDA_SERVICE,
        "region": upstream.region,
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

fn cluster(upstream: &Upstream, lambda: &Lambda) -> Value {
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
        obj.insert("http_filters".into(), signing_filters(upstream, lambda));
    }
    let mut c = json!({
        "name": name,
        "type": if is_ip(&endpoint.host) { "STATIC" } else { "STRICT_DNS" },
        "connect_timeout": duration(lambda.connect_timeout_ms),
        "dns_lookup_family": "V4_PREFERRED",
        "load_assignment": {
            "cluster_name": name,
            "endpoints": [{"lb_endpoints": [{"endpoint": {"address": socket(&endpoint.host, endpoint.port)}}]}]
        },
        "circuit_breakers": {"thresholds": [{"max_connections": 1024, "max_pending_requests": 1024, "max_requests": lambda.max_requests}]},
        "typed_extension_protocol_options": {
            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": options
        }
    });
    if let (true, Some(obj)) = (endpoint.tls, c.as_object_mut()) {
        let ca = lambda.tls.ca_file.as_deref().unwrap_or(SYSTEM_CA_BUNDLE);
        obj.insert("transport_socket".into(), json!({
            "name": "envoy.transport_sockets.tls",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext",
                "sni": endpoint.host,
                "common_tls_context": {
                    "alpn_protocols": [if lambda.http2 { "h2" } else { "http/1.1" }],
                    // The certificate must name the host (wildcards included), not just
                    // chain to a trusted CA.
                    "validation_context": {
                        "trusted_ca": {"filename": ca},
                        "match_typed_subject_alt_names": [{
                            "san_type": if is_ip(&endpoint.host) { "IP_ADDRESS" } else { "DNS" },
                            "matcher": {"exact": endpoint.host}
                        }]
                    }
                }
            }
        }));
    }
    c
}

/// Renders the bootstrap. `wasm_path` is where Envoy will find the filter module.
pub fn bootstrap(cfg: &FilterConfig, wasm_path: &str) -> Result<Value, Vec<ConfigError>> {
    let (mut errors, upstreams) = match Gateway::compile(cfg) {
        Ok(c) => (Vec::new(), c.gateway.upstreams().clone()),
        Err(e) => (e, Upstreams::default()),
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
    let env_keys = upstreams.env_keys();
    let mut listeners = vec![listener(
        FILTER_NAME,
        (&listen_host, listen_port),
        buffer_limit,
        &filter_config,
        (wasm_path, &env_keys),
    )];
    if let Some((host, port)) = control {
        let control_config = json!({ "control": ControlConfig::of(d) }).to_string();
        listeners.push(listener(
            CONTROL_NAME,
            (&host, port),
            1 << 16,
            &control_config,
            (wasm_path, &env_keys),
        ));
    }
    Ok(json!({
        "admin": {"address": socket(&admin_host, admin_port)},
        "static_resources": {
            "listeners": listeners,
            "clusters": upstreams.clusters.values().map(|u| cluster(u, &d.lambda)).collect::<Vec<_>>()
        }
    }))
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
    (wasm_path, env_keys): (&str, &[String]),
) -> Value {
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
                                "vm_config": vm_config
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

    fn clusters(b: &Value) -> Vec<Value> {
        b["static_resources"]["clusters"]
            .as_array()
            .unwrap()
            .clone()
    }

    fn wasm_config(b: &Value) -> Value {
        b["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
            ["http_filters"][0]["typed_config"]["config"]
            .clone()
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
