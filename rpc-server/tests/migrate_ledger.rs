//! `rpc-server migrate-ledger`: a redb ledger copied into PostgreSQL and from
//! there into a second redb file lists the same everywhere (its outbox too:
//! events, delivery states, thresholds), keeps its ids and sequence numbers
//! (later payments, records, runs and events get the next ones), and a copy
//! into a ledger that holds anything is refused without a change.
//!
//! Needs PostgreSQL: `scripts/with-postgres.sh cargo test -p rpc-server --test migrate_ledger`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use billing_api::{
    AggregateSummary, ConsumedRecord, DeliveryStatus, Event, EventType, NodeError, Payment,
    RecordPayment, RegisterUser, RejectReason, RejectedItem, UserBilling, UserThreshold,
};
use billing_server::store::alerts::outbox::{Attempted, NodeChange};
use billing_server::store::alerts::parse_event_id;
use billing_server::store::migrate;
use billing_server::store::{
    Depth, FileBatch, FileOutcome, InvalidRecord, LedgerCounts, NodeRecord, Page, RunTotals, Store,
    StoreError,
};
use billing_server::test_support::{PgTestDb, file, output_text, rec, update};

/// Records of alice and of bob: with the rest, more than one batch (10,000)
/// of applied records, and more than one rebuilt index group (4,096) per user.
const ALICE_RECORDS: usize = 6_000;
const BOB_RECORDS: usize = 4_600;

/// A webhook with delivery states, and one whose cursor is past every event.
const URL: &str = "https://hooks.example.org/billing?token=t0";
const OTHER: &str = "https://other.example.org/hook";
/// The stored default threshold (not the built-in 500).
const DEFAULT_CENTS: i64 = 700;

fn invalid(index: usize, key: &str) -> InvalidRecord {
    InvalidRecord {
        index,
        idempotency_key: Some(key.into()),
        user_sid: Some("alice".into()),
        reason: "cost_cents must be >= 0".into(),
        raw: "cost_cents = -1".into(),
    }
}

fn register(store: &Store, sid: &str, name: Option<&str>, now_ms: u64) {
    store
        .register_user(
            &RegisterUser {
                user_sid: sid.into(),
                display_name: name.map(Into::into),
                email: name.map(|n| format!("{n}@example.org")),
            },
            now_ms,
        )
        .unwrap();
}

fn pay(store: &Store, id: &str, sid: &str, amount: i64) -> Payment {
    store
        .record_payment(
            &RecordPayment {
                payment_id: id.into(),
                user_sid: sid.into(),
                amount_cents: amount,
                kind: None,
                reference: Some(format!("ref-{id}")),
            },
            5_000,
        )
        .unwrap()
}

fn run(n: u64, errors: &[&str]) -> AggregateSummary {
    AggregateSummary {
        started_at: format!("2026-01-0{n}T00:00:00Z"),
        finished_at: format!("2026-01-0{n}T00:00:01Z"),
        head_commit: Some(format!("h{n}")),
        nodes_total: 2,
        files_read: n,
        records_applied: 10 * n,
        cents_debited: 100 * n as i64,
        errors: errors
            .iter()
            .map(|m| NodeError {
                node_name: Some("n2".into()),
                message: m.to_string(),
            })
            .collect(),
        ..AggregateSummary::default()
    }
}

/// A redb ledger with every kind of row: users, payments, applied usage of
/// several users in several transactions, held records of an unknown user,
/// records applied once their user registered, conflicts, invalid records
/// (some only counted in a file summary), an unparseable file, a failed node
/// and runs.
fn build_source(path: &Path) {
    let store = Store::open(path).unwrap();
    register(&store, "alice", Some("Alice"), 1_000);
    register(&store, "bob", None, 1_100);
    register(&store, "carol", Some("Carol"), 1_200);
    pay(&store, "p1", "alice", 50_000);
    pay(&store, "p2", "bob", 1_000);
    pay(&store, "p3", "alice", 250);

    let alice: Vec<_> = (0..ALICE_RECORDS / 2)
        .map(|i| Ok(rec(&format!("k-a-{i}"), "alice", "n1", 1)))
        .collect();
    let mut bob: Vec<_> = (0..BOB_RECORDS)
        .map(|i| Ok(rec(&format!("k-b-{i}"), "bob", "n1", 2)))
        .collect();
    bob.push(Ok(rec("k-g-0", "ghost", "n1", 7)));
    bob.push(Ok(rec("k-g-1", "ghost", "n1", 8)));
    bob.push(Ok(rec("k-l-0", "late", "n1", 3)));
    bob.push(Ok(rec("k-a-0", "alice", "n1", 99))); // conflicts with the applied k-a-0
    bob.push(Err(invalid(4_604, "k-bad")));
    // More invalid records than the per-file sample: the rest become one summary item.
    let hostile: Vec<_> = (0..25)
        .map(|i| Err(invalid(i, &format!("k-h-{i}"))))
        .collect();
    let files = vec![
        file("nodes/n1/usage_2026-01-01-00.otoml", "blob-a", alice),
        file("nodes/n1/usage_2026-01-01-01.otoml", "blob-b", bob),
        FileBatch {
            path: "nodes/n1/usage_2026-01-01-02.otoml".into(),
            blob_id: "blob-c".into(),
            outcome: FileOutcome::Unparseable("expected `=` at line 3".into()),
        },
        file("nodes/n1/usage_2026-01-01-03.otoml", "blob-d", hostile),
    ];
    store.apply_node(update("n1", "c1", files), 10_000).unwrap();
    store.record_run(&run(1, &[]), Some("h1")).unwrap();

    // A second transaction for alice and carol, then "late" registers: its held record applies.
    let more: Vec<_> = (ALICE_RECORDS / 2..ALICE_RECORDS)
        .map(|i| Ok(rec(&format!("k-a-{i}"), "alice", "n2", 1)))
        .chain((0..5).map(|i| Ok(rec(&format!("k-c-{i}"), "carol", "n2", 4))))
        .collect();
    let files = vec![file("nodes/n2/usage_2026-01-01-00.otoml", "blob-e", more)];
    store.apply_node(update("n2", "c2", files), 20_000).unwrap();
    register(&store, "late", None, 25_000);
    store.node_failed("n2", "git said no", 30_000).unwrap();
    store
        .record_run(&run(2, &["node n2: git said no"]), None)
        .unwrap();
    store.record_run(&run(3, &[]), Some("h3")).unwrap();
    add_outbox(&store);
}

/// Outbox rows on top of the balance events above: thresholds (a default,
/// users' own), balance and node events written after a webhook's cursor,
/// and deliveries delivered, to retry and given up.
fn add_outbox(store: &Store) {
    // A URL new to the ledger starts at the next event.
    assert!(
        store
            .claim_deliveries(URL, 60_000, 100, 40_000)
            .unwrap()
            .is_empty()
    );
    store
        .set_low_balance_default(DEFAULT_CENTS, 40_000)
        .unwrap();
    store
        .set_user_threshold("alice", Some(1_000), 40_000)
        .unwrap();
    store
        .set_user_threshold("carol", Some(2_500), 40_000)
        .unwrap();
    // carol: -20, then 2,980 (recovered), then 1,980 (low against her own 2,500).
    pay(store, "p4", "carol", 3_000);
    let files = vec![file(
        "nodes/n1/usage_2026-01-01-04.otoml",
        "blob-f",
        vec![Ok(rec("k-c-big", "carol", "n1", 1_000))],
    )];
    store.apply_node(update("n1", "c3", files), 41_000).unwrap();
    let change = NodeChange {
        node_name: "n2".into(),
        stale: true,
        data: serde_json::json!({ "node_name": "n2", "newest_hour": "2026-01-01-00" }),
    };
    let failed = serde_json::json!({ "error": "every node failed" });
    let written = store
        .record_events(&[change], Some(failed), 42_000)
        .unwrap();
    assert_eq!(written.len(), 2);

    let due = store.claim_deliveries(URL, 60_000, 100, 50_000).unwrap();
    let kinds: Vec<&str> = due.iter().map(|d| d.kind.as_str()).collect();
    // One per subject: carol's low waits for her recovery to be delivered.
    assert_eq!(
        kinds,
        ["balance.recovered", "node.stale", "aggregation.failed"]
    );
    let attempts = [
        Attempted {
            seq: due[0].seq,
            status: Some(200),
            delivered: true,
            error: None,
            retry_at_ms: None,
        },
        Attempted {
            seq: due[1].seq,
            status: Some(503),
            delivered: false,
            error: Some("HTTP 503".into()),
            retry_at_ms: Some(120_000),
        },
        Attempted {
            seq: due[2].seq,
            status: None,
            delivered: false,
            error: Some("connection refused".into()),
            retry_at_ms: None,
        },
    ];
    store.record_deliveries(URL, &attempts, 51_000).unwrap();
    assert!(
        store
            .claim_deliveries(OTHER, 60_000, 100, 52_000)
            .unwrap()
            .is_empty()
    );
}

fn urls() -> Vec<String> {
    vec![URL.to_string(), OTHER.to_string()]
}

/// Every event, newest first, with its deliveries to both URLs.
fn events(store: &Store) -> Vec<Event> {
    let page = store.list_events(None, 1000, None, &urls()).unwrap();
    assert!(page.next_cursor.is_none());
    page.items
}

/// The thresholds in force, read by setting them again as they are.
fn thresholds(store: &Store) -> Vec<UserThreshold> {
    [
        ("alice", Some(1_000)),
        ("bob", None),
        ("carol", Some(2_500)),
    ]
    .into_iter()
    .map(|(sid, own)| store.set_user_threshold(sid, own, 60_000).unwrap())
    .collect()
}

/// Every page of a listing, and the cursors between them.
fn all<T>(
    mut page: impl FnMut(Option<&str>) -> Result<Page<T>, StoreError>,
) -> (Vec<T>, Vec<String>) {
    let (mut items, mut cursors) = (Vec::new(), Vec::new());
    let mut cursor: Option<String> = None;
    loop {
        let p = page(cursor.as_deref()).unwrap();
        items.extend(p.items);
        match p.next_cursor {
            Some(c) => {
                cursors.push(c.clone());
                cursor = Some(c);
            }
            None => return (items, cursors),
        }
    }
}

/// Everything a client can list of a ledger.
#[derive(Debug, PartialEq)]
struct Listing {
    users: Vec<UserBilling>,
    payments: (Vec<Payment>, Vec<String>),
    payments_by_user: Vec<Vec<Payment>>,
    consumed: (Vec<ConsumedRecord>, Vec<String>),
    consumed_by_user: Vec<Vec<ConsumedRecord>>,
    rejected: (Vec<RejectedItem>, Vec<String>),
    nodes: Vec<NodeRecord>,
    consumed_files: Vec<HashMap<String, String>>,
    runs: (Vec<AggregateSummary>, Vec<String>),
    events: Vec<Event>,
    counts: LedgerCounts,
    run_totals: RunTotals,
    clean_head: Option<String>,
    next_run_id: u64,
}

const PAGE: u32 = 700;

fn listing(store: &Store) -> Listing {
    let users = all(|c| store.list_users(c, PAGE)).0;
    let sids: Vec<&str> = users.iter().map(|u| u.user_sid.as_str()).collect();
    let nodes = store.nodes().unwrap();
    Listing {
        payments: all(|c| store.list_payments(None, c, PAGE)),
        payments_by_user: sids
            .iter()
            .map(|s| all(|c| store.list_payments(Some(s), c, PAGE)).0)
            .collect(),
        consumed: all(|c| store.list_consumed(None, c, PAGE)),
        // Per user the cursors are the backend's own (redb walks its index groups).
        consumed_by_user: sids
            .iter()
            .map(|s| all(|c| store.list_consumed(Some(s), c, PAGE)).0)
            .collect(),
        rejected: all(|c| store.list_rejected(c, PAGE)),
        consumed_files: nodes
            .iter()
            .map(|n| store.consumed_files(&n.node_name).unwrap())
            .collect(),
        nodes,
        runs: all(|c| store.list_runs(c, 2)),
        events: events(store),
        counts: store.overview_counts().unwrap(),
        run_totals: store.run_totals().unwrap(),
        clean_head: store.clean_head().unwrap(),
        next_run_id: store.next_run_id().unwrap(),
        users,
    }
}

/// The id (cursor) of the newest item of a listing.
fn newest<T>(page: Result<Page<T>, StoreError>) -> u64 {
    page.unwrap().next_cursor.unwrap().parse().unwrap()
}

/// A payment, usage and a run on a copy get the ids that follow the source's,
/// the copy still knows every applied key, and held usage applies on registration.
fn later_writes_continue(store: &Store, before: &Listing) {
    events_continue(store, before);
    let payment_seq = newest(store.list_payments(None, None, 1));
    let consumed_seq = newest(store.list_consumed(None, None, 1));
    let rejected_id = newest(store.list_rejected(None, 1));

    pay(store, "p-next", "alice", 100);
    assert_eq!(newest(store.list_payments(None, None, 1)), payment_seq + 1);
    let files = vec![file(
        "nodes/n1/usage_2026-01-02-00.otoml",
        "blob-next",
        vec![
            Ok(rec("k-next", "alice", "n1", 5)),
            Ok(rec("k-a-0", "alice", "n1", 1)),
            Err(invalid(2, "k-bad-next")),
        ],
    )];
    let out = store.apply_node(update("n1", "c9", files), 90_000).unwrap();
    assert_eq!(
        (out.applied, out.duplicate, out.invalid),
        (1, 1, 1),
        "{out:?}"
    );
    assert_eq!(newest(store.list_consumed(None, None, 1)), consumed_seq + 1);
    assert_eq!(newest(store.list_rejected(None, 1)), rejected_id + 1);
    let alice = all(|c| store.list_consumed(Some("alice"), c, PAGE)).0;
    assert_eq!(alice.len(), ALICE_RECORDS + 1);
    assert_eq!(alice[0].idempotency_key, "k-next");
    assert_eq!(
        store.record_run(&run(4, &[]), None).unwrap(),
        before.next_run_id
    );

    register(store, "ghost", None, 95_000);
    assert_eq!(
        store.get_balance("ghost").unwrap().credit_balance_cents,
        -15
    );
    assert_eq!(store.overview_counts().unwrap().pending_records, 0);
    let report = store.verify(Depth::Full).unwrap();
    assert!(report.consistent, "{report:?}");
    assert_eq!(store.recount().unwrap(), store.overview_counts().unwrap());
}

/// Deliveries resume where the source left them, alert levels are kept (n2
/// is stale already; carol is low, so a top-up recovers her), and the next
/// events get the seqs after the source's last, pending for both URLs.
fn events_continue(store: &Store, before: &Listing) {
    let due = store.claim_deliveries(URL, 60_000, 100, 200_000).unwrap();
    let due: Vec<_> = due
        .iter()
        .map(|d| (d.kind.as_str(), d.attempts, d.first_attempt_ms))
        .collect();
    assert_eq!(
        due,
        [("balance.low", 0, None), ("node.stale", 1, Some(50_000))]
    );
    let last = parse_event_id(&before.events[0].id).unwrap();
    let still_stale = NodeChange {
        node_name: "n2".into(),
        stale: true,
        data: serde_json::json!({ "node_name": "n2" }),
    };
    let failed = serde_json::json!({ "error": "next" });
    let written = store
        .record_events(&[still_stale], Some(failed), 210_000)
        .unwrap();
    assert_eq!(written, [last + 1]);
    pay(store, "p-carol", "carol", 600);
    let newest = store.list_events(None, 2, None, &urls()).unwrap().items;
    let seen: Vec<_> = newest
        .iter()
        .map(|e| (parse_event_id(&e.id).unwrap(), e.kind))
        .collect();
    assert_eq!(
        seen,
        [
            (last + 2, EventType::BalanceRecovered),
            (last + 1, EventType::AggregationFailed)
        ]
    );
    assert_eq!(newest[0].data["low_balance_cents"], 2_500);
    for event in &newest {
        let states: Vec<_> = event.deliveries.iter().map(|d| d.status).collect();
        assert_eq!(states, [DeliveryStatus::Pending, DeliveryStatus::Pending]);
    }
}

fn table(report: &migrate::MigrationReport, name: &str) -> u64 {
    report
        .tables
        .iter()
        .find(|(t, _)| *t == name)
        .unwrap_or_else(|| panic!("no table {name} in {:?}", report.tables))
        .1
}

#[test]
fn a_ledger_copied_to_postgres_and_back_lists_the_same_and_continues() {
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("a").join("ledger.redb");
    std::fs::create_dir_all(source.parent().unwrap()).unwrap();
    build_source(&source);
    let before = listing(&Store::open(&source).unwrap());
    let reasons: Vec<RejectReason> = before.rejected.0.iter().map(|r| r.reason).collect();
    for reason in [
        RejectReason::Conflict,
        RejectReason::Invalid,
        RejectReason::UnknownUser,
        RejectReason::Unparseable,
    ] {
        assert!(reasons.contains(&reason), "{reason:?} missing: {reasons:?}");
    }
    assert!(before.rejected.0.iter().any(|r| r.record_count == Some(5)));
    assert_eq!(before.counts.pending_records, 2);
    assert!(before.nodes.iter().any(|n| n.last_error.is_some()));
    check_outbox(&before);
    let source_thresholds = thresholds(&Store::open(&source).unwrap());
    assert_eq!(
        source_thresholds
            .iter()
            .map(|t| t.effective_cents)
            .collect::<Vec<_>>(),
        [1_000, DEFAULT_CENTS, 2_500]
    );

    let db = PgTestDb::create();
    let to_pg = migrate::redb_to_postgres(&source, &db.url, None).unwrap();
    assert!(to_pg.verify.consistent);
    assert_eq!(table(&to_pg, "users"), 4);
    assert_eq!(table(&to_pg, "consumed"), before.counts.consumed_records);
    assert_eq!(table(&to_pg, "pending"), 2);
    assert_eq!(table(&to_pg, "rejected"), before.counts.rejected_items);
    assert_eq!(table(&to_pg, "rejected_counts"), 1);
    assert_eq!(table(&to_pg, "runs"), 3);
    assert!(table(&to_pg, "consumed") > 10_000);
    assert_eq!(table(&to_pg, "events"), before.events.len() as u64);
    assert_eq!(table(&to_pg, "deliveries"), 3);
    assert_eq!(table(&to_pg, "webhook_cursors"), 2);
    for t in [
        "payments",
        "consumed_sources",
        "rejected_fingerprints",
        "file_tallies",
        "nodes",
        "consumed_files",
        "alerts",
    ] {
        assert!(table(&to_pg, t) > 0, "{t}: {:?}", to_pg.tables);
    }
    let pg = db.store();
    assert_eq!(listing(&pg), before);
    assert_eq!(thresholds(&pg), source_thresholds);

    let back = dir.path().join("b").join("ledger.redb");
    let to_redb = migrate::postgres_to_redb(&db.url, None, &back).unwrap();
    assert!(to_redb.verify.consistent);
    assert_eq!(to_redb.tables, to_pg.tables);
    let copy = Store::open(&back).unwrap();
    assert_eq!(listing(&copy), before);
    assert_eq!(thresholds(&copy), source_thresholds);
    drop(copy);

    // Into a ledger that holds anything: refused, and nothing changes.
    let err = migrate::redb_to_postgres(&source, &db.url, None).unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err}");
    let text = err.to_string();
    assert!(
        text.contains("not empty") && text.contains("4 users") && text.contains("3 runs"),
        "{text}"
    );
    let err = migrate::postgres_to_redb(&db.url, None, &back).unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err}");
    assert!(err.to_string().contains("not empty"), "{err}");
    assert_eq!(listing(&pg), before);
    let copy = Store::open(&back).unwrap();
    assert_eq!(listing(&copy), before);

    later_writes_continue(&pg, &before);
    later_writes_continue(&copy, &before);
}

/// The source's outbox holds every kind of event and delivery state.
fn check_outbox(before: &Listing) {
    let kinds: Vec<EventType> = before.events.iter().map(|e| e.kind).collect();
    for kind in [
        EventType::BalanceLow,
        EventType::BalanceOverdrawn,
        EventType::BalanceRecovered,
        EventType::NodeStale,
        EventType::AggregationFailed,
    ] {
        assert!(kinds.contains(&kind), "{kind:?} missing: {kinds:?}");
    }
    let carol_low = &before.events[2];
    assert_eq!(carol_low.kind, EventType::BalanceLow);
    assert_eq!(carol_low.data["user_sid"], "carol");
    assert_eq!(carol_low.data["low_balance_cents"], 2_500);
    let states: Vec<(DeliveryStatus, u32)> = before
        .events
        .iter()
        .flat_map(|e| &e.deliveries)
        .map(|d| (d.status, d.attempts))
        .collect();
    assert_eq!(
        states,
        [
            (DeliveryStatus::Failed, 1),
            (DeliveryStatus::Pending, 1),
            (DeliveryStatus::Pending, 0),
            (DeliveryStatus::Delivered, 1),
        ]
    );
}

#[test]
fn a_failed_copy_leaves_the_target_empty() {
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("ledger.redb");
    build_source(&source);
    let db = PgTestDb::create();
    {
        // The target refuses its last table (a trigger that fails every
        // insert into webhook_cursors): the copy fails after every other row
        // was sent.
        drop(db.store());
        let mut client = postgres::Client::connect(&db.url, postgres::NoTls).unwrap();
        client
            .batch_execute(
                "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS \
                 $$ BEGIN RAISE EXCEPTION 'cursors refused by the test'; END $$; \
                 CREATE TRIGGER refuse BEFORE INSERT ON webhook_cursors FOR EACH ROW \
                 EXECUTE FUNCTION refuse();",
            )
            .unwrap();
    }
    let err = migrate::redb_to_postgres(&source, &db.url, None).unwrap_err();
    assert!(err.to_string().contains("webhook_cursors"), "{err}");
    let pg = db.store();
    assert_eq!(pg.overview_counts().unwrap(), LedgerCounts::default());
    assert_eq!(pg.next_run_id().unwrap(), 1);
    assert!(pg.list_users(None, 10).unwrap().items.is_empty());
    assert!(pg.nodes().unwrap().is_empty());
    assert!(events(&pg).is_empty());
    let err = pg.set_user_threshold("alice", None, 1).unwrap_err();
    assert!(matches!(err, StoreError::NotFound { .. }), "{err}");

    // A PostgreSQL database without a ledger is no source; the redb file it
    // would have been copied into is not left behind.
    let empty = PgTestDb::create();
    let target = dir.path().join("new").join("ledger.redb");
    let err = migrate::postgres_to_redb(&empty.url, None, &target).unwrap_err();
    assert!(err.to_string().contains("holds no ledger"), "{err}");
    assert!(!target.exists());
}

#[test]
fn a_target_holding_only_outbox_rows_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("a").join("ledger.redb");
    std::fs::create_dir_all(source.parent().unwrap()).unwrap();
    {
        let store = Store::open(&source).unwrap();
        register(&store, "alice", None, 1_000);
    }
    // PostgreSQL holding only a webhook cursor (no event, no sequence in use).
    let db = PgTestDb::create();
    let pg = db.store();
    assert!(pg.claim_deliveries(URL, 1, 1, 1).unwrap().is_empty());
    let err = migrate::redb_to_postgres(&source, &db.url, None).unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err}");
    assert!(err.to_string().contains("1 webhook_cursors"), "{err}");
    assert!(pg.list_users(None, 10).unwrap().items.is_empty());

    // redb holding only an event.
    let target = dir.path().join("b").join("ledger.redb");
    std::fs::create_dir_all(target.parent().unwrap()).unwrap();
    {
        let store = Store::open(&target).unwrap();
        let failed = serde_json::json!({ "error": "x" });
        assert_eq!(store.record_events(&[], Some(failed), 1).unwrap(), [1]);
    }
    let err = migrate::postgres_to_redb(&db.url, None, &target).unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err}");
    assert!(err.to_string().contains("1 events"), "{err}");
    let store = Store::open(&target).unwrap();
    assert_eq!(events(&store).len(), 1);
    assert!(store.list_users(None, 10).unwrap().items.is_empty());
}

fn rpc_server(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_rpc-server"))
        .arg("migrate-ledger")
        .args(args)
        .env("PGPASSWORD", "env-secret-123")
        .env_remove("BILLING_LEDGER_PASSWORD_FILE")
        .env_remove("RUST_LOG")
        .output()
        .expect("rpc-server runs")
}

#[test]
fn the_command_copies_reports_and_refuses_a_second_copy() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    build_source(&data.join("ledger.redb"));
    let db = PgTestDb::create();
    // The test cluster trusts every connection; a password must still never be printed.
    let url = db.url.replacen('@', ":url-secret-456@", 1);
    let data_arg = data.to_str().unwrap();

    let out = rpc_server(&["--from-data-dir", data_arg, "--to", &url]);
    let all = output_text(&out);
    assert_eq!(out.status.code(), Some(0), "{all}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("copied the ledger"), "{stdout}");
    assert!(
        stdout.contains(&format!("{}", ALICE_RECORDS + BOB_RECORDS + 7)),
        "{stdout}"
    );
    assert!(stdout.contains("consistent"), "{stdout}");
    assert!(!all.contains("secret"), "{all}");

    let out = rpc_server(&["--from-data-dir", data_arg, "--to", &url]);
    let all = output_text(&out);
    assert_eq!(out.status.code(), Some(1), "{all}");
    assert!(
        all.contains("not empty") && !all.contains("secret"),
        "{all}"
    );

    let password = dir.path().join("password");
    std::fs::write(&password, "file-secret-789\n").unwrap();
    let back: PathBuf = dir.path().join("back");
    let out = rpc_server(&[
        "--from",
        &db.url,
        "--to-data-dir",
        back.to_str().unwrap(),
        "--ledger-password-file",
        password.to_str().unwrap(),
    ]);
    let all = output_text(&out);
    assert_eq!(out.status.code(), Some(0), "{all}");
    assert!(!all.contains("secret"), "{all}");
    let copy = Store::open(&back.join("ledger.redb")).unwrap();
    assert_eq!(
        copy.overview_counts().unwrap(),
        Store::open(&data.join("ledger.redb"))
            .unwrap()
            .overview_counts()
            .unwrap()
    );

    let out = rpc_server(&["--from-data-dir", data_arg, "--to-data-dir", "/tmp/x"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        output_text(&out).contains("both ends are redb"),
        "{}",
        output_text(&out)
    );
}
