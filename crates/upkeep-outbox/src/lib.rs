//! The outbox tells people: a notice about a maintenance window or an incident, rendered in
//! the reader's language and time zone, handed to a channel (email, a webhook, a chat bot).
//!
//! Every notice is first stored as outbox rows, one per recipient and channel, in the
//! transaction that decides it ([`NotifyConfig::window_rows`] for a window's step, the
//! [`IncidentPlanner`] for incidents); the [`Dispatcher`] leases rows, renders each notice
//! with [`Templates`] and calls [`Channel::send`] with the row's [`IdempotencyKey`], marking
//! the row done only on `Ok`. A channel sends once and says, as a type, whether to retry
//! ([`SendError`]); retrying, backoff and concurrency limits are the dispatcher's. Start at
//! [`Notice`], then [`NotifyConfig::targets`], then [`Dispatcher::run`].
//!
//! Layout:
//! - `notice.rs`: [`Notice`] and its parts, [`Recipient`], [`IdempotencyKey`].
//! - `render.rs`: [`Templates`] (built-in en and zh-CN, overridable from a folder) and
//!   [`Rendered`]; the templates themselves are in `templates/`.
//! - `channel.rs`: the [`Channel`] trait, [`Delivery`], [`SendError`].
//! - `config.rs`: what channel configs share: secrets from `*_env` / `*_file`, timeouts,
//!   URLs, [`ConfigErrors`].
//! - `route.rs`: [`NotifyConfig`] (`[notify]`, validated by upkeep-config) and routing.
//! - `plan.rs`: notices from a window's step or an incident, as outbox rows.
//! - `incidents.rs`: [`IncidentPlanner`], the durable consumer that plans incident notices.
//! - `subscription.rs`: `[notify.subscribers]`, the signed links of subscribers' mails
//!   ([`SubscriptionKeys`]) and their rows ([`SubscriberFanout`], the double opt-in mail).
//! - `dispatcher.rs`: [`Dispatcher`]; `retry.rs`: when to try again and when to give up.
//! - `channels/`: the registry ([`ChannelConfig`]) and one file per kind: `smtp`, `webhook`,
//!   `slack`, `wecom`, `dingtalk`, `feishu`, `telegram`; `http.rs` is what the HTTP kinds share.

mod channel;
mod channels;
mod config;
mod dispatcher;
mod incidents;
mod notice;
mod plan;
mod render;
pub mod retry;
mod route;
mod subscription;

pub use channel::{Channel, Delivery, SendError};
pub use channels::{
    Addressing, ChannelConfig, DingtalkConfig, FeishuConfig, SlackConfig, SmtpConfig,
    TelegramConfig, WebhookConfig, WecomConfig,
};
pub use config::{BuildContext, ConfigErrors, ConfigProblem};
pub use dispatcher::{Dispatcher, Lane, Settings, Setup, Stopper};
pub use incidents::{CURSOR as INCIDENT_CURSOR, IncidentPlanner, Planning};
pub use notice::{
    AffectedService, BadKey, IdempotencyKey, Impact, Notice, NoticeKind, Priority, ReaderZone,
    Recipient, UnknownZone, lang_tag,
};
pub use plan::{IncidentNews, WindowStep, Written, incident_subject, notice_priority};
pub use render::{
    RenderError, Rendered, TemplateError, TemplateProblem, Templates, format_duration, format_time,
};
pub use route::{ChannelSpec, Facts, NotifyConfig, Rate, Route, Target, default_routes};
pub use subscription::{
    ConfirmToken, PublicServices, SubscriberFanout, SubscribersConfig, SubscriptionKeys,
    TokenError, UnsubscribeToken, confirm_url, subscriber_lang, unsubscribe_url,
};
