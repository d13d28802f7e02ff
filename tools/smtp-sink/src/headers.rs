//! What the sink and the test server read from a message's header.

use mail_parser::MessageParser;

/// The header fields worth logging: the Message-ID as written (with its angle brackets,
/// as `notify_worker::provider::message_id` makes it) and the decoded Subject.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    pub message_id: Option<String>,
    pub subject: Option<String>,
}

impl Summary {
    /// Parses the header of a raw message; a field that is absent or unreadable is `None`.
    pub fn parse(raw: &[u8]) -> Self {
        let Some(message) = MessageParser::default().parse_headers(raw) else {
            return Self::default();
        };
        Self {
            message_id: message.header_raw("Message-ID").map(unfold).filter(|v| !v.is_empty()),
            subject: message.subject().map(str::to_string),
        }
    }
}

/// A raw header value on one line: folding (CRLF + white space) undone, trimmed.
pub fn unfold(raw: &str) -> String {
    raw.split(['\r', '\n'])
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_message_id_keeps_its_brackets_and_the_subject_is_decoded() {
        let raw = b"Message-ID:\r\n <abc@notify.local>\r\nSubject: =?utf-8?q?Caf=C3=A9?=\r\n\r\nbody";

        let summary = Summary::parse(raw);

        assert_eq!(summary.message_id.as_deref(), Some("<abc@notify.local>"));
        assert_eq!(summary.subject.as_deref(), Some("Café"));
    }

    #[test]
    fn a_message_without_those_fields_has_none() {
        assert_eq!(Summary::parse(b"X-Other: 1\r\n\r\nbody"), Summary::default());
    }
}
