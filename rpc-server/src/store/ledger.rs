//! Applying usage: the exactly-once core. `Ledger` holds the open tables of one
//! write transaction, caches the users it touches and writes each of them, the
//! counters and the node totals once, in `finish`.

use std::collections::HashMap;

use billing_api::otoml::MAX_KEY_BYTES;
use billing_api::{ConsumedRecord, RejectReason, RejectedItem};
use redb::{ReadableTable, Table, WriteTransaction};

use super::codec::{
    self, ConsumedGroup, ConsumedRow, META_KEY, MetaRow, NodeRow, PendingRow, RejectedRow,
    SourceRow, UserRow,
};
use super::{
    InvalidRecord, NodeOutcome, Page, Store, StoreError, UsageRecord, bad_cursor, clamp_limit,
    page, seq_cursor, tables,
};

/// Where a record came from.
#[derive(Clone, Copy)]
pub(crate) struct Provenance<'a> {
    pub node: &'a str,
    pub commit: &'a str,
    pub path: &'a str,
    pub blob: &'a str,
}

pub(crate) struct CachedUser {
    pub row: UserRow,
    /// Balance when first read in this transaction (0 for a new user).
    balance_before: i64,
    is_new: bool,
    pub dirty: bool,
    /// Consumed seqs applied to this user in this transaction, ascending.
    new_seqs: Vec<u64>,
}

/// The open tables of one write transaction plus the state written back at the end.
pub(crate) struct Ledger<'t> {
    pub now_ms: u64,
    pub meta: MetaRow,
    pub outcome: NodeOutcome,
    meta_table: Table<'t, &'static str, &'static [u8]>,
    users: Table<'t, &'static str, &'static [u8]>,
    consumed_keys: Table<'t, &'static str, u64>,
    consumed_log: Table<'t, u64, &'static [u8]>,
    sources: Table<'t, u64, &'static [u8]>,
    /// The source the last applied record was written with.
    current_source: Option<(u64, SourceRow)>,
    user_consumed: Table<'t, u64, &'static [u8]>,
    pending: Table<'t, &'static str, &'static [u8]>,
    user_pending: Table<'t, (&'static str, &'static str), ()>,
    pub(super) rejected: Table<'t, u64, &'static [u8]>,
    fingerprints: Table<'t, &'static str, u64>,
    pub(super) rejected_counts: Table<'t, u64, u64>,
    pub(super) tallies: Table<'t, (&'static str, &'static str, &'static str), &'static [u8]>,
    /// The per-record rejections of the file being read (see `tally.rs`).
    pub(super) tally: Option<super::tally::OpenTally>,
    pub nodes: Table<'t, &'static str, &'static [u8]>,
    user_cache: HashMap<String, Option<CachedUser>>,
    /// Records applied per node in this transaction, added to the node totals in `finish`.
    node_applied: HashMap<String, u64>,
    pub(super) buf: Vec<u8>,
}

/// Result of trying to debit one record.
enum Debit {
    Applied,
    /// The key is already in the consumed index; nothing was changed.
    AlreadyApplied,
    Overflow(String),
}

impl<'t> Ledger<'t> {
    pub fn open(txn: &'t WriteTransaction, now_ms: u64) -> Result<Self, StoreError> {
        let meta_table = txn.open_table(tables::META)?;
        let meta = match meta_table.get(META_KEY)? {
            Some(bytes) => codec::decode_owned(bytes.value(), "meta")?,
            None => MetaRow::default(),
        };
        Ok(Ledger {
            now_ms,
            meta,
            outcome: NodeOutcome::default(),
            meta_table,
            users: txn.open_table(tables::USERS)?,
            consumed_keys: txn.open_table(tables::CONSUMED_KEYS)?,
            consumed_log: txn.open_table(tables::CONSUMED_LOG)?,
            sources: txn.open_table(tables::CONSUMED_SOURCES)?,
            current_source: None,
            user_consumed: txn.open_table(tables::USER_CONSUMED)?,
            pending: txn.open_table(tables::PENDING)?,
            user_pending: txn.open_table(tables::USER_PENDING)?,
            rejected: txn.open_table(tables::REJECTED)?,
            fingerprints: txn.open_table(tables::REJECTED_FINGERPRINTS)?,
            rejected_counts: txn.open_table(tables::REJECTED_COUNTS)?,
            tallies: txn.open_table(tables::FILE_TALLIES)?,
            tally: None,
            nodes: txn.open_table(tables::NODES)?,
            user_cache: HashMap::new(),
            node_applied: HashMap::new(),
            buf: Vec::with_capacity(256),
        })
    }

    /// The user, read once per transaction; `None` if not registered.
    pub fn user(&mut self, sid: &str) -> Result<Option<&mut CachedUser>, StoreError> {
        if !self.user_cache.contains_key(sid) {
            let cached = match self.users.get(sid)? {
                Some(bytes) => {
                    let row: UserRow = codec::decode_owned(bytes.value(), "user")?;
                    Some(CachedUser {
                        balance_before: row.balance_cents,
                        row,
                        is_new: false,
                        dirty: false,
                        new_seqs: Vec::new(),
                    })
                }
                None => None,
            };
            self.user_cache.insert(sid.to_string(), cached);
        }
        Ok(self.user_cache.get_mut(sid).and_then(Option::as_mut))
    }

    /// Creates a user that `user` reported missing; allocates its id.
    pub fn create_user(&mut self, sid: &str, mut row: UserRow) {
        self.meta.user_seq += 1;
        row.id = self.meta.user_seq;
        self.user_cache.insert(
            sid.to_string(),
            Some(CachedUser {
                balance_before: 0,
                row,
                is_new: true,
                dirty: true,
                new_seqs: Vec::new(),
            }),
        );
    }

    /// Adds `amount` to the user's balance and total paid, checking every sum first.
    pub fn credit(&mut self, sid: &str, amount: i64) -> Result<(), StoreError> {
        let user = self.user(sid)?.ok_or_else(|| StoreError::NotFound {
            what: "user",
            key: sid.to_string(),
        })?;
        let overflow = |what: &str| {
            StoreError::Overflow(format!(
                "crediting {amount} cents to user `{sid}` would overflow {what}"
            ))
        };
        let balance = user
            .row
            .balance_cents
            .checked_add(amount)
            .ok_or_else(|| overflow("the balance"))?;
        let paid = user
            .row
            .paid_cents
            .checked_add(amount)
            .ok_or_else(|| overflow("the total paid"))?;
        user.row.balance_cents = balance;
        user.row.paid_cents = paid;
        user.dirty = true;
        self.meta.counts.total_balance_cents += i128::from(amount);
        Ok(())
    }

    /// Debits a record of a known user and writes its consumed-index rows,
    /// unless its key is already applied.
    fn debit(
        &mut self,
        key: &str,
        sid: &str,
        node: &str,
        cost: i64,
        commit: &str,
        path: &str,
    ) -> Result<Debit, StoreError> {
        let Some(user) = self.user(sid)? else {
            return Err(StoreError::Storage(format!(
                "user `{sid}` vanished while applying record `{key}`"
            )));
        };
        // The sum of all balances is 128-bit, so only this user's own figures can
        // refuse a record. And only its total consumed, in fact: payments are > 0
        // and consumed <= i64::MAX keep balance = paid - consumed >= -i64::MAX. No
        // later payment lowers the total consumed, so such a record is invalid for
        // good, not worth retrying (`docs/otoml.md`).
        let balance = user.row.balance_cents.checked_sub(cost);
        let consumed = user.row.consumed_cents.checked_add(cost);
        let (Some(balance), Some(consumed)) = (balance, consumed) else {
            // A balance past i64::MIN implies a total consumed past i64::MAX (see above).
            let what = if consumed.is_none() {
                "the user's total consumed"
            } else {
                "the user's balance"
            };
            let reason = format!(
                "applying {cost} cents to user `{sid}` (balance {} cents, consumed {} cents) \
                 would overflow {what} (a 64-bit amount); the record was not applied: check the \
                 cost on the node",
                user.row.balance_cents, user.row.consumed_cents
            );
            if self.consumed_keys.get(key)?.is_some() {
                return Ok(Debit::AlreadyApplied);
            }
            return Ok(Debit::Overflow(reason));
        };

        // Claim the key first: `insert` returns what was there, so a new key
        // costs one tree walk instead of a lookup plus an insert.
        let seq = self.meta.consumed_seq + 1;
        let previous = self.consumed_keys.insert(key, seq)?.map(|g| g.value());
        if let Some(old) = previous {
            self.consumed_keys.insert(key, old)?;
            return Ok(Debit::AlreadyApplied);
        }
        self.meta.consumed_seq = seq;
        let user = self
            .user_cache
            .get_mut(sid)
            .and_then(Option::as_mut)
            .expect("user was cached above");
        user.row.balance_cents = balance;
        user.row.consumed_cents = consumed;
        user.dirty = true;
        user.new_seqs.push(seq);
        self.meta.counts.total_balance_cents -= i128::from(cost);
        // A report figure, like the pass summary: it must never decide whether money moves.
        self.outcome.cents_debited = self.outcome.cents_debited.saturating_add(cost);

        let source = self.source_id(node, commit, path)?;
        let row = ConsumedRow {
            key,
            user_sid: sid,
            cost_cents: cost,
            source,
        };
        codec::encode(&row, &mut self.buf)?;
        self.consumed_log.insert(seq, self.buf.as_slice())?;
        self.meta.counts.consumed_records += 1;
        self.outcome.applied += 1;
        match self.node_applied.get_mut(node) {
            Some(n) => *n += 1,
            None => {
                self.node_applied.insert(node.to_string(), 1);
            }
        }
        Ok(Debit::Applied)
    }

    /// Id of the source row for records applied now from `path`; records of
    /// one file in a row share one.
    fn source_id(&mut self, node: &str, commit: &str, path: &str) -> Result<u64, StoreError> {
        if let Some((id, s)) = &self.current_source
            && s.file_path == path
            && s.commit_sha == commit
            && s.node_name == node
        {
            return Ok(*id);
        }
        self.meta.source_seq += 1;
        let id = self.meta.source_seq;
        let row = SourceRow {
            node_name: node.to_string(),
            commit_sha: commit.to_string(),
            file_path: path.to_string(),
            applied_at_ms: self.now_ms,
        };
        codec::encode(&row, &mut self.buf)?;
        self.sources.insert(id, self.buf.as_slice())?;
        self.current_source = Some((id, row));
        Ok(id)
    }

    /// The applied version of `key`, if any.
    fn consumed(&self, key: &str) -> Result<Option<ConsumedRecord>, StoreError> {
        let Some(seq) = self.consumed_keys.get(key)?.map(|g| g.value()) else {
            return Ok(None);
        };
        let bytes = self.consumed_log.get(seq)?.ok_or_else(|| {
            StoreError::Storage(format!(
                "consumed index names row {seq} for key `{key}` but the row is missing"
            ))
        })?;
        let row: ConsumedRow = codec::decode(bytes.value(), "consumed record")?;
        let source = load_source(&self.sources, row.source)?;
        Ok(Some(row.to_api(&source)))
    }

    /// One valid record: dedup, then apply or hold.
    pub fn record(
        &mut self,
        from: Provenance<'_>,
        index: u32,
        rec: &UsageRecord,
    ) -> Result<(), StoreError> {
        let key = rec.idempotency_key.as_str();
        if rec.cost_cents < 0 || rec.node_name != from.node {
            let reason = if rec.cost_cents < 0 {
                format!("cost_cents must be >= 0, got {}", rec.cost_cents)
            } else {
                format!(
                    "node_name `{}` differs from the directory node `{}`",
                    rec.node_name, from.node
                )
            };
            return self.invalid_record(from, index, Some(key), Some(&rec.user_sid), &reason, "");
        }
        if self.meta.counts.pending_records > 0 {
            let held = match self.pending.get(key)? {
                Some(bytes) => Some(codec::decode_owned::<PendingRow>(
                    bytes.value(),
                    "held record",
                )?),
                None => None,
            };
            if let Some(held) = held {
                if same_charge(rec, &held.user_sid, &held.node_name, held.cost_cents) {
                    self.outcome.duplicate += 1;
                    return Ok(());
                }
                self.outcome.conflict += 1;
                let detail = format!(
                    "idempotency key `{key}` is already held (user not registered yet) as user \
                     `{}`, node `{}`, {} cents (commit {}, file {}); this record says user `{}`, \
                     node `{}`, {} cents. Only the held version will be applied: if this is a new \
                     charge, give it a new key on the node",
                    held.user_sid,
                    held.node_name,
                    held.cost_cents,
                    held.commit_sha,
                    held.file_path,
                    rec.user_sid,
                    rec.node_name,
                    rec.cost_cents
                );
                return self.conflict(from, index, rec, detail, None);
            }
        }
        if self.user(&rec.user_sid)?.is_none() {
            if self.consumed_keys.get(key)?.is_some() {
                return self.already_applied(from, index, rec);
            }
            return self.hold(from, index, rec);
        }
        match self.debit(
            key,
            &rec.user_sid,
            &rec.node_name,
            rec.cost_cents,
            from.commit,
            from.path,
        )? {
            Debit::Applied => Ok(()),
            Debit::AlreadyApplied => self.already_applied(from, index, rec),
            Debit::Overflow(reason) => {
                self.invalid_record(from, index, Some(key), Some(&rec.user_sid), &reason, "")
            }
        }
    }

    /// A record whose key is in the consumed index: a duplicate or a conflict.
    fn already_applied(
        &mut self,
        from: Provenance<'_>,
        index: u32,
        rec: &UsageRecord,
    ) -> Result<(), StoreError> {
        let key = rec.idempotency_key.as_str();
        let existing = self.consumed(key)?.ok_or_else(|| {
            StoreError::Storage(format!(
                "key `{key}` left the consumed index mid-transaction"
            ))
        })?;
        if same_charge(
            rec,
            &existing.user_sid,
            &existing.node_name,
            existing.cost_cents,
        ) {
            self.outcome.duplicate += 1;
            return Ok(());
        }
        self.outcome.conflict += 1;
        let detail = format!(
            "idempotency key `{key}` was already applied as user `{}`, node `{}`, {} cents \
             (commit {}, file {}); this record says user `{}`, node `{}`, {} cents. Nothing \
             was changed: if this is a new charge, give it a new key on the node; if the \
             applied version is right, no action is needed",
            existing.user_sid,
            existing.node_name,
            existing.cost_cents,
            existing.commit_sha,
            existing.file_path,
            rec.user_sid,
            rec.node_name,
            rec.cost_cents
        );
        self.conflict(from, index, rec, detail, Some(existing))
    }

    fn conflict(
        &mut self,
        from: Provenance<'_>,
        index: u32,
        rec: &UsageRecord,
        detail: String,
        existing: Option<ConsumedRecord>,
    ) -> Result<(), StoreError> {
        if !self.sample(from, index, "conflict")? {
            return Ok(());
        }
        let fingerprint = format!(
            "conflict\0{}\0{}\0{}\0{}",
            rec.idempotency_key, rec.user_sid, rec.node_name, rec.cost_cents
        );
        self.reject(
            RejectedRow {
                reason: RejectReason::Conflict,
                node_name: from.node.to_string(),
                file_path: from.path.to_string(),
                blob_id: from.blob.to_string(),
                commit_sha: from.commit.to_string(),
                record_index: Some(index),
                idempotency_key: Some(rec.idempotency_key.clone()),
                user_sid: Some(rec.user_sid.clone()),
                cost_cents: Some(rec.cost_cents),
                detail,
                existing,
                first_seen_ms: self.now_ms,
                fingerprint: None,
            },
            fingerprint,
        )
    }

    /// An invalid record of a decoded file.
    pub fn invalid(&mut self, from: Provenance<'_>, rec: &InvalidRecord) -> Result<(), StoreError> {
        let index = u32::try_from(rec.index).unwrap_or(u32::MAX);
        self.invalid_record(
            from,
            index,
            rec.idempotency_key.as_deref(),
            rec.user_sid.as_deref(),
            &rec.reason,
            &rec.raw,
        )
    }

    fn invalid_record(
        &mut self,
        from: Provenance<'_>,
        index: u32,
        key: Option<&str>,
        sid: Option<&str>,
        reason: &str,
        raw: &str,
    ) -> Result<(), StoreError> {
        self.outcome.invalid += 1;
        if !self.sample(from, index, reason)? {
            return Ok(());
        }
        // Content-based, so a re-commit of the same bad record adds no second item.
        let fingerprint = format!(
            "invalid\0{}\0{}\0{index}\0{}\0{reason}\0{raw}",
            from.node,
            from.path,
            key.unwrap_or("")
        );
        let mut detail = format!(
            "record {index} of {} is invalid: {reason}. It was not applied; the rest of the file \
             was. Fix the record on the node with a new idempotency key, or leave it out",
            from.path
        );
        if !raw.is_empty() {
            detail.push_str("; as written: ");
            detail.push_str(raw.trim_end());
        }
        self.reject(
            RejectedRow {
                reason: RejectReason::Invalid,
                node_name: from.node.to_string(),
                file_path: from.path.to_string(),
                blob_id: from.blob.to_string(),
                commit_sha: from.commit.to_string(),
                record_index: Some(index),
                idempotency_key: key.map(str::to_string),
                user_sid: sid.map(str::to_string),
                cost_cents: None,
                detail,
                existing: None,
                first_seen_ms: self.now_ms,
                fingerprint: None,
            },
            fingerprint,
        )
    }

    /// A whole file that was not read.
    pub fn reject_file(
        &mut self,
        from: Provenance<'_>,
        reason: RejectReason,
        detail: String,
    ) -> Result<(), StoreError> {
        self.outcome.files_rejected += 1;
        let fingerprint = file_fingerprint(reason, from);
        self.reject(
            RejectedRow {
                reason,
                node_name: from.node.to_string(),
                file_path: from.path.to_string(),
                blob_id: from.blob.to_string(),
                commit_sha: from.commit.to_string(),
                record_index: None,
                idempotency_key: None,
                user_sid: None,
                cost_cents: None,
                detail,
                existing: None,
                first_seen_ms: self.now_ms,
                fingerprint: None,
            },
            fingerprint,
        )
    }

    /// Removes the whole-file rejection of `from` for `reason`, if any: the
    /// file was read after all (e.g. an oversize file under a raised limit).
    pub fn resolve_file(
        &mut self,
        from: Provenance<'_>,
        reason: RejectReason,
    ) -> Result<(), StoreError> {
        let fingerprint = file_fingerprint(reason, from);
        let Some(id) = self
            .fingerprints
            .remove(fingerprint.as_str())?
            .map(|id| id.value())
        else {
            return Ok(());
        };
        if self.rejected.remove(id)?.is_some() {
            self.meta.counts.rejected_items -= 1;
        }
        Ok(())
    }

    /// Stores a rejected item unless one with the same fingerprint exists.
    fn reject(&mut self, mut row: RejectedRow, fingerprint: String) -> Result<(), StoreError> {
        if self.fingerprints.get(fingerprint.as_str())?.is_some() {
            return Ok(());
        }
        let id = self.next_rejected_id();
        self.fingerprints.insert(fingerprint.as_str(), id)?;
        row.fingerprint = Some(fingerprint);
        codec::encode(&row, &mut self.buf)?;
        self.rejected.insert(id, self.buf.as_slice())?;
        self.meta.counts.rejected_items += 1;
        Ok(())
    }

    pub(super) fn next_rejected_id(&mut self) -> u64 {
        self.meta.rejected_seq += 1;
        self.meta.rejected_seq
    }

    /// Holds a record of an unknown user, visible as an `unknown_user` rejection.
    fn hold(
        &mut self,
        from: Provenance<'_>,
        index: u32,
        rec: &UsageRecord,
    ) -> Result<(), StoreError> {
        let rejected_id = self.next_rejected_id();
        let reject = RejectedRow {
            reason: RejectReason::UnknownUser,
            node_name: from.node.to_string(),
            file_path: from.path.to_string(),
            blob_id: from.blob.to_string(),
            commit_sha: from.commit.to_string(),
            record_index: Some(index),
            idempotency_key: Some(rec.idempotency_key.clone()),
            user_sid: Some(rec.user_sid.clone()),
            cost_cents: Some(rec.cost_cents),
            detail: format!(
                "user `{}` is not registered; the record is held and will be applied as soon as \
                 the user is registered (register_user)",
                rec.user_sid
            ),
            existing: None,
            first_seen_ms: self.now_ms,
            fingerprint: None,
        };
        codec::encode(&reject, &mut self.buf)?;
        self.rejected.insert(rejected_id, self.buf.as_slice())?;
        let held = PendingRow {
            user_sid: rec.user_sid.clone(),
            node_name: rec.node_name.clone(),
            cost_cents: rec.cost_cents,
            commit_sha: from.commit.to_string(),
            file_path: from.path.to_string(),
            blob_id: from.blob.to_string(),
            record_index: index,
            first_seen_ms: self.now_ms,
            rejected_id,
        };
        codec::encode(&held, &mut self.buf)?;
        self.pending
            .insert(rec.idempotency_key.as_str(), self.buf.as_slice())?;
        self.user_pending
            .insert((rec.user_sid.as_str(), rec.idempotency_key.as_str()), ())?;
        self.meta.counts.pending_records += 1;
        self.meta.counts.rejected_items += 1;
        self.outcome.pending += 1;
        Ok(())
    }

    /// Users with held records, in sid order. Skips from user to user rather
    /// than reading every held record.
    pub fn held_users(&self) -> Result<Vec<String>, StoreError> {
        // Sorts after every key of at most MAX_KEY_BYTES bytes: valid UTF-8 never
        // exceeds the bytes of U+10FFFF.
        let after_all_keys = "\u{10FFFF}".repeat(MAX_KEY_BYTES / 4 + 1);
        let mut sids: Vec<String> = Vec::new();
        loop {
            let next = match sids.last() {
                None => self.user_pending.range::<(&str, &str)>(..)?.next(),
                Some(sid) => self
                    .user_pending
                    .range((sid.as_str(), after_all_keys.as_str())..)?
                    .next(),
            };
            let Some(entry) = next else { break };
            let (k, _) = entry?;
            sids.push(k.value().0.to_string());
        }
        Ok(sids)
    }

    /// Applies every record held for `sid` (who must now exist).
    pub fn apply_held(&mut self, sid: &str) -> Result<(), StoreError> {
        let mut keys = Vec::new();
        for entry in self.user_pending.range((sid, "")..)? {
            let (k, _) = entry?;
            let (user, key) = k.value();
            if user != sid {
                break;
            }
            keys.push(key.to_string());
        }
        for key in keys {
            let held: PendingRow = match self.pending.remove(key.as_str())? {
                Some(bytes) => codec::decode_owned(bytes.value(), "held record")?,
                None => {
                    return Err(StoreError::Storage(format!(
                        "held-record index names key `{key}` of user `{sid}` but the record is \
                         missing"
                    )));
                }
            };
            self.user_pending.remove((sid, key.as_str()))?;
            if self.rejected.remove(held.rejected_id)?.is_some() {
                self.meta.counts.rejected_items -= 1;
            }
            self.meta.counts.pending_records -= 1;
            let from = Provenance {
                node: &held.node_name,
                commit: &held.commit_sha,
                path: &held.file_path,
                blob: &held.blob_id,
            };
            match self.debit(
                &key,
                sid,
                &held.node_name,
                held.cost_cents,
                &held.commit_sha,
                &held.file_path,
            )? {
                Debit::Applied => {}
                // Holding checks the consumed index, so this cannot happen; never apply twice.
                Debit::AlreadyApplied => self.outcome.duplicate += 1,
                // Only the user's own total consumed can overflow (see `debit`), and no
                // payment lowers it: retrying would never succeed.
                Debit::Overflow(reason) => self.invalid_record(
                    from,
                    held.record_index,
                    Some(&key),
                    Some(sid),
                    &reason,
                    "",
                )?,
            }
        }
        Ok(())
    }

    /// Writes the node's state after a pass (its total is added in `finish`).
    pub fn set_node_state(
        &mut self,
        node: &str,
        update: impl FnOnce(&mut NodeRow),
    ) -> Result<(), StoreError> {
        let mut row = match self.nodes.get(node)? {
            Some(bytes) => codec::decode_owned(bytes.value(), "node")?,
            None => NodeRow::default(),
        };
        update(&mut row);
        codec::encode(&row, &mut self.buf)?;
        self.nodes.insert(node, self.buf.as_slice())?;
        Ok(())
    }

    /// Writes back touched users, node totals and counters.
    pub fn finish(mut self) -> Result<NodeOutcome, StoreError> {
        self.flush_tally()?;
        let mut buf = std::mem::take(&mut self.buf);
        for (sid, cached) in &self.user_cache {
            let Some(user) = cached else { continue };
            if !user.dirty {
                continue;
            }
            if user.is_new {
                self.meta.counts.total_users += 1;
            }
            let was_overdrawn = user.balance_before < 0;
            let is_overdrawn = user.row.balance_cents < 0;
            if was_overdrawn && !is_overdrawn {
                self.meta.counts.overdrawn_users -= 1;
            } else if !was_overdrawn && is_overdrawn {
                self.meta.counts.overdrawn_users += 1;
            }
            let mut row = user.row.clone();
            if !user.new_seqs.is_empty() {
                self.meta.group_seq += 1;
                let group = self.meta.group_seq;
                ConsumedGroup::encode(row.id, row.last_group, &user.new_seqs, &mut buf);
                self.user_consumed.insert(group, buf.as_slice())?;
                row.last_group = group;
            }
            codec::encode(&row, &mut buf)?;
            self.users.insert(sid.as_str(), buf.as_slice())?;
        }
        let node_applied = std::mem::take(&mut self.node_applied);
        for (node, applied) in node_applied {
            self.set_node_state(&node, |row| {
                row.records_consumed_total = row.records_consumed_total.saturating_add(applied)
            })?;
        }
        codec::encode(&self.meta, &mut buf)?;
        self.meta_table.insert(META_KEY, buf.as_slice())?;
        Ok(self.outcome)
    }
}

fn load_source(
    table: &impl ReadableTable<u64, &'static [u8]>,
    id: u64,
) -> Result<SourceRow, StoreError> {
    let bytes = table.get(id)?.ok_or_else(|| {
        StoreError::Storage(format!("source row {id} of consumed records is missing"))
    })?;
    codec::decode_owned(bytes.value(), "consumed source")
}

impl Store {
    /// Applies every held record whose user now exists. `register_user` already
    /// does this for its user; this is the safety net each pass runs.
    pub fn apply_pending(&self, now_ms: u64) -> Result<NodeOutcome, StoreError> {
        self.write("apply held records", |txn| {
            let mut ledger = Ledger::open(txn, now_ms)?;
            if ledger.meta.counts.pending_records == 0 {
                return Ok(NodeOutcome::default());
            }
            for sid in ledger.held_users()? {
                if ledger.user(&sid)?.is_some() {
                    ledger.apply_held(&sid)?;
                }
            }
            ledger.finish()
        })
    }

    /// Applied records, newest first; only `user_sid`'s if given.
    pub fn list_consumed(
        &self,
        user_sid: Option<&str>,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<Page<ConsumedRecord>, StoreError> {
        let limit = clamp_limit(limit);
        // Per user the cursor is `group:seq` (where the walk of the group chain
        // stopped); otherwise a plain seq.
        let (group_cursor, before) = match (user_sid, cursor) {
            (Some(_), Some(c)) => {
                let parsed = c
                    .split_once(':')
                    .and_then(|(g, s)| Some((g.parse::<u64>().ok()?, s.parse::<u64>().ok()?)));
                match parsed {
                    Some((g, s)) => (Some(g), s),
                    None => return Err(bad_cursor(c)),
                }
            }
            _ => (None, seq_cursor(cursor)?.unwrap_or(u64::MAX)),
        };
        self.read("list consumed records", |txn| {
            let log = txn.open_table(tables::CONSUMED_LOG)?;
            let sources = txn.open_table(tables::CONSUMED_SOURCES)?;
            let mut source_cache: HashMap<u64, SourceRow> = HashMap::new();
            let mut items = Vec::with_capacity(limit + 1);
            let mut push = |cursor: String, seq: u64| -> Result<(), StoreError> {
                let bytes = log
                    .get(seq)?
                    .ok_or_else(|| StoreError::Storage(format!("consumed row {seq} is missing")))?;
                let row: ConsumedRow = codec::decode(bytes.value(), "consumed record")?;
                let source = match source_cache.entry(row.source) {
                    std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
                    std::collections::hash_map::Entry::Vacant(e) => {
                        e.insert(load_source(&sources, row.source)?)
                    }
                };
                items.push((cursor, row.to_api(source)));
                Ok(())
            };
            match user_sid {
                Some(sid) => {
                    let user: UserRow = match txn.open_table(tables::USERS)?.get(sid)? {
                        Some(bytes) => codec::decode_owned(bytes.value(), "user")?,
                        None => {
                            return Err(StoreError::NotFound {
                                what: "user",
                                key: sid.to_string(),
                            });
                        }
                    };
                    let index = txn.open_table(tables::USER_CONSUMED)?;
                    let mut group_id = group_cursor.unwrap_or(user.last_group);
                    let mut taken = 0;
                    'groups: while group_id != 0 {
                        let group = match index.get(group_id)? {
                            Some(bytes) => ConsumedGroup::decode(bytes.value())?,
                            None if group_cursor == Some(group_id) => {
                                return Err(bad_cursor(cursor.unwrap_or_default()));
                            }
                            None => {
                                return Err(StoreError::Storage(format!(
                                    "consumed index group {group_id} of user `{sid}` is missing"
                                )));
                            }
                        };
                        if group.user_id != user.id {
                            return Err(bad_cursor(cursor.unwrap_or_default()));
                        }
                        for &seq in group.seqs.iter().rev().filter(|&&s| s < before) {
                            push(format!("{group_id}:{seq}"), seq)?;
                            taken += 1;
                            if taken > limit {
                                break 'groups;
                            }
                        }
                        group_id = group.prev;
                    }
                }
                None => {
                    let mut seqs = Vec::with_capacity(limit + 1);
                    for entry in log.range(..before)?.rev().take(limit + 1) {
                        seqs.push(entry?.0.value());
                    }
                    for seq in seqs {
                        push(seq.to_string(), seq)?;
                    }
                }
            }
            Ok(page(items, limit))
        })
    }

    /// Held and rejected records and files, newest first.
    pub fn list_rejected(
        &self,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<Page<RejectedItem>, StoreError> {
        let limit = clamp_limit(limit);
        let before = seq_cursor(cursor)?.unwrap_or(u64::MAX);
        self.read("list rejected items", |txn| {
            let table = txn.open_table(tables::REJECTED)?;
            let counts = txn.open_table(tables::REJECTED_COUNTS)?;
            let mut items = Vec::with_capacity(limit + 1);
            for entry in table.range(..before)?.rev().take(limit + 1) {
                let (id, bytes) = entry?;
                let id = id.value();
                let row: RejectedRow = codec::decode_owned(bytes.value(), "rejected item")?;
                let mut item = row.to_api(id);
                if row.record_index.is_none() {
                    item.record_count = counts.get(id)?.map(|n| n.value());
                }
                items.push((id.to_string(), item));
            }
            Ok(page(items, limit))
        })
    }
}

/// Dedup key of a whole-file rejection: one item per reason, node, path and blob.
fn file_fingerprint(reason: RejectReason, from: Provenance<'_>) -> String {
    format!(
        "{}\0{}\0{}\0{}",
        reason.as_str(),
        from.node,
        from.path,
        from.blob
    )
}

/// A record repeating a known key is a duplicate when it charges the same
/// user, from the same node, the same amount; anything else is a conflict.
fn same_charge(rec: &UsageRecord, user_sid: &str, node_name: &str, cost_cents: i64) -> bool {
    rec.user_sid == user_sid && rec.node_name == node_name && rec.cost_cents == cost_cents
}
