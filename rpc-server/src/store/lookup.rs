//! Many idempotency keys looked up at once, in one snapshot: what the ledger
//! did with each record of a usage file (for `reconcile`).

use billing_api::ConsumedRecord;

use super::codec::{ConsumedRow, SourceRow};
use super::postgres::{db_err, from_db};
use super::redb_rows::load_source;
use super::{PgStore, RedbStore, StoreError, tables};

/// What the ledger holds for one idempotency key.
#[derive(Debug, Clone, PartialEq)]
pub enum KeyState {
    /// Neither applied nor held (it may still be listed as rejected).
    Unknown,
    /// Held until its user is registered.
    Held,
    Applied(ConsumedRecord),
}

impl RedbStore {
    /// The state of each of `keys`, in order.
    pub fn key_states(&self, keys: &[&str]) -> Result<Vec<KeyState>, StoreError> {
        self.read("look up applied records", |txn| {
            let consumed_keys = txn.open_table(tables::CONSUMED_KEYS)?;
            let consumed_log = txn.open_table(tables::CONSUMED_LOG)?;
            let sources = txn.open_table(tables::CONSUMED_SOURCES)?;
            let pending = txn.open_table(tables::PENDING)?;
            keys.iter()
                .map(|key| {
                    if let Some(seq) = consumed_keys.get(*key)? {
                        let seq = seq.value();
                        let bytes = consumed_log.get(seq)?.ok_or_else(|| {
                            StoreError::Storage(format!(
                                "consumed index names row {seq} for key `{key}` but the row is \
                                 missing; run `rpc-server verify`"
                            ))
                        })?;
                        let row = ConsumedRow::decode(bytes.value())?;
                        let source = load_source(&sources, row.source)?;
                        return Ok(KeyState::Applied(row.to_api(&source)));
                    }
                    Ok(if pending.get(*key)?.is_some() {
                        KeyState::Held
                    } else {
                        KeyState::Unknown
                    })
                })
                .collect()
        })
    }
}

impl PgStore {
    /// The state of each of `keys`, in order: one query, one index probe per key.
    pub fn key_states(&self, keys: &[&str]) -> Result<Vec<KeyState>, StoreError> {
        self.read("look up applied records", |txn| {
            let rows = txn
                .query(
                    "SELECT c.user_sid, c.cost_cents, s.node_name, s.commit_sha, s.file_path, \
                     s.applied_at_ms, p.idempotency_key IS NOT NULL, k.key \
                     FROM unnest($1::text[]) WITH ORDINALITY AS k(key, i) \
                     LEFT JOIN LATERAL (SELECT * FROM consumed \
                                        WHERE idempotency_key = k.key OFFSET 0) c ON true \
                     LEFT JOIN consumed_sources s ON s.source_id = c.source_id \
                     LEFT JOIN pending p ON p.idempotency_key = k.key \
                     ORDER BY k.i",
                    &[&keys],
                )
                .map_err(db_err)?;
            Ok(rows
                .iter()
                .map(|r| match r.get::<_, Option<String>>(0) {
                    Some(user_sid) => {
                        let user_sid: String = user_sid;
                        let key: String = r.get(7);
                        let row = ConsumedRow {
                            key: &key,
                            user_sid: &user_sid,
                            cost_cents: r.get(1),
                            source: 0,
                            // Not compared by reconcile.
                            resource: None,
                        };
                        KeyState::Applied(row.to_api(&SourceRow {
                            node_name: r.get(2),
                            commit_sha: r.get(3),
                            file_path: r.get(4),
                            applied_at_ms: from_db(r.get(5)),
                        }))
                    }
                    None if r.get::<_, bool>(6) => KeyState::Held,
                    None => KeyState::Unknown,
                })
                .collect())
        })
    }
}
