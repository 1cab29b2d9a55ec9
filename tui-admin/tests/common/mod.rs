//! Realistic fixtures shared by the rendering and key-handling tests: a small
//! ledger as the server would report it, fed through `App::update` exactly as
//! finished fetches are.

#![allow(dead_code)]

use billing_api::types::*;
use billing_api::{
    CheckKind, CheckOutcome, CheckResult, Delivery, DeliveryStatus, Event, EventType,
};
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use tui_admin::app::{
    Action, App, ErrorKind, FetchError, RpcAnswer, RpcCall, UserDetailData, UserQuery,
};

/// The dashboard clock in every test: 2026-11-27T10:00:00Z.
pub const NOW: &str = "2026-11-27T10:00:00Z";

pub fn now_millis() -> u64 {
    rfc3339_to_millis(NOW).unwrap()
}

/// The clock reaches `now_millis`: the fetches the tick starts.
pub fn tick(app: &mut App, now_millis: u64) -> Vec<RpcCall> {
    app.update(Action::Tick { now_millis })
}

/// A dashboard that just opened, with the fetches it started.
pub fn fresh() -> (App, Vec<RpcCall>) {
    let mut app = App::new(
        "http://127.0.0.1:8787",
        "file ./demo-data/admin.secret",
        2000,
    );
    let calls = app.start(now_millis());
    (app, calls)
}

pub fn user(i: u32, paid: i64, consumed: i64) -> UserBilling {
    UserBilling {
        user_sid: format!("u-{i:04}"),
        display_name: Some(format!("User {i:04}")),
        email: Some(format!("u{i:04}@example.org")),
        created_at: "2026-11-20T08:00:00.000Z".into(),
        credit_balance_cents: paid - consumed,
        total_paid_cents: paid,
        total_consumed_cents: consumed,
    }
}

pub fn users() -> Vec<UserBilling> {
    vec![
        user(0, 50_000, 12_345),
        user(1, 10_000, 10_250),
        user(2, 250_000, 1_999),
        user(3, 0, 0),
        user(4, 1_000_000, 987_654),
        user(5, 2_500, 4_100),
    ]
}

pub fn overview() -> Overview {
    Overview {
        total_users: 1_000_000,
        total_balance_cents: 123_456_789,
        overdrawn_users: 2,
        consumed_records: 48_213,
        pending_records: 3,
        rejected_items: 5, // the 3 held records and 2 rejected for good
        health: Health::Degraded,
        last_run_at: Some("2026-11-27T09:58:00.000Z".into()),
        stale_nodes: 1,
    }
}

pub fn run(id: u64, applied: u64, errors: bool) -> AggregateSummary {
    AggregateSummary {
        run_id: id,
        started_at: format!("2026-11-27T09:{:02}:00.000Z", 10 + id),
        finished_at: format!("2026-11-27T09:{:02}:01.250Z", 10 + id),
        head_commit: Some("9f3c2a1b7e4d5c6f8a9b0c1d2e3f4a5b6c7d8e9f".into()),
        nodes_total: 4,
        nodes_skipped: 1,
        files_read: 12,
        files_rejected: u64::from(errors),
        records_applied: applied,
        records_duplicate: 5,
        records_conflict: u64::from(errors),
        records_pending: 3,
        records_invalid: 0,
        cents_debited: applied as i64 * 37,
        errors: if errors {
            vec![NodeError {
                node_name: Some("node-c".into()),
                message: "usage_2026-11-27-08.otoml: not valid OTOML (line 3)".into(),
            }]
        } else {
            vec![]
        },
    }
}

pub fn runs() -> Vec<AggregateSummary> {
    // Newest first, as the API lists them.
    (1..=8)
        .rev()
        .map(|i| run(i, 100 + i * 37, i == 8))
        .collect()
}

pub fn state() -> AggregatorState {
    AggregatorState {
        health: Health::Degraded,
        last_run: Some(run(48, 1_234, true)),
        last_run_replica: Some("billing-a:4242".into()),
        replica: "billing-a:4242".into(),
        last_verify: Some(CheckOutcome {
            kind: CheckKind::Verify,
            result: CheckResult::Consistent,
            summary: "1,204 users checked: counters and balances agree with the rows".into(),
            finished_at: "2026-11-27T09:40:00.000Z".into(),
            elapsed_ms: 850,
        }),
        last_reconcile: Some(CheckOutcome {
            kind: CheckKind::Reconcile,
            result: CheckResult::Differences,
            summary: "2 unapplied; see `rpc-server reconcile`".into(),
            finished_at: "2026-11-27T09:50:00.000Z".into(),
            elapsed_ms: 5_600,
        }),
        check_running: None,
        nodes: vec![
            NodeState {
                node_name: "node-a".into(),
                last_commit_sha: Some("9f3c2a1b7e4d5c6f8a9b".into()),
                last_run_at: Some("2026-11-27T09:58:01.000Z".into()),
                records_consumed_total: 20_100,
                status: NodeStatus::Ok,
                last_error: None,
                newest_hour: Some("2026-11-27-08".into()),
                stale: false,
            },
            NodeState {
                node_name: "node-b".into(),
                last_commit_sha: Some("1a2b3c4d5e6f7a8b9c0d".into()),
                last_run_at: Some("2026-11-27T09:58:01.000Z".into()),
                records_consumed_total: 18_002,
                status: NodeStatus::Ok,
                last_error: None,
                newest_hour: Some("2026-11-27-08".into()),
                stale: false,
            },
            NodeState {
                node_name: "node-c".into(),
                last_commit_sha: Some("9f3c2a1b7e4d5c6f8a9b".into()),
                last_run_at: Some("2026-11-27T09:58:01.000Z".into()),
                records_consumed_total: 10_111,
                status: NodeStatus::Error,
                last_error: Some("usage_2026-11-27-08.otoml: not valid OTOML (line 3)".into()),
                newest_hour: Some("2026-11-27-07".into()),
                stale: false,
            },
            NodeState {
                node_name: "node-old".into(),
                last_commit_sha: Some("0badc0ffee0badc0ffee".into()),
                last_run_at: Some("2026-11-25T07:00:00.000Z".into()),
                records_consumed_total: 42,
                status: NodeStatus::Ok,
                last_error: None,
                newest_hour: Some("2026-11-25-06".into()),
                stale: true,
            },
        ],
    }
}

pub fn payments() -> Vec<Payment> {
    vec![
        Payment {
            payment_id: "pay-000123".into(),
            user_sid: "u-0001".into(),
            amount_cents: 10_000,
            kind: "topup".into(),
            reference: Some("invoice 2026-11".into()),
            created_at: "2026-11-27T09:30:00.000Z".into(),
        },
        Payment {
            payment_id: "pay-000122".into(),
            user_sid: "u-0000".into(),
            amount_cents: 50_000,
            kind: "topup".into(),
            reference: None,
            created_at: "2026-11-26T14:12:09.000Z".into(),
        },
        Payment {
            payment_id: "pay-000121".into(),
            user_sid: "u-0004".into(),
            amount_cents: -2_500,
            kind: "refund".into(),
            reference: Some("ticket 991".into()),
            created_at: "2026-11-25T11:00:00.000Z".into(),
        },
    ]
}

pub fn consumed(user_sid: &str) -> Vec<ConsumedRecord> {
    (0..3)
        .map(|i| ConsumedRecord {
            idempotency_key: format!("node-a:2026-11-27-0{}:{i}", 7 + i),
            user_sid: user_sid.into(),
            node_name: "node-a".into(),
            cost_cents: 1_234 + i as i64,
            resource: Some("vm.cpu".into()),
            applied_at: format!("2026-11-27T09:0{i}:00.000Z"),
            commit_sha: "9f3c2a1b7e4d5c6f8a9b".into(),
            file_path: format!("nodes/node-a/usage_2026-11-27-0{}.otoml", 7 + i),
        })
        .collect()
}

pub fn rejected() -> Vec<RejectedItem> {
    vec![
        RejectedItem {
            id: "rej-2".into(),
            reason: RejectReason::Conflict,
            node_name: "node-b".into(),
            file_path: "nodes/node-b/usage_2026-11-27-08.otoml".into(),
            blob_id: "b10b1d0000000000000000000000000000000000".into(),
            commit_sha: "1a2b3c4d5e6f7a8b9c0d".into(),
            record_index: Some(4),
            idempotency_key: Some("node-b:2026-11-27-07:17".into()),
            user_sid: Some("u-0002".into()),
            cost_cents: Some(999),
            detail:
                "key already applied with cost 990; neither version changed — fix the node's file"
                    .into(),
            existing: Some(ConsumedRecord {
                idempotency_key: "node-b:2026-11-27-07:17".into(),
                user_sid: "u-0002".into(),
                node_name: "node-b".into(),
                cost_cents: 990,
                resource: None,
                applied_at: "2026-11-27T08:00:00.000Z".into(),
                commit_sha: "0011223344556677".into(),
                file_path: "nodes/node-b/usage_2026-11-27-07.otoml".into(),
            }),
            first_seen_at: "2026-11-27T09:58:01.000Z".into(),
            record_count: None,
        },
        RejectedItem {
            id: "rej-1".into(),
            reason: RejectReason::UnknownUser,
            node_name: "node-a".into(),
            file_path: "nodes/node-a/usage_2026-11-27-08.otoml".into(),
            blob_id: "a10b1d0000000000000000000000000000000000".into(),
            commit_sha: "9f3c2a1b7e4d5c6f8a9b".into(),
            record_index: Some(0),
            idempotency_key: Some("node-a:2026-11-27-08:0".into()),
            user_sid: Some("u-9999".into()),
            cost_cents: Some(120),
            detail: "user u-9999 is not registered; held until register_user".into(),
            existing: None,
            first_seen_at: "2026-11-27T09:40:00.000Z".into(),
            record_count: None,
        },
    ]
}

fn delivery(status: DeliveryStatus, attempts: u32) -> Delivery {
    Delivery {
        url: "https://hooks.example.org/billing".into(),
        status,
        attempts,
        last_status: None,
        last_error: None,
        next_attempt_at: None,
        delivered_at: None,
    }
}

fn event(seq: u64, kind: EventType, created_at: &str, data: serde_json::Value) -> Event {
    Event {
        id: format!("evt_{seq:012}"),
        kind,
        created_at: created_at.into(),
        data,
        deliveries: vec![],
    }
}

fn balance(sid: &str, balance: i64, previous: i64) -> serde_json::Value {
    serde_json::json!({
        "user_sid": sid,
        "balance_cents": balance,
        "previous_balance_cents": previous,
        "low_balance_cents": 500,
    })
}

fn node(name: &str, newest_hour: &str) -> serde_json::Value {
    serde_json::json!({
        "node_name": name,
        "newest_hour": newest_hour,
        "stale_after_secs": 10_800,
    })
}

/// One event of each type, newest first as the API lists them, with
/// deliveries in every state: delivered (at once, after retries, to two
/// URLs), pending with retries, failed, and none (no webhook configured).
pub fn events() -> Vec<Event> {
    let mut failed_pass = event(
        6,
        EventType::AggregationFailed,
        "2026-11-27T09:59:30.000Z",
        serde_json::json!({
            "run_id": 47,
            "message": "billing repo unreachable: connection refused",
            "replica": "billing-a:4242",
        }),
    );
    failed_pass.deliveries = vec![Delivery {
        last_status: Some(204),
        delivered_at: Some("2026-11-27T09:59:31.000Z".into()),
        ..delivery(DeliveryStatus::Delivered, 1)
    }];
    let mut overdrawn = event(
        5,
        EventType::BalanceOverdrawn,
        "2026-11-27T09:58:01.000Z",
        balance("u-0001", -250, 1_000),
    );
    overdrawn.deliveries = vec![Delivery {
        last_status: Some(503),
        last_error: Some("answered 503".into()),
        next_attempt_at: Some("2026-11-27T10:00:40.000Z".into()),
        ..delivery(DeliveryStatus::Pending, 3)
    }];
    let mut low = event(
        4,
        EventType::BalanceLow,
        "2026-11-27T09:58:01.000Z",
        balance("u-0001", -250, 1_000),
    );
    low.deliveries = vec![Delivery {
        last_status: Some(200),
        delivered_at: Some("2026-11-27T09:58:36.000Z".into()),
        ..delivery(DeliveryStatus::Delivered, 2)
    }];
    let mut stale = event(
        3,
        EventType::NodeStale,
        "2026-11-25T10:00:00.000Z",
        node("node-old", "2026-11-25-06"),
    );
    stale.deliveries = vec![Delivery {
        last_error: Some("connection refused (hooks.example.org:443)".into()),
        ..delivery(DeliveryStatus::Failed, 17)
    }];
    let mut recovered = event(
        2,
        EventType::BalanceRecovered,
        "2026-11-24T12:00:00.000Z",
        balance("u-0002", 248_001, 300),
    );
    recovered.deliveries = vec![
        Delivery {
            last_status: Some(200),
            delivered_at: Some("2026-11-24T12:00:01.000Z".into()),
            ..delivery(DeliveryStatus::Delivered, 1)
        },
        Delivery {
            url: "https://ops.example.net/alerts".into(),
            last_status: Some(200),
            delivered_at: Some("2026-11-24T12:00:02.000Z".into()),
            ..delivery(DeliveryStatus::Delivered, 1)
        },
    ];
    // Written before any webhook URL was configured.
    let node_back = event(
        1,
        EventType::NodeRecovered,
        "2026-11-24T08:00:00.000Z",
        node("node-b", "2026-11-24-07"),
    );
    vec![failed_pass, overdrawn, low, stale, recovered, node_back]
}

pub fn page<T>(items: Vec<T>, next: Option<&str>) -> Page<T> {
    Page {
        items,
        next_cursor: next.map(str::to_string),
    }
}

/// [`users`] as the server lists them for `query`: through its filter and in
/// its order (ties by sid; the `_desc` orders are the exact reverse).
pub fn users_for(query: &UserQuery) -> Vec<UserBilling> {
    let needle = query.text.as_deref().unwrap_or("").to_lowercase();
    let mut rows: Vec<UserBilling> = users()
        .into_iter()
        .filter(|u| !query.overdrawn || u.credit_balance_cents < 0)
        .filter(|u| {
            [
                Some(u.user_sid.as_str()),
                u.display_name.as_deref(),
                u.email.as_deref(),
            ]
            .into_iter()
            .flatten()
            .any(|field| field.to_lowercase().contains(&needle))
        })
        .collect();
    match query.sort {
        UserSort::Sid => rows.sort_by(|a, b| a.user_sid.cmp(&b.user_sid)),
        UserSort::BalanceAsc => rows.sort_by_key(|u| (u.credit_balance_cents, u.user_sid.clone())),
        UserSort::BalanceDesc => {
            rows.sort_by_key(|u| (u.credit_balance_cents, u.user_sid.clone()));
            rows.reverse();
        }
        UserSort::ConsumedDesc => {
            rows.sort_by_key(|u| (u.total_consumed_cents, u.user_sid.clone()));
            rows.reverse();
        }
    }
    rows
}

/// Feeds every call's realistic answer back into the app, like the fetcher would.
pub fn answer(app: &mut App, calls: Vec<RpcCall>) {
    for call in calls {
        let data = match call {
            RpcCall::Overview => RpcAnswer::Overview(Ok(overview())),
            RpcCall::AggregatorState => RpcAnswer::AggregatorState(Ok(state())),
            RpcCall::Runs => RpcAnswer::Runs(Ok(runs())),
            RpcCall::Users(req, query) => {
                let rows = users_for(&query);
                RpcAnswer::Users(req, query, Ok(page(rows, Some("u-0005"))))
            }
            RpcCall::Payments(req, _) => RpcAnswer::Payments(req, Ok(page(payments(), None))),
            RpcCall::Rejected(req) => RpcAnswer::Rejected(req, Ok(page(rejected(), None))),
            RpcCall::Events(req) => {
                RpcAnswer::Events(req, Ok(page(events(), Some("evt_000000000001"))))
            }
            RpcCall::Detail(sid) => RpcAnswer::Detail(
                sid.clone(),
                Ok(UserDetailData {
                    balance: Balance {
                        user_sid: sid.clone(),
                        credit_balance_cents: -250,
                        total_paid_cents: 10_000,
                        total_consumed_cents: 10_250,
                        overdrawn: true,
                    },
                    payments: payments().into_iter().take(1).collect(),
                    consumed: consumed(&sid),
                }),
            ),
            RpcCall::AggregateNow => RpcAnswer::Aggregated(Ok(run(49, 321, false))),
            RpcCall::Check(kind) => RpcAnswer::Checked(kind, Ok(())),
        };
        let more = app.update(Action::Answer(data));
        answer(app, more);
    }
}

/// Answers every call with the same error.
pub fn fail(app: &mut App, calls: Vec<RpcCall>, kind: ErrorKind, message: &str) {
    for call in calls {
        let err = FetchError {
            kind: kind.clone(),
            message: message.into(),
        };
        let data = match call {
            RpcCall::Overview => RpcAnswer::Overview(Err(err)),
            RpcCall::AggregatorState => RpcAnswer::AggregatorState(Err(err)),
            RpcCall::Runs => RpcAnswer::Runs(Err(err)),
            RpcCall::Users(req, query) => RpcAnswer::Users(req, query, Err(err)),
            RpcCall::Payments(req, _) => RpcAnswer::Payments(req, Err(err)),
            RpcCall::Rejected(req) => RpcAnswer::Rejected(req, Err(err)),
            RpcCall::Events(req) => RpcAnswer::Events(req, Err(err)),
            RpcCall::Detail(sid) => RpcAnswer::Detail(sid, Err(err)),
            RpcCall::AggregateNow => RpcAnswer::Aggregated(Err(err)),
            RpcCall::Check(kind) => RpcAnswer::Checked(kind, Err(err)),
        };
        app.update(Action::Answer(data));
    }
}

/// Answers with an empty ledger (a fresh server).
pub fn answer_empty(app: &mut App, calls: Vec<RpcCall>) {
    for call in calls {
        let data = match call {
            RpcCall::Overview => RpcAnswer::Overview(Ok(Overview {
                total_users: 0,
                total_balance_cents: 0,
                overdrawn_users: 0,
                consumed_records: 0,
                pending_records: 0,
                rejected_items: 0,
                health: Health::Idle,
                last_run_at: None,
                stale_nodes: 0,
            })),
            RpcCall::AggregatorState => RpcAnswer::AggregatorState(Ok(AggregatorState {
                health: Health::Idle,
                last_run: None,
                last_run_replica: None,
                replica: "test".into(),
                nodes: vec![],
                last_verify: None,
                last_reconcile: None,
                check_running: None,
            })),
            RpcCall::Runs => RpcAnswer::Runs(Ok(vec![])),
            RpcCall::Users(req, query) => RpcAnswer::Users(req, query, Ok(page(vec![], None))),
            RpcCall::Payments(req, _) => RpcAnswer::Payments(req, Ok(page(vec![], None))),
            RpcCall::Rejected(req) => RpcAnswer::Rejected(req, Ok(page(vec![], None))),
            RpcCall::Events(req) => RpcAnswer::Events(req, Ok(page(vec![], None))),
            RpcCall::Detail(sid) => RpcAnswer::Detail(
                sid,
                Err(FetchError {
                    kind: ErrorKind::Server,
                    message: "not found".into(),
                }),
            ),
            RpcCall::AggregateNow => RpcAnswer::Aggregated(Ok(AggregateSummary::default())),
            RpcCall::Check(kind) => RpcAnswer::Checked(kind, Ok(())),
        };
        app.update(Action::Answer(data));
    }
}

pub fn render(app: &App, width: u16, height: u16) -> Terminal<TestBackend> {
    let mut terminal = Terminal::new(TestBackend::new(width, height)).unwrap();
    terminal.draw(|f| tui_admin::ui::draw(f, app)).unwrap();
    terminal
}

/// Shows a view with realistic data loaded.
pub fn loaded(view: tui_admin::app::View) -> App {
    let (mut app, first) = fresh();
    answer(&mut app, first);
    let calls = app.update(Action::ShowView(view));
    answer(&mut app, calls);
    app
}
