//! The command line, the config file and the environment resolved into settings.

use super::*;

fn parse(args: &[&str]) -> Command {
    parse_without_env(std::iter::once("rpc-server").chain(args.iter().copied()))
        .unwrap()
        .command
}

/// These tests read no `BILLING_*` variable: an operator's exported
/// settings must not change what they check. The same tests run again in a
/// child process with every such variable set, and must still pass.
#[test]
fn the_config_tests_pass_with_billing_variables_exported() {
    if std::env::var_os("BILLING_CONFIG_TESTS_CHILD").is_some() {
        return;
    }
    let exe = std::env::current_exe().unwrap();
    let out = std::process::Command::new(exe)
        .args(["config::tests::", "--test-threads", "1"])
        .env("BILLING_CONFIG_TESTS_CHILD", "1")
        .env("BILLING_CONFIG", "/nonexistent/billing.toml")
        .env("BILLING_REPO", "/from/the/environment.git")
        .env("BILLING_DATA_DIR", "/from/the/environment")
        .env("BILLING_BRANCH", "from-env")
        .env("BILLING_INTERVAL", "7")
        .env("BILLING_LISTEN", "127.0.0.1:1")
        .env("BILLING_FORGE_URL", "http://127.0.0.1:1")
        .env("BILLING_ADMIN_SECRET_FILE", "/nonexistent/secret")
        .env("BILLING_LEDGER_URL", "postgres://nobody@127.0.0.1:1/none")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "with BILLING_* exported:\n{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let passed = stdout
        .lines()
        .filter(|l| l.starts_with("test config::tests::") && l.ends_with(" ok"))
        .count();
    assert!(passed >= 5, "the child ran the config tests:\n{stdout}");
}

/// The defaults the help texts name (written there because a flag's
/// default must not hide the config file's value) are the ones in force.
#[test]
fn the_help_texts_name_the_defaults_in_force() {
    use clap::CommandFactory;
    let help = |sub: &str| {
        Cli::command()
            .find_subcommand_mut(sub)
            .unwrap_or_else(|| panic!("subcommand {sub}"))
            .render_long_help()
            .to_string()
    };
    let serve = help("serve");
    let stale = humantime::format_duration(crate::aggregate::freshness::DEFAULT_STALE_AFTER);
    for default in [
        DEFAULT_LISTEN.to_string(),
        DEFAULT_DATA_DIR.to_string(),
        DEFAULT_BRANCH.to_string(),
        DEFAULT_INTERVAL_SECS.to_string(),
        billing_api::otoml::DEFAULT_MAX_FILE_BYTES.to_string(),
        billing_api::otoml::DEFAULT_MAX_RECORDS_PER_FILE.to_string(),
        billing_api::otoml::DEFAULT_MAX_RECORD_CENTS.to_string(),
        crate::store::DEFAULT_KEEP_RUNS.to_string(),
        crate::store::alerts::DEFAULT_LOW_BALANCE_CENTS.to_string(),
        stale.to_string(),
    ] {
        let shown = format!("[default: {default}");
        assert!(
            serve.contains(&shown),
            "serve --help lacks {shown}]:\n{serve}"
        );
    }
    let demo = help("demo");
    assert!(
        demo.contains(&format!("[default: {DEFAULT_DEMO_DATA_DIR}]")),
        "{demo}"
    );
}

/// The secret and the token follow the module's rule: the flag, then the
/// environment, then the config file.
#[test]
fn the_secret_and_token_flags_win_over_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let flag = dir.path().join("flag.secret");
    let config = dir.path().join("config.secret");
    std::fs::write(&flag, "from-the-flag-file-0123456789\n").unwrap();
    std::fs::write(&config, "from-the-config-file-0123456789\n").unwrap();
    let env = || Some("from-the-environment-0123456789".to_string());
    let secret = |s: AdminSecret| s.authorization().to_str().unwrap().to_string();
    let pick = |flag: Option<&Path>, env, config: Option<&Path>| {
        secret(pick_secret(flag.map(Into::into), env, config.map(Into::into)).unwrap())
    };
    assert!(pick(Some(&flag), env(), Some(&config)).contains("from-the-flag-file"));
    assert!(pick(None, env(), Some(&config)).contains("from-the-environment"));
    assert!(pick(None, None, Some(&config)).contains("from-the-config-file"));
    assert!(pick_secret(None, None, None).is_err());

    let token = |flag: Option<&Path>, env, config: Option<&Path>| {
        pick_token(flag.map(Into::into), env, config.map(Into::into)).unwrap()
    };
    let flagged = token(Some(&flag), env(), Some(&config)).unwrap();
    assert_eq!(flagged, "from-the-flag-file-0123456789");
    assert_eq!(
        token(None, env(), Some(&config)).unwrap(),
        "from-the-environment-0123456789"
    );
    assert_eq!(
        token(None, None, Some(&config)).unwrap(),
        "from-the-config-file-0123456789"
    );
    assert_eq!(token(None, None, None), None);
}

#[test]
fn flags_win_over_the_config_file_which_wins_over_defaults() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("billing.toml");
    std::fs::write(
        &config,
        "repo = \"/srv/billing.git\"\nbranch = \"prod\"\ninterval = 60\n",
    )
    .unwrap();
    let secret = dir.path().join("secret");
    std::fs::write(&secret, "0123456789abcdef0123\n").unwrap();
    let Command::Serve(args) = parse(&[
        "serve",
        "--config",
        config.to_str().unwrap(),
        "--interval",
        "0",
        "--admin-secret-file",
        secret.to_str().unwrap(),
    ]) else {
        panic!("not serve")
    };
    let settings = args.resolve().unwrap();
    assert_eq!(
        settings.ledger.source,
        SourceSpec::Git {
            repo: "/srv/billing.git".into(),
            branch: "prod".into()
        }
    );
    assert_eq!(settings.interval, None);
    assert_eq!(settings.listen, DEFAULT_LISTEN.parse().unwrap());
    assert_eq!(
        settings.ledger.ledger_path(),
        Path::new("./data/ledger.redb")
    );
}

#[test]
fn missing_or_short_secret_and_missing_repo_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let short = dir.path().join("short");
    std::fs::write(&short, "tiny").unwrap();
    let Command::Serve(args) = parse(&[
        "serve",
        "--repo",
        "/x",
        "--admin-secret-file",
        short.to_str().unwrap(),
    ]) else {
        panic!()
    };
    let err = args.resolve().unwrap_err().to_string();
    assert!(err.contains("at least 16"), "{err}");

    let Command::Serve(args) = parse(&["serve", "--admin-secret-file", short.to_str().unwrap()])
    else {
        panic!()
    };
    let err = args.resolve().unwrap_err().to_string();
    assert!(err.contains("no billing repo configured"), "{err}");

    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "repository = 1\n").unwrap();
    let Command::Aggregate(args) =
        parse(&["aggregate", "--once", "--config", bad.to_str().unwrap()])
    else {
        panic!()
    };
    let err = format!("{:#}", args.source.resolve().unwrap_err());
    assert!(
        err.contains("bad.toml") && err.contains("unknown field"),
        "{err}"
    );
}
