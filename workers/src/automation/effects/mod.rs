//! The automation's external effects: webhooks (HTTP POST), email (SMTP) and
//! notifications through the worker's channel. Each call carries the idempotency key of
//! its (run, action), so a call repeated after a crash can be dropped by the receiver.

/// Email actions over SMTP: the [`Mailer`] and [`MailerError`](email::MailerError), why it
/// cannot be built.
pub mod email;
mod ssrf;
/// Webhook actions over HTTP: the [`Webhooks`] client and its bounds on answers.
pub mod webhook;

use std::fmt;

pub use email::Mailer;
pub use ssrf::{is_public, Refused, SsrfGuard};
pub use webhook::Webhooks;

/// The dependency name of the SMTP server, for its circuit breaker.
pub const SMTP: &str = "smtp";

/// Why an effect failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EffectError {
    /// Whether a later attempt may succeed (timeouts, 5xx, 429, refused connections).
    pub retryable: bool,
    /// The dependency that failed, for its circuit breaker (`webhook:<host>:<port>`, `smtp`).
    pub dependency: Option<String>,
    /// What happened.
    pub message: String,
}

impl EffectError {
    pub(crate) fn permanent(message: impl fmt::Display) -> EffectError {
        EffectError { retryable: false, dependency: None, message: message.to_string() }
    }

    pub(crate) fn transient(dependency: impl Into<String>, message: impl fmt::Display) -> EffectError {
        EffectError { retryable: true, dependency: Some(dependency.into()), message: message.to_string() }
    }
}

impl fmt::Display for EffectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}
