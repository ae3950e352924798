//! Client certificate fuzz target: bytes as an `x-forwarded-client-cert` value, and as a
//! PEM text. Reading them must give a certificate or a reason, never panic.

#![no_main]

use apigw_edge::client_cert::ClientCert;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = ClientCert::from_xfcc(data);
    let _ = ClientCert::from_pem(&String::from_utf8_lossy(data));
});
