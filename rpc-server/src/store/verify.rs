//! Consistency check of the ledger: the stored counters (`META`) against the
//! rows they count, every user's `balance == paid − consumed`, and that the
//! indexes agree with the tables they index.
//!
//! Two depths. `Quick` (run at every open) scans the users table once and
//! compares table lengths, which redb keeps: O(users). `Full`
//! (`rpc-server verify`) also adds up every payment and every applied record
//! per user and compares the sums with the user rows, and looks up every
//! user's entries in the `list_users` indexes: O(users + payments + records).
//!
//! A mismatch found at open makes the store refuse writes (reads still work)
//! until an operator fixes it: `rpc-server verify --repair` rewrites the
//! counters and the `list_users` indexes from the rows; damaged rows need a
//! backup.

use std::collections::HashMap;
use std::time::Instant;

use redb::{ReadTransaction, ReadableTable, ReadableTableMetadata};
use serde::Serialize;
use tracing::error;

use super::codec::{self, META_KEY, MetaRow, PaymentRow, UserRow};
use super::{LedgerCounts, RedbStore, StoreError, tables, user_index};

/// Per-user findings listed in a report; the rest are only counted.
const MAX_LISTED: usize = 20;

/// How much `verify` checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Depth {
    /// Counters, per-user invariant, index lengths: one scan of the users.
    Quick,
    /// Also the sums of payments and applied records per user.
    Full,
}

/// One thing that does not agree.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// What was compared, e.g. `counter total_users` or `user u-0001`.
    pub what: String,
    /// What the ledger says.
    pub stored: String,
    /// What the rows say.
    pub actual: String,
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: stored {}, rows say {}",
            self.what, self.stored, self.actual
        )
    }
}

/// What `verify` found.
#[derive(Debug, Clone, Serialize)]
pub struct VerifyReport {
    pub ledger: String,
    pub depth: Depth,
    pub consistent: bool,
    /// The counters as stored.
    pub stored: LedgerCounts,
    /// The counters recomputed from the rows.
    pub recounted: LedgerCounts,
    pub users_checked: u64,
    /// Listed findings (per-user ones capped at 20; see `more_findings`).
    pub findings: Vec<Finding>,
    /// Findings found but not listed.
    pub more_findings: u64,
    pub elapsed_ms: u64,
}

impl VerifyReport {
    /// One line naming what differs, for errors and health.
    pub fn summary(&self) -> String {
        let mut text = self
            .findings
            .iter()
            .take(3)
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; ");
        let rest = self.findings.len().saturating_sub(3) as u64 + self.more_findings;
        if rest > 0 {
            text += &format!("; and {rest} more");
        }
        text
    }
}

struct Collector {
    findings: Vec<Finding>,
    listed_users: usize,
    more: u64,
}

impl Collector {
    fn add(&mut self, what: String, stored: impl ToString, actual: impl ToString) {
        self.findings.push(Finding {
            what,
            stored: stored.to_string(),
            actual: actual.to_string(),
        });
    }

    fn user(&mut self, what: String, stored: impl ToString, actual: impl ToString) {
        if self.listed_users < MAX_LISTED {
            self.listed_users += 1;
            self.add(what, stored, actual);
        } else {
            self.more += 1;
        }
    }
}

fn stored_meta(txn: &ReadTransaction) -> Result<MetaRow, StoreError> {
    let table = txn.open_table(tables::META)?;
    match table.get(META_KEY)? {
        Some(bytes) => codec::decode_owned(bytes.value(), "meta"),
        None => Ok(MetaRow::default()),
    }
}

impl RedbStore {
    /// Checks the ledger; never changes it.
    pub fn verify(&self, depth: Depth) -> Result<VerifyReport, StoreError> {
        let clock = Instant::now();
        let location = self.shared.location.to_string();
        self.read("verify the ledger", |txn| {
            let stored = stored_meta(txn)?.counts;
            let mut c = Collector {
                findings: Vec::new(),
                listed_users: 0,
                more: 0,
            };
            let mut counts = LedgerCounts::default();
            let mut total: i128 = 0;
            // Per user: (paid, consumed) as the user row says, for the full check.
            let mut user_sums: HashMap<String, (i64, i64)> = HashMap::new();
            let users = txn.open_table(tables::USERS)?;
            let by_balance = txn.open_table(tables::USERS_BY_BALANCE)?;
            let by_consumed = txn.open_table(tables::USERS_BY_CONSUMED)?;
            for entry in users.range::<&str>(..)? {
                let (sid, bytes) = entry?;
                let sid = sid.value();
                counts.total_users += 1;
                let row: UserRow = match codec::decode_owned(bytes.value(), "user") {
                    Ok(row) => row,
                    Err(_) => {
                        c.user(
                            format!("user `{sid}`"),
                            format!("{} bytes", bytes.value().len()),
                            "a row that cannot be decoded",
                        );
                        continue;
                    }
                };
                total += i128::from(row.balance_cents);
                if row.balance_cents < 0 {
                    counts.overdrawn_users += 1;
                }
                let expected = i128::from(row.paid_cents) - i128::from(row.consumed_cents);
                if i128::from(row.balance_cents) != expected {
                    c.user(
                        format!("user `{sid}` balance (must equal paid − consumed)"),
                        row.balance_cents,
                        format!(
                            "{expected} (paid {} − consumed {})",
                            row.paid_cents, row.consumed_cents
                        ),
                    );
                }
                if depth == Depth::Full {
                    user_sums.insert(sid.to_string(), (row.paid_cents, row.consumed_cents));
                    // With the lengths compared below: the indexes hold these entries only.
                    if by_balance.get((row.balance_cents, sid))?.is_none() {
                        c.user(
                            format!("index users_by_balance, user `{sid}`"),
                            "no entry",
                            format!("balance {}", row.balance_cents),
                        );
                    }
                    if by_consumed.get((row.consumed_cents, sid))?.is_none() {
                        c.user(
                            format!("index users_by_consumed, user `{sid}`"),
                            "no entry",
                            format!("consumed {}", row.consumed_cents),
                        );
                    }
                }
            }
            counts.total_balance_cents = total;
            let consumed_keys = txn.open_table(tables::CONSUMED_KEYS)?.len()?;
            let consumed_log = txn.open_table(tables::CONSUMED_LOG)?.len()?;
            let pending = txn.open_table(tables::PENDING)?.len()?;
            let user_pending = txn.open_table(tables::USER_PENDING)?.len()?;
            counts.consumed_records = consumed_keys;
            counts.pending_records = pending;
            counts.rejected_items = txn.open_table(tables::REJECTED)?.len()?;

            let fields = [
                (
                    "total_users",
                    stored.total_users as i128,
                    counts.total_users as i128,
                ),
                ("total_balance_cents", stored.total_balance_cents, total),
                (
                    "overdrawn_users",
                    stored.overdrawn_users.into(),
                    counts.overdrawn_users.into(),
                ),
                (
                    "consumed_records",
                    stored.consumed_records.into(),
                    consumed_keys.into(),
                ),
                (
                    "pending_records",
                    stored.pending_records.into(),
                    pending.into(),
                ),
                (
                    "rejected_items",
                    stored.rejected_items.into(),
                    counts.rejected_items.into(),
                ),
            ];
            for (name, s, a) in fields {
                if s != a {
                    c.add(format!("counter {name}"), s, a);
                }
            }
            if consumed_keys != consumed_log {
                c.add(
                    "index consumed_keys (one key per applied record)".into(),
                    format!("{consumed_keys} keys"),
                    format!("{consumed_log} applied records"),
                );
            }
            for (name, entries) in [
                ("users_by_balance", by_balance.len()?),
                ("users_by_consumed", by_consumed.len()?),
            ] {
                if entries != counts.total_users {
                    c.add(
                        format!("index {name} (one entry per user)"),
                        format!("{entries} entries"),
                        format!("{} users", counts.total_users),
                    );
                }
            }
            if pending != user_pending {
                c.add(
                    "index user_pending (one entry per held record)".into(),
                    format!("{user_pending} entries"),
                    format!("{pending} held records"),
                );
            }
            if depth == Depth::Full {
                full_sums(txn, &user_sums, &mut c)?;
            }
            Ok(VerifyReport {
                ledger: location,
                depth,
                consistent: c.findings.is_empty() && c.more == 0,
                stored,
                recounted: counts,
                users_checked: counts.total_users,
                findings: c.findings,
                more_findings: c.more,
                elapsed_ms: clock.elapsed().as_millis() as u64,
            })
        })
    }

    /// The quick check at open: on a mismatch, refuse writes and say why.
    pub(super) fn check_at_open(&self) -> Result<(), StoreError> {
        let report = self.verify(Depth::Quick)?;
        if !report.consistent {
            let reason = format!(
                "the ledger {} is inconsistent: {}. Reads still work; writes are refused until \
                 an operator fixes it: stop the server, run `rpc-server verify --data-dir <dir>` \
                 for the full report, then `rpc-server verify --data-dir <dir> --repair` to \
                 rewrite the counters and the list_users indexes from the rows (damaged rows \
                 need a backup), and restart",
                report.ledger,
                report.summary()
            );
            error!(%reason, "ledger check at start failed");
            self.refuse_writes(reason);
        }
        Ok(())
    }

    /// Rewrites the stored counters from the rows, and rebuilds the
    /// `list_users` indexes (`rpc-server verify --repair`). Returns the
    /// counters written. Row-level damage is not repaired.
    pub fn repair_counters(&self) -> Result<LedgerCounts, StoreError> {
        let recounted = self.verify(Depth::Quick)?.recounted;
        self.write("rewrite the ledger counters", |txn| {
            user_index::rebuild(txn)?;
            let mut table = txn.open_table(tables::META)?;
            let mut meta: MetaRow = match table.get(META_KEY)? {
                Some(bytes) => codec::decode_owned(bytes.value(), "meta")?,
                None => MetaRow::default(),
            };
            meta.counts = recounted;
            table.insert(META_KEY, codec::to_bytes(&meta)?.as_slice())?;
            Ok(recounted)
        })
    }
}

/// Adds up payments and applied records per user and compares them with the user rows.
fn full_sums(
    txn: &ReadTransaction,
    users: &HashMap<String, (i64, i64)>,
    c: &mut Collector,
) -> Result<(), StoreError> {
    let mut sums: HashMap<&str, (i128, i128)> = HashMap::with_capacity(users.len());
    let mut orphans = 0u64;
    let payments = txn.open_table(tables::PAYMENTS)?;
    for entry in payments.range::<&str>(..)? {
        let (_, bytes) = entry?;
        let row: PaymentRow = codec::decode_owned(bytes.value(), "payment")?;
        match users.get_key_value(row.user_sid.as_str()) {
            Some((sid, _)) => {
                sums.entry(sid.as_str()).or_default().0 += i128::from(row.amount_cents)
            }
            None => orphans += 1,
        }
    }
    let consumed = txn.open_table(tables::CONSUMED_LOG)?;
    for entry in consumed.range::<u64>(..)? {
        let (_, bytes) = entry?;
        let row = codec::ConsumedRow::decode(bytes.value())?;
        match users.get_key_value(row.user_sid) {
            Some((sid, _)) => sums.entry(sid.as_str()).or_default().1 += i128::from(row.cost_cents),
            None => orphans += 1,
        }
    }
    if orphans > 0 {
        c.add(
            "payments and applied records of unknown users".into(),
            orphans,
            0,
        );
    }
    let mut sids: Vec<&String> = users.keys().collect();
    sids.sort();
    for sid in sids {
        let (paid, consumed) = users[sid];
        let (sum_paid, sum_consumed) = sums.get(sid.as_str()).copied().unwrap_or_default();
        if i128::from(paid) != sum_paid {
            c.user(
                format!("user `{sid}` total paid"),
                paid,
                format!("{sum_paid} (sum of payments)"),
            );
        }
        if i128::from(consumed) != sum_consumed {
            c.user(
                format!("user `{sid}` total consumed"),
                consumed,
                format!("{sum_consumed} (sum of applied records)"),
            );
        }
    }
    Ok(())
}
