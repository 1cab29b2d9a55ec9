//! What each list shows: the page loaded from the server, after the local
//! filter for rejected items, events and nodes (only the page on screen is
//! filtered there). Users are sorted and filtered by the server.

use billing_api::types::{NodeState, RejectedItem, UserBilling};

use super::App;

impl App {
    /// The users of the current page, in the server's order and through its
    /// filter ([`super::UserQuery`]).
    pub fn visible_users(&self) -> Vec<&UserBilling> {
        self.users.items.iter().collect()
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
        self.aggregator_state
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
