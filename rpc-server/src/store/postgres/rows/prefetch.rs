//! The batched reads before a chunk applies ([`PgRows::prefetch`]): every
//! user, applied key, held key and file tally the chunk names, in a few
//! statements instead of a round trip per record.

use std::collections::{BTreeSet, HashMap};

use super::super::columns::{
    APPLIED_COLUMNS, PENDING_COLUMNS, TALLY_COLUMNS, USER_COLUMNS, pending_of, tally_of, user_of,
};
use super::super::{db_err, from_db};
use super::{Applied, PgRows};
use crate::store::StoreError;
use crate::store::alerts::user_subject;
use crate::store::chunks::ChunkItem;
use crate::store::codec::SourceRow;
use crate::store::ledger::Rows;

impl PgRows<'_, '_> {
    /// Reads in batches every row that applying `items` of `node` may look up.
    pub fn prefetch(&mut self, node: &str, items: &[ChunkItem]) -> Result<(), StoreError> {
        let mut keys: Vec<&str> = Vec::new();
        let mut sids: BTreeSet<&str> = BTreeSet::new();
        let mut files: BTreeSet<(&str, &str)> = BTreeSet::new();
        for item in items {
            match item {
                ChunkItem::Records {
                    path,
                    blob_id,
                    group,
                } => {
                    files.insert((path, blob_id));
                    for rec in group.records.iter().flatten() {
                        keys.push(&rec.idempotency_key);
                        sids.insert(&rec.user_sid);
                    }
                }
                ChunkItem::Whole { path, blob_id, .. } | ChunkItem::FileEnd { path, blob_id } => {
                    files.insert((path, blob_id));
                }
            }
        }
        let sids: Vec<&str> = sids.into_iter().collect();
        self.prefetch_users(&sids)?;
        self.prefetch_keys(&keys)?;
        if Rows::meta(&mut &mut *self)?.counts.pending_records > 0 {
            let rows = self
                .txn
                .query(
                    &format!(
                        "SELECT {PENDING_COLUMNS} FROM pending WHERE idempotency_key = ANY($1)"
                    ),
                    &[&keys],
                )
                .map_err(db_err)?;
            for key in &keys {
                self.pending.entry(key.to_string()).or_insert(None);
            }
            for row in rows {
                let (key, held) = pending_of(&row);
                self.pending.insert(key, Some(held));
            }
        }
        let (paths, blobs): (Vec<&str>, Vec<&str>) = files.into_iter().unzip();
        let rows = self
            .txn
            .query(
                &format!(
                    "SELECT {TALLY_COLUMNS} FROM file_tallies WHERE node_name = $1 AND \
                     (file_path, blob_id) IN (SELECT * FROM unnest($2::text[], $3::text[]))"
                ),
                &[&node, &paths, &blobs],
            )
            .map_err(db_err)?;
        for (path, blob) in paths.iter().zip(&blobs) {
            self.tallies
                .entry((node.to_string(), path.to_string(), blob.to_string()))
                .or_insert(None);
        }
        for row in rows {
            let (key, tally) = tally_of(&row)?;
            self.tallies.insert(key, Some(tally));
        }
        Rows::node(&mut &mut *self, node)?;
        Ok(())
    }

    /// Reads the rows of `sids` that are not cached yet.
    pub fn prefetch_users(&mut self, sids: &[&str]) -> Result<(), StoreError> {
        let missing = uncached(sids, &self.users);
        if missing.is_empty() {
            return Ok(());
        }
        let rows = self
            .txn
            .query(
                &format!("SELECT {USER_COLUMNS} FROM users WHERE user_sid = ANY($1)"),
                &[&missing],
            )
            .map_err(db_err)?;
        // The alert levels come with the users: a balance change reads them.
        let subjects: Vec<String> = missing.iter().map(|s| user_subject(s)).collect();
        self.alerts.prefetch(self.txn, &subjects)?;
        for sid in &missing {
            self.users.insert(sid.to_string(), None);
        }
        for row in rows {
            let (sid, user) = user_of(&row);
            self.users.insert(sid, Some(user));
        }
        Ok(())
    }

    pub(super) fn prefetch_keys(&mut self, keys: &[&str]) -> Result<(), StoreError> {
        let missing = uncached(keys, &self.keys);
        if missing.is_empty() {
            return Ok(());
        }
        let rows = self
            .txn
            .query(
                // One index probe per key, whatever the planner's statistics
                // say: `OFFSET 0` keeps the subquery from being turned into a
                // join, which a table grown since its last ANALYZE made a
                // sequential scan of the whole index per chunk.
                &format!(
                    "SELECT {APPLIED_COLUMNS} FROM unnest($1::text[]) AS k(key) \
                     CROSS JOIN LATERAL (SELECT * FROM consumed \
                     WHERE idempotency_key = k.key OFFSET 0) c \
                     JOIN consumed_sources s ON s.source_id = c.source_id"
                ),
                &[&missing],
            )
            .map_err(db_err)?;
        for key in &missing {
            self.keys.insert(key.to_string(), None);
        }
        for row in rows {
            let key: String = row.get(0);
            let seq = from_db(row.get(1));
            let source = from_db(row.get(4));
            self.applied.insert(
                seq,
                Applied {
                    seq,
                    user_sid: row.get(2),
                    cost_cents: row.get(3),
                    source,
                    resource: None,
                },
            );
            self.sources.entry(source).or_insert_with(|| SourceRow {
                node_name: row.get(5),
                commit_sha: row.get(6),
                file_path: row.get(7),
                applied_at_ms: from_db(row.get(8)),
            });
            self.keys.insert(key, Some(seq));
        }
        Ok(())
    }
}

/// Those of `wanted` that `cache` holds no entry for (a cached `None` is an
/// answer too: the row does not exist).
fn uncached<'a, V>(wanted: &[&'a str], cache: &HashMap<String, V>) -> Vec<&'a str> {
    wanted
        .iter()
        .copied()
        .filter(|k| !cache.contains_key(*k))
        .collect()
}
