//! The OAuth2 token exchange: the `oauth2` crate builds the requests and reads the
//! responses; [`send`] carries them over the workspace's reqwest client.

use std::borrow::Cow;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chrono::{SubsecRound, Utc};
use oauth2::basic::{BasicClient, BasicErrorResponseType, BasicTokenResponse};
use oauth2::{
    AsyncHttpClient, AuthType, AuthorizationCode, ClientId, ClientSecret, EndpointNotSet, EndpointSet, HttpRequest, HttpResponse,
    PkceCodeVerifier, RedirectUrl, RefreshToken, RequestTokenError, Scope, TokenResponse,
};
use serde::Deserialize;

use crate::connections::config::{ClientAuth, ResolvedService};
use crate::connections::{Secret, TokenSet};

/// What the user submits to authenticate a connection: an OAuth2 grant (RFC 6749).
/// In JSON, tagged by `grantType`, other keys camelCase:
/// `{"grantType": "authorization_code", "code": "…", "redirectUri": "https://…"}`.
/// `Debug` shows no code and no token.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "grantType", rename_all = "snake_case", rename_all_fields = "camelCase", deny_unknown_fields)]
pub enum OAuthGrant {
    /// An authorization code from the service's redirect (§4.1.3).
    AuthorizationCode {
        /// The code; single use.
        code: Secret,
        /// The `redirect_uri` of the authorization request, when it had one (then the
        /// service requires the same value here).
        #[serde(default)]
        redirect_uri: Option<String>,
        /// The PKCE code verifier (RFC 7636), when the authorization request had a challenge.
        #[serde(default)]
        code_verifier: Option<Secret>,
    },
    /// A refresh token (§6). When the service issues no new refresh token, this one is kept.
    RefreshToken {
        /// The refresh token.
        refresh_token: Secret,
        /// Narrower scopes to ask for; empty for the originally granted scope.
        #[serde(default)]
        scopes: Vec<String>,
    },
    /// The deployment's own client credentials (§4.4), for services without user consent.
    ClientCredentials {
        /// Scopes to ask for; empty for the service's default.
        #[serde(default)]
        scopes: Vec<String>,
    },
}

/// Why an exchange failed. Holds no credential, token, URL or response body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ExchangeError {
    /// An RFC 6749 §5.2 error response, or a 400/401 without a readable one.
    Refused { status: u16, error: Option<String> },
    /// Timeout, connection failure, 5xx or 429.
    Unavailable { reason: String },
    /// Neither a token response nor an error response.
    InvalidResponse { status: u16 },
    /// The grant cannot be sent as it is.
    Malformed(&'static str),
}

/// Largest token response read; a larger one is an invalid response.
const MAX_RESPONSE_BYTES: usize = 64 * 1024;

type ServiceClient = BasicClient<EndpointNotSet, EndpointNotSet, EndpointNotSet, EndpointNotSet, EndpointSet>;

/// One configured service, ready to exchange grants.
#[derive(Debug, Clone)]
pub(crate) struct TokenEndpoint {
    client: ServiceClient,
    timeout: Duration,
}

impl TokenEndpoint {
    pub(crate) fn new(service: &ResolvedService) -> TokenEndpoint {
        let auth = match service.client_auth {
            ClientAuth::Basic => AuthType::BasicAuth,
            ClientAuth::RequestBody => AuthType::RequestBody,
        };
        let client = BasicClient::new(ClientId::new(service.client_id.clone()))
            .set_client_secret(ClientSecret::new(service.client_secret.expose().to_owned()))
            .set_token_uri(service.token_url.clone())
            .set_auth_type(auth);
        TokenEndpoint { client, timeout: service.timeout }
    }

    /// Exchanges `grant` for tokens over `http`.
    pub(crate) async fn exchange(&self, http: &reqwest::Client, grant: &OAuthGrant) -> Result<TokenSet, ExchangeError> {
        let status = Arc::new(AtomicU16::new(0));
        let transport = Sender { http: http.clone(), timeout: self.timeout, status: Arc::clone(&status) };
        let (result, kept_refresh) = match grant {
            OAuthGrant::AuthorizationCode { code, redirect_uri, code_verifier } => {
                let mut request = self.client.exchange_code(AuthorizationCode::new(code.expose().to_owned()));
                if let Some(uri) = redirect_uri {
                    let url = RedirectUrl::new(uri.clone()).map_err(|_| ExchangeError::Malformed("redirectUri is not a URL"))?;
                    request = request.set_redirect_uri(Cow::Owned(url));
                }
                if let Some(verifier) = code_verifier {
                    request = request.set_pkce_verifier(PkceCodeVerifier::new(verifier.expose().to_owned()));
                }
                (request.request_async(&transport).await, None)
            }
            OAuthGrant::RefreshToken { refresh_token, scopes } => {
                let token = RefreshToken::new(refresh_token.expose().to_owned());
                let request = self.client.exchange_refresh_token(&token).add_scopes(scopes.iter().cloned().map(Scope::new));
                (request.request_async(&transport).await, Some(refresh_token.clone()))
            }
            OAuthGrant::ClientCredentials { scopes } => {
                let request = self.client.exchange_client_credentials().add_scopes(scopes.iter().cloned().map(Scope::new));
                (request.request_async(&transport).await, None)
            }
        };
        let status = status.load(Ordering::Relaxed);
        match result {
            Ok(response) => Ok(token_set(&response, kept_refresh)),
            Err(RequestTokenError::ServerResponse(e)) => {
                Err(ExchangeError::Refused { status, error: Some(error_code(e.error())) })
            }
            Err(RequestTokenError::Request(Transport::TooLarge)) => Err(ExchangeError::InvalidResponse { status }),
            Err(RequestTokenError::Request(t)) => Err(ExchangeError::Unavailable { reason: t.reason() }),
            Err(RequestTokenError::Parse(..) | RequestTokenError::Other(_)) => match status {
                400 | 401 => Err(ExchangeError::Refused { status, error: None }),
                _ => Err(ExchangeError::InvalidResponse { status }),
            },
        }
    }
}

/// The granted tokens; `kept_refresh` stands in for a refresh token the response lacks.
fn token_set(response: &BasicTokenResponse, kept_refresh: Option<Secret>) -> TokenSet {
    let expires_at = response
        .expires_in()
        .and_then(|d| chrono::Duration::from_std(d).ok())
        // Whole seconds, like `expires_in`: the blob and the column then hold the same value.
        .and_then(|d| Utc::now().trunc_subsecs(0).checked_add_signed(d));
    TokenSet {
        access_token: Secret::new(response.access_token().secret().clone()),
        refresh_token: response.refresh_token().map(|t| Secret::new(t.secret().clone())).or(kept_refresh),
        token_type: response.token_type().as_ref().to_owned(),
        expires_at,
        scope: response.scopes().map(|s| s.iter().map(|x| x.as_str()).collect::<Vec<_>>().join(" ")),
    }
}

/// The `error` code to report: RFC 6749's codes and short lowercase extension codes
/// (`access_denied`, …) as they are; anything else (which might echo what was sent) as
/// `unrecognised`.
fn error_code(error: &BasicErrorResponseType) -> String {
    let code = error.as_ref();
    let plain = !code.is_empty() && code.len() <= 40 && code.bytes().all(|b| b.is_ascii_lowercase() || b == b'_');
    if plain {
        code.to_owned()
    } else {
        "unrecognised".to_owned()
    }
}

/// Why the HTTP exchange failed; says nothing about what was sent.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Transport {
    #[error("timed out")]
    Timeout,
    #[error("could not connect")]
    Connect,
    #[error("HTTP {0}")]
    Status(u16),
    #[error("the response is too large")]
    TooLarge,
    #[error("the request failed")]
    Other,
}

impl Transport {
    fn reason(&self) -> String {
        self.to_string()
    }

    fn of(e: &reqwest::Error) -> Transport {
        if e.is_timeout() {
            Transport::Timeout
        } else if e.is_connect() {
            Transport::Connect
        } else {
            Transport::Other
        }
    }
}

/// `oauth2`'s HTTP client: [`send`] on the workspace's reqwest client. It owns what it
/// uses and returns a boxed `'static` future: with borrowed fields, rustc cannot prove the
/// use case's future `Send` through `oauth2`'s higher-ranked `AsyncHttpClient<'c>`.
struct Sender {
    http: reqwest::Client,
    timeout: Duration,
    status: Arc<AtomicU16>,
}

impl<'c> AsyncHttpClient<'c> for Sender {
    type Error = Transport;
    type Future = Pin<Box<dyn Future<Output = Result<HttpResponse, Transport>> + Send + 'static>>;

    fn call(&'c self, request: HttpRequest) -> Self::Future {
        let (http, timeout, status) = (self.http.clone(), self.timeout, Arc::clone(&self.status));
        Box::pin(async move { send(&http, timeout, &status, request).await })
    }
}

/// Sends one request built by `oauth2` with reqwest, bounded by `timeout` (connecting and
/// reading the body included), and records the response status in `status`. A 5xx or 429
/// is a [`Transport::Status`] error, so it is told apart from a refusal.
async fn send(
    http: &reqwest::Client,
    timeout: Duration,
    status: &AtomicU16,
    request: HttpRequest,
) -> Result<HttpResponse, Transport> {
    let mut request = reqwest::Request::try_from(request).map_err(|_| Transport::Other)?;
    *request.timeout_mut() = Some(timeout);
    let mut response = http.execute(request).await.map_err(|e| Transport::of(&e))?;
    let code = response.status();
    status.store(code.as_u16(), Ordering::Relaxed);
    if code.is_server_error() || code == reqwest::StatusCode::TOO_MANY_REQUESTS {
        return Err(Transport::Status(code.as_u16()));
    }
    let mut builder = oauth2::http::Response::builder().status(code);
    for (name, value) in response.headers() {
        builder = builder.header(name, value);
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| Transport::of(&e))? {
        if body.len() + chunk.len() > MAX_RESPONSE_BYTES {
            return Err(Transport::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    builder.body(body).map_err(|_| Transport::Other)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grants_read_from_camel_case_json() {
        let g: OAuthGrant =
            serde_json::from_str(r#"{"grantType": "authorization_code", "code": "c-1", "redirectUri": "https://app.test/cb"}"#)
                .unwrap();
        let OAuthGrant::AuthorizationCode { code, redirect_uri, code_verifier } = &g else { panic!("{g:?}") };
        assert_eq!((code.expose(), redirect_uri.as_deref(), code_verifier), ("c-1", Some("https://app.test/cb"), &None));
        assert!(!format!("{g:?}").contains("c-1"));
        let g: OAuthGrant = serde_json::from_str(r#"{"grantType": "refresh_token", "refreshToken": "r"}"#).unwrap();
        assert!(matches!(g, OAuthGrant::RefreshToken { ref scopes, .. } if scopes.is_empty()));
        let g: OAuthGrant = serde_json::from_str(r#"{"grantType": "client_credentials", "scopes": ["a"]}"#).unwrap();
        assert_eq!(g, OAuthGrant::ClientCredentials { scopes: vec!["a".into()] });
        assert!(serde_json::from_str::<OAuthGrant>(r#"{"grantType": "password", "username": "u"}"#).is_err());
        assert!(serde_json::from_str::<OAuthGrant>(r#"{"grantType": "refresh_token", "refresh_token": "r"}"#).is_err());
    }

    #[test]
    fn only_plain_error_codes_are_reported() {
        assert_eq!(error_code(&BasicErrorResponseType::InvalidGrant), "invalid_grant");
        let ext = |s: &str| error_code(&serde_json::from_value(serde_json::json!(s)).unwrap());
        assert_eq!(ext("access_denied"), "access_denied");
        assert_eq!(ext("code gho_123 is bad"), "unrecognised");
        assert_eq!(ext(""), "unrecognised");
    }
}
