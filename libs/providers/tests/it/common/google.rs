//! A fake of Google's OAuth token endpoint and the test service account (Gmail, FCM): the
//! key JSON, the endpoint handing out numbered tokens, the assertion checked with the
//! key's public half.

use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use notify_providers::google_auth::{AssertionClaims, ServiceAccountKey};
use serde_json::json;
use wiremock::{
    matchers::{header, method, path},
    Mock, MockServer, Request, ResponseTemplate,
};

pub const PRIVATE_KEY: &str = include_str!("../../keys/test-only-pkcs8.pem");
pub const PUBLIC_KEY: &str = include_str!("../../keys/test-only-public.pem");
pub const CLIENT_EMAIL: &str = "notify-mailer@notify-test.iam.gserviceaccount.com";

/// The test service account, its `token_uri` on `server`.
pub fn key(server: &MockServer) -> ServiceAccountKey {
    let json = json!({
        "type": "service_account",
        "project_id": "notify-test",
        "private_key_id": "k1",
        "private_key": PRIVATE_KEY,
        "client_email": CLIENT_EMAIL,
        "token_uri": format!("{}/token", server.uri()),
    });
    ServiceAccountKey::parse(&json.to_string(), "TEST_KEY").unwrap()
}

/// The token endpoint hands out `ya29.token-N` (N counting from 1), valid one hour.
pub async fn token_endpoint(server: &MockServer, expected: u64) {
    let counter = std::sync::atomic::AtomicU64::new(0);
    Mock::given(method("POST"))
        .and(path("/token"))
        .and(header("content-type", "application/x-www-form-urlencoded"))
        .respond_with(move |_: &Request| {
            let n = counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
            ResponseTemplate::new(200).set_body_json(json!({
                "access_token": format!("ya29.token-{n}"), "expires_in": 3599, "token_type": "Bearer",
            }))
        })
        .expect(expected)
        .mount(server)
        .await;
}

/// The form fields of a token request.
pub fn form(request: &Request) -> std::collections::HashMap<String, String> {
    url_decode_pairs(std::str::from_utf8(&request.body).unwrap())
}

fn url_decode_pairs(body: &str) -> std::collections::HashMap<String, String> {
    reqwest::Url::parse(&format!("http://x/?{body}"))
        .unwrap()
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

/// The assertion's claims, after checking its RS256 signature with the public key.
pub fn verified_claims(assertion: &str, audience: &str) -> AssertionClaims {
    let mut validation = Validation::new(Algorithm::RS256);
    validation.set_audience(&[audience]);
    validation.set_required_spec_claims(&["exp", "aud", "iss"]);
    let decoded = jsonwebtoken::decode::<AssertionClaims>(
        assertion,
        &DecodingKey::from_rsa_pem(PUBLIC_KEY.as_bytes()).unwrap(),
        &validation,
    )
    .expect("the assertion is signed with the service account's key");
    assert_eq!(decoded.header.kid.as_deref(), Some("k1"));
    decoded.claims
}

/// The requests `server` received on path `p`.
pub fn requests_to<'a>(requests: &'a [Request], p: &str) -> Vec<&'a Request> {
    requests.iter().filter(|r| r.url.path() == p).collect()
}
