//! Dead-letter replay with the real `notifyctl` binary against the whole pipeline: a
//! notification the SMTP server refuses permanently reaches the email DLT; once the server
//! accepts again, `notifyctl dlt list` shows it, `dlt replay --dry-run` republishes nothing,
//! `dlt replay` delivers it (once: a second replay republishes nothing), and a selective
//! replay leaves the other dead letters for a later replay.

use std::time::Duration;

use crate::harness::{history, CliRun, Stack, Tiers};
use notify_kafka::headers;
use serde_json::{json, Value};
use test_support::{kafka::Record, smtp::Mode, JWT_SECRET};
use uuid::Uuid;

const T: Duration = Duration::from_secs(60);

/// Request topics of the email channel (where a replay republishes).
const REQUESTS: [&str; 2] = ["notifications.email", "notifications.email.priority"];

/// The run succeeded, and printed no secret.
fn ok(run: &CliRun) -> &CliRun {
    assert_eq!(run.code, Some(0), "notifyctl failed:\n{}\n{}", run.stdout, run.stderr);
    assert!(
        !run.stdout.contains(JWT_SECRET) && !run.stderr.contains(JWT_SECRET),
        "a secret was printed"
    );
    run
}

/// The JSON lines of a `--json` run.
fn json_lines(run: &CliRun) -> Vec<Value> {
    ok(run)
        .stdout
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

fn ids_of(rows: &[Value]) -> Vec<String> {
    rows.iter()
        .map(|r| r["notification_id"].as_str().unwrap().to_string())
        .collect()
}

/// The records a replay republished to the request topics (`total`: every record expected
/// on them, first publications included).
async fn republished(s: &Stack, total: usize) -> Vec<Record> {
    s.records(&REQUESTS, total)
        .await
        .into_iter()
        .filter(|r| r.headers.contains_key(headers::REPLAYED_FROM))
        .collect()
}

/// A user whose mail the SMTP server refuses permanently, and a running email worker.
async fn refusing_stack(email: &str) -> (Stack, Uuid) {
    let mut s = Stack::start(Tiers::default()).await;
    s.welcome_template().await;
    let user = s.create_user(email, None, json!({"email": true, "push": false})).await;
    s.smtp.set_mode(Mode::PermanentFailure);
    s.add_email_worker().await;
    (s, user)
}

/// Sends a notification and waits until it is dead-lettered.
async fn dead_letter(s: &Stack, user: Uuid, request_id: &str) -> Uuid {
    let id = s
        .send(
            "email",
            user,
            "welcome_email",
            json!({"name": "Dora", "link": "https://x.test"}),
            request_id,
            5,
        )
        .await;
    let n = s.wait_status(id, "dead_lettered", T).await;
    assert!(n["last_error"].as_str().unwrap().contains("550"), "{n}");
    id
}

#[tokio::test]
async fn a_dead_letter_is_listed_replayed_once_and_delivered() {
    let (s, user) = refusing_stack("dora@example.com").await;
    let id = dead_letter(&s, user, "dlt-1").await;
    assert!(s.smtp.messages().is_empty());
    s.smtp.set_mode(Mode::Accept);

    // `list` shows it, with what the worker recorded about the failure.
    let rows = json_lines(&s.notifyctl(&["dlt", "list", "--channel", "email", "--json"]).await);
    assert_eq!(ids_of(&rows), vec![id.to_string()], "{rows:?}");
    let row = &rows[0];
    assert_eq!(row["error_class"], "permanent");
    assert!(row["error_message"].as_str().unwrap().contains("550"), "{row}");
    assert_eq!(row["attempt"], 1);
    assert_eq!(row["original_topic"], format!("{}notifications.email", s.prefix));
    assert_eq!(row["topic"], format!("{}notifications.email.dlt", s.prefix));
    assert_eq!(row["correlation_id"], s.notification(id).await["correlation_id"]);
    assert!(row["dead_lettered_at"].as_str().unwrap().ends_with('Z'), "{row}");
    assert_eq!(row["replayed"], false);
    // The table names it too.
    let table = s.notifyctl(&["dlt", "list", "--channel", "email"]).await;
    assert!(
        ok(&table).stdout.contains(&id.to_string()) && table.stdout.contains("permanent"),
        "{}",
        table.stdout
    );

    // A dry run says what it would do, and republishes and commits nothing.
    let rows = json_lines(
        &s.notifyctl(&["dlt", "replay", "--channel", "email", "--dry-run", "--json"])
            .await,
    );
    assert_eq!(ids_of(&rows), vec![id.to_string()]);
    assert_eq!(rows[0]["action"], "would_replay");
    assert!(republished(&s, 1).await.is_empty(), "the dry run republished a record");
    let rows = json_lines(&s.notifyctl(&["dlt", "list", "--channel", "email", "--json"]).await);
    assert_eq!(ids_of(&rows), vec![id.to_string()], "still pending after the dry run");

    // The replay delivers it.
    let run = s.notifyctl(&["dlt", "replay", "--channel", "email"]).await;
    assert!(ok(&run).stdout.contains(&id.to_string()), "{}", run.stdout);
    let mails = s.smtp.wait_for(1, T).await;
    assert_eq!(
        mails[0].message_id.as_deref(),
        Some(format!("<{id}@notify.test>").as_str())
    );
    let n = s.wait_status(id, "sent", T).await;
    assert_eq!(
        history(&n),
        vec![
            ("pending".into(), 0),
            ("dead_lettered".into(), 1),
            // x-attempt was reset: the worker counted from 1 again (full retry budget).
            ("sent".into(), 1)
        ],
        "{n}"
    );

    // What was republished: the dead letter's key and value, byte for byte, on the request
    // topic it came from, with the replay headers and without the failure headers.
    let dlt = s.records(&["notifications.email.dlt"], 1).await;
    assert_eq!(dlt.len(), 1);
    let dead = &dlt[0];
    let replayed = republished(&s, 2).await;
    assert_eq!(replayed.len(), 1, "{replayed:?}");
    let r = &replayed[0];
    assert_eq!(r.topic, format!("{}notifications.email", s.prefix));
    assert_eq!((&r.key, &r.payload), (&dead.key, &dead.payload));
    assert_eq!(
        r.headers[headers::REPLAYED_FROM],
        format!("{}/{}/{}", dead.topic, dead.partition, dead.offset)
    );
    assert_eq!(r.headers[headers::REPLAY_COUNT], "1");
    assert!(r.headers[headers::REPLAYED_AT].parse::<i64>().is_ok());
    for kept in [
        headers::NOTIFICATION_ID,
        headers::CORRELATION_ID,
        headers::TRACEPARENT,
        headers::EVENT_TYPE,
        headers::ORIGINAL_TOPIC,
    ] {
        assert_eq!(r.headers.get(kept), dead.headers.get(kept), "{kept}");
    }
    for dropped in [
        headers::ATTEMPT,
        headers::ERROR_CLASS,
        headers::ERROR_MESSAGE,
        headers::DEAD_LETTERED_AT,
    ] {
        assert!(!r.headers.contains_key(dropped), "{dropped} was kept");
    }

    // A second replay finds nothing to do: the first one committed its progress.
    let rows = json_lines(&s.notifyctl(&["dlt", "replay", "--channel", "email", "--json"]).await);
    assert!(rows.is_empty(), "replayed again: {rows:?}");
    assert_eq!(
        republished(&s, 2).await.len(),
        1,
        "the dead letter was republished twice"
    );
    let pending = json_lines(&s.notifyctl(&["dlt", "list", "--channel", "email", "--json"]).await);
    assert!(pending.is_empty(), "{pending:?}");
    let all = json_lines(
        &s.notifyctl(&["dlt", "list", "--channel", "email", "--all", "--json"])
            .await,
    );
    assert_eq!(ids_of(&all), vec![id.to_string()]);
    assert_eq!(all[0]["replayed"], true);
    assert_eq!(s.smtp.messages().len(), 1);
}

#[tokio::test]
async fn a_selective_replay_leaves_the_other_dead_letters_for_a_later_replay() {
    let (s, user) = refusing_stack("eve@example.com").await;
    // One user: both records have the same key, so the same DLT partition, the one left in
    // place before the one chosen. The replay cannot commit past the first: it must remember
    // the second another way.
    let left = dead_letter(&s, user, "sel-1").await;
    let chosen = dead_letter(&s, user, "sel-2").await;
    s.smtp.set_mode(Mode::Accept);
    let rows = json_lines(&s.notifyctl(&["dlt", "list", "--channel", "email", "--json"]).await);
    assert_eq!(ids_of(&rows), vec![left.to_string(), chosen.to_string()]);
    assert_eq!(rows[0]["partition"], rows[1]["partition"]);

    // A filter that matches nothing republishes nothing.
    let none = json_lines(
        &s.notifyctl(&[
            "dlt",
            "replay",
            "--channel",
            "email",
            "--error-class",
            "poison",
            "--json",
        ])
        .await,
    );
    assert!(none.is_empty(), "{none:?}");

    let chosen_arg = chosen.to_string();
    let by_id = [
        "dlt",
        "replay",
        "--channel",
        "email",
        "--notification-id",
        &chosen_arg,
        "--json",
    ];
    let rows = json_lines(&s.notifyctl(&by_id).await);
    assert_eq!(ids_of(&rows), vec![chosen.to_string()]);
    assert_eq!(rows[0]["action"], "replayed");
    s.wait_status(chosen, "sent", T).await;
    assert_eq!(s.smtp.message_ids(), vec![format!("<{chosen}@notify.test>")]);
    // The other one is still pending, and was not republished.
    let pending = json_lines(&s.notifyctl(&["dlt", "list", "--channel", "email", "--json"]).await);
    assert_eq!(ids_of(&pending), vec![left.to_string()]);
    assert_eq!(s.notification(left).await["status"], "dead_lettered");
    let replayed = republished(&s, 3).await;
    assert_eq!(replayed.len(), 1);
    assert_eq!(replayed[0].headers[headers::NOTIFICATION_ID], chosen.to_string());

    // The same selective replay again: nothing (it is marked as replayed).
    assert!(json_lines(&s.notifyctl(&by_id).await).is_empty());

    // A later unfiltered replay takes the one left, and only it.
    let rows = json_lines(&s.notifyctl(&["dlt", "replay", "--channel", "email", "--json"]).await);
    assert_eq!(ids_of(&rows), vec![left.to_string()]);
    s.wait_status(left, "sent", T).await;
    s.smtp.wait_for(2, T).await;
    let replayed = republished(&s, 4).await;
    let mut ids: Vec<String> = replayed
        .iter()
        .map(|r| r.headers[headers::NOTIFICATION_ID].clone())
        .collect();
    ids.sort();
    let mut expected = vec![left.to_string(), chosen.to_string()];
    expected.sort();
    assert_eq!(ids, expected, "each dead letter republished exactly once");

    // Nothing is pending any more, and a further replay does nothing.
    let pending = json_lines(&s.notifyctl(&["dlt", "list", "--channel", "email", "--json"]).await);
    assert!(pending.is_empty(), "{pending:?}");
    assert!(json_lines(&s.notifyctl(&["dlt", "replay", "--channel", "email", "--json"]).await).is_empty());
    assert_eq!(s.smtp.messages().len(), 2);
}
