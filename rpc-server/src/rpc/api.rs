//! `BillingApiServer`: each handler validates its params and delegates to the
//! ledger store or the aggregator.

use std::sync::Arc;

use billing_api::otoml::MAX_SID_BYTES;
use billing_api::rpc::BillingApiServer;
use billing_api::types::*;
use billing_api::{
    CheckOutcome, Event, EventType, ReconcileReport, UsageGroupBy, UsageSummary, UserThreshold,
};
use jsonrpsee::core::{RpcResult, SubscriptionResult, async_trait};
use jsonrpsee::{PendingSubscriptionSink, SubscriptionMessage};
use tokio::sync::broadcast::error::RecvError;

use super::error::{invalid_params, pass_failed, reconcile_failed, store_error};
use crate::aggregate::freshness::node_freshness;
use crate::aggregate::{Aggregator, overall_health};
use crate::blocking::with_store;
use crate::clock::now_ms;
use crate::store::{Store, StoreError, UserQuery, Window, check_identifier};

/// The JSON-RPC handler. Cheap to clone.
#[derive(Clone)]
pub struct BillingRpc {
    aggregator: Aggregator,
    openrpc: Arc<serde_json::Value>,
}

impl BillingRpc {
    pub fn new(aggregator: Aggregator) -> Self {
        Self {
            aggregator,
            openrpc: Arc::new(super::discover::document()),
        }
    }

    fn store(&self) -> &Store {
        self.aggregator.store()
    }

    /// Runs `op` on the ledger on a blocking thread (reads and writes alike),
    /// its error mapped to JSON-RPC.
    async fn on_store<T, F>(&self, op: F) -> RpcResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Store) -> Result<T, StoreError> + Send + 'static,
    {
        with_store(self.store(), op).await.map_err(store_error)
    }
}

/// Checks a page size: default 100, at most 1000.
fn page_limit(limit: Option<u32>) -> RpcResult<u32> {
    match limit {
        None => Ok(DEFAULT_PAGE_LIMIT),
        Some(l) if (1..=MAX_PAGE_LIMIT).contains(&l) => Ok(l),
        Some(l) => Err(invalid_params(format!(
            "limit must be between 1 and {MAX_PAGE_LIMIT}, got {l}; page through larger lists with next_cursor"
        ))),
    }
}

/// Checks a `user_sid` a lookup names by the rules of registration, so a
/// malformed one gets a clear invalid-params error instead of being quoted
/// back in "not found".
fn lookup_sid(user_sid: Option<&str>) -> RpcResult<()> {
    match user_sid {
        Some(sid) => check_identifier("user_sid", sid, MAX_SID_BYTES).map_err(store_error),
        None => Ok(()),
    }
}

#[async_trait]
impl BillingApiServer for BillingRpc {
    async fn aggregate_now(&self) -> RpcResult<AggregateSummary> {
        self.aggregator
            .run_pass()
            .await
            .map_err(|e| pass_failed(&e))
    }

    async fn reconcile(&self) -> RpcResult<ReconcileReport> {
        // A task of its own: a caller that gives up (a client timeout) does not
        // cancel the check, whose outcome still lands in aggregator_state.
        let aggregator = self.aggregator.clone();
        tokio::spawn(async move { aggregator.reconcile().await })
            .await
            .map_err(|e| reconcile_failed(&e.into()))?
            .map_err(|e| reconcile_failed(&e))
    }

    async fn list_users(
        &self,
        cursor: Option<String>,
        limit: Option<u32>,
        sort: Option<UserSort>,
        filter: Option<UserFilter>,
    ) -> RpcResult<Page<UserBilling>> {
        let limit = page_limit(limit)?;
        let query = UserQuery::new(
            sort.unwrap_or_default(),
            filter.unwrap_or_default(),
            cursor.as_deref(),
        )
        .map_err(store_error)?;
        self.store()
            .read_users(query, limit)
            .await
            .map_err(store_error)
    }

    async fn list_payments(
        &self,
        user_sid: Option<String>,
        cursor: Option<String>,
        limit: Option<u32>,
    ) -> RpcResult<Page<Payment>> {
        let limit = page_limit(limit)?;
        lookup_sid(user_sid.as_deref())?;
        self.on_store(move |s| s.list_payments(user_sid.as_deref(), cursor.as_deref(), limit))
            .await
    }

    async fn list_consumed(
        &self,
        user_sid: Option<String>,
        cursor: Option<String>,
        limit: Option<u32>,
        from: Option<String>,
        to: Option<String>,
    ) -> RpcResult<Page<ConsumedRecord>> {
        let limit = page_limit(limit)?;
        lookup_sid(user_sid.as_deref())?;
        match Window::parse(from.as_deref(), to.as_deref()).map_err(store_error)? {
            None => {
                self.on_store(move |s| {
                    s.list_consumed(user_sid.as_deref(), cursor.as_deref(), limit)
                })
                .await
            }
            Some(window) => {
                self.on_store(move |s| {
                    s.list_consumed_in(user_sid.as_deref(), cursor.as_deref(), limit, window)
                })
                .await
            }
        }
    }

    async fn usage_summary(
        &self,
        user_sid: String,
        from: Option<String>,
        to: Option<String>,
        group_by: Option<UsageGroupBy>,
    ) -> RpcResult<UsageSummary> {
        lookup_sid(Some(&user_sid))?;
        let window = Window::parse(from.as_deref(), to.as_deref()).map_err(store_error)?;
        let group_by = group_by.unwrap_or_default();
        let mut summary = self
            .on_store(move |s| s.usage_summary(&user_sid, window, group_by))
            .await?;
        (summary.from, summary.to) = (from, to);
        Ok(summary)
    }

    async fn list_rejected(
        &self,
        cursor: Option<String>,
        limit: Option<u32>,
    ) -> RpcResult<Page<RejectedItem>> {
        let limit = page_limit(limit)?;
        self.on_store(move |s| s.list_rejected(cursor.as_deref(), limit))
            .await
    }

    async fn list_runs(
        &self,
        cursor: Option<String>,
        limit: Option<u32>,
    ) -> RpcResult<Page<AggregateSummary>> {
        let limit = page_limit(limit)?;
        self.on_store(move |s| s.list_runs(cursor.as_deref(), limit))
            .await
    }

    async fn verify(&self) -> RpcResult<CheckOutcome> {
        // Detached, as `reconcile`.
        let aggregator = self.aggregator.clone();
        tokio::spawn(async move { aggregator.verify().await })
            .await
            .map_err(|e| store_error(StoreError::Storage(format!("verify task failed: {e}"))))?
            .map_err(store_error)
    }

    async fn aggregator_state(&self) -> RpcResult<AggregatorState> {
        let me = self.aggregator.replica_name();
        let checks = self.aggregator.checks();
        let stale_after = self.aggregator.stale_after();
        self.on_store(move |s| {
            let last_run = s.last_run()?;
            let nodes = node_freshness(s, now_ms(), stale_after)?
                .iter()
                .map(|n| n.to_api())
                .collect();
            // On redb only this server can have run a pass.
            let last_run_replica = match s.last_run_replica()? {
                Some(replica) => Some(replica),
                None => last_run.as_ref().map(|_| me.clone()),
            };
            Ok(AggregatorState {
                health: overall_health(s, last_run.as_ref()),
                last_run,
                last_run_replica,
                replica: me,
                nodes,
                last_verify: checks.last_verify,
                last_reconcile: checks.last_reconcile,
                check_running: checks.running,
            })
        })
        .await
    }

    async fn register_user(
        &self,
        user_sid: String,
        display_name: Option<String>,
        email: Option<String>,
    ) -> RpcResult<UserBilling> {
        let req = RegisterUser {
            user_sid,
            display_name,
            email,
        };
        let user = self
            .on_store(move |s| s.register_user(&req, now_ms()))
            .await?;
        // Held records applied at registration may have crossed a threshold.
        self.aggregator.events_may_be_new();
        Ok(user)
    }

    async fn record_payment(
        &self,
        payment_id: String,
        user_sid: String,
        amount_cents: i64,
        kind: Option<String>,
        reference: Option<String>,
    ) -> RpcResult<Payment> {
        let req = RecordPayment {
            payment_id,
            user_sid,
            amount_cents,
            kind,
            reference,
        };
        let payment = self
            .on_store(move |s| s.record_payment(&req, now_ms()))
            .await?;
        // A top-up may have recovered a balance.
        self.aggregator.events_may_be_new();
        Ok(payment)
    }

    async fn get_balance(&self, user_sid: String) -> RpcResult<Balance> {
        // The hottest call other services make: read on the runtime, with no
        // hop to the blocking pool (see `Store::read_balance`).
        lookup_sid(Some(&user_sid))?;
        self.store()
            .read_balance(&user_sid)
            .await
            .map_err(store_error)
    }

    async fn set_user_threshold(
        &self,
        user_sid: String,
        low_balance_cents: Option<i64>,
    ) -> RpcResult<UserThreshold> {
        lookup_sid(Some(&user_sid))?;
        self.on_store(move |s| s.set_user_threshold(&user_sid, low_balance_cents, now_ms()))
            .await
    }

    async fn list_events(
        &self,
        cursor: Option<String>,
        limit: Option<u32>,
        kind: Option<EventType>,
    ) -> RpcResult<Page<Event>> {
        let limit = page_limit(limit)?;
        let urls = self.aggregator.webhook_urls();
        self.on_store(move |s| s.list_events(cursor.as_deref(), limit, kind, &urls))
            .await
    }

    async fn overview(&self) -> RpcResult<Overview> {
        let stale_after = self.aggregator.stale_after();
        self.on_store(move |s| {
            let counts = s.overview_counts()?;
            let last_run = s.last_run()?;
            let stale_nodes = node_freshness(s, now_ms(), stale_after)?
                .iter()
                .filter(|n| n.stale)
                .count() as u64;
            Ok(Overview {
                total_users: counts.total_users,
                total_balance_cents: counts.total_balance_cents,
                overdrawn_users: counts.overdrawn_users,
                consumed_records: counts.consumed_records,
                pending_records: counts.pending_records,
                rejected_items: counts.rejected_items,
                health: overall_health(s, last_run.as_ref()),
                last_run_at: last_run.map(|r| r.finished_at),
                stale_nodes,
            })
        })
        .await
    }

    async fn discover(&self) -> RpcResult<serde_json::Value> {
        Ok((*self.openrpc).clone())
    }

    async fn subscribe_runs(&self, pending: PendingSubscriptionSink) -> SubscriptionResult {
        let mut runs = self.aggregator.subscribe();
        let sink = pending.accept().await?;
        loop {
            tokio::select! {
                _ = sink.closed() => return Ok(()),
                run = runs.recv() => match run {
                    Ok(summary) => {
                        let msg: SubscriptionMessage = serde_json::value::to_raw_value(&summary)?.into();
                        if sink.send(msg).await.is_err() {
                            return Ok(());
                        }
                    }
                    // A slow subscriber missed some passes; the next one still arrives.
                    Err(RecvError::Lagged(_)) => continue,
                    Err(RecvError::Closed) => return Ok(()),
                },
            }
        }
    }
}
