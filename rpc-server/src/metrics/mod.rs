//! Prometheus metrics. Counters and histograms are bumped where the work
//! happens (a node's records committed, an RPC answered); gauges are read from
//! the ledger when scraped (`scrape.rs`) and served by `http.rs`.
//!
//! Every server owns its registry: nothing is installed as the process's
//! global recorder, so several servers in one process (tests) keep apart.
//! Label values come from closed sets (outcomes, reasons, registered method
//! names, node names); user ids are never labels.

pub mod http;
pub mod scrape;

use std::sync::Arc;
use std::time::Duration;

use billing_api::RejectReason;
use metrics::{Counter, Gauge, Histogram, Key, KeyName, Label, Metadata, Recorder, SharedString};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle, PrometheusRecorder};

use crate::store::ApplyOutcome;

/// Upper bounds of the pass duration buckets, in seconds.
const PASS_BUCKETS: &[f64] = &[
    0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0,
];
/// Upper bounds of the RPC latency buckets, in seconds.
const RPC_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// How a pass ended, the `result` label of `billing_passes_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PassResult {
    /// Every node went through.
    Ok,
    /// The pass finished, but some nodes were halted.
    NodeErrors,
    /// The pass failed as a whole (the repo unreachable, the ledger failing).
    Failed,
}

impl PassResult {
    pub fn as_str(self) -> &'static str {
        match self {
            PassResult::Ok => "ok",
            PassResult::NodeErrors => "node_errors",
            PassResult::Failed => "failed",
        }
    }
}

/// One server's metrics. Cheap to clone.
#[derive(Clone)]
pub struct Metrics {
    inner: Arc<Inner>,
}

struct Inner {
    recorder: PrometheusRecorder,
    handle: PrometheusHandle,
}

/// Every metric with its type and help text, described once at start.
const DESCRIPTIONS: &[(&str, Kind, &str)] = &[
    (
        "billing_records_total",
        Kind::Counter,
        "Usage records committed to the ledger, by outcome.",
    ),
    (
        "billing_files_rejected_total",
        Kind::Counter,
        "Usage files rejected whole by passes, by reason (a file still rejected is counted at every pass that meets it).",
    ),
    (
        "billing_passes_total",
        Kind::Counter,
        "Aggregation passes run by this server, by result.",
    ),
    (
        "billing_pass_duration_seconds",
        Kind::Histogram,
        "Duration of the aggregation passes run by this server.",
    ),
    (
        "billing_last_pass_timestamp_seconds",
        Kind::Gauge,
        "Unix time at which this server's last pass finished.",
    ),
    (
        "billing_last_successful_pass_timestamp_seconds",
        Kind::Gauge,
        "Unix time at which this server's last pass that did not fail as a whole finished.",
    ),
    (
        "billing_source_requests_total",
        Kind::Counter,
        "Requests to the billing repo's server, by status class (git fetches: ok or error).",
    ),
    (
        "billing_forge_retries_total",
        Kind::Counter,
        "Forge requests retried after a 5xx, 429, timeout or transport error.",
    ),
    (
        "billing_rpc_requests_total",
        Kind::Counter,
        "JSON-RPC calls answered, by method and result.",
    ),
    (
        "billing_rpc_request_duration_seconds",
        Kind::Histogram,
        "Time to answer a JSON-RPC call, by method.",
    ),
    ("billing_users", Kind::Gauge, "Registered users."),
    (
        "billing_users_overdrawn",
        Kind::Gauge,
        "Users whose balance is below zero.",
    ),
    (
        "billing_balance_cents",
        Kind::Gauge,
        "Sum of all users' balances, in cents.",
    ),
    (
        "billing_held_records",
        Kind::Gauge,
        "Usage records held until their user is registered.",
    ),
    (
        "billing_rejected_items",
        Kind::Gauge,
        "Held and rejected records and files listed by list_rejected.",
    ),
    ("billing_nodes", Kind::Gauge, "Nodes known to the ledger."),
    (
        "billing_nodes_stale",
        Kind::Gauge,
        "Nodes whose newest usage hour is older than --stale-after.",
    ),
    (
        "billing_node_newest_hour_age_seconds",
        Kind::Gauge,
        "Seconds since the end of the newest usage hour consumed from the node.",
    ),
    (
        "billing_node_last_consumed_timestamp_seconds",
        Kind::Gauge,
        "Unix time at which a pass last went over the node.",
    ),
    (
        "billing_node_stale",
        Kind::Gauge,
        "1 when the node's newest usage hour is older than --stale-after, else 0.",
    ),
    (
        "billing_ledger_up",
        Kind::Gauge,
        "1 when the last scrape could read the ledger, else 0 (its gauges then keep their last values).",
    ),
    (
        "billing_ledger_size_bytes",
        Kind::Gauge,
        "Size of the ledger on disk (the redb file, or the PostgreSQL database).",
    ),
];

#[derive(Clone, Copy)]
enum Kind {
    Counter,
    Gauge,
    Histogram,
}

const OUTCOMES: [&str; 5] = ["applied", "duplicate", "conflict", "pending", "invalid"];
/// The reasons a whole file is rejected for.
const FILE_REASONS: [RejectReason; 5] = [
    RejectReason::Unparseable,
    RejectReason::TooLarge,
    RejectReason::TooManyRecords,
    RejectReason::InvalidName,
    RejectReason::LfsPointer,
];

static METADATA: Metadata<'static> =
    Metadata::new(module_path!(), metrics::Level::INFO, Some(module_path!()));

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(
                metrics_exporter_prometheus::Matcher::Full("billing_pass_duration_seconds".into()),
                PASS_BUCKETS,
            )
            .and_then(|b| {
                b.set_buckets_for_metric(
                    metrics_exporter_prometheus::Matcher::Full(
                        "billing_rpc_request_duration_seconds".into(),
                    ),
                    RPC_BUCKETS,
                )
            })
            .expect("the bucket lists are not empty")
            .build_recorder();
        let handle = recorder.handle();
        let metrics = Metrics {
            inner: Arc::new(Inner { recorder, handle }),
        };
        for (name, kind, help) in DESCRIPTIONS {
            let (name, help) = (KeyName::from(*name), SharedString::from(*help));
            let r = &metrics.inner.recorder;
            match kind {
                Kind::Counter => r.describe_counter(name, None, help),
                Kind::Gauge => r.describe_gauge(name, None, help),
                Kind::Histogram => r.describe_histogram(name, None, help),
            }
        }
        // Series that exist from the start, so that rates and alerts see zeros.
        for outcome in OUTCOMES {
            let _ = metrics.counter("billing_records_total", &[("outcome", outcome)]);
        }
        for reason in FILE_REASONS {
            let _ = metrics.counter(
                "billing_files_rejected_total",
                &[("reason", reason.as_str())],
            );
        }
        for result in [PassResult::Ok, PassResult::NodeErrors, PassResult::Failed] {
            let _ = metrics.counter("billing_passes_total", &[("result", result.as_str())]);
        }
        metrics
    }

    pub(crate) fn counter(&self, name: &'static str, labels: &[(&'static str, &str)]) -> Counter {
        self.inner
            .recorder
            .register_counter(&key(name, labels), &METADATA)
    }

    pub(crate) fn gauge(&self, name: &'static str, labels: &[(&'static str, &str)]) -> Gauge {
        self.inner
            .recorder
            .register_gauge(&key(name, labels), &METADATA)
    }

    fn histogram(&self, name: &'static str, labels: &[(&'static str, &str)]) -> Histogram {
        self.inner
            .recorder
            .register_histogram(&key(name, labels), &METADATA)
    }

    /// The records and files of one node's committed work.
    pub fn node_committed(&self, o: &ApplyOutcome) {
        let counts = [o.applied, o.duplicate, o.conflict, o.pending, o.invalid];
        for (outcome, n) in OUTCOMES.iter().zip(counts) {
            if n > 0 {
                self.counter("billing_records_total", &[("outcome", outcome)])
                    .increment(n);
            }
        }
        for (reason, n) in &o.files_rejected_by {
            self.counter(
                "billing_files_rejected_total",
                &[("reason", reason.as_str())],
            )
            .increment(*n);
        }
    }

    /// A pass this server ran, ended at `finished_ms`.
    pub fn pass_finished(&self, result: PassResult, took: Duration, finished_ms: u64) {
        self.counter("billing_passes_total", &[("result", result.as_str())])
            .increment(1);
        self.histogram("billing_pass_duration_seconds", &[])
            .record(took.as_secs_f64());
        let at = finished_ms as f64 / 1000.0;
        self.gauge("billing_last_pass_timestamp_seconds", &[])
            .set(at);
        if result != PassResult::Failed {
            self.gauge("billing_last_successful_pass_timestamp_seconds", &[])
                .set(at);
        }
    }

    /// A JSON-RPC call answered; `method` is a registered name (or `other`).
    pub fn rpc_answered(&self, method: &str, ok: bool, took: Duration) {
        let result = if ok { "ok" } else { "error" };
        self.counter(
            "billing_rpc_requests_total",
            &[("method", method), ("result", result)],
        )
        .increment(1);
        self.histogram(
            "billing_rpc_request_duration_seconds",
            &[("method", method)],
        )
        .record(took.as_secs_f64());
    }

    /// The text exposition of every metric as it stands (see `scrape.rs` for
    /// the gauges read from the ledger first).
    pub fn render(&self) -> String {
        self.inner.handle.render()
    }
}

fn key(name: &'static str, labels: &[(&'static str, &str)]) -> Key {
    let labels: Vec<Label> = labels
        .iter()
        .map(|(k, v)| Label::new(*k, v.to_string()))
        .collect();
    Key::from_parts(name, labels)
}
