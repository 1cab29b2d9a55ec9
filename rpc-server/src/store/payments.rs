//! Payments: credits to a balance, idempotent by `payment_id`.

use billing_api::otoml::MAX_SID_BYTES;
use billing_api::text::echo;
use billing_api::{Page, Payment, RecordPayment};
use redb::ReadableTable;

use super::codec::{self, PaymentRow};
use super::ledger::Ledger;
use super::{
    MAX_PAYMENT_ID_BYTES, Store, StoreError, check_id, check_text, clamp_limit, page, seq_cursor,
    tables,
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

impl Store {
    /// Credits a payment. The same `payment_id` with the same content returns the
    /// stored payment and changes nothing; with other content it is a conflict.
    pub fn record_payment(&self, req: &RecordPayment, now_ms: u64) -> Result<Payment, StoreError> {
        check_id("payment_id", &req.payment_id, MAX_PAYMENT_ID_BYTES)?;
        check_id("user_sid", &req.user_sid, MAX_SID_BYTES)?;
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
        let id = req.payment_id.as_str();
        self.write(&format!("record payment `{id}`"), |txn| {
            let mut payments = txn.open_table(tables::PAYMENTS)?;
            let stored = match payments.get(id)? {
                Some(bytes) => Some(codec::decode_owned::<PaymentRow>(bytes.value(), "payment")?),
                None => None,
            };
            if let Some(stored) = stored {
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
            let mut ledger = Ledger::open(txn, now_ms)?;
            ledger.credit(&req.user_sid, req.amount_cents)?;
            ledger.meta.payment_seq += 1;
            let row = PaymentRow {
                seq: ledger.meta.payment_seq,
                user_sid: req.user_sid.clone(),
                amount_cents: req.amount_cents,
                kind: kind.to_string(),
                reference: req.reference.clone(),
                created_at_ms: now_ms,
            };
            payments.insert(id, codec::to_bytes(&row)?.as_slice())?;
            txn.open_table(tables::PAYMENT_LOG)?.insert(row.seq, id)?;
            txn.open_table(tables::USER_PAYMENTS)?
                .insert((req.user_sid.as_str(), row.seq), id)?;
            ledger.finish()?;
            Ok(row.to_api(id))
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
