//! `?page=&limit=` for list endpoints, validated with the field named, and the matching
//! [`PageMeta`](crate::envelope::PageMeta).

use crate::{envelope::PageMeta, error::FieldError};

/// A validated page request: 1-based `page`, `limit` items per page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageRequest {
    pub page: u32,
    pub limit: u32,
}

impl PageRequest {
    /// Items per page when `limit` is not given.
    pub const DEFAULT_LIMIT: u32 = 20;
    /// Largest accepted `limit`.
    pub const MAX_LIMIT: u32 = 100;
    /// Largest accepted `page` (keeps `OFFSET` bounded).
    pub const MAX_PAGE: u32 = 100_000;

    /// Parses the raw query values; each bad value is reported under its own name.
    pub fn parse(page: Option<&str>, limit: Option<&str>) -> Result<Self, Vec<FieldError>> {
        let mut errors = Vec::new();
        let mut number = |name: &str, raw: Option<&str>, default: u32, max: u32| match raw {
            None => default,
            Some(raw) => match raw.trim().parse::<u32>() {
                Ok(n) if (1..=max).contains(&n) => n,
                _ => {
                    errors.push(FieldError::new(name, format!("must be a whole number from 1 to {max}")));
                    default
                }
            },
        };
        let page = number("page", page, 1, Self::MAX_PAGE);
        let limit = number("limit", limit, Self::DEFAULT_LIMIT, Self::MAX_LIMIT);
        if errors.is_empty() {
            Ok(Self { page, limit })
        } else {
            Err(errors)
        }
    }

    /// Rows to skip (`OFFSET`).
    pub fn offset(&self) -> i64 {
        (i64::from(self.page) - 1) * i64::from(self.limit)
    }

    /// `LIMIT` as the database wants it.
    pub fn limit_i64(&self) -> i64 {
        i64::from(self.limit)
    }

    /// The response meta for `total` items.
    pub fn meta(&self, total: u64) -> PageMeta {
        PageMeta::new(total, self.limit, self.page)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_apply_when_nothing_is_given() {
        let p = PageRequest::parse(None, None).unwrap();
        assert_eq!((p.page, p.limit, p.offset()), (1, 20, 0));
        let p = PageRequest::parse(Some("3"), Some("10")).unwrap();
        assert_eq!(p.offset(), 20);
        assert_eq!(p.meta(25).total_pages, 3);
    }

    #[test]
    fn each_bad_value_is_named() {
        let errors = PageRequest::parse(Some("0"), Some("101")).unwrap_err();
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["page", "limit"]);
        let errors = PageRequest::parse(Some("two"), None).unwrap_err();
        assert_eq!(errors[0].field, "page");
        assert!(PageRequest::parse(None, Some("-1")).is_err());
    }
}
