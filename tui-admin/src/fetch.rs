//! Runs RPC calls in spawned tasks and sends their results back as actions, so
//! drawing and key handling never wait for the network.

use std::sync::Arc;
use std::time::Duration;

use billing_api::CheckKind;
use billing_api::rpc::BillingApiClient;
use jsonrpsee::core::client::{Error as ClientError, Subscription};
use jsonrpsee::http_client::HttpClient;
use tokio::sync::mpsc::UnboundedSender;

use crate::app::{
    Action, ErrorKind, FetchError, PAGE_LIMIT, RECENT_RUNS, RpcAnswer, RpcCall, UserDetailData,
};
use crate::config::{Connection, REQUEST_TIMEOUT};
use crate::event::Event;

/// Rows of each list on the user detail screen.
const DETAIL_ROWS: u32 = 20;
/// Wait before reopening a dropped WebSocket subscription.
const RESUBSCRIBE_AFTER: Duration = Duration::from_secs(3);

/// The HTTP status of an answer that refused a call (401: a wrong secret).
fn refused_with(err: &ClientError) -> Option<u16> {
    use jsonrpsee::http_client::transport::Error as Transport;
    match err {
        ClientError::Transport(inner) => match inner.downcast_ref::<Transport>() {
            Some(Transport::Rejected { status_code }) => Some(*status_code),
            _ => None,
        },
        _ => None,
    }
}

/// Classifies a client error for the header and the 401 message.
pub fn classify(err: &ClientError) -> FetchError {
    match err {
        ClientError::Call(obj) => FetchError {
            kind: ErrorKind::Server,
            message: format!("server error {}: {}", obj.code(), obj.message()),
        },
        ClientError::RequestTimeout => FetchError {
            kind: ErrorKind::Unreachable,
            message: format!("no answer within {}s", REQUEST_TIMEOUT.as_secs()),
        },
        other => {
            let kind = if refused_with(other) == Some(401) {
                ErrorKind::Unauthorized
            } else {
                ErrorKind::Unreachable
            };
            let message = billing_api::text::error_chain(other);
            FetchError { kind, message }
        }
    }
}

/// Starts [`RpcCall`]s on the runtime; results come back through `tx`.
#[derive(Clone)]
pub struct Fetcher {
    client: Arc<HttpClient>,
    /// For the ledger checks, with a longer timeout (the same client unless set).
    checks: Arc<HttpClient>,
    tx: UnboundedSender<Event>,
}

impl Fetcher {
    pub fn new(client: HttpClient, tx: UnboundedSender<Event>) -> Self {
        let client = Arc::new(client);
        Self {
            checks: client.clone(),
            client,
            tx,
        }
    }

    /// Runs the ledger checks (`R`, `V`) on `client` (see `CHECK_TIMEOUT`).
    pub fn with_check_client(mut self, client: HttpClient) -> Self {
        self.checks = Arc::new(client);
        self
    }

    pub fn execute(&self, call: RpcCall) {
        let client = match call {
            RpcCall::Check(_) => self.checks.clone(),
            _ => self.client.clone(),
        };
        let tx = self.tx.clone();
        tokio::spawn(async move {
            let answer = run_call(&client, call).await;
            // The loop may have quit meanwhile; nothing to do then.
            let _ = tx.send(Event::Action(Action::Answer(answer)));
        });
    }
}

async fn run_call(client: &HttpClient, call: RpcCall) -> RpcAnswer {
    let err = |e: ClientError| classify(&e);
    match call {
        RpcCall::Overview => RpcAnswer::Overview(client.overview().await.map_err(err)),
        RpcCall::AggregatorState => {
            RpcAnswer::AggregatorState(client.aggregator_state().await.map_err(err))
        }
        RpcCall::Runs => RpcAnswer::Runs(
            client
                .list_runs(None, Some(RECENT_RUNS))
                .await
                .map(|p| p.items)
                .map_err(err),
        ),
        RpcCall::Users(req, query) => {
            let result = client
                .list_users(
                    req.cursor.clone(),
                    Some(PAGE_LIMIT),
                    query.sort_param(),
                    query.filter(),
                )
                .await;
            RpcAnswer::Users(req, query, result.map_err(err))
        }
        RpcCall::Payments(req, user) => {
            let result = client
                .list_payments(user, req.cursor.clone(), Some(PAGE_LIMIT))
                .await;
            RpcAnswer::Payments(req, result.map_err(err))
        }
        RpcCall::Rejected(req) => {
            let result = client
                .list_rejected(req.cursor.clone(), Some(PAGE_LIMIT))
                .await;
            RpcAnswer::Rejected(req, result.map_err(err))
        }
        RpcCall::Events(req) => {
            let result = client
                .list_events(req.cursor.clone(), Some(PAGE_LIMIT), None)
                .await;
            RpcAnswer::Events(req, result.map_err(err))
        }
        RpcCall::Detail(sid) => {
            let result = async {
                let balance = client.get_balance(sid.clone()).await?;
                let payments = client
                    .list_payments(Some(sid.clone()), None, Some(DETAIL_ROWS))
                    .await?;
                let consumed = client
                    .list_consumed(Some(sid.clone()), None, Some(DETAIL_ROWS), None, None)
                    .await?;
                Ok::<_, ClientError>(UserDetailData {
                    balance,
                    payments: payments.items,
                    consumed: consumed.items,
                })
            }
            .await;
            RpcAnswer::Detail(sid, result.map_err(err))
        }
        RpcCall::AggregateNow => RpcAnswer::Aggregated(client.aggregate_now().await.map_err(err)),
        RpcCall::Check(kind) => {
            let result = match kind {
                CheckKind::Reconcile => client.reconcile().await.map(drop),
                CheckKind::Verify => client.verify().await.map(drop),
            };
            // The check is detached on the server: it goes on without us.
            let result = result.map_err(|e| match e {
                ClientError::RequestTimeout => FetchError {
                    kind: ErrorKind::Server,
                    message: "no answer yet; the check goes on on the server and its outcome \
                              shows here when it ends"
                        .into(),
                },
                e => err(e),
            });
            RpcAnswer::Checked(kind, result)
        }
    }
}

/// Keeps a `subscribe_runs` WebSocket subscription open and turns every
/// notified pass into an instant refresh; reports whether it is up so the
/// header can say "live" or "polling". Polling continues either way.
pub fn spawn_run_subscription(
    conn: Connection,
    tx: UnboundedSender<Event>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            if let Ok(client) = conn.ws_client().await
                && let Ok(mut sub) = client.subscribe_runs().await
            {
                if tx
                    .send(Event::Action(Action::Answer(RpcAnswer::Live(true))))
                    .is_err()
                {
                    return;
                }
                forward_runs(&mut sub, &tx).await;
            }
            if tx
                .send(Event::Action(Action::Answer(RpcAnswer::Live(false))))
                .is_err()
            {
                return;
            }
            tokio::time::sleep(RESUBSCRIBE_AFTER).await;
        }
    })
}

async fn forward_runs(
    sub: &mut Subscription<billing_api::types::AggregateSummary>,
    tx: &UnboundedSender<Event>,
) {
    while let Some(Ok(summary)) = sub.next().await {
        if tx
            .send(Event::Action(Action::Answer(RpcAnswer::RunNotified(
                summary,
            ))))
            .is_err()
        {
            return;
        }
    }
}
