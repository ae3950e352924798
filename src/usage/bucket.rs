//! Token buckets: API Gateway's throttling arithmetic.
//!
//! Owns: the state of one bucket as stored in a shared cell (16 bytes: micro-tokens and the
//! time of the last refill) and taking one token at a given `now`. A bucket starts full
//! (`burstLimit` tokens) and refills at `rateLimit` tokens per second up to `burstLimit`.
//! Micro-token units keep fractional rates (0.5 per second) exact. Must not: read clocks or
//! decide which buckets apply (see [`super::UsagePlans`]).

use crate::config::Throttle;

const MICRO: u64 = 1_000_000;

/// A compiled throttle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    /// Refill in micro-tokens per second.
    pub per_second_micro: u64,
    pub burst: u64,
}

impl Rate {
    /// Compiles a throttle; `None` when the rate is not a finite, non-negative number.
    pub fn from_settings(t: &Throttle) -> Option<Rate> {
        if !t.rate_limit.is_finite() || t.rate_limit < 0.0 || t.rate_limit > 1e12 {
            return None;
        }
        Some(Rate {
            per_second_micro: (t.rate_limit * MICRO as f64).round() as u64,
            burst: t.burst_limit,
        })
    }

    fn capacity(&self) -> u64 {
        self.burst.saturating_mul(MICRO)
    }
}

/// What taking a token gave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Take {
    /// Admitted; whole tokens left.
    Admitted { remaining: u64 },
    /// No token; the next one comes in this many milliseconds (`None`: never, rate 0).
    Throttled { retry_after_ms: Option<u64> },
}

/// Bucket state as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct State {
    tokens_micro: u64,
    last_ms: u64,
}

impl State {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(16);
        self.encode_into(&mut out);
        out
    }

    /// Appends the 16 bytes of [`State::encode`] to `out`.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.tokens_micro.to_le_bytes());
        out.extend_from_slice(&self.last_ms.to_le_bytes());
    }

    pub fn decode(bytes: &[u8]) -> Option<State> {
        let tokens: [u8; 8] = bytes.get(..8)?.try_into().ok()?;
        let last: [u8; 8] = bytes.get(8..16)?.try_into().ok()?;
        (bytes.len() == 16).then(|| State {
            tokens_micro: u64::from_le_bytes(tokens),
            last_ms: u64::from_le_bytes(last),
        })
    }
}

/// Takes one token at `now_ms` from a bucket (`None`: never used, so full). Returns the
/// state to write back (`None` when nothing changed) and the verdict.
pub fn take(state: Option<State>, rate: &Rate, now_ms: u64) -> (Option<State>, Take) {
    let capacity = rate.capacity();
    let current = state.unwrap_or(State {
        tokens_micro: capacity,
        last_ms: now_ms,
    });
    // Workers' clocks may disagree by a little: time never runs backwards for a bucket.
    let elapsed = now_ms.saturating_sub(current.last_ms);
    let refill = u128::from(elapsed) * u128::from(rate.per_second_micro) / 1000;
    let tokens = u128::from(current.tokens_micro)
        .saturating_add(refill)
        .min(u128::from(capacity)) as u64;
    if tokens >= MICRO {
        let left = tokens - MICRO;
        let next = State {
            tokens_micro: left,
            last_ms: now_ms.max(current.last_ms),
        };
        return (
            Some(next),
            Take::Admitted {
                remaining: left / MICRO,
            },
        );
    }
    let missing = MICRO - tokens;
    let retry_after_ms = (rate.per_second_micro > 0 && rate.burst > 0)
        .then(|| (u128::from(missing) * 1000).div_ceil(u128::from(rate.per_second_micro)) as u64);
    (None, Take::Throttled { retry_after_ms })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rate(r: f64, b: u64) -> Rate {
        Rate::from_settings(&Throttle {
            rate_limit: r,
            burst_limit: b,
        })
        .unwrap()
    }

    /// Takes at each time in turn; returns which were admitted.
    fn run(rate: &Rate, times: &[u64]) -> Vec<bool> {
        let mut state = None;
        times
            .iter()
            .map(|&t| {
                let (next, verdict) = take(state, rate, t);
                if next.is_some() {
                    state = next;
                }
                matches!(verdict, Take::Admitted { .. })
            })
            .collect()
    }

    #[test]
    fn burst_then_rate() {
        // Burst 3 at once, then one every 100 ms at 10/s.
        let r = rate(10.0, 3);
        assert_eq!(
            run(&r, &[0, 0, 0, 0, 50, 100, 150, 200, 200]),
            vec![true, true, true, false, false, true, false, true, false]
        );
    }

    #[test]
    fn fractional_rates_are_exact() {
        // 0.5/s: one token every 2 s.
        let r = rate(0.5, 1);
        assert_eq!(
            run(&r, &[0, 1_000, 1_999, 2_000, 3_999, 4_000]),
            vec![true, false, false, true, false, true]
        );
    }

    #[test]
    fn refill_stops_at_the_burst() {
        let r = rate(100.0, 2);
        assert_eq!(
            run(&r, &[0, 0, 60_000, 60_000, 60_000]),
            vec![true, true, true, true, false]
        );
    }

    #[test]
    fn retry_after_and_zero_rates() {
        let r = rate(4.0, 1);
        let (s, _) = take(None, &r, 0);
        assert_eq!(
            take(s, &r, 100).1,
            Take::Throttled {
                retry_after_ms: Some(150)
            }
        );
        // Rate 0 or burst 0: nothing is ever admitted.
        assert_eq!(
            run(&rate(0.0, 1), &[0, 0, 10_000]),
            vec![true, false, false]
        );
        assert_eq!(run(&rate(10.0, 0), &[0, 1_000]), vec![false, false]);
        assert_eq!(
            take(None, &rate(10.0, 0), 0).1,
            Take::Throttled {
                retry_after_ms: None
            }
        );
    }

    #[test]
    fn clocks_that_step_back_do_not_mint_tokens() {
        let r = rate(1.0, 1);
        assert_eq!(
            run(&r, &[10_000, 9_000, 10_500, 11_000]),
            vec![true, false, false, true]
        );
    }

    #[test]
    fn encoding_round_trips_and_rejects_garbage() {
        let s = State {
            tokens_micro: 7,
            last_ms: 9,
        };
        assert_eq!(State::decode(&s.encode()), Some(s));
        assert_eq!(State::decode(&[1, 2, 3]), None);
        assert_eq!(State::decode(&[0; 17]), None);
    }

    #[test]
    fn invalid_rates_are_refused() {
        for r in [-1.0, f64::NAN, f64::INFINITY] {
            assert!(Rate::from_settings(&Throttle {
                rate_limit: r,
                burst_limit: 1
            })
            .is_none());
        }
    }
}
