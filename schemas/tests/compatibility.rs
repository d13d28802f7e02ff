//! `check-schemas` against the real registry (`TEST_SCHEMA_REGISTRY_URL`, default
//! `http://127.0.0.1:8081`): it refuses the incompatible fixture and passes the compatible one.

#![allow(clippy::unwrap_used)]

use std::process::Command;

use notify_schemas::{registry::SchemaRegistry, NOTIFICATION_REQUEST};

fn registry_url() -> String {
    std::env::var("TEST_SCHEMA_REGISTRY_URL").unwrap_or_else(|_| "http://127.0.0.1:8081".into())
}

fn check(args: &[&str]) -> (Option<i32>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_check-schemas"))
        .args(args)
        .env("SCHEMA_REGISTRY_URL", registry_url())
        .output()
        .unwrap();
    (out.status.code(), String::from_utf8_lossy(&out.stdout).into_owned())
}

#[tokio::test]
async fn an_incompatible_change_fails_the_check_and_a_compatible_one_passes() {
    // A subject of this test's own, holding the current request contract at BACKWARD.
    let subject = format!("compat-test-{}-value", uuid::Uuid::new_v4().simple());
    let registry = SchemaRegistry::new(&registry_url()).unwrap();
    registry.register(&subject, NOTIFICATION_REQUEST.schema).await.unwrap();
    registry.set_subject_compatibility(&subject, "BACKWARD").await.unwrap();

    let dir = env!("CARGO_MANIFEST_DIR");
    let (code, out) = check(&[
        &format!("{dir}/tests/fixtures/incompatible/notification_request.avsc"),
        &subject,
    ]);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("INCOMPATIBLE"), "{out}");

    let (code, out) = check(&[
        &format!("{dir}/tests/fixtures/compatible/notification_request.avsc"),
        &subject,
    ]);
    assert_eq!(code, Some(0), "{out}");

    let (code, out) = check(&["--self-test"]);
    assert_eq!(code, Some(0), "{out}");
}
