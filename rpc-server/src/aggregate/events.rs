//! What passes and service writes tell the outside: the metrics of a pass,
//! the events it writes (stale nodes, a failed pass), and the wake-up of the
//! webhook deliveries.

use tracing::warn;

use super::{Aggregator, PassOutcome, freshness};
use crate::blocking::with_store;
use crate::metrics::PassResult;
use crate::store::alerts::outbox::NodeChange;

impl Aggregator {
    pub fn set_webhook_urls(&self, urls: Vec<String>) {
        *self
            .inner
            .webhooks
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = urls;
    }

    pub fn webhook_urls(&self) -> Vec<String> {
        self.inner
            .webhooks
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Resolves when a pass (or a payment) may have written events.
    pub async fn events_written(&self) {
        self.inner.events_written.notified().await
    }

    /// Counts a pass this server ran, and writes its events: nodes that went
    /// stale or recovered, and `aggregation.failed` for the first failed pass
    /// after one that did not fail. Then wakes the webhook deliveries.
    pub(super) async fn after_own_pass(&self, outcome: &PassOutcome, took: std::time::Duration) {
        let result = match outcome {
            Ok(summary) if summary.errors.is_empty() => PassResult::Ok,
            Ok(_) => PassResult::NodeErrors,
            Err(_) => PassResult::Failed,
        };
        self.inner
            .metrics
            .pass_finished(result, took, self.now_ms());
        let failed_now = outcome.is_err();
        let was_failed = self
            .inner
            .last_failed
            .swap(failed_now, std::sync::atomic::Ordering::Relaxed);
        let failed = match outcome {
            Err(failed) if !was_failed => Some(serde_json::json!({
                "run_id": failed.summary.run_id,
                "message": failed.message,
                "replica": self.replica_name(),
            })),
            _ => None,
        };
        let stale_after = self.stale_after();
        let now = self.now_ms();
        let written = with_store(&self.inner.store, move |s| {
            let changes: Vec<NodeChange> = freshness::node_freshness(s, now, stale_after)?
                .iter()
                .map(|n| NodeChange {
                    node_name: n.record.node_name.clone(),
                    stale: n.stale,
                    data: serde_json::json!({
                        "node_name": n.record.node_name,
                        "newest_hour": n.to_api().newest_hour,
                        "stale_after_secs": stale_after.as_secs(),
                    }),
                })
                .collect();
            s.record_events(&changes, failed, now)
        })
        .await;
        if let Err(e) = written {
            warn!(error = %e, "could not record the events of the pass (stale nodes, a failed \
                  pass); they are written after the next pass that can");
        }
        self.inner.events_written.notify_one();
    }

    /// Wakes the webhook deliveries (a payment or registration may have written events).
    pub fn events_may_be_new(&self) {
        self.inner.events_written.notify_one();
    }
}
