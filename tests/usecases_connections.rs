//! AuthenticateConnection against a real OAuth2 token endpoint (an axum server on
//! 127.0.0.1 in the test process), a real PostgreSQL (one fresh database per test) and the
//! real schema registry: granted tokens are stored only encrypted, with one
//! ConnectionEstablished; a refused or failed exchange writes nothing; no secret reaches
//! an error.

use ltf_producers::api::error::status_of;
use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Form, Json, Router};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use chrono::SubsecRound;
use ltf_domain::connections::{ClientAuth, Secret};
use ltf_domain::usecases::{OAuthGrant, ServiceConnection};
use ltf_domain::{
    AuthenticateConnection, AuthenticateConnectionInput, ChangeContext, ConnectionsConfig, OAuthServiceConfig, Outcome, UseCase,
    UseCaseError,
};
use ltf_schemas::{AggregateType, EventCodec, EventPayload, TopicNames};
use ltf_tests::{count_rows as count, fresh_database, outbox_rows as outbox, registry_url, unique_prefix, TestDb};
use serde_json::json;
use sqlx::PgPool;

const CLIENT_ID: &str = "client-1";
const CLIENT_SECRET: &str = "s3cret-client-value";
const GOOD_CODE: &str = "good-code-7f3a";
const BAD_CODE: &str = "spent-code-9d1c";
const REDIRECT: &str = "https://app.test/oauth/callback";
const ACCESS_TOKEN: &str = "at-first-4b8e2c";
const REFRESH_TOKEN: &str = "rt-first-a71f09";
const REFRESHED_ACCESS_TOKEN: &str = "at-refreshed-55d0";

/// The token endpoint: what it was asked, for the assertions.
#[derive(Default)]
struct Endpoint {
    requests: AtomicUsize,
}

fn error(status: StatusCode, code: &str, description: &str) -> Response {
    (status, Json(json!({"error": code, "error_description": description}))).into_response()
}

/// The client's credentials as sent by Basic auth (`/token`) or in the body (`/token-post`).
fn client_ok(headers: &HeaderMap, form: &HashMap<String, String>, basic: bool) -> bool {
    if basic {
        let expected = format!("Basic {}", STANDARD.encode(format!("{CLIENT_ID}:{CLIENT_SECRET}")));
        headers.get("authorization").and_then(|v| v.to_str().ok()) == Some(expected.as_str())
            && !form.contains_key("client_secret")
    } else {
        form.get("client_id").map(String::as_str) == Some(CLIENT_ID)
            && form.get("client_secret").map(String::as_str) == Some(CLIENT_SECRET)
            && headers.get("authorization").is_none()
    }
}

/// RFC 6749 §4.1.3 / §6 / §4.4 token responses, or §5.2 errors (which, like some real
/// services, echo what they were sent in `error_description`).
fn token_response(endpoint: &Endpoint, headers: &HeaderMap, form: &HashMap<String, String>, basic: bool) -> Response {
    endpoint.requests.fetch_add(1, Ordering::SeqCst);
    let content_type = headers.get("content-type").and_then(|v| v.to_str().ok());
    let form_encoded = content_type == Some("application/x-www-form-urlencoded");
    if !form_encoded {
        return error(StatusCode::BAD_REQUEST, "invalid_request", "not form-encoded");
    }
    if !client_ok(headers, form, basic) {
        return error(StatusCode::UNAUTHORIZED, "invalid_client", &format!("bad client {form:?}"));
    }
    let get = |k: &str| form.get(k).map(String::as_str);
    match get("grant_type") {
        Some("authorization_code") if get("code") == Some(GOOD_CODE) && get("redirect_uri") == Some(REDIRECT) => {
            let token = json!({"access_token": ACCESS_TOKEN, "token_type": "bearer", "expires_in": 3600,
                               "refresh_token": REFRESH_TOKEN, "scope": "repo user"});
            Json(token).into_response()
        }
        Some("authorization_code") => {
            error(StatusCode::BAD_REQUEST, "invalid_grant", &format!("code {} expired", get("code").unwrap_or("")))
        }
        Some("refresh_token") if get("refresh_token") == Some(REFRESH_TOKEN) => {
            Json(json!({"access_token": REFRESHED_ACCESS_TOKEN, "token_type": "bearer", "expires_in": 7200})).into_response()
        }
        Some("refresh_token") => error(StatusCode::BAD_REQUEST, "invalid_grant", "refresh token revoked"),
        Some("client_credentials") => Json(json!({"access_token": "at-machine", "token_type": "bearer"})).into_response(),
        _ => error(StatusCode::BAD_REQUEST, "unsupported_grant_type", ""),
    }
}

/// Starts the token endpoint on 127.0.0.1:0; returns its address.
async fn start_endpoint(endpoint: Arc<Endpoint>) -> Result<SocketAddr> {
    type Ctx = State<Arc<Endpoint>>;
    type Params = HashMap<String, String>;
    let app = Router::new()
        .route(
            "/token",
            post(|State(e): Ctx, h: HeaderMap, Form(f): Form<Params>| async move { token_response(&e, &h, &f, true) }),
        )
        .route(
            "/token-post",
            post(|State(e): Ctx, h: HeaderMap, Form(f): Form<Params>| async move { token_response(&e, &h, &f, false) }),
        )
        .route(
            "/broken",
            post(|State(e): Ctx| async move {
                e.requests.fetch_add(1, Ordering::SeqCst);
                (StatusCode::INTERNAL_SERVER_ERROR, "upstream exploded").into_response()
            }),
        )
        .route(
            "/slow",
            post(|State(e): Ctx| async move {
                e.requests.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_secs(5)).await;
                Json(json!({"access_token": "late", "token_type": "bearer"})).into_response()
            }),
        )
        .with_state(endpoint);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.context("binding the token endpoint")?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(addr)
}

/// A port nothing listens on: bound, then closed.
async fn closed_port() -> Result<u16> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    Ok(listener.local_addr()?.port())
}

struct Setup {
    db: TestDb,
    codec: EventCodec,
    config: ConnectionsConfig,
    usecase: AuthenticateConnection,
    endpoint: Arc<Endpoint>,
}

impl Setup {
    /// Runs the use case as `user_1`.
    async fn run(&self, input: AuthenticateConnectionInput) -> Result<Outcome<ServiceConnection>, UseCaseError> {
        self.usecase.run(&self.db.pool, &self.codec, &ctx(), input).await
    }
}

async fn setup(test: &str) -> Result<Setup> {
    let endpoint = Arc::new(Endpoint::default());
    let addr = start_endpoint(Arc::clone(&endpoint)).await?;
    let service = |path: &str| OAuthServiceConfig::new(format!("http://{addr}{path}"), CLIENT_ID, CLIENT_SECRET);
    let closed = closed_port().await?;
    let config = ConnectionsConfig {
        services: BTreeMap::from([
            ("acme".to_owned(), service("/token")),
            ("acme_post".to_owned(), OAuthServiceConfig { client_auth: ClientAuth::RequestBody, ..service("/token-post") }),
            ("acme_wrong_secret".to_owned(), OAuthServiceConfig::new(format!("http://{addr}/token"), CLIENT_ID, "nope")),
            ("broken".to_owned(), service("/broken")),
            ("slow".to_owned(), OAuthServiceConfig { timeout_ms: 300, ..service("/slow") }),
            ("closed".to_owned(), OAuthServiceConfig::new(format!("http://127.0.0.1:{closed}/token"), CLIENT_ID, CLIENT_SECRET)),
        ]),
        encryption_key: Some(Secret::new(STANDARD.encode([7u8; 32]))),
    };
    config.validate()?;
    let usecase = AuthenticateConnection::new(&config)?;
    let db = fresh_database().await?;
    let codec = EventCodec::new(&registry_url(), TopicNames::new(unique_prefix(test)))?;
    Ok(Setup { db, codec, config, usecase, endpoint })
}

fn code(code: &str) -> OAuthGrant {
    OAuthGrant::AuthorizationCode { code: Secret::new(code), redirect_uri: Some(REDIRECT.into()), code_verifier: None }
}

fn input(id: Option<&str>, service: &str, user: &str, grant: OAuthGrant) -> AuthenticateConnectionInput {
    AuthenticateConnectionInput { connection_id: id.map(str::to_owned), service: service.into(), user_id: user.into(), grant }
}

fn ctx() -> ChangeContext {
    ChangeContext::user("user_1")
}

async fn stored_credentials(pool: &PgPool, id: &str) -> Result<Vec<u8>> {
    let blob: Option<Vec<u8>> =
        sqlx::query_scalar("SELECT credentials FROM ltf_connections WHERE id = $1").bind(id).fetch_one(pool).await?;
    blob.context("no credentials stored")
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle.as_bytes())
}

async fn assert_nothing_written(pool: &PgPool) -> Result<()> {
    assert_eq!(count(pool, "ltf_connections").await?, 0, "connections");
    assert_eq!(count(pool, "ltf_outbox").await?, 0, "outbox rows");
    assert_eq!(count(pool, "ltf_aggregate_sequences").await?, 0, "sequences");
    Ok(())
}

/// No secret of the test in an error's Display or Debug.
fn assert_no_secret(err: &UseCaseError) {
    let text = format!("{err} {err:?}");
    for secret in [CLIENT_SECRET, GOOD_CODE, BAD_CODE, ACCESS_TOKEN, REFRESH_TOKEN] {
        assert!(!text.contains(secret), "`{secret}` in {text}");
    }
}

#[tokio::test]
async fn an_authorization_code_is_exchanged_and_the_tokens_stored_encrypted_with_one_connection_established() -> Result<()> {
    let s = setup("uc-conn-code").await?;
    let started = chrono::Utc::now();
    let out = s.run(input(None, "acme", "user_1", code(GOOD_CODE))).await?;
    let c = &out.value;
    assert!(c.id.starts_with("conn_"), "{}", c.id);
    assert_eq!((c.service.as_str(), c.user_id.as_str(), c.authenticated), ("acme", "user_1", true));
    assert_eq!(c.scope.as_deref(), Some("repo user"));
    let expires = c.token_expires_at.context("no expiry")?;
    let hour = chrono::Duration::seconds(3600);
    assert!(expires >= started.trunc_subsecs(0) + hour && expires <= chrono::Utc::now() + hour, "{expires}");
    assert_eq!(s.endpoint.requests.load(Ordering::SeqCst), 1);
    let output = serde_json::to_string(&out.value)?;
    assert!(!output.contains(ACCESS_TOKEN) && !output.contains(REFRESH_TOKEN), "{output}");

    let blob = stored_credentials(&s.db.pool, &c.id).await?;
    assert_eq!(blob[0], 1, "format byte");
    for token in [ACCESS_TOKEN, REFRESH_TOKEN, "repo user", "bearer"] {
        assert!(!contains(&blob, token), "`{token}` stored in clear");
    }
    let cipher = s.config.cipher()?;
    let tokens = cipher.open(&c.id, &blob)?;
    assert_eq!(tokens.access_token.expose(), ACCESS_TOKEN);
    assert_eq!(tokens.refresh_token.as_ref().map(Secret::expose), Some(REFRESH_TOKEN));
    assert_eq!((tokens.token_type.as_str(), tokens.expires_at), ("bearer", c.token_expires_at));
    assert!(cipher.open("conn_other", &blob).is_err(), "bound to its connection id");

    let rows = outbox(&s.db.pool).await?;
    assert_eq!(rows.len(), 1);
    let row = &rows[0];
    assert_eq!(row.key, c.id, "key = connection id");
    assert_eq!((row.aggregate_type.as_str(), row.aggregate_id.as_str()), ("connection", c.id.as_str()));
    assert_eq!((row.aggregate_sequence, row.event_type.as_str()), (1, "connection-established"));
    assert_eq!(row.topic, s.codec.topics().events(AggregateType::Connection));
    assert!(!contains(&row.value, ACCESS_TOKEN));
    let reader = EventCodec::new(&registry_url(), s.codec.topics().clone())?;
    let decoded = reader.decode(&row.value).await?;
    assert_eq!(decoded, out.events[0]);
    let EventPayload::ConnectionEstablished(p) = &decoded.payload else { bail!("not ConnectionEstablished: {decoded:?}") };
    assert_eq!((p.connection_id.as_str(), p.service.as_str(), p.user_id.as_str()), (c.id.as_str(), "acme", "user_1"));
    assert_eq!(row.header("event-type"), Some("connection-established"));
    assert_eq!(row.header("ordering-key"), Some(c.id.as_str()));
    assert_eq!(row.header("event-id"), Some(row.event_id.to_string().as_str()));

    // client_secret_post, a chosen id, and `execute` on a plain connection.
    let mut conn = s.db.pool.acquire().await?;
    let post = input(Some("conn_post"), "acme_post", "user_2", code(GOOD_CODE));
    let out = s.usecase.execute(&mut conn, &s.codec, &ctx(), post).await?;
    drop(conn);
    assert_eq!((out.value.id.as_str(), out.events.len()), ("conn_post", 1));
    let tokens = cipher.open("conn_post", &stored_credentials(&s.db.pool, "conn_post").await?)?;
    assert_eq!(tokens.access_token.expose(), ACCESS_TOKEN);

    // client_credentials: no refresh token, no expiry given.
    let machine = OAuthGrant::ClientCredentials { scopes: vec!["read".into()] };
    let out = s.run(input(Some("conn_machine"), "acme", "svc_bot", machine)).await?;
    assert_eq!((out.value.token_expires_at, out.events.len()), (None, 1));
    let tokens = cipher.open("conn_machine", &stored_credentials(&s.db.pool, "conn_machine").await?)?;
    assert_eq!((tokens.access_token.expose(), tokens.refresh_token), ("at-machine", None));
    assert_eq!(outbox(&s.db.pool).await?.len(), 3);
    s.db.drop_database().await
}

#[tokio::test]
async fn re_authenticating_an_established_connection_replaces_its_credentials_and_emits_nothing() -> Result<()> {
    let s = setup("uc-conn-reauth").await?;
    let first = s.run(input(Some("conn_1"), "acme", "user_1", code(GOOD_CODE))).await?;
    let refresh = OAuthGrant::RefreshToken { refresh_token: Secret::new(REFRESH_TOKEN), scopes: vec![] };
    let again = s.run(input(Some("conn_1"), "acme", "user_1", refresh)).await?;
    assert!(again.events.is_empty(), "already established");
    assert_eq!(again.value.created_at, first.value.created_at);
    assert!(again.value.updated_at >= first.value.updated_at);
    assert_eq!(again.value.scope, None, "the refresh response named no scope");
    let tokens = s.config.cipher()?.open("conn_1", &stored_credentials(&s.db.pool, "conn_1").await?)?;
    assert_eq!(tokens.access_token.expose(), REFRESHED_ACCESS_TOKEN);
    assert_eq!(tokens.refresh_token.as_ref().map(Secret::expose), Some(REFRESH_TOKEN), "kept: no new one was issued");
    assert_eq!((count(&s.db.pool, "ltf_connections").await?, outbox(&s.db.pool).await?.len()), (1, 1));

    // The id of another user's (or service's) connection: refused before any exchange.
    let asked = s.endpoint.requests.load(Ordering::SeqCst);
    let err = s.run(input(Some("conn_1"), "acme", "user_2", code(GOOD_CODE))).await.unwrap_err();
    assert!(matches!(&err, UseCaseError::ConnectionMismatch { connection_id } if connection_id == "conn_1"), "{err:?}");
    assert_eq!((status_of(&err).as_u16(), err.is_conflict()), (409, true));
    let err = s.run(input(Some("conn_1"), "acme_post", "user_1", code(GOOD_CODE))).await.unwrap_err();
    assert!(matches!(err, UseCaseError::ConnectionMismatch { .. }), "{err:?}");
    assert_eq!(s.endpoint.requests.load(Ordering::SeqCst), asked, "no code spent");
    let unchanged = s.config.cipher()?.open("conn_1", &stored_credentials(&s.db.pool, "conn_1").await?)?;
    assert_eq!(unchanged, tokens);
    s.db.drop_database().await
}

#[tokio::test]
async fn a_refused_exchange_is_exchange_refused_and_writes_nothing() -> Result<()> {
    let s = setup("uc-conn-refused").await?;
    let err = s.run(input(None, "acme", "user_1", code(BAD_CODE))).await.unwrap_err();
    let UseCaseError::ExchangeRefused { service, status, error } = &err else { bail!("not ExchangeRefused: {err:?}") };
    assert_eq!((service.as_str(), *status, error.as_deref()), ("acme", 400, Some("invalid_grant")));
    assert_eq!(status_of(&err).as_u16(), 422);
    assert!(!err.is_retryable());
    assert_no_secret(&err);

    let refresh = OAuthGrant::RefreshToken { refresh_token: Secret::new("rt-revoked"), scopes: vec![] };
    let err = s.run(input(None, "acme", "user_1", refresh)).await.unwrap_err();
    assert!(matches!(&err, UseCaseError::ExchangeRefused { error: Some(e), .. } if e == "invalid_grant"), "{err:?}");

    // The deployment's client secret is wrong: the operator's fault, 502.
    let err = s.run(input(None, "acme_wrong_secret", "user_1", code(GOOD_CODE))).await.unwrap_err();
    assert!(
        matches!(&err, UseCaseError::ExchangeRefused { status: 401, error: Some(e), .. } if e == "invalid_client"),
        "{err:?}"
    );
    assert_eq!(status_of(&err).as_u16(), 502);
    assert_no_secret(&err);

    let bad_redirect = OAuthGrant::AuthorizationCode {
        code: Secret::new(GOOD_CODE),
        redirect_uri: Some("not a url".into()),
        code_verifier: None,
    };
    let err = s.run(input(None, "acme", "user_1", bad_redirect)).await.unwrap_err();
    assert!(matches!(err, UseCaseError::MalformedCredentials(_)), "{err:?}");
    assert_eq!(status_of(&err).as_u16(), 400);
    assert_no_secret(&err);
    assert_eq!(s.endpoint.requests.load(Ordering::SeqCst), 3, "the malformed grant was not sent");
    assert_nothing_written(&s.db.pool).await?;
    s.db.drop_database().await
}

#[tokio::test]
async fn an_unavailable_token_endpoint_is_a_retryable_error_and_writes_nothing() -> Result<()> {
    let s = setup("uc-conn-unavailable").await?;
    for (service, reason) in [("broken", "HTTP 500"), ("closed", "could not connect"), ("slow", "timed out")] {
        let started = Instant::now();
        let err = s.run(input(None, service, "user_1", code(GOOD_CODE))).await.unwrap_err();
        let UseCaseError::TokenEndpointUnavailable { service: sv, reason: r } = &err else {
            bail!("{service}: not TokenEndpointUnavailable: {err:?}")
        };
        assert_eq!((sv.as_str(), r.as_str()), (service, reason));
        assert!(err.is_retryable(), "{err}");
        assert_eq!(status_of(&err).as_u16(), 503);
        assert!(!err.to_string().contains("127.0.0.1"), "no URL in the error: {err}");
        assert_no_secret(&err);
        assert!(started.elapsed() < Duration::from_secs(4), "{service} took {:?}", started.elapsed());
    }
    assert_eq!(s.endpoint.requests.load(Ordering::SeqCst), 2, "broken and slow were asked");
    assert_nothing_written(&s.db.pool).await?;
    s.db.drop_database().await
}

#[tokio::test]
async fn an_unknown_service_or_user_is_refused_before_any_request() -> Result<()> {
    let s = setup("uc-conn-unknown").await?;
    let err = s.run(input(None, "github", "user_1", code(GOOD_CODE))).await.unwrap_err();
    assert!(matches!(&err, UseCaseError::UnknownService(name) if name == "github"), "{err:?}");
    assert_eq!(status_of(&err).as_u16(), 404);
    let err = s.run(input(None, "acme", " ", code(GOOD_CODE))).await.unwrap_err();
    assert!(matches!(err, UseCaseError::InvalidId { entity: "user", .. }), "{err:?}");
    assert_eq!(s.endpoint.requests.load(Ordering::SeqCst), 0);
    assert_nothing_written(&s.db.pool).await?;

    // The API's JSON shape; Debug shows no credential.
    let parsed: AuthenticateConnectionInput = serde_json::from_value(json!({
        "service": "acme", "userId": "user_1",
        "grant": {"grantType": "authorization_code", "code": GOOD_CODE, "redirectUri": REDIRECT}
    }))?;
    assert_eq!(parsed, input(None, "acme", "user_1", code(GOOD_CODE)));
    let debug = format!("{parsed:?} {:?} {:?}", s.usecase, s.config);
    assert!(!debug.contains(GOOD_CODE) && !debug.contains(CLIENT_SECRET), "{debug}");
    s.db.drop_database().await
}
