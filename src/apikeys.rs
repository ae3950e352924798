//! API keys: who a caller is, from the value of its `x-api-key` header.
//!
//! Owns: compiling the deployment's `apiKeys` (id, name, enabled flag, SHA-256 of the value)
//! once, and identifying a presented value by hashing it and comparing the digest with every
//! stored digest in constant time, so neither the match nor its position leaks through timing.
//! Must not: hold plain key values, decide what a key may do (the cache and usage plans ask
//! [`ApiKeys::identify`] and decide themselves) or read headers other than the value given.

use sha2::{Digest, Sha256};

use crate::config::ApiKey;
use crate::error::ConfigError;

/// Length limits of an API key value, as API Gateway imposes them.
pub const VALUE_LEN: std::ops::RangeInclusive<usize> = 20..=128;

/// One compiled key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Key {
    pub id: String,
    pub name: String,
    pub enabled: bool,
    digest: [u8; 32],
}

/// Every key of the deployment.
#[derive(Debug, Clone, Default)]
pub struct ApiKeys {
    keys: Vec<Key>,
}

/// Lower-case hex SHA-256 of a key value, as written in `valueSha256`.
pub fn hash_value(value: &str) -> String {
    crate::sigv4::hex(&Sha256::digest(value.as_bytes()))
}

/// Whether a string is a usable key value: 20-128 ASCII letters and digits.
pub fn valid_value(value: &str) -> bool {
    VALUE_LEN.contains(&value.len()) && value.bytes().all(|b| b.is_ascii_alphanumeric())
}

fn parse_digest(hex: &str) -> Option<[u8; 32]> {
    if hex.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (slot, pair) in out.iter_mut().zip(hex.as_bytes().chunks(2)) {
        let text = std::str::from_utf8(pair).ok()?;
        *slot = u8::from_str_radix(text, 16).ok()?;
    }
    Some(out)
}

/// Compares two digests without an early exit.
fn same_digest(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.iter()
        .zip(b.iter())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y))
        == 0
}

impl ApiKeys {
    /// Compiles the deployment's keys; ids must be unique and digests well formed.
    pub fn compile(keys: &[ApiKey], errors: &mut Vec<ConfigError>) -> ApiKeys {
        let mut out = Vec::with_capacity(keys.len());
        for (i, k) in keys.iter().enumerate() {
            let at = format!("deployment.apiKeys[{i}]");
            let id_ok = !k.id.is_empty()
                && k.id.len() <= 128
                && k.id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
            if !id_ok {
                errors.push(ConfigError::new(
                    format!("{at}.id"),
                    "ids are 1-128 of A-Z a-z 0-9 - _ .",
                ));
            }
            if keys.iter().take(i).any(|other| other.id == k.id) {
                errors.push(ConfigError::new(
                    format!("{at}.id"),
                    format!("duplicate key id `{}`", k.id),
                ));
            }
            let Some(digest) = parse_digest(&k.value_sha256.to_ascii_lowercase()) else {
                errors.push(ConfigError::new(
                    format!("{at}.valueSha256"),
                    "expected 64 hex digits: the SHA-256 of the key value (`apigw-edge key hash VALUE`)",
                ));
                continue;
            };
            if keys
                .iter()
                .take(i)
                .any(|other| other.value_sha256.eq_ignore_ascii_case(&k.value_sha256))
            {
                errors.push(ConfigError::new(
                    format!("{at}.valueSha256"),
                    "two keys have the same value",
                ));
            }
            out.push(Key {
                id: k.id.clone(),
                name: k.name.clone(),
                enabled: k.enabled,
                digest,
            });
        }
        ApiKeys { keys: out }
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Whether a key id exists.
    pub fn contains_id(&self, id: &str) -> bool {
        self.keys.iter().any(|k| k.id == id)
    }

    /// The enabled key whose value is `value`, if any. Every stored digest is compared, so
    /// the time taken does not depend on which key (if any) matched.
    pub fn identify(&self, value: &str) -> Option<&Key> {
        let digest: [u8; 32] = Sha256::digest(value.as_bytes()).into();
        let mut found = None;
        for k in &self.keys {
            if same_digest(&k.digest, &digest) && found.is_none() {
                found = Some(k);
            }
        }
        found.filter(|k| k.enabled)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(id: &str, value: &str, enabled: bool) -> ApiKey {
        ApiKey {
            id: id.into(),
            name: format!("{id} name"),
            enabled,
            value_sha256: hash_value(value),
        }
    }

    const A: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    const B: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

    #[test]
    fn identifies_enabled_keys_only() {
        let mut errors = Vec::new();
        let keys = ApiKeys::compile(&[key("a", A, true), key("b", B, false)], &mut errors);
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(keys.identify(A).map(|k| k.id.as_str()), Some("a"));
        assert_eq!(keys.identify(B), None, "disabled");
        assert_eq!(keys.identify("nope"), None);
        assert_eq!(keys.identify(""), None);
        assert!(keys.contains_id("b") && !keys.contains_id("c"));
    }

    #[test]
    fn known_digest() {
        // SHA-256("abc"), the FIPS 180-2 example.
        assert_eq!(
            hash_value("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn value_rules() {
        for (value, ok) in [
            (A, true),
            ("short", false),
            ("a".repeat(128).as_str(), true),
            ("a".repeat(129).as_str(), false),
            ("aaaaaaaaaaaaaaaaaaaaaaaaa-", false),
        ] {
            assert_eq!(valid_value(value), ok, "{value}");
        }
    }

    #[test]
    fn compile_errors_name_fields() {
        let mut bad_hash = key("c", A, true);
        bad_hash.value_sha256 = "xyz".into();
        let mut errors = Vec::new();
        ApiKeys::compile(
            &[
                key("a", A, true),
                key("a", B, true),
                bad_hash,
                key("", B, true),
            ],
            &mut errors,
        );
        let locations: Vec<_> = errors.iter().map(|e| e.location.as_str()).collect();
        assert_eq!(
            locations,
            vec![
                "deployment.apiKeys[1].id",
                "deployment.apiKeys[2].valueSha256",
                "deployment.apiKeys[3].id",
                "deployment.apiKeys[3].valueSha256",
            ]
        );
    }
}
