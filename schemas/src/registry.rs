//! A client for the Confluent Schema Registry REST API (also spoken by the local
//! `rivven-schema`). Services only *look up* schemas: registration belongs to the deploy
//! step ([`SchemaRegistry::register_all`], run by `register-schemas`). Schemas are cached by
//! id for the life of the process, so a registry restart does not disturb decoding.

use std::{
    collections::HashMap,
    sync::{Arc, RwLock},
    time::Duration,
};

use apache_avro::Schema;
use serde::Deserialize;

use crate::Contract;

const CONTENT_TYPE: &str = "application/vnd.schemaregistry.v1+json";

/// Registry failures.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("schema registry unreachable: {0}")]
    Http(#[from] reqwest::Error),
    #[error("schema registry answered {status} for {what}: {body}")]
    Status { status: u16, what: String, body: String },
    #[error("schema {0} from the registry does not parse: {1}")]
    Parse(String, Box<apache_avro::Error>),
}

impl RegistryError {
    /// True when the registry said the subject/id does not exist (as opposed to being down).
    pub fn is_not_found(&self) -> bool {
        matches!(self, Self::Status { status: 404, .. })
    }
}

#[derive(Deserialize)]
struct SchemaById {
    schema: String,
}

#[derive(Deserialize)]
struct SubjectVersion {
    id: u32,
    schema: String,
}

#[derive(Deserialize)]
struct Registered {
    id: u32,
}

/// A schema and the id the registry gave it.
#[derive(Debug, Clone)]
pub struct RegisteredSchema {
    pub id: u32,
    pub schema: Arc<Schema>,
}

/// Registry client with an id cache. Cheap to clone.
#[derive(Clone)]
pub struct SchemaRegistry {
    http: reqwest::Client,
    base: String,
    by_id: Arc<RwLock<HashMap<u32, Arc<Schema>>>>,
}

impl std::fmt::Debug for SchemaRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SchemaRegistry").field("base", &self.base).finish()
    }
}

impl SchemaRegistry {
    /// A client for the registry at `base_url` (e.g. `http://127.0.0.1:8081`).
    pub fn new(base_url: &str) -> Result<Self, RegistryError> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .connect_timeout(Duration::from_secs(2))
            .build()?;
        Ok(Self {
            http,
            base: base_url.trim_end_matches('/').to_string(),
            by_id: Arc::default(),
        })
    }

    async fn get_json<T: for<'de> Deserialize<'de>>(&self, path: &str) -> Result<T, RegistryError> {
        let resp = self
            .http
            .get(format!("{}{}", self.base, path))
            .header(reqwest::header::ACCEPT, CONTENT_TYPE)
            .send()
            .await?;
        let status = resp.status();
        if !status.is_success() {
            return Err(RegistryError::Status {
                status: status.as_u16(),
                what: path.to_string(),
                body: resp.text().await.unwrap_or_default(),
            });
        }
        Ok(resp.json().await?)
    }

    /// The schema with `id`, from the cache or the registry.
    pub async fn schema_by_id(&self, id: u32) -> Result<Arc<Schema>, RegistryError> {
        if let Some(s) = self.cached(id) {
            return Ok(s);
        }
        let body: SchemaById = self.get_json(&format!("/schemas/ids/{id}")).await?;
        let schema =
            Arc::new(Schema::parse_str(&body.schema).map_err(|e| RegistryError::Parse(id.to_string(), Box::new(e)))?);
        if let Ok(mut cache) = self.by_id.write() {
            cache.insert(id, schema.clone());
        }
        Ok(schema)
    }

    fn cached(&self, id: u32) -> Option<Arc<Schema>> {
        self.by_id.read().ok().and_then(|c| c.get(&id).cloned())
    }

    /// The latest registered version of `subject` (what producers write with).
    pub async fn latest(&self, subject: &str) -> Result<RegisteredSchema, RegistryError> {
        let body: SubjectVersion = self.get_json(&format!("/subjects/{subject}/versions/latest")).await?;
        let schema = Arc::new(
            Schema::parse_str(&body.schema).map_err(|e| RegistryError::Parse(subject.to_string(), Box::new(e)))?,
        );
        if let Ok(mut cache) = self.by_id.write() {
            cache.insert(body.id, schema.clone());
        }
        Ok(RegisteredSchema { id: body.id, schema })
    }

    /// Registers `schema` under `subject` (deploy step only). Returns the id.
    pub async fn register(&self, subject: &str, schema: &str) -> Result<u32, RegistryError> {
        let resp = self
            .http
            .post(format!("{}/subjects/{subject}/versions", self.base))
            .header(reqwest::header::CONTENT_TYPE, CONTENT_TYPE)
            .json(&serde_json::json!({ "schema": schema }))
            .send()
            .await?;
        let status = resp.status();
        if !status.is_success() {
            return Err(RegistryError::Status {
                status: status.as_u16(),
                what: format!("register {subject}"),
                body: resp.text().await.unwrap_or_default(),
            });
        }
        Ok(resp.json::<Registered>().await?.id)
    }

    /// Sets the global compatibility level (e.g. `BACKWARD`).
    pub async fn set_compatibility(&self, level: &str) -> Result<(), RegistryError> {
        let resp = self
            .http
            .put(format!("{}/config", self.base))
            .header(reqwest::header::CONTENT_TYPE, CONTENT_TYPE)
            .json(&serde_json::json!({ "compatibility": level }))
            .send()
            .await?;
        if !resp.status().is_success() {
            return Err(RegistryError::Status {
                status: resp.status().as_u16(),
                what: "PUT /config".into(),
                body: resp.text().await.unwrap_or_default(),
            });
        }
        Ok(())
    }

    /// Sets the compatibility level of one subject (`PUT /config/{subject}`), so it holds
    /// whatever the registry's global level is.
    pub async fn set_subject_compatibility(&self, subject: &str, level: &str) -> Result<(), RegistryError> {
        let resp = self
            .http
            .put(format!("{}/config/{subject}", self.base))
            .header(reqwest::header::CONTENT_TYPE, CONTENT_TYPE)
            .json(&serde_json::json!({ "compatibility": level }))
            .send()
            .await?;
        if !resp.status().is_success() {
            return Err(RegistryError::Status {
                status: resp.status().as_u16(),
                what: format!("PUT /config/{subject}"),
                body: resp.text().await.unwrap_or_default(),
            });
        }
        Ok(())
    }

    /// Whether `schema` could be registered under `subject` by the subject's compatibility
    /// rule, compared with its latest version (`POST /compatibility/subjects/{subject}/versions/latest`).
    /// `Ok(None)` when the subject has no version yet (anything is compatible with nothing).
    /// The second value: the registry's reasons, when it gives any.
    pub async fn is_compatible(
        &self,
        subject: &str,
        schema: &str,
    ) -> Result<Option<(bool, Vec<String>)>, RegistryError> {
        #[derive(Deserialize)]
        struct Answer {
            is_compatible: bool,
            #[serde(default)]
            messages: Vec<String>,
        }
        let resp = self
            .http
            .post(format!(
                "{}/compatibility/subjects/{subject}/versions/latest",
                self.base
            ))
            .header(reqwest::header::CONTENT_TYPE, CONTENT_TYPE)
            .json(&serde_json::json!({ "schema": schema }))
            .send()
            .await?;
        let status = resp.status();
        if status.as_u16() == 404 {
            return Ok(None);
        }
        if !status.is_success() {
            return Err(RegistryError::Status {
                status: status.as_u16(),
                what: format!("compatibility of {subject}"),
                body: resp.text().await.unwrap_or_default(),
            });
        }
        let answer = resp.json::<Answer>().await?;
        Ok(Some((answer.is_compatible, answer.messages)))
    }

    /// Sets compatibility (the global level, then each subject's own) and registers every
    /// contract in order (idempotent: registering an identical schema again returns the existing
    /// id). Returns `(subject, id)` pairs.
    pub async fn register_all(
        &self,
        contracts: &[Contract],
        compatibility: &str,
    ) -> Result<Vec<(&'static str, u32)>, RegistryError> {
        self.set_compatibility(compatibility).await?;
        let mut ids = Vec::with_capacity(contracts.len());
        for c in contracts {
            ids.push((c.subject, self.register(c.subject, c.schema).await?));
            self.set_subject_compatibility(c.subject, compatibility).await?;
        }
        Ok(ids)
    }

    /// Whether the registry answers.
    pub async fn ping(&self) -> Result<(), RegistryError> {
        let _: Vec<String> = self.get_json("/subjects").await?;
        Ok(())
    }
}
