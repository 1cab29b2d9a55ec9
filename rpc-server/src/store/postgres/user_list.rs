//! `list_users` on PostgreSQL: keyset pages over the users table in the
//! order of its primary key or of the indexes of migration 4, read in
//! batches until the page is full (see `store::user_list`). Every listing but
//! the plain one (every user by sid, on its prepared statement) is one
//! statement built for the order, range and cursor, sent with its parameter
//! types (`query_typed`: one round trip, planned for the actual values).

use std::ops::ControlFlow;

use billing_api::{Page, UserBilling, UserSort};
use postgres::types::{ToSql, Type};

use super::super::user_list::{KeyRange, PageBuilder, Position, UserQuery};
use super::super::{StoreError, clamp_limit};
use super::columns::{USER_COLUMNS, user_of};
use super::{PgStore, db_err, from_db, to_db};

/// The ledger's balance version (see `user_index.rs`).
pub(super) const BALANCE_VERSION: &str =
    "SELECT consumed_seq + payment_seq FROM ledger_meta WHERE id = 1";

/// A parameter of a built statement.
enum Param {
    Int(i64),
    Text(String),
}

/// One batch of a page: the statement and its parameters.
pub(super) struct UsersSql {
    pub text: String,
    params: Vec<Param>,
}

impl UsersSql {
    fn bind(&mut self, param: Param) -> String {
        self.params.push(param);
        format!("${}", self.params.len())
    }

    /// The parameters with their types, for `query_typed`.
    pub fn params(&self) -> Vec<(&(dyn ToSql + Sync), Type)> {
        self.params
            .iter()
            .map(|p| match p {
                Param::Int(v) => (v as &(dyn ToSql + Sync), Type::INT8),
                Param::Text(t) => (t as &(dyn ToSql + Sync), Type::TEXT),
            })
            .collect()
    }
}

/// Up to `limit` users of `query`'s range after `after`, in its order; in a
/// balance order only those whose balance did not change after `version`.
pub(super) fn users_sql(
    query: &UserQuery,
    after: Option<&Position>,
    version: Option<u64>,
    limit: usize,
) -> UsersSql {
    let mut sql = UsersSql {
        text: String::new(),
        params: Vec::new(),
    };
    let mut conditions = Vec::new();
    let (key, order, past) = match query.sort() {
        UserSort::Sid => ("user_sid", "user_sid", ">"),
        UserSort::BalanceAsc => ("balance_cents", "balance_cents, user_sid", ">"),
        UserSort::BalanceDesc => ("balance_cents", "balance_cents DESC, user_sid DESC", "<"),
        UserSort::ConsumedDesc => ("consumed_cents", "consumed_cents DESC, user_sid DESC", "<"),
    };
    if let Some(p) = after {
        let sid = sql.bind(Param::Text(p.sid.clone()));
        conditions.push(match query.sort() {
            UserSort::Sid => format!("user_sid > {sid}"),
            _ => {
                let k = sql.bind(Param::Int(p.key));
                format!("({key}, user_sid) {past} ({k}, {sid})")
            }
        });
    }
    match query.range() {
        KeyRange::Sids { from, to } => {
            conditions.push(format!(
                "user_sid >= {}",
                sql.bind(Param::Text(from.clone()))
            ));
            if let Some(to) = to {
                conditions.push(format!("user_sid < {}", sql.bind(Param::Text(to.clone()))));
            }
        }
        KeyRange::Balances { lo, hi } => {
            if *lo != i64::MIN {
                conditions.push(format!("balance_cents >= {}", sql.bind(Param::Int(*lo))));
            }
            if *hi != i64::MAX {
                conditions.push(format!("balance_cents <= {}", sql.bind(Param::Int(*hi))));
            }
        }
        KeyRange::All | KeyRange::Empty => {}
    }
    if let Some(v) = version.filter(|_| query.uses_version()) {
        let v = sql.bind(Param::Int(to_db(v)));
        conditions.push(format!("balance_changed_seq <= {v}"));
    }
    let filter = match conditions.is_empty() {
        true => String::new(),
        false => format!("WHERE {}", conditions.join(" AND ")),
    };
    sql.text = format!("SELECT {USER_COLUMNS} FROM users {filter} ORDER BY {order} LIMIT {limit}");
    sql
}

fn empty() -> Page<UserBilling> {
    Page {
        items: Vec::new(),
        next_cursor: None,
    }
}

/// Offers a batch of rows to `page`: the page when it is done, or the
/// builder to read on with (`asked`: the rows the batch asked for, so fewer
/// means the range ended).
fn offer_rows<'q>(
    mut page: PageBuilder<'q>,
    rows: &[postgres::Row],
    asked: usize,
) -> ControlFlow<Page<UserBilling>, PageBuilder<'q>> {
    for row in rows {
        let (sid, user) = user_of(row);
        if !page.offer(user.to_api(&sid)) {
            return ControlFlow::Break(page.finish(false));
        }
    }
    match rows.len() < asked {
        true => ControlFlow::Break(page.finish(true)),
        false => ControlFlow::Continue(page),
    }
}

/// The page of one batch: a batch that was not the end ends the page too.
fn one_batch(flow: ControlFlow<Page<UserBilling>, PageBuilder<'_>>) -> Page<UserBilling> {
    match flow {
        ControlFlow::Break(page) => page,
        ControlFlow::Continue(builder) => builder.finish(false),
    }
}

impl PgStore {
    /// A page of users in `query`'s order, through its filter.
    pub fn list_users_by(
        &self,
        query: &UserQuery,
        limit: u32,
    ) -> Result<Page<UserBilling>, StoreError> {
        if *query.range() == KeyRange::Empty {
            return Ok(empty());
        }
        if query.is_plain() {
            let after = query.after().map_or("", |p| p.sid.as_str());
            let asked = clamp_limit(limit) + 1;
            // One statement is a snapshot of its own: no transaction needed.
            let rows = self.on_conn("list users", |conn| {
                conn.client
                    .query(&conn.users_after, &[&after, &(asked as i64)])
            })?;
            let page = PageBuilder::new(query, limit, None);
            return Ok(one_batch(offer_rows(page, &rows, asked)));
        }
        // The batches of a page in one snapshot, with the version it starts at.
        self.read("list users", |txn| {
            let version = match (query.uses_version(), query.version()) {
                (false, _) => None,
                (true, Some(v)) => Some(v),
                (true, None) => {
                    let row = txn.query_one(BALANCE_VERSION, &[]).map_err(db_err)?;
                    Some(from_db(row.get(0)))
                }
            };
            let mut page = PageBuilder::new(query, limit, version);
            loop {
                let asked = page.batch();
                let sql = users_sql(query, page.resume(), version, asked);
                let rows = txn.query_typed(&sql.text, &sql.params()).map_err(db_err)?;
                page = match offer_rows(page, &rows, asked) {
                    ControlFlow::Break(done) => return Ok(done),
                    ControlFlow::Continue(page) => page,
                };
            }
        })
    }

    /// `list_users` for a caller on an async runtime: on the runtime itself,
    /// over the read connections (see `async_reads`). The version a walk by
    /// balance starts at is read before its first batch, so a balance that
    /// changes in between counts as changed after it.
    pub async fn read_users(
        &self,
        query: &UserQuery,
        limit: u32,
    ) -> Result<Page<UserBilling>, StoreError> {
        if *query.range() == KeyRange::Empty {
            return Ok(empty());
        }
        let reads = &self.shared.async_reads;
        if query.is_plain() {
            let after = query.after().map_or("", |p| p.sid.as_str());
            let asked = clamp_limit(limit) + 1;
            let rows = reads.users_after(after, asked as i64).await;
            let rows = self.async_result("list users", rows)?;
            let page = PageBuilder::new(query, limit, None);
            return Ok(one_batch(offer_rows(page, &rows, asked)));
        }
        let version = match (query.uses_version(), query.version()) {
            (false, _) => None,
            (true, Some(v)) => Some(v),
            (true, None) => Some(self.async_result("list users", reads.balance_version().await)?),
        };
        let mut page = PageBuilder::new(query, limit, version);
        loop {
            let asked = page.batch();
            let sql = users_sql(query, page.resume(), version, asked);
            let rows = self.async_result("list users", reads.users_by(&sql).await)?;
            page = match offer_rows(page, &rows, asked) {
                ControlFlow::Break(done) => return Ok(done),
                ControlFlow::Continue(page) => page,
            };
        }
    }
}
