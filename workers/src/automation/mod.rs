//! The automation worker (`latechforce.automation`): automations, forms, connections and
//! cascades. Its handlers, one consumer group:
//!
//! * `triggers` ([`TriggerHandler`]): record and form events that match an enabled
//!   automation start a run (AutomationTriggered);
//! * `actions` ([`ActionHandler`]): AutomationTriggered and ActionExecuted advance runs,
//!   one action per event, and keep the run tracker;
//! * `forms` ([`FormsHandler`]): FormSubmitted becomes a record of the form's table;
//! * `connections` ([`ConnectionsHandler`]): per-service usage and health;
//! * `cascade` ([`CascadeHandler`]): a deleted record's links are removed from the records
//!   that hold them.
//!
//! Every event they emit is written to the outbox in the transaction of the dedup record of
//! the event that caused it, with an eventId derived (UUIDv5) from that cause: a crash at
//! any point neither loses nor doubles an emitted event or a record action. Webhooks and
//! emails cut off by a crash may be repeated, always with the same idempotency key.

mod actions;
mod cascade;
mod connections;
pub mod effects;
pub mod emit;
mod forms;
mod triggers;

use std::sync::Arc;
use std::time::Duration;

use ltf_domain::automations::NotifyChannel;
use ltf_schemas::EventCodec;

pub use actions::ActionHandler;
pub use cascade::{unlinked, CascadeHandler};
pub use connections::ConnectionsHandler;
pub use effects::{Mailer, SsrfGuard, Webhooks};
pub use forms::{record_fields, FormsHandler};
pub use triggers::TriggerHandler;

use ltf_consumers::Router;

/// The automation worker's settings.
#[derive(Debug, Clone)]
pub struct AutomationConfig {
    /// Default timeout of a webhook call (an action may set its own, up to 60 s).
    pub webhook_timeout: Duration,
    /// Hosts webhooks may call even though they resolve to loopback, private or link-local
    /// addresses (exact host names or IP literals). Empty: public addresses only.
    pub webhook_allow_hosts: Vec<String>,
    /// SMTP server for email actions: `smtp://host:port` or `smtps://user:pass@host`.
    /// None: email actions fail (permanently) saying so.
    pub smtp_url: Option<String>,
    /// Sender address of emails.
    pub email_from: String,
    /// Where notify actions go by default (webhook when a notification webhook is set,
    /// else email).
    pub notify_webhook_url: Option<String>,
    /// Recipient of notify actions sent by email.
    pub notify_email_to: Option<String>,
    /// The most of a webhook's answer read (the rest is not read; a longer answer is
    /// kept as an excerpt). Default 64 KiB.
    pub webhook_max_response_bytes: usize,
    /// The deepest chain of automations: a run started by an event that a run of depth
    /// `max_depth` wrote (through create_record or update_record) fails with
    /// `loop_detected` instead of running. Default 8.
    pub max_depth: u32,
    /// How long a step may wait for a failing dependency (a webhook host, the SMTP server)
    /// before it fails with `dependency_unavailable` and its run ends `failed`. Default
    /// 15 min.
    pub max_park: Duration,
}

impl Default for AutomationConfig {
    fn default() -> Self {
        AutomationConfig {
            webhook_timeout: Duration::from_secs(10),
            webhook_allow_hosts: Vec::new(),
            smtp_url: None,
            email_from: "LaTeChforce automations <automations@latechforce.invalid>".into(),
            notify_webhook_url: None,
            notify_email_to: None,
            webhook_max_response_bytes: effects::webhook::DEFAULT_MAX_RESPONSE_BYTES,
            max_depth: 8,
            max_park: Duration::from_secs(900),
        }
    }
}

/// Why the automation worker cannot be set up.
#[derive(Debug, thiserror::Error)]
pub enum AutomationSetupError {
    /// The HTTP client could not be built.
    #[error("webhook client: {0}")]
    Http(#[from] reqwest::Error),
    /// The mailer could not be built.
    #[error(transparent)]
    Mail(#[from] effects::email::MailerError),
}

/// Where notify actions go.
#[derive(Debug, Clone, Default)]
pub struct NotifyConfig {
    /// The notification webhook.
    pub webhook_url: Option<String>,
    /// The notification email recipient.
    pub email_to: Option<String>,
    /// The channel of notify actions that name none.
    pub default_channel: Option<NotifyChannel>,
}

/// The external effects of actions.
#[derive(Debug)]
pub struct Effects {
    /// Webhook client.
    pub webhooks: Webhooks,
    /// SMTP mailer, when configured.
    pub mailer: Option<Mailer>,
    /// Notification channel.
    pub notify: NotifyConfig,
}

impl Effects {
    /// The effects of `config`.
    pub fn new(config: &AutomationConfig) -> Result<Effects, AutomationSetupError> {
        let webhooks = Webhooks::new(SsrfGuard::new(config.webhook_allow_hosts.iter().cloned()), config.webhook_timeout)?
            .with_max_response_bytes(config.webhook_max_response_bytes);
        let mailer = config.smtp_url.as_deref().map(|url| Mailer::new(url, &config.email_from)).transpose()?;
        let default_channel = if config.notify_webhook_url.is_some() {
            Some(NotifyChannel::Webhook)
        } else if config.notify_email_to.is_some() {
            Some(NotifyChannel::Email)
        } else {
            None
        };
        let notify = NotifyConfig {
            webhook_url: config.notify_webhook_url.clone(),
            email_to: config.notify_email_to.clone(),
            default_channel,
        };
        Ok(Effects { webhooks, mailer, notify })
    }
}

/// The automation worker's handlers.
pub fn router(codec: Arc<EventCodec>, config: &AutomationConfig) -> Result<Router, AutomationSetupError> {
    let effects = Arc::new(Effects::new(config)?);
    Ok(Router::new()
        .register(TriggerHandler::new(codec.clone(), config.max_depth))
        .register(ActionHandler::new(codec.clone(), effects))
        .register(FormsHandler::new(codec.clone()))
        .register(ConnectionsHandler)
        .register(CascadeHandler::new(codec)))
}
