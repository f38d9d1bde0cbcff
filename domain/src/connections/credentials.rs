use std::fmt;

use aes_gcm::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::connections::Secret;

/// Format byte of a credentials blob: AES-256-GCM, 96-bit nonce, 128-bit tag.
pub const FORMAT_V1: u8 = 1;
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;

/// Why credentials could not be encrypted or decrypted. Never holds key, plaintext or
/// ciphertext.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum CredentialsError {
    /// The blob is shorter than a format byte, a nonce and a tag.
    #[error("the credentials blob is truncated ({0} bytes)")]
    Truncated(usize),
    /// The blob's format byte is not one this build reads.
    #[error("the credentials blob has format {0}, this build reads format 1")]
    UnsupportedFormat(u8),
    /// Authentication failed: another key, a tampered blob, or a blob of another
    /// connection (the connection id is the associated data).
    #[error("the credentials do not decrypt: another key, a tampered blob or another connection's blob")]
    Decrypt,
    /// Encryption failed (the plaintext exceeds AES-GCM's limit).
    #[error("encrypting the credentials failed")]
    Encrypt,
    /// The decrypted plaintext is not a token set.
    #[error("the decrypted credentials are not a token set")]
    Format,
}

/// AES-256-GCM over credentials blobs: `format byte (1) || nonce (12) || ciphertext+tag`,
/// with a fresh random nonce from the OS per encryption and the connection id as
/// associated data. `Debug` shows no key.
#[derive(Clone)]
pub struct CredentialCipher {
    aead: Aes256Gcm,
}

impl fmt::Debug for CredentialCipher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CredentialCipher(AES-256-GCM, key redacted)")
    }
}

impl CredentialCipher {
    /// A cipher with this 256-bit key.
    pub fn new(key: &[u8; 32]) -> CredentialCipher {
        CredentialCipher { aead: Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(key)) }
    }

    /// Encrypts `plaintext` for the row `connection_id`.
    pub fn encrypt(&self, connection_id: &str, plaintext: &[u8]) -> Result<Vec<u8>, CredentialsError> {
        let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
        let sealed = self
            .aead
            .encrypt(&nonce, Payload { msg: plaintext, aad: connection_id.as_bytes() })
            .map_err(|_| CredentialsError::Encrypt)?;
        let mut blob = Vec::with_capacity(1 + NONCE_LEN + sealed.len());
        blob.push(FORMAT_V1);
        blob.extend_from_slice(&nonce);
        blob.extend_from_slice(&sealed);
        Ok(blob)
    }

    /// Decrypts a blob of the row `connection_id`; fails unless it was encrypted under this
    /// key for this connection id and is unchanged.
    pub fn decrypt(&self, connection_id: &str, blob: &[u8]) -> Result<Vec<u8>, CredentialsError> {
        if blob.len() < 1 + NONCE_LEN + TAG_LEN {
            return Err(CredentialsError::Truncated(blob.len()));
        }
        if blob[0] != FORMAT_V1 {
            return Err(CredentialsError::UnsupportedFormat(blob[0]));
        }
        let (nonce, sealed) = blob[1..].split_at(NONCE_LEN);
        self.aead
            .decrypt(Nonce::from_slice(nonce), Payload { msg: sealed, aad: connection_id.as_bytes() })
            .map_err(|_| CredentialsError::Decrypt)
    }

    /// Encrypts a token set for the row `connection_id`.
    pub fn seal(&self, connection_id: &str, tokens: &TokenSet) -> Result<Vec<u8>, CredentialsError> {
        let stored = Stored {
            access_token: tokens.access_token.expose().to_owned(),
            refresh_token: tokens.refresh_token.as_ref().map(|t| t.expose().to_owned()),
            token_type: tokens.token_type.clone(),
            expires_at: tokens.expires_at,
            scope: tokens.scope.clone(),
        };
        let plaintext = serde_json::to_vec(&stored).map_err(|_| CredentialsError::Encrypt)?;
        self.encrypt(connection_id, &plaintext)
    }

    /// Decrypts the token set of the row `connection_id`.
    pub fn open(&self, connection_id: &str, blob: &[u8]) -> Result<TokenSet, CredentialsError> {
        let plaintext = self.decrypt(connection_id, blob)?;
        let stored: Stored = serde_json::from_slice(&plaintext).map_err(|_| CredentialsError::Format)?;
        Ok(TokenSet {
            access_token: Secret::new(stored.access_token),
            refresh_token: stored.refresh_token.map(Secret::new),
            token_type: stored.token_type,
            expires_at: stored.expires_at,
            scope: stored.scope,
        })
    }
}

/// What a token endpoint granted: the plaintext of a stored credentials blob. `Debug`
/// shows no token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenSet {
    /// The access token.
    pub access_token: Secret,
    /// The refresh token, when the service issued one (on a refresh that issued none, the
    /// one refreshed with is kept, RFC 6749 §6).
    pub refresh_token: Option<Secret>,
    /// The token type (`bearer`, …) as the service named it.
    pub token_type: String,
    /// When the access token expires, from the response's `expires_in`; `None` when the
    /// service did not say.
    pub expires_at: Option<DateTime<Utc>>,
    /// The granted scope, space-separated, when the service said.
    pub scope: Option<String>,
}

/// The serialized form inside the blob. Private: tokens are serialized only to be encrypted.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Stored {
    access_token: String,
    refresh_token: Option<String>,
    token_type: String,
    expires_at: Option<DateTime<Utc>>,
    scope: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cipher(byte: u8) -> CredentialCipher {
        CredentialCipher::new(&[byte; 32])
    }

    fn tokens() -> TokenSet {
        TokenSet {
            access_token: Secret::new("gho_access_123"),
            refresh_token: Some(Secret::new("ghr_refresh_456")),
            token_type: "bearer".into(),
            expires_at: DateTime::from_timestamp(1_900_000_000, 0),
            scope: Some("repo user".into()),
        }
    }

    #[test]
    fn round_trip_with_a_fresh_nonce_each_time() {
        let c = cipher(7);
        let a = c.seal("conn_1", &tokens()).unwrap();
        let b = c.seal("conn_1", &tokens()).unwrap();
        assert_ne!(a, b, "a fresh nonce per write");
        assert_eq!(a[0], FORMAT_V1);
        assert_ne!(a[1..13], b[1..13]);
        assert!(!a.windows(14).any(|w| w == b"gho_access_123"), "the token is not in the blob");
        assert_eq!(c.open("conn_1", &a).unwrap(), tokens());
        assert_eq!(c.decrypt("x", &c.encrypt("x", b"").unwrap()).unwrap(), b"");
    }

    #[test]
    fn a_wrong_key_fails() {
        let blob = cipher(7).seal("conn_1", &tokens()).unwrap();
        assert_eq!(cipher(8).open("conn_1", &blob), Err(CredentialsError::Decrypt));
    }

    #[test]
    fn a_tampered_blob_fails() {
        let c = cipher(7);
        let blob = c.seal("conn_1", &tokens()).unwrap();
        for i in [1, 13, blob.len() - 1] {
            let mut bad = blob.clone();
            bad[i] ^= 0x01;
            assert_eq!(c.open("conn_1", &bad), Err(CredentialsError::Decrypt), "byte {i}");
        }
        let mut bad = blob.clone();
        bad[0] = 2;
        assert_eq!(c.open("conn_1", &bad), Err(CredentialsError::UnsupportedFormat(2)));
        assert_eq!(c.open("conn_1", &blob[..20]), Err(CredentialsError::Truncated(20)));
    }

    #[test]
    fn another_connections_id_fails() {
        let c = cipher(7);
        let blob = c.seal("conn_1", &tokens()).unwrap();
        assert_eq!(c.open("conn_2", &blob), Err(CredentialsError::Decrypt));
    }

    #[test]
    fn debug_shows_no_token_and_no_key() {
        let debug = format!("{:?} {:?}", tokens(), cipher(0x41));
        assert!(!debug.contains("gho_access_123") && !debug.contains("ghr_refresh_456"), "{debug}");
        assert!(!debug.contains("AAAA"), "{debug}");
    }
}
