//! Request ids and canary rolls: a SplitMix64 stream from a seed the glue draws from the
//! host's randomness.
//!
//! Owns: turning the stream into version 4 UUIDs and rolls in `0..ROLLS`. Must not: read
//! randomness or a clock itself (the seed is passed in).

use std::cell::Cell;

use crate::sigv4::hex;

/// One worker's source of request ids.
#[derive(Debug)]
pub struct Ids {
    state: Cell<u64>,
}

impl Ids {
    pub fn seeded(seed: u64) -> Self {
        Ids {
            state: Cell::new(seed),
        }
    }

    /// A roll in `0..ROLLS` for choosing a canary.
    pub fn roll(&self) -> u32 {
        u32::try_from(self.next() % u64::from(crate::stage_set::ROLLS)).unwrap_or(0)
    }

    fn next(&self) -> u64 {
        let s = self.state.get().wrapping_add(0x9e37_79b9_7f4a_7c15);
        self.state.set(s);
        let mut z = s;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A random (version 4) UUID.
    pub fn uuid(&self) -> String {
        let a = self.next();
        let b = self.next();
        let hi = (a & 0xffff_ffff_ffff_0fff) | 0x4000;
        let lo = (b & 0x3fff_ffff_ffff_ffff) | 0x8000_0000_0000_0000;
        let (hi, lo) = (hex(&hi.to_be_bytes()), hex(&lo.to_be_bytes()));
        [
            hi.get(..8),
            hi.get(8..12),
            hi.get(12..),
            lo.get(..4),
            lo.get(4..),
        ]
        .map(Option::unwrap_or_default)
        .join("-")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_version_4_uuids_and_rolls_stay_in_range() {
        let ids = Ids::seeded(42);
        let a = ids.uuid();
        let b = ids.uuid();
        assert_ne!(a, b);
        for id in [&a, &b] {
            let parts: Vec<&str> = id.split('-').collect();
            assert_eq!(
                parts.iter().map(|p| p.len()).collect::<Vec<_>>(),
                [8, 4, 4, 4, 12]
            );
            assert!(parts[2].starts_with('4'), "{id}");
            assert!(
                matches!(parts[3].as_bytes()[0], b'8' | b'9' | b'a' | b'b'),
                "{id}"
            );
        }
        assert!((0..1000).all(|_| ids.roll() < crate::stage_set::ROLLS));
        // The same seed gives the same stream.
        assert_eq!(Ids::seeded(42).uuid(), a);
        // The digits are the stream's two words, in order (what `{:016x}` of each gives).
        let words = Ids::seeded(42);
        let (hi, lo) = (words.next(), words.next());
        let hi = (hi & 0xffff_ffff_ffff_0fff) | 0x4000;
        let lo = (lo & 0x3fff_ffff_ffff_ffff) | 0x8000_0000_0000_0000;
        assert_eq!(a.replace('-', ""), format!("{hi:016x}{lo:016x}"));
    }
}
