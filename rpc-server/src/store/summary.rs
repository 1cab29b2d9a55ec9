//! `usage_summary`: one user's applied records in a window, summed by day,
//! node or resource. Read page by page through the user's own index, so memory
//! holds the groups, not the records.

use std::collections::HashMap;

use billing_api::{UsageGroup, UsageGroupBy, UsageSummary};

use super::window::Window;
use super::{Store, StoreError};

/// Distinct groups one summary may hold; past it the caller narrows the window.
pub const MAX_GROUPS: usize = 10_000;

/// Records read per page of the user's index.
const PAGE: u32 = 1_000;

impl Store {
    /// Sums `sid`'s applied records applied in `window` by `group_by`.
    pub fn usage_summary(
        &self,
        sid: &str,
        window: Option<Window>,
        group_by: UsageGroupBy,
    ) -> Result<UsageSummary, StoreError> {
        // An unknown user is an error, as for get_balance, not an empty summary.
        self.get_balance(sid)?;
        let mut groups: HashMap<Option<String>, UsageGroup> = HashMap::new();
        let (mut total_cents, mut total_records) = (0i64, 0u64);
        let mut cursor: Option<String> = None;
        loop {
            let page = self.list_consumed(Some(sid), cursor.as_deref(), PAGE)?;
            for record in page.items {
                if window.is_some_and(|w| !w.holds(&record)) {
                    continue;
                }
                let key = match group_by {
                    // applied_at is RFC 3339 in UTC: its first ten characters are the day.
                    UsageGroupBy::Day => {
                        Some(record.applied_at.get(..10).unwrap_or("").to_string())
                    }
                    UsageGroupBy::Node => Some(record.node_name),
                    UsageGroupBy::Resource => record.resource,
                };
                if !groups.contains_key(&key) && groups.len() == MAX_GROUPS {
                    return Err(StoreError::InvalidInput(format!(
                        "user `{sid}` has more than {MAX_GROUPS} distinct {} in this window; \
                         ask for a shorter window (from, to)",
                        match group_by {
                            UsageGroupBy::Day => "days",
                            UsageGroupBy::Node => "nodes",
                            UsageGroupBy::Resource => "resources",
                        }
                    )));
                }
                let group = groups.entry(key.clone()).or_insert(UsageGroup {
                    key,
                    cost_cents: 0,
                    records: 0,
                });
                // A subset of the user's applied records: its sum is at most the user's
                // total consumed, which the ledger keeps within 64 bits; a group is at
                // most the total.
                total_cents = total_cents.checked_add(record.cost_cents).ok_or_else(|| {
                    StoreError::Storage(format!(
                        "the applied records of user `{sid}` add up past 64 bits, more than \
                         the ledger allows; run `rpc-server verify`"
                    ))
                })?;
                total_records += 1;
                group.cost_cents += record.cost_cents;
                group.records += 1;
            }
            match page.next_cursor {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
        let mut groups: Vec<UsageGroup> = groups.into_values().collect();
        match group_by {
            UsageGroupBy::Day => groups.sort_by(|a, b| a.key.cmp(&b.key)),
            UsageGroupBy::Node | UsageGroupBy::Resource => groups.sort_by(|a, b| {
                b.cost_cents
                    .cmp(&a.cost_cents)
                    .then_with(|| a.key.cmp(&b.key))
            }),
        }
        Ok(UsageSummary {
            user_sid: sid.to_string(),
            from: None,
            to: None,
            group_by,
            groups,
            total_cents,
            total_records,
        })
    }
}
