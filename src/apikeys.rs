//! API keys: who a caller is, from the value of its `x-api-key` header.
//!
//! Owns: compiling the deployment's `apiKeys` (id, name, enabled flag, SHA-256 of the value)
//! once, and identifying a presented value by hashing it and looking its digest up in a hash
//! table built at configuration time: one step whatever the number of keys. The time a lookup
//! takes depends only on the digest of the presented value and on the stored digests, and a
//! digest says nothing about the value it came from, so timing reveals no stored key.
//! Must not: hold plain key values, decide what a key may do (the cache and usage plans ask
//! [`ApiKeys::identify`] and decide themselves) or read headers other than the value given.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hash, Hasher};

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
}

/// Every key of the deployment, found by the digest of its value; the set of their ids.
#[derive(Debug, Clone, Default)]
pub struct ApiKeys {
    keys: Vec<Key>,
    by_digest: HashMap<Sha256Digest, usize, BuildHasherDefault<FirstWord>>,
    ids: HashSet<String>,
}

/// A SHA-256 digest as a table key. Digests are already uniform, so the table hashes one by
/// its first eight bytes instead of hashing it again; only the configuration fills the table,
/// so nobody can crowd a bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Sha256Digest([u8; 32]);

impl Hash for Sha256Digest {
    fn hash<H: Hasher>(&self, state: &mut H) {
        let [a, b, c, d, e, f, g, h, ..] = self.0;
        state.write_u64(u64::from_le_bytes([a, b, c, d, e, f, g, h]));
    }
}

/// The hasher of [`Sha256Digest`] keys: the word it is given.
#[derive(Debug, Default)]
struct FirstWord(u64);

impl Hasher for FirstWord {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write_u64(&mut self, word: u64) {
        self.0 = word;
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }
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

impl ApiKeys {
    /// Compiles the deployment's keys; ids must be unique and digests well formed.
    pub fn compile(keys: &[ApiKey], errors: &mut Vec<ConfigError>) -> ApiKeys {
        let mut out = ApiKeys {
            keys: Vec::with_capacity(keys.len()),
            by_digest: HashMap::with_capacity_and_hasher(keys.len(), BuildHasherDefault::default()),
            ids: HashSet::with_capacity(keys.len()),
        };
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
            if !out.ids.insert(k.id.clone()) {
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
            let index = out.keys.len();
            if let Entry::Vacant(slot) = out.by_digest.entry(Sha256Digest(digest)) {
                slot.insert(index);
            } else {
                errors.push(ConfigError::new(
                    format!("{at}.valueSha256"),
                    "two keys have the same value",
                ));
            }
            out.keys.push(Key {
                id: k.id.clone(),
                name: k.name.clone(),
                enabled: k.enabled,
            });
        }
        out
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Whether a key id exists.
    pub fn contains_id(&self, id: &str) -> bool {
        self.ids.contains(id)
    }

    /// The enabled key whose value is `value`, if any: one hash and one table lookup,
    /// however many keys there are.
    pub fn identify(&self, value: &str) -> Option<&Key> {
        let digest: [u8; 32] = Sha256::digest(value.as_bytes()).into();
        let index = *self.by_digest.get(&Sha256Digest(digest))?;
        self.keys.get(index).filter(|k| k.enabled)
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
    fn identifies_each_of_many_keys() {
        let value = |i: usize| format!("value{i:0>20}");
        let config: Vec<ApiKey> = (0..3000)
            .map(|i| key(&format!("k{i}"), &value(i), i % 3 != 0))
            .collect();
        let mut errors = Vec::new();
        let keys = ApiKeys::compile(&config, &mut errors);
        assert!(errors.is_empty(), "{errors:?}");
        for i in 0..3000 {
            let found = keys.identify(&value(i)).map(|k| k.id.clone());
            let expected = (i % 3 != 0).then(|| format!("k{i}"));
            assert_eq!(found, expected, "key {i}");
            assert!(keys.contains_id(&format!("k{i}")));
        }
        assert_eq!(keys.identify(&value(3000)), None);
        assert!(!keys.contains_id("k3000"));
    }

    #[test]
    fn digests_hash_by_their_first_word() {
        let mut digest = [0xffu8; 32];
        digest[..8].copy_from_slice(&0x0102_0304_0506_0708u64.to_le_bytes());
        let mut hasher = FirstWord::default();
        Sha256Digest(digest).hash(&mut hasher);
        assert_eq!(hasher.finish(), 0x0102_0304_0506_0708);
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
