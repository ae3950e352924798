//! Counters that hold across Envoy workers.
//!
//! Envoy runs one wasm VM per worker thread; the only state they share is proxy-wasm shared
//! data: a key-value store with compare-and-swap and no delete. Owns: the [`SharedCells`]
//! view of that store (implemented by the host glue, and in memory for tests), the encoding
//! of a 64-bit counter in a cell, and the compare-and-swap loop ([`update`]) that every
//! cross-worker state change goes through.
//! Must not: call the host itself or create keys from request data (the key space must stay
//! bounded: every key a caller builds comes from configuration).

/// Why a shared-data operation failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CellError {
    /// Another worker wrote the cell since it was read.
    CasMismatch,
    /// The host refused the operation, or the cell holds something that is not a counter.
    Host(String),
}

impl std::fmt::Display for CellError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CellError::CasMismatch => write!(f, "compare-and-swap kept failing"),
            CellError::Host(why) => write!(f, "{why}"),
        }
    }
}

/// The host's shared data: get with a CAS token, set conditionally on that token.
pub trait SharedCells {
    /// The cell's value (`None` when absent) and its CAS token (0 when absent).
    fn get(&self, key: &str) -> Result<(Option<Vec<u8>>, u32), CellError>;
    /// Writes the cell if its CAS token is still `cas` (0 writes unconditionally).
    fn set(&self, key: &str, value: &[u8], cas: u32) -> Result<(), CellError>;
}

/// How often an update retries a lost compare-and-swap before giving up.
pub const MAX_CAS_ATTEMPTS: usize = 64;

/// The CAS token used to create a cell only if it is still absent. The host creates an
/// absent cell whatever the token, and refuses a non-zero token that does not match an
/// existing cell, so a concurrent creator's write makes this one fail and retry. (A live
/// cell carries this token only after 2^32 writes to shared data; such a coincidence
/// would let one creation overwrite a cell created an instant earlier.)
pub const CREATE_IF_ABSENT: u32 = u32::MAX;

/// What an update does with the value it read.
pub enum Step<T> {
    /// Write this value (if nobody wrote the cell meanwhile) and return `T`.
    Write(Vec<u8>, T),
    /// Leave the cell as it is and return `T`.
    Keep(T),
}

/// Reads a cell, lets `decide` compute the new value, and writes it with compare-and-swap,
/// retrying from a fresh read when another worker got in first. Exact under contention:
/// no two workers ever both act on the same read value.
pub fn update<T>(
    cells: &dyn SharedCells,
    key: &str,
    mut decide: impl FnMut(Option<&[u8]>) -> Result<Step<T>, CellError>,
) -> Result<T, CellError> {
    for _ in 0..MAX_CAS_ATTEMPTS {
        let (value, cas) = cells.get(key)?;
        match decide(value.as_deref())? {
            Step::Keep(out) => return Ok(out),
            Step::Write(next, out) => {
                let cas = if value.is_none() {
                    CREATE_IF_ABSENT
                } else {
                    cas
                };
                match cells.set(key, &next, cas) {
                    Ok(()) => return Ok(out),
                    Err(CellError::CasMismatch) => continue,
                    Err(e) => return Err(e),
                }
            }
        }
    }
    Err(CellError::CasMismatch)
}

/// [`update`] for cells holding a typed state: `decode` reads it (a cell it cannot read is
/// an error naming `what` it should hold), `decide` returns the state to write, if any.
pub fn update_state<S, T>(
    cells: &dyn SharedCells,
    key: &str,
    what: &str,
    decode: impl Fn(&[u8]) -> Option<S>,
    mut decide: impl FnMut(Option<S>) -> (Option<Vec<u8>>, T),
) -> Result<T, CellError> {
    update(cells, key, |value| {
        let state = match value {
            None => None,
            Some(v) => Some(
                decode(v)
                    .ok_or_else(|| CellError::Host(format!("cell {key} does not hold {what}")))?,
            ),
        };
        Ok(match decide(state) {
            (Some(next), out) => Step::Write(next, out),
            (None, out) => Step::Keep(out),
        })
    })
}

fn decode(value: Option<&[u8]>) -> Result<u64, CellError> {
    match value {
        None => Ok(0),
        Some(bytes) => bytes.try_into().map(u64::from_le_bytes).map_err(|_| {
            CellError::Host(format!(
                "shared cell holds {} bytes, not a counter",
                bytes.len()
            ))
        }),
    }
}

/// Reads a counter (0 when the cell was never written).
pub fn read(cells: &dyn SharedCells, key: &str) -> Result<u64, CellError> {
    let (value, _) = cells.get(key)?;
    decode(value.as_deref())
}

/// Adds one to a counter; returns the new value.
pub fn increment(cells: &dyn SharedCells, key: &str) -> Result<u64, CellError> {
    update(cells, key, |value| {
        let next = decode(value)?.wrapping_add(1);
        Ok(Step::Write(next.to_le_bytes().to_vec(), next))
    })
}

/// In-memory shared data with the host's CAS rules, for tests, fuzzing and native tools.
pub mod memory {
    use std::cell::{Cell, RefCell};
    use std::collections::HashMap;

    use super::{CellError, SharedCells};

    #[derive(Default)]
    pub struct Cells {
        data: RefCell<HashMap<String, (Vec<u8>, u32)>>,
        next_cas: Cell<u32>,
        /// Before each of this many `set`s, another worker increments the cell first (and
        /// creates it when absent).
        pub interleave: Cell<usize>,
        pub fail: Cell<bool>,
    }

    impl Cells {
        fn write(&self, key: &str, value: Vec<u8>) {
            self.next_cas.set(self.next_cas.get().wrapping_add(1));
            self.data
                .borrow_mut()
                .insert(key.to_string(), (value, self.next_cas.get()));
        }
    }

    impl SharedCells for Cells {
        fn get(&self, key: &str) -> Result<(Option<Vec<u8>>, u32), CellError> {
            if self.fail.get() {
                return Err(CellError::Host("down".into()));
            }
            Ok(match self.data.borrow().get(key) {
                Some((v, cas)) => (Some(v.clone()), *cas),
                None => (None, 0),
            })
        }

        fn set(&self, key: &str, value: &[u8], cas: u32) -> Result<(), CellError> {
            if self.interleave.get() > 0 {
                self.interleave.set(self.interleave.get() - 1);
                let (current, _) = self.get(key)?;
                let n = super::decode(current.as_deref())?.wrapping_add(1);
                self.write(key, n.to_le_bytes().to_vec());
            }
            // The host's rule: an absent cell is created whatever the token; an existing
            // cell refuses a non-zero token that is not its own.
            let current = self.data.borrow().get(key).map(|(_, c)| *c);
            if let (Some(current), true) = (current, cas != 0) {
                if current != cas {
                    return Err(CellError::CasMismatch);
                }
            }
            self.write(key, value.to_vec());
            Ok(())
        }
    }
}

/// Cells every thread of one process shares, behind a lock: what a native host (one
/// process, several worker threads) uses where proxy-wasm has the host's shared data. Same
/// rules as the host's: an absent cell is created whatever the token; an existing cell
/// refuses a non-zero token that is not its own. The number of keys is bounded: a new key
/// past the bound is refused (the caller's usual `Host` error path).
pub mod locked {
    use std::collections::HashMap;
    use std::sync::Mutex;

    use super::{CellError, SharedCells};

    /// Each key's value and token, and the last token handed out.
    type Table = (HashMap<String, (Vec<u8>, u32)>, u32);

    pub struct Cells {
        data: Mutex<Table>,
        max_keys: usize,
    }

    impl Cells {
        pub fn new(max_keys: usize) -> Self {
            Cells {
                data: Mutex::new((HashMap::new(), 0)),
                max_keys,
            }
        }
    }

    impl SharedCells for Cells {
        fn get(&self, key: &str) -> Result<(Option<Vec<u8>>, u32), CellError> {
            let guard = self
                .data
                .lock()
                .map_err(|_| CellError::Host("the shared cells' lock is poisoned".into()))?;
            Ok(match guard.0.get(key) {
                Some((v, cas)) => (Some(v.clone()), *cas),
                None => (None, 0),
            })
        }

        fn set(&self, key: &str, value: &[u8], cas: u32) -> Result<(), CellError> {
            let mut guard = self
                .data
                .lock()
                .map_err(|_| CellError::Host("the shared cells' lock is poisoned".into()))?;
            let (map, next) = &mut *guard;
            // Tokens skip 0 (no check) and u32::MAX (create if absent).
            *next = if *next >= u32::MAX - 1 { 1 } else { *next + 1 };
            let token = *next;
            let full = map.len() >= self.max_keys;
            match map.get_mut(key) {
                Some((_, current)) if cas != 0 && *current != cas => Err(CellError::CasMismatch),
                Some(entry) => {
                    *entry = (value.to_vec(), token);
                    Ok(())
                }
                None if full => Err(CellError::Host(format!(
                    "shared cells are full ({} keys); `{key}` was not created",
                    self.max_keys
                ))),
                None => {
                    map.insert(key.to_string(), (value.to_vec(), token));
                    Ok(())
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::memory::Cells;
    use super::*;

    #[test]
    fn counters_start_at_zero_and_increment() {
        let cells = Cells::default();
        assert_eq!(read(&cells, "k"), Ok(0));
        assert_eq!(increment(&cells, "k"), Ok(1));
        assert_eq!(increment(&cells, "k"), Ok(2));
        assert_eq!(read(&cells, "k"), Ok(2));
        assert_eq!(read(&cells, "other"), Ok(0));
    }

    #[test]
    fn lost_races_retry_and_no_increment_is_lost() {
        let cells = Cells::default();
        increment(&cells, "k").unwrap();
        // Three other workers get in first; each of their increments counts, and so does ours.
        cells.interleave.set(3);
        assert_eq!(increment(&cells, "k"), Ok(5));
        // A cell that never settles gives up instead of spinning.
        cells.interleave.set(MAX_CAS_ATTEMPTS);
        assert_eq!(increment(&cells, "k"), Err(CellError::CasMismatch));
    }

    #[test]
    fn creating_a_cell_races_safely() {
        // Another worker creates the cell between our read (absent) and our write: our
        // create-if-absent write fails and the retry counts on top of theirs.
        let cells = Cells::default();
        cells.interleave.set(1);
        assert_eq!(increment(&cells, "new"), Ok(2));
        assert_eq!(read(&cells, "new"), Ok(2));
    }

    #[test]
    fn keep_does_not_write() {
        let cells = Cells::default();
        let got = update(&cells, "k", |v| Ok(Step::Keep(v.is_none()))).unwrap();
        assert!(got);
        assert_eq!(cells.get("k").unwrap(), (None, 0));
    }

    #[test]
    fn host_failures_and_foreign_values_are_errors() {
        let cells = Cells::default();
        cells.set("k", b"abc", 0).unwrap();
        assert!(matches!(read(&cells, "k"), Err(CellError::Host(_))));
        assert!(matches!(increment(&cells, "k"), Err(CellError::Host(_))));
        cells.fail.set(true);
        assert!(matches!(read(&cells, "x"), Err(CellError::Host(_))));
    }

    #[test]
    fn locked_cells_follow_the_hosts_rules_and_stay_bounded() {
        let cells = locked::Cells::new(2);
        assert_eq!(cells.get("a"), Ok((None, 0)));
        assert_eq!(cells.set("a", b"1", CREATE_IF_ABSENT), Ok(()));
        let (value, cas) = cells.get("a").unwrap();
        assert_eq!(value.as_deref(), Some(&b"1"[..]));
        assert_eq!(
            cells.set("a", b"2", cas.wrapping_add(1)),
            Err(CellError::CasMismatch)
        );
        assert_eq!(cells.set("a", b"2", cas), Ok(()));
        assert_eq!(cells.set("a", b"3", cas), Err(CellError::CasMismatch));
        assert_eq!(cells.set("a", b"4", 0), Ok(()));
        assert_eq!(cells.set("b", b"1", CREATE_IF_ABSENT), Ok(()));
        assert!(matches!(cells.set("c", b"1", 0), Err(CellError::Host(_))));
        assert_eq!(read(&cells, "c"), Ok(0));
    }

    /// (Threads do not exist on wasm32-wasip1, where the locked cells are not used.)
    #[cfg(not(target_arch = "wasm32"))]
    #[test]
    fn locked_cells_count_exactly_across_threads() {
        let cells = std::sync::Arc::new(locked::Cells::new(10));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let cells = cells.clone();
                std::thread::spawn(move || {
                    for _ in 0..250 {
                        increment(cells.as_ref(), "n").unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(read(cells.as_ref(), "n"), Ok(1000));
    }
}
