//! What the `dlt` commands print on stdout: a table for people, or one JSON object per line.

use notify_schemas::headers as h;
use serde_json::{json, Value};

use super::record::DeadLetter;

/// The facts `dlt list` shows about one dead letter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListRow {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub notification_id: Option<String>,
    pub correlation_id: Option<String>,
    pub error_class: Option<String>,
    pub error_message: Option<String>,
    pub attempt: Option<String>,
    pub original_topic: Option<String>,
    /// RFC 3339 (UTC, milliseconds), or the header as written if it is not epoch milliseconds.
    pub dead_lettered_at: Option<String>,
    /// Replayed already (below the committed offset, or marked); only `--all` shows those.
    pub replayed: bool,
}

/// Epoch milliseconds as RFC 3339, or the value as it is.
fn timestamp(ms: &str) -> String {
    ms.trim()
        .parse::<i64>()
        .ok()
        .and_then(chrono::DateTime::from_timestamp_millis)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_else(|| ms.to_string())
}

impl ListRow {
    pub fn of(dead: &DeadLetter, replayed: bool) -> Self {
        let get = |name: &str| dead.header(name).map(str::to_string);
        Self {
            topic: dead.position.topic.clone(),
            partition: dead.position.partition,
            offset: dead.position.offset,
            notification_id: get(h::NOTIFICATION_ID),
            correlation_id: get(h::CORRELATION_ID),
            error_class: get(h::ERROR_CLASS),
            error_message: get(h::ERROR_MESSAGE),
            attempt: get(h::ATTEMPT),
            original_topic: get(h::ORIGINAL_TOPIC),
            dead_lettered_at: dead.header(h::DEAD_LETTERED_AT).map(timestamp),
            replayed,
        }
    }

    pub fn to_json(&self) -> Value {
        json!({
            "topic": self.topic,
            "partition": self.partition,
            "offset": self.offset,
            "notification_id": self.notification_id,
            "correlation_id": self.correlation_id,
            "error_class": self.error_class,
            "error_message": self.error_message,
            // A number when the header is one (it always is when a worker wrote it).
            "attempt": self.attempt.as_deref().map(|a| a.trim().parse::<u64>().map_or_else(|_| json!(a), |n| json!(n))),
            "original_topic": self.original_topic,
            "dead_lettered_at": self.dead_lettered_at,
            "replayed": self.replayed,
        })
    }
}

/// What `dlt replay` did (or, with `--dry-run`, would do) with one dead letter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplayRow {
    pub dry_run: bool,
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub notification_id: Option<String>,
    pub error_class: Option<String>,
    pub target_topic: String,
    pub replay_count: Option<String>,
}

impl ReplayRow {
    fn action(&self) -> &'static str {
        if self.dry_run {
            "would_replay"
        } else {
            "replayed"
        }
    }

    pub fn to_json(&self) -> Value {
        json!({
            "action": self.action(),
            "topic": self.topic,
            "partition": self.partition,
            "offset": self.offset,
            "notification_id": self.notification_id,
            "error_class": self.error_class,
            "target_topic": self.target_topic,
            "replay_count": self.replay_count.as_deref().and_then(|c| c.parse::<u64>().ok()),
        })
    }
}

/// One line for a table cell: control characters (a multi-line SMTP answer) become spaces,
/// and the text is cut at `max` characters.
fn cell(v: Option<&str>, max: usize) -> String {
    let Some(v) = v.filter(|v| !v.is_empty()) else {
        return "-".into();
    };
    let clean: String = v.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    if clean.chars().count() > max {
        let cut: String = clean.chars().take(max.saturating_sub(1)).collect();
        format!("{cut}…")
    } else {
        clean
    }
}

/// Renders rows as left-aligned columns (the last one unpadded).
fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, c) in widths.iter_mut().zip(row) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let last = cells.len().saturating_sub(1);
        let mut s = String::new();
        for (i, (c, w)) in cells.iter().zip(&widths).enumerate() {
            s.push_str(c);
            if i < last {
                s.push_str(&" ".repeat(w - c.chars().count() + 2));
            }
        }
        s.push('\n');
        s
    };
    let mut out = line(header.to_vec());
    for row in rows {
        out.push_str(&line(row.iter().map(String::as_str).collect()));
    }
    out
}

/// The `dlt list` table.
pub fn list_table(rows: &[ListRow], with_replayed: bool) -> String {
    let mut header = vec![
        "PARTITION/OFFSET",
        "NOTIFICATION ID",
        "CORRELATION ID",
        "CLASS",
        "ATTEMPT",
        "DEAD-LETTERED AT",
        "ORIGINAL TOPIC",
    ];
    if with_replayed {
        header.push("REPLAYED");
    }
    header.push("ERROR");
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            let mut c = vec![
                format!("{}/{}", r.partition, r.offset),
                cell(r.notification_id.as_deref(), 36),
                cell(r.correlation_id.as_deref(), 36),
                cell(r.error_class.as_deref(), 12),
                cell(r.attempt.as_deref(), 7),
                cell(r.dead_lettered_at.as_deref(), 30),
                cell(r.original_topic.as_deref(), 60),
            ];
            if with_replayed {
                c.push(if r.replayed { "yes" } else { "no" }.into());
            }
            c.push(cell(r.error_message.as_deref(), 100));
            c
        })
        .collect();
    table(&header, &cells)
}

/// The `dlt replay` table.
pub fn replay_table(rows: &[ReplayRow]) -> String {
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            vec![
                r.action().replace('_', " "),
                format!("{}/{}", r.partition, r.offset),
                cell(r.notification_id.as_deref(), 36),
                cell(r.error_class.as_deref(), 12),
                cell(r.replay_count.as_deref(), 6),
                r.target_topic.clone(),
            ]
        })
        .collect();
    table(
        &["ACTION", "PARTITION/OFFSET", "NOTIFICATION ID", "CLASS", "REPLAY", "TO"],
        &cells,
    )
}

pub use crate::stdout::print;

/// Writes one JSON object as a line.
pub fn print_json(v: &Value) -> anyhow::Result<()> {
    print(&format!("{v}\n"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dlt::record::Position;

    fn dead() -> DeadLetter {
        let hv = |k: &str, v: &str| (k.to_string(), Some(v.as_bytes().to_vec()));
        DeadLetter {
            position: Position {
                topic: "t.notifications.email.dlt".into(),
                partition: 0,
                offset: 12,
            },
            key: None,
            payload: None,
            headers: vec![
                hv("notification-id", "n-1"),
                hv("x-correlation-id", "c-1"),
                hv("x-error-class", "permanent"),
                hv("x-error-message", "550 5.1.1 mailbox unavailable\r\nsecond line"),
                hv("x-attempt", "1"),
                hv("x-original-topic", "t.notifications.email"),
                hv("x-dead-lettered-at", "1764165600123"),
            ],
        }
    }

    #[test]
    fn a_list_row_reads_the_dlt_headers() {
        let row = ListRow::of(&dead(), false);
        let v = row.to_json();
        assert_eq!(v["notification_id"], "n-1");
        assert_eq!(v["error_class"], "permanent");
        assert_eq!(v["attempt"], 1);
        assert_eq!(v["dead_lettered_at"], "2025-11-26T14:00:00.123Z");
        assert_eq!(v["original_topic"], "t.notifications.email");
        assert_eq!((v["partition"].as_i64(), v["offset"].as_i64()), (Some(0), Some(12)));
        let mut odd = dead();
        odd.headers.retain(|(k, _)| k != "x-attempt" && k != "x-correlation-id");
        odd.headers
            .push(("x-dead-lettered-at".into(), Some(b"yesterday".to_vec())));
        let v = ListRow::of(&odd, true).to_json();
        assert!(v["attempt"].is_null() && v["correlation_id"].is_null());
        assert_eq!(v["dead_lettered_at"], "yesterday", "the last value wins, as written");
        assert_eq!(v["replayed"], true);
    }

    #[test]
    fn the_table_keeps_one_line_per_dead_letter() {
        let text = list_table(&[ListRow::of(&dead(), false)], false);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "{text}");
        assert!(lines[0].starts_with("PARTITION/OFFSET  NOTIFICATION ID"));
        assert!(lines[1].starts_with("0/12"));
        assert!(
            lines[1].ends_with("550 5.1.1 mailbox unavailable  second line"),
            "{text}"
        );
        assert_eq!(cell(Some(&"x".repeat(50)), 10), format!("{}…", "x".repeat(9)));
        assert_eq!(cell(None, 10), "-");
    }
}
