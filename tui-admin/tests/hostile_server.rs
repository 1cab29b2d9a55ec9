//! End to end: a node commits usage whose text carries terminal control
//! characters (an invalid record's sid and key, a file that is not TOML and
//! quotes them raw); a real server on 127.0.0.1:0 lists the rejections; the
//! real `tui-admin` binary prints them. No raw control character reaches its
//! output, and `--json` still decodes to the values as the server holds them.

use std::path::Path;
use std::process::Command;

use tui_admin::safe::is_unsafe;

mod server;
use server::RunningServer;

const SECRET: &str = "tui-hostile-secret-0123456789";

fn git(dir: &Path, args: &[&str]) {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["-c", "user.name=node", "-c", "user.email=node@example.org"])
        .args(args)
        .output()
        .expect("git runs");
    assert!(out.status.success(), "git {args:?}: {out:?}");
}

/// A billing repo with a record whose sid and key carry control characters
/// (TOML escapes, so the file parses) and a file that is not TOML at all, with
/// the raw bytes in it.
fn hostile_repo(dir: &Path) -> String {
    let repo = dir.join("repo");
    std::fs::create_dir_all(repo.join("nodes/node-a")).unwrap();
    git(&repo, &["init", "-q", "-b", "main"]);
    let escaped = r"\u001b]0;owned\u0007\r\u0000\u202e";
    std::fs::write(
        repo.join("nodes/node-a/usage_2026-11-27-08.otoml"),
        format!(
            "version = 1\n[[records]]\nidempotency_key = \"k{escaped}\"\nuser_sid = \"u{escaped}\"\n\
             node_name = \"node-a\"\ncost_cents = 5\n"
        ),
    )
    .unwrap();
    std::fs::write(
        repo.join("nodes/node-a/usage_2026-11-27-09.otoml"),
        b"version = 1\n\x1b]0;owned\x07\r\x00\xe2\x80\xae = 1\n",
    )
    .unwrap();
    git(&repo, &["add", "-A"]);
    git(&repo, &["commit", "-q", "-m", "usage"]);
    repo.display().to_string()
}

fn tui_admin(url: &str, args: &[&str]) -> (Vec<u8>, Vec<u8>) {
    let out = Command::new(env!("CARGO_BIN_EXE_tui-admin"))
        .args(["--url", url])
        .args(args)
        .env("BILLING_ADMIN_SECRET", SECRET)
        .output()
        .unwrap();
    assert!(out.status.success() || args[0] == "aggregate", "{out:?}");
    (out.stdout, out.stderr)
}

fn raw_controls(bytes: &[u8]) -> Vec<char> {
    String::from_utf8_lossy(bytes)
        .chars()
        .filter(|c| is_unsafe(*c) && *c != '\n')
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_never_prints_raw_control_characters_from_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let repo = hostile_repo(dir.path());
    let mut server = RunningServer::start(repo, dir.path().join("data"), SECRET).await;
    let url = server.url.clone();

    let outputs = tokio::task::spawn_blocking(move || {
        let mut outputs = vec![tui_admin(&url, &["aggregate", "--once"])];
        for args in [
            &["rejected"][..],
            &["rejected", "--json"],
            &["state"],
            &["state", "--json"],
        ] {
            outputs.push(tui_admin(&url, args));
        }
        outputs
    })
    .await
    .unwrap();
    server.stop().await;

    for (stdout, stderr) in &outputs {
        assert_eq!(
            (raw_controls(stdout), raw_controls(stderr)),
            (vec![], vec![]),
            "{}",
            String::from_utf8_lossy(stdout)
        );
    }
    // The table shows the characters visibly.
    let table = String::from_utf8_lossy(&outputs[1].0);
    assert!(
        table.to_lowercase().contains("\\u{1b}]0;owned\\u{7}"),
        "{table}"
    );
    // The JSON decodes to the values the server holds, control characters and all.
    let items: Vec<billing_api::types::RejectedItem> = serde_json::from_slice(&outputs[2].0)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&outputs[2].0)));
    let sids: Vec<&str> = items.iter().filter_map(|r| r.user_sid.as_deref()).collect();
    assert_eq!(sids, ["u\u{1b}]0;owned\u{7}\r\u{0}\u{202e}"], "{items:#?}");
    // The server quotes what it rejects with its control characters escaped.
    assert!(
        items
            .iter()
            .any(|r| r.detail.contains("]0;owned") && !r.detail.chars().any(is_unsafe)),
        "{items:#?}"
    );
}
