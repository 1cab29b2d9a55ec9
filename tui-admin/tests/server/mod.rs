//! The real rpc-server the dashboard's end-to-end tests run against: the one
//! `billing_server::test_support` starts for every crate's tests.

pub use billing_server::test_support::RunningServer;
