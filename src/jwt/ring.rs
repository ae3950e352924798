//! Each worker's signing keys, and how the workers share one fetch of each JWKS.
//!
//! Owns: the key ring a worker verifies with, and the protocol in shared data that keeps
//! fetches to one per refresh across all workers. Per issuer there are two cells, keyed by
//! a digest of the issuer and its URL (a bounded key space): `keys` holds the last good
//! document with the time it was fetched; `lease` holds the earliest time anyone may fetch
//! again and the count of failures in a row. A worker whose ring is due (no keys yet, the
//! refresh period passed, or a token named an unknown `kid`) takes the lease with
//! compare-and-swap and fetches; the others adopt the document from the `keys` cell on
//! their next tick. A failed fetch keeps the last good keys and backs off (1 s doubling to
//! 30 s); a success holds the next fetch off for the minimum refresh interval, which is
//! what rate-limits unknown-`kid` refreshes. Must not: dispatch the fetch (the glue does)
//! or read clocks.

use std::rc::Rc;

use super::keys::KeySet;
use super::{Source, FETCH_TIMEOUT_MS};
use crate::shared::{self, SharedCells};

/// Longest wait between two attempts while fetches fail.
pub const MAX_BACKOFF_MS: u64 = 30_000;

#[derive(Debug, Default)]
struct Slot {
    keys: Option<Rc<KeySet>>,
    /// CAS token of the `keys` cell the keys came from.
    cas: u32,
    fetched_ms: u64,
    /// A token named a `kid` these keys do not have.
    want: bool,
}

/// One worker's keys, one slot per JWKS source.
#[derive(Debug, Default)]
pub struct KeyRing {
    slots: Vec<Slot>,
    /// Moves on whenever any slot's keys change (verified-token caches follow it).
    generation: u64,
}

fn digest(s: &Source) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in s.issuer.bytes().chain([0]).chain(s.url.bytes()) {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// The cell holding the last good document of `s`.
pub fn keys_cell(s: &Source) -> String {
    format!("apigw_edge.jwks.{:016x}.keys", digest(s))
}

/// The cell holding who may fetch `s` next, and when.
pub fn lease_cell(s: &Source) -> String {
    format!("apigw_edge.jwks.{:016x}.lease", digest(s))
}

fn encode_keys(fetched_ms: u64, body: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(8 + body.len());
    v.extend_from_slice(&fetched_ms.to_le_bytes());
    v.extend_from_slice(body);
    v
}

fn decode_keys(cell: &[u8]) -> Option<(u64, &[u8])> {
    let (head, body) = cell.split_first_chunk::<8>()?;
    Some((u64::from_le_bytes(*head), body))
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Lease {
    not_before_ms: u64,
    failures: u32,
}

impl Lease {
    fn decode(cell: Option<&[u8]>) -> Lease {
        let Some(cell) = cell else {
            return Lease::default();
        };
        let (a, rest) = cell.split_first_chunk::<8>().unwrap_or((&[0; 8], &[]));
        let b = rest.first_chunk::<4>().copied().unwrap_or([0; 4]);
        Lease {
            not_before_ms: u64::from_le_bytes(*a),
            failures: u32::from_le_bytes(b),
        }
    }

    fn encode(self) -> Vec<u8> {
        let mut v = self.not_before_ms.to_le_bytes().to_vec();
        v.extend_from_slice(&self.failures.to_le_bytes());
        v
    }
}

/// Wait after `failures` failed fetches in a row.
pub fn backoff_ms(failures: u32) -> u64 {
    1000u64
        .saturating_mul(1u64 << failures.saturating_sub(1).min(16))
        .min(MAX_BACKOFF_MS)
}

impl KeyRing {
    pub fn new(sources: usize) -> Self {
        KeyRing {
            slots: (0..sources).map(|_| Slot::default()).collect(),
            generation: 0,
        }
    }

    /// The keys of source `i`, once fetched by any worker.
    pub fn keys(&self, i: usize) -> Option<&KeySet> {
        self.slots.get(i).and_then(|s| s.keys.as_deref())
    }

    /// Whether every source has keys.
    pub fn complete(&self) -> bool {
        self.slots.iter().all(|s| s.keys.is_some())
    }

    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// A token named a `kid` source `i` does not have: fetch again when the lease allows.
    pub fn want(&mut self, i: usize) {
        if let Some(s) = self.slots.get_mut(i) {
            s.want = true;
        }
    }

    /// Adopts documents other workers fetched. Returns lines for the log.
    pub fn sync(&mut self, sources: &[Source], cells: &dyn SharedCells) -> Vec<String> {
        let mut log = Vec::new();
        for (i, source) in sources.iter().enumerate() {
            let Ok((Some(cell), cas)) = cells.get(&keys_cell(source)) else {
                continue;
            };
            let Some(slot) = self.slots.get_mut(i) else {
                continue;
            };
            // The same document as last time (adopted, or found unusable): nothing to do.
            if cas == slot.cas && (slot.keys.is_some() || cas != 0) {
                continue;
            }
            slot.cas = cas;
            let Some((fetched_ms, body)) = decode_keys(&cell) else {
                continue;
            };
            match KeySet::parse(body) {
                Ok((set, _)) => {
                    slot.keys = Some(Rc::new(set));
                    slot.fetched_ms = fetched_ms;
                    slot.want = false;
                    self.generation += 1;
                }
                Err(why) => log.push(format!(
                    "JWKS of `{}` in shared data is unusable: {why}",
                    source.issuer
                )),
            }
        }
        log
    }

    /// The sources this worker should fetch now: due ones whose lease it took.
    pub fn due(
        &mut self,
        sources: &[Source],
        cells: &dyn SharedCells,
        now_ms: u64,
    ) -> (Vec<usize>, Vec<String>) {
        let log = self.sync(sources, cells);
        let mut out = Vec::new();
        for (i, source) in sources.iter().enumerate() {
            let Some(slot) = self.slots.get(i) else {
                continue;
            };
            let stale = now_ms >= slot.fetched_ms.saturating_add(source.refresh_ms);
            if !(slot.keys.is_none() || stale || slot.want) {
                continue;
            }
            let took = shared::update(cells, &lease_cell(source), |cell| {
                let lease = Lease::decode(cell);
                if now_ms < lease.not_before_ms {
                    return Ok(shared::Step::Keep(false));
                }
                let held = Lease {
                    not_before_ms: now_ms + FETCH_TIMEOUT_MS + 1000,
                    ..lease
                };
                Ok(shared::Step::Write(held.encode(), true))
            });
            if let Ok(true) = took {
                out.push(i);
            }
        }
        (out, log)
    }

    /// The answer to a fetch of source `i` (`status` `None` when the host could not make
    /// or finish the call). A good document is published to every worker and adopted;
    /// anything else keeps the last good keys. Returns the line to log.
    pub fn fetched(
        &mut self,
        sources: &[Source],
        cells: &dyn SharedCells,
        i: usize,
        now_ms: u64,
        status: Option<u16>,
        body: &[u8],
    ) -> Result<String, String> {
        let Some(source) = sources.get(i) else {
            return Err(format!("an answer for unknown JWKS source {i}"));
        };
        let parsed = match status {
            Some(200) => KeySet::parse(body),
            Some(s) => Err(format!("it answered HTTP {s}")),
            None => Err("no answer (connection failed or timed out)".into()),
        };
        let lease_key = lease_cell(source);
        match parsed {
            Ok((set, notes)) => {
                let kids = set.kids().join(", ");
                cells
                    .set(&keys_cell(source), &encode_keys(now_ms, body), 0)
                    .map_err(|e| {
                        format!("JWKS of `{}`: shared data refused it: {e}", source.issuer)
                    })?;
                let next = Lease {
                    not_before_ms: now_ms + source.min_refresh_ms,
                    failures: 0,
                };
                let _ = cells.set(&lease_key, &next.encode(), 0);
                let cas = cells.get(&keys_cell(source)).map_or(0, |(_, c)| c);
                if let Some(slot) = self.slots.get_mut(i) {
                    *slot = Slot {
                        keys: Some(Rc::new(set)),
                        cas,
                        fetched_ms: now_ms,
                        want: false,
                    };
                    self.generation += 1;
                }
                let notes = if notes.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", notes.join("; "))
                };
                Ok(format!(
                    "JWKS of `{}` fetched from {}: keys {kids}{notes}",
                    source.issuer, source.url
                ))
            }
            Err(why) => {
                let failures = shared::update(cells, &lease_key, |cell| {
                    let lease = Lease::decode(cell);
                    let failures = lease.failures.saturating_add(1);
                    let next = Lease {
                        not_before_ms: now_ms + backoff_ms(failures),
                        failures,
                    };
                    Ok(shared::Step::Write(next.encode(), failures))
                })
                .unwrap_or(1);
                let keeping = match self.keys(i) {
                    Some(k) => format!("keeps the {} keys it has", k.len()),
                    None => "has no keys yet: its methods answer 500".into(),
                };
                Err(format!(
                    "JWKS of `{}` from {}: {why}; failure {failures} in a row, next try in {} ms; the gateway {keeping}",
                    source.issuer,
                    source.url,
                    backoff_ms(failures)
                ))
            }
        }
    }
}
