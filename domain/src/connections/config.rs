use std::collections::BTreeMap;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use oauth2::TokenUrl;
use serde::Deserialize;
use thiserror::Error;

use crate::connections::{CredentialCipher, Secret};

/// The environment variable the encryption key is read from when
/// [`ConnectionsConfig::encryption_key`] is not set.
pub const ENCRYPTION_KEY_ENV: &str = "LTF_CONNECTION_KEY";

/// Settings of the connections: which OAuth2 services users can connect and the key their
/// credentials are encrypted with. Every field has a default; [`validate`](Self::validate)
/// names the bad key. `Debug` shows no secret.
///
/// No secret needs to be in a config file: leave `encryption_key` unset to read it from
/// `LTF_CONNECTION_KEY`, and give each service a `client_secret_env` instead of a
/// `client_secret`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConnectionsConfig {
    /// The services users can connect, by name: the `service` of an
    /// [`AuthenticateConnectionInput`](crate::usecases::AuthenticateConnectionInput) and of
    /// the ConnectionEstablished event. Names use `A-Z a-z 0-9 _ -`. Default: none.
    pub services: BTreeMap<String, OAuthServiceConfig>,
    /// The AES-256 key the stored credentials are encrypted with: 32 bytes, standard
    /// base64 (`openssl rand -base64 32`). Unset (the default): read from the environment
    /// variable `LTF_CONNECTION_KEY`. Required once a service is configured. Changing it
    /// makes every stored credential unreadable.
    pub encryption_key: Option<Secret>,
}

/// How the client authenticates to a token endpoint (RFC 6749 §2.3.1).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClientAuth {
    /// HTTP Basic with the form-encoded client id and secret (`client_secret_basic`), the
    /// method every server must support. The default.
    #[default]
    Basic,
    /// `client_id` and `client_secret` as form parameters of the body
    /// (`client_secret_post`), for servers that accept only that.
    RequestBody,
}

/// One OAuth2 service: its token endpoint and this deployment's client registration there.
/// `Debug` shows no secret.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OAuthServiceConfig {
    /// The token endpoint, an `http` or `https` URL. Required.
    pub token_url: String,
    /// The client id registered with the service. Required.
    pub client_id: String,
    /// The client secret. Set this or `client_secret_env`, not both.
    #[serde(default)]
    pub client_secret: Option<Secret>,
    /// The name of an environment variable holding the client secret, read when the use
    /// case is built. Set this or `client_secret`, not both.
    #[serde(default)]
    pub client_secret_env: Option<String>,
    /// How the client authenticates: `basic` (default) or `request_body`.
    #[serde(default)]
    pub client_auth: ClientAuth,
    /// How long one token request may take, connecting and reading the response included,
    /// in milliseconds; at most 300000. Default 10000.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
}

fn default_timeout_ms() -> u64 {
    10_000
}

const MAX_TIMEOUT_MS: u64 = 300_000;

impl OAuthServiceConfig {
    /// A service with the secret given inline, Basic client authentication and the default
    /// timeout.
    pub fn new(token_url: impl Into<String>, client_id: impl Into<String>, client_secret: impl Into<Secret>) -> Self {
        OAuthServiceConfig {
            token_url: token_url.into(),
            client_id: client_id.into(),
            client_secret: Some(client_secret.into()),
            client_secret_env: None,
            client_auth: ClientAuth::Basic,
            timeout_ms: default_timeout_ms(),
        }
    }

    /// The timeout of one token request.
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }
}

/// A bad configuration value. `key` names it (`connections.services.github.token_url`);
/// `reason` says what is wrong and never holds a secret.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{key}: {reason}")]
pub struct ConfigError {
    /// The dotted key of the bad value.
    pub key: String,
    /// What is wrong with it.
    pub reason: String,
}

fn bad<T>(key: impl Into<String>, reason: impl Into<String>) -> Result<T, ConfigError> {
    Err(ConfigError { key: key.into(), reason: reason.into() })
}

/// A service with its secret read and its URL parsed.
#[derive(Debug, Clone)]
pub(crate) struct ResolvedService {
    pub token_url: TokenUrl,
    pub client_id: String,
    pub client_secret: Secret,
    pub client_auth: ClientAuth,
    pub timeout: Duration,
}

/// The configuration with every secret read: what the use case runs on.
#[derive(Debug)]
pub(crate) struct Resolved {
    /// `None` only when no service is configured and no key given.
    pub cipher: Option<CredentialCipher>,
    pub services: BTreeMap<String, ResolvedService>,
}

/// Reads the process environment.
pub(crate) fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

impl ConnectionsConfig {
    /// Checks every value, reading the secrets named by environment variables from the
    /// process environment; the error names the first bad key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.validate_with(process_env)
    }

    /// [`validate`](Self::validate) with `env` looking up environment variables.
    pub fn validate_with(&self, env: impl Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
        self.resolve(&env).map(drop)
    }

    /// The cipher of the configured key (from `encryption_key` or `LTF_CONNECTION_KEY`),
    /// for readers of stored credentials such as the automation worker.
    pub fn cipher(&self) -> Result<CredentialCipher, ConfigError> {
        self.cipher_with(process_env)
    }

    /// [`cipher`](Self::cipher) with `env` looking up environment variables.
    pub fn cipher_with(&self, env: impl Fn(&str) -> Option<String>) -> Result<CredentialCipher, ConfigError> {
        match self.key(&env)? {
            Some(key) => Ok(CredentialCipher::new(&key)),
            None => bad("connections.encryption_key", format!("not set, and {ENCRYPTION_KEY_ENV} is not set either")),
        }
    }

    /// Every value checked and every secret read.
    pub(crate) fn resolve(&self, env: &dyn Fn(&str) -> Option<String>) -> Result<Resolved, ConfigError> {
        let mut services = BTreeMap::new();
        for (name, service) in &self.services {
            services.insert(name.clone(), resolve_service(name, service, env)?);
        }
        let cipher =
            if services.is_empty() { self.key(env)?.map(|k| CredentialCipher::new(&k)) } else { Some(self.cipher_with(env)?) };
        Ok(Resolved { cipher, services })
    }

    /// The key, decoded; `None` when neither the config nor the environment sets it.
    fn key(&self, env: &dyn Fn(&str) -> Option<String>) -> Result<Option<[u8; 32]>, ConfigError> {
        let (value, from) = match &self.encryption_key {
            Some(k) => (k.clone(), String::new()),
            None => match env(ENCRYPTION_KEY_ENV) {
                Some(v) => (Secret::new(v), format!(" (from {ENCRYPTION_KEY_ENV})")),
                None => return Ok(None),
            },
        };
        let got = match STANDARD.decode(value.expose().trim()) {
            Ok(bytes) => match <[u8; 32]>::try_from(bytes.as_slice()) {
                Ok(key) => return Ok(Some(key)),
                Err(_) => bytes.len().to_string(),
            },
            Err(_) => "something that is not base64".to_owned(),
        };
        bad("connections.encryption_key", format!("must be 32 bytes of base64, got {got}{from}"))
    }
}

fn resolve_service(
    name: &str,
    service: &OAuthServiceConfig,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<ResolvedService, ConfigError> {
    let key = |field: &str| format!("connections.services.{name}.{field}");
    if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-') {
        return bad(format!("connections.services.{name}"), "a service name uses only A-Z a-z 0-9 _ -");
    }
    let token_url = match TokenUrl::new(service.token_url.clone()) {
        Ok(url) if matches!(url.url().scheme(), "http" | "https") && url.url().has_host() => url,
        _ => return bad(key("token_url"), "not an http(s) URL"),
    };
    if service.client_id.trim().is_empty() {
        return bad(key("client_id"), "must not be empty");
    }
    let client_secret = match (&service.client_secret, &service.client_secret_env) {
        (Some(_), Some(_)) => return bad(key("client_secret"), "set client_secret or client_secret_env, not both"),
        (None, None) => return bad(key("client_secret"), "set client_secret or client_secret_env"),
        (Some(secret), None) => secret.clone(),
        (None, Some(var)) => match env(var) {
            Some(value) => Secret::new(value),
            None => return bad(key("client_secret_env"), format!("the environment variable {var} is not set")),
        },
    };
    if client_secret.is_blank() {
        return bad(key("client_secret"), "must not be empty");
    }
    if service.timeout_ms == 0 || service.timeout_ms > MAX_TIMEOUT_MS {
        return bad(key("timeout_ms"), format!("must be between 1 and {MAX_TIMEOUT_MS}"));
    }
    Ok(ResolvedService {
        token_url,
        client_id: service.client_id.clone(),
        client_secret,
        client_auth: service.client_auth,
        timeout: service.timeout(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="; // 32 bytes
    const SECRET: &str = "s3cr3t-client-value";

    fn no_env(_: &str) -> Option<String> {
        None
    }

    fn github() -> OAuthServiceConfig {
        OAuthServiceConfig::new("https://github.com/login/oauth/access_token", "client-1", SECRET)
    }

    fn config() -> ConnectionsConfig {
        ConnectionsConfig { services: BTreeMap::from([("github".to_owned(), github())]), encryption_key: Some(Secret::new(KEY)) }
    }

    fn err(c: &ConnectionsConfig) -> String {
        c.validate_with(no_env).unwrap_err().to_string()
    }

    #[test]
    fn defaults_and_unknown_keys() {
        let c: ConnectionsConfig = serde_json::from_str("{}").unwrap();
        assert_eq!(c, ConnectionsConfig::default());
        assert!(c.validate_with(no_env).is_ok(), "no service needs no key");
        let c: ConnectionsConfig = serde_json::from_str(
            r#"{"services": {"github": {"token_url": "https://x.test/token", "client_id": "id", "client_secret_env": "GH"}}}"#,
        )
        .unwrap();
        let s = &c.services["github"];
        assert_eq!((s.timeout(), s.client_auth), (Duration::from_secs(10), ClientAuth::Basic));
        assert!(serde_json::from_str::<ConnectionsConfig>(r#"{"key": "x"}"#).is_err());
        let unknown = r#"{"services": {"g": {"token_url": "u", "client_id": "i", "secret": "x"}}}"#;
        assert!(serde_json::from_str::<ConnectionsConfig>(unknown).is_err());
        let auth = r#"{"token_url": "u", "client_id": "i", "client_auth": "request_body"}"#;
        assert_eq!(serde_json::from_str::<OAuthServiceConfig>(auth).unwrap().client_auth, ClientAuth::RequestBody);
    }

    #[test]
    fn errors_name_the_bad_key() {
        assert!(config().validate_with(no_env).is_ok());
        let mut c = config();
        c.services.get_mut("github").unwrap().token_url = "ftp://x/token".into();
        assert_eq!(err(&c), "connections.services.github.token_url: not an http(s) URL");
        c.services.get_mut("github").unwrap().token_url = "not a url".into();
        assert_eq!(err(&c), "connections.services.github.token_url: not an http(s) URL");
        let mut c = config();
        c.encryption_key = Some(Secret::new("MDEyMzQ1Njc4OWFi"));
        assert_eq!(err(&c), "connections.encryption_key: must be 32 bytes of base64, got 12");
        c.encryption_key = Some(Secret::new("%%%"));
        assert_eq!(err(&c), "connections.encryption_key: must be 32 bytes of base64, got something that is not base64");
        c.encryption_key = None;
        assert_eq!(err(&c), "connections.encryption_key: not set, and LTF_CONNECTION_KEY is not set either");
        let mut c = config();
        c.services.get_mut("github").unwrap().client_secret = None;
        assert_eq!(err(&c), "connections.services.github.client_secret: set client_secret or client_secret_env");
        c.services.get_mut("github").unwrap().client_secret_env = Some("GH_SECRET".into());
        assert_eq!(err(&c), "connections.services.github.client_secret_env: the environment variable GH_SECRET is not set");
        let mut c = config();
        c.services.get_mut("github").unwrap().timeout_ms = 0;
        assert_eq!(err(&c), "connections.services.github.timeout_ms: must be between 1 and 300000");
        let mut c = config();
        c.services.get_mut("github").unwrap().client_id = " ".into();
        assert_eq!(err(&c), "connections.services.github.client_id: must not be empty");
        let mut c = config();
        c.services.insert("git hub".into(), github());
        assert_eq!(err(&c), "connections.services.git hub: a service name uses only A-Z a-z 0-9 _ -");
    }

    #[test]
    fn secrets_can_come_from_the_environment() {
        let mut c = config();
        c.encryption_key = None;
        let service = c.services.get_mut("github").unwrap();
        service.client_secret = None;
        service.client_secret_env = Some("GH_SECRET".into());
        let env = |name: &str| match name {
            "LTF_CONNECTION_KEY" => Some(KEY.to_owned()),
            "GH_SECRET" => Some(SECRET.to_owned()),
            _ => None,
        };
        let resolved = c.resolve(&env).unwrap();
        assert_eq!(resolved.services["github"].client_secret.expose(), SECRET);
        assert!(resolved.cipher.is_some());
        assert!(c.cipher_with(env).is_ok());
        let short = |name: &str| (name == "LTF_CONNECTION_KEY").then(|| "AAAA".to_owned());
        assert_eq!(
            c.cipher_with(short).unwrap_err().to_string(),
            "connections.encryption_key: must be 32 bytes of base64, got 3 (from LTF_CONNECTION_KEY)"
        );
    }

    #[test]
    fn debug_and_errors_show_no_secret() {
        let c = config();
        let debug = format!("{c:?} {c:#?}");
        assert!(!debug.contains(SECRET) && !debug.contains(KEY), "{debug}");
        let resolved = c.resolve(&no_env).unwrap();
        let debug = format!("{resolved:?}");
        assert!(!debug.contains(SECRET) && !debug.contains(KEY), "{debug}");
        let mut c = config();
        c.encryption_key = Some(Secret::new("c2hvcnQtc2VjcmV0LWtleQ=="));
        let e = c.validate_with(no_env).unwrap_err();
        assert!(!format!("{e} {e:?}").contains("c2hvcnQtc2VjcmV0LWtleQ=="));
    }
}
