//! Replay markers: one small record per dead letter that a replay republished *beyond* the
//! committed offset of its group (a selective replay that left an earlier record in place).
//! Later runs of the same group treat a marked dead letter as already replayed, so it is not
//! republished twice, while the records left in place stay pending.
//!
//! Topic `<prefix>notifyctl.dlt-replays` (one partition, created by the first replay that
//! needs it), key `<group> <dlt>/<partition>/<offset>`, value JSON (group, position,
//! notification id, target topic, time). Markers below the committed offset no longer matter.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};

use super::record::Position;

/// The markers topic under a prefix.
pub fn topic(prefix: &str) -> String {
    format!("{prefix}notifyctl.dlt-replays")
}

/// One marker (the record value).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Marker {
    /// The replay consumer group it belongs to.
    pub group: String,
    /// The dead letter: topic, partition, offset.
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notification_id: Option<String>,
    /// Where it was republished.
    #[serde(default)]
    pub republished_to: String,
    /// Epoch milliseconds.
    #[serde(default)]
    pub replayed_at: i64,
}

impl Marker {
    pub fn position(&self) -> Position {
        Position {
            topic: self.topic.clone(),
            partition: self.partition,
            offset: self.offset,
        }
    }

    /// The record key: the group and the position, so markers of different groups or topics
    /// never collide.
    pub fn key(&self) -> String {
        format!("{} {}", self.group, self.position())
    }

    pub fn to_json(&self) -> Vec<u8> {
        // A struct of strings and integers always serialises.
        serde_json::to_vec(self).unwrap_or_default()
    }
}

/// The marked positions of `group` on `dlt_topic`, from marker record values (values that are
/// not markers are ignored, with a warning).
pub fn marked<'a>(values: impl IntoIterator<Item = &'a [u8]>, group: &str, dlt_topic: &str) -> HashSet<Position> {
    let mut out = HashSet::new();
    for v in values {
        match serde_json::from_slice::<Marker>(v) {
            Ok(m) if m.group == group && m.topic == dlt_topic => {
                out.insert(m.position());
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "ignoring a record of the markers topic that is not a replay marker"),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn marker(group: &str, topic: &str, offset: i64) -> Marker {
        Marker {
            group: group.into(),
            topic: topic.into(),
            partition: 2,
            offset,
            notification_id: Some("n1".into()),
            republished_to: "t.notifications.email".into(),
            replayed_at: 1,
        }
    }

    #[test]
    fn markers_round_trip_and_are_scoped_to_their_group_and_topic() {
        let dlt = "t.notifications.email.dlt";
        let values = [
            marker("g", dlt, 5).to_json(),
            marker("g", dlt, 7).to_json(),
            marker("other-group", dlt, 8).to_json(),
            marker("g", "t.notifications.push.dlt", 9).to_json(),
            b"not json".to_vec(),
        ];
        let set = marked(values.iter().map(Vec::as_slice), "g", dlt);
        let mut offsets: Vec<i64> = set.iter().map(|p| p.offset).collect();
        offsets.sort();
        assert_eq!(offsets, vec![5, 7]);
        assert!(set.contains(&Position {
            topic: dlt.into(),
            partition: 2,
            offset: 5
        }));
        assert_eq!(marker("g", dlt, 5).key(), "g t.notifications.email.dlt/2/5");
        assert_eq!(topic("t."), "t.notifyctl.dlt-replays");
    }
}
