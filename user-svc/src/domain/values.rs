//! Value types parsed at the edge.

use secrecy::SecretString;

/// A display name: 1 to 100 characters after trimming, no control characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserName(String);

impl UserName {
    pub fn parse(raw: &str) -> Result<Self, String> {
        let trimmed = raw.trim();
        let chars = trimmed.chars().count();
        if !(1..=100).contains(&chars) {
            return Err("must be 1 to 100 characters".into());
        }
        if trimmed.chars().any(char::is_control) {
            return Err("must not contain control characters".into());
        }
        Ok(Self(trimmed.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An email address (ASCII, `local@domain.tld`), with the domain lower-cased. Addresses
/// are compared case-insensitively (one account per address whatever its case).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmailAddress(String);

const EMAIL_REASON: &str = "must be an email address such as name@example.com";

fn is_atext(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+/=?^_`{|}~-".contains(&b)
}

fn is_label(label: &str) -> bool {
    !label.is_empty()
        && label.len() <= 63
        && !label.starts_with('-')
        && !label.ends_with('-')
        && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

impl EmailAddress {
    pub fn parse(raw: &str) -> Result<Self, String> {
        let raw = raw.trim();
        if raw.len() > 254 {
            return Err("must be at most 254 characters".into());
        }
        let (local, domain) = raw.split_once('@').ok_or(EMAIL_REASON)?;
        let local_ok = (1..=64).contains(&local.len())
            && local.split('.').all(|part| !part.is_empty())
            && local.bytes().all(|b| is_atext(b) || b == b'.');
        let labels: Vec<&str> = domain.split('.').collect();
        let domain_ok = labels.len() >= 2
            && labels.iter().all(|l| is_label(l))
            && labels
                .last()
                .is_some_and(|tld| tld.len() >= 2 && tld.bytes().all(|b| b.is_ascii_alphabetic()));
        if !local_ok || !domain_ok {
            return Err(EMAIL_REASON.into());
        }
        Ok(Self(format!("{local}@{}", domain.to_ascii_lowercase())))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A password: 8 to 128 characters. Kept secret (its `Debug` is redacted) until hashed.
#[derive(Debug)]
pub struct Password(SecretString);

impl Password {
    pub fn parse(raw: &str) -> Result<Self, String> {
        let chars = raw.chars().count();
        if !(8..=128).contains(&chars) {
            return Err("must be 8 to 128 characters".into());
        }
        if raw.trim().is_empty() {
            return Err("must not be only spaces".into());
        }
        Ok(Self(SecretString::from(raw.to_string())))
    }

    /// Any string as a password, for checking a login or a current password (which may
    /// predate the length rule).
    pub fn unchecked(raw: &str) -> Self {
        Self(SecretString::from(raw.to_string()))
    }

    /// The secret, to hand to the hasher.
    pub fn into_secret(self) -> SecretString {
        self.0
    }

    /// A copy of the secret, to hand to the hasher.
    pub fn secret(&self) -> SecretString {
        self.0.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use secrecy::ExposeSecret;

    #[test]
    fn emails_are_checked_and_their_domain_lower_cased() {
        assert_eq!(
            EmailAddress::parse(" John.Doe+tag@Example.COM ").unwrap().as_str(),
            "John.Doe+tag@example.com"
        );
        for bad in [
            "",
            "plain",
            "@example.com",
            "a@",
            "a@b",
            "a@b.c",
            "a b@example.com",
            "a@@example.com",
            "a@exa mple.com",
            ".a@example.com",
            "a..b@example.com",
            "a@-x.com",
            "a@x.123",
            "josé@example.com",
        ] {
            assert!(EmailAddress::parse(bad).is_err(), "{bad:?}");
        }
        let long_local = format!("{}@example.com", "a".repeat(65));
        assert!(EmailAddress::parse(&long_local).is_err());
    }

    #[test]
    fn names_are_trimmed_and_bounded() {
        assert_eq!(UserName::parse("  Ann  ").unwrap().as_str(), "Ann");
        assert!(UserName::parse("   ").is_err());
        assert!(UserName::parse(&"x".repeat(101)).is_err());
        assert!(UserName::parse("a\u{0}b").is_err());
        assert!(UserName::parse(&"é".repeat(100)).is_ok(), "characters, not bytes");
    }

    #[test]
    fn passwords_are_bounded_and_never_printed() {
        assert!(Password::parse("short").is_err());
        assert!(Password::parse("        ").is_err());
        assert!(Password::parse(&"x".repeat(129)).is_err());
        let p = Password::parse("s3cret-passphrase").unwrap();
        assert!(!format!("{p:?}").contains("s3cret"));
        assert_eq!(p.into_secret().expose_secret(), "s3cret-passphrase");
    }

    proptest! {
        #[test]
        fn simple_addresses_are_accepted(
            local in "[a-z0-9]{1,20}(\\.[a-z0-9]{1,10})?",
            domain in "[a-z0-9]{1,20}",
            tld in "[a-z]{2,6}",
        ) {
            let raw = format!("{local}@{domain}.{tld}");
            let parsed = EmailAddress::parse(&raw).unwrap();
            prop_assert_eq!(parsed.as_str(), raw.as_str());
        }

        #[test]
        fn email_parsing_never_panics(raw in "\\PC{0,80}") {
            let _ = EmailAddress::parse(&raw);
        }

        #[test]
        fn an_address_with_whitespace_inside_is_refused(
            a in "[a-z]{1,5}", b in "[a-z]{1,5}", ws in "[ \t]",
        ) {
            let raw = format!("{a}{ws}{b}@example.com");
            prop_assert!(EmailAddress::parse(&raw).is_err());
        }
    }
}
