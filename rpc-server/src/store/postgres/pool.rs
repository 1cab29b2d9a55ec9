//! The connection pool (r2d2) and what each pooled connection keeps: the
//! hottest statements, prepared once per connection, so a balance read or a
//! page of users is one round trip with no parsing or planning on the server.

use postgres::{Client, NoTls, Statement};

use super::columns::USER_COLUMNS;

/// A pooled connection.
pub(super) struct PgConn {
    pub client: Client,
    /// `SELECT … FROM users WHERE user_sid = $1`.
    pub user_by_sid: Statement,
    /// A page of users after `$1` (in sid order), at most `$2`.
    pub users_after: Statement,
}

/// Opens connections for the pool.
pub(super) struct Manager {
    pub config: postgres::Config,
}

impl r2d2::ManageConnection for Manager {
    type Connection = PgConn;
    type Error = postgres::Error;

    fn connect(&self) -> Result<PgConn, postgres::Error> {
        let mut client = self.config.connect(NoTls)?;
        let user_by_sid = client.prepare(&format!(
            "SELECT {USER_COLUMNS} FROM users WHERE user_sid = $1"
        ))?;
        let users_after = client.prepare(&format!(
            "SELECT {USER_COLUMNS} FROM users WHERE user_sid > $1 ORDER BY user_sid LIMIT $2"
        ))?;
        Ok(PgConn {
            client,
            user_by_sid,
            users_after,
        })
    }

    fn is_valid(&self, conn: &mut PgConn) -> Result<(), postgres::Error> {
        conn.client.simple_query("").map(|_| ())
    }

    fn has_broken(&self, conn: &mut PgConn) -> bool {
        conn.client.is_closed()
    }
}
