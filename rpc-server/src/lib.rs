//! The billing aggregator as a library; `src/main.rs` is a thin CLI over it.
//!
//! Data flow: a [`source::Source`] (git repo or forge) tells what is new;
//! [`aggregate::Aggregator`] decodes it and applies it through [`store::Store`]
//! (redb, or PostgreSQL) exactly once; [`rpc`] serves the ledger over JSON-RPC; [`scheduler`]
//! runs a pass every interval.

pub mod aggregate;
pub mod backup;
pub mod blocking;
pub mod clock;
pub mod config;
pub mod demo;
pub mod export;
#[doc(hidden)]
pub mod fuzzing;
pub mod metrics;
pub mod reconcile;
pub mod rpc;
pub mod scheduler;
pub mod secret;
pub mod server;
pub mod server_file;
pub mod simulate;
pub mod source;
pub mod store;
#[cfg(any(test, feature = "testkit"))]
pub mod test_support;
pub mod webhooks;
