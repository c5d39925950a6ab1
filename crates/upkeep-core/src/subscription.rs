//! The subscriber API's words, shared by the daemon, the web routes and the CLI: what a
//! subscription asks (`POST /api/v1/subscribe`, public), what it answers, and a subscriber as
//! token holders see it (`GET /api/v1/subscribers`, `upkeep subscribers ls|export`).
//!
//! No I/O and no checks here: the daemon validates addresses and service names.

use serde::{Deserialize, Serialize};

/// `POST /api/v1/subscribe`: the JSON a status page's form sends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SubscribeRequest {
    pub email: String,
    /// The services to hear about; empty or absent: all of them.
    #[serde(default)]
    pub services: Vec<String>,
    /// `en` or `zh-CN`: the language of the mails (default: the daemon's notice language).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lang: Option<String>,
}

/// What a subscription answers. The same whether the address was new, pending or confirmed
/// already, so the endpoint tells no one who is subscribed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SubscribeAnswer {
    /// Always `confirmation_sent`: the address gets a mail with a link, unless it is
    /// confirmed already.
    pub status: String,
    /// For people, in the request's language.
    pub message: String,
    /// How long the link works, in seconds.
    pub confirm_within_s: u64,
}

/// One subscriber, as token holders see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SubscriberInfo {
    pub id: i64,
    pub email: String,
    /// Empty: all services.
    pub services: Vec<String>,
    pub lang: String,
    pub created: jiff::Timestamp,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confirmed: Option<jiff::Timestamp>,
}
