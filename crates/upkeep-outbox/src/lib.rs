//! The outbox tells people: a notice about a maintenance window or an incident, rendered in
//! the reader's language and time zone, handed to a channel (email, a webhook, a chat bot).
//!
//! Every notice is first stored as outbox rows, one per recipient and channel; a dispatcher
//! (later) leases rows, renders each notice with [`Templates`] and calls [`Channel::send`]
//! with the row's [`IdempotencyKey`], marking the row done only on `Ok`. This crate holds the
//! parts that do not need the store: what a notice carries, its templates, and the channels.
//! A channel sends once and says, as a type, whether to retry ([`SendError`]); retrying,
//! backoff and concurrency limits are the dispatcher's. Start at [`Notice`], then
//! [`Templates::render`], then [`ChannelConfig::build`] and [`Channel::send`].
//!
//! Layout:
//! - `notice.rs`: [`Notice`] and its parts, [`Recipient`], [`IdempotencyKey`].
//! - `render.rs`: [`Templates`] (built-in en and zh-CN, overridable from a folder) and
//!   [`Rendered`]; the templates themselves are in `templates/`.
//! - `channel.rs`: the [`Channel`] trait, [`Delivery`], [`SendError`].
//! - `config.rs`: what channel configs share: secrets from `*_env` / `*_file`, timeouts,
//!   URLs, [`ConfigErrors`].
//! - `channels/`: the registry ([`ChannelConfig`]) and one file per kind: `smtp`, `webhook`,
//!   `slack`, `wecom`, `dingtalk`, `feishu`, `telegram`; `http.rs` is what the HTTP kinds share.

mod channel;
mod channels;
mod config;
mod notice;
mod render;

pub use channel::{Channel, Delivery, SendError};
pub use channels::{
    ChannelConfig, DingtalkConfig, FeishuConfig, SlackConfig, SmtpConfig, TelegramConfig,
    WebhookConfig, WecomConfig,
};
pub use config::{BuildContext, ConfigErrors, ConfigProblem};
pub use notice::{
    AffectedService, BadKey, IdempotencyKey, Impact, Notice, NoticeKind, Priority, ReaderZone,
    Recipient, UnknownZone, lang_tag,
};
pub use render::{
    RenderError, Rendered, TemplateError, TemplateProblem, Templates, format_duration, format_time,
};
