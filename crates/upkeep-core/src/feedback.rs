//! The feedback API's words, shared by the daemon, the web routes and the CLI: what the status
//! page's feedback form sends, and a message as operators list it (`GET /api/v1/feedback`,
//! `upkeep feedback`).
//!
//! No I/O and no checks here: the daemon checks sizes, the address and the service.

use serde::{Deserialize, Serialize};

/// Longest message kept, in characters.
pub const MAX_MESSAGE_CHARS: usize = 4000;

/// What a person wrote in the feedback form.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FeedbackRequest {
    pub message: String,
    /// An address to answer to, if the person wants an answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// The public service it is about, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    /// `en` or `zh-CN`: the language the person wrote from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lang: Option<String>,
}

/// One message, as operators see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct FeedbackItem {
    pub id: i64,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    pub lang: String,
    /// The client address the form came from (none through the control socket).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    pub created: jiff::Timestamp,
}
