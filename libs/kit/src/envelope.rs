//! The response envelope every service returns: `{success, data, message, meta}`.

use actix_web::{http::StatusCode, HttpResponse};
use serde::Serialize;
use utoipa::ToSchema;

/// Pagination metadata for list responses (the product spec's `meta`).
#[derive(Debug, Clone, Serialize, PartialEq, Eq, ToSchema)]
pub struct PageMeta {
    pub total: u64,
    pub limit: u32,
    pub page: u32,
    pub total_pages: u64,
    pub has_next: bool,
    pub has_previous: bool,
}

impl PageMeta {
    /// Computes the derived fields from `total`, the page size and the 1-based page number.
    pub fn new(total: u64, limit: u32, page: u32) -> Self {
        let limit = limit.max(1);
        let page = page.max(1);
        let total_pages = total.div_ceil(u64::from(limit));
        Self {
            total,
            limit,
            page,
            total_pages,
            has_next: u64::from(page) < total_pages,
            has_previous: page > 1 && total_pages > 0,
        }
    }
}

/// One field that failed validation, and why.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, ToSchema)]
pub struct FieldErrorBody {
    pub field: String,
    pub reason: String,
}

/// Machine-readable error detail carried by failed responses.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ErrorBody {
    /// Stable error code, e.g. `validation_failed`, `unauthorized`, `conflict`.
    pub code: String,
    /// Per-field problems (validation errors only; empty otherwise).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub details: Vec<FieldErrorBody>,
}

/// The envelope. `data` is `null` on errors; `meta` is set on paginated lists only.
#[derive(Debug, Serialize, ToSchema)]
pub struct ApiResponse<T: Serialize> {
    pub success: bool,
    pub data: Option<T>,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorBody>,
    pub meta: Option<PageMeta>,
}

impl<T: Serialize> ApiResponse<T> {
    /// A successful response carrying `data`.
    pub fn ok(data: T, message: impl Into<String>) -> Self {
        Self {
            success: true,
            data: Some(data),
            message: message.into(),
            error: None,
            meta: None,
        }
    }

    /// A successful paginated list.
    pub fn page(data: T, message: impl Into<String>, meta: PageMeta) -> Self {
        Self {
            meta: Some(meta),
            ..Self::ok(data, message)
        }
    }

    /// Serialises the envelope with the given status.
    pub fn respond(&self, status: StatusCode) -> HttpResponse {
        HttpResponse::build(status).json(self)
    }
}

impl ApiResponse<()> {
    /// A failed response.
    pub fn failure(message: impl Into<String>, error: ErrorBody) -> Self {
        Self {
            success: false,
            data: None,
            message: message.into(),
            error: Some(error),
            meta: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_meta_counts_pages_and_neighbours() {
        let m = PageMeta::new(25, 10, 2);
        assert_eq!(m.total_pages, 3);
        assert!(m.has_next);
        assert!(m.has_previous);
        let last = PageMeta::new(25, 10, 3);
        assert!(!last.has_next);
        let empty = PageMeta::new(0, 10, 1);
        assert_eq!(empty.total_pages, 0);
        assert!(!empty.has_next && !empty.has_previous);
    }

    #[test]
    fn success_envelope_has_the_four_fields_and_no_error() {
        let v = serde_json::to_value(ApiResponse::ok(1, "done")).unwrap();
        assert_eq!(v["success"], true);
        assert_eq!(v["data"], 1);
        assert_eq!(v["message"], "done");
        assert!(v["meta"].is_null());
        assert!(v.get("error").is_none());
    }
}
