//! One worker's cache of authorizer results (and, through the same [`TtlCache`], of verified
//! tokens).
//!
//! Owns: an LRU of decisions keyed by authorizer and identity values, bounded in bytes,
//! expiring after the authorizer's TTL (against a `now` passed in), and dropped wholesale
//! when the stage's authorizer flush generation (kept in shared data, so a flush reaches
//! every worker) moves on. Failures are never stored. Must not: evaluate policies (a cached
//! policy is evaluated afresh against each request's method ARN) or touch the host.

use std::rc::Rc;

use lru::LruCache;

use super::Decision;

/// Bytes each worker's authorizer cache may hold.
pub const DEFAULT_CAPACITY_BYTES: usize = 8 << 20;

/// A cached value's approximate size in bytes, for the cache's byte bound.
pub trait Weighed {
    fn weight(&self) -> usize;
}

impl Weighed for Rc<Decision> {
    fn weight(&self) -> usize {
        Decision::weight(self)
    }
}

#[derive(Debug)]
struct Entry<V> {
    value: V,
    expires_at_ms: u64,
    size: usize,
}

/// An LRU bounded in bytes whose entries expire (against a `now` passed in) and are all
/// dropped when the generation they were stored under moves on.
#[derive(Debug)]
pub struct TtlCache<V> {
    lru: LruCache<String, Entry<V>>,
    bytes: usize,
    capacity: usize,
    /// The flush generation the entries belong to.
    generation: u64,
}

/// The cache key of a result: the authorizer and its identity values.
pub fn key(authorizer: &str, identity: &[Option<String>]) -> String {
    let mut k = String::with_capacity(64);
    k.push_str(authorizer);
    for v in identity {
        k.push('\u{0}');
        k.push_str(v.as_deref().unwrap_or_default());
    }
    k
}

/// One worker's authorizer result cache.
pub type AuthCache = TtlCache<Rc<Decision>>;

impl<V: Weighed + Clone> TtlCache<V> {
    pub fn new(capacity_bytes: usize) -> Self {
        TtlCache {
            lru: LruCache::unbounded(),
            bytes: 0,
            capacity: capacity_bytes,
            generation: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.lru.len()
    }

    pub fn is_empty(&self) -> bool {
        self.lru.is_empty()
    }

    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Forgets everything stored under an older flush generation.
    fn sync(&mut self, generation: u64) {
        if generation != self.generation {
            self.lru.clear();
            self.bytes = 0;
            self.generation = generation;
        }
    }

    /// A live value for `key`, if any.
    pub fn get(&mut self, key: &str, now_ms: u64, generation: u64) -> Option<V> {
        self.sync(generation);
        let live = self
            .lru
            .get(key)
            .map(|e| (now_ms < e.expires_at_ms, e.value.clone()));
        match live {
            Some((true, d)) => Some(d),
            Some((false, _)) => {
                if let Some(e) = self.lru.pop(key) {
                    self.bytes = self.bytes.saturating_sub(e.size);
                }
                None
            }
            None => None,
        }
    }

    /// Stores a value for `ttl_ms`, evicting the least recently used as needed.
    pub fn put(&mut self, key: String, value: V, now_ms: u64, ttl_ms: u64, generation: u64) {
        self.sync(generation);
        let size = key.len() + value.weight();
        if ttl_ms == 0 || size > self.capacity {
            return;
        }
        if let Some(old) = self.lru.pop(&key) {
            self.bytes = self.bytes.saturating_sub(old.size);
        }
        while self.bytes + size > self.capacity {
            match self.lru.pop_lru() {
                Some((_, e)) => self.bytes = self.bytes.saturating_sub(e.size),
                None => break,
            }
        }
        self.bytes += size;
        self.lru.put(
            key,
            Entry {
                value,
                expires_at_ms: now_ms.saturating_add(ttl_ms),
                size,
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decision(p: &str) -> Rc<Decision> {
        Rc::new(Decision {
            principal_id: p.into(),
            statements: Vec::new(),
            context: Vec::new(),
            usage_key: None,
        })
    }

    #[test]
    fn expiry_flush_and_byte_bound() {
        let mut c = AuthCache::new(4096);
        c.put(
            key("a", &[Some("t1".into())]),
            decision("u1"),
            1000,
            300_000,
            0,
        );
        let k = key("a", &[Some("t1".into())]);
        assert_eq!(c.get(&k, 2000, 0).unwrap().principal_id, "u1");
        assert!(c.get(&k, 301_000, 0).is_none(), "expired");
        assert_eq!(c.bytes(), 0);
        c.put(k.clone(), decision("u1"), 1000, 300_000, 0);
        assert!(
            c.get(&k, 2000, 1).is_none(),
            "a flush generation drops everything"
        );
        assert!(c.is_empty());
        // Zero TTL never stores.
        c.put(k.clone(), decision("u1"), 1000, 0, 1);
        assert!(c.is_empty());
        // The byte bound holds by evicting the oldest.
        for i in 0..100 {
            c.put(
                key("a", &[Some(format!("token-{i}"))]),
                decision("u"),
                1000,
                300_000,
                1,
            );
        }
        assert!(c.bytes() <= 4096);
        assert!(c.len() < 100);
        assert!(c
            .get(&key("a", &[Some("token-99".into())]), 2000, 1)
            .is_some());
        assert!(c
            .get(&key("a", &[Some("token-0".into())]), 2000, 1)
            .is_none());
    }

    #[test]
    fn keys_keep_sources_apart() {
        assert_ne!(
            key("a", &[Some("x".into()), None]),
            key("a", &[None, Some("x".into())])
        );
        assert_ne!(key("a", &[Some("x".into())]), key("b", &[Some("x".into())]));
    }
}
