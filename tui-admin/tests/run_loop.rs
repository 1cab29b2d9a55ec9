//! The real run loop against a real server: `rpc-server`'s `serve` on
//! 127.0.0.1:0 over a simulated billing repo, the dashboard's `Fetcher` and
//! WebSocket subscription, keys sent through the event channel, frames drawn
//! into a `TestBackend`.

use std::time::Duration;

use billing_api::EventType;
use billing_api::rpc::BillingApiClient;
use billing_server::simulate::{SimulateOptions, simulate};
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use tokio::sync::mpsc;
use tui_admin::app::{App, ConnState, Popup, UserSort, View};
use tui_admin::config::{Connection, Secret};
use tui_admin::event::{Event, now_millis};
use tui_admin::fetch::{Fetcher, spawn_run_subscription};

mod server;
use server::RunningServer;

const SECRET: &str = "tui-run-loop-secret-0123456789";

struct TestServer {
    url: String,
    per_user_cost: std::collections::BTreeMap<String, i64>,
    _server: RunningServer,
    _dir: tempfile::TempDir,
}

async fn start_server() -> TestServer {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo.git");
    let report = simulate(&SimulateOptions {
        repo: repo.clone(),
        nodes: 2,
        hours: 3,
        records: 5,
        users: 3,
        seed: 11,
        branch: "main".into(),
    })
    .unwrap();
    let server =
        RunningServer::start(repo.display().to_string(), dir.path().join("data"), SECRET).await;
    TestServer {
        url: server.url.clone(),
        per_user_cost: report.per_user_cost_cents,
        _server: server,
        _dir: dir,
    }
}

/// Runs the `tui-admin` binary against `url` with `args`.
async fn cli(url: &str, args: &[&str]) -> std::process::Output {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_tui-admin"));
    command
        .args(["--url", url])
        .args(args)
        .env("BILLING_ADMIN_SECRET", SECRET);
    tokio::task::spawn_blocking(move || command.output().unwrap())
        .await
        .unwrap()
}

fn key(code: KeyCode) -> Event {
    Event::Key(KeyEvent::new(code, KeyModifiers::NONE))
}

struct Dashboard {
    app: App,
    terminal: Terminal<TestBackend>,
    tx: mpsc::UnboundedSender<Event>,
    rx: mpsc::UnboundedReceiver<Event>,
    fetcher: Fetcher,
}

impl Dashboard {
    fn open(url: &str, secret: &str, subscribe: bool) -> Self {
        let conn = Connection {
            url: url.to_string(),
            secret: Secret::literal(secret, "the test"),
        };
        let (tx, rx) = mpsc::unbounded_channel();
        let fetcher = Fetcher::new(conn.http_client().unwrap(), tx.clone());
        let mut app = App::new(url, "the test", 500);
        for call in app.start(now_millis()) {
            fetcher.execute(call);
        }
        if subscribe {
            spawn_run_subscription(conn, tx.clone());
        }
        tui_admin::event::spawn_ticker(tx.clone());
        Self {
            app,
            terminal: Terminal::new(TestBackend::new(120, 30)).unwrap(),
            tx,
            rx,
            fetcher,
        }
    }

    /// Sends `keys`, lets the loop run until `until` holds for the app (or 10 s
    /// pass), then quits it with `q` and returns the last frame as text.
    async fn drive(&mut self, keys: &[KeyCode], until: impl Fn(&App) -> bool) -> String {
        for code in keys {
            self.tx.send(key(*code)).unwrap();
        }
        let fetcher = self.fetcher.clone();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let step = tui_admin::run::run(&mut self.terminal, &mut self.app, &mut self.rx, |c| {
                fetcher.execute(c)
            });
            // Run the loop in short slices so the condition can be checked between them.
            let _ = tokio::time::timeout(Duration::from_millis(100), step).await;
            if until(&self.app) || tokio::time::Instant::now() > deadline {
                break;
            }
        }
        self.terminal
            .draw(|f| tui_admin::ui::draw(f, &self.app))
            .unwrap();
        self.terminal.backend().to_string()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_view_shows_server_balances_and_a_pass_runs_from_the_keyboard() {
    let server = start_server().await;
    let admin = Connection {
        url: server.url.clone(),
        secret: Secret::literal(SECRET, "test"),
    }
    .http_client()
    .unwrap();
    // The first pass (started with the server) holds every record: no user
    // is registered yet. Registering applies them, from a zero balance.
    admin.aggregate_now().await.unwrap();
    // The user with the most usage pays only later: its registration takes
    // it below the threshold and below zero (balance.low, balance.overdrawn).
    let (low_sid, low_cost) = server
        .per_user_cost
        .iter()
        .max_by_key(|(_, cost)| **cost)
        .map(|(sid, cost)| (sid.clone(), *cost))
        .unwrap();
    assert!(low_cost > 0, "{:?}", server.per_user_cost);
    for (i, (sid, _)) in server.per_user_cost.iter().enumerate() {
        admin
            .register_user(sid.clone(), Some(format!("Person {i}")), None)
            .await
            .unwrap();
        if *sid == low_sid {
            continue;
        }
        admin
            .record_payment(format!("pay-{sid}"), sid.clone(), 10_000, None, None)
            .await
            .unwrap();
    }
    // Registration applied the held records; another pass finds nothing new.
    admin.aggregate_now().await.unwrap();
    let (sid, cost) = server
        .per_user_cost
        .iter()
        .find(|(sid, _)| **sid != low_sid)
        .unwrap();
    let balance = admin.get_balance(sid.clone()).await.unwrap();
    assert_eq!(
        balance.credit_balance_cents,
        10_000 - cost,
        "the server applied every record"
    );

    let mut dash = Dashboard::open(&server.url, SECRET, true);
    let screen = dash
        .drive(&[KeyCode::Char('2')], |app| {
            app.users.list.loaded && app.users.list.items.len() == 3 && app.live
        })
        .await;
    assert_eq!(dash.app.view, View::Users);
    assert_eq!(dash.app.conn, ConnState::Connected);
    assert!(dash.app.live, "the run subscription is up");
    let row = screen
        .lines()
        .find(|l| l.contains(sid.as_str()))
        .unwrap_or_else(|| panic!("{sid} not on screen:\n{screen}"));
    let shown = tui_admin::format::cents(balance.credit_balance_cents);
    assert!(row.contains(&shown), "row of {sid} lacks {shown}: {row}");

    // s: the server lists the lowest balance first; the user who has not
    // paid is below zero, first on screen.
    let low_shown = tui_admin::format::cents(-low_cost);
    let settled = |app: &App| app.users.list.loaded && !app.users.list.loading;
    let screen = dash
        .drive(&[KeyCode::Char('s')], |app| {
            app.users.query.sort == UserSort::BalanceAsc && settled(app)
        })
        .await;
    assert!(screen.contains("Users · lowest balance first"), "{screen}");
    let first_row = screen
        .lines()
        .skip_while(|l| !l.contains("SID"))
        .nth(1)
        .unwrap_or_default();
    assert!(
        first_row.contains(low_sid.as_str()) && first_row.contains(&low_shown),
        "{low_sid} at {low_shown} first:\n{screen}"
    );
    let balances: Vec<i64> = dash
        .app
        .users
        .list
        .items
        .iter()
        .map(|u| u.credit_balance_cents)
        .collect();
    assert!(balances.is_sorted(), "{balances:?}");
    // o: overdrawn users only, the same user.
    dash.drive(&[KeyCode::Char('o')], |app| {
        app.users.query.overdrawn && settled(app)
    })
    .await;
    let sids: Vec<&str> = dash
        .app
        .users
        .list
        .items
        .iter()
        .map(|u| u.user_sid.as_str())
        .collect();
    assert_eq!(sids, [low_sid.as_str()]);
    // `/` and a name: the server searches every user.
    let mut keys = vec![KeyCode::Char('o'), KeyCode::Char('/')];
    keys.extend("person 1".chars().map(KeyCode::Char));
    keys.push(KeyCode::Enter);
    let screen = dash
        .drive(&keys, |app| {
            app.users.query.text.as_deref() == Some("person 1") && settled(app)
        })
        .await;
    let names: Vec<Option<&str>> = dash
        .app
        .users
        .list
        .items
        .iter()
        .map(|u| u.display_name.as_deref())
        .collect();
    assert_eq!(names, [Some("Person 1")], "{screen}");
    assert!(screen.contains("filter \"person 1\""), "{screen}");

    // The CLI asks the server the same.
    let out = cli(
        &server.url,
        &["users", "--sort", "balance_asc", "--limit", "1"],
    )
    .await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    let rows: Vec<&str> = stdout.lines().skip(1).collect();
    assert!(
        rows.len() == 1 && rows[0].starts_with(low_sid.as_str()) && rows[0].contains(&low_shown),
        "{stdout}"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("with the same --sort"), "{stderr}");
    for args in [
        &["users", "--overdrawn"][..],
        &["users", "--search", "PERSON", "--below", "0"],
    ] {
        let out = cli(&server.url, args).await;
        let stdout = String::from_utf8_lossy(&out.stdout);
        let rows: Vec<&str> = stdout.lines().skip(1).collect();
        assert!(
            out.status.success() && rows.len() == 1 && rows[0].starts_with(low_sid.as_str()),
            "{args:?}: {out:?}"
        );
    }

    let screen = dash
        .drive(&[KeyCode::Char('a'), KeyCode::Char('y')], |app| {
            matches!(app.popup, Some(Popup::Summary(_)))
        })
        .await;
    let Some(Popup::Summary(summary)) = &dash.app.popup else {
        panic!("no pass summary:\n{screen}");
    };
    assert!(
        screen.contains(&format!("pass #{} finished", summary.run_id)),
        "{screen}"
    );

    // A pass started elsewhere reaches the dashboard through the subscription.
    let before = dash
        .app
        .aggregator_state
        .data
        .as_ref()
        .and_then(|s| s.last_run.as_ref())
        .map(|r| r.run_id);
    let other = admin.aggregate_now().await.unwrap();
    assert!(before < Some(other.run_id));
    dash.drive(&[KeyCode::Enter], |app| {
        app.aggregator_state
            .data
            .as_ref()
            .and_then(|s| s.last_run.as_ref())
            .map(|r| r.run_id)
            == Some(other.run_id)
    })
    .await;
    assert_eq!(
        dash.app
            .aggregator_state
            .data
            .as_ref()
            .and_then(|s| s.last_run.as_ref())
            .map(|r| r.run_id),
        Some(other.run_id)
    );

    // R on the Aggregator view: the real server reconciles, the outcome shows.
    let screen = dash
        .drive(&[KeyCode::Char('4'), KeyCode::Char('R')], |app| {
            app.check.is_none()
                && app
                    .aggregator_state
                    .data
                    .as_ref()
                    .is_some_and(|s| s.last_reconcile.is_some())
        })
        .await;
    let outcome = dash
        .app
        .aggregator_state
        .data
        .as_ref()
        .and_then(|s| s.last_reconcile.clone())
        .unwrap_or_else(|| panic!("no reconcile outcome:\n{screen}"));
    assert_eq!(
        outcome.result,
        billing_api::CheckResult::Consistent,
        "{outcome:?}"
    );
    assert!(
        screen.contains("reconcile consistent") && screen.contains(&outcome.summary),
        "{screen}"
    );

    // 6: the balance.low of the user who has not paid, with no webhook configured.
    let is_low = |e: &billing_api::Event| {
        e.kind == EventType::BalanceLow && e.data["user_sid"] == low_sid.as_str()
    };
    let screen = dash
        .drive(&[KeyCode::Char('6')], |app| {
            app.events.list.items.iter().any(is_low)
        })
        .await;
    assert_eq!(dash.app.view, View::Events);
    let row = screen
        .lines()
        .find(|l| l.contains("balance.low") && l.contains(low_sid.as_str()))
        .unwrap_or_else(|| panic!("no balance.low of {low_sid} on screen:\n{screen}"));
    let details = format!(
        "balance {} (was 0.00, threshold 5.00)",
        tui_admin::format::cents(-low_cost)
    );
    for expected in [details.as_str(), "no webhook"] {
        assert!(row.contains(expected), "{expected} not in: {row}\n{screen}");
    }
    // Enter shows it in full; Esc closes it.
    let selected = dash
        .app
        .events
        .visible()
        .iter()
        .position(|e| is_low(e))
        .unwrap();
    let moves = vec![KeyCode::Char('j'); selected];
    dash.drive(&moves, |app| app.events.list.selected == selected)
        .await;
    let screen = dash
        .drive(
            &[KeyCode::Enter],
            |app| matches!(&app.popup, Some(Popup::Event(d)) if is_low(&d.event)),
        )
        .await;
    assert!(
        screen.contains("\"low_balance_cents\": 500") && screen.contains("deliveries: none"),
        "{screen}"
    );
    dash.drive(&[KeyCode::Esc], |app| app.popup.is_none()).await;
    assert_eq!(dash.app.popup, None);

    // The user pays: balance.recovered shows up on the open view by itself.
    admin
        .record_payment(
            format!("pay-{low_sid}"),
            low_sid.clone(),
            10_000,
            None,
            None,
        )
        .await
        .unwrap();
    let recovered = format!(
        "balance {} (was {}",
        tui_admin::format::cents(10_000 - low_cost),
        tui_admin::format::cents(-low_cost)
    );
    let screen = dash
        .drive(&[], |app| {
            app.events.list.items.iter().any(|e| {
                e.kind == EventType::BalanceRecovered && e.data["user_sid"] == low_sid.as_str()
            })
        })
        .await;
    assert!(
        screen
            .lines()
            .any(|l| l.contains("balance.recovered") && l.contains(&recovered)),
        "{recovered}:\n{screen}"
    );

    // The CLI lists the same event.
    let out = cli(&server.url, &["events", "--type", "balance.low"]).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    let lines: Vec<&str> = stdout.lines().skip(1).collect();
    assert!(
        lines.iter().all(|l| l.contains(" balance.low ")),
        "{stdout}"
    );
    let rows: Vec<&&str> = lines
        .iter()
        .filter(|l| l.contains(low_sid.as_str()))
        .collect();
    assert_eq!(rows.len(), 1, "one balance.low of {low_sid}: {stdout}");
    assert!(
        rows[0].contains(&details) && rows[0].ends_with("no webhook"),
        "{stdout}"
    );

    dash.tx.send(key(KeyCode::Char('q'))).unwrap();
    let fetcher = dash.fetcher.clone();
    tokio::time::timeout(
        Duration::from_secs(5),
        tui_admin::run::run(&mut dash.terminal, &mut dash.app, &mut dash.rx, |c| {
            fetcher.execute(c)
        }),
    )
    .await
    .expect("q ends the loop")
    .unwrap();
    assert!(dash.app.should_quit);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_secret_is_reported_not_a_blank_screen() {
    let server = start_server().await;
    let mut dash = Dashboard::open(&server.url, "not-the-secret-at-all-000", false);
    let screen = dash
        .drive(&[], |app| app.conn == ConnState::Unauthorized)
        .await;
    assert_eq!(dash.app.conn, ConnState::Unauthorized);
    assert!(
        screen.contains("rejected the admin secret from"),
        "{screen}"
    );
    assert!(screen.contains("secret rejected (401)"), "{screen}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_is_down_shows_unreachable() {
    // A port that was just free: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}");
    let mut dash = Dashboard::open(&url, SECRET, false);
    let screen = dash
        .drive(&[KeyCode::Char('2')], |app| {
            matches!(app.conn, ConnState::Unreachable(_)) && app.users.list.error.is_some()
        })
        .await;
    assert!(matches!(dash.app.conn, ConnState::Unreachable(_)));
    assert!(screen.contains("unreachable"), "{screen}");
    assert!(screen.contains("could not load"), "{screen}");
    assert!(
        screen.contains("check that rpc-server is running and --url is right"),
        "{screen}"
    );
}
