use std::collections::BTreeMap;
use std::fmt;

use ltf_schemas::{ConnectionEstablished, DomainEvent, EventCodec, EventPayload};
use serde::Deserialize;
use sqlx::{Connection, PgConnection, PgPool};

use crate::connections::config::process_env;
use crate::connections::oauth::{ExchangeError, TokenEndpoint};
use crate::connections::{ConfigError, ConnectionsConfig, CredentialCipher, OAuthGrant, TokenSet};
use crate::outbox;
use crate::store::connections::{self, ServiceConnection, Stored};
use crate::usecases::definitions;
use crate::usecases::{ChangeContext, Outcome, UseCase, UseCaseError};

/// Input of [`AuthenticateConnection`]. JSON keys are camelCase; unknown keys are refused.
/// `Debug` shows no credential.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AuthenticateConnectionInput {
    /// The connection to authenticate: a new one (`conn_<uuid>` when absent) or an
    /// existing one of the same service and user, whose credentials are replaced.
    #[serde(default)]
    pub connection_id: Option<String>,
    /// The service, a key of [`ConnectionsConfig::services`].
    pub service: String,
    /// The user connecting.
    pub user_id: String,
    /// The credentials to exchange for tokens.
    pub grant: OAuthGrant,
}

impl AuthenticateConnectionInput {
    /// The connection id (the given one, checked, or a new one) once the user is checked:
    /// what [`AuthenticateConnection`] checks of the input besides its service.
    pub(crate) fn checked_id(&self) -> Result<String, UseCaseError> {
        if self.user_id.trim().is_empty() {
            return Err(UseCaseError::InvalidId { entity: "user", reason: "is empty" });
        }
        definitions::id_or_new(self.connection_id.clone(), "connection", "conn")
    }
}

/// Authenticates a connection to an external service: exchanges the submitted OAuth2
/// grant at the service's token endpoint, stores the granted tokens encrypted in
/// `ltf_connections.credentials` and, when the connection thereby becomes established,
/// emits ConnectionEstablished (aggregateId = connectionId) in the same transaction.
///
/// Guarantees:
/// * the exchange happens before any transaction is opened, so no transaction or row lock
///   is held across the network call ([`run`](UseCase::run) holds not even a pooled
///   connection during it); an existing connection of another service or user is refused
///   before the exchange ([`UseCaseError::ConnectionMismatch`]), so a code is not spent;
/// * a refused exchange ([`UseCaseError::ExchangeRefused`]), an unreachable or failing
///   token endpoint ([`UseCaseError::TokenEndpointUnavailable`], retryable) and any other
///   failure write nothing and emit nothing;
/// * ConnectionEstablished is emitted once per connection: when it first holds
///   credentials. Re-authenticating or refreshing an established connection replaces its
///   credentials and emits nothing (`Outcome::events` is empty);
/// * the tokens are stored only encrypted ([`CredentialCipher`]); the output, the errors
///   and `Debug` hold no token, code or secret.
#[derive(Clone)]
pub struct AuthenticateConnection {
    http: reqwest::Client,
    endpoints: BTreeMap<String, TokenEndpoint>,
    cipher: Option<CredentialCipher>,
}

impl fmt::Debug for AuthenticateConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthenticateConnection").field("services", &self.endpoints.keys().collect::<Vec<_>>()).finish()
    }
}

impl AuthenticateConnection {
    /// The use case on `config`, reading secrets named by environment variables from the
    /// process environment. Fails like [`ConnectionsConfig::validate`].
    pub fn new(config: &ConnectionsConfig) -> Result<AuthenticateConnection, ConfigError> {
        AuthenticateConnection::with_env(config, process_env)
    }

    /// [`new`](Self::new) with `env` looking up environment variables.
    pub fn with_env(
        config: &ConnectionsConfig,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<AuthenticateConnection, ConfigError> {
        let resolved = config.resolve(&env)?;
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|_| ConfigError { key: "connections".into(), reason: "the HTTP client could not be built".into() })?;
        let endpoints = resolved.services.iter().map(|(name, s)| (name.clone(), TokenEndpoint::new(s))).collect();
        Ok(AuthenticateConnection { http, endpoints, cipher: resolved.cipher })
    }

    /// Everything checked before anything is read or sent: the service, the id.
    fn prepare(&self, input: &AuthenticateConnectionInput) -> Result<(&TokenEndpoint, &CredentialCipher, String), UseCaseError> {
        let unknown = || UseCaseError::UnknownService(input.service.clone());
        let endpoint = self.endpoints.get(&input.service).ok_or_else(unknown)?;
        let cipher = self.cipher.as_ref().ok_or_else(unknown)?;
        Ok((endpoint, cipher, input.checked_id()?))
    }

    /// Exchanges the grant; no database work.
    async fn exchange(&self, endpoint: &TokenEndpoint, input: &AuthenticateConnectionInput) -> Result<TokenSet, UseCaseError> {
        endpoint.exchange(&self.http, &input.grant).await.map_err(|e| {
            let service = input.service.clone();
            match e {
                ExchangeError::Refused { status, error } => UseCaseError::ExchangeRefused { service, status, error },
                ExchangeError::Unavailable { reason } => UseCaseError::TokenEndpointUnavailable { service, reason },
                ExchangeError::InvalidResponse { status } => UseCaseError::TokenEndpointInvalidResponse { service, status },
                ExchangeError::Malformed(what) => UseCaseError::MalformedCredentials(what),
            }
        })
    }
}

/// Refuses a connection id that belongs to another service or user.
fn check_owner(existing: Option<&ServiceConnection>, id: &str, input: &AuthenticateConnectionInput) -> Result<(), UseCaseError> {
    match existing {
        Some(c) if c.service != input.service || c.user_id != input.user_id => {
            Err(UseCaseError::ConnectionMismatch { connection_id: id.to_owned() })
        }
        _ => Ok(()),
    }
}

/// Writes the encrypted tokens and, for a connection established now, its event, in one
/// transaction (a savepoint inside the caller's).
async fn store(
    conn: &mut PgConnection,
    codec: &EventCodec,
    ctx: &ChangeContext,
    cipher: &CredentialCipher,
    id: String,
    input: &AuthenticateConnectionInput,
    tokens: &TokenSet,
) -> Result<Outcome<ServiceConnection>, UseCaseError> {
    let blob = cipher.seal(&id, tokens)?;
    let stored = Stored { credentials: &blob, token_expires_at: tokens.expires_at, scope: tokens.scope.as_deref() };
    let mut tx = conn.begin().await?;
    let existing = connections::lock(&mut tx, &id).await?;
    check_owner(existing.as_ref(), &id, input)?;
    let (connection, established_now) = match existing {
        Some(c) => (connections::set_credentials(&mut tx, &id, stored).await?, !c.authenticated),
        None => match connections::insert(&mut tx, &id, &input.service, &input.user_id, stored).await? {
            Some(c) => (c, true),
            // Created by a concurrent request since the lock was tried.
            None => return Err(UseCaseError::AlreadyExists { entity: "connection", id }),
        },
    };
    let events = if established_now {
        vec![DomainEvent::new(EventPayload::ConnectionEstablished(ConnectionEstablished {
            connection_id: connection.id.clone(),
            service: connection.service.clone(),
            user_id: connection.user_id.clone(),
        }))]
    } else {
        Vec::new()
    };
    let events = outbox::append(&mut tx, codec, ctx.traceparent.as_deref(), ctx.stamp(events)).await?;
    tx.commit().await?;
    Ok(Outcome { value: connection, events })
}

impl UseCase for AuthenticateConnection {
    type Input = AuthenticateConnectionInput;
    type Output = ServiceConnection;

    /// The grant is exchanged before the transaction; the service may have spent it.
    const RETRIES_CONFLICTS: bool = false;

    /// Checks the input and the connection's owner on `conn`, exchanges the grant, then
    /// writes in one transaction. The exchange runs before that transaction begins; when
    /// `conn` is already inside the caller's transaction, that one stays open across the
    /// exchange: prefer [`run`](UseCase::run) there.
    async fn execute(
        &self,
        conn: &mut PgConnection,
        codec: &EventCodec,
        ctx: &ChangeContext,
        input: AuthenticateConnectionInput,
    ) -> Result<Outcome<ServiceConnection>, UseCaseError> {
        let (endpoint, cipher, id) = self.prepare(&input)?;
        check_owner(connections::get(conn, &id).await?.as_ref(), &id, &input)?;
        let tokens = self.exchange(endpoint, &input).await?;
        store(conn, codec, ctx, cipher, id, &input, &tokens).await
    }

    /// Like [`execute`](UseCase::execute), taking a connection of `pool` only for the
    /// owner check and for the write: none is held during the exchange.
    async fn run(
        &self,
        pool: &PgPool,
        codec: &EventCodec,
        ctx: &ChangeContext,
        input: AuthenticateConnectionInput,
    ) -> Result<Outcome<ServiceConnection>, UseCaseError> {
        let (endpoint, cipher, id) = self.prepare(&input)?;
        let existing = connections::get(&mut *pool.acquire().await?, &id).await?;
        check_owner(existing.as_ref(), &id, &input)?;
        let tokens = self.exchange(endpoint, &input).await?;
        store(&mut *pool.acquire().await?, codec, ctx, cipher, id, &input, &tokens).await
    }
}
