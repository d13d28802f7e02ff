//! Every service refuses to start with the placeholder secrets of `.env.example` (and a
//! placeholder Mailgun webhook key), naming the variable that holds one
//! (kit::settings::check_secret).

use std::{
    collections::HashMap,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use test_support::process::binary;

/// The `NAME=value` lines of the repository's `.env.example`.
fn env_example() -> HashMap<String, String> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../.env.example");
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

/// Runs `service` with `env` (and nothing of this process's `APP_*`), expecting it to exit
/// by itself within 20 s: its exit status and what it printed.
fn run_to_exit(service: &str, env: &[(&str, String)]) -> (std::process::ExitStatus, String) {
    let mut cmd = Command::new(binary(service));
    for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("APP_")) {
        cmd.env_remove(k);
    }
    let mut child = cmd
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .env("RUST_LOG", "error")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("{service} started with a placeholder secret instead of refusing");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status, text)
}

#[test]
fn every_service_refuses_each_placeholder_secret_of_env_example_naming_its_variable() {
    let example = env_example();
    let jwt = example["APP_JWT_HS256_SECRET"].clone();
    let pg = format!(
        "postgres://postgres:{}@127.0.0.1:5432/notify",
        example["POSTGRES_PASSWORD"]
    );
    let redis = format!("redis://:{}@127.0.0.1:6379", example["REDIS_PASSWORD"]);
    // Acceptable values for everything else, so that only the placeholder can be refused.
    let good_secret = "3f9a1c7e5b2d84f6a0c9e1b7d3f5a8c2e4b6d8f0a2c4e6b8d0f2a4c6e8b0d2f4".to_string();
    let good: Vec<(&str, String)> = vec![
        ("APP_JWT_HS256_SECRET", good_secret.clone()),
        ("APP_UNSUBSCRIBE_SECRET", good_secret.chars().rev().collect()),
        ("APP_DATABASE_URL", "postgres://postgres@127.0.0.1:1/notify".into()),
        ("APP_REDIS_URL", "redis://127.0.0.1:1".into()),
        ("APP_KAFKA_BOOTSTRAP", "127.0.0.1:1".into()),
        ("APP_SCHEMA_REGISTRY_URL", "http://127.0.0.1:1".into()),
        ("APP_PORT", "0".into()),
        ("APP_RUN_MIGRATIONS", "false".into()),
    ];
    let cases: &[(&str, &[&str])] = &[
        (
            "gateway",
            &[
                "APP_JWT_HS256_SECRET",
                "APP_DATABASE_URL",
                "APP_REDIS_URL",
                "APP_MAILGUN_WEBHOOK_SIGNING_KEY",
            ],
        ),
        (
            "user-svc",
            &[
                "APP_JWT_HS256_SECRET",
                "APP_DATABASE_URL",
                "APP_REDIS_URL",
                "APP_UNSUBSCRIBE_SECRET",
            ],
        ),
        (
            "template-svc",
            &["APP_JWT_HS256_SECRET", "APP_DATABASE_URL", "APP_REDIS_URL"],
        ),
        ("email-worker", &["APP_JWT_HS256_SECRET", "APP_REDIS_URL"]),
        ("push-worker", &["APP_JWT_HS256_SECRET", "APP_REDIS_URL"]),
        ("ingest", &["APP_JWT_HS256_SECRET", "APP_DATABASE_URL", "APP_REDIS_URL"]),
        ("outbox-relay", &["APP_DATABASE_URL"]),
        ("status-projector", &["APP_DATABASE_URL"]),
    ];
    for (service, variables) in cases {
        for variable in *variables {
            let placeholder = match *variable {
                "APP_JWT_HS256_SECRET" => jwt.clone(),
                "APP_DATABASE_URL" => pg.clone(),
                "APP_UNSUBSCRIBE_SECRET" => example["APP_UNSUBSCRIBE_SECRET"].clone(),
                // Empty in .env.example (the webhook is off); a kept placeholder is refused.
                "APP_MAILGUN_WEBHOOK_SIGNING_KEY" => "change-me-mailgun-webhook-signing-key".into(),
                _ => redis.clone(),
            };
            let mut env: Vec<(&str, String)> = good.iter().filter(|(k, _)| k != variable).cloned().collect();
            env.push((variable, placeholder));

            let (status, output) = run_to_exit(service, &env);

            assert!(!status.success(), "{service} exited 0 with {variable} a placeholder");
            assert!(
                output.contains(variable) && output.contains("placeholder"),
                "{service} must name {variable} as a placeholder:\n{output}"
            );
            assert!(
                !output.contains(&example["POSTGRES_PASSWORD"])
                    && !output.contains(&example["REDIS_PASSWORD"])
                    && !output.contains(&jwt)
                    && !output.contains(&example["APP_UNSUBSCRIBE_SECRET"]),
                "{service} printed the secret:\n{output}"
            );
        }
    }
}
