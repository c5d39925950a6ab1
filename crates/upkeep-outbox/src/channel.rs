//! The [`Channel`] trait every delivery kind implements, and what a send returns.
//!
//! A channel hands one rendered notice to one recipient and says, as a type, what the
//! dispatcher should do next: mark the row done ([`Delivery`]), try again later
//! ([`SendError::Retry`], with the receiver's own delay when it gave one) or give up
//! ([`SendError::Permanent`]). Channels do not retry, queue or limit concurrency: that is the
//! dispatcher's job. They may keep a connection pool. Each kind is one file in `channels/`.

use std::time::Duration;

use async_trait::async_trait;

use crate::notice::{IdempotencyKey, Recipient};
use crate::render::Rendered;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// One way of telling people (an SMTP server, a chat bot, a webhook).
#[async_trait]
pub trait Channel: Send + Sync {
    /// The kind's config name (`smtp`, `wecom`), for logs and metrics.
    fn kind(&self) -> &'static str;

    /// A digest of everything the channel was built from (its config and the values of its
    /// secrets and files), for a channel that keeps something worth keeping across a reload
    /// (an SMTP channel's open connections): a reload that builds a channel of the same
    /// name and digest keeps the running one. None (the default): a reload replaces it.
    fn settings(&self) -> Option<[u8; 32]> {
        None
    }

    /// Delivers `notice` to `to`. `key` goes with every attempt of the same outbox row, so a
    /// receiver that honours it sees a resend as the same message.
    async fn send(
        &self,
        to: &Recipient,
        notice: &Rendered,
        key: &IdempotencyKey,
    ) -> Result<Delivery, SendError>;
}

/// What the receiver said when it took the notice.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Delivery {
    /// The receiver's name for the message, when it has one: the email's Message-ID, a
    /// Telegram message id.
    pub id: Option<String>,
}

/// Why a send failed, and whether trying again can help. Never holds a secret: messages are
/// stored with the row and logged.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// The receiver is away, busy or rate-limiting: try again, no sooner than `after` when the
    /// receiver said so (`Retry-After`, a bot's documented limit).
    #[error("{reason} (will retry{})", after.map(|d| format!(" after {}s", d.as_secs())).unwrap_or_default())]
    Retry {
        after: Option<Duration>,
        reason: String,
        #[source]
        source: Option<BoxError>,
    },
    /// The receiver refused this notice or this recipient for good (a 4xx answer, an invalid
    /// address, an SMTP 5xx reply, a bad signature): trying again sends the same refusal.
    #[error("{reason}")]
    Permanent {
        reason: String,
        #[source]
        source: Option<BoxError>,
    },
}

impl SendError {
    pub fn retry(reason: impl Into<String>) -> Self {
        SendError::Retry {
            after: None,
            reason: reason.into(),
            source: None,
        }
    }

    pub fn retry_after(after: Option<Duration>, reason: impl Into<String>) -> Self {
        SendError::Retry {
            after,
            reason: reason.into(),
            source: None,
        }
    }

    pub fn permanent(reason: impl Into<String>) -> Self {
        SendError::Permanent {
            reason: reason.into(),
            source: None,
        }
    }

    /// Attaches the error that caused this one (kept as the source, not flattened into text).
    pub fn caused_by(mut self, cause: impl Into<BoxError>) -> Self {
        match &mut self {
            SendError::Retry { source, .. } | SendError::Permanent { source, .. } => {
                *source = Some(cause.into())
            }
        }
        self
    }

    pub fn is_permanent(&self) -> bool {
        matches!(self, SendError::Permanent { .. })
    }

    /// The receiver's requested delay, for a retryable error that came with one.
    pub fn retry_delay(&self) -> Option<Duration> {
        match self {
            SendError::Retry { after, .. } => *after,
            SendError::Permanent { .. } => None,
        }
    }
}
