//! Webhook delivery primitives, per the Standard Webhooks specification
//! (<https://www.standardwebhooks.com/>): [`sign`] makes the `webhook-signature`
//! from a `whsec_…` secret, [`send`] makes one signed JSON POST and reports how
//! it went, [`schedule`] says when to retry (backoff with jitter, 24 h at most).
//! The outbox and the delivery loop build on these.

pub mod schedule;
pub mod send;
pub mod sign;
pub mod worker;

pub use schedule::{GIVE_UP_AFTER, next_delay};
pub use send::{SendOutcome, Sender};
pub use sign::{SecretError, WebhookSecret};
