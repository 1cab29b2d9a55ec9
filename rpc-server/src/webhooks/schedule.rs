//! When to retry a delivery: exponential backoff with jitter, for at most
//! [`GIVE_UP_AFTER`] after the first attempt. Pure; the caller draws the jitter
//! (`rand::rng().random::<f64>()`) and keeps the first attempt's time.

use std::time::Duration;

/// The upper bound of the wait after the first failed attempt.
pub const BASE_DELAY: Duration = Duration::from_secs(5);
/// No single wait is longer than this.
pub const MAX_DELAY: Duration = Duration::from_secs(60 * 60);
/// No attempt is made later than this after the first one.
pub const GIVE_UP_AFTER: Duration = Duration::from_secs(24 * 60 * 60);

/// The longest wait after `failed` failed attempts: `BASE_DELAY * 2^(failed-1)`,
/// capped at [`MAX_DELAY`] (`failed` 0 counts as 1).
pub fn upper_bound(failed: u32) -> Duration {
    let doublings = failed.saturating_sub(1).min(30);
    BASE_DELAY.saturating_mul(1 << doublings).min(MAX_DELAY)
}

/// The wait before the next attempt, or `None` to give up.
///
/// - `failed`: attempts made so far, all failed (≥ 1 after the first attempt);
/// - `since_first`: time from the first attempt to now (when the last one failed);
/// - `unit`: uniform jitter in [0, 1); out-of-range values are clamped, NaN is 0.
///
/// With `d = upper_bound(failed)` the wait is `d/2 + unit * d/2`, so in [d/2, d).
/// It is `None` when `since_first + wait` would exceed [`GIVE_UP_AFTER`]: the
/// last attempt is never more than 24 h after the first.
pub fn next_delay(failed: u32, since_first: Duration, unit: f64) -> Option<Duration> {
    let unit = if unit.is_nan() {
        0.0
    } else {
        unit.clamp(0.0, 1.0)
    };
    let half = upper_bound(failed) / 2;
    let wait = half + half.mul_f64(unit);
    let total = since_first.checked_add(wait)?;
    (total <= GIVE_UP_AFTER).then_some(wait)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALMOST_ONE: f64 = 1.0 - f64::EPSILON;

    #[test]
    fn the_upper_bound_doubles_from_5_s_and_never_decreases() {
        assert_eq!(upper_bound(0), Duration::from_secs(5));
        assert_eq!(upper_bound(1), Duration::from_secs(5));
        assert_eq!(upper_bound(2), Duration::from_secs(10));
        assert_eq!(upper_bound(3), Duration::from_secs(20));
        let mut previous = Duration::ZERO;
        for failed in (0..200).chain([u32::MAX - 1, u32::MAX]) {
            let bound = upper_bound(failed);
            assert!(
                bound >= previous,
                "attempt {failed}: {bound:?} < {previous:?}"
            );
            previous = bound;
        }
    }

    #[test]
    fn no_wait_exceeds_one_hour() {
        assert_eq!(upper_bound(10), Duration::from_secs(2560));
        assert_eq!(upper_bound(11), MAX_DELAY);
        for failed in [11, 12, 31, 32, 1000, u32::MAX] {
            assert_eq!(upper_bound(failed), MAX_DELAY);
            let wait = next_delay(failed, Duration::ZERO, ALMOST_ONE).unwrap();
            assert!(wait <= MAX_DELAY, "{wait:?}");
        }
    }

    #[test]
    fn jitter_stays_within_half_to_full_bound() {
        for failed in 1..20 {
            let d = upper_bound(failed);
            assert_eq!(next_delay(failed, Duration::ZERO, 0.0), Some(d / 2));
            for unit in [0.0, 0.1, 0.5, 0.9, ALMOST_ONE] {
                let wait = next_delay(failed, Duration::ZERO, unit).unwrap();
                assert!(
                    wait >= d / 2 && wait <= d,
                    "{failed} {unit}: {wait:?} vs {d:?}"
                );
            }
            let low = next_delay(failed, Duration::ZERO, 0.25).unwrap();
            let high = next_delay(failed, Duration::ZERO, 0.75).unwrap();
            assert!(low < high);
        }
    }

    #[test]
    fn out_of_range_jitter_is_clamped() {
        let d = upper_bound(4);
        assert_eq!(next_delay(4, Duration::ZERO, -3.0), Some(d / 2));
        assert_eq!(next_delay(4, Duration::ZERO, f64::NAN), Some(d / 2));
        assert_eq!(next_delay(4, Duration::ZERO, 7.0), Some(d));
    }

    /// Follows the schedule as the worker would, for several jitter draws.
    #[test]
    fn gives_up_once_24_h_after_the_first_attempt_would_pass() {
        for unit in [0.0, 0.3, 0.77, ALMOST_ONE] {
            let mut since_first = Duration::ZERO;
            let mut failed = 1;
            while let Some(wait) = next_delay(failed, since_first, unit) {
                since_first += wait;
                failed += 1;
                assert!(since_first <= GIVE_UP_AFTER);
                assert!(failed < 200, "never gives up");
            }
            let d = upper_bound(failed);
            // The time left is shorter than the wait that was refused.
            assert!(GIVE_UP_AFTER - since_first < d, "{unit}: {since_first:?}");
            // Ten doubling waits (about 85 min), then at most hourly ones.
            assert!(failed >= 11 + 22, "{unit}: only {failed} attempts");
        }
        assert_eq!(next_delay(1, GIVE_UP_AFTER, 0.0), None);
        assert_eq!(next_delay(1, Duration::MAX, 0.0), None);
        let left = GIVE_UP_AFTER - Duration::from_secs(5);
        assert!(next_delay(1, left, ALMOST_ONE).is_some());
        let left = GIVE_UP_AFTER - Duration::from_secs(2);
        assert_eq!(next_delay(1, left, 0.0), None);
    }
}
