//! The rows a ledger transaction reads and writes, as one trait: the domain
//! rules (`LedgerTxn`) are written once against it, and each backend implements
//! it over its own tables (`redb_rows.rs`, `postgres/rows.rs`). The methods
//! take `&mut self` so that a backend may cache what it read and buffer what it
//! writes until the transaction ends.

use billing_api::ConsumedRecord;

use super::super::StoreError;
use super::super::alerts::outbox::DeliveryRow;
use super::super::alerts::{AlertRow, EventRow};
use super::super::codec::{
    ConsumedRow, MetaRow, NodeRow, PaymentRow, PendingRow, RejectedRow, SourceRow, TallyRow,
    UserRow,
};
use super::super::user_index::SortKeys;

pub(crate) trait Rows {
    /// The counters and sequence numbers (the defaults in a new ledger).
    fn meta(&mut self) -> Result<MetaRow, StoreError>;
    fn put_meta(&mut self, meta: &MetaRow) -> Result<(), StoreError>;

    fn user(&mut self, sid: &str) -> Result<Option<UserRow>, StoreError>;
    /// Writes a user; `before` is its balance and total consumed as stored
    /// (`None` for a new user), and `new_seqs` are the consumed seqs applied to
    /// it in this transaction, ascending (a backend may index them per user).
    /// `meta` holds this transaction's final sequence numbers.
    fn put_user(
        &mut self,
        sid: &str,
        row: &mut UserRow,
        before: Option<SortKeys>,
        new_seqs: &[u64],
        meta: &mut MetaRow,
    ) -> Result<(), StoreError>;

    /// Whether `key` is in the consumed index.
    fn is_consumed(&mut self, key: &str) -> Result<bool, StoreError>;
    /// Claims `key` for consumed row `seq`. When the key was applied already it
    /// returns that row's seq and changes nothing.
    fn claim_key(&mut self, key: &str, seq: u64) -> Result<Option<u64>, StoreError>;
    /// The consumed row of a claimed key.
    fn put_consumed(&mut self, seq: u64, row: &ConsumedRow<'_>) -> Result<(), StoreError>;
    fn put_source(&mut self, id: u64, row: &SourceRow) -> Result<(), StoreError>;
    /// The applied version of `key`, with its provenance.
    fn consumed(&mut self, key: &str) -> Result<Option<ConsumedRecord>, StoreError>;

    fn pending(&mut self, key: &str) -> Result<Option<PendingRow>, StoreError>;
    fn put_pending(&mut self, key: &str, row: &PendingRow) -> Result<(), StoreError>;
    /// Removes a held record of `sid` and returns it.
    fn take_pending(&mut self, sid: &str, key: &str) -> Result<Option<PendingRow>, StoreError>;
    /// Keys held for `sid`, in key order.
    fn held_keys(&mut self, sid: &str) -> Result<Vec<String>, StoreError>;
    /// Users with held records, in sid order.
    fn held_users(&mut self) -> Result<Vec<String>, StoreError>;

    fn put_rejected(&mut self, id: u64, row: &RejectedRow) -> Result<(), StoreError>;
    /// Removes a rejected item; whether it existed.
    fn remove_rejected(&mut self, id: u64) -> Result<bool, StoreError>;
    /// How many records a file's summary item stands for.
    fn put_rejected_count(&mut self, id: u64, records: u64) -> Result<(), StoreError>;
    fn has_fingerprint(&mut self, fingerprint: &str) -> Result<bool, StoreError>;
    fn put_fingerprint(&mut self, fingerprint: &str, id: u64) -> Result<(), StoreError>;
    /// Removes a fingerprint and returns the id of its item.
    fn take_fingerprint(&mut self, fingerprint: &str) -> Result<Option<u64>, StoreError>;

    fn tally(&mut self, node: &str, path: &str, blob: &str)
    -> Result<Option<TallyRow>, StoreError>;
    fn put_tally(
        &mut self,
        node: &str,
        path: &str,
        blob: &str,
        row: &TallyRow,
    ) -> Result<(), StoreError>;

    fn node(&mut self, name: &str) -> Result<Option<NodeRow>, StoreError>;
    fn put_node(&mut self, name: &str, row: &NodeRow) -> Result<(), StoreError>;
    /// Marks `path` of `node` consumed at `blob`.
    fn put_consumed_file(&mut self, node: &str, path: &str, blob: &str) -> Result<(), StoreError>;

    /// The alert state of `subject` (`alerts::user_subject`, `alerts::node_subject`).
    fn alert(&mut self, subject: &str) -> Result<Option<AlertRow>, StoreError>;
    fn put_alert(&mut self, subject: &str, row: &AlertRow) -> Result<(), StoreError>;
    /// The default low-balance threshold stored in the ledger, if one was.
    fn low_balance_default(&mut self) -> Result<Option<i64>, StoreError>;
    /// Appends an event to the outbox; returns its sequence number.
    fn put_event(&mut self, row: &EventRow) -> Result<u64, StoreError>;
    fn put_low_balance_default(&mut self, cents: i64) -> Result<(), StoreError>;
    /// The seq the next event will get.
    fn next_event_seq(&mut self) -> Result<u64, StoreError>;
    /// Up to `limit` events from `seq` on, oldest first.
    fn events_from(&mut self, seq: u64, limit: usize) -> Result<Vec<(u64, EventRow)>, StoreError>;
    fn delivery(&mut self, seq: u64, url: &str) -> Result<Option<DeliveryRow>, StoreError>;
    fn put_delivery(&mut self, seq: u64, url: &str, row: &DeliveryRow) -> Result<(), StoreError>;
    fn webhook_cursor(&mut self, url: &str) -> Result<Option<u64>, StoreError>;
    fn put_webhook_cursor(&mut self, url: &str, seq: u64) -> Result<(), StoreError>;

    fn payment(&mut self, payment_id: &str) -> Result<Option<PaymentRow>, StoreError>;
    fn put_payment(&mut self, payment_id: &str, row: &PaymentRow) -> Result<(), StoreError>;
}
