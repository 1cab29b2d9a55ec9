//! Users: registration (which releases held usage) and balance queries.

use billing_api::otoml::MAX_SID_BYTES;
use billing_api::{Balance, RegisterUser, UserBilling};

use super::codec::{self, UserRow};
use super::ledger::{LedgerTxn, Rows};
use super::{RedbStore, StoreError, check_identifier, check_text, redb_rows, tables};

impl RedbStore {
    /// `Store::register_user` for many users in one transaction (bulk imports).
    pub fn register_users(
        &self,
        reqs: &[RegisterUser],
        now_ms: u64,
    ) -> Result<Vec<UserBilling>, StoreError> {
        let what = check_registrations(reqs)?;
        self.write(&what, |txn| {
            register_into(redb_rows::ledger(txn, now_ms)?, reqs, now_ms)
        })
    }

    fn user_row(&self, sid: &str) -> Result<UserRow, StoreError> {
        self.read("read a user", |txn| {
            let users = txn.open_table(tables::USERS)?;
            match users.get(sid)? {
                Some(bytes) => codec::decode_owned(bytes.value(), "user"),
                None => Err(StoreError::NotFound {
                    what: "user",
                    key: sid.to_string(),
                }),
            }
        })
    }

    pub fn get_user(&self, sid: &str) -> Result<UserBilling, StoreError> {
        Ok(self.user_row(sid)?.to_api(sid))
    }

    pub fn get_balance(&self, sid: &str) -> Result<Balance, StoreError> {
        Ok(self.user_row(sid)?.to_balance(sid))
    }
}

/// Checks registration requests; returns what the operation is called.
pub(crate) fn check_registrations(reqs: &[RegisterUser]) -> Result<String, StoreError> {
    for req in reqs {
        check_identifier("user_sid", &req.user_sid, MAX_SID_BYTES)?;
        check_text("display_name", req.display_name.as_deref())?;
        check_text("email", req.email.as_deref())?;
    }
    Ok(match reqs {
        [one] => format!("register user `{}`", one.user_sid),
        many => format!("register {} users", many.len()),
    })
}

/// Creates or updates `reqs` in one ledger transaction and applies every record
/// held for them.
pub(crate) fn register_into<R: Rows>(
    mut ledger: LedgerTxn<R>,
    reqs: &[RegisterUser],
    now_ms: u64,
) -> Result<Vec<UserBilling>, StoreError> {
    let mut out = Vec::with_capacity(reqs.len());
    for req in reqs {
        let sid = req.user_sid.as_str();
        match ledger.user(sid)? {
            Some(user) => {
                if req.display_name.is_some() && user.row.display_name != req.display_name {
                    user.row.display_name = req.display_name.clone();
                    user.dirty = true;
                }
                if req.email.is_some() && user.row.email != req.email {
                    user.row.email = req.email.clone();
                    user.dirty = true;
                }
            }
            None => ledger.create_user(
                sid,
                UserRow {
                    id: 0,
                    last_group: 0,
                    display_name: req.display_name.clone(),
                    email: req.email.clone(),
                    created_at_ms: now_ms,
                    balance_cents: 0,
                    paid_cents: 0,
                    consumed_cents: 0,
                },
            ),
        }
        if ledger.meta.counts.pending_records > 0 {
            ledger.apply_held(sid)?;
        }
        let user = ledger
            .user(sid)?
            .map(|u| u.row.to_api(sid))
            .ok_or_else(|| StoreError::Storage(format!("user `{sid}` missing after upsert")))?;
        out.push(user);
    }
    ledger.finish()?;
    Ok(out)
}
