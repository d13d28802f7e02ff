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
        let response = request.send().await.map_err(|e| LookupError::Unavailable {
            service,
            reason: if e.is_timeout() {
                "request timed out".to_string()
            } else {
                format!("request failed: {e}")
            },
        })?;
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
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => Err(LookupError::Unauthorized {
                service,
                reason: format!("{status}: {}", message()),
            }),
            s if s.is_server_error() || s == StatusCode::TOO_MANY_REQUESTS => Err(LookupError::Unavailable {
                service,
                reason: format!("{status}: {}", message()),
            }),
            _ => Err(LookupError::Invalid {
                service,
                reason: format!("{status}: {}", message()),
            }),
        }
    }
}
