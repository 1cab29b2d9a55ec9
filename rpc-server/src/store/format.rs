//! The ledger's format version, and migrations from older formats.
//!
//! The version is kept under `FORMAT_KEY` in the `META` table. Format 1 had no
//! version row; its rows stored API types (reject reasons, node status, the
//! applied version of a conflict, run summaries) by position, so a new API
//! field or a reordered enum would have changed what old rows mean. Format 2
//! stores rows owned by the store (`codec.rs`): enums as explicit codes, and
//! its own structs for the rest. Format 3 adds the indexes `list_users` walks
//! by balance and by total consumed (`user_index.rs`), which a binary of format
//! 2 would not keep up to date: migrating builds them from the users table.
//! Opening a ledger migrates it to the current format in one transaction; a
//! ledger of a newer or unknown format is refused.

use billing_api::{ConsumedRecord, NodeStatus, RejectReason};
use redb::{Database, ReadableTable, ReadableTableMetadata};
use serde::Deserialize;

use super::codec::{self, META_KEY, NodeRow, RejectedRow, RunRow};
use super::{StoreError, tables, user_index};

/// The format this build writes.
pub const LEDGER_FORMAT: u32 = 3;
/// Key of the format version in the `META` table (4 bytes, little endian).
pub(super) const FORMAT_KEY: &str = "format";

/// Brings the ledger to [`LEDGER_FORMAT`]: stamps a new ledger, migrates an
/// older one, refuses a newer or unknown one.
pub(super) fn check_and_migrate(db: &Database, location: &str) -> Result<(), StoreError> {
    let txn = db.begin_write()?;
    // (the format found, whether the ledger records it)
    let (found, stamped) = {
        let meta = txn.open_table(tables::META)?;
        match meta.get(FORMAT_KEY)? {
            Some(bytes) => {
                let version = decode_version(bytes.value()).ok_or_else(|| {
                    StoreError::Storage(format!(
                        "the ledger {location} has an unreadable format version; it is damaged \
                         or not a ledger of this product: restore it from a backup"
                    ))
                })?;
                (version, true)
            }
            None => {
                // Format 1 wrote no version; a ledger never written to has nothing to migrate.
                let used =
                    meta.get(META_KEY)?.is_some() || txn.open_table(tables::USERS)?.len()? > 0;
                (if used { 1 } else { LEDGER_FORMAT }, false)
            }
        }
    };
    if found > LEDGER_FORMAT {
        return Err(StoreError::Storage(format!(
            "the ledger {location} has format version {found}, newer than this rpc-server's \
             {LEDGER_FORMAT}; run the rpc-server version that wrote it (or a newer one), or \
             restore a backup made by this version"
        )));
    }
    if found == LEDGER_FORMAT && stamped {
        return Ok(());
    }
    let failed = |from: u32| {
        move |e: StoreError| match e {
            StoreError::Storage(m) => StoreError::Storage(format!(
                "migrating the ledger {location} from format {from} to {} failed, and nothing \
                 was changed: {m}; restore it from a backup, or run the rpc-server version \
                 that wrote it",
                from + 1
            )),
            other => other,
        }
    };
    if found == 1 {
        from_1_to_2(&txn).map_err(failed(1))?;
    }
    if found <= 2 {
        let users = user_index::rebuild(&txn).map_err(failed(2))?;
        tracing::info!(ledger = %location, users, "list_users indexes built");
    }
    if found < LEDGER_FORMAT {
        tracing::info!(ledger = %location, from = found, to = LEDGER_FORMAT, "ledger format migrated");
    }
    txn.open_table(tables::META)?
        .insert(FORMAT_KEY, LEDGER_FORMAT.to_le_bytes().as_slice())?;
    txn.commit()?;
    Ok(())
}

fn decode_version(bytes: &[u8]) -> Option<u32> {
    Some(u32::from_le_bytes(bytes.try_into().ok()?))
}

/// Rewrites the rows that stored API types: rejected items, nodes and runs.
fn from_1_to_2(txn: &redb::WriteTransaction) -> Result<(), StoreError> {
    let mut rejected = txn.open_table(tables::REJECTED)?;
    let old: Vec<(u64, v1::RejectedRow)> = rejected
        .iter()?
        .map(|e| {
            let (k, v) = e?;
            Ok((
                k.value(),
                codec::decode_owned(v.value(), "rejected item (format 1)")?,
            ))
        })
        .collect::<Result<_, StoreError>>()?;
    for (id, row) in old {
        rejected.insert(id, codec::to_bytes(&row.upgrade())?.as_slice())?;
    }
    let mut nodes = txn.open_table(tables::NODES)?;
    let old: Vec<(String, v1::NodeRow)> = nodes
        .iter()?
        .map(|e| {
            let (k, v) = e?;
            Ok((
                k.value().to_string(),
                codec::decode_owned(v.value(), "node (format 1)")?,
            ))
        })
        .collect::<Result<_, StoreError>>()?;
    for (name, row) in old {
        nodes.insert(name.as_str(), codec::to_bytes(&row.upgrade())?.as_slice())?;
    }
    let mut runs = txn.open_table(tables::RUNS)?;
    let old: Vec<(u64, v1::Summary)> = runs
        .iter()?
        .map(|e| {
            let (k, v) = e?;
            Ok((k.value(), codec::decode_owned(v.value(), "run (format 1)")?))
        })
        .collect::<Result<_, StoreError>>()?;
    for (id, summary) in old {
        runs.insert(id, codec::to_bytes(&summary.upgrade())?.as_slice())?;
    }
    Ok(())
}

/// The rows of format 1, frozen: the API types as they were then, in the
/// same field and variant order, decoded by position.
mod v1 {
    use super::*;

    #[derive(Deserialize)]
    enum Reason {
        Conflict,
        Invalid,
        UnknownUser,
        Unparseable,
        TooLarge,
        TooManyRecords,
        InvalidName,
    }

    #[derive(Deserialize)]
    enum Status {
        Ok,
        Error,
    }

    #[derive(Deserialize)]
    struct Consumed {
        idempotency_key: String,
        user_sid: String,
        node_name: String,
        cost_cents: i64,
        applied_at: String,
        commit_sha: String,
        file_path: String,
    }

    #[derive(Deserialize)]
    pub(super) struct RejectedRow {
        reason: Reason,
        node_name: String,
        file_path: String,
        blob_id: String,
        commit_sha: String,
        record_index: Option<u32>,
        idempotency_key: Option<String>,
        user_sid: Option<String>,
        cost_cents: Option<i64>,
        detail: String,
        existing: Option<Consumed>,
        first_seen_ms: u64,
        fingerprint: Option<String>,
    }

    #[derive(Deserialize)]
    pub(super) struct NodeRow {
        tree_id: Option<String>,
        last_commit_sha: Option<String>,
        last_run_at_ms: Option<u64>,
        records_consumed_total: u64,
        status: Status,
        last_error: Option<String>,
    }

    #[derive(Deserialize)]
    struct NodeError {
        node_name: Option<String>,
        message: String,
    }

    #[derive(Deserialize)]
    pub(super) struct Summary {
        run_id: u64,
        started_at: String,
        finished_at: String,
        head_commit: Option<String>,
        nodes_total: u64,
        nodes_skipped: u64,
        files_read: u64,
        files_rejected: u64,
        records_applied: u64,
        records_duplicate: u64,
        records_conflict: u64,
        records_pending: u64,
        records_invalid: u64,
        cents_debited: i64,
        errors: Vec<NodeError>,
    }

    impl Reason {
        fn upgrade(self) -> RejectReason {
            match self {
                Reason::Conflict => RejectReason::Conflict,
                Reason::Invalid => RejectReason::Invalid,
                Reason::UnknownUser => RejectReason::UnknownUser,
                Reason::Unparseable => RejectReason::Unparseable,
                Reason::TooLarge => RejectReason::TooLarge,
                Reason::TooManyRecords => RejectReason::TooManyRecords,
                Reason::InvalidName => RejectReason::InvalidName,
            }
        }
    }

    impl RejectedRow {
        pub(super) fn upgrade(self) -> super::RejectedRow {
            super::RejectedRow {
                reason: self.reason.upgrade(),
                node_name: self.node_name,
                file_path: self.file_path,
                blob_id: self.blob_id,
                commit_sha: self.commit_sha,
                record_index: self.record_index,
                idempotency_key: self.idempotency_key,
                user_sid: self.user_sid,
                cost_cents: self.cost_cents,
                detail: self.detail,
                existing: self.existing.map(|c| ConsumedRecord {
                    idempotency_key: c.idempotency_key,
                    user_sid: c.user_sid,
                    node_name: c.node_name,
                    cost_cents: c.cost_cents,
                    resource: None,
                    applied_at: c.applied_at,
                    commit_sha: c.commit_sha,
                    file_path: c.file_path,
                }),
                first_seen_ms: self.first_seen_ms,
                fingerprint: self.fingerprint,
            }
        }
    }

    impl NodeRow {
        pub(super) fn upgrade(self) -> super::NodeRow {
            super::NodeRow {
                tree_id: self.tree_id,
                last_commit_sha: self.last_commit_sha,
                last_run_at_ms: self.last_run_at_ms,
                records_consumed_total: self.records_consumed_total,
                status: match self.status {
                    Status::Ok => NodeStatus::Ok,
                    Status::Error => NodeStatus::Error,
                },
                last_error: self.last_error,
            }
        }
    }

    impl Summary {
        pub(super) fn upgrade(self) -> RunRow {
            RunRow::from_api(&billing_api::AggregateSummary {
                run_id: self.run_id,
                started_at: self.started_at,
                finished_at: self.finished_at,
                head_commit: self.head_commit,
                nodes_total: self.nodes_total,
                nodes_skipped: self.nodes_skipped,
                files_read: self.files_read,
                files_rejected: self.files_rejected,
                records_applied: self.records_applied,
                records_duplicate: self.records_duplicate,
                records_conflict: self.records_conflict,
                records_pending: self.records_pending,
                records_invalid: self.records_invalid,
                cents_debited: self.cents_debited,
                errors: self
                    .errors
                    .into_iter()
                    .map(|e| billing_api::NodeError {
                        node_name: e.node_name,
                        message: e.message,
                    })
                    .collect(),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::RedbStore;

    #[test]
    fn a_new_ledger_is_stamped_and_a_newer_one_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ledger.redb");
        drop(RedbStore::open(&path).unwrap());
        let db = Database::create(&path).unwrap();
        {
            let txn = db.begin_write().unwrap();
            let mut meta = txn.open_table(tables::META).unwrap();
            let stamped = meta.get(FORMAT_KEY).unwrap().map(|b| b.value().to_vec());
            assert_eq!(stamped, Some(LEDGER_FORMAT.to_le_bytes().to_vec()));
            meta.insert(FORMAT_KEY, 99u32.to_le_bytes().as_slice())
                .unwrap();
            drop(meta);
            txn.commit().unwrap();
        }
        drop(db);
        let Err(err) = RedbStore::open(&path) else {
            panic!("a ledger of a newer format was opened")
        };
        let err = err.to_string();
        assert!(
            err.contains("format version 99")
                && err.contains(&format!("rpc-server's {LEDGER_FORMAT}")),
            "{err}"
        );
    }
}
