//! Template codes.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A template code: 1 to 64 characters of lowercase letters, digits, `_`, `.` and `-`,
/// starting with a letter or digit (e.g. `welcome_email`). The same rule as the gateway's.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TemplateCode(String);

impl TemplateCode {
    /// Validates a code; the error says why it is not one.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let valid_start = raw
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
        if raw.len() > 64 || !valid_start {
            return Err("must be 1 to 64 characters and start with a lowercase letter or digit".into());
        }
        if !raw
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'.' | b'-'))
        {
            return Err("may contain only lowercase letters, digits and _ . -".into());
        }
        Ok(Self(raw.to_string()))
    }

    /// The code as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TemplateCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for TemplateCode {
    type Error = String;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<TemplateCode> for String {
    fn from(code: TemplateCode) -> Self {
        code.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn codes_follow_the_gateway_rule() {
        assert!(TemplateCode::parse("welcome_email").is_ok());
        assert!(TemplateCode::parse("order.shipped-v2").is_ok());
        assert!(TemplateCode::parse("9lives").is_ok());
        for bad in ["", "Welcome", "_x", "-x", "has space", "café", &"a".repeat(65)] {
            assert!(TemplateCode::parse(bad).is_err(), "{bad:?}");
        }
    }

    proptest! {
        #[test]
        fn valid_codes_round_trip(raw in "[a-z0-9][a-z0-9_.-]{0,63}") {
            let code = TemplateCode::parse(&raw).unwrap();
            prop_assert_eq!(code.as_str(), raw.as_str());
        }

        #[test]
        fn anything_with_an_uppercase_letter_is_refused(raw in "[a-z0-9]{0,10}[A-Z][a-zA-Z0-9]{0,10}") {
            prop_assert!(TemplateCode::parse(&raw).is_err());
        }
    }
}
