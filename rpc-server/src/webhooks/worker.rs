//! The delivery loop: reads the ledger's outbox and posts each event to every
//! `--webhook-url`, at least once. Per URL, the oldest undelivered event of
//! each user (or node) goes first, so one user's events arrive in order; a
//! failing receiver delays only its own deliveries, never a pass. Failed
//! attempts are retried with backoff (`schedule.rs`) for up to 24 hours, then
//! given up (`list_events` shows it). The state of every delivery is in the
//! ledger, so a restart resumes where delivery stopped; an attempt cut by a
//! crash is made again after its lease.

use std::time::Duration;

use rand::RngExt as _;
use reqwest::Url;
use tracing::{info, warn};

use super::schedule::next_delay;
use super::send::{SendOutcome, Sender};
use crate::aggregate::Aggregator;
use crate::blocking::with_store;
use crate::clock::now_ms;
use crate::config::WebhookSettings;
use crate::store::alerts::outbox::{Attempted, Due};
use crate::store::alerts::{event_id, redact_url};

/// Each attempt, connecting included.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);
/// A claimed delivery is not claimed again (here or by another replica) before this.
const LEASE: Duration = Duration::from_secs(60);
/// Events claimed per URL at once.
const BATCH: usize = 64;
/// Retries come due without a new event: look at least this often.
const POLL: Duration = Duration::from_secs(1);

/// How the loop paces itself; tests shorten it.
#[derive(Debug, Clone, Copy)]
pub struct Pace {
    /// Each attempt, connecting included.
    pub attempt_timeout: Duration,
    /// A claimed delivery is not claimed again before this.
    pub lease: Duration,
    /// Multiplies every retry wait of `schedule.rs` (1.0 in production).
    pub backoff_scale: f64,
}

impl Default for Pace {
    fn default() -> Self {
        Pace {
            attempt_timeout: ATTEMPT_TIMEOUT,
            lease: LEASE,
            backoff_scale: 1.0,
        }
    }
}

/// Delivers until the task is dropped.
pub async fn run(aggregator: Aggregator, settings: WebhookSettings) {
    run_paced(aggregator, settings, Pace::default()).await
}

/// [`run`] at another pace.
pub async fn run_paced(aggregator: Aggregator, settings: WebhookSettings, pace: Pace) {
    let sender = match Sender::new(settings.secret.clone(), pace.attempt_timeout) {
        Ok(sender) => sender,
        Err(e) => {
            warn!(error = %e, "cannot build the webhook client; events are kept and not delivered");
            return;
        }
    };
    let urls: Vec<(String, Url)> = settings
        .urls
        .iter()
        .filter_map(|u| Url::parse(u).ok().map(|parsed| (u.clone(), parsed)))
        .collect();
    info!(urls = ?urls.iter().map(|(u, _)| redact_url(u)).collect::<Vec<_>>(), "delivering events to webhooks");
    loop {
        let mut busy = false;
        for (key, url) in &urls {
            busy |= deliver_due(&aggregator, &sender, key, url, pace).await;
        }
        if !busy {
            tokio::select! {
                () = aggregator.events_written() => {}
                () = tokio::time::sleep(POLL) => {}
            }
        }
    }
}

/// Claims and sends what is due at one URL; whether anything was.
async fn deliver_due(
    aggregator: &Aggregator,
    sender: &Sender,
    key: &str,
    url: &Url,
    pace: Pace,
) -> bool {
    let claimed = {
        let key = key.to_string();
        let lease = pace.lease.as_millis() as u64;
        with_store(aggregator.store(), move |s| {
            s.claim_deliveries(&key, lease, BATCH, now_ms())
        })
        .await
    };
    let due = match claimed {
        Ok(due) => due,
        Err(e) => {
            warn!(url = %redact_url(key), error = %e, "cannot read the outbox; deliveries wait");
            return false;
        }
    };
    if due.is_empty() {
        return false;
    }
    let mut attempted = Vec::with_capacity(due.len());
    for event in &due {
        attempted.push(attempt(sender, key, url, event, pace.backoff_scale).await);
    }
    let key_owned = key.to_string();
    let recorded = with_store(aggregator.store(), move |s| {
        s.record_deliveries(&key_owned, &attempted, now_ms())
    })
    .await;
    if let Err(e) = recorded {
        // The leases run out and the events are sent again: at least once.
        warn!(url = %redact_url(key), error = %e, "cannot record webhook deliveries; they are retried");
    }
    true
}

/// The body of an event's deliveries.
pub fn body(event: &Due) -> Vec<u8> {
    let data: serde_json::Value = serde_json::from_str(&event.data).unwrap_or_default();
    serde_json::json!({
        "id": event_id(event.seq),
        "type": event.kind,
        "timestamp": billing_api::millis_to_rfc3339(event.created_ms),
        "data": data,
    })
    .to_string()
    .into_bytes()
}

async fn attempt(sender: &Sender, key: &str, url: &Url, event: &Due, scale: f64) -> Attempted {
    let id = event_id(event.seq);
    let now = now_ms();
    let outcome = sender.send(url, &id, now / 1000, &body(event)).await;
    if let SendOutcome::Delivered { status } = outcome {
        return Attempted {
            seq: event.seq,
            status: Some(status),
            delivered: true,
            error: None,
            retry_at_ms: None,
        };
    }
    let error = match &outcome {
        SendOutcome::Refused { status } => format!("answered {status}"),
        SendOutcome::Unreachable { reason } => reason.clone(),
        SendOutcome::Delivered { .. } => unreachable!("handled above"),
    };
    let failed = event.attempts + 1;
    let since_first =
        Duration::from_millis(now.saturating_sub(event.first_attempt_ms.unwrap_or(now)));
    let unit = rand::rng().random::<f64>();
    let retry_at_ms =
        next_delay(failed, since_first, unit).map(|d| now + d.mul_f64(scale).as_millis() as u64);
    warn!(
        event_id = %id,
        event_type = %event.kind,
        url = %redact_url(key),
        attempt = failed,
        status = outcome.status(),
        error = %error,
        next_attempt_in_secs = retry_at_ms.map(|at| at.saturating_sub(now) / 1000),
        gave_up = retry_at_ms.is_none(),
        "webhook delivery failed"
    );
    Attempted {
        seq: event.seq,
        status: outcome.status(),
        delivered: false,
        error: Some(error),
        retry_at_ms,
    }
}
