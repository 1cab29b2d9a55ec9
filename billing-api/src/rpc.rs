//! The JSON-RPC surface of the aggregator. The server implements
//! `BillingApiServer` (feature `server`); clients use `BillingApiClient`
//! (feature `client`). Params are passed by name.

// Unused when only the client is generated: its macro rewrites the return types.
#[allow(unused_imports)]
use jsonrpsee::core::RpcResult;
use jsonrpsee::proc_macros::rpc;

use crate::checks::CheckOutcome;
use crate::events::{Event, EventType, UserThreshold};
use crate::reconcile::ReconcileReport;
use crate::types::*;
use crate::usage::{UsageGroupBy, UsageSummary};

#[cfg_attr(all(feature = "server", feature = "client"), rpc(server, client))]
#[cfg_attr(all(feature = "server", not(feature = "client")), rpc(server))]
#[cfg_attr(all(feature = "client", not(feature = "server")), rpc(client))]
pub trait BillingApi {
    /// Runs one aggregation pass (serialized with every other pass) and returns its summary.
    #[method(name = "aggregate_now", param_kind = map)]
    async fn aggregate_now(&self) -> RpcResult<AggregateSummary>;

    /// Lists users with their billing figures, ordered by `sort` (default
    /// `user_sid`), only those matching `filter` if given. A filter the order
    /// cannot skip to reads at most 10,000 users per page: such a page may
    /// come back short, even empty, with a `next_cursor`.
    #[method(name = "list_users", param_kind = map)]
    async fn list_users(
        &self,
        cursor: Option<String>,
        limit: Option<u32>,
        sort: Option<UserSort>,
        filter: Option<UserFilter>,
    ) -> RpcResult<Page<UserBilling>>;

    /// Lists payments, newest first, optionally for one user.
    #[method(name = "list_payments", param_kind = map)]
    async fn list_payments(
        &self,
        user_sid: Option<String>,
        cursor: Option<String>,
        limit: Option<u32>,
    ) -> RpcResult<Page<Payment>>;

    /// Lists applied usage records, newest first, optionally for one user and
    /// applied in `[from, to)` (RFC 3339).
    #[method(name = "list_consumed", param_kind = map)]
    async fn list_consumed(
        &self,
        user_sid: Option<String>,
        cursor: Option<String>,
        limit: Option<u32>,
        from: Option<String>,
        to: Option<String>,
    ) -> RpcResult<Page<ConsumedRecord>>;

    /// One user's applied usage applied in `[from, to)` (RFC 3339), summed by
    /// day, node or resource: where the credit went.
    #[method(name = "usage_summary", param_kind = map)]
    async fn usage_summary(
        &self,
        user_sid: String,
        from: Option<String>,
        to: Option<String>,
        group_by: Option<UsageGroupBy>,
    ) -> RpcResult<UsageSummary>;

    /// Sets a user's low-balance threshold in cents (`null`: back to the
    /// server's `--low-balance-cents`). Takes effect at the next balance change.
    #[method(name = "set_user_threshold", param_kind = map)]
    async fn set_user_threshold(
        &self,
        user_sid: String,
        low_balance_cents: Option<i64>,
    ) -> RpcResult<UserThreshold>;

    /// Lists events (balance alerts, failed passes, stale nodes), newest
    /// first, with each webhook delivery's state; only one `type` if given.
    #[method(name = "list_events", param_kind = map)]
    async fn list_events(
        &self,
        cursor: Option<String>,
        limit: Option<u32>,
        #[argument(rename = "type")] kind: Option<EventType>,
    ) -> RpcResult<Page<Event>>;

    /// Lists held and rejected records and files, newest first.
    #[method(name = "list_rejected", param_kind = map)]
    async fn list_rejected(
        &self,
        cursor: Option<String>,
        limit: Option<u32>,
    ) -> RpcResult<Page<RejectedItem>>;

    /// Compares the ledger with the billing repo at its head, read-only: records
    /// lost, orphaned or rewritten, and balances that do not add up. Waits for a
    /// running pass, and no pass starts while it runs.
    #[method(name = "reconcile", param_kind = map)]
    async fn reconcile(&self) -> RpcResult<ReconcileReport>;

    /// Checks the ledger against itself, read-only, as `rpc-server verify`
    /// does: the stored counters against the rows, every balance against its
    /// payments and applied records. Returns its outcome.
    #[method(name = "verify", param_kind = map)]
    async fn verify(&self) -> RpcResult<CheckOutcome>;

    /// Lists the summaries of recent aggregation passes, newest first.
    #[method(name = "list_runs", param_kind = map)]
    async fn list_runs(
        &self,
        cursor: Option<String>,
        limit: Option<u32>,
    ) -> RpcResult<Page<AggregateSummary>>;

    /// Health, last pass and per-node state of the aggregator.
    #[method(name = "aggregator_state", param_kind = map)]
    async fn aggregator_state(&self) -> RpcResult<AggregatorState>;

    /// Creates a user, or updates its name and email (idempotent).
    #[method(name = "register_user", param_kind = map)]
    async fn register_user(
        &self,
        user_sid: String,
        display_name: Option<String>,
        email: Option<String>,
    ) -> RpcResult<UserBilling>;

    /// Credits a user's balance; idempotent by `payment_id`.
    #[method(name = "record_payment", param_kind = map)]
    async fn record_payment(
        &self,
        payment_id: String,
        user_sid: String,
        amount_cents: i64,
        kind: Option<String>,
        reference: Option<String>,
    ) -> RpcResult<Payment>;

    /// Balance and totals of one user.
    #[method(name = "get_balance", param_kind = map)]
    async fn get_balance(&self, user_sid: String) -> RpcResult<Balance>;

    /// Headline figures of the whole ledger.
    #[method(name = "overview", param_kind = map)]
    async fn overview(&self) -> RpcResult<Overview>;

    /// The OpenRPC document describing this API.
    #[method(name = "rpc.discover", param_kind = map)]
    async fn discover(&self) -> RpcResult<serde_json::Value>;

    /// Notifies the summary of every finished aggregation pass (WebSocket only).
    #[subscription(name = "subscribe_runs" => "run", unsubscribe = "unsubscribe_runs", item = AggregateSummary)]
    async fn subscribe_runs(&self) -> jsonrpsee::core::SubscriptionResult;
}
