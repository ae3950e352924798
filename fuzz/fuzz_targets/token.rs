//! Token fuzz target: a JWKS document and a token, split at the first NUL. The key set
//! reader, the token reader, signature checks with whatever keys the document gave, the
//! claim checks and the claim texts must answer or refuse, never panic.

#![no_main]

use apigw_edge::jwt::keys::KeySet;
use apigw_edge::jwt::verify::{admit, token_of, verify};
use apigw_edge::jwt::{claims, token, Authorizer, Flavor};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (doc, raw) = match data.iter().position(|b| *b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (&b"{}"[..], data),
    };
    let raw = String::from_utf8_lossy(raw);
    let raw = token_of(&raw);
    if let Ok(t) = token::parse(raw) {
        for (k, v) in &t.claims {
            let _ = claims::text(k, v);
        }
    }
    let keys = KeySet::parse(doc).ok().map(|(k, _)| k);
    for flavor in [Flavor::Cognito, Flavor::Jwt] {
        let a = Authorizer {
            name: "fuzz".into(),
            flavor,
            header: "authorization".into(),
            issuers: vec![0],
            audiences: vec!["client".into()],
            skew_s: 5,
        };
        let issuer = "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_Fuzz";
        if let Ok(v) = verify(&a, &[issuer], |_| keys.as_ref(), raw) {
            let _ = admit(&a, &v, &["openid".to_string()], 1_700_000_000_000);
            let _ = admit(&a, &v, &[], u64::MAX);
        }
    }
});
