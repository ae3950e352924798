//! Client certificates through real Envoy with two workers: mutual TLS for callers (a real
//! TLS client, curl, with a valid, an expired, a wrong-CA and no certificate), and the
//! gateway's own client certificate, made by `apigw-edge cert new`, presented to an HTTPS
//! Lambda stand-in that refuses connections without it.

#![cfg(not(target_arch = "wasm32"))]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support;

use std::path::Path;
use std::process::Command;

use serde_json::{json, Value};
use support::*;

/// A CA for callers, the gateway's server certificate, and the callers' certificates.
struct Pki {
    ca: rcgen::Certificate,
    ca_key: rcgen::KeyPair,
}

impl Pki {
    fn new(name: &str) -> Pki {
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut p = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        p.distinguished_name
            .push(rcgen::DnType::OrganizationName, "Example Corp");
        p.distinguished_name.push(rcgen::DnType::CommonName, name);
        let ca = p.self_signed(&ca_key).unwrap();
        Pki { ca, ca_key }
    }

    /// Writes `NAME.pem` and `NAME.key` under `dir`: a leaf this CA signs.
    fn issue(&self, dir: &Path, name: &str, sans: &[&str], expired: bool, serial: u8) {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut p =
            rcgen::CertificateParams::new(sans.iter().map(|s| s.to_string()).collect::<Vec<_>>())
                .unwrap();
        p.distinguished_name
            .push(rcgen::DnType::OrganizationalUnitName, "Payments");
        p.distinguished_name.push(rcgen::DnType::CommonName, name);
        p.serial_number = Some(rcgen::SerialNumber::from(vec![0x7e, serial]));
        if expired {
            p.not_before = rcgen::date_time_ymd(2020, 1, 1);
            p.not_after = rcgen::date_time_ymd(2021, 1, 1);
        } else {
            p.not_before = rcgen::date_time_ymd(2025, 5, 28);
            p.not_after = rcgen::date_time_ymd(2099, 8, 5);
        }
        let cert = p.signed_by(&key, &self.ca, &self.ca_key).unwrap();
        std::fs::write(dir.join(format!("{name}.pem")), cert.pem()).unwrap();
        std::fs::write(dir.join(format!("{name}.key")), key.serialize_pem()).unwrap();
    }

    fn write_ca(&self, path: &Path) {
        std::fs::write(path, self.ca.pem()).unwrap();
    }
}

/// curl over TLS to the gateway: the status, or `Err` with curl's exit code when the
/// handshake (or anything else) fails.
fn curl(
    dir: &Path,
    port: u16,
    path: &str,
    cert: Option<&str>,
    headers: &[&str],
) -> Result<(u16, String), i32> {
    let mut c = Command::new("curl");
    c.args(["-sS", "--max-time", "20", "-o", "-", "-w", "\n%{http_code}"])
        .arg("--cacert")
        .arg(dir.join("certs/ca.pem"));
    if let Some(name) = cert {
        c.arg("--cert")
            .arg(dir.join(format!("certs/{name}.pem")))
            .arg("--key")
            .arg(dir.join(format!("certs/{name}.key")));
    }
    for h in headers {
        c.args(["-H", h]);
    }
    let out = c
        .arg(format!("https://localhost:{port}{path}"))
        .output()
        .unwrap();
    if !out.status.success() {
        return Err(out.status.code().unwrap_or(-1));
    }
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap();
    Ok((code.trim().parse().unwrap(), body.to_string()))
}

fn api() -> Value {
    json!({"swagger": "2.0", "paths": {
        "/whoami": {"get": proxy_op("backend")},
        "/mapped": {"get": {"x-amazon-apigateway-integration": {"type": "mock",
            "requestTemplates": {"application/json": "{\"statusCode\": 200}"},
            "responses": {"default": {"statusCode": "200", "responseTemplates": {
                "application/json": "{\"dn\":\"$context.identity.clientCert.subjectDN\",\"until\":\"$context.identity.clientCert.validity.notAfter\"}"}}}}}}
    }})
}

#[test]
fn callers_need_a_trusted_certificate_and_backends_get_the_gateways() {
    if Command::new("curl").arg("--version").output().is_err() {
        panic!("curl is needed for the mutual TLS tests");
    }
    let dir = temp_dir("mtls");
    let certs = dir.join("certs");
    std::fs::create_dir_all(&certs).unwrap();
    let callers = Pki::new("Example Caller CA");
    callers.write_ca(&certs.join("truststore.pem"));
    // The server certificate comes from the same CA here; curl trusts it as ca.pem.
    callers.write_ca(&certs.join("ca.pem"));
    callers.issue(&certs, "server", &["localhost", "127.0.0.1"], false, 1);
    callers.issue(&certs, "alice", &[], false, 2);
    callers.issue(&certs, "expired", &[], true, 3);
    Pki::new("Someone Else CA").issue(&certs, "stranger", &[], false, 4);

    // The gateway's certificate for backends, made the way users make it.
    let made = Command::new(cli())
        .args([
            "cert",
            "new",
            "--days",
            "30",
            "--name",
            "gateway.example.com",
            "--out",
        ])
        .arg(&certs)
        .output()
        .unwrap();
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let entry = String::from_utf8_lossy(&made.stdout).into_owned();
    assert!(entry.contains("clientCertificate:"), "{entry}");
    let shown = String::from_utf8(stdout_ok(
        Command::new(cli())
            .args(["cert", "show"])
            .arg(certs.join("client-cert.pem")),
    ))
    .unwrap();
    assert!(
        shown.contains("# subject:    CN=gateway.example.com"),
        "{shown}"
    );
    // The backend trusts exactly what `cert show` printed.
    let backend_ca = TestCa::requiring_client_cert(&dir, &shown);
    let lambda = InvokeStub::start_tls(&backend_ca, |_| {
        StubReply::payload(r#"{"statusCode":200,"body":"hello"}"#)
    });

    let deployment = format!(
        "stage: dev\nlambda:\n  endpoint: {}\n  signing: NONE\n  tls: {{caFile: {}}}\n\
         tls:\n  certificateFile: certs/server.pem\n  privateKeyFile: certs/server.key\n  truststore: certs/truststore.pem\n\
         clientCertificate:\n  certificateFile: certs/client-cert.pem\n  privateKeyFile: certs/client-key.pem\n",
        lambda.https_url(),
        backend_ca.ca_file.display()
    );
    stdout_ok(Command::new(cli()).arg("validate").arg({
        std::fs::write(
            dir.join("openapi.json"),
            serde_json::to_vec(&api()).unwrap(),
        )
        .unwrap();
        let p = dir.join("check.yaml");
        std::fs::write(&p, format!("openapi: openapi.json\n{deployment}")).unwrap();
        p
    }));
    let (config, port, admin) = render(&dir, &deployment, &api());
    let envoy = Envoy::start_config(dir.clone(), config, port, admin, 2);

    // A trusted certificate: the request reaches the function, which sees the certificate
    // as API Gateway shapes it, and never Envoy's header (nor one the caller made up).
    let (status, body) = curl(
        &dir,
        port,
        "/dev/whoami",
        Some("alice"),
        &["x-forwarded-client-cert: Hash=forged;Cert=\"nothing\""],
    )
    .unwrap_or_else(|code| panic!("curl failed ({code}):\n{}", envoy.log()));
    assert_eq!((status, body.as_str()), (200, "hello"), "{}", envoy.log());
    let event = lambda.last("backend").json();
    let cert = &event["requestContext"]["identity"]["clientCert"];
    let alice = std::fs::read_to_string(certs.join("alice.pem")).unwrap();
    assert_eq!(cert["clientCertPem"].as_str().unwrap().trim(), alice.trim());
    // As `openssl x509 -nameopt RFC2253` prints them (rcgen encodes CN first).
    assert_eq!(cert["subjectDN"], "OU=Payments,CN=alice");
    assert_eq!(cert["issuerDN"], "O=Example Corp,CN=Example Caller CA");
    assert_eq!(cert["serialNumber"], "7e:02");
    assert_eq!(cert["validity"]["notBefore"], "May 28 00:00:00 2025 GMT");
    assert_eq!(cert["validity"]["notAfter"], "Aug  5 00:00:00 2099 GMT");
    let headers = event["headers"].as_object().unwrap();
    assert!(
        headers
            .keys()
            .all(|k| !k.eq_ignore_ascii_case("x-forwarded-client-cert")),
        "{headers:?}"
    );

    // `$context.identity.clientCert.*` in a mapping template.
    let (status, body) = curl(&dir, port, "/dev/mapped", Some("alice"), &[]).unwrap();
    assert_eq!(status, 200);
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap(),
        json!({"dn": "OU=Payments,CN=alice", "until": "Aug  5 00:00:00 2099 GMT"})
    );

    // Expired, from another CA, or none: the handshake fails; nothing reaches the filter.
    let before = lambda.requests().len();
    for who in [Some("expired"), Some("stranger"), None] {
        let r = curl(&dir, port, "/dev/whoami", who, &[]);
        assert!(r.is_err(), "{who:?} got {r:?}");
    }
    assert_eq!(lambda.requests().len(), before);
    let stats = envoy.stats();
    let failed: u64 = stats
        .iter()
        .filter(|(k, _)| {
            k.starts_with("listener.127.0.0.1_")
                && (k.ends_with(".ssl.fail_verify_error")
                    || k.ends_with(".ssl.fail_verify_no_cert"))
                || k.ends_with(".ssl.connection_error")
        })
        .filter_map(|(_, v)| v.parse::<u64>().ok())
        .sum();
    assert!(failed >= 3, "{stats:?}");
}

#[test]
fn a_backend_that_requires_the_gateways_certificate_refuses_a_gateway_without_it() {
    let dir = temp_dir("mtls-backend");
    let made = Command::new(cli())
        .args(["cert", "new", "--out"])
        .arg(dir.join("gw"))
        .output()
        .unwrap();
    assert!(made.status.success());
    let pem = std::fs::read_to_string(dir.join("gw/client-cert.pem")).unwrap();
    let backend_ca = TestCa::requiring_client_cert(&dir, &pem);
    let lambda = InvokeStub::start_tls(&backend_ca, |_| {
        StubReply::payload(r#"{"statusCode":200,"body":"hello"}"#)
    });
    let base = format!(
        "stage: dev\nlambda:\n  endpoint: {}\n  signing: NONE\n  tls: {{caFile: {}}}\n",
        lambda.https_url(),
        backend_ca.ca_file.display()
    );
    // Without `clientCertificate` the backend's handshake refuses the gateway.
    let (config, port, admin) = render(&dir, &base, &api());
    let envoy = Envoy::start_config(dir.clone(), config, port, admin, 2);
    let r = envoy.get("/dev/whoami");
    assert_eq!(r.status, 502, "{}", r.text());
    assert!(lambda.requests().is_empty());
    drop(envoy);
    // With it, the same backend answers.
    let with = format!(
        "{base}clientCertificate:\n  certificateFile: gw/client-cert.pem\n  privateKeyFile: gw/client-key.pem\n"
    );
    let (config, port, admin) = render(&dir, &with, &api());
    let envoy = Envoy::start_config(dir.clone(), config, port, admin, 2);
    let r = envoy.get("/dev/whoami");
    assert_eq!(
        (r.status, r.text().as_str()),
        (200, "hello"),
        "{}",
        envoy.log()
    );
    assert_eq!(lambda.requests().len(), 1);
}

#[test]
fn unreadable_or_malformed_certificate_files_are_named_by_field() {
    let dir = temp_dir("mtls-invalid");
    std::fs::write(
        dir.join("openapi.json"),
        serde_json::to_vec(&api()).unwrap(),
    )
    .unwrap();
    std::fs::write(
        dir.join("junk.pem"),
        "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    std::fs::write(dir.join("key.pem"), "not a key").unwrap();
    let key = rcgen::KeyPair::generate().unwrap().serialize_pem();
    std::fs::write(dir.join("good.key"), key).unwrap();
    let cases = [
        (
            "tls:\n  certificateFile: missing.pem\n  privateKeyFile: key.pem\n",
            "deployment.tls.certificateFile: cannot read",
        ),
        (
            "tls:\n  certificateFile: junk.pem\n  privateKeyFile: junk.pem\n",
            "deployment.tls.certificateFile:",
        ),
        (
            "clientCertificate:\n  certificateFile: junk.pem\n  privateKeyFile: key.pem\n",
            "deployment.clientCertificate.privateKeyFile:",
        ),
        (
            "tls:\n  certificateFile: ''\n  privateKeyFile: good.key\n",
            "deployment.tls.certificateFile: must name a PEM file",
        ),
        (
            "tls:\n  certificateFile: a.pem\n  privateKeyFile: b.pem\n  truststor: c.pem\n",
            "deployment.tls.truststor: unknown field `truststor`",
        ),
    ];
    for (extra, expected) in cases {
        let p = dir.join("deployment.yaml");
        std::fs::write(
            &p,
            format!("openapi: openapi.json\nstage: dev\nlambda:\n  endpoint: http://127.0.0.1:9\n{extra}"),
        )
        .unwrap();
        let out = Command::new(cli())
            .arg("validate")
            .arg(&p)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{extra}");
        assert!(stderr.contains(expected), "{extra}\n{stderr}");
    }
}
