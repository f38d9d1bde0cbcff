//! API-key authentication.
//!
//! Guarantees:
//! * a key is accepted from `Authorization: Bearer <key>` or `X-Api-Key: <key>`; a request
//!   with neither, with an unknown key, or with both headers naming different keys is
//!   refused with 401 before its body is read, so nothing is written;
//! * keys are kept only as SHA-256 digests and compared in constant time (digest against
//!   digest, so neither the content nor the length of a configured key leaks through
//!   timing); every configured key is compared, whichever matches;
//! * the matched key's principal becomes the request's [`Principal`] and so
//!   `ChangeContext::user_id`; keys are never logged.

use std::fmt;

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::api::config::ApiKey;
use crate::api::context::Principal;
use crate::api::error::ApiError;
use crate::api::ApiState;

/// The API-key header.
pub const API_KEY_HEADER: &str = "x-api-key";

/// The configured keys, as digests, with their principals.
#[derive(Clone)]
pub struct ApiKeys {
    keys: Vec<([u8; 32], String)>,
}

impl fmt::Debug for ApiKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiKeys").field("principals", &self.keys.iter().map(|k| &k.1).collect::<Vec<_>>()).finish()
    }
}

fn digest(key: &[u8]) -> [u8; 32] {
    Sha256::digest(key).into()
}

impl ApiKeys {
    /// The keys of the configuration.
    pub fn new(keys: &[ApiKey]) -> ApiKeys {
        ApiKeys { keys: keys.iter().map(|k| (digest(k.key.as_bytes()), k.principal.clone())).collect() }
    }

    /// The principal of `presented`, if it is a configured key.
    pub fn authenticate(&self, presented: &str) -> Option<&str> {
        let d = digest(presented.as_bytes());
        let mut found = None;
        for (key, principal) in &self.keys {
            if bool::from(key.ct_eq(&d)) {
                found = Some(principal.as_str());
            }
        }
        found
    }
}

/// The key a request presents: `Ok(None)` when it presents none.
fn presented_key(headers: &HeaderMap) -> Result<Option<&str>, ApiError> {
    let bearer = match headers.get(header::AUTHORIZATION) {
        None => None,
        Some(v) => {
            let v = v.to_str().map_err(|_| ApiError::unauthorized("the Authorization header is not ASCII"))?;
            match v.split_once(' ') {
                Some((scheme, key)) if scheme.eq_ignore_ascii_case("bearer") && !key.trim().is_empty() => Some(key.trim()),
                _ => return Err(ApiError::unauthorized("the Authorization header must be `Bearer <API key>`")),
            }
        }
    };
    let header_key = match headers.get(API_KEY_HEADER) {
        None => None,
        Some(v) => Some(v.to_str().map_err(|_| ApiError::unauthorized("the X-Api-Key header is not ASCII"))?.trim()),
    };
    match (bearer, header_key) {
        (Some(a), Some(b)) if a != b => Err(ApiError::unauthorized("Authorization and X-Api-Key name different keys")),
        (a, b) => Ok(a.or(b)),
    }
}

/// Middleware: authenticates the request or answers 401.
pub async fn require_api_key(State(state): State<ApiState>, mut req: Request, next: Next) -> Response {
    let principal = match presented_key(req.headers()) {
        Ok(Some(key)) => match state.keys.authenticate(key) {
            Some(p) => p.to_owned(),
            None => return ApiError::unauthorized("unknown API key").into_response(),
        },
        Ok(None) => {
            return ApiError::unauthorized("an API key is required: `Authorization: Bearer <key>` or `X-Api-Key: <key>`")
                .into_response()
        }
        Err(e) => return e.into_response(),
    };
    req.extensions_mut().insert(Principal(principal));
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn keys() -> ApiKeys {
        ApiKeys::new(&[ApiKey::new("svc", "0123456789abcdef"), ApiKey::new("ops", "fedcba9876543210")])
    }

    #[test]
    fn keys_map_to_their_principal() {
        let k = keys();
        assert_eq!(k.authenticate("0123456789abcdef"), Some("svc"));
        assert_eq!(k.authenticate("fedcba9876543210"), Some("ops"));
        assert_eq!(k.authenticate("0123456789abcde"), None);
        assert_eq!(k.authenticate(""), None);
        assert!(!format!("{k:?}").contains("0123"));
    }

    #[test]
    fn either_header_carries_the_key() {
        let mut h = HeaderMap::new();
        assert_eq!(presented_key(&h).unwrap(), None);
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("bearer abc"));
        assert_eq!(presented_key(&h).unwrap(), Some("abc"));
        h.insert(API_KEY_HEADER, HeaderValue::from_static("abc"));
        assert_eq!(presented_key(&h).unwrap(), Some("abc"));
        h.insert(API_KEY_HEADER, HeaderValue::from_static("other"));
        assert!(presented_key(&h).is_err());
        h.remove(header::AUTHORIZATION);
        assert_eq!(presented_key(&h).unwrap(), Some("other"));
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic abc"));
        assert!(presented_key(&h).is_err());
    }
}
