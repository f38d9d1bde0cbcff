use lettre::message::header::{HeaderName, HeaderValue};
use lettre::message::Mailbox;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use ltf_schemas::Fields;
use serde_json::json;

use super::EffectError;

/// Sends plain-text mail over SMTP. Each message carries the idempotency key as an
/// `Idempotency-Key` header and in its Message-ID, so a repeated send is recognisable.
#[derive(Clone)]
pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
}

impl std::fmt::Debug for Mailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mailer").field("from", &self.from.to_string()).finish_non_exhaustive()
    }
}

/// Why the mailer cannot be built.
#[derive(Debug, thiserror::Error)]
pub enum MailerError {
    /// The SMTP URL is not `smtp://`, `smtps://` or valid.
    #[error("invalid smtp_url: {0}")]
    Url(String),
    /// The sender address is invalid.
    #[error("invalid email_from {0:?}")]
    From(String),
}

impl Mailer {
    /// A mailer for `smtp_url` (`smtp://host:port` plain or STARTTLS per the URL's
    /// `?tls=` parameter, `smtps://` implicit TLS; credentials in the URL) sending as
    /// `from`.
    pub fn new(smtp_url: &str, from: &str) -> Result<Mailer, MailerError> {
        let transport =
            AsyncSmtpTransport::<Tokio1Executor>::from_url(smtp_url).map_err(|e| MailerError::Url(e.to_string()))?.build();
        let from = from.parse().map_err(|_| MailerError::From(from.to_owned()))?;
        Ok(Mailer { transport, from })
    }

    /// Sends one message; 5xx SMTP answers and bad addresses are permanent failures,
    /// everything else (connection, 4xx) retryable.
    pub async fn send(&self, to: &str, subject: &str, body: &str, key: &str) -> Result<Fields, EffectError> {
        let to: Mailbox = to.parse().map_err(|_| EffectError::permanent(format!("invalid recipient {to:?}")))?;
        let message = Message::builder()
            .from(self.from.clone())
            .to(to.clone())
            .subject(subject)
            .message_id(Some(format!("<{key}@latechforce.automation>")))
            .raw_header(HeaderValue::new(HeaderName::new_from_ascii_str("Idempotency-Key"), key.to_owned()))
            .body(body.to_owned())
            .map_err(EffectError::permanent)?;
        match self.transport.send(message).await {
            Ok(response) => {
                let mut data = Fields::new();
                data.insert("to".into(), json!(to.email.to_string()));
                data.insert("smtpCode".into(), json!(response.code().to_string()));
                Ok(data)
            }
            Err(e) if e.is_permanent() => Err(EffectError::permanent(format!("SMTP refused the message: {e}"))),
            Err(e) => Err(EffectError::transient(super::SMTP, format!("sending mail failed: {e}"))),
        }
    }
}
