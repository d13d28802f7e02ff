//! What every HTTP provider shares: the client, the classification of a request that got
//! no answer, `Retry-After`, and the status codes whose meaning every API agrees on.

use std::time::{Duration, SystemTime};

use notify_kit::settings::SettingsError;
use notify_worker::provider::ProviderFailure;
use reqwest::{header::HeaderMap, StatusCode};

/// A client with `timeout` on connecting and on the whole request. `what` names the
/// client in the error.
pub fn client(timeout: Duration, what: &str) -> Result<reqwest::Client, SettingsError> {
    reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout)
        .user_agent(concat!("notify-providers/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| SettingsError::invalid(what, format!("cannot build the HTTP client: {e}")))
}

/// A request without an answer: transient (timeout, refused connection, reset).
pub fn request_failed(provider: &str, e: reqwest::Error) -> ProviderFailure {
    // URLs may carry keys in their query: keep them out of messages.
    let e = e.without_url();
    if e.is_timeout() {
        ProviderFailure::transient(format!("{provider} did not answer in time: {e}"))
    } else if e.is_connect() {
        ProviderFailure::transient(format!("cannot connect to {provider}: {e}"))
    } else {
        ProviderFailure::transient(format!("request to {provider} failed: {e}"))
    }
}

/// `Retry-After` (seconds or an HTTP date), else `X-RateLimit-Reset` (a Unix time in
/// seconds, SendGrid's answer to 429). Capped at one day.
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim);
    let wait = if let Some(value) = text("retry-after") {
        match value.parse::<u64>() {
            Ok(secs) => Some(Duration::from_secs(secs)),
            Err(_) => httpdate::parse_http_date(value)
                .ok()
                .map(|at| at.duration_since(SystemTime::now()).unwrap_or_default()),
        }
    } else {
        text("x-ratelimit-reset")
            .and_then(|v| v.parse::<u64>().ok())
            .map(|reset| SystemTime::UNIX_EPOCH + Duration::from_secs(reset))
            .map(|at| at.duration_since(SystemTime::now()).unwrap_or_default())
    };
    wait.map(|w| w.min(Duration::from_secs(86_400)))
}

/// The string at `key` of a JSON object body (a message id, an error message), if any.
pub fn json_str(body: &str, key: &str) -> Option<String> {
    let json: serde_json::Value = serde_json::from_str(body).ok()?;
    json.get(key).and_then(|v| v.as_str()).map(str::to_string)
}

/// The classes every API agrees on, or `None` for the provider to decide: 401 and 403 are
/// our credentials (transient and alert), 408/429 and 5xx transient (with `Retry-After`),
/// 413 a message too large (permanent), a redirect or 1xx transient.
pub fn common_class(provider: &str, status: StatusCode, headers: &HeaderMap, detail: &str) -> Option<ProviderFailure> {
    let what = format!("{provider} answered {}: {detail}", status.as_u16());
    Some(match status.as_u16() {
        401 | 403 => ProviderFailure::alert(what),
        408 | 429 | 500..=599 => ProviderFailure::transient(what).with_retry_after(retry_after(headers)),
        413 => ProviderFailure::permanent(what),
        400..=499 => return None,
        _ => ProviderFailure::transient(what),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    fn headers(pairs: &[(&'static str, String)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn retry_after_reads_seconds_dates_and_rate_limit_resets() {
        assert_eq!(
            retry_after(&headers(&[("retry-after", "7".into())])),
            Some(Duration::from_secs(7))
        );
        let in_a_minute = SystemTime::now() + Duration::from_secs(61);
        let date = httpdate::fmt_http_date(in_a_minute);
        let wait = retry_after(&headers(&[("retry-after", date)])).unwrap();
        assert!(
            wait > Duration::from_secs(55) && wait <= Duration::from_secs(61),
            "{wait:?}"
        );
        let reset = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_secs()
            + 30;
        let wait = retry_after(&headers(&[("x-ratelimit-reset", reset.to_string())])).unwrap();
        assert!(
            wait > Duration::from_secs(25) && wait <= Duration::from_secs(30),
            "{wait:?}"
        );
        assert_eq!(retry_after(&HeaderMap::new()), None);
        assert_eq!(retry_after(&headers(&[("retry-after", "soon".into())])), None);
    }

    #[test]
    fn credentials_are_alerts_and_throttling_carries_its_wait() {
        let h = headers(&[("retry-after", "3".into())]);
        let auth = common_class("p", StatusCode::UNAUTHORIZED, &h, "").unwrap();
        assert!(auth.is_transient() && auth.alert);
        let throttled = common_class("p", StatusCode::TOO_MANY_REQUESTS, &h, "").unwrap();
        assert_eq!(throttled.retry_after, Some(Duration::from_secs(3)));
        assert!(!throttled.alert);
        assert!(common_class("p", StatusCode::BAD_REQUEST, &h, "").is_none());
        assert!(!common_class("p", StatusCode::PAYLOAD_TOO_LARGE, &h, "")
            .unwrap()
            .is_transient());
    }
}
