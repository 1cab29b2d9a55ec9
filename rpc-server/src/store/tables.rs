//! Table definitions of the ledger. Keys are chosen so that every listing is a
//! range scan: sequence numbers give newest-first order, `(user, seq)` tuples
//! give per-user order.

use redb::TableDefinition;

/// Singleton rows: the ledger counters and sequence numbers (see `codec::MetaRow`).
pub(crate) const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");

/// `user_sid` -> `codec::UserRow`.
pub(crate) const USERS: TableDefinition<&str, &[u8]> = TableDefinition::new("users");

/// `(balance_cents, user_sid)` -> the ledger's balance version when the user's
/// balance was last written (see `user_index.rs`): `list_users` by balance.
pub(crate) const USERS_BY_BALANCE: TableDefinition<(i64, &str), u64> =
    TableDefinition::new("users_by_balance");
/// `(consumed_cents, user_sid)` -> (): `list_users` by total consumed.
pub(crate) const USERS_BY_CONSUMED: TableDefinition<(i64, &str), ()> =
    TableDefinition::new("users_by_consumed");

/// `payment_id` -> `codec::PaymentRow`.
pub(crate) const PAYMENTS: TableDefinition<&str, &[u8]> = TableDefinition::new("payments");
/// Payment sequence number -> `payment_id`, for newest-first listing.
pub(crate) const PAYMENT_LOG: TableDefinition<u64, &str> = TableDefinition::new("payment_log");
/// `(user_sid, payment seq)` -> `payment_id`.
pub(crate) const USER_PAYMENTS: TableDefinition<(&str, u64), &str> =
    TableDefinition::new("user_payments");

/// `idempotency_key` -> consumed sequence number: the exactly-once index.
pub(crate) const CONSUMED_KEYS: TableDefinition<&str, u64> = TableDefinition::new("consumed_keys");
/// Consumed sequence number -> `codec::ConsumedRow` (the applied record and its provenance).
pub(crate) const CONSUMED_LOG: TableDefinition<u64, &[u8]> = TableDefinition::new("consumed_log");
/// Source id -> `codec::SourceRow` (node, commit, file, applied_at) shared by consumed rows.
pub(crate) const CONSUMED_SOURCES: TableDefinition<u64, &[u8]> =
    TableDefinition::new("consumed_sources");
/// Per-user index of applied records: group id -> `codec::ConsumedGroup`, the
/// consumed seqs one transaction applied to one user, linked to that user's
/// previous group. Group ids grow, so a transaction appends its groups at the
/// end of the table instead of touching one leaf per user.
pub(crate) const USER_CONSUMED: TableDefinition<u64, &[u8]> =
    TableDefinition::new("user_consumed_groups");

/// `idempotency_key` -> `codec::PendingRow`: records held until their user is registered.
pub(crate) const PENDING: TableDefinition<&str, &[u8]> = TableDefinition::new("pending");
/// `(user_sid, idempotency_key)` -> (): held records of one user.
pub(crate) const USER_PENDING: TableDefinition<(&str, &str), ()> =
    TableDefinition::new("user_pending");

/// Rejected-item id -> `codec::RejectedRow`.
pub(crate) const REJECTED: TableDefinition<u64, &[u8]> = TableDefinition::new("rejected");
/// Fingerprint of a rejection -> rejected-item id, so re-reading a file adds nothing twice.
pub(crate) const REJECTED_FINGERPRINTS: TableDefinition<&str, u64> =
    TableDefinition::new("rejected_fingerprints");

/// Rejected-item id -> how many records a file's summary item stands for.
pub(crate) const REJECTED_COUNTS: TableDefinition<u64, u64> =
    TableDefinition::new("rejected_counts");
/// `(node_name, file path, blob id)` -> `codec::TallyRow`: the per-record
/// rejections of one file read, so that only a bounded sample is stored.
pub(crate) const FILE_TALLIES: TableDefinition<(&str, &str, &str), &[u8]> =
    TableDefinition::new("file_tallies");

/// `node_name` -> `codec::NodeRow`.
pub(crate) const NODES: TableDefinition<&str, &[u8]> = TableDefinition::new("nodes");
/// `(node_name, file path)` -> blob id already consumed.
pub(crate) const CONSUMED_FILES: TableDefinition<(&str, &str), &str> =
    TableDefinition::new("consumed_files");

/// `run_id` -> postcard-encoded `codec::RunRow`.
pub(crate) const RUNS: TableDefinition<u64, &[u8]> = TableDefinition::new("runs");

/// `user/<sid>` or `node/<name>` -> `alerts::AlertRow`: alert levels and users' own thresholds.
pub(crate) const ALERTS: TableDefinition<&str, &[u8]> = TableDefinition::new("alerts");
/// Event sequence number -> `alerts::EventRow`: the outbox.
pub(crate) const EVENTS: TableDefinition<u64, &[u8]> = TableDefinition::new("events");
/// `(event seq, webhook URL)` -> `alerts::DeliveryRow`, once a delivery was tried.
pub(crate) const DELIVERIES: TableDefinition<(u64, &str), &[u8]> =
    TableDefinition::new("deliveries");
/// Webhook URL -> the first event seq not yet delivered or given up.
pub(crate) const WEBHOOK_CURSORS: TableDefinition<&str, u64> =
    TableDefinition::new("webhook_cursors");
