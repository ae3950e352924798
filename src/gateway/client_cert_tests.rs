//! The `ClientCert` stage through the pipeline: mutual TLS on and off, with and without
//! the certificate Envoy records.

use std::cell::RefCell;

use serde_json::{json, Value};

use super::tests::head;
use super::*;
use crate::client_cert::{CertCache, ClientCert, CERT_CACHE_BYTES};
use crate::config::{parse_deployment, FilterConfig};
use crate::shared::memory::Cells;

const FN: &str = "arn:aws:apigateway:us-east-1:lambda:path/2015-03-31/functions/arn:aws:lambda:us-east-1:123456789012:function:";
const PEM: &str = "-----BEGIN CERTIFICATE-----\nMIIBhzCCASygAwIBAgIJAJ8eLTxLWml4MAoGCCqGSM49BAMCMDkxCzAJBgNVBAYT\nAlVTMRUwEwYDVQQKDAxFeGFtcGxlIENvcnAxEzARBgNVBAMMCkV4YW1wbGUgQ0Ew\nHhcNMjUwNTI4MTIzMDAyWhcNMzUwODA1MDkzNjA0WjBYMQswCQYDVQQGEwJVUzEV\nMBMGA1UECgwMRXhhbXBsZSBDb3JwMRUwEwYDVQQLDAxQYXltZW50cywgRVUxGzAZ\nBgNVBAMMEmNsaWVudC5leGFtcGxlLmNvbTBZMBMGByqGSM49AgEGCCqGSM49AwEH\nA0IABJ+thK6uCLvvfwEAFNgs72oJ3isM+HG1zgxPHROlmlk0B8tFdp8QcOLCRw/l\nsb/mMTPAsM3GTqS/N5Go7CoH/U8wCgYIKoZIzj0EAwIDSQAwRgIhAMEjcV10ckG8\niM3cU+b9TaX2fohk2UhbVYs7O2VQmvd8AiEAoPoxi6yr/dDeHggWm9n4jKtWa13g\nIyoJdAVzcJOm4/w=\n-----END CERTIFICATE-----\n";

fn gateway(tls: Value) -> Gateway {
    let mut d = json!({"openapi": "api.json", "stage": "stage",
        "lambda": {"endpoint": "http://127.0.0.1:9000"}});
    if !tls.is_null() {
        d["tls"] = tls;
    }
    let op = json!({"x-amazon-apigateway-integration": {"type": "aws_proxy", "httpMethod": "POST",
        "uri": format!("{FN}backend/invocations")}});
    let cfg = FilterConfig {
        deployment: parse_deployment(d).unwrap(),
        openapi: json!({"swagger": "2.0", "paths": {"/pets": {"get": op}}}),
        exports: Default::default(),
    };
    Gateway::compile(&cfg).unwrap().gateway
}

fn mtls() -> Gateway {
    gateway(json!({"certificateFile": "s.pem", "privateKeyFile": "s.key", "truststore": "ca.pem"}))
}

fn xfcc() -> String {
    let mut cert = String::new();
    for b in PEM.bytes() {
        if b.is_ascii_alphanumeric() {
            cert.push(char::from(b));
        } else {
            cert.push_str(&format!("%{b:02X}"));
        }
    }
    format!("Hash=00ff;Cert=\"{cert}\"")
}

/// Runs the pipeline to the integration call (the event) or a reply.
fn run(g: &Gateway, headers: &[(&str, &str)]) -> Result<Value, Outcome> {
    run_with(g, headers, None)
}

fn run_with(
    g: &Gateway,
    headers: &[(&str, &str)],
    certs: Option<&RefCell<CertCache>>,
) -> Result<Value, Outcome> {
    let cells = Cells::default();
    let host = super::tests::bare_host(&cells, certs);
    super::tests::run_to_call(g, head("GET", "/stage/pets", headers), b"", &host)
}

#[test]
fn the_verified_certificate_reaches_the_event_and_its_header_does_not() {
    let event = run(&mtls(), &[("x-forwarded-client-cert", &xfcc())]).unwrap();
    let cert = &event["requestContext"]["identity"]["clientCert"];
    assert_eq!(cert["clientCertPem"], PEM);
    assert_eq!(cert["issuerDN"], "CN=Example CA,O=Example Corp,C=US");
    assert_eq!(cert["serialNumber"], "9f:1e:2d:3c:4b:5a:69:78");
    assert_eq!(cert["validity"]["notBefore"], "May 28 12:30:02 2025 GMT");
    let headers = event["headers"].as_object().unwrap();
    assert!(
        headers
            .keys()
            .all(|k| !k.eq_ignore_ascii_case("x-forwarded-client-cert")),
        "{headers:?}"
    );
}

#[test]
fn without_a_readable_certificate_mutual_tls_answers_403() {
    for headers in [
        vec![],
        vec![("x-forwarded-client-cert", "Hash=00ff")],
        vec![("x-forwarded-client-cert", "Cert=\"garbage\"")],
    ] {
        let o = run(&mtls(), &headers).unwrap_err();
        assert_eq!(o.reply.status, 403, "{headers:?}");
        assert_eq!(o.reply.body, br#"{"message":"Forbidden"}"#.to_vec());
        assert_eq!(
            o.reply.header("x-amzn-ErrorType"),
            Some("ForbiddenException")
        );
        assert!(o.log.unwrap_or_default().contains("certificate"));
    }
}

#[test]
fn without_mutual_tls_there_is_no_client_certificate() {
    // A server certificate alone is TLS, not mutual TLS; and a header a client made up is
    // neither read nor forwarded.
    for g in [
        gateway(Value::Null),
        gateway(json!({"certificateFile": "s.pem", "privateKeyFile": "s.key"})),
    ] {
        let event = run(&g, &[("x-forwarded-client-cert", &xfcc())]).unwrap();
        let identity = &event["requestContext"]["identity"];
        assert!(identity.get("clientCert").is_none(), "{identity}");
        assert!(event["headers"].get("X-Forwarded-Client-Cert").is_none());
    }
}

#[test]
fn certificate_paths_must_not_be_blank() {
    let d = parse_deployment(json!({"openapi": "a.json", "stage": "s",
        "lambda": {"endpoint": "http://127.0.0.1:9000"},
        "tls": {"certificateFile": "", "privateKeyFile": "k.pem", "truststore": " "},
        "clientCertificate": {"certificateFile": "c.pem", "privateKeyFile": ""}}))
    .unwrap();
    let mut errors = Vec::new();
    crate::client_cert::check_settings(&d, &mut errors);
    let at: Vec<&str> = errors.iter().map(|e| e.location.as_str()).collect();
    assert_eq!(
        at,
        [
            "deployment.tls.certificateFile",
            "deployment.tls.truststore",
            "deployment.clientCertificate.privateKeyFile"
        ]
    );
}

#[test]
fn a_certificate_is_read_once_per_worker_and_then_taken_from_its_cache() {
    let cache = RefCell::new(CertCache::new(CERT_CACHE_BYTES));
    let header = xfcc();
    let first = run_with(
        &mtls(),
        &[("x-forwarded-client-cert", &header)],
        Some(&cache),
    )
    .unwrap();
    assert_eq!(cache.borrow().len(), 1);
    // The cached entry is what the next request with the same header gets: an entry planted
    // under a value that would not parse proves the stage does not read it again.
    let mut planted = ClientCert::from_pem(PEM).unwrap();
    planted.serial_number = "planted".into();
    cache.borrow_mut().put(
        "Cert=\"unreadable\"".into(),
        Rc::new(planted),
        1_700_000_000_000,
        60_000,
        0,
    );
    let again = run_with(
        &mtls(),
        &[("x-forwarded-client-cert", "Cert=\"unreadable\"")],
        Some(&cache),
    )
    .unwrap();
    assert_eq!(
        again["requestContext"]["identity"]["clientCert"]["serialNumber"],
        "planted"
    );
    assert_eq!(
        first["requestContext"]["identity"]["clientCert"]["serialNumber"],
        "9f:1e:2d:3c:4b:5a:69:78"
    );
}
