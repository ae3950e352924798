//! The caller's TLS client certificate, as `requestContext.identity.clientCert` and
//! `$context.identity.clientCert.*` show it.
//!
//! Owns: reading the certificate Envoy verified in the handshake from the
//! `x-forwarded-client-cert` element Envoy sets (`Cert="<URL-encoded PEM>"`, with
//! `forward_client_cert_details: SANITIZE_SET`, so a client can never supply it), and
//! shaping it as API Gateway does: the PEM, the subject and issuer DNs (RFC 4514 text, most
//! specific first), the serial number as colon-separated lowercase hex bytes, and the
//! validity dates in OpenSSL's `May 28 12:30:02 2019 GMT` form. Must not: verify the chain
//! or the dates (Envoy does, in the handshake) or read clocks.

use std::rc::Rc;

use serde::Serialize;
use x509_cert::der::{DecodePem, Encode, Tag, Tagged};
use x509_cert::name::Name;
use x509_cert::Certificate;

use crate::authorizer::cache::{TtlCache, Weighed};
use crate::config::Deployment;
use crate::error::ConfigError;
use crate::time::Utc;

/// The header Envoy puts the verified certificate in.
pub const XFCC_HEADER: &str = "x-forwarded-client-cert";
/// Largest header value read; a certificate chain of a few KiB fits with room to spare.
pub const MAX_XFCC_BYTES: usize = 32 * 1024;

/// One worker's certificates already read, keyed by Envoy's header value: a connection's
/// requests all carry the same one, and reading it costs more than the rest of the event.
pub type CertCache = TtlCache<Rc<ClientCert>>;
/// Bytes each worker's certificate cache may hold.
pub const CERT_CACHE_BYTES: usize = 1 << 20;
/// How long a read certificate is kept (Envoy checked its dates in the handshake).
pub const CERT_CACHE_MS: u64 = 300_000;

impl Weighed for Rc<ClientCert> {
    fn weight(&self) -> usize {
        let v = &self.validity;
        64 + self.client_cert_pem.len()
            + self.subject_dn.len()
            + self.issuer_dn.len()
            + self.serial_number.len()
            + v.not_before.len()
            + v.not_after.len()
    }
}

/// `requestContext.identity.clientCert`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ClientCert {
    pub client_cert_pem: String,
    #[serde(rename = "subjectDN")]
    pub subject_dn: String,
    #[serde(rename = "issuerDN")]
    pub issuer_dn: String,
    pub serial_number: String,
    pub validity: Validity,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Validity {
    pub not_before: String,
    pub not_after: String,
}

impl ClientCert {
    /// The certificate in Envoy's `x-forwarded-client-cert` value.
    pub fn from_xfcc(value: &[u8]) -> Result<ClientCert, String> {
        if value.len() > MAX_XFCC_BYTES {
            return Err(format!(
                "the client certificate header has {} bytes, more than {MAX_XFCC_BYTES}",
                value.len()
            ));
        }
        let text = std::str::from_utf8(value)
            .map_err(|_| "the client certificate header is not UTF-8".to_string())?;
        // Envoy sets one element for the connection; a `Cert` value is URL-encoded, so it
        // holds no `,` or `;` of its own.
        let element = text.split(',').next().unwrap_or_default();
        let cert = element
            .split(';')
            .filter_map(|pair| pair.split_once('='))
            .find(|(k, _)| k.trim().eq_ignore_ascii_case("cert"))
            .map(|(_, v)| v.trim().trim_matches('"'))
            .ok_or_else(|| "the client certificate header has no `Cert`".to_string())?;
        let pem = percent_decode(cert)?;
        ClientCert::from_pem(&pem)
    }

    /// The first certificate of a PEM text.
    pub fn from_pem(pem: &str) -> Result<ClientCert, String> {
        let cert = Certificate::from_pem(pem.as_bytes())
            .map_err(|e| format!("the client certificate is not a PEM X.509 certificate: {e}"))?;
        let tbs = cert.tbs_certificate();
        let validity = tbs.validity();
        Ok(ClientCert {
            client_cert_pem: pem.to_string(),
            subject_dn: dn_text(tbs.subject()),
            issuer_dn: dn_text(tbs.issuer()),
            serial_number: serial_hex(tbs.serial_number().as_bytes()),
            validity: Validity {
                not_before: openssl_time(validity.not_before.to_unix_duration().as_secs()),
                not_after: openssl_time(validity.not_after.to_unix_duration().as_secs()),
            },
        })
    }
}

/// What a certificate setting names: a certificate (chain or truststore) or a private key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PemKind {
    Certificate,
    PrivateKey,
}

/// Every PEM file the `tls` and `clientCertificate` settings name: field, path, kind.
pub fn certificate_files(d: &Deployment) -> Vec<(&'static str, &str, PemKind)> {
    let mut files = Vec::new();
    if let Some(t) = &d.tls {
        files.push((
            "deployment.tls.certificateFile",
            t.certificate_file.as_str(),
            PemKind::Certificate,
        ));
        files.push((
            "deployment.tls.privateKeyFile",
            t.private_key_file.as_str(),
            PemKind::PrivateKey,
        ));
        if let Some(ts) = &t.truststore {
            files.push((
                "deployment.tls.truststore",
                ts.as_str(),
                PemKind::Certificate,
            ));
        }
    }
    if let Some(c) = &d.client_certificate {
        files.push((
            "deployment.clientCertificate.certificateFile",
            c.certificate_file.as_str(),
            PemKind::Certificate,
        ));
        files.push((
            "deployment.clientCertificate.privateKeyFile",
            c.private_key_file.as_str(),
            PemKind::PrivateKey,
        ));
    }
    files
}

/// The rules of the `tls` and `clientCertificate` settings that need no files: every path
/// given, and not blank. (The CLI reads the files; Envoy refuses ones it cannot load.)
pub fn check_settings(d: &Deployment, errors: &mut Vec<ConfigError>) {
    for (at, path, _) in certificate_files(d) {
        if path.trim().is_empty() {
            errors.push(ConfigError::new(at, "must name a PEM file"));
        }
    }
}

/// A distinguished name as RFC 4514 text: RDNs most specific first, joined by `,` (several
/// attributes in one RDN by `+`), the usual short names (`CN`, `OU`, `O`, `L`, `ST`, `C`,
/// `STREET`, `DC`, `UID`, and OpenSSL's `emailAddress` and `serialNumber`), other types as
/// dotted OIDs, and values that are not strings as `#` and their DER in hex. (Written here
/// rather than taken from the X.509 crate's `Display`, which links a table of every OID
/// name into the module.)
fn dn_text(name: &Name) -> String {
    let rdns: Vec<String> = name
        .iter_rdn()
        .map(|rdn| {
            let parts: Vec<String> = rdn
                .iter()
                .map(|atv| {
                    format!(
                        "{}={}",
                        attribute_name(&atv.oid.to_string()),
                        attribute_value(&atv.value)
                    )
                })
                .collect();
            parts.join("+")
        })
        .collect();
    let mut out = String::new();
    for (i, rdn) in rdns.iter().rev().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(rdn);
    }
    out
}

fn attribute_name(oid: &str) -> String {
    match oid {
        "2.5.4.3" => "CN",
        "2.5.4.5" => "serialNumber",
        "2.5.4.6" => "C",
        "2.5.4.7" => "L",
        "2.5.4.8" => "ST",
        "2.5.4.9" => "STREET",
        "2.5.4.10" => "O",
        "2.5.4.11" => "OU",
        "0.9.2342.19200300.100.1.1" => "UID",
        "0.9.2342.19200300.100.1.25" => "DC",
        "1.2.840.113549.1.9.1" => "emailAddress",
        other => return other.to_string(),
    }
    .to_string()
}

/// A string value escaped as RFC 4514 asks; anything else as `#` and its DER in hex.
fn attribute_value(value: &x509_cert::attr::AttributeValue) -> String {
    let text = match value.tag() {
        Tag::Utf8String | Tag::PrintableString | Tag::Ia5String | Tag::TeletexString => {
            Some(String::from_utf8_lossy(value.value()).into_owned())
        }
        Tag::BmpString => {
            let units: Vec<u16> = value
                .value()
                .chunks_exact(2)
                .map(|c| {
                    u16::from_be_bytes([
                        c.first().copied().unwrap_or(0),
                        c.get(1).copied().unwrap_or(0),
                    ])
                })
                .collect();
            Some(String::from_utf16_lossy(&units))
        }
        _ => None,
    };
    let Some(text) = text else {
        let der = value.to_der().unwrap_or_default();
        let hex: String = der.iter().map(|b| format!("{b:02x}")).collect();
        return format!("#{hex}");
    };
    let last = text.chars().count().saturating_sub(1);
    let mut out = String::with_capacity(text.len());
    for (i, c) in text.chars().enumerate() {
        match c {
            '"' | '+' | ',' | ';' | '<' | '>' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            '#' if i == 0 => out.push_str("\\#"),
            ' ' if i == 0 || i == last => out.push_str("\\ "),
            '\0' => out.push_str("\\00"),
            _ => out.push(c),
        }
    }
    out
}

/// `a1:b2:...`: the serial's bytes without the sign byte DER adds to a high first byte.
fn serial_hex(bytes: &[u8]) -> String {
    let bytes = match bytes {
        [0, next, ..] if *next >= 0x80 => bytes.get(1..).unwrap_or(bytes),
        _ => bytes,
    };
    let hex: Vec<String> = bytes.iter().map(|b| format!("{b:02x}")).collect();
    hex.join(":")
}

/// `Aug  5 09:36:04 2021 GMT`: OpenSSL's rendering of an ASN.1 time (day padded with a
/// space).
fn openssl_time(epoch_s: u64) -> String {
    let t = Utc::from_epoch_ms(epoch_s.saturating_mul(1000));
    format!(
        "{} {:>2} {:02}:{:02}:{:02} {} GMT",
        t.month_abbr(),
        t.day,
        t.hour,
        t.minute,
        t.second,
        t.year
    )
}

/// Decodes `%XX` escapes (Envoy's URL encoding of the PEM); `+` stays as it is.
fn percent_decode(s: &str) -> Result<String, String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| "the client certificate has a broken %-escape".to_string())?;
            out.push(hex);
            i += 3;
        } else {
            out.push(b);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| "the client certificate PEM is not UTF-8".to_string())
}

#[cfg(test)]
mod tests;
