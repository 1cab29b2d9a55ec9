//! Where the ledger lives: the redb file in the data dir (the default), or a
//! PostgreSQL database (`--ledger-url`). The password never reaches a log or
//! an error: `Debug` and messages name user, host, port and database only.

use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::store::{Store, StoreOptions};

/// Environment variable PostgreSQL's own tools read the password from.
const PGPASSWORD: &str = "PGPASSWORD";

#[derive(Clone)]
pub enum LedgerLocation {
    /// `ledger.redb` in the data dir.
    Redb(PathBuf),
    /// A `postgres://` URL and the password, when it is not in the URL.
    Postgres {
        url: String,
        password: Option<String>,
    },
}

impl std::fmt::Debug for LedgerLocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LedgerLocation::Redb(path) => write!(f, "{}", path.display()),
            LedgerLocation::Postgres { .. } => write!(f, "{}", self.describe()),
        }
    }
}

impl LedgerLocation {
    /// `--ledger-url` if given (with the password from `--ledger-password-file`,
    /// else `PGPASSWORD`, when the URL has none), else the redb file in `data_dir`.
    pub fn resolve(
        data_dir: &Path,
        url: Option<String>,
        password_file: Option<PathBuf>,
    ) -> anyhow::Result<LedgerLocation> {
        let Some(url) = url else {
            return Ok(LedgerLocation::Redb(data_dir.join(super::LEDGER_FILE)));
        };
        if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            anyhow::bail!(
                "--ledger-url must be a PostgreSQL URL, postgres://USER@HOST:PORT/DATABASE; \
                 leave it out to keep the ledger in the data dir (redb)"
            );
        }
        let password = match password_file {
            Some(path) => {
                let text = std::fs::read_to_string(&path).with_context(|| {
                    format!("cannot read the ledger password file {}", path.display())
                })?;
                Some(text.trim_end_matches(['\n', '\r']).to_string())
            }
            None => std::env::var(PGPASSWORD).ok(),
        };
        Ok(LedgerLocation::Postgres { url, password })
    }

    /// The ledger for messages: a path, or `postgres://user@host:port/db`.
    pub fn describe(&self) -> String {
        match self {
            LedgerLocation::Redb(path) => path.display().to_string(),
            LedgerLocation::Postgres { url, .. } => match url.parse::<tokio_postgres::Config>() {
                Ok(config) => crate::store::postgres_describe(&config),
                Err(_) => "a PostgreSQL URL that cannot be parsed".to_string(),
            },
        }
    }

    /// Opens the ledger (creating a redb file's directory if needed).
    pub fn open(&self, options: StoreOptions) -> anyhow::Result<Store> {
        match self {
            LedgerLocation::Redb(path) => {
                if let Some(dir) = path.parent() {
                    std::fs::create_dir_all(dir)
                        .with_context(|| format!("cannot create the data dir {}", dir.display()))?;
                }
                Ok(Store::open_with(path, options)?)
            }
            LedgerLocation::Postgres { url, password } => {
                Ok(Store::connect(url, password.as_deref(), options)?)
            }
        }
    }

    /// Whether a ledger exists there (a PostgreSQL database is always asked).
    pub fn exists(&self) -> bool {
        match self {
            LedgerLocation::Redb(path) => path.exists(),
            LedgerLocation::Postgres { .. } => true,
        }
    }
}
