//! Payments: credits to a balance, idempotent by `payment_id`.

use billing_api::otoml::MAX_SID_BYTES;
use billing_api::text::echo;
use billing_api::{Page, Payment, RecordPayment};

use super::codec::{self, PaymentRow};
use super::ledger::{LedgerTxn, Rows};
use super::{
    MAX_PAYMENT_ID_BYTES, RedbStore, StoreError, check_identifier, check_text, clamp_limit, page,
    redb_rows, seq_cursor, tables,
};

/// A payment's reference as a person writes it in a message.
fn describe_reference(reference: Option<&str>) -> String {
    match reference {
        Some(r) => format!("reference `{}`", echo(r)),
        None => "no reference".to_string(),
    }
}

/// Kind of a payment whose request names none.
pub const DEFAULT_PAYMENT_KIND: &str = "topup";

impl RedbStore {
    /// Credits a payment. The same `payment_id` with the same content returns the
    /// stored payment and changes nothing; with other content it is a conflict.
    pub fn record_payment(&self, req: &RecordPayment, now_ms: u64) -> Result<Payment, StoreError> {
        let payment = NewPayment::check(req, now_ms)?;
        // Announced before queueing, so a pass lets the whole group go first.
        let _turn = self.shared.gate.service();
        self.shared
            .payments
            .submit(payment, |group| self.commit_payments(group))
    }

    /// Commits a group of payments in one transaction: one result per payment,
    /// or the storage error that failed them all.
    fn commit_payments(
        &self,
        group: &[NewPayment],
    ) -> Result<Vec<Result<Payment, StoreError>>, StoreError> {
        let Some(op) = group_op(group) else {
            return Ok(Vec::new());
        };
        self.write(&op, |txn| {
            credit_group(redb_rows::ledger(txn, group[0].now_ms)?, group)
        })
    }

    /// Payments, newest first; only `user_sid`'s if given.
    pub fn list_payments(
        &self,
        user_sid: Option<&str>,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<Page<Payment>, StoreError> {
        let limit = clamp_limit(limit);
        let before = seq_cursor(cursor)?.unwrap_or(u64::MAX);
        self.read("list payments", |txn| {
            let payments = txn.open_table(tables::PAYMENTS)?;
            let mut ids: Vec<(u64, String)> = Vec::with_capacity(limit + 1);
            match user_sid {
                Some(sid) => {
                    if txn.open_table(tables::USERS)?.get(sid)?.is_none() {
                        return Err(StoreError::NotFound {
                            what: "user",
                            key: sid.to_string(),
                        });
                    }
                    let index = txn.open_table(tables::USER_PAYMENTS)?;
                    for entry in index.range((sid, 0)..(sid, before))?.rev().take(limit + 1) {
                        let (k, v) = entry?;
                        ids.push((k.value().1, v.value().to_string()));
                    }
                }
                None => {
                    let log = txn.open_table(tables::PAYMENT_LOG)?;
                    for entry in log.range(..before)?.rev().take(limit + 1) {
                        let (k, v) = entry?;
                        ids.push((k.value(), v.value().to_string()));
                    }
                }
            }
            let mut items = Vec::with_capacity(ids.len());
            for (seq, id) in ids {
                let bytes = payments.get(id.as_str())?.ok_or_else(|| {
                    StoreError::Storage(format!(
                        "payment log names `{id}` but the payment is missing"
                    ))
                })?;
                let row: PaymentRow = codec::decode_owned(bytes.value(), "payment")?;
                items.push((seq.to_string(), row.to_api(&id)));
            }
            Ok(page(items, limit))
        })
    }
}

/// A checked `record_payment` request, waiting for its group's commit.
pub(crate) struct NewPayment {
    req: RecordPayment,
    /// The request's kind, or the default.
    kind: String,
    now_ms: u64,
}

impl NewPayment {
    /// Checks a request: ids, texts, a positive amount and a non-empty kind.
    pub fn check(req: &RecordPayment, now_ms: u64) -> Result<NewPayment, StoreError> {
        check_identifier("payment_id", &req.payment_id, MAX_PAYMENT_ID_BYTES)?;
        check_identifier("user_sid", &req.user_sid, MAX_SID_BYTES)?;
        check_text("kind", req.kind.as_deref())?;
        check_text("reference", req.reference.as_deref())?;
        if req.amount_cents <= 0 {
            return Err(StoreError::InvalidInput(format!(
                "amount_cents must be > 0, got {} (payment `{}`); record refunds to the user as \
                 a positive amount with kind `refund`",
                req.amount_cents,
                echo(&req.payment_id)
            )));
        }
        let kind = match req.kind.as_deref() {
            Some("") => {
                return Err(StoreError::InvalidInput(format!(
                    "kind of payment `{}` is empty; omit it for `{DEFAULT_PAYMENT_KIND}`",
                    echo(&req.payment_id)
                )));
            }
            Some(k) => k,
            None => DEFAULT_PAYMENT_KIND,
        };
        Ok(NewPayment {
            req: req.clone(),
            kind: kind.to_string(),
            now_ms,
        })
    }

    /// The time the group's transaction records.
    pub fn now_ms(&self) -> u64 {
        self.now_ms
    }

    pub fn id(&self) -> &str {
        &self.req.payment_id
    }
}

/// What the commit of a group of payments is called in its errors; `None`
/// for an empty group, which commits nothing.
pub(crate) fn group_op(group: &[NewPayment]) -> Option<String> {
    match group {
        [one] => Some(format!("record payment `{}`", one.id())),
        [first, ..] => Some(format!(
            "record {} payments (`{}` and the payments waiting with it)",
            group.len(),
            first.id()
        )),
        [] => None,
    }
}

/// Credits a group of payments in one ledger transaction: one result per
/// payment, or the storage error that fails them all.
pub(crate) fn credit_group<R: Rows>(
    mut ledger: LedgerTxn<R>,
    group: &[NewPayment],
) -> Result<Vec<Result<Payment, StoreError>>, StoreError> {
    let mut results = Vec::with_capacity(group.len());
    for payment in group {
        results.push(match credit_one(&mut ledger, payment) {
            Ok(stored) => Ok(stored),
            // Refused before writing anything: the rest of the group goes on.
            Err(e @ (StoreError::Conflict(_) | StoreError::NotFound { .. })) => Err(e),
            Err(e @ StoreError::Overflow(_)) => Err(e),
            Err(fatal) => return Err(fatal),
        });
    }
    ledger.finish()?;
    Ok(results)
}

/// Records one payment of a group. A conflict, an unknown user or an overflow
/// is found before anything is written.
fn credit_one<R: Rows>(
    ledger: &mut LedgerTxn<R>,
    payment: &NewPayment,
) -> Result<Payment, StoreError> {
    let (req, kind) = (&payment.req, payment.kind.as_str());
    let id = req.payment_id.as_str();
    if let Some(stored) = ledger.rows().payment(id)? {
        let same = stored.user_sid == req.user_sid
            && stored.amount_cents == req.amount_cents
            && stored.kind == kind
            && stored.reference == req.reference;
        if same {
            return Ok(stored.to_api(id));
        }
        return Err(StoreError::Conflict(format!(
            "payment `{}` was already recorded as user `{}`, {} cents, kind `{}`, {}; \
             this request says user `{}`, {} cents, kind `{}`, {}. Nothing was changed: \
             use a new payment_id for a new payment",
            echo(id),
            echo(&stored.user_sid),
            stored.amount_cents,
            echo(&stored.kind),
            describe_reference(stored.reference.as_deref()),
            echo(&req.user_sid),
            req.amount_cents,
            echo(kind),
            describe_reference(req.reference.as_deref()),
        )));
    }
    ledger.credit(&req.user_sid, req.amount_cents)?;
    ledger.meta.payment_seq += 1;
    let row = PaymentRow {
        seq: ledger.meta.payment_seq,
        user_sid: req.user_sid.clone(),
        amount_cents: req.amount_cents,
        kind: kind.to_string(),
        reference: req.reference.clone(),
        created_at_ms: payment.now_ms,
    };
    ledger.rows().put_payment(id, &row)?;
    Ok(row.to_api(id))
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Barrier};

    use super::*;
    use crate::store::tests::{pay, register};
    use crate::store::{Depth, Store};

    /// Payments that commit together in groups behave exactly as one at a time:
    /// a repeated request returns the stored payment, a conflicting or unknown
    /// one is refused alone, and every balance and counter adds up.
    #[test]
    fn concurrent_payments_commit_as_if_one_at_a_time_on_redb() {
        let dir = tempfile::tempdir().unwrap();
        concurrent_payments(Store::open(&dir.path().join("ledger.redb")).unwrap());
    }

    #[test]
    fn concurrent_payments_commit_as_if_one_at_a_time_on_postgres() {
        let db = crate::test_support::PgTestDb::create();
        concurrent_payments(db.store());
    }

    fn concurrent_payments(store: Store) {
        for sid in ["u0", "u1", "u2", "u3"] {
            register(&store, sid);
        }
        pay(&store, "pre", "u1", 50).unwrap();
        let threads = 40;
        let start = Arc::new(Barrier::new(threads));
        let handles: Vec<_> = (0..threads)
            .map(|i| {
                let (store, start) = (store.clone(), start.clone());
                std::thread::spawn(move || {
                    start.wait();
                    match i {
                        // Each of p0..p15 is sent twice, by thread i and i + 16.
                        0..32 => {
                            let n = i % 16;
                            pay(&store, &format!("p{n}"), &format!("u{}", n % 4), 100)
                        }
                        32..36 => pay(&store, "pre", "u1", 60),
                        _ => pay(&store, &format!("ghost-{i}"), "ghost", 10),
                    }
                })
            })
            .collect();
        for (i, handle) in handles.into_iter().enumerate() {
            match (i, handle.join().unwrap()) {
                (0..32, Ok(p)) => {
                    assert_eq!(p.payment_id, format!("p{}", i % 16));
                    assert_eq!(p.amount_cents, 100);
                }
                (32..36, Err(StoreError::Conflict(m))) => assert!(m.contains("`pre`"), "{m}"),
                (36.., Err(StoreError::NotFound { key, .. })) => assert_eq!(key, "ghost"),
                (i, other) => panic!("thread {i}: unexpected {other:?}"),
            }
        }
        for (sid, balance) in [("u0", 400), ("u1", 450), ("u2", 400), ("u3", 400)] {
            let user = store.get_user(sid).unwrap();
            assert_eq!(user.credit_balance_cents, balance, "{sid}");
            assert_eq!(user.total_paid_cents, balance, "{sid}");
        }
        let listed = store.list_payments(None, None, 100).unwrap();
        assert_eq!(listed.items.len(), 17, "p0..p15 and pre, each once");
        let report = store.verify(Depth::Full).unwrap();
        assert!(report.consistent, "{}", report.summary());
    }
}
