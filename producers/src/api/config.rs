//! [`ApiConfig`]: everything the HTTP API is configured with. Every field has a default
//! except the API keys; [`ApiConfig::validate`] names the first bad key.

use std::collections::HashSet;
use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use serde::Deserialize;

use ltf_domain::connections::ConnectionsConfig;
use ltf_domain::usecases::RecordLimits;
use ltf_kafka::PublishError;

/// Configuration of the HTTP API (`ltf api`, or [`router`](crate::api::router) embedded).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ApiConfig {
    /// Address the server listens on. Default `127.0.0.1:8080`.
    pub listen: SocketAddr,
    /// Largest request body accepted, in bytes; a larger one is refused with 413 before
    /// anything is parsed. Default 4 MiB.
    pub body_limit_bytes: usize,
    /// The API keys and the principal each authenticates (the `user_id` of the requests
    /// made with it). At least one is required.
    pub api_keys: Vec<ApiKey>,
    /// How long a write with `?waitForPublish=true` waits for the relay to publish its
    /// events before answering 202 (events queued). Default 5000 ms, at most 60000.
    pub wait_for_publish_timeout_ms: u64,
    /// Bound on each check of `/readyz` (database, Kafka, registry). Default 2000 ms.
    pub readiness_timeout_ms: u64,
    /// Limits of the record use cases (`max_batch`: most records in one batch request;
    /// more is refused with 413).
    pub records: RecordLimits,
    /// The OAuth2 services `POST /v1/connections` can connect and the key credentials are
    /// encrypted with (see `ConnectionsConfig`). Default: no service.
    pub connections: ConnectionsConfig,
}

/// Default listen address.
pub fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8080))
}

/// Default body limit: 4 MiB.
pub const fn default_body_limit_bytes() -> usize {
    4 << 20
}

/// Default `?waitForPublish=true` bound: 5 s.
pub const fn default_wait_for_publish_timeout_ms() -> u64 {
    5_000
}

/// Default bound on each readiness check: 2 s.
pub const fn default_readiness_timeout_ms() -> u64 {
    2_000
}

/// Longest accepted `wait_for_publish_timeout_ms`: a request holds a connection while it waits.
const MAX_WAIT_MS: u64 = 60_000;
/// Shortest accepted API key.
pub const MIN_KEY_LEN: usize = 16;

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            listen: default_listen(),
            body_limit_bytes: default_body_limit_bytes(),
            api_keys: Vec::new(),
            wait_for_publish_timeout_ms: default_wait_for_publish_timeout_ms(),
            readiness_timeout_ms: default_readiness_timeout_ms(),
            records: RecordLimits::default(),
            connections: ConnectionsConfig::default(),
        }
    }
}

impl ApiConfig {
    /// The bound of `?waitForPublish=true`.
    pub fn wait_for_publish_timeout(&self) -> Duration {
        Duration::from_millis(self.wait_for_publish_timeout_ms)
    }

    /// The bound of each readiness check.
    pub fn readiness_timeout(&self) -> Duration {
        Duration::from_millis(self.readiness_timeout_ms)
    }

    /// Checks every field; the error names the first bad key (never a key's secret).
    pub fn validate(&self) -> Result<(), PublishError> {
        if self.body_limit_bytes == 0 {
            return bad("body_limit_bytes", "must be positive");
        }
        if self.wait_for_publish_timeout_ms == 0 || self.wait_for_publish_timeout_ms > MAX_WAIT_MS {
            return bad("wait_for_publish_timeout_ms", &format!("must be between 1 and {MAX_WAIT_MS}"));
        }
        if self.readiness_timeout_ms == 0 {
            return bad("readiness_timeout_ms", "must be positive");
        }
        if self.records.max_batch == 0 {
            return bad("records.max_batch", "must be positive");
        }
        if self.api_keys.is_empty() {
            return bad("api_keys", "at least one API key is required");
        }
        let mut seen = HashSet::new();
        for (i, k) in self.api_keys.iter().enumerate() {
            k.validate(&format!("api_keys[{i}]"))?;
            if !seen.insert(k.key.as_str()) {
                return bad(&format!("api_keys[{i}].key"), "the same key is configured twice");
            }
        }
        // Its keys are already named `connections.…`.
        self.connections.validate().map_err(|e| PublishError::Config { key: e.key, reason: e.reason })
    }
}

/// One API key and the principal it authenticates. `Debug` never shows the key.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiKey {
    /// Who the key authenticates: becomes the `user_id` of the request context (and so
    /// `createdBy` of the records it creates). Letters, digits and `_.@-`.
    pub principal: String,
    /// The secret, at least 16 characters, no whitespace, `,` or `:`.
    pub key: String,
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiKey").field("principal", &self.principal).field("key", &"<redacted>").finish()
    }
}

impl ApiKey {
    /// A key for `principal`.
    pub fn new(principal: impl Into<String>, key: impl Into<String>) -> ApiKey {
        ApiKey { principal: principal.into(), key: key.into() }
    }

    /// Parses `principal:key,principal:key,…` (the `LTF_API_KEYS` format). Errors name the
    /// entry by position, never by its secret.
    pub fn parse_list(list: &str) -> Result<Vec<ApiKey>, PublishError> {
        list.split(',')
            .map(str::trim)
            .filter(|e| !e.is_empty())
            .enumerate()
            .map(|(i, entry)| match entry.split_once(':') {
                Some((principal, key)) => {
                    let k = ApiKey::new(principal.trim(), key.trim());
                    k.validate(&format!("api_keys[{i}]"))?;
                    Ok(k)
                }
                None => bad(&format!("api_keys[{i}]"), "expected `principal:key`"),
            })
            .collect()
    }

    fn validate(&self, at: &str) -> Result<(), PublishError> {
        let principal_ok = !self.principal.is_empty()
            && self.principal.len() <= 128
            && self.principal.chars().all(|c| c.is_ascii_alphanumeric() || "_.@-".contains(c));
        if !principal_ok {
            return bad(&format!("{at}.principal"), "must be 1 to 128 letters, digits or `_.@-`");
        }
        if self.key.chars().count() < MIN_KEY_LEN {
            return bad(&format!("{at}.key"), &format!("must be at least {MIN_KEY_LEN} characters"));
        }
        if self.key.chars().any(|c| c.is_whitespace() || c.is_control() || c == ',' || c == ':') {
            return bad(&format!("{at}.key"), "must not contain whitespace, control characters, `,` or `:`");
        }
        Ok(())
    }
}

fn bad<T>(key: &str, reason: &str) -> Result<T, PublishError> {
    Err(PublishError::Config { key: key.to_owned(), reason: reason.to_owned() })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn valid() -> ApiConfig {
        ApiConfig { api_keys: vec![ApiKey::new("svc", "0123456789abcdef")], ..Default::default() }
    }

    #[test]
    fn defaults() {
        let c = ApiConfig::default();
        assert_eq!(c.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(c.body_limit_bytes, 4 * 1024 * 1024);
        assert_eq!(c.wait_for_publish_timeout(), Duration::from_secs(5));
        assert_eq!(c.records.max_batch, 1000);
        assert!(valid().validate().is_ok());
    }

    #[test]
    fn bad_values_name_their_key() {
        let key_of = |c: ApiConfig| match c.validate() {
            Err(PublishError::Config { key, .. }) => key,
            other => panic!("{other:?}"),
        };
        assert_eq!(key_of(ApiConfig::default()), "api_keys");
        assert_eq!(key_of(ApiConfig { body_limit_bytes: 0, ..valid() }), "body_limit_bytes");
        assert_eq!(key_of(ApiConfig { wait_for_publish_timeout_ms: 60_001, ..valid() }), "wait_for_publish_timeout_ms");
        assert_eq!(key_of(ApiConfig { records: RecordLimits { max_batch: 0 }, ..valid() }), "records.max_batch");
        let mut c = valid();
        c.api_keys.push(ApiKey::new("other", "short"));
        assert_eq!(key_of(c), "api_keys[1].key");
        let mut c = valid();
        c.api_keys.push(ApiKey::new("other", "0123456789abcdef"));
        assert_eq!(key_of(c), "api_keys[1].key");
        let c = ApiConfig { api_keys: vec![ApiKey::new("a b", "0123456789abcdef")], ..valid() };
        assert_eq!(key_of(c), "api_keys[0].principal");
    }

    #[test]
    fn unknown_keys_are_refused_and_known_ones_read() {
        let e = serde_json::from_str::<ApiConfig>(r#"{"bodyLimit": 3}"#).unwrap_err().to_string();
        assert!(e.contains("bodyLimit"), "{e}");
        let c: ApiConfig = serde_json::from_str(
            r#"{"listen": "0.0.0.0:9000", "records": {"max_batch": 10},
                "api_keys": [{"principal": "svc", "key": "0123456789abcdef"}]}"#,
        )
        .unwrap();
        assert_eq!(c.listen.port(), 9000);
        assert_eq!(c.records.max_batch, 10);
        assert!(c.validate().is_ok());
    }

    #[test]
    fn key_lists_parse_and_never_show_the_secret() {
        let keys = ApiKey::parse_list("svc:0123456789abcdef, ops:fedcba9876543210,").unwrap();
        assert_eq!(keys, vec![ApiKey::new("svc", "0123456789abcdef"), ApiKey::new("ops", "fedcba9876543210")]);
        assert!(!format!("{keys:?}").contains("0123456789abcdef"));
        let e = ApiKey::parse_list("svc:0123456789abcdef,nocolon").unwrap_err().to_string();
        assert!(e.contains("api_keys[1]") && !e.contains("nocolon"), "{e}");
        let e = ApiKey::parse_list("svc:short").unwrap_err().to_string();
        assert!(e.contains("api_keys[0].key") && !e.contains("short`"), "{e}");
    }
}
