//! Terminal dashboard for billing operators. Everything is read through the
//! aggregator's JSON-RPC API with the admin secret; the database is never opened.
//!
//! Shape: one [`app::App`] state changed only by [`app::App::update`] from
//! [`app::Action`]s; [`event`] turns key presses (by the [`keys`] table), ticks
//! and finished fetches into actions; [`fetch`] runs RPC calls in spawned
//! tasks; [`ui`] and [`views`] only read the state. [`run::run`] is generic
//! over the ratatui backend so tests drive it with `TestBackend`.

pub mod app;
pub mod cli;
pub mod config;
pub mod event;
pub mod event_text;
pub mod fetch;
pub mod format;
#[doc(hidden)]
pub mod fuzzing;
pub mod keys;
pub mod remote;
pub mod run;
pub mod safe;
pub mod ui;
pub mod views;
