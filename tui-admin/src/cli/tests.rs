//! The command line's parsing, its exit paths and its printing of server text.

use super::*;

#[test]
fn defaults_match_the_demo() {
    let cli = Cli::try_parse_from(["tui-admin"]).unwrap();
    assert_eq!(cli.url, "http://127.0.0.1:8787");
    assert_eq!(cli.secret_file, PathBuf::from("./demo-data/admin.secret"));
    assert_eq!(cli.refresh, Duration::from_secs(2));
    assert!(cli.command.is_none());
}

#[test]
fn subcommands_and_global_flags_parse() {
    let cli = Cli::try_parse_from([
        "tui-admin",
        "payments",
        "--user",
        "u-0001",
        "--json",
        "--all",
        "--url",
        "http://h:1",
    ])
    .unwrap();
    assert_eq!(cli.url, "http://h:1");
    // --refresh is the dashboard's: a subcommand, which does not poll, refuses it.
    let err = Cli::try_parse_from(["tui-admin", "payments", "--refresh", "500ms"]).unwrap_err();
    assert!(err.to_string().contains("--refresh"), "{err}");
    let cli_dashboard = Cli::try_parse_from(["tui-admin", "--refresh", "500ms"]).unwrap();
    assert_eq!(cli_dashboard.refresh, Duration::from_millis(500));
    let Some(Command::Payments { user, list }) = cli.command else {
        panic!("payments expected");
    };
    assert_eq!(user.as_deref(), Some("u-0001"));
    assert!(list.json && list.all);
    assert_eq!(list.limit, 100);
}

#[test]
fn a_bad_refresh_is_rejected_with_the_value() {
    let err = Cli::try_parse_from(["tui-admin", "--refresh", "soon"]).unwrap_err();
    assert!(err.to_string().contains("soon"), "{err}");
}

#[tokio::test]
async fn aggregate_without_once_says_what_to_run() {
    let conn = Connection {
        // Nothing is contacted: the check comes first.
        url: "http://127.0.0.1:9".into(),
        secret: Secret::literal("x", "test"),
    };
    let err = run(
        &conn,
        Command::Aggregate {
            once: false,
            json: false,
        },
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("aggregate --once"), "{err}");
}

#[tokio::test]
async fn an_unreachable_server_is_named_with_its_url() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let conn = Connection {
        url: format!("http://127.0.0.1:{port}"),
        secret: Secret::literal("x", "test"),
    };
    let err = run(&conn, Command::State { json: false })
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains(&conn.url)
            && text.contains("cannot reach")
            && text.contains(crate::config::UNREACHABLE_ADVICE),
        "{text}"
    );
}

/// A value that would retitle the terminal, ring, return, end a C string and
/// turn the rest of the line around, if printed raw.
const HOSTILE: &str = "x\u{1b}]0;owned\u{7}\r\u{0}\u{202e}\u{9b}2J";

fn raw_controls(bytes: &[u8]) -> Vec<char> {
    String::from_utf8_lossy(bytes)
        .chars()
        .filter(|c| safe::is_unsafe(*c) && *c != '\n')
        .collect()
}

async fn print_hostile<T: Serialize + Clone>(
    items: Vec<T>,
    json: bool,
    header: &str,
    row: impl Fn(&T) -> String,
) -> Vec<u8> {
    let args = ListArgs {
        json,
        limit: 10,
        cursor: None,
        all: false,
    };
    let mut out = Vec::new();
    print_pages(
        &mut out,
        &args,
        |_, _| {
            let items = items.clone();
            async move {
                Ok(Page {
                    items,
                    next_cursor: None,
                })
            }
        },
        header,
        "",
        row,
    )
    .await
    .unwrap();
    out
}

fn hostile_user() -> UserBilling {
    UserBilling {
        user_sid: format!("u{HOSTILE}"),
        display_name: Some(HOSTILE.into()),
        email: Some(format!("{HOSTILE}@example.org")),
        created_at: "2026-11-27T09:00:00.000Z".into(),
        credit_balance_cents: 1,
        total_paid_cents: 1,
        total_consumed_cents: 0,
    }
}

fn hostile_payment() -> Payment {
    Payment {
        payment_id: format!("pay{HOSTILE}"),
        user_sid: format!("u{HOSTILE}"),
        amount_cents: 100,
        kind: HOSTILE.into(),
        reference: Some(HOSTILE.into()),
        created_at: "2026-11-27T09:00:00.000Z".into(),
    }
}

#[tokio::test]
async fn users_and_payments_tables_print_control_characters_visibly() {
    let users = print_hostile(vec![hostile_user()], false, &users_header(), user_row).await;
    let payments =
        print_hostile(vec![hostile_payment()], false, PAYMENTS_HEADER, payment_row).await;
    for out in [users, payments] {
        assert_eq!(raw_controls(&out), Vec::<char>::new());
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.contains("x\\u{1b}]0;owned\\u{7}\\u{d}\\u{0}\\u{202e}\\u{9b}2J"),
            "{text}"
        );
        assert_eq!(text.lines().count(), 2, "one header, one row: {text}");
    }
}

#[tokio::test]
async fn json_output_keeps_the_real_values_without_raw_controls() {
    let out = print_hostile(vec![hostile_user()], true, &users_header(), user_row).await;
    assert_eq!(raw_controls(&out), Vec::<char>::new());
    let back: Vec<UserBilling> = serde_json::from_slice(&out).unwrap();
    assert_eq!(back, vec![hostile_user()]);

    let out = print_hostile(vec![hostile_payment()], true, PAYMENTS_HEADER, payment_row).await;
    assert_eq!(raw_controls(&out), Vec::<char>::new());
    let back: Vec<Payment> = serde_json::from_slice(&out).unwrap();
    assert_eq!(back, vec![hostile_payment()]);
}

#[tokio::test]
async fn an_out_of_range_limit_is_refused() {
    let conn = Connection {
        url: "http://127.0.0.1:9".into(),
        secret: Secret::literal("x", "test"),
    };
    let list = ListArgs {
        json: false,
        limit: 5000,
        cursor: None,
        all: false,
    };
    let query = UserQueryArgs {
        sort: None,
        search: None,
        overdrawn: false,
        below: None,
    };
    let err = run(&conn, Command::Users { query, list })
        .await
        .unwrap_err();
    assert!(err.to_string().contains("--limit 5000"), "{err}");
}

#[test]
fn users_take_an_order_and_a_filter_for_the_server() {
    let cli = Cli::try_parse_from([
        "tui-admin",
        "users",
        "--sort",
        "balance_asc",
        "--search",
        "Ada",
        "--overdrawn",
        "--below",
        "-500",
        "--limit",
        "10",
    ])
    .unwrap();
    let Some(Command::Users { query, list }) = cli.command else {
        panic!("users expected");
    };
    assert_eq!(query.sort, Some(UserSort::BalanceAsc));
    assert_eq!(
        query.filter(),
        Some(UserFilter {
            sid_prefix: None,
            text: Some("Ada".into()),
            below_cents: Some(-500),
            overdrawn: Some(true),
        })
    );
    assert_eq!(list.limit, 10);

    // No flag: the plain listing, with neither param sent.
    let cli = Cli::try_parse_from(["tui-admin", "users"]).unwrap();
    let Some(Command::Users { query, .. }) = cli.command else {
        panic!("users expected");
    };
    assert_eq!((query.sort, query.filter()), (None, None));
    assert!(!query.is_set());
    for order in ["sid", "balance_desc", "consumed_desc"] {
        Cli::try_parse_from(["tui-admin", "users", "--sort", order]).unwrap();
    }

    let err = Cli::try_parse_from(["tui-admin", "users", "--sort", "balance"]).unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("balance_asc, balance_desc, consumed_desc"),
        "{text}"
    );
}

#[test]
fn events_take_a_type_and_the_list_flags() {
    let cli = Cli::try_parse_from([
        "tui-admin",
        "events",
        "--type",
        "balance.low",
        "--limit",
        "5",
    ])
    .unwrap();
    let Some(Command::Events { kind, list }) = cli.command else {
        panic!("events expected");
    };
    assert_eq!(kind, Some(EventType::BalanceLow));
    assert_eq!(list.limit, 5);
    let cli = Cli::try_parse_from(["tui-admin", "events"]).unwrap();
    assert!(matches!(
        cli.command,
        Some(Command::Events { kind: None, .. })
    ));
}

#[test]
fn an_unknown_event_type_names_the_known_ones() {
    let err = Cli::try_parse_from(["tui-admin", "events", "--type", "balance.lo"]).unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("balance.lo") && text.contains("balance.overdrawn, balance.recovered"),
        "{text}"
    );
}

fn hostile_event() -> Event {
    Event {
        id: "evt_000000000042".into(),
        kind: EventType::BalanceOverdrawn,
        created_at: "2026-11-27T09:58:01.000Z".into(),
        data: serde_json::json!({
            "user_sid": format!("u{HOSTILE}"),
            "balance_cents": -250,
            "previous_balance_cents": 1_000,
            "low_balance_cents": 500,
        }),
        deliveries: vec![billing_api::Delivery {
            url: "https://hooks.example.org/billing".into(),
            status: billing_api::DeliveryStatus::Failed,
            attempts: 17,
            last_status: None,
            last_error: Some(format!("refused {HOSTILE}")),
            next_attempt_at: None,
            delivered_at: None,
        }],
    }
}

#[tokio::test]
async fn event_rows_line_up_with_the_header_and_print_control_characters_visibly() {
    let mut plain = hostile_event();
    plain.data["user_sid"] = "u-0001".into();
    let row = event_row(&plain, 0);
    for (column, value) in [
        ("ID", "evt_000000000042"),
        ("TYPE", "balance.overdrawn"),
        ("SUBJECT", "u-0001"),
        ("DETAILS", "balance -2.50 (was 10.00, threshold 5.00)"),
    ] {
        assert_eq!(EVENTS_HEADER.find(column), row.find(value), "{row}");
    }

    let out = print_hostile(vec![hostile_event()], false, EVENTS_HEADER, |e| {
        event_row(e, 0)
    })
    .await;
    assert_eq!(raw_controls(&out), Vec::<char>::new());
    let text = String::from_utf8(out).unwrap();
    assert_eq!(text.lines().count(), 2, "one header, one row: {text}");
    assert!(text.contains(" ux\\u{1b}]0;owned"), "{text}");
    assert!(
        text.trim_end().ends_with(
            " · failed after 17 attempts: refused x\\u{1b}]0;owned\\u{7}\\u{d}\\u{0}\\u{202e}\\u{9b}2J"
        ),
        "{text}"
    );

    let out = print_hostile(vec![hostile_event()], true, EVENTS_HEADER, |e| {
        event_row(e, 0)
    })
    .await;
    assert_eq!(raw_controls(&out), Vec::<char>::new());
    let back: Vec<Event> = serde_json::from_slice(&out).unwrap();
    assert_eq!(back, vec![hostile_event()]);
}

/// Each column's title ends where its values end (right-aligned amounts) or
/// starts where they start.
#[test]
fn the_users_table_header_lines_up_with_its_rows() {
    let user = UserBilling {
        user_sid: "u-0001".into(),
        display_name: Some("Ann".into()),
        email: None,
        created_at: "2026-11-27T09:00:00.000Z".into(),
        credit_balance_cents: -1234,
        total_paid_cents: 10_000,
        total_consumed_cents: 11_234,
    };
    let (header, row) = (users_header(), user_row(&user));
    let end = |text: &str, word: &str| text.find(word).expect(word) + word.len();
    let start = |text: &str, word: &str| text.find(word).expect(word);
    assert_eq!(
        end(&header, "BALANCE"),
        end(&row, &format::cents(-1234)),
        "{header}\n{row}"
    );
    assert_eq!(
        end(&header, "PAID"),
        end(&row, &format::cents(10_000)),
        "{header}\n{row}"
    );
    assert_eq!(
        end(&header, "CONSUMED"),
        end(&row, &format::cents(11_234)),
        "{header}\n{row}"
    );
    assert_eq!(
        start(&header, "NAME"),
        start(&row, "Ann"),
        "{header}\n{row}"
    );
}
