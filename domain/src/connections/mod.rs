//! Connections to external services: their configuration, the OAuth2 token exchange and
//! the encryption of the credentials stored in `ltf_connections`.
//!
//! Guarantees:
//! * secrets (client secrets, the encryption key, authorization codes, tokens) are held in
//!   [`Secret`], whose `Debug` is redacted and which has no `Display` and no `Serialize`:
//!   they reach no log line, error message, `Debug` output or response;
//! * credentials are stored only encrypted with AES-256-GCM under the configured key, a
//!   fresh random 96-bit nonce per write, the connection id as associated data (a blob
//!   moved to another row does not decrypt); see [`CredentialCipher`];
//! * the token exchange is a form-encoded POST to the service's token endpoint (RFC 6749
//!   §4.1.3, §4.4, §6) with the client authenticated by its id and secret, bounded by the
//!   service's timeout, following no redirects.
//!
//! [`AuthenticateConnection`](crate::usecases::AuthenticateConnection) is the use case.

pub(crate) mod config;
mod credentials;
pub(crate) mod oauth;
mod secret;

pub use config::{ClientAuth, ConfigError, ConnectionsConfig, OAuthServiceConfig, ENCRYPTION_KEY_ENV};
pub use credentials::{CredentialCipher, CredentialsError, TokenSet, FORMAT_V1};
pub use oauth::OAuthGrant;
pub use secret::Secret;
