//! `make check-schemas`: asks the schema registry whether each contract (`avro/*.avsc`) could be
//! registered under its subject, that is whether it is compatible with the latest version
//! registered before it under the subject's level (`BACKWARD`, set by `register-schemas`).
//! Exits 1 naming every incompatible contract, so CI refuses a change that would break
//! consumers before it is deployed.
//!
//!   check-schemas                   every contract against its subject
//!   check-schemas FILE SUBJECT      one schema file against one subject
//!   check-schemas --baseline DIR    on a scratch registry: registers DIR's `.avsc` files (the
//!                                   contracts as the base branch has them) under their
//!                                   contracts' subjects, then checks every contract against
//!                                   them (what CI runs: deploy/local/check-schemas-ci.sh)
//!   check-schemas --self-test       proves the check can fail: registers the request contract
//!                                   under `check-schemas-self-test-value`, then checks the
//!                                   incompatible fixture (must be refused) and the compatible
//!                                   one (must pass) against it
//!
//! `SCHEMA_REGISTRY_URL` (default `http://127.0.0.1:8081`).

use std::process::ExitCode;

use anyhow::Context;
use notify_schemas::{registry::SchemaRegistry, CONTRACTS, NOTIFICATION_REQUEST};

const SELF_TEST_SUBJECT: &str = "check-schemas-self-test-value";
const INCOMPATIBLE: &str = include_str!("../../tests/fixtures/incompatible/notification_request.avsc");
const COMPATIBLE: &str = include_str!("../../tests/fixtures/compatible/notification_request.avsc");

/// Whether every reason the registry gave is "Incompatible types: writer=T, reader=T" with the
/// same T: rivven-schema 0.0.22 refuses a logical type (`timestamp-millis`) read as itself.
fn only_logical_type_defect(messages: &[String]) -> bool {
    !messages.is_empty()
        && messages.iter().all(|m| {
            m.split("Incompatible types: writer=")
                .nth(1)
                .and_then(|rest| rest.split_once(", reader="))
                .is_some_and(|(w, r)| w == r.trim())
        })
}

/// Avro's own resolution check: can a reader on `schema` read what the subject's latest
/// version wrote (BACKWARD)?
async fn avro_can_read(registry: &SchemaRegistry, subject: &str, schema: &str) -> anyhow::Result<bool> {
    let latest = registry.latest(subject).await?;
    let reader = apache_avro::Schema::parse_str(schema)?;
    Ok(apache_avro::schema_compatibility::SchemaCompatibility::can_read(&latest.schema, &reader).is_ok())
}

/// Checks `(subject, schema)` pairs; returns the incompatible subjects.
async fn check(registry: &SchemaRegistry, items: &[(String, String)]) -> anyhow::Result<Vec<String>> {
    let mut refused = Vec::new();
    for (subject, schema) in items {
        apache_avro::Schema::parse_str(schema).with_context(|| format!("the schema for {subject} does not parse"))?;
        match registry
            .is_compatible(subject, schema)
            .await
            .with_context(|| format!("cannot check {subject}"))?
        {
            None => println!("{subject}: not registered yet (nothing to be compatible with)"),
            Some((true, _)) => println!("{subject}: compatible"),
            Some((false, messages))
                if only_logical_type_defect(&messages) && avro_can_read(registry, subject, schema).await? =>
            {
                println!(
                    "{subject}: compatible (the registry's only objection is a logical type compared with itself, {messages:?}, \
                     a defect of rivven-schema 0.0.22; Avro schema resolution confirms the new version reads the latest one)"
                );
            }
            Some((false, messages)) => {
                println!(
                    "{subject}: INCOMPATIBLE with its latest registered version: {}",
                    messages.join("; ")
                );
                refused.push(subject.clone());
            }
        }
    }
    Ok(refused)
}

/// The full name of a record schema.
fn record_name(schema: &str) -> Option<String> {
    match apache_avro::Schema::parse_str(schema).ok()? {
        apache_avro::Schema::Record(r) => Some(r.name.fullname(None)),
        _ => None,
    }
}

/// Registers each `.avsc` of `dir` under the subject of the contract describing the same
/// record (files of records no contract has any more are skipped: removing a contract is a
/// decision of its own, not a schema change), each subject at `BACKWARD`.
async fn register_baseline(registry: &SchemaRegistry, dir: &std::path::Path) -> anyhow::Result<()> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot read {}", dir.display()))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "avsc"))
        .collect();
    entries.sort();
    for path in entries {
        let text = std::fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))?;
        let name = record_name(&text).with_context(|| format!("{} is not a record schema", path.display()))?;
        let Some(contract) = CONTRACTS
            .iter()
            .find(|c| record_name(c.schema).as_deref() == Some(name.as_str()))
        else {
            println!("baseline {}: {name} is no contract any more; skipped", path.display());
            continue;
        };
        registry
            .register(contract.subject, &text)
            .await
            .with_context(|| format!("cannot register the baseline of {}", contract.subject))?;
        registry.set_subject_compatibility(contract.subject, "BACKWARD").await?;
        println!("baseline {}: registered under {}", path.display(), contract.subject);
    }
    Ok(())
}

async fn run(args: &[String], registry: &SchemaRegistry) -> anyhow::Result<bool> {
    match args {
        [] => {
            let items: Vec<(String, String)> = CONTRACTS
                .iter()
                .map(|c| (c.subject.to_string(), c.schema.to_string()))
                .collect();
            Ok(check(registry, &items).await?.is_empty())
        }
        [flag] if flag == "--self-test" => {
            registry
                .register(SELF_TEST_SUBJECT, NOTIFICATION_REQUEST.schema)
                .await
                .context("cannot register the self-test subject")?;
            registry
                .set_subject_compatibility(SELF_TEST_SUBJECT, "BACKWARD")
                .await
                .context("cannot set the self-test subject's compatibility")?;
            let bad = check(registry, &[(SELF_TEST_SUBJECT.into(), INCOMPATIBLE.into())]).await?;
            let good = check(registry, &[(SELF_TEST_SUBJECT.into(), COMPATIBLE.into())]).await?;
            let ok = bad.len() == 1 && good.is_empty();
            println!(
                "self-test: {}",
                if ok {
                    "the incompatible fixture is refused, the compatible one passes"
                } else {
                    "FAILED: the check does not tell the fixtures apart"
                }
            );
            Ok(ok)
        }
        [flag, dir] if flag == "--baseline" => {
            register_baseline(registry, std::path::Path::new(dir)).await?;
            Box::pin(run(&[], registry)).await
        }
        [file, subject] => {
            let schema = std::fs::read_to_string(file).with_context(|| format!("cannot read {file}"))?;
            Ok(check(registry, &[(subject.clone(), schema)]).await?.is_empty())
        }
        _ => anyhow::bail!("usage: check-schemas [--self-test | --baseline DIR | FILE SUBJECT]"),
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let url = std::env::var("SCHEMA_REGISTRY_URL").unwrap_or_else(|_| "http://127.0.0.1:8081".into());
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match SchemaRegistry::new(&url) {
        Ok(registry) => run(&args, &registry).await,
        Err(e) => Err(e.into()),
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("check-schemas: error: {e:#} (registry {url})");
            ExitCode::from(2)
        }
    }
}
