//! The `notifyctl` binary's contract with scripts: exit codes (0 ok, 1 error, 2 usage),
//! results on stdout, diagnostics on stderr, secrets never printed. No broker needed (the
//! dead-letter commands against a real broker are tested in `e2e/tests/e2e/dlt_replay.rs`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::{Command, Output};

const SECRET: &str = "cli-test-secret-cli-test-secret-0123456789";

fn notifyctl(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_notifyctl"));
    cmd.args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("notifyctl runs")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn a_wrong_command_line_exits_2_with_the_usage_on_stderr() {
    for args in [
        &[][..],
        &["frobnicate"][..],
        &["dlt", "list"][..],
        &["dlt", "list", "--channel", "sms"][..],
        &["dlt", "replay", "--channel", "email", "--notification-id", "nope"][..],
        &["dlt", "replay", "--channel", "email", "--limit", "0"][..],
        &["token"][..],
    ] {
        let out = notifyctl(args, &[]);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", text(&out.stderr));
        assert!(out.stdout.is_empty(), "{args:?}: nothing on stdout");
        assert!(text(&out.stderr).contains("usage:"), "{args:?}");
    }
}

#[test]
fn help_goes_to_stdout_and_exits_0() {
    let out = notifyctl(&["help"], &[]);
    assert_eq!(out.status.code(), Some(0));
    assert!(text(&out.stdout).contains("notifyctl dlt replay --channel email|push"));
}

#[test]
fn an_unreachable_broker_exits_1_with_a_message_and_no_secret() {
    // A port nothing listens on: bind one, then let it go.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let bootstrap = format!("127.0.0.1:{port}");
    let out = notifyctl(
        &["dlt", "list", "--channel", "email"],
        &[
            ("APP_KAFKA_BOOTSTRAP", bootstrap.as_str()),
            ("APP_JWT_HS256_SECRET", SECRET),
        ],
    );
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(out.stdout.is_empty(), "no result on stdout: {}", text(&out.stdout));
    assert!(stderr.contains("notifyctl: error:"), "{stderr}");
    assert!(!stderr.contains(SECRET));
}

#[test]
fn token_prints_only_the_token_and_a_missing_key_is_an_error() {
    let out = notifyctl(
        &["token", "--subject", "ops", "--scope", "notifications:read"],
        &[("APP_JWT_HS256_SECRET", SECRET)],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert_eq!(stdout.trim().split('.').count(), 3, "a JWT: {stdout}");
    assert_eq!(stdout.lines().count(), 1);
    assert!(!stdout.contains(SECRET) && !text(&out.stderr).contains(SECRET));

    let out = notifyctl(&["token", "--subject", "ops"], &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("APP_JWT_HS256_SECRET"),
        "{}",
        text(&out.stderr)
    );
}
