//! `usage_summary`: where one user's credit went, grouped by day, node or
//! resource.

use serde::{Deserialize, Serialize};

/// How `usage_summary` groups a user's applied records.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UsageGroupBy {
    /// By the UTC day the record was applied (`YYYY-MM-DD`), oldest first.
    #[default]
    Day,
    /// By the node that reported it, largest cost first.
    Node,
    /// By the record's `resource` (null for records without one), largest cost first.
    Resource,
}

/// One group of a usage summary.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsageGroup {
    /// The day, node or resource; null for the records without a resource.
    pub key: Option<String>,
    pub cost_cents: i64,
    pub records: u64,
}

/// `usage_summary` result: one user's applied usage in a window, grouped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsageSummary {
    pub user_sid: String,
    /// The window's bounds as asked (records applied in `[from, to)`).
    pub from: Option<String>,
    pub to: Option<String>,
    pub group_by: UsageGroupBy,
    pub groups: Vec<UsageGroup>,
    /// Sum over the groups: at most the user's total consumed, so it fits 64 bits.
    pub total_cents: i64,
    pub total_records: u64,
}
