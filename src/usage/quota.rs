//! Quotas: how many requests a key may make per day, week or month.
//!
//! Owns: UTC period windows (days from midnight; weeks from Monday midnight; months from
//! the 1st), the counter state as stored in a shared cell (24 bytes: the first window the
//! key was counted in, the current window and the count in it) and counting one request.
//! `offset` is subtracted from the limit in the first window only, as API Gateway
//! describes it. Must not: read clocks or decide which quota applies.

use crate::config::{QuotaPeriod, QuotaSettings};
use crate::time::{civil_from_days, days_from_civil};

pub const DAY_MS: u64 = 86_400_000;

/// Start and end (exclusive) of the window holding `now_ms`, in epoch milliseconds.
pub fn window(period: QuotaPeriod, now_ms: u64) -> (u64, u64) {
    let days = (now_ms / DAY_MS) as i64;
    let (start, end) = match period {
        QuotaPeriod::Day => (days, days + 1),
        QuotaPeriod::Week => {
            // 1970-01-01 was a Thursday: Monday is 3 days before.
            let monday = days - (days + 3).rem_euclid(7);
            (monday, monday + 7)
        }
        QuotaPeriod::Month => {
            let (y, m, _) = civil_from_days(days);
            let (ny, nm) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
            (days_from_civil(y, m, 1), days_from_civil(ny, nm, 1))
        }
    };
    let ms = |d: i64| u64::try_from(d).unwrap_or(0).saturating_mul(DAY_MS);
    (ms(start), ms(end))
}

/// Counter state as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct State {
    first_window: u64,
    window: u64,
    used: u64,
}

impl State {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(24);
        self.encode_into(&mut out);
        out
    }

    /// Appends the 24 bytes of [`State::encode`] to `out`.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        for word in [self.first_window, self.window, self.used] {
            out.extend_from_slice(&word.to_le_bytes());
        }
    }

    pub fn decode(bytes: &[u8]) -> Option<State> {
        let word = |i: usize| -> Option<u64> {
            let b: [u8; 8] = bytes.get(i * 8..i * 8 + 8)?.try_into().ok()?;
            Some(u64::from_le_bytes(b))
        };
        (bytes.len() == 24).then_some(())?;
        Some(State {
            first_window: word(0)?,
            window: word(1)?,
            used: word(2)?,
        })
    }
}

/// Where a key stands in its quota at `now_ms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Standing {
    pub limit: u64,
    pub used: u64,
    pub window_start_ms: u64,
    pub reset_ms: u64,
}

impl Standing {
    pub fn remaining(&self) -> u64 {
        self.limit.saturating_sub(self.used)
    }
}

/// A key's standing without counting anything.
pub fn standing(state: Option<State>, q: &QuotaSettings, now_ms: u64) -> Standing {
    let (start, end) = window(q.period, now_ms);
    let (first, used) = match state {
        Some(s) if s.window == start => (s.first_window, s.used),
        Some(s) => (s.first_window, 0),
        None => (start, 0),
    };
    let limit = if first == start {
        q.limit.saturating_sub(q.offset)
    } else {
        q.limit
    };
    Standing {
        limit,
        used,
        window_start_ms: start,
        reset_ms: end,
    }
}

/// Counts one request if the quota allows it: the state to write (`None`: refused, nothing
/// changes) and the standing after the request.
pub fn consume(state: Option<State>, q: &QuotaSettings, now_ms: u64) -> (Option<State>, Standing) {
    let mut s = standing(state, q, now_ms);
    if s.used >= s.limit {
        return (None, s);
    }
    s.used += 1;
    let first_window = state.map_or(s.window_start_ms, |st| st.first_window);
    (
        Some(State {
            first_window,
            window: s.window_start_ms,
            used: s.used,
        }),
        s,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::days_from_civil;

    fn at(y: i64, m: u32, d: u32, h: u64) -> u64 {
        days_from_civil(y, m, d) as u64 * DAY_MS + h * 3_600_000
    }

    #[test]
    fn windows_table() {
        for (period, now, start, end) in [
            (
                QuotaPeriod::Day,
                at(2026, 11, 25, 13),
                at(2026, 11, 25, 0),
                at(2026, 11, 26, 0),
            ),
            (
                QuotaPeriod::Day,
                at(2026, 12, 31, 23),
                at(2026, 12, 31, 0),
                at(2027, 1, 1, 0),
            ),
            // 2026-11-25 is a Wednesday; its week starts Monday the 23rd.
            (
                QuotaPeriod::Week,
                at(2026, 11, 25, 13),
                at(2026, 11, 23, 0),
                at(2026, 11, 30, 0),
            ),
            (
                QuotaPeriod::Week,
                at(2026, 11, 23, 0),
                at(2026, 11, 23, 0),
                at(2026, 11, 30, 0),
            ),
            (
                QuotaPeriod::Week,
                at(2026, 11, 22, 23),
                at(2026, 11, 16, 0),
                at(2026, 11, 23, 0),
            ),
            // The week holding the epoch began before it: its start clamps to 0.
            (QuotaPeriod::Week, 0, 0, at(1970, 1, 5, 0)),
            (
                QuotaPeriod::Month,
                at(2026, 11, 25, 13),
                at(2026, 11, 1, 0),
                at(2026, 12, 1, 0),
            ),
            (
                QuotaPeriod::Month,
                at(2026, 12, 5, 0),
                at(2026, 12, 1, 0),
                at(2027, 1, 1, 0),
            ),
            (
                QuotaPeriod::Month,
                at(2028, 2, 29, 23),
                at(2028, 2, 1, 0),
                at(2028, 3, 1, 0),
            ),
            (
                QuotaPeriod::Month,
                at(2027, 2, 28, 23),
                at(2027, 2, 1, 0),
                at(2027, 3, 1, 0),
            ),
        ] {
            assert_eq!(window(period, now), (start, end), "{period:?} {now}");
        }
    }

    fn q(limit: u64, offset: u64, period: QuotaPeriod) -> QuotaSettings {
        QuotaSettings {
            limit,
            offset,
            period,
        }
    }

    /// Counts a request at each time; returns which were admitted.
    fn run(quota: &QuotaSettings, times: &[u64]) -> Vec<bool> {
        let mut state = None;
        times
            .iter()
            .map(|&t| {
                let (next, _) = consume(state, quota, t);
                let ok = next.is_some();
                if ok {
                    state = next;
                }
                ok
            })
            .collect()
    }

    #[test]
    fn limit_per_window_then_reset() {
        let day = q(2, 0, QuotaPeriod::Day);
        let d1 = at(2026, 11, 25, 1);
        let d2 = at(2026, 11, 26, 0);
        assert_eq!(
            run(&day, &[d1, d1, d1, d2 - 1, d2, d2, d2]),
            vec![true, true, false, false, true, true, false]
        );
    }

    #[test]
    fn offset_applies_to_the_first_window_only() {
        let month = q(3, 2, QuotaPeriod::Month);
        let nov = at(2026, 11, 25, 0);
        let dec = at(2026, 12, 1, 0);
        assert_eq!(
            run(&month, &[nov, nov, dec, dec, dec, dec]),
            vec![true, false, true, true, true, false]
        );
        // An offset above the limit leaves nothing in the first window.
        assert_eq!(run(&q(1, 5, QuotaPeriod::Day), &[nov]), vec![false]);
    }

    #[test]
    fn standing_reports_remaining_and_reset() {
        let week = q(10, 0, QuotaPeriod::Week);
        let now = at(2026, 11, 25, 12);
        let (s1, _) = consume(None, &week, now);
        let (s2, st) = consume(s1, &week, now);
        assert!(s2.is_some());
        assert_eq!(
            (st.used, st.remaining(), st.reset_ms),
            (2, 8, at(2026, 11, 30, 0))
        );
        let later = standing(s2, &week, at(2026, 12, 1, 0));
        assert_eq!((later.used, later.remaining()), (0, 10));
    }

    #[test]
    fn encoding_round_trips() {
        let (s, _) = consume(None, &q(5, 0, QuotaPeriod::Day), 1);
        let s = s.unwrap();
        assert_eq!(State::decode(&s.encode()), Some(s));
        assert_eq!(State::decode(&[0; 16]), None);
    }
}
