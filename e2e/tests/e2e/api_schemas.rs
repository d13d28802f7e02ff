//! Schemathesis (deploy/tools/schemathesis.sh, a pinned PyPI tool in a cached venv) against the
//! OpenAPI documents of the gateway, user-svc and template-svc: every documented operation,
//! with a token that carries every scope, generated valid and invalid requests. Checks: no
//! 5xx, every status code documented, every response body and content type as documented.
//!
//! Examples per operation: `SCHEMATHESIS_MAX_EXAMPLES` (default 10; the long run uses e.g.
//! 200); `SCHEMATHESIS_SEED` replays a run.

use std::{path::PathBuf, time::Instant};

use crate::harness::{Stack, Tiers};

const CHECKS: &str = "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance";

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../deploy/tools/schemathesis.sh")
}

#[tokio::test]
async fn every_documented_operation_answers_as_its_openapi_document_says() {
    let s = Stack::start(Tiers::default()).await;
    let examples = std::env::var("SCHEMATHESIS_MAX_EXAMPLES").unwrap_or_else(|_| "10".into());
    let seed = std::env::var("SCHEMATHESIS_SEED").unwrap_or_else(|_| {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap();
        (now.as_millis() % 1_000_000).to_string()
    });
    let mut failed = Vec::new();
    for service in [&s.gateway, &s.user_svc, &s.template_svc] {
        let started = Instant::now();
        let out = tokio::process::Command::new("bash")
            .arg(script())
            .args([
                "run",
                &format!("{}/api-docs/openapi.json", service.url()),
                "--checks",
                CHECKS,
                "--max-examples",
                &examples,
                "--seed",
                &seed,
                // One worker: with threads, hypothesis' lambda descriptions on python 3.11
                // can trip CPython's "AST constructor recursion depth mismatch".
                "--workers",
                "1",
                "--header",
                &format!("Authorization: Bearer {}", s.token),
                "--request-timeout",
                "10",
            ])
            .env("NO_COLOR", "1")
            // Its cache directory (.schemathesis) goes there, not into the clone.
            .current_dir(std::env::temp_dir())
            .output()
            .await
            .expect("the schemathesis script runs");
        let stdout = String::from_utf8_lossy(&out.stdout);
        eprintln!(
            "── schemathesis against {} ({:?}, seed {seed}, {examples} examples per operation):\n{stdout}{}",
            service.name,
            started.elapsed(),
            String::from_utf8_lossy(&out.stderr)
        );
        if !out.status.success() {
            failed.push(service.name);
        }
    }
    assert!(
        failed.is_empty(),
        "Schemathesis found responses that do not match the documents of {failed:?} (seed {seed}; output above)"
    );
}
