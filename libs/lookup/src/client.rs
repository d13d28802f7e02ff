//! One authenticated request against a service answering in the platform's envelope, with
//! its failure classified.

use std::time::Duration;

use reqwest::StatusCode;
use serde::{de::DeserializeOwned, Deserialize};

use crate::{error::LookupError, token::TokenSource};

#[derive(Deserialize)]
struct Envelope<T> {
    data: Option<T>,
    #[serde(default)]
    message: String,
}

#[derive(Deserialize)]
struct ErrorEnvelope {
    #[serde(default)]
    message: String,
}

pub(crate) struct ServiceClient {
    service: &'static str,
    http: reqwest::Client,
    base: String,
    tokens: TokenSource,
}

impl ServiceClient {
    pub(crate) fn new(
        service: &'static str,
        base_url: &str,
        tokens: TokenSource,
        timeout: Duration,
    ) -> Result<Self, LookupError> {
        let base = base_url.trim_end_matches('/').to_string();
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(LookupError::Invalid {
                service,
                reason: format!("base URL `{base}` must start with http:// or https://"),
            });
        }
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .build()
            .map_err(|e| LookupError::Invalid {
                service,
                reason: format!("cannot build the HTTP client: {e}"),
            })?;
        Ok(Self {
            service,
            http,
            base,
            tokens,
        })
    }

    /// `PUT {base}/{segments…}` with a JSON body, each segment percent-encoded (so an email
    /// address or a device token is one path segment): `Ok(())` on 2xx.
    pub(crate) async fn put<B: serde::Serialize + ?Sized>(
        &self,
        segments: &[&str],
        body: &B,
    ) -> Result<(), LookupError> {
        let service = self.service;
        let mut url = reqwest::Url::parse(&self.base).map_err(|e| LookupError::Invalid {
            service,
            reason: format!("base URL: {e}"),
        })?;
        url.path_segments_mut()
            .map_err(|()| LookupError::Invalid {
                service,
                reason: "base URL cannot take a path".into(),
            })?
            .pop_if_empty()
            .extend(segments);
        let token = self.tokens.token().map_err(|e| LookupError::Unauthorized {
            service,
            reason: format!("no service token: {e:#}"),
        })?;
        let response = self
            .http
            .put(url)
            .bearer_auth(token)
            .json(body)
            .send()
            .await
            .map_err(|e| unavailable(service, &e))?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let body = response.bytes().await.unwrap_or_default();
        let message = serde_json::from_slice::<ErrorEnvelope>(&body)
            .map(|e| e.message)
            .unwrap_or_default();
        Err(classify(service, status, message))
    }

    /// `GET {base}{path}`: `Ok(None)` on 404, the envelope's `data` on 2xx.
    pub(crate) async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<Option<T>, LookupError> {
        self.request(reqwest::Method::GET, path, None).await
    }

    /// `{method} {base}{path}` with a JSON `body`: `Ok(None)` on 404, the envelope's `data`
    /// on 2xx.
    pub(crate) async fn request<T: DeserializeOwned>(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<Option<T>, LookupError> {
        let service = self.service;
        let token = self.tokens.token().map_err(|e| LookupError::Unauthorized {
            service,
            reason: format!("no service token: {e:#}"),
        })?;
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(token);
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.map_err(|e| unavailable(service, &e))?;
        let status = response.status();
        let body = response.bytes().await.map_err(|e| LookupError::Unavailable {
            service,
            reason: format!("reading the answer failed: {e}"),
        })?;
        let message = || {
            serde_json::from_slice::<ErrorEnvelope>(&body)
                .map(|e| e.message)
                .unwrap_or_default()
        };
        match status {
            s if s.is_success() => {
                let envelope: Envelope<T> = serde_json::from_slice(&body).map_err(|e| LookupError::Invalid {
                    service,
                    reason: format!("undecodable answer: {e}"),
                })?;
                envelope.data.map(Some).ok_or_else(|| LookupError::Invalid {
                    service,
                    reason: format!("answer without data: {}", envelope.message),
                })
            }
            StatusCode::NOT_FOUND => Ok(None),
            _ => Err(classify(service, status, message())),
        }
    }
}

/// A request that got no answer: retry later.
fn unavailable(service: &'static str, e: &reqwest::Error) -> LookupError {
    LookupError::Unavailable {
        service,
        reason: if e.is_timeout() {
            "request timed out".to_string()
        } else {
            format!("request failed: {e}")
        },
    }
}

/// An unsuccessful answer, classified: 401/403 credentials, 5xx/429 retry later, any other
/// status a broken contract.
fn classify(service: &'static str, status: StatusCode, message: String) -> LookupError {
    let reason = format!("{status}: {message}");
    match status {
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => LookupError::Unauthorized { service, reason },
        s if s.is_server_error() || s == StatusCode::TOO_MANY_REQUESTS => LookupError::Unavailable { service, reason },
        _ => LookupError::Invalid { service, reason },
    }
}
