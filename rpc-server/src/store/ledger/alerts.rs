//! Balance alerts inside a ledger transaction: after the touched users are
//! final, each balance change is checked against the user's alert level
//! (`alerts::rules`), and crossings go to the outbox in the same transaction.

use super::super::StoreError;
use super::super::alerts::{
    AlertRow, DEFAULT_LOW_BALANCE_CENTS, EventRow, balance_data, rules, user_subject,
};
use super::{LedgerTxn, Rows};

/// The ledger key of the default low-balance threshold (see `Store::set_low_balance_default`).
pub(crate) const LOW_BALANCE_DEFAULT_KEY: &str = "low_balance_default";

impl<R: Rows> LedgerTxn<R> {
    /// Checks one user's balance change `before` → `after`.
    pub(super) fn balance_alert(
        &mut self,
        sid: &str,
        before: i64,
        after: i64,
    ) -> Result<(), StoreError> {
        let subject = user_subject(sid);
        let alert = self.rows.alert(&subject)?.unwrap_or_default();
        let threshold = match alert.low_balance_cents {
            Some(own) => own,
            None => self.low_balance_default()?,
        };
        let (events, level) = rules::crossing(alert.level, before, after, threshold);
        for kind in events {
            let data = balance_data(sid, before, after, threshold);
            let row = EventRow::new(kind, self.now_ms, subject.clone(), data);
            self.rows.put_event(&row)?;
        }
        if let Some(level) = level {
            self.rows
                .put_alert(&subject, &AlertRow { level, ..alert })?;
        }
        Ok(())
    }

    /// The ledger's default threshold, read once per transaction.
    fn low_balance_default(&mut self) -> Result<i64, StoreError> {
        if let Some(cents) = self.low_balance_default {
            return Ok(cents);
        }
        let cents = self
            .rows
            .low_balance_default()?
            .unwrap_or(DEFAULT_LOW_BALANCE_CENTS);
        self.low_balance_default = Some(cents);
        Ok(cents)
    }
}
