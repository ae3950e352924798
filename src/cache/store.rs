//! One worker's cache store: what is stored, for how long, and when it stops counting.
//!
//! Owns: the per-worker store (an LRU bounded by bytes: keys, headers and bodies are all
//! counted), TTL expiry against a `now` passed in, the size and status rules for what may be
//! stored, and invalidation by *generations*: every entry remembers the stage flush generation
//! and the generation of its key's slot at the time it was stored, and is only served while
//! both are still current. The generations live in proxy-wasm shared data (see
//! [`super::StageCache`]) so that a flush or a `Cache-Control: max-age=0` on one worker is
//! seen by every worker on its next lookup; this module only compares them. Must not: read
//! clocks or touch the host.
//!
//! Every entry also remembers the stage's change *epoch* (a counter every invalidation and
//! flush moves, see [`super::StageCache`]): while the epoch is unchanged nothing can have been
//! invalidated, so a lookup needs the generations only when the epoch moved since the entry
//! was stored or last confirmed. A hit on a quiet stage costs one shared read instead of two.

use lru::LruCache;

use crate::http::Reply;

/// Largest response body that is cached (API Gateway's limit).
pub const MAX_BODY_BYTES: usize = 1_048_576;
/// Bookkeeping counted per entry on top of its key, headers and body.
pub const ENTRY_OVERHEAD_BYTES: usize = 96;

/// Invalidation generations an entry was stored under.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Generations {
    /// Stage-wide flush generation.
    pub flush: u64,
    /// Generation of the entry's invalidation slot.
    pub slot: u64,
}

/// What an entry is stored under: the stage epoch read first, then the generations.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stamp {
    pub epoch: u64,
    pub generations: Generations,
}

#[derive(Debug)]
struct Entry {
    reply: Reply,
    expires_at_ms: u64,
    stamp: Stamp,
    size: usize,
}

/// What a lookup found.
#[derive(Debug, PartialEq, Eq)]
pub enum Lookup {
    Hit(Reply),
    /// Nothing stored under the key.
    Miss,
    /// An entry was there but expired or was invalidated; it has been dropped, freeing
    /// this many bytes.
    Stale(usize),
}

/// What a store did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stored {
    pub stored: bool,
    /// Entries evicted to make room.
    pub evicted: usize,
    /// Change of the stored byte total (may be negative).
    pub bytes_delta: i64,
}

/// One worker's cache.
#[derive(Debug)]
pub struct ResponseCache {
    lru: LruCache<String, Entry>,
    bytes: usize,
    capacity: usize,
}

/// Bytes an entry accounts for.
pub fn entry_size(key: &str, reply: &Reply) -> usize {
    let headers: usize = reply
        .headers
        .iter()
        .map(|(k, v)| k.len() + v.len() + 16)
        .sum();
    ENTRY_OVERHEAD_BYTES + key.len() + headers + reply.body.len()
}

/// Whether a reply may be stored: a 2xx with a body of at most [`MAX_BODY_BYTES`].
pub fn cacheable(reply: &Reply) -> bool {
    (200..300).contains(&reply.status) && reply.body.len() <= MAX_BODY_BYTES
}

impl ResponseCache {
    /// An empty cache holding at most `capacity_bytes`.
    pub fn new(capacity_bytes: usize) -> Self {
        ResponseCache {
            lru: LruCache::unbounded(),
            bytes: 0,
            capacity: capacity_bytes,
        }
    }

    /// Bytes currently accounted for.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    pub fn len(&self) -> usize {
        self.lru.len()
    }

    pub fn is_empty(&self) -> bool {
        self.lru.is_empty()
    }

    /// Looks a key up against the stage's current `epoch`; a hit becomes the most recently
    /// used entry. `current` reads the current generations: it is called only when an
    /// unexpired entry was stored under another epoch, and an entry whose generations are
    /// still current is then re-stamped with `epoch`.
    pub fn get<E>(
        &mut self,
        key: &str,
        now_ms: u64,
        epoch: u64,
        current: impl FnOnce() -> Result<Generations, E>,
    ) -> Result<Lookup, E> {
        let Some(entry) = self.lru.get_mut(key) else {
            return Ok(Lookup::Miss);
        };
        if now_ms < entry.expires_at_ms {
            if entry.stamp.epoch == epoch {
                return Ok(Lookup::Hit(entry.reply.clone()));
            }
            if entry.stamp.generations == current()? {
                entry.stamp.epoch = epoch;
                return Ok(Lookup::Hit(entry.reply.clone()));
            }
        }
        Ok(Lookup::Stale(self.remove(key)))
    }

    /// Drops one key; returns the bytes freed.
    pub fn remove(&mut self, key: &str) -> usize {
        match self.lru.pop(key) {
            Some(e) => {
                self.bytes = self.bytes.saturating_sub(e.size);
                e.size
            }
            None => 0,
        }
    }

    /// Stores a reply for `ttl_ms`, evicting least recently used entries as needed.
    /// Non-cacheable replies and entries larger than the whole cache are not stored (an
    /// existing entry under the key is still dropped: it is older than this answer).
    pub fn put(
        &mut self,
        key: String,
        reply: Reply,
        now_ms: u64,
        ttl_ms: u64,
        stamp: Stamp,
    ) -> Stored {
        let before = self.bytes as i64;
        let mut out = Stored::default();
        self.remove(&key);
        let size = entry_size(&key, &reply);
        if cacheable(&reply) && size <= self.capacity && ttl_ms > 0 {
            while self.bytes + size > self.capacity {
                match self.lru.pop_lru() {
                    Some((_, e)) => {
                        self.bytes = self.bytes.saturating_sub(e.size);
                        out.evicted += 1;
                    }
                    None => break,
                }
            }
            self.bytes += size;
            self.lru.put(
                key,
                Entry {
                    reply,
                    expires_at_ms: now_ms.saturating_add(ttl_ms),
                    stamp,
                    size,
                },
            );
            out.stored = true;
        }
        out.bytes_delta = self.bytes as i64 - before;
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(status: u16, body: usize) -> Reply {
        Reply {
            status,
            headers: vec![("Content-Type".into(), "application/json".into())],
            body: vec![b'x'; body],
        }
    }

    const G: Stamp = Stamp {
        epoch: 3,
        generations: Generations { flush: 1, slot: 7 },
    };

    /// A lookup at stamp `s`'s epoch, with `s`'s generations as the current ones.
    fn look(c: &mut ResponseCache, key: &str, now_ms: u64, s: Stamp) -> Lookup {
        c.get(key, now_ms, s.epoch, || Ok::<_, ()>(s.generations))
            .unwrap()
    }

    #[test]
    fn hit_until_ttl_then_stale() {
        let mut c = ResponseCache::new(1 << 20);
        assert_eq!(look(&mut c, "k", 0, G), Lookup::Miss);
        assert!(c.put("k".into(), reply(200, 10), 1_000, 300_000, G).stored);
        assert_eq!(look(&mut c, "k", 1_000, G), Lookup::Hit(reply(200, 10)));
        assert_eq!(look(&mut c, "k", 300_999, G), Lookup::Hit(reply(200, 10)));
        assert!(matches!(look(&mut c, "k", 301_000, G), Lookup::Stale(n) if n > 0));
        assert_eq!(look(&mut c, "k", 301_000, G), Lookup::Miss);
        assert_eq!(c.bytes(), 0);
    }

    #[test]
    fn generation_change_invalidates() {
        for current in [
            Generations { flush: 2, slot: 7 },
            Generations { flush: 1, slot: 8 },
        ] {
            let mut c = ResponseCache::new(1 << 20);
            c.put("k".into(), reply(200, 1), 0, 1_000, G);
            let moved = Stamp {
                epoch: 4,
                generations: current,
            };
            assert!(
                matches!(look(&mut c, "k", 1, moved), Lookup::Stale(_)),
                "{current:?}"
            );
            assert!(c.is_empty());
        }
    }

    #[test]
    fn generations_are_read_only_when_the_epoch_moved() {
        let mut c = ResponseCache::new(1 << 20);
        c.put("k".into(), reply(200, 1), 0, 1_000, G);
        let mut reads = 0;
        let mut get = |c: &mut ResponseCache, epoch: u64| {
            c.get("k", 1, epoch, || {
                reads += 1;
                Ok::<_, ()>(G.generations)
            })
            .unwrap()
        };
        // Same epoch: served without reading the generations.
        assert!(matches!(get(&mut c, 3), Lookup::Hit(_)));
        // The epoch moved (another key was invalidated), this key's generations did not:
        // served after one read, and re-stamped so the next lookup reads nothing.
        assert!(matches!(get(&mut c, 9), Lookup::Hit(_)));
        assert!(matches!(get(&mut c, 9), Lookup::Hit(_)));
        assert_eq!(reads, 1);
        // A failed read is the caller's error; the entry stays.
        assert_eq!(c.get("k", 1, 10, || Err("down")), Err("down"));
        assert_eq!(c.len(), 1);
        // An expired entry is dropped without reading anything.
        let mut reads = 0;
        let out = c.get("k", 5_000, 11, || {
            reads += 1;
            Ok::<_, ()>(G.generations)
        });
        assert!(matches!(out, Ok(Lookup::Stale(_))));
        assert_eq!(reads, 0);
    }

    #[test]
    fn only_2xx_up_to_one_mib() {
        let mut c = ResponseCache::new(4 << 20);
        for (status, body, stored) in [
            (200, 10, true),
            (204, 0, true),
            (299, 1, true),
            (301, 1, false),
            (404, 1, false),
            (500, 1, false),
            (200, MAX_BODY_BYTES, true),
            (200, MAX_BODY_BYTES + 1, false),
        ] {
            let out = c.put(format!("{status}-{body}"), reply(status, body), 0, 1_000, G);
            assert_eq!(out.stored, stored, "{status} {body}");
        }
        assert!(!c.put("ttl0".into(), reply(200, 1), 0, 0, G).stored);
    }

    #[test]
    fn evicts_least_recently_used_by_bytes() {
        let one = entry_size("a", &reply(200, 100));
        let mut c = ResponseCache::new(one * 3);
        for k in ["a", "b", "c"] {
            assert_eq!(c.put(k.into(), reply(200, 100), 0, 1_000, G).evicted, 0);
        }
        assert_eq!(c.bytes(), one * 3);
        // Touch "a": "b" is now the least recently used.
        assert!(matches!(look(&mut c, "a", 1, G), Lookup::Hit(_)));
        let out = c.put("d".into(), reply(200, 100), 1, 1_000, G);
        assert_eq!((out.stored, out.evicted), (true, 1));
        assert_eq!(look(&mut c, "b", 2, G), Lookup::Miss);
        for k in ["a", "c", "d"] {
            assert!(matches!(look(&mut c, k, 2, G), Lookup::Hit(_)), "{k}");
        }
        // An entry bigger than everything evicts two and is stored.
        let out = c.put("big".into(), reply(200, 250), 3, 1_000, G);
        assert_eq!((out.stored, out.evicted), (true, 2));
        assert!(c.bytes() <= one * 3);
        // An entry larger than the capacity is never stored.
        let out = c.put("huge".into(), reply(200, one * 4), 3, 1_000, G);
        assert!(!out.stored);
    }

    #[test]
    fn replacing_a_key_accounts_bytes_once() {
        let mut c = ResponseCache::new(1 << 20);
        c.put("k".into(), reply(200, 100), 0, 1_000, G);
        let b = c.bytes();
        let out = c.put("k".into(), reply(200, 100), 0, 1_000, G);
        assert_eq!((c.bytes(), c.len(), out.bytes_delta), (b, 1, 0));
        // A failed replacement still drops the old answer.
        let out = c.put("k".into(), reply(500, 1), 0, 1_000, G);
        assert_eq!(
            (out.stored, c.len(), out.bytes_delta),
            (false, 0, -(b as i64))
        );
    }
}
