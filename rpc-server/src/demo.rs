//! `rpc-server demo`: everything on embedded defaults, nothing else installed.
//! A simulated billing repo, a few users and payments (one user left
//! unregistered so held usage shows), a generated admin secret, a first pass,
//! then the server.

use std::future::Future;
use std::io::Write;
use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use billing_api::{AggregateSummary, RecordPayment, RegisterUser};

use crate::clock::now_ms;
use crate::config::{DemoArgs, LedgerSettings, ServeSettings, SourceSpec};
use crate::secret::AdminSecret;
use crate::simulate::{SimulateOptions, simulate, user_sid};

const DEMO_USERS: u32 = 8;
const SECRET_FILE: &str = "admin.secret";
const REPO_DIR: &str = "billing-repo.git";

const NAMES: [&str; DEMO_USERS as usize] = [
    "Ada Lovelace",
    "Grace Hopper",
    "Alan Turing",
    "Edsger Dijkstra",
    "Barbara Liskov",
    "Ken Thompson",
    "Frances Allen",
    "Donald Knuth",
];

pub async fn run(args: DemoArgs, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
    let data_dir = args.data_dir;
    std::fs::create_dir_all(&data_dir)
        .with_context(|| format!("cannot create the demo data dir {}", data_dir.display()))?;
    let repo = data_dir.join(REPO_DIR);
    if !repo.exists() {
        simulate(&SimulateOptions {
            repo: repo.clone(),
            nodes: 3,
            hours: 24,
            records: 20,
            users: DEMO_USERS,
            seed: 7,
            branch: "main".into(),
        })
        .context("could not create the demo billing repo")?;
    }
    let secret_path = data_dir.join(SECRET_FILE);
    let secret = demo_secret(&secret_path)?;
    let ledger = LedgerSettings::new(
        data_dir.clone(),
        SourceSpec::Git {
            repo: repo.display().to_string(),
            branch: "main".into(),
        },
    );
    {
        let store = crate::server::open_store(&ledger)?;
        seed_users(&store)?;
    }
    let listen = args.listen.parse().with_context(|| {
        format!(
            "--listen {:?} is not an address like 127.0.0.1:8787",
            args.listen
        )
    })?;
    let settings = ServeSettings {
        ledger,
        replica_name: crate::config::default_replica_name(),
        listen,
        interval: Some(Duration::from_secs(crate::config::DEFAULT_INTERVAL_SECS)),
        secret,
        metrics_listen: None,
        stale_after: crate::aggregate::freshness::DEFAULT_STALE_AFTER,
        low_balance_cents: crate::store::alerts::DEFAULT_LOW_BALANCE_CENTS,
        webhooks: None,
    };
    let secret_shown = secret_path.display().to_string();
    let listener = crate::server::bind(settings.listen)?;
    crate::server::serve(
        settings,
        listener,
        move |at: crate::server::Listening| {
            let url = format!("http://{}", at.api);
            println!("listening on {url}");
            println!("billing aggregator demo");
            println!("  JSON-RPC (HTTP and WebSocket): {url}");
            println!("  admin secret file:             {secret_shown}");
            println!("  repo (simulated, 3 nodes):     {}", repo.display());
            println!(
                "  try: curl -s -H \"Authorization: Bearer $(cat {secret_shown})\" -H 'Content-Type: application/json' \\\n       -d '{{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"overview\",\"params\":{{}}}}' {url}"
            );
            println!("  dashboard: cargo run --release -p tui-admin -- --url {url} --secret-file {secret_shown}");
            println!("  stop with Ctrl-C");
            let _ = std::io::stdout().flush();
        },
        shutdown,
    )
    .await
}

/// Registers the demo users and their payments; idempotent, so a second demo run changes nothing.
/// The last simulated user stays unregistered: its usage is held, visible under `list_rejected`.
fn seed_users(store: &crate::store::Store) -> anyhow::Result<()> {
    for i in 0..DEMO_USERS - 1 {
        let sid = user_sid(i);
        let name = NAMES[i as usize];
        store.register_user(
            &RegisterUser {
                user_sid: sid.clone(),
                display_name: Some(name.into()),
                email: Some(format!(
                    "{}@example.org",
                    name.split(' ').next().unwrap_or("user").to_lowercase()
                )),
            },
            now_ms(),
        )?;
        // A mix for the dashboard: users 0 and 4 never paid and user 3 paid
        // too little, so they end up overdrawn; the others stay in credit.
        let amount = [0, 15_000, 30_000, 5_000][(i % 4) as usize];
        if amount > 0 {
            store.record_payment(
                &RecordPayment {
                    payment_id: format!("demo-topup-{sid}"),
                    user_sid: sid,
                    amount_cents: amount,
                    kind: Some("topup".into()),
                    reference: Some("demo seed".into()),
                },
                now_ms(),
            )?;
        }
    }
    Ok(())
}

/// Reads the demo secret, or generates one into a new 0600 file.
fn demo_secret(path: &Path) -> anyhow::Result<AdminSecret> {
    if !path.exists() {
        // The thread RNG is a CSPRNG seeded from the OS.
        let bytes: [u8; 24] = rand::random();
        let secret: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options
            .open(path)
            .with_context(|| format!("cannot create the secret file {}", path.display()))?;
        writeln!(file, "{secret}")?;
    }
    crate::config::admin_secret_from_file(path)
}

/// A human-readable pass summary, for `aggregate --once` without `--json`.
pub fn summary_text(s: &AggregateSummary) -> String {
    let mut out = format!(
        "run {} at {}: head {}\n  nodes {} ({} unchanged), files read {}, files rejected {}\n  \
         records applied {}, duplicate {}, conflict {}, held (unknown user) {}, invalid {}\n  cents debited {}\n",
        s.run_id,
        s.started_at,
        s.head_commit.as_deref().unwrap_or("(empty branch)"),
        s.nodes_total,
        s.nodes_skipped,
        s.files_read,
        s.files_rejected,
        s.records_applied,
        s.records_duplicate,
        s.records_conflict,
        s.records_pending,
        s.records_invalid,
        s.cents_debited,
    );
    for e in &s.errors {
        out += &format!(
            "  error ({}): {}\n",
            e.node_name.as_deref().unwrap_or("whole pass"),
            e.message
        );
    }
    out
}
