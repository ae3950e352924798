//! Tests of the client certificate reader, on a fixed certificate: an EC P-256 key,
//! serial `9f1e2d3c4b5a6978` (DER adds a sign byte), a comma inside the OU.

use super::*;

const PEM: &str = "-----BEGIN CERTIFICATE-----\nMIIBhzCCASygAwIBAgIJAJ8eLTxLWml4MAoGCCqGSM49BAMCMDkxCzAJBgNVBAYT\nAlVTMRUwEwYDVQQKDAxFeGFtcGxlIENvcnAxEzARBgNVBAMMCkV4YW1wbGUgQ0Ew\nHhcNMjUwNTI4MTIzMDAyWhcNMzUwODA1MDkzNjA0WjBYMQswCQYDVQQGEwJVUzEV\nMBMGA1UECgwMRXhhbXBsZSBDb3JwMRUwEwYDVQQLDAxQYXltZW50cywgRVUxGzAZ\nBgNVBAMMEmNsaWVudC5leGFtcGxlLmNvbTBZMBMGByqGSM49AgEGCCqGSM49AwEH\nA0IABJ+thK6uCLvvfwEAFNgs72oJ3isM+HG1zgxPHROlmlk0B8tFdp8QcOLCRw/l\nsb/mMTPAsM3GTqS/N5Go7CoH/U8wCgYIKoZIzj0EAwIDSQAwRgIhAMEjcV10ckG8\niM3cU+b9TaX2fohk2UhbVYs7O2VQmvd8AiEAoPoxi6yr/dDeHggWm9n4jKtWa13g\nIyoJdAVzcJOm4/w=\n-----END CERTIFICATE-----\n";

/// The PEM as Envoy URL-encodes it into `x-forwarded-client-cert`.
fn xfcc(pem: &str) -> String {
    let mut cert = String::new();
    for b in pem.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            cert.push(char::from(b));
        } else {
            cert.push_str(&format!("%{b:02X}"));
        }
    }
    format!("Hash=7f3a9c;Cert=\"{cert}\";Subject=\"CN=client.example.com\"")
}

#[test]
fn the_certificate_is_shaped_as_api_gateway_shows_it() {
    let c = ClientCert::from_xfcc(xfcc(PEM).as_bytes()).unwrap();
    assert_eq!(c.client_cert_pem, PEM);
    assert_eq!(
        c.subject_dn,
        r"CN=client.example.com,OU=Payments\, EU,O=Example Corp,C=US"
    );
    assert_eq!(c.issuer_dn, "CN=Example CA,O=Example Corp,C=US");
    assert_eq!(c.serial_number, "9f:1e:2d:3c:4b:5a:69:78");
    assert_eq!(c.validity.not_before, "May 28 12:30:02 2025 GMT");
    assert_eq!(c.validity.not_after, "Aug  5 09:36:04 2035 GMT");
    let json = serde_json::to_value(&c).unwrap();
    for key in ["clientCertPem", "subjectDN", "issuerDN", "serialNumber"] {
        assert!(json[key].is_string(), "{key}: {json}");
    }
    assert_eq!(json["validity"]["notAfter"], "Aug  5 09:36:04 2035 GMT");
}

#[test]
fn broken_headers_are_refused_with_a_reason() {
    let long = "x".repeat(MAX_XFCC_BYTES + 1);
    let cases: [(&[u8], &str); 7] = [
        (b"Hash=abc", "no `Cert`"),
        (b"Cert=\"%zz\"", "%-escape"),
        (b"Cert=\"%2\"", "%-escape"),
        (b"Cert=\"not a certificate\"", "not a PEM"),
        (b"Cert=\"%FF%FE\"", "not UTF-8"),
        (b"\xff\xfe", "not UTF-8"),
        (long.as_bytes(), "more than"),
    ];
    for (value, why) in cases {
        let e = ClientCert::from_xfcc(value).unwrap_err();
        assert!(e.contains(why), "{e}");
    }
    // A PEM whose body is damaged.
    let damaged = PEM.replace("MIIB", "MIIC");
    assert!(ClientCert::from_xfcc(xfcc(&damaged).as_bytes()).is_err());
}

#[test]
fn serials_and_times_format_like_openssl() {
    let cases: [(&[u8], &str); 4] = [
        (&[1], "01"),
        (&[0, 0x80], "80"),
        (&[0, 0x7f], "00:7f"),
        (&[0x12, 0xab], "12:ab"),
    ];
    for (bytes, text) in cases {
        assert_eq!(serial_hex(bytes), text);
    }
    assert_eq!(openssl_time(0), "Jan  1 00:00:00 1970 GMT");
    assert_eq!(openssl_time(1_764_633_600), "Dec  2 00:00:00 2025 GMT");
    assert_eq!(openssl_time(253_402_300_799), "Dec 31 23:59:59 9999 GMT");
}

#[test]
fn distinguished_names_follow_rfc_4514() {
    use std::str::FromStr;
    let cases = [
        (
            "CN=alice,OU=Payments,O=Example Corp,C=US",
            "CN=alice,OU=Payments,O=Example Corp,C=US",
        ),
        (r"CN=a\, b,O=x\+y", r"CN=a\, b,O=x\+y"),
        ("CN=a+UID=b,DC=example", "CN=a+UID=b,DC=example"),
        (
            "emailAddress=ops@example.com,CN=ops",
            "emailAddress=ops@example.com,CN=ops",
        ),
        // An attribute type without a short name keeps its OID; a value that is not a
        // string is its DER in hex.
        ("2.5.4.45=#030100,CN=x", "2.5.4.45=#030100,CN=x"),
    ];
    for (input, expected) in cases {
        let name = Name::from_str(input).unwrap();
        assert_eq!(dn_text(&name), expected, "{input}");
    }
    // Leading and trailing spaces and a leading `#` are escaped.
    let name = Name::from_str(r"CN=\ padded\ ,O=\#1").unwrap();
    assert_eq!(dn_text(&name), r"CN=\ padded\ ,O=\#1");
}
