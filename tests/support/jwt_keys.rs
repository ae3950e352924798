//! Signing keys made in the tests (from a seeded generator, so runs repeat) and tokens
//! signed with them. Shared by the unit tests of the JWT verifier and the end-to-end
//! issuer stand-in.

#![allow(dead_code)]

use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use rand::rngs::StdRng;
use rand::SeedableRng;
use serde_json::{json, Value};

/// A private key, its `kid` and algorithm.
pub struct TestKey {
    pub kid: String,
    pub alg: Algorithm,
    key: EncodingKey,
}

impl TestKey {
    /// An RSA-2048 key for RS256.
    pub fn rsa(kid: &str, seed: u64) -> TestKey {
        use rsa::pkcs1::EncodeRsaPrivateKey;
        let mut rng = StdRng::seed_from_u64(seed);
        let private = rsa::PrivateKey::new(&mut rng, 2048).expect("RSA key generation");
        let der = private.to_pkcs1_der().expect("PKCS#1 DER");
        TestKey {
            kid: kid.into(),
            alg: Algorithm::RS256,
            key: EncodingKey::from_rsa_der(der.as_bytes()),
        }
    }

    /// A P-256 key for ES256.
    pub fn ec(kid: &str, seed: u64) -> TestKey {
        use p256::pkcs8::EncodePrivateKey;
        let mut rng = StdRng::seed_from_u64(seed);
        let secret =
            <p256::SecretKey as p256::elliptic_curve::Generate>::generate_from_rng(&mut rng);
        let der = secret.to_pkcs8_der().expect("PKCS#8 DER");
        TestKey {
            kid: kid.into(),
            alg: Algorithm::ES256,
            key: EncodingKey::from_ec_der(der.as_bytes()),
        }
    }

    /// A P-384 key for ES384.
    pub fn ec384(kid: &str, seed: u64) -> TestKey {
        use p384::pkcs8::EncodePrivateKey;
        let mut rng = StdRng::seed_from_u64(seed);
        let secret =
            <p384::SecretKey as p384::elliptic_curve::Generate>::generate_from_rng(&mut rng);
        let der = secret.to_pkcs8_der().expect("PKCS#8 DER");
        TestKey {
            kid: kid.into(),
            alg: Algorithm::ES384,
            key: EncodingKey::from_ec_der(der.as_bytes()),
        }
    }

    /// The same key signing with another algorithm of its family (RS384, PS256, ...).
    pub fn with_alg(&self, alg: Algorithm) -> TestKey {
        TestKey {
            kid: self.kid.clone(),
            alg,
            key: self.key.clone(),
        }
    }

    /// The public key as a JWK with `kid`, `alg` and `use`.
    pub fn jwk(&self) -> Value {
        let jwk = Jwk::from_encoding_key(&self.key, self.alg).expect("public JWK");
        let mut v = serde_json::to_value(jwk).expect("JWK JSON");
        v["kid"] = json!(self.kid);
        v["use"] = json!("sig");
        v
    }

    /// A token with these claims, signed by this key.
    pub fn sign(&self, claims: &Value) -> String {
        let mut header = Header::new(self.alg);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.key).expect("signing")
    }
}

/// A JWKS document of these keys.
pub fn jwks(keys: &[&TestKey]) -> String {
    json!({ "keys": keys.iter().map(|k| k.jwk()).collect::<Vec<_>>() }).to_string()
}
