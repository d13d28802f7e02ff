//! Redaction of provider error text before it is recorded: a provider's answer often quotes
//! the recipient's address or the device token (`550 5.1.1 <jane@example.com>: no such user`,
//! `UNREGISTERED: cXyZ…:APA91b…`), and what the worker records travels far — the
//! notification's `last_error` and history (read through the API by the sender), the
//! dead-letter headers (read by operators), logs. [`redact`] is applied once, where
//! [`crate::decision::decide`] turns an outcome into a status event and failure headers.
//!
//! - An email address keeps its domain only: `<redacted>@example.com` (which provider or
//!   domain refuses is what an operator needs).
//! - A token — a run of at least [`MIN_TOKEN_CHARS`] characters of the token alphabets
//!   (letters, digits, `-_.:+/=~`) holding both letters and digits — becomes `<token>`. UUIDs
//!   (notification ids) are kept.

use std::borrow::Cow;

/// The shortest run taken for a token (FCM tokens are ~150 characters, API keys 32+).
pub const MIN_TOKEN_CHARS: usize = 24;

fn is_token_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':' | '+' | '/' | '=' | '~')
}

/// Characters of an email address's local part (RFC 5322 atext and dots).
fn is_local_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~.".contains(c)
}

fn is_uuid(s: &str) -> bool {
    let groups: Vec<&str> = s.split('-').collect();
    groups.len() == 5
        && groups.iter().map(|g| g.len()).eq([8, 4, 4, 4, 12])
        && groups.iter().all(|g| g.chars().all(|c| c.is_ascii_hexdigit()))
}

/// `text` with email addresses and tokens redacted (borrowed when there was nothing to hide).
pub fn redact(text: &str) -> Cow<'_, str> {
    let emails = redact_emails(text);
    match redact_tokens(&emails) {
        Cow::Borrowed(_) => emails,
        Cow::Owned(s) => Cow::Owned(s),
    }
}

fn redact_emails(text: &str) -> Cow<'_, str> {
    if !text.contains('@') {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut last = 0;
    for (at, _) in text.match_indices('@') {
        if at < last {
            continue;
        }
        let start = text[last..at]
            .char_indices()
            .rev()
            .take_while(|(_, c)| is_local_char(*c))
            .last()
            .map_or(at, |(i, _)| last + i);
        let domain_len = text[at + 1..]
            .char_indices()
            .take_while(|(_, c)| c.is_ascii_alphanumeric() || *c == '-' || *c == '.')
            .count();
        let domain = text[at + 1..at + 1 + domain_len].trim_end_matches('.');
        if start == at || !domain.contains('.') {
            continue;
        }
        out.push_str(&text[last..start]);
        out.push_str("<redacted>@");
        last = at + 1;
    }
    if last == 0 {
        return Cow::Borrowed(text);
    }
    out.push_str(&text[last..]);
    Cow::Owned(out)
}

fn redact_tokens(text: &str) -> Cow<'_, str> {
    let mut out = String::new();
    let mut last = 0;
    let mut chars = text.char_indices().peekable();
    while let Some((start, c)) = chars.next() {
        if !is_token_char(c) {
            continue;
        }
        let mut end = start + c.len_utf8();
        while let Some(&(i, d)) = chars.peek() {
            if !is_token_char(d) {
                break;
            }
            end = i + d.len_utf8();
            chars.next();
        }
        // A run ending a sentence keeps its full stop or colon.
        let run = text[start..end].trim_end_matches(['.', ':']);
        let is_token = run.len() >= MIN_TOKEN_CHARS
            && run.chars().any(|c| c.is_ascii_digit())
            && run.chars().any(|c| c.is_ascii_alphabetic())
            && !is_uuid(run)
            && !run.contains("<redacted>");
        if is_token {
            out.push_str(&text[last..start]);
            out.push_str("<token>");
            last = start + run.len();
        }
    }
    if last == 0 {
        return Cow::Borrowed(text);
    }
    out.push_str(&text[last..]);
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_keeps_only_its_domain() {
        assert_eq!(
            redact("550 5.1.1 <jane.doe+news@mail.example.com>: mailbox unavailable"),
            "550 5.1.1 <<redacted>@mail.example.com>: mailbox unavailable"
        );
        assert_eq!(
            redact("to a@b.io and c_d@e.org."),
            "to <redacted>@b.io and <redacted>@e.org."
        );
    }

    #[test]
    fn a_device_token_and_an_api_key_are_replaced() {
        let fcm = "cXyZ0123456789abcdefGHIJ:APA91bHun4MxP5egoKMwt2KZFBaFUH-1RYqx";
        let text = format!("UNREGISTERED: {fcm}. Bearer sk_live_4eC39HqLyjWDarjtT1zdp7dc");
        assert_eq!(redact(&text), "UNREGISTERED: <token>. Bearer <token>");
    }

    #[test]
    fn ordinary_text_ids_and_long_plain_runs_are_kept() {
        for text in [
            "connection refused (os error 111)",
            "notification 0190a3b4-5c6d-7e8f-9a0b-1c2d3e4f5a6b not found",
            "template welcome_email v2: rendered `text_body` is larger than 1048576 bytes",
            &"x".repeat(5000),
            "user@localhost is not an address with a domain",
        ] {
            assert_eq!(redact(text), text);
        }
    }
}
