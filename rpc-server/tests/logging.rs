//! Log output of the real `rpc-server` binary with stderr piped, as under a
//! service manager or a log shipper: no ANSI colour codes in text, and one JSON
//! object per line with `--log-format json` (flag, env or config key).

use std::path::Path;
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_rpc-server");

/// A billing repo with a little usage, made by the binary's own `simulate`.
fn repo(dir: &Path) -> String {
    let repo = dir.join("repo.git");
    let out = Command::new(BIN)
        .args(["simulate", "--nodes", "2", "--hours", "2", "--records", "3"])
        .arg("--repo")
        .arg(&repo)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    repo.display().to_string()
}

/// Runs `aggregate --once` on a fresh data dir; returns its stderr.
fn aggregate(dir: &Path, run: &str, extra: &[&str], env: &[(&str, &str)]) -> String {
    let repo = repo(dir);
    let mut cmd = Command::new(BIN);
    cmd.args(extra)
        .args(["aggregate", "--once", "--repo", &repo, "--data-dir"])
        .arg(dir.join(run))
        // The environment of the test must not decide the outcome.
        .env_remove("NO_COLOR")
        .env_remove("BILLING_LOG_FORMAT")
        .env_remove("RUST_LOG");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{out:?}");
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.contains("aggregation pass finished"),
        "the pass logs its summary: {stderr:?}"
    );
    stderr
}

#[test]
fn text_logs_to_a_pipe_carry_no_colour_codes() {
    let dir = tempfile::tempdir().unwrap();
    let stderr = aggregate(dir.path(), "data", &[], &[]);
    assert!(!stderr.contains("\x1b["), "{stderr:?}");
    assert!(stderr.contains(" INFO "), "{stderr:?}");
}

fn assert_json_lines(stderr: &str) {
    for line in stderr.lines() {
        let value: serde_json::Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("not a JSON log line ({e}): {line:?}"));
        assert!(
            value["level"].is_string() && value["fields"].is_object(),
            "{line}"
        );
    }
}

#[test]
fn json_logs_are_one_object_per_line_from_flag_env_or_config() {
    let dir = tempfile::tempdir().unwrap();
    assert_json_lines(&aggregate(
        dir.path(),
        "flag",
        &["--log-format", "json"],
        &[],
    ));
    assert_json_lines(&aggregate(
        dir.path(),
        "env",
        &[],
        &[("BILLING_LOG_FORMAT", "json")],
    ));
    let config = dir.path().join("billing.toml");
    std::fs::write(&config, "log_format = \"json\"\n").unwrap();
    assert_json_lines(&aggregate(
        dir.path(),
        "config",
        &[],
        &[("BILLING_CONFIG", config.to_str().unwrap())],
    ));
    // The flag wins over the config file.
    let stderr = aggregate(
        dir.path(),
        "both",
        &["--log-format", "text"],
        &[("BILLING_CONFIG", config.to_str().unwrap())],
    );
    assert!(stderr.lines().all(|l| !l.starts_with('{')), "{stderr:?}");
}

/// The lines of `stderr` (JSON) whose message is `message`.
fn events<'a>(lines: &'a [serde_json::Value], message: &str) -> Vec<&'a serde_json::Value> {
    lines
        .iter()
        .filter(|v| v["fields"]["message"] == message)
        .collect()
}

#[test]
fn passes_and_rejected_files_log_one_event_each_with_stable_fields() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("work");
    std::fs::create_dir_all(repo.join("nodes/n1")).unwrap();
    let git = |args: &[&str]| {
        let out = Command::new("git")
            .arg("-C")
            .arg(&repo)
            .args(["-c", "user.name=t", "-c", "user.email=t@localhost"])
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
    };
    git(&["init", "-q", "-b", "main"]);
    std::fs::write(
        repo.join("nodes/n1/usage_2026-11-27-01.otoml"),
        "this is = = not toml",
    )
    .unwrap();
    git(&["add", "-A"]);
    git(&["commit", "-q", "-m", "bad usage"]);
    let out = Command::new(BIN)
        .args(["--log-format", "json", "aggregate", "--once", "--repo"])
        .arg(&repo)
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let stderr = String::from_utf8(out.stderr).unwrap();
    let lines: Vec<serde_json::Value> = stderr
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let [rejected] = events(&lines, "usage file rejected")[..] else {
        panic!("one rejected-file event: {stderr}");
    };
    let f = &rejected["fields"];
    assert_eq!(f["node"], "n1");
    assert_eq!(f["file"], "nodes/n1/usage_2026-11-27-01.otoml");
    assert_eq!(f["reason"], "unparseable");
    assert!(f["detail"].as_str().is_some_and(|d| !d.is_empty()), "{f}");
    assert_eq!(f["commit"].as_str().map(str::len), Some(40), "{f}");
    let [pass] = events(&lines, "aggregation pass finished")[..] else {
        panic!("one pass event: {stderr}");
    };
    for field in [
        "run_id",
        "applied",
        "duplicate",
        "conflict",
        "pending",
        "invalid",
        "files",
        "files_rejected",
        "skipped",
        "errors",
        "cents_debited",
        "elapsed_ms",
    ] {
        assert!(
            pass["fields"][field].is_u64() || pass["fields"][field].is_i64(),
            "{field}: {pass}"
        );
    }
    assert_eq!(pass["fields"]["files_rejected"], 1);
}
