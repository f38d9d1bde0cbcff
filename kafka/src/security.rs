//! Kafka security settings every client of a process uses: the publisher, the relay, the
//! workers' consumers, topic administration and the CLI's readers.
//!
//! They come from the environment ([`KafkaSecurity::from_env`]), are checked at start (the
//! error names the variable), and are installed once per process ([`install`]); every
//! client configuration starts from [`client_config`], which applies them. Secrets (the
//! SASL password, and any property file value whose key names a password, secret or
//! key) never appear in `Debug` output or errors.
//!
//! | variable | librdkafka property |
//! |---|---|
//! | `LTF_KAFKA_SECURITY_PROTOCOL` | `security.protocol`: PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL |
//! | `LTF_KAFKA_SASL_MECHANISM` | `sasl.mechanism`: PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 |
//! | `LTF_KAFKA_SASL_USERNAME` | `sasl.username` |
//! | `LTF_KAFKA_SASL_PASSWORD` or `LTF_KAFKA_SASL_PASSWORD_FILE` | `sasl.password` |
//! | `LTF_KAFKA_SSL_CA_LOCATION` | `ssl.ca.location` |
//! | `LTF_KAFKA_SSL_CERTIFICATE_LOCATION` | `ssl.certificate.location` (mTLS) |
//! | `LTF_KAFKA_SSL_KEY_LOCATION` | `ssl.key.location` (mTLS) |
//! | `LTF_KAFKA_PROPERTIES_FILE` | a file of `key=value` librdkafka properties, applied first |
//!
//! OAUTHBEARER is not supported by this build (librdkafka's OIDC needs libcurl).

use std::collections::BTreeMap;
use std::sync::OnceLock;

use rdkafka::ClientConfig;

use crate::ConfigError;

/// The security settings of every Kafka client of the process. See the module docs.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct KafkaSecurity {
    /// `security.protocol`; `None` leaves librdkafka's default (PLAINTEXT).
    pub security_protocol: Option<String>,
    /// `sasl.mechanism`.
    pub sasl_mechanism: Option<String>,
    /// `sasl.username`.
    pub sasl_username: Option<String>,
    /// `sasl.password` (never printed).
    pub sasl_password: Option<String>,
    /// `ssl.ca.location`: the CA bundle brokers' certificates are checked against.
    pub ssl_ca_location: Option<String>,
    /// `ssl.certificate.location`: the client's certificate (mTLS).
    pub ssl_certificate_location: Option<String>,
    /// `ssl.key.location`: the client's private key (mTLS).
    pub ssl_key_location: Option<String>,
    /// Properties from `LTF_KAFKA_PROPERTIES_FILE`, applied before the settings above.
    pub properties: BTreeMap<String, String>,
}

/// Each variable and the librdkafka property it sets.
const VARIABLES: [(&str, &str); 7] = [
    ("LTF_KAFKA_SECURITY_PROTOCOL", "security.protocol"),
    ("LTF_KAFKA_SASL_MECHANISM", "sasl.mechanism"),
    ("LTF_KAFKA_SASL_USERNAME", "sasl.username"),
    ("LTF_KAFKA_SASL_PASSWORD", "sasl.password"),
    ("LTF_KAFKA_SSL_CA_LOCATION", "ssl.ca.location"),
    ("LTF_KAFKA_SSL_CERTIFICATE_LOCATION", "ssl.certificate.location"),
    ("LTF_KAFKA_SSL_KEY_LOCATION", "ssl.key.location"),
];

const PROTOCOLS: [&str; 4] = ["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"];
const MECHANISMS: [&str; 3] = ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"];

/// Whether a property's value is a secret (never printed).
fn is_secret(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    k.contains("password") || k.contains("secret") || k.ends_with(".key") || k.contains("key.pem")
}

impl std::fmt::Debug for KafkaSecurity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let properties: BTreeMap<&str, &str> =
            self.properties.iter().map(|(k, v)| (k.as_str(), if is_secret(k) { "<redacted>" } else { v.as_str() })).collect();
        f.debug_struct("KafkaSecurity")
            .field("security_protocol", &self.security_protocol)
            .field("sasl_mechanism", &self.sasl_mechanism)
            .field("sasl_username", &self.sasl_username)
            .field("sasl_password", &self.sasl_password.as_ref().map(|_| "<redacted>"))
            .field("ssl_ca_location", &self.ssl_ca_location)
            .field("ssl_certificate_location", &self.ssl_certificate_location)
            .field("ssl_key_location", &self.ssl_key_location)
            .field("properties", &properties)
            .finish()
    }
}

impl KafkaSecurity {
    /// The settings from the process environment, checked: the error names the variable.
    pub fn from_env() -> Result<KafkaSecurity, ConfigError> {
        KafkaSecurity::from_lookup(|name| std::env::var(name).ok())
    }

    /// The settings from `lookup` (a variable name → its value), checked.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<KafkaSecurity, ConfigError> {
        let var = |name: &str| lookup(name).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
        let password = match (var("LTF_KAFKA_SASL_PASSWORD"), var("LTF_KAFKA_SASL_PASSWORD_FILE")) {
            (Some(_), Some(_)) => {
                return Err(ConfigError::new(
                    "LTF_KAFKA_SASL_PASSWORD_FILE",
                    "set either LTF_KAFKA_SASL_PASSWORD or LTF_KAFKA_SASL_PASSWORD_FILE, not both",
                ))
            }
            (Some(p), None) => Some(p),
            (None, Some(path)) => Some(
                std::fs::read_to_string(&path)
                    .map_err(|e| ConfigError::new("LTF_KAFKA_SASL_PASSWORD_FILE", format!("cannot read {path}: {e}")))?
                    .trim_end_matches(['\r', '\n'])
                    .to_owned(),
            ),
            (None, None) => None,
        };
        let properties = match var("LTF_KAFKA_PROPERTIES_FILE") {
            Some(path) => {
                let text = std::fs::read_to_string(&path)
                    .map_err(|e| ConfigError::new("LTF_KAFKA_PROPERTIES_FILE", format!("cannot read {path}: {e}")))?;
                parse_properties(&text)?
            }
            None => BTreeMap::new(),
        };
        let security = KafkaSecurity {
            security_protocol: var("LTF_KAFKA_SECURITY_PROTOCOL").map(|p| p.to_ascii_uppercase()),
            sasl_mechanism: var("LTF_KAFKA_SASL_MECHANISM").map(|m| m.to_ascii_uppercase()),
            sasl_username: var("LTF_KAFKA_SASL_USERNAME"),
            sasl_password: password,
            ssl_ca_location: var("LTF_KAFKA_SSL_CA_LOCATION"),
            ssl_certificate_location: var("LTF_KAFKA_SSL_CERTIFICATE_LOCATION"),
            ssl_key_location: var("LTF_KAFKA_SSL_KEY_LOCATION"),
            properties,
        };
        security.validate()?;
        Ok(security)
    }

    /// Checks the settings together; the error names the variable to fix.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let protocol = self.security_protocol.as_deref().unwrap_or("PLAINTEXT");
        if !PROTOCOLS.contains(&protocol) {
            return Err(ConfigError::new("LTF_KAFKA_SECURITY_PROTOCOL", format!("must be one of {}", PROTOCOLS.join(", "))));
        }
        let sasl = protocol.starts_with("SASL_");
        if let Some(m) = &self.sasl_mechanism {
            if m == "OAUTHBEARER" {
                return Err(ConfigError::new("LTF_KAFKA_SASL_MECHANISM", "OAUTHBEARER is not supported by this build"));
            }
            if !MECHANISMS.contains(&m.as_str()) {
                return Err(ConfigError::new("LTF_KAFKA_SASL_MECHANISM", format!("must be one of {}", MECHANISMS.join(", "))));
            }
        }
        if sasl {
            if self.sasl_mechanism.is_none() {
                return Err(ConfigError::new("LTF_KAFKA_SASL_MECHANISM", format!("required with {protocol}")));
            }
            if self.sasl_username.is_none() {
                return Err(ConfigError::new("LTF_KAFKA_SASL_USERNAME", format!("required with {protocol}")));
            }
            if self.sasl_password.is_none() {
                return Err(ConfigError::new(
                    "LTF_KAFKA_SASL_PASSWORD",
                    format!("required with {protocol} (or LTF_KAFKA_SASL_PASSWORD_FILE)"),
                ));
            }
        } else if self.sasl_mechanism.is_some() || self.sasl_username.is_some() || self.sasl_password.is_some() {
            return Err(ConfigError::new(
                "LTF_KAFKA_SECURITY_PROTOCOL",
                format!("SASL settings are given but the protocol is {protocol}: use SASL_SSL or SASL_PLAINTEXT"),
            ));
        }
        if self.ssl_certificate_location.is_some() != self.ssl_key_location.is_some() {
            let missing =
                if self.ssl_key_location.is_none() { "LTF_KAFKA_SSL_KEY_LOCATION" } else { "LTF_KAFKA_SSL_CERTIFICATE_LOCATION" };
            return Err(ConfigError::new(missing, "mTLS needs both the certificate and the key"));
        }
        for (name, path) in [
            ("LTF_KAFKA_SSL_CA_LOCATION", &self.ssl_ca_location),
            ("LTF_KAFKA_SSL_CERTIFICATE_LOCATION", &self.ssl_certificate_location),
            ("LTF_KAFKA_SSL_KEY_LOCATION", &self.ssl_key_location),
        ] {
            if let Some(p) = path {
                if !std::path::Path::new(p).is_file() {
                    return Err(ConfigError::new(name, format!("no such file: {p}")));
                }
            }
        }
        // librdkafka itself names a property it does not know or a value it refuses.
        let mut probe = ClientConfig::new();
        self.apply(&mut probe);
        if let Err(e) = probe.create_native_config() {
            return Err(match e {
                rdkafka::error::KafkaError::ClientConfig(_, description, key, _) => {
                    let name = VARIABLES
                        .iter()
                        .find(|(_, property)| *property == key)
                        .map_or_else(|| format!("LTF_KAFKA_PROPERTIES_FILE: {key}"), |(name, _)| (*name).to_owned());
                    ConfigError::new(name, description)
                }
                other => ConfigError::new("LTF_KAFKA_PROPERTIES_FILE", other.to_string()),
            });
        }
        Ok(())
    }

    /// Sets these settings on `config`: the properties file first, then each variable.
    pub fn apply(&self, config: &mut ClientConfig) {
        for (k, v) in &self.properties {
            config.set(k, v);
        }
        let values = [
            &self.security_protocol,
            &self.sasl_mechanism,
            &self.sasl_username,
            &self.sasl_password,
            &self.ssl_ca_location,
            &self.ssl_certificate_location,
            &self.ssl_key_location,
        ];
        for ((_, property), value) in VARIABLES.iter().zip(values) {
            if let Some(v) = value {
                config.set(*property, v);
            }
        }
    }
}

/// Reads `key=value` lines; blank lines and lines starting with `#` are skipped.
fn parse_properties(text: &str) -> Result<BTreeMap<String, String>, ConfigError> {
    let mut out = BTreeMap::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((k, v)) = line.split_once('=') else {
            return Err(ConfigError::new("LTF_KAFKA_PROPERTIES_FILE", format!("line {} is not key=value", n + 1)));
        };
        let key = k.trim();
        if ["bootstrap.servers", "group.id", "transactional.id"].contains(&key) {
            return Err(ConfigError::new(
                format!("LTF_KAFKA_PROPERTIES_FILE: {key}"),
                "set by ltf itself (use its flags and variables)",
            ));
        }
        out.insert(key.to_owned(), v.trim().to_owned());
    }
    Ok(out)
}

static INSTALLED: OnceLock<KafkaSecurity> = OnceLock::new();

/// Makes `security` the settings of every client this process creates from now on. The
/// first call wins; later calls return `false`.
pub fn install(security: KafkaSecurity) -> bool {
    INSTALLED.set(security).is_ok()
}

/// The installed settings (none installed: empty, librdkafka's defaults).
pub fn installed() -> &'static KafkaSecurity {
    INSTALLED.get_or_init(KafkaSecurity::default)
}

/// The configuration every Kafka client of the project starts from: `bootstrap.servers`
/// and the installed security settings.
pub fn client_config(bootstrap_servers: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
    installed().apply(&mut c);
    c.set("bootstrap.servers", bootstrap_servers);
    c
}

/// Errors librdkafka reported while a [`check`] was connecting.
#[derive(Default)]
struct Recorder(std::sync::Mutex<Vec<(rdkafka::error::KafkaError, String)>>);

impl rdkafka::ClientContext for Recorder {
    fn error(&self, error: rdkafka::error::KafkaError, reason: &str) {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push((error, reason.to_owned()));
    }

    /// librdkafka says why a connection failed in its log lines; they are kept as
    /// transport failures (the probe's lines are not logged).
    fn log(&self, level: rdkafka::config::RDKafkaLogLevel, _fac: &str, line: &str) {
        if (level as i32) <= (rdkafka::config::RDKafkaLogLevel::Info as i32) {
            let failure = rdkafka::error::KafkaError::Global(rdkafka::types::RDKafkaErrorCode::BrokerTransportFailure);
            self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push((failure, line.to_owned()));
        }
    }
}

impl rdkafka::consumer::ConsumerContext for Recorder {}

/// What an error librdkafka reported while connecting says of the settings: the variable
/// to fix and why, or `None` when a retry may succeed (a broker not reachable yet).
fn misconfigured(error: &rdkafka::error::KafkaError, reason: &str) -> Option<ConfigError> {
    use rdkafka::types::RDKafkaErrorCode as Code;
    let lower = reason.to_ascii_lowercase();
    let code = error.rdkafka_error_code()?;
    let protocol = "LTF_KAFKA_SECURITY_PROTOCOL";
    match code {
        Code::Authentication | Code::SaslAuthenticationFailed => Some(ConfigError::new(
            "LTF_KAFKA_SASL_PASSWORD",
            format!("the broker refused the SASL login (check LTF_KAFKA_SASL_USERNAME and the password): {reason}"),
        )),
        Code::SSL if lower.contains("certificate verify failed") => Some(ConfigError::new(
            "LTF_KAFKA_SSL_CA_LOCATION",
            format!("the broker's certificate is not signed by the CA given: {reason}"),
        )),
        Code::SSL if lower.contains("certificate required") || lower.contains("handshake failure") => Some(ConfigError::new(
            "LTF_KAFKA_SSL_CERTIFICATE_LOCATION",
            format!("the broker wants a client certificate it trusts (mTLS): {reason}"),
        )),
        Code::SSL if lower.contains("wrong version number") || lower.contains("packet length too long") => {
            Some(ConfigError::new(protocol, format!("the listener does not speak TLS: {reason}")))
        }
        Code::SSL => Some(ConfigError::new(protocol, format!("TLS with the broker failed: {reason}"))),
        Code::BrokerTransportFailure if lower.contains("bad certificate") || lower.contains("certificate required") => {
            Some(ConfigError::new(
                "LTF_KAFKA_SSL_CERTIFICATE_LOCATION",
                format!("the broker wants a client certificate it trusts (mTLS): {reason}"),
            ))
        }
        Code::BrokerTransportFailure if lower.contains("security.protocol") => Some(ConfigError::new(
            protocol,
            format!("the broker closed the connection at once; its listener wants another protocol: {reason}"),
        )),
        _ => None,
    }
}

/// Connects to `bootstrap_servers` with the installed settings and fails with the variable
/// to fix when the brokers refuse them: a failed SASL login, a certificate the CA does not
/// sign, a client certificate missing, or a protocol the listener does not speak. Returns
/// `Ok` once the brokers answer, and also when they cannot be reached (not a settings
/// problem: clients retry) or nothing was decided within `timeout`.
pub async fn check(bootstrap_servers: &str, timeout: std::time::Duration) -> Result<(), ConfigError> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    let config = client_config(bootstrap_servers);
    let consumer: BaseConsumer<Recorder> = config
        .create_with_context(Recorder::default())
        .map_err(|e| ConfigError::new("LTF_KAFKA_PROPERTIES_FILE", e.to_string()))?;
    tokio::task::spawn_blocking(move || {
        let deadline = std::time::Instant::now() + timeout;
        let mut closed_at_hello = 0;
        loop {
            let answered = consumer.fetch_metadata(None, std::time::Duration::from_millis(500)).is_ok();
            // Serves the client's events: the error callbacks run here.
            let _ = consumer.poll(std::time::Duration::from_millis(50));
            let seen = std::mem::take(&mut *consumer.context().0.lock().unwrap_or_else(std::sync::PoisonError::into_inner));
            if let Some(e) = seen.iter().find_map(|(error, reason)| misconfigured(error, reason)) {
                return Err(e);
            }
            // A listener that closes every connection while librdkafka asks for its API
            // versions wants TLS or SASL from a client that speaks neither (twice, so a
            // broker restarting at that moment is not taken for it).
            closed_at_hello += seen
                .iter()
                .filter(|(_, reason)| {
                    let r = reason.to_ascii_lowercase();
                    r.contains("apiversion_query") && (r.contains("disconnected") || r.contains("closed"))
                })
                .count();
            if !answered && closed_at_hello >= 2 {
                return Err(ConfigError::new(
                    "LTF_KAFKA_SECURITY_PROTOCOL",
                    "the brokers close every connection before answering: their listener wants another protocol \
                     (SSL, SASL_SSL or SASL_PLAINTEXT and its settings)",
                ));
            }
            if answered || std::time::Instant::now() >= deadline {
                return Ok(());
            }
            let refused = seen.iter().any(|(_, reason)| reason.to_ascii_lowercase().contains("connection refused"));
            if refused {
                return Ok(());
            }
        }
    })
    .await
    .unwrap_or(Ok(()))
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn from(vars: &[(&str, &str)]) -> Result<KafkaSecurity, ConfigError> {
        let vars: HashMap<String, String> = vars.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        KafkaSecurity::from_lookup(|k| vars.get(k).cloned())
    }

    #[test]
    fn nothing_set_is_plaintext_with_librdkafka_defaults() {
        let s = from(&[]).unwrap();
        assert_eq!(s, KafkaSecurity::default());
        let c = {
            let mut c = ClientConfig::new();
            s.apply(&mut c);
            c
        };
        assert_eq!(c.get("security.protocol"), None);
    }

    #[test]
    fn sasl_ssl_settings_become_librdkafka_properties() {
        let s = from(&[
            ("LTF_KAFKA_SECURITY_PROTOCOL", "sasl_ssl"),
            ("LTF_KAFKA_SASL_MECHANISM", "SCRAM-SHA-512"),
            ("LTF_KAFKA_SASL_USERNAME", "relay"),
            ("LTF_KAFKA_SASL_PASSWORD", "s3cr3t-pw"),
        ])
        .unwrap();
        let mut c = ClientConfig::new();
        s.apply(&mut c);
        assert_eq!(c.get("security.protocol"), Some("SASL_SSL"));
        assert_eq!(c.get("sasl.mechanism"), Some("SCRAM-SHA-512"));
        assert_eq!(c.get("sasl.username"), Some("relay"));
        assert_eq!(c.get("sasl.password"), Some("s3cr3t-pw"));
    }

    #[test]
    fn each_bad_setting_is_named() {
        let cases: [(&[(&str, &str)], &str); 6] = [
            (&[("LTF_KAFKA_SECURITY_PROTOCOL", "TLS")], "LTF_KAFKA_SECURITY_PROTOCOL"),
            (&[("LTF_KAFKA_SECURITY_PROTOCOL", "SASL_SSL")], "LTF_KAFKA_SASL_MECHANISM"),
            (&[("LTF_KAFKA_SECURITY_PROTOCOL", "SASL_SSL"), ("LTF_KAFKA_SASL_MECHANISM", "GSSAPI")], "LTF_KAFKA_SASL_MECHANISM"),
            (
                &[
                    ("LTF_KAFKA_SECURITY_PROTOCOL", "SASL_SSL"),
                    ("LTF_KAFKA_SASL_MECHANISM", "PLAIN"),
                    ("LTF_KAFKA_SASL_USERNAME", "u"),
                ],
                "LTF_KAFKA_SASL_PASSWORD",
            ),
            (&[("LTF_KAFKA_SASL_USERNAME", "u")], "LTF_KAFKA_SECURITY_PROTOCOL"),
            (&[("LTF_KAFKA_SSL_CA_LOCATION", "/nonexistent/ca.pem")], "LTF_KAFKA_SSL_CA_LOCATION"),
        ];
        for (vars, key) in cases {
            let e = from(vars).unwrap_err();
            assert_eq!(e.key, key, "{vars:?}: {e}");
        }
    }

    #[test]
    fn an_unknown_property_in_the_file_is_named() {
        let dir = std::env::temp_dir().join(format!("ltf-props-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("client.properties");
        std::fs::write(&file, "# tuning\nsocket.keepalive.enable=true\nno.such.property=1\n").unwrap();
        let e = from(&[("LTF_KAFKA_PROPERTIES_FILE", file.to_str().unwrap())]).unwrap_err();
        assert_eq!(e.key, "LTF_KAFKA_PROPERTIES_FILE: no.such.property", "{e}");
        std::fs::write(&file, "socket.keepalive.enable=true\n").unwrap();
        let s = from(&[("LTF_KAFKA_PROPERTIES_FILE", file.to_str().unwrap())]).unwrap();
        assert_eq!(s.properties.get("socket.keepalive.enable").map(String::as_str), Some("true"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn secrets_never_appear_in_debug_output_or_errors() {
        let dir = std::env::temp_dir().join(format!("ltf-secret-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("client.properties");
        std::fs::write(&file, "ssl.key.password=file-pw-42\n").unwrap();
        let s = from(&[
            ("LTF_KAFKA_SECURITY_PROTOCOL", "SASL_PLAINTEXT"),
            ("LTF_KAFKA_SASL_MECHANISM", "PLAIN"),
            ("LTF_KAFKA_SASL_USERNAME", "relay"),
            ("LTF_KAFKA_SASL_PASSWORD", "env-pw-17"),
            ("LTF_KAFKA_PROPERTIES_FILE", file.to_str().unwrap()),
        ])
        .unwrap();
        let shown = format!("{s:?}");
        assert!(!shown.contains("env-pw-17") && !shown.contains("file-pw-42"), "{shown}");
        assert!(shown.contains("relay"), "{shown}");
        let e = from(&[("LTF_KAFKA_SASL_PASSWORD", "env-pw-17")]).unwrap_err();
        assert!(!e.to_string().contains("env-pw-17"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
