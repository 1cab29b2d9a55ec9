//! What each list shows: the page loaded from the server after the local
//! filter (and for users, the sort). Only the page on screen is filtered.

use billing_api::types::{NodeState, RejectedItem, UserBilling};

use super::{App, UserSort};

impl App {
    /// The users of the current page after the filter and sort.
    pub fn visible_users(&self) -> Vec<&UserBilling> {
        let needle = self.users_filter.to_lowercase();
        let mut rows: Vec<&UserBilling> = self
            .users
            .items
            .iter()
            .filter(|u| {
                needle.is_empty()
                    || u.user_sid.to_lowercase().contains(&needle)
                    || u.display_name
                        .as_deref()
                        .is_some_and(|n| n.to_lowercase().contains(&needle))
                    || u.email
                        .as_deref()
                        .is_some_and(|e| e.to_lowercase().contains(&needle))
            })
            .collect();
        match self.users_sort {
            UserSort::Sid => rows.sort_by(|a, b| a.user_sid.cmp(&b.user_sid)),
            UserSort::Name => rows.sort_by(|a, b| a.display_name.cmp(&b.display_name)),
            UserSort::Balance => rows.sort_by_key(|u| (u.credit_balance_cents, u.user_sid.clone())),
            UserSort::Paid => rows.sort_by_key(|u| (u.total_paid_cents, u.user_sid.clone())),
            UserSort::Consumed => {
                rows.sort_by_key(|u| (u.total_consumed_cents, u.user_sid.clone()))
            }
        }
        if self.users_descending {
            rows.reverse();
        }
        rows
    }

    pub fn visible_rejected(&self) -> Vec<&RejectedItem> {
        let needle = self.rejected_filter.to_lowercase();
        self.rejected
            .items
            .iter()
            .filter(|r| {
                needle.is_empty()
                    || [
                        r.reason.as_str(),
                        &r.node_name,
                        &r.file_path,
                        &r.detail,
                        r.user_sid.as_deref().unwrap_or(""),
                        r.idempotency_key.as_deref().unwrap_or(""),
                    ]
                    .iter()
                    .any(|f| f.to_lowercase().contains(&needle))
            })
            .collect()
    }

    pub fn visible_nodes(&self) -> Vec<&NodeState> {
        let needle = self.nodes_filter.to_lowercase();
        self.state
            .data
            .as_ref()
            .map(|s| {
                s.nodes
                    .iter()
                    .filter(|n| needle.is_empty() || n.node_name.to_lowercase().contains(&needle))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Whether the node stopped reporting: its newest usage hour is older
    /// than the server's `--stale-after` (the server decides).
    pub fn node_is_stale(&self, node: &NodeState) -> bool {
        node.stale
    }
}
