//! When a balance change is an event. Each user has an alert level, stored
//! with the ledger and changed only by these rules:
//!
//! - `level(balance)`: `overdrawn` below 0, `low` below the user's threshold,
//!   else `ok`.
//! - A change that lowers the balance into a worse level than the stored one
//!   is an event of the new level (`balance.low`, `balance.overdrawn`); the
//!   stored level becomes it. A debit from `ok` straight below zero crosses
//!   both lines: `balance.low`, then `balance.overdrawn` (only the latter
//!   when the threshold is 0 or less, as there is no low band then).
//! - A change that leaves the balance at `ok` while the stored level is not
//!   is `balance.recovered`; the stored level becomes `ok` (re-armed).
//! - An overdrawn user lifted to `low` stores `low` without an event, so that
//!   falling below zero again is `balance.overdrawn` again.
//! - A raise into a worse level (a new user topping up below the threshold)
//!   stores nothing and is no event: only a debit crosses down.
//!
//! So there is exactly one event per crossing, and a user is never told twice
//! about one state.

use billing_api::EventType;
use serde::{Deserialize, Serialize};

/// A user's alert level, as stored (`ok` when nothing is stored).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Level {
    #[default]
    Ok,
    Low,
    Overdrawn,
}

impl Level {
    /// The stored code (PostgreSQL `alerts.level`): 0 ok, 1 low (a node: stale), 2 overdrawn.
    pub fn code(self) -> i16 {
        match self {
            Level::Ok => 0,
            Level::Low => 1,
            Level::Overdrawn => 2,
        }
    }

    pub fn from_code(code: i16) -> Option<Level> {
        match code {
            0 => Some(Level::Ok),
            1 => Some(Level::Low),
            2 => Some(Level::Overdrawn),
            _ => None,
        }
    }
}

/// The level of `balance` against `threshold`.
pub fn level(balance: i64, threshold: i64) -> Level {
    if balance < 0 {
        Level::Overdrawn
    } else if balance < threshold {
        Level::Low
    } else {
        Level::Ok
    }
}

/// The events (oldest first) and the level to store (if it changes) after a
/// balance change `before` → `after` of a user whose stored level is `stored`.
pub fn crossing(
    stored: Level,
    before: i64,
    after: i64,
    threshold: i64,
) -> (Vec<EventType>, Option<Level>) {
    let now = level(after, threshold);
    if now == stored {
        return (Vec::new(), None);
    }
    match now {
        Level::Ok => (vec![EventType::BalanceRecovered], Some(Level::Ok)),
        Level::Low if stored == Level::Ok && after < before => {
            (vec![EventType::BalanceLow], Some(Level::Low))
        }
        Level::Overdrawn if after < before => {
            let mut events = Vec::with_capacity(2);
            if stored == Level::Ok && threshold > 0 {
                events.push(EventType::BalanceLow);
            }
            events.push(EventType::BalanceOverdrawn);
            (events, Some(Level::Overdrawn))
        }
        // Overdrawn lifted to low: re-arm the overdrawn alert, quietly.
        Level::Low if stored == Level::Overdrawn => (Vec::new(), Some(Level::Low)),
        // Raised, but still worse than stored: wait for a debit.
        _ => (Vec::new(), None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use EventType::*;

    #[test]
    fn a_debit_through_the_threshold_then_through_zero_is_two_events() {
        assert_eq!(
            crossing(Level::Ok, 600, 400, 500),
            (vec![BalanceLow], Some(Level::Low))
        );
        assert_eq!(crossing(Level::Low, 400, 300, 500), (vec![], None));
        assert_eq!(
            crossing(Level::Low, 300, -1, 500),
            (vec![BalanceOverdrawn], Some(Level::Overdrawn))
        );
        assert_eq!(crossing(Level::Overdrawn, -1, -50, 500), (vec![], None));
    }

    #[test]
    fn one_debit_from_ok_below_zero_crosses_both_lines() {
        assert_eq!(
            crossing(Level::Ok, 600, -10, 500),
            (vec![BalanceLow, BalanceOverdrawn], Some(Level::Overdrawn))
        );
    }

    #[test]
    fn a_top_up_above_the_threshold_recovers_and_re_arms() {
        assert_eq!(
            crossing(Level::Overdrawn, -10, 1_000, 500),
            (vec![BalanceRecovered], Some(Level::Ok))
        );
        assert_eq!(
            crossing(Level::Ok, 1_000, 499, 500),
            (vec![BalanceLow], Some(Level::Low))
        );
    }

    #[test]
    fn overdrawn_lifted_to_low_re_arms_overdrawn_quietly() {
        assert_eq!(
            crossing(Level::Overdrawn, -10, 100, 500),
            (vec![], Some(Level::Low))
        );
        assert_eq!(
            crossing(Level::Low, 100, -5, 500),
            (vec![BalanceOverdrawn], Some(Level::Overdrawn))
        );
    }

    #[test]
    fn raising_a_balance_never_alerts() {
        // A new user (stored ok) topping up to below the threshold.
        assert_eq!(crossing(Level::Ok, 0, 100, 500), (vec![], None));
        // Then the first debit that leaves it low is the crossing.
        assert_eq!(
            crossing(Level::Ok, 100, 90, 500),
            (vec![BalanceLow], Some(Level::Low))
        );
    }

    #[test]
    fn a_zero_threshold_only_alerts_below_zero() {
        assert_eq!(crossing(Level::Ok, 10, 0, 0), (vec![], None));
        assert_eq!(
            crossing(Level::Ok, 0, -1, 0),
            (vec![BalanceOverdrawn], Some(Level::Overdrawn))
        );
    }
}
