//! Shared by the aggregator server, the dashboard and node producers: the
//! JSON-RPC API trait and its types, and the OTOML usage wire format.
//! Nothing here knows about storage or git.

pub mod checks;
pub mod error_codes;
pub mod events;
#[doc(hidden)]
pub mod fuzzing;
pub mod otoml;
pub mod reconcile;
#[cfg(any(feature = "server", feature = "client"))]
pub mod rpc;
pub mod text;
pub mod types;
pub mod usage;

pub use checks::{CheckKind, CheckOutcome, CheckProgress, CheckResult};
pub use events::{Delivery, DeliveryStatus, Event, EventType, UserThreshold};
pub use otoml::{UsageBatch, UsageRecord};
pub use reconcile::{
    LedgerFinding, LedgerTotals, ReconcileReport, RecordAtHead, RepoTotals, Rewritten,
};
pub use types::*;
pub use usage::{UsageGroup, UsageGroupBy, UsageSummary};
