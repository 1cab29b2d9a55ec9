//! A scrape: the gauges read from the ledger and the source's request
//! counters, then the text exposition of every metric.

use tracing::warn;

use crate::aggregate::Aggregator;
use crate::aggregate::freshness::node_freshness;
use crate::clock::now_ms;

/// Refreshes the gauges and renders every metric. A ledger that cannot be
/// read leaves its gauges at their last values and sets `billing_ledger_up`
/// to 0: the counters are still served, since they tell what went wrong.
pub async fn scrape(aggregator: &Aggregator) -> String {
    let metrics = aggregator.metrics();
    let stale_after = aggregator.stale_after();
    let read = aggregator
        .store()
        .on_blocking_thread(move |s| {
            let now = now_ms();
            Ok((
                s.overview_counts()?,
                node_freshness(s, now, stale_after)?,
                s.ledger_size_bytes()?,
                now,
            ))
        })
        .await;
    match read {
        Ok((counts, nodes, size, now)) => {
            let stale = nodes.iter().filter(|n| n.stale).count();
            let gauges = [
                ("billing_ledger_up", 1.0),
                ("billing_users", counts.total_users as f64),
                ("billing_users_overdrawn", counts.overdrawn_users as f64),
                ("billing_balance_cents", counts.total_balance_cents as f64),
                ("billing_held_records", counts.pending_records as f64),
                ("billing_rejected_items", counts.rejected_items as f64),
                ("billing_ledger_size_bytes", size as f64),
                ("billing_nodes", nodes.len() as f64),
                ("billing_nodes_stale", stale as f64),
            ];
            for (name, value) in gauges {
                metrics.gauge(name, &[]).set(value);
            }
            for node in &nodes {
                let labels = [("node", node.record.node_name.as_str())];
                metrics
                    .gauge("billing_node_stale", &labels)
                    .set(if node.stale { 1.0 } else { 0.0 });
                if let Some(age) = node.age(now) {
                    metrics
                        .gauge("billing_node_newest_hour_age_seconds", &labels)
                        .set(age.as_secs_f64());
                }
                if let Some(at) = node.record.last_run_at_ms {
                    metrics
                        .gauge("billing_node_last_consumed_timestamp_seconds", &labels)
                        .set(at as f64 / 1000.0);
                }
            }
        }
        Err(e) => {
            warn!(error = %e, "metrics: cannot read the ledger; its gauges keep their last values");
            metrics.gauge("billing_ledger_up", &[]).set(0.0);
        }
    }
    let source = aggregator.source();
    let (classes, retries) = source.request_stats().snapshot();
    for (class, n) in classes {
        metrics
            .counter(
                "billing_source_requests_total",
                &[("source", source.kind()), ("class", class)],
            )
            .absolute(n);
    }
    // Served for a git source too (0), so that dashboards need no special case.
    metrics
        .counter("billing_forge_retries_total", &[])
        .absolute(retries);
    metrics.render()
}
