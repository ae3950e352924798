//! Verification with keys made in the test: every refusal, and the per-request checks.

use std::sync::OnceLock;

use serde_json::{json, Value};

use super::keys::{Alg, KeySet};
use super::verify::{admit, token_of, verify, Verified};
use super::{Authorizer, Flavor, Refusal};

use super::jwt_keys::{jwks, TestKey};

const ISS: &str = "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_Pool";
const NOW_S: u64 = 1_700_000_000;

fn rsa() -> &'static TestKey {
    static K: OnceLock<TestKey> = OnceLock::new();
    K.get_or_init(|| TestKey::rsa("rsa-1", 1))
}

fn other_rsa() -> &'static TestKey {
    static K: OnceLock<TestKey> = OnceLock::new();
    K.get_or_init(|| TestKey::rsa("rsa-1", 2))
}

fn ec() -> TestKey {
    TestKey::ec("ec-1", 3)
}

fn set(keys: &[&TestKey]) -> KeySet {
    KeySet::parse(jwks(keys).as_bytes()).unwrap().0
}

fn cognito() -> Authorizer {
    Authorizer {
        name: "pool".into(),
        flavor: Flavor::Cognito,
        header: "authorization".into(),
        issuers: vec![0],
        audiences: Vec::new(),
        skew_s: 0,
    }
}

fn id_claims() -> Value {
    json!({"sub": "u-1", "iss": ISS, "token_use": "id", "aud": "client-1",
           "cognito:username": "alice", "cognito:groups": ["admin", "ops"],
           "email_verified": true, "auth_time": NOW_S - 10,
           "iat": NOW_S - 10, "exp": NOW_S + 3600})
}

fn access_claims(scope: &str) -> Value {
    json!({"sub": "u-1", "iss": ISS, "token_use": "access", "client_id": "client-1",
           "scope": scope, "iat": NOW_S - 10, "exp": NOW_S + 3600})
}

fn check(a: &Authorizer, keys: &KeySet, token: &str, scopes: &[&str]) -> Result<Verified, Refusal> {
    let v = verify(a, &[ISS], |i| (i == 0).then_some(keys), token)?;
    let scopes: Vec<String> = scopes.iter().map(|s| s.to_string()).collect();
    admit(a, &v, &scopes, NOW_S * 1000)?;
    Ok(v)
}

#[test]
fn good_id_and_access_tokens() {
    let keys = set(&[rsa(), &ec()]);
    let v = check(&cognito(), &keys, &rsa().sign(&id_claims()), &[]).unwrap();
    let claim = |n: &str| {
        v.claims
            .iter()
            .find(|(k, _)| k == n)
            .map(|(_, v)| v.as_str())
    };
    assert_eq!(claim("cognito:username"), Some("alice"));
    assert_eq!(claim("cognito:groups"), Some("admin,ops"));
    assert_eq!(claim("email_verified"), Some("true"));
    assert_eq!(claim("exp"), Some("Tue Nov 14 23:13:20 UTC 2023"));
    let token = ec().sign(&access_claims("orders/read openid"));
    assert!(check(&cognito(), &keys, &token, &["orders/read"]).is_ok());
    // `Bearer ` is optional in front of the token.
    assert_eq!(token_of("Bearer abc"), "abc");
    assert_eq!(token_of("bearer  abc "), "abc");
    assert_eq!(token_of("abc"), "abc");
}

#[test]
fn every_accepted_algorithm_verifies_tokens_of_another_implementation() {
    use jsonwebtoken::Algorithm as A;
    let p384 = TestKey::ec384("ec384", 5);
    for alg in [A::RS256, A::RS384, A::RS512, A::PS256, A::PS384, A::PS512] {
        let k = rsa().with_alg(alg);
        // Without `alg` in the JWK, so that one RSA key serves every RSA algorithm.
        let mut jwk = k.jwk();
        jwk.as_object_mut().unwrap().remove("alg");
        let keys = KeySet::parse(json!({"keys": [jwk]}).to_string().as_bytes())
            .unwrap()
            .0;
        assert!(
            check(&cognito(), &keys, &k.sign(&id_claims()), &[]).is_ok(),
            "{alg:?}"
        );
    }
    let keys = set(&[&ec(), &p384]);
    assert!(check(&cognito(), &keys, &ec().sign(&id_claims()), &[]).is_ok());
    assert!(check(&cognito(), &keys, &p384.sign(&id_claims()), &[]).is_ok());
    // A key whose JWK names one algorithm refuses tokens of another.
    let keys = set(&[rsa()]);
    let rs384 = rsa().with_alg(A::RS384).sign(&id_claims());
    assert!(matches!(
        check(&cognito(), &keys, &rs384, &[]),
        Err(Refusal::UnknownKey { .. })
    ));
}

#[test]
fn refusals_table() {
    let keys = set(&[rsa(), &ec()]);
    let mut expired = id_claims();
    expired["exp"] = json!(NOW_S - 1);
    let mut early = id_claims();
    early["nbf"] = json!(NOW_S + 60);
    let mut wrong_iss = id_claims();
    wrong_iss["iss"] = json!("https://cognito-idp.us-east-1.amazonaws.com/other");
    let mut no_exp = id_claims();
    no_exp.as_object_mut().unwrap().remove("exp");
    let mut bad_exp = id_claims();
    bad_exp["exp"] = json!("soon");
    let good = rsa().sign(&id_claims());
    let (head, rest) = good.split_once('.').unwrap();
    let (payload, sig) = rest.split_once('.').unwrap();
    let tampered = format!("{head}.{}.{sig}", {
        use base64::Engine;
        let b = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let mut c: Value = serde_json::from_slice(&b.decode(payload).unwrap()).unwrap();
        c["sub"] = json!("someone-else");
        b.encode(c.to_string())
    });
    let unknown_kid = TestKey::ec("ec-unknown", 4).sign(&id_claims());
    let none_alg = format!("eyJhbGciOiJub25lIn0.{payload}.");
    type Case<'a> = (&'a str, String, Vec<&'a str>, fn(&Refusal) -> bool);
    let cases: Vec<Case> = vec![
        (
            "wrong signature",
            other_rsa().sign(&id_claims()),
            vec![],
            |r| *r == Refusal::BadSignature,
        ),
        ("tampered claims", tampered, vec![], |r| {
            *r == Refusal::BadSignature
        }),
        ("unknown kid", unknown_kid, vec![], |r| {
            matches!(r, Refusal::UnknownKey { issuer: 0, .. })
        }),
        ("expired", rsa().sign(&expired), vec![], |r| {
            *r == Refusal::Expired
        }),
        ("not yet valid", rsa().sign(&early), vec![], |r| {
            *r == Refusal::NotYetValid
        }),
        ("wrong issuer", rsa().sign(&wrong_iss), vec![], |r| {
            matches!(r, Refusal::WrongIssuer(_))
        }),
        (
            "access token without scopes",
            rsa().sign(&access_claims("a")),
            vec![],
            |r| matches!(r, Refusal::WrongTokenUse { want: "id", .. }),
        ),
        (
            "id token with scopes",
            rsa().sign(&id_claims()),
            vec!["a"],
            |r| matches!(r, Refusal::WrongTokenUse { want: "access", .. }),
        ),
        (
            "missing scope",
            rsa().sign(&access_claims("b c")),
            vec!["a"],
            |r| *r == Refusal::MissingScope,
        ),
        ("no exp", rsa().sign(&no_exp), vec![], |r| {
            matches!(r, Refusal::Malformed(_))
        }),
        ("exp not a number", rsa().sign(&bad_exp), vec![], |r| {
            matches!(r, Refusal::Malformed(_))
        }),
        (
            "alg none",
            none_alg,
            vec![],
            |r| matches!(r, Refusal::Malformed(m) if m.contains("none")),
        ),
        ("bad base64", "a$b.c$d.e".into(), vec![], |r| {
            matches!(r, Refusal::Malformed(_))
        }),
        ("not json", "bm90.bm90.bm90".into(), vec![], |r| {
            matches!(r, Refusal::Malformed(_))
        }),
        (
            "oversized",
            format!("{good}{}", "A".repeat(20_000)),
            vec![],
            |r| matches!(r, Refusal::Malformed(m) if m.contains("more than")),
        ),
    ];
    for (what, token, scopes, want) in cases {
        let got = check(&cognito(), &keys, &token, &scopes);
        match got {
            Err(r) => assert!(want(&r), "{what}: {r:?}"),
            Ok(_) => panic!("{what}: accepted"),
        }
    }
}

#[test]
fn skew_audience_and_missing_keys() {
    let keys = set(&[rsa()]);
    let mut expired = id_claims();
    expired["exp"] = json!(NOW_S - 20);
    let token = rsa().sign(&expired);
    let lenient = Authorizer {
        skew_s: 30,
        ..cognito()
    };
    assert!(
        check(&lenient, &keys, &token, &[]).is_ok(),
        "within the skew"
    );
    assert_eq!(
        check(&cognito(), &keys, &token, &[]).unwrap_err(),
        Refusal::Expired
    );

    let picky = Authorizer {
        audiences: vec!["client-2".into()],
        ..cognito()
    };
    let good = rsa().sign(&id_claims());
    assert_eq!(
        check(&picky, &keys, &good, &[]).unwrap_err(),
        Refusal::WrongAudience
    );
    let fine = Authorizer {
        audiences: vec!["client-1".into()],
        ..cognito()
    };
    assert!(check(&fine, &keys, &good, &[]).is_ok());

    // No keys fetched yet: never a pass.
    let none = verify(&cognito(), &[ISS], |_| None, &good).unwrap_err();
    assert_eq!(none, Refusal::NoKeys { issuer: 0 });
}

#[test]
fn generic_jwt_scopes_and_audiences() {
    let keys = set(&[rsa()]);
    let a = Authorizer {
        flavor: Flavor::Jwt,
        audiences: vec!["api://orders".into()],
        ..cognito()
    };
    let claims = json!({"iss": ISS, "sub": "svc", "aud": ["api://orders", "x"],
                        "scp": ["orders.read"], "exp": NOW_S + 60});
    let token = rsa().sign(&claims);
    assert!(check(&a, &keys, &token, &["orders.read"]).is_ok());
    assert!(
        check(&a, &keys, &token, &[]).is_ok(),
        "no token_use rule for JWT issuers"
    );
    assert_eq!(
        check(&a, &keys, &token, &["orders.write"]).unwrap_err(),
        Refusal::MissingScope
    );
}

#[test]
fn key_sets_table() {
    let good = jwks(&[rsa()]);
    assert_eq!(
        KeySet::parse(good.as_bytes()).unwrap().0.kids(),
        vec!["rsa-1"]
    );
    let mut doc: Value = serde_json::from_str(&jwks(&[rsa(), &ec()])).unwrap();
    doc["keys"]
        .as_array_mut()
        .unwrap()
        .push(json!({"kty": "oct", "kid": "h", "k": "c2VjcmV0"}));
    doc["keys"]
        .as_array_mut()
        .unwrap()
        .push(json!({"kty": "RSA", "kid": "enc", "use": "enc", "n": "AQAB", "e": "AQAB"}));
    doc["keys"]
        .as_array_mut()
        .unwrap()
        .push(json!({"kty": "RSA", "kid": "rsa-1", "n": "AQAB", "e": "AQAB"}));
    let (set, notes) = KeySet::parse(doc.to_string().as_bytes()).unwrap();
    assert_eq!(set.kids(), vec!["rsa-1", "ec-1"]);
    assert_eq!(notes.len(), 3, "{notes:?}");
    let bad: [(&[u8], &str); 4] = [
        (b"nope", "not JSON"),
        (b"{}", "no `keys`"),
        (
            br#"{"keys":[{"kty":"oct","kid":"h","k":"c2VjcmV0"}]}"#,
            "no usable",
        ),
        (&[b' '; 150_001], "more than"),
    ];
    for (doc, want) in bad {
        let e = KeySet::parse(doc).unwrap_err();
        assert!(e.contains(want), "{e}");
    }
    // A key is found by kid and only for its own algorithm family.
    let set = set_of_both();
    assert!(set.find(Some("rsa-1"), Alg::RS256).is_some());
    assert!(set.find(Some("rsa-1"), Alg::ES256).is_none());
    assert!(set.find(None, Alg::RS256).is_none(), "two keys, no kid");
}

fn set_of_both() -> KeySet {
    set(&[rsa(), &ec()])
}
