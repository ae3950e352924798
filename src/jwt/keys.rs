//! An issuer's signing keys, read from its JWKS document, and signature checks with them.
//!
//! Owns: the size bound of a JWKS answer (API Gateway's 150,000 bytes), reading each key
//! (RSA of 1024 to 4096 bits, EC P-256 and P-384) into a ready verification key once per
//! fetch, skipping keys that cannot verify signatures (encryption keys, symmetric keys,
//! unknown types and curves) with a note, finding a token's key by `kid` and algorithm,
//! and verifying a signature (RSASSA-PKCS1-v1_5, RSASSA-PSS and ECDSA, through RustCrypto's
//! `rsa`, `p256` and `p384`). Must not: fetch anything or check claims.

use base64::Engine;
use rsa::{BoxedUint, Pkcs1v15Sign, Pss};
use serde::Deserialize;
use serde_json::Value;
use sha2::{Digest, Sha256, Sha384, Sha512};

use super::token::B64URL;

/// Largest JWKS document read (API Gateway's limit for JWT authorizers).
pub const MAX_JWKS_BYTES: usize = 150_000;
/// Most keys kept from one document.
pub const MAX_KEYS: usize = 64;

/// The signature algorithms accepted (asymmetric only: never `none` or HMAC).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Alg {
    RS256,
    RS384,
    RS512,
    PS256,
    PS384,
    PS512,
    ES256,
    ES384,
}

impl Alg {
    pub fn parse(name: &str) -> Option<Alg> {
        Some(match name {
            "RS256" => Alg::RS256,
            "RS384" => Alg::RS384,
            "RS512" => Alg::RS512,
            "PS256" => Alg::PS256,
            "PS384" => Alg::PS384,
            "PS512" => Alg::PS512,
            "ES256" => Alg::ES256,
            "ES384" => Alg::ES384,
            _ => return None,
        })
    }
}

enum Public {
    Rsa(Box<rsa::PublicKey>),
    P256(p256::ecdsa::VerifyingKey),
    P384(p384::ecdsa::VerifyingKey),
}

/// One verification key.
pub struct Key {
    pub kid: String,
    /// The algorithm the key is for (`alg`), when the document says.
    pub alg: Option<Alg>,
    public: Public,
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Key")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

impl Key {
    /// Whether this key may verify a signature made with `alg`.
    pub fn fits(&self, alg: Alg) -> bool {
        if self.alg.is_some_and(|a| a != alg) {
            return false;
        }
        matches!(
            (&self.public, alg),
            (
                Public::Rsa(_),
                Alg::RS256 | Alg::RS384 | Alg::RS512 | Alg::PS256 | Alg::PS384 | Alg::PS512
            ) | (Public::P256(_), Alg::ES256)
                | (Public::P384(_), Alg::ES384)
        )
    }

    /// Whether `signature` is this key's signature of `message` under `alg`.
    pub fn verify(&self, alg: Alg, message: &[u8], signature: &[u8]) -> bool {
        use p256::ecdsa::signature::Verifier;
        match (&self.public, alg) {
            (Public::Rsa(k), Alg::RS256) => k
                .verify(
                    Pkcs1v15Sign::new::<Sha256>(),
                    &Sha256::digest(message),
                    signature,
                )
                .is_ok(),
            (Public::Rsa(k), Alg::RS384) => k
                .verify(
                    Pkcs1v15Sign::new::<Sha384>(),
                    &Sha384::digest(message),
                    signature,
                )
                .is_ok(),
            (Public::Rsa(k), Alg::RS512) => k
                .verify(
                    Pkcs1v15Sign::new::<Sha512>(),
                    &Sha512::digest(message),
                    signature,
                )
                .is_ok(),
            (Public::Rsa(k), Alg::PS256) => k
                .verify(Pss::<Sha256>::new(), &Sha256::digest(message), signature)
                .is_ok(),
            (Public::Rsa(k), Alg::PS384) => k
                .verify(Pss::<Sha384>::new(), &Sha384::digest(message), signature)
                .is_ok(),
            (Public::Rsa(k), Alg::PS512) => k
                .verify(Pss::<Sha512>::new(), &Sha512::digest(message), signature)
                .is_ok(),
            (Public::P256(k), Alg::ES256) => p256::ecdsa::Signature::from_slice(signature)
                .is_ok_and(|s| k.verify(message, &s).is_ok()),
            (Public::P384(k), Alg::ES384) => p384::ecdsa::Signature::from_slice(signature)
                .is_ok_and(|s| k.verify(message, &s).is_ok()),
            _ => false,
        }
    }
}

/// The keys of one JWKS document.
#[derive(Debug, Default)]
pub struct KeySet {
    keys: Vec<Key>,
}

impl KeySet {
    /// Reads a JWKS document. Keys that cannot be used are skipped and described in the
    /// returned notes; a document without any usable key is an error.
    pub fn parse(bytes: &[u8]) -> Result<(KeySet, Vec<String>), String> {
        if bytes.len() > MAX_JWKS_BYTES {
            return Err(format!(
                "the JWKS has {} bytes, more than {MAX_JWKS_BYTES}",
                bytes.len()
            ));
        }
        let doc: Value =
            serde_json::from_slice(bytes).map_err(|e| format!("the JWKS is not JSON: {e}"))?;
        let Some(items) = doc.get("keys").and_then(Value::as_array) else {
            return Err("the JWKS has no `keys` array".into());
        };
        let mut keys = Vec::new();
        let mut notes = Vec::new();
        for (i, item) in items.iter().enumerate() {
            if keys.len() == MAX_KEYS {
                notes.push(format!("keys past the first {MAX_KEYS} are ignored"));
                break;
            }
            match read_key(item) {
                Ok(k) if keys.iter().any(|o: &Key| o.kid == k.kid) => {
                    notes.push(format!("keys[{i}]: duplicate kid `{}` ignored", k.kid))
                }
                Ok(k) => keys.push(k),
                Err(why) => notes.push(format!("keys[{i}] skipped: {why}")),
            }
        }
        if keys.is_empty() {
            return Err(format!(
                "the JWKS has no usable signing key ({})",
                if notes.is_empty() {
                    "it is empty".to_string()
                } else {
                    notes.join("; ")
                }
            ));
        }
        Ok((KeySet { keys }, notes))
    }

    /// The key with this `kid` (or the only key, for a token without one) that fits `alg`.
    pub fn find(&self, kid: Option<&str>, alg: Alg) -> Option<&Key> {
        match kid {
            Some(kid) => self.keys.iter().find(|k| k.kid == kid && k.fits(alg)),
            None => match self.keys.as_slice() {
                [only] if only.fits(alg) => Some(only),
                _ => None,
            },
        }
    }

    pub fn kids(&self) -> Vec<&str> {
        self.keys.iter().map(|k| k.kid.as_str()).collect()
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

/// The members of a JWK this reader uses (RFC 7517, 7518).
#[derive(Deserialize)]
struct Jwk {
    kty: String,
    kid: Option<String>,
    alg: Option<String>,
    #[serde(rename = "use")]
    use_: Option<String>,
    n: Option<String>,
    e: Option<String>,
    crv: Option<String>,
    x: Option<String>,
    y: Option<String>,
}

fn b64(field: &str, v: Option<&String>) -> Result<Vec<u8>, String> {
    let v = v.ok_or_else(|| format!("no `{field}`"))?;
    B64URL
        .decode(v)
        .map_err(|e| format!("`{field}` is not base64url: {e}"))
}

/// `0x04 || x || y`, the uncompressed SEC1 point, for coordinates of `len` bytes.
fn sec1(x: &[u8], y: &[u8], len: usize) -> Result<Vec<u8>, String> {
    if x.len() != len || y.len() != len {
        return Err(format!("coordinates must have {len} bytes"));
    }
    let mut p = Vec::with_capacity(1 + 2 * len);
    p.push(4);
    p.extend_from_slice(x);
    p.extend_from_slice(y);
    Ok(p)
}

fn read_key(item: &Value) -> Result<Key, String> {
    let jwk = Jwk::deserialize(item).map_err(|e| e.to_string())?;
    let kid = jwk.kid.clone().ok_or_else(|| "no `kid`".to_string())?;
    if jwk.use_.as_deref().is_some_and(|u| u != "sig") {
        return Err(format!("`{kid}` is not a signing key (`use`)"));
    }
    let alg = match jwk.alg.as_deref() {
        None => None,
        Some(a) => {
            Some(Alg::parse(a).ok_or_else(|| format!("`{kid}`: algorithm `{a}` is not accepted"))?)
        }
    };
    let public = match (jwk.kty.as_str(), jwk.crv.as_deref()) {
        ("RSA", _) => {
            let n = b64("n", jwk.n.as_ref())?;
            let e = b64("e", jwk.e.as_ref())?;
            let key = rsa::PublicKey::new(
                BoxedUint::from_be_slice_vartime(&n),
                BoxedUint::from_be_slice_vartime(&e),
            )
            .map_err(|e| format!("`{kid}`: not a usable RSA key: {e}"))?;
            Public::Rsa(Box::new(key))
        }
        ("EC", Some("P-256")) => {
            let p = sec1(&b64("x", jwk.x.as_ref())?, &b64("y", jwk.y.as_ref())?, 32)?;
            Public::P256(
                p256::ecdsa::VerifyingKey::from_sec1_bytes(&p)
                    .map_err(|_| format!("`{kid}`: not a point on P-256"))?,
            )
        }
        ("EC", Some("P-384")) => {
            let p = sec1(&b64("x", jwk.x.as_ref())?, &b64("y", jwk.y.as_ref())?, 48)?;
            Public::P384(
                p384::ecdsa::VerifyingKey::from_sec1_bytes(&p)
                    .map_err(|_| format!("`{kid}`: not a point on P-384"))?,
            )
        }
        ("EC", crv) => return Err(format!("`{kid}`: unsupported curve {crv:?}")),
        ("oct", _) => {
            return Err(format!(
                "`{kid}` is a symmetric key; only public keys verify"
            ))
        }
        (kty, _) => return Err(format!("`{kid}`: unsupported key type `{kty}`")),
    };
    Ok(Key { kid, alg, public })
}
