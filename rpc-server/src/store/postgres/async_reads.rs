//! Balance reads answered on the server's async runtime. `get_balance` is the
//! call other services make most; on the blocking pool each one would cost
//! two thread hand-offs, a connection check-out and a round trip of its own.
//!
//! Here concurrent reads are gathered instead: a task takes every read that
//! is waiting and asks for all of them in one query
//! (`WHERE user_sid = ANY($1)`), on one of a few tokio-postgres connections
//! with the statement prepared once. While [`IN_FLIGHT`] such queries run,
//! new reads wait and form the next batch, so the busier the server, the
//! larger the batches and the less each read costs; an idle server sends a
//! read alone at once. One query is one snapshot, as a single read is.
//!
//! `list_users` pages go over the same connections: the plain listing (by
//! sid, no filter) on a prepared statement, the others as statements built
//! for their order and filter (`user_list.rs`), a batch at a time.
//!
//! A connection that the server closed is replaced at its next use. A read
//! waits at most [`READ_TIMEOUT`] in all, connecting included, so that with
//! the database away a caller gets its error within 5 s.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use billing_api::Balance;
use tokio::sync::{Semaphore, mpsc, oneshot};
use tokio_postgres::{Client, Config, NoTls, Row, Statement};

use super::super::StoreError;
use super::columns::{USER_COLUMNS, user_of};
use super::user_list::{BALANCE_VERSION, UsersSql};
use super::{db_err, from_db, lock};

/// Connections kept for these reads, used in turn.
const READ_CONNECTIONS: usize = 2;

/// Batch queries running at once; reads arriving meanwhile wait for the next.
/// One measured best on 2 cores (17,000 reads/s, against 15,000 with two and
/// 13,000 with four): a batch of 256 point reads is about a millisecond of
/// the database's time, so one at a time still allows more reads than the
/// HTTP side can take.
const IN_FLIGHT: usize = 1;

/// The most reads asked for in one query.
const MAX_BATCH: usize = 256;

/// The longest a read waits, connecting included.
pub(super) const READ_TIMEOUT: Duration = Duration::from_secs(4);

/// A read's answer: the balance, or `None` for an unknown user.
type Answer = Result<Option<Balance>, ReadError>;

/// Why a read failed.
#[derive(Debug, Clone)]
pub(super) enum ReadError {
    /// No answer within [`READ_TIMEOUT`].
    TimedOut,
    /// The database could not be reached, or answered with an error.
    Db(StoreError),
}

struct Read {
    sid: String,
    reply: oneshot::Sender<Answer>,
}

pub(super) struct AsyncReads {
    connections: Arc<Connections>,
    /// The queue of the batching task, started on the first read's runtime
    /// (and again if that runtime has shut down since).
    queue: Mutex<Option<mpsc::UnboundedSender<Read>>>,
}

impl AsyncReads {
    /// Connects lazily, at the first read, on the runtime that reads.
    pub fn new(mut config: Config) -> AsyncReads {
        config.application_name("billing-rpc-server reads");
        AsyncReads {
            connections: Arc::new(Connections {
                config,
                slots: (0..READ_CONNECTIONS)
                    .map(|_| tokio::sync::Mutex::new(None))
                    .collect(),
                next: AtomicUsize::new(0),
            }),
            queue: Mutex::new(None),
        }
    }

    /// The balance of user `sid`, `None` if there is no such user.
    pub async fn balance(&self, sid: &str) -> Answer {
        let (reply, answer) = oneshot::channel();
        self.enqueue(Read {
            sid: sid.to_string(),
            reply,
        });
        match tokio::time::timeout(READ_TIMEOUT, answer).await {
            Ok(Ok(answer)) => answer,
            // The batching task went away with its runtime, or gave up.
            Ok(Err(_)) | Err(_) => Err(ReadError::TimedOut),
        }
    }

    /// Up to `limit` users after `after` in sid order: one prepared statement
    /// on a read connection, pipelined with the balance batches.
    pub async fn users_after(&self, after: &str, limit: i64) -> Result<Vec<Row>, ReadError> {
        within_timeout(self.connections.users_after(after, limit)).await
    }

    /// One batch of a `list_users` page in an order or through a filter.
    pub async fn users_by(&self, sql: &UsersSql) -> Result<Vec<Row>, ReadError> {
        let read = retried(|| async {
            let conn = self.connections.conn().await?;
            conn.client.query_typed(&sql.text, &sql.params()).await
        });
        within_timeout(read).await
    }

    /// The ledger's balance version, where a walk by balance starts.
    pub async fn balance_version(&self) -> Result<u64, ReadError> {
        let read = retried(|| async {
            let conn = self.connections.conn().await?;
            conn.client.query_typed_one(BALANCE_VERSION, &[]).await
        });
        within_timeout(read).await.map(|row| from_db(row.get(0)))
    }

    fn enqueue(&self, read: Read) {
        let mut queue = lock(&self.queue);
        let read = match queue.as_ref() {
            Some(q) => match q.send(read) {
                Ok(()) => return,
                // The task ended with the runtime it ran on: start another here.
                Err(mpsc::error::SendError(read)) => read,
            },
            None => read,
        };
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(gather(self.connections.clone(), rx));
        let _ = tx.send(read);
        *queue = Some(tx);
    }
}

/// The batching task: takes every waiting read, up to [`MAX_BATCH`], once one
/// of the [`IN_FLIGHT`] query slots is free, and answers them with one query.
async fn gather(connections: Arc<Connections>, mut queue: mpsc::UnboundedReceiver<Read>) {
    let slots = Arc::new(Semaphore::new(IN_FLIGHT));
    loop {
        let Ok(permit) = slots.clone().acquire_owned().await else {
            return;
        };
        let Some(first) = queue.recv().await else {
            return;
        };
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(read) => batch.push(read),
                Err(_) => break,
            }
        }
        let connections = connections.clone();
        tokio::spawn(async move {
            let sids: Vec<&str> = batch.iter().map(|r| r.sid.as_str()).collect();
            let answers = within_timeout(connections.balances(&sids)).await;
            drop(permit);
            for read in batch {
                let answer = match &answers {
                    Ok(found) => Ok(found.get(read.sid.as_str()).cloned()),
                    Err(e) => Err(e.clone()),
                };
                let _ = read.reply.send(answer);
            }
        });
    }
}

/// `read`'s outcome, or [`ReadError::TimedOut`] after [`READ_TIMEOUT`].
async fn within_timeout<T>(
    read: impl Future<Output = Result<T, StoreError>>,
) -> Result<T, ReadError> {
    match tokio::time::timeout(READ_TIMEOUT, read).await {
        Ok(result) => result.map_err(ReadError::Db),
        Err(_) => Err(ReadError::TimedOut),
    }
}

/// Runs `query` once more when it failed for want of a working connection
/// (as `Attempt::retried` does for the pooled connections): the server
/// closed it since (a restart, a failover), and `conn` replaces a closed one.
/// A read changes nothing, so trying again is always safe.
async fn retried<T, F>(query: impl Fn() -> F) -> Result<T, StoreError>
where
    F: Future<Output = Result<T, tokio_postgres::Error>>,
{
    match query().await.map_err(db_err) {
        Err(StoreError::Io(_)) => query().await.map_err(db_err),
        other => other,
    }
}

struct Connections {
    config: Config,
    slots: Vec<tokio::sync::Mutex<Option<Arc<ReadConn>>>>,
    next: AtomicUsize,
}

struct ReadConn {
    client: Client,
    /// `SELECT … FROM users WHERE user_sid = ANY($1)`.
    users_by_sid: Statement,
    /// A page of users after `$1` (in sid order), at most `$2`.
    users_after: Statement,
}

impl Connections {
    /// The balances of those of `sids` that are users.
    async fn balances(&self, sids: &[&str]) -> Result<HashMap<String, Balance>, StoreError> {
        let rows = retried(|| async {
            let conn = self.conn().await?;
            conn.client.query(&conn.users_by_sid, &[&sids]).await
        })
        .await?;
        Ok(rows
            .iter()
            .map(|row| {
                let (sid, user) = user_of(row);
                let balance = user.to_balance(&sid);
                (sid, balance)
            })
            .collect())
    }

    async fn users_after(&self, after: &str, limit: i64) -> Result<Vec<Row>, StoreError> {
        retried(|| async {
            let conn = self.conn().await?;
            conn.client
                .query(&conn.users_after, &[&after, &limit])
                .await
        })
        .await
    }

    /// The next connection in turn, connecting it if it is not open.
    async fn conn(&self) -> Result<Arc<ReadConn>, tokio_postgres::Error> {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.slots.len();
        let mut slot = self.slots[i].lock().await;
        if let Some(conn) = slot.as_ref().filter(|c| !c.client.is_closed()) {
            return Ok(conn.clone());
        }
        *slot = None;
        let (client, connection) = self.config.connect(NoTls).await?;
        // The connection's I/O runs as a task of its own; it ends when the
        // client is dropped or the server closes the connection.
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "a ledger read connection closed");
            }
        });
        let users_by_sid = client
            .prepare(&format!(
                "SELECT {USER_COLUMNS} FROM users WHERE user_sid = ANY($1)"
            ))
            .await?;
        let users_after = client
            .prepare(&format!(
                "SELECT {USER_COLUMNS} FROM users WHERE user_sid > $1 ORDER BY user_sid LIMIT $2"
            ))
            .await?;
        let conn = Arc::new(ReadConn {
            client,
            users_by_sid,
            users_after,
        });
        *slot = Some(conn.clone());
        Ok(conn)
    }
}
