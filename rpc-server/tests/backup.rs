//! `rpc-server backup` and `restore` on a redb ledger, end to end: backups
//! taken from a running server while it aggregates and takes payments,
//! restored into fresh data dirs, checked against the source ledger.

mod ledger_process;

use std::path::{Path, PathBuf};
use std::time::Duration;

use billing_api::{ConsumedRecord, Payment, RegisterUser};
use billing_server::store::{Depth, Store};
use billing_server::test_support::{all_pages, output_text};
use ledger_process::{BIN, SECRET, ServerProcess, Workspace, simulate};
use serde_json::json;

const USERS: usize = 8;
const PAGE: u32 = 500;

fn sid(i: usize) -> String {
    format!("u-{i:04}")
}

/// Registrations of the first `n` users, no name, no email.
fn registrations(n: usize) -> Vec<RegisterUser> {
    (0..n)
        .map(|i| RegisterUser {
            user_sid: sid(i),
            display_name: None,
            email: None,
        })
        .collect()
}

/// Applied records and payments, oldest first.
fn history(store: &Store) -> (Vec<ConsumedRecord>, Vec<Payment>) {
    let mut consumed = all_pages(|c| store.list_consumed(None, c, PAGE));
    let mut payments = all_pages(|c| store.list_payments(None, c, PAGE));
    consumed.reverse();
    payments.reverse();
    (consumed, payments)
}

/// `rpc-server` with `args`, the admin secret in the environment.
fn run(args: &[&str], extra: &[&Path]) -> std::process::Output {
    std::process::Command::new(BIN)
        .args(args)
        .args(extra)
        .env("BILLING_ADMIN_SECRET", SECRET)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn backups_taken_during_a_pass_and_payments_restore_to_their_moment() {
    let ws = Workspace::new();
    simulate(&ws.repo(), 24, 24, 60, 7);
    let total_records = 24 * 24 * 60;
    {
        let store = Store::open(&ws.ledger()).unwrap();
        store.register_users(&registrations(USERS), 1).unwrap();
    }
    // The server's first pass starts at once; payments and backups run beside it.
    let server = ServerProcess::start(&ws.data(), &ws.repo());
    let payer = {
        let http = reqwest::Client::new();
        let url = server.url.clone();
        tokio::spawn(async move {
            for n in 0..150 {
                let body = json!({"jsonrpc": "2.0", "id": n, "method": "record_payment",
                    "params": {"payment_id": format!("p-{n}"), "user_sid": sid(n % USERS),
                               "amount_cents": 1000 + n}});
                let response: serde_json::Value = http
                    .post(&url)
                    .bearer_auth(SECRET)
                    .json(&body)
                    .send()
                    .await
                    .unwrap()
                    .json()
                    .await
                    .unwrap();
                assert!(response.get("result").is_some(), "{response}");
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
    };
    let mut backups: Vec<PathBuf> = Vec::new();
    let data = ws.data();
    for n in 0..40 {
        let to = ws.dir.path().join(format!("b{n}.backup"));
        let out = tokio::task::spawn_blocking({
            let (data, to) = (data.clone(), to.clone());
            move || run(&["backup", "--data-dir"], &[&data, Path::new("--to"), &to])
        })
        .await
        .unwrap();
        assert!(out.status.success(), "{}", output_text(&out));
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("from the server at"),
            "{}",
            output_text(&out)
        );
        backups.push(to);
        let state = server.ok("aggregator_state", json!({})).await;
        if payer.is_finished() && state["last_run"].is_object() && n >= 2 {
            break;
        }
    }
    payer.await.unwrap();
    server.ok("aggregate_now", json!({})).await;
    // verify beside the server checks a snapshot it sends; --repair needs it stopped.
    let out = run(&["verify", "--data-dir"], &[&data]);
    assert!(out.status.success(), "{}", output_text(&out));
    assert!(
        output_text(&out).contains("consistent")
            && output_text(&out).contains("a snapshot from the server"),
        "{}",
        output_text(&out)
    );
    let out = run(&["verify", "--repair", "--data-dir"], &[&data]);
    assert_eq!(out.status.code(), Some(1), "{}", output_text(&out));
    assert!(
        output_text(&out).contains("already open"),
        "{}",
        output_text(&out)
    );
    let leftovers: Vec<_> = std::fs::read_dir(&data)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("verify-") || n.contains("backup-"))
        .collect();
    assert!(leftovers.is_empty(), "scratch files left: {leftovers:?}");
    server.stop();

    let source = Store::open(&ws.ledger()).unwrap();
    let (consumed, payments) = history(&source);
    assert_eq!(consumed.len(), total_records);
    assert_eq!(payments.len(), 150);
    let mut mid_pass = 0;
    let mut mid_payments = 0;
    for (i, backup) in backups.iter().enumerate() {
        let dir = ws.dir.path().join(format!("restored-{i}"));
        let out = run(
            &["restore", "--json", "--from"],
            &[backup, Path::new("--data-dir"), &dir],
        );
        assert!(out.status.success(), "{}", output_text(&out));
        let restored = Store::open(&dir.join("ledger.redb")).unwrap();
        let report = restored.verify(Depth::Full).unwrap();
        assert!(report.consistent, "backup {i}: {report:?}");
        // The snapshot is one moment of the source: a prefix of its history.
        let (c, p) = history(&restored);
        assert_eq!(c[..], consumed[..c.len()], "backup {i}: applied records");
        assert_eq!(p[..], payments[..p.len()], "backup {i}: payments");
        for u in 0..USERS {
            let user = restored.get_user(&sid(u)).unwrap();
            let paid: i64 = p
                .iter()
                .filter(|x| x.user_sid == sid(u))
                .map(|x| x.amount_cents)
                .sum();
            let used: i64 = c
                .iter()
                .filter(|x| x.user_sid == sid(u))
                .map(|x| x.cost_cents)
                .sum();
            assert_eq!(
                user.credit_balance_cents,
                paid - used,
                "backup {i}, user {u}"
            );
        }
        eprintln!("backup {i}: {} applied, {} payments", c.len(), p.len());
        mid_pass += usize::from(!c.is_empty() && c.len() < consumed.len());
        mid_payments += usize::from(!p.is_empty() && p.len() < payments.len());
    }
    assert!(
        mid_pass > 0 && mid_payments > 0,
        "no backup landed inside the pass ({mid_pass}) or the payments ({mid_payments}) of \
         {} backups",
        backups.len()
    );
}

#[test]
fn restore_refuses_damage_and_replacing_without_force() {
    let ws = Workspace::new();
    simulate(&ws.repo(), 2, 3, 10, 3);
    let data = ws.data();
    let out = run(
        &["aggregate", "--once", "--repo"],
        &[&ws.repo(), Path::new("--data-dir"), &data],
    );
    assert!(out.status.success(), "{}", output_text(&out));
    let backup = ws.dir.path().join("ledger.backup");
    let out = run(
        &["backup", "--data-dir"],
        &[&data, Path::new("--to"), &backup],
    );
    assert!(out.status.success(), "{}", output_text(&out));
    // Never overwrites a file.
    let out = run(
        &["backup", "--data-dir"],
        &[&data, Path::new("--to"), &backup],
    );
    assert_eq!(out.status.code(), Some(1), "{}", output_text(&out));
    assert!(
        output_text(&out).contains("already exists"),
        "{}",
        output_text(&out)
    );

    // Restoring over the ledger needs --force.
    let out = run(
        &["restore", "--from"],
        &[&backup, Path::new("--data-dir"), &data],
    );
    assert_eq!(out.status.code(), Some(1), "{}", output_text(&out));
    assert!(
        output_text(&out).contains("--force"),
        "{}",
        output_text(&out)
    );
    let out = run(
        &["restore", "--force", "--from"],
        &[&backup, Path::new("--data-dir"), &data],
    );
    assert!(out.status.success(), "{}", output_text(&out));
    assert!(
        output_text(&out).contains("replaced") && output_text(&out).contains("consistent"),
        "{}",
        output_text(&out)
    );

    // One flipped byte in the ledger part: refused, nothing written.
    let mut bytes = std::fs::read(&backup).unwrap();
    let last = bytes.len() - 100;
    bytes[last] ^= 0xff;
    let damaged = ws.dir.path().join("damaged.backup");
    std::fs::write(&damaged, &bytes).unwrap();
    let fresh = ws.dir.path().join("fresh");
    let out = run(
        &["restore", "--from"],
        &[&damaged, Path::new("--data-dir"), &fresh],
    );
    assert_eq!(out.status.code(), Some(1), "{}", output_text(&out));
    assert!(
        output_text(&out).contains("damaged") && output_text(&out).contains("SHA-256"),
        "{}",
        output_text(&out)
    );
    assert!(!fresh.join("ledger.redb").exists());

    // Not a backup at all.
    let out = run(
        &["restore", "--from"],
        &[&ws.ledger(), Path::new("--data-dir"), &fresh],
    );
    assert_eq!(out.status.code(), Some(1), "{}", output_text(&out));
    assert!(
        output_text(&out).contains("is not a ledger backup"),
        "{}",
        output_text(&out)
    );

    // A PostgreSQL ledger is pointed to pg_dump.
    let out = run(
        &[
            "backup",
            "--ledger-url",
            "postgres://billing@127.0.0.1:1/x",
            "--to",
        ],
        &[&ws.dir.path().join("pg.backup")],
    );
    assert_eq!(out.status.code(), Some(1), "{}", output_text(&out));
    assert!(
        output_text(&out).contains("pg_dump"),
        "{}",
        output_text(&out)
    );
}

/// A PostgreSQL ledger is backed up with pg_dump, as docs/deploy.md says:
/// the restored database passes `verify` and holds the same ledger.
#[test]
fn a_pg_dump_of_a_postgres_ledger_restores_and_passes_verify() {
    use billing_server::test_support::PgTestDb;
    let ws = Workspace::new();
    simulate(&ws.repo(), 3, 4, 20, 5);
    let source = PgTestDb::create();
    let store = source.store();
    store.register_users(&registrations(USERS - 2), 1).unwrap();
    drop(store);
    let data = ws.data();
    let out = run(
        &["aggregate", "--once", "--ledger-url", &source.url, "--repo"],
        &[&ws.repo(), Path::new("--data-dir"), &data],
    );
    assert!(out.status.success(), "{}", output_text(&out));
    let store = source.store();
    store
        .record_payment(
            &billing_api::RecordPayment {
                payment_id: "p-1".into(),
                user_sid: sid(0),
                amount_cents: 5_000,
                kind: None,
                reference: None,
            },
            2,
        )
        .unwrap();

    let dump = ws.dir.path().join("ledger.dump");
    let pg = |cmd: &str, args: &[&str]| {
        let out = std::process::Command::new(cmd)
            .args(args)
            .output()
            .unwrap_or_else(|e| {
                panic!("cannot run {cmd} ({e}); install the Debian package postgresql-client")
            });
        assert!(out.status.success(), "{cmd}: {}", output_text(&out));
    };
    pg(
        "pg_dump",
        &["-Fc", "-f", dump.to_str().unwrap(), &source.url],
    );
    let target = PgTestDb::create();
    pg(
        "pg_restore",
        &["--no-owner", "-d", &target.url, dump.to_str().unwrap()],
    );

    let out = run(&["verify", "--ledger-url", &target.url], &[]);
    assert!(out.status.success(), "{}", output_text(&out));
    assert!(
        output_text(&out).contains("consistent"),
        "{}",
        output_text(&out)
    );
    let restored = target.store();
    assert_eq!(
        restored.overview_counts().unwrap(),
        store.overview_counts().unwrap()
    );
    assert!(restored.overview_counts().unwrap().pending_records > 0);
    assert_eq!(history(&restored), history(&store));
    for u in 0..USERS - 2 {
        assert_eq!(
            restored.get_user(&sid(u)).unwrap(),
            store.get_user(&sid(u)).unwrap()
        );
    }
}
