//! What a notice carries: the facts people need about a maintenance window or an incident,
//! who it goes to, and the key that makes a resend the same message.
//!
//! A [`Notice`] is data only: the planner (later) fills it from a window or an incident, the
//! outbox stores it in a row as JSON, and [`crate::Templates::render`] turns it into the words
//! of one language. Nothing here formats or sends. Times are instants; the reader's time zone
//! travels with the notice so every channel shows the same local time.

use std::fmt;

use jiff::{SignedDuration, Timestamp, tz::TimeZone};
use serde::{Deserialize, Serialize};
use upkeep_core::ServiceName;
use upkeep_core::i18n::Lang;

/// Everything a person needs to know about one change of a window or an incident.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Notice {
    pub kind: NoticeKind,
    pub title: String,
    pub reason: String,
    /// When the window starts (or started), or when the incident began.
    pub start: Timestamp,
    /// Expected recovery: the window's planned end, or the incident's estimate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_end: Option<Timestamp>,
    /// When it really ended (completed, overrun, resolved).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actual_end: Option<Timestamp>,
    #[serde(default)]
    pub services: Vec<AffectedService>,
    /// What users can use meanwhile.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alternatives: Option<String>,
    /// Where to get news and help.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub follow_up: Option<String>,
    pub priority: Priority,
    /// The public page of this window or incident.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link: Option<url::Url>,
    /// Incidents, on resolution: how long the outage lasted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<SignedDuration>,
    /// Incidents: the runbook of the affected service (a URL or a path, shown as written).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runbook: Option<String>,
    /// A subscriber's notice: where one click unsubscribes it (RFC 8058's `List-Unsubscribe`,
    /// and a line at the end of the mail). Set per subscriber when the row is planned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unsubscribe: Option<url::Url>,
    #[serde(with = "lang_serde")]
    pub lang: Lang,
    /// The reader's time zone: every time is shown in it, with its offset.
    pub time_zone: ReaderZone,
}

/// Maintenance windows have seven kinds of notice, incidents three; `test` is an operator's
/// test of a channel (`upkeep notify test`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NoticeKind {
    Announced,
    Reminder,
    Started,
    Completed,
    Overrun,
    Extended,
    Cancelled,
    IncidentOpened,
    IncidentUpdated,
    IncidentResolved,
    Test,
    /// The double opt-in mail to a new subscriber: `link` confirms, `duration` is how long
    /// the link works.
    ConfirmSubscription,
}

impl NoticeKind {
    pub const ALL: [NoticeKind; 12] = [
        NoticeKind::Announced,
        NoticeKind::Reminder,
        NoticeKind::Started,
        NoticeKind::Completed,
        NoticeKind::Overrun,
        NoticeKind::Extended,
        NoticeKind::Cancelled,
        NoticeKind::IncidentOpened,
        NoticeKind::IncidentUpdated,
        NoticeKind::IncidentResolved,
        NoticeKind::Test,
        NoticeKind::ConfirmSubscription,
    ];

    /// The name templates and JSON bodies use (`incident_opened`).
    pub fn as_str(self) -> &'static str {
        match self {
            NoticeKind::Announced => "announced",
            NoticeKind::Reminder => "reminder",
            NoticeKind::Started => "started",
            NoticeKind::Completed => "completed",
            NoticeKind::Overrun => "overrun",
            NoticeKind::Extended => "extended",
            NoticeKind::Cancelled => "cancelled",
            NoticeKind::IncidentOpened => "incident_opened",
            NoticeKind::IncidentUpdated => "incident_updated",
            NoticeKind::IncidentResolved => "incident_resolved",
            NoticeKind::Test => "test",
            NoticeKind::ConfirmSubscription => "confirm_subscription",
        }
    }

    /// The kind named `name` (`incident_opened`), as routes write it.
    pub fn parse(name: &str) -> Option<NoticeKind> {
        NoticeKind::ALL.into_iter().find(|k| k.as_str() == name)
    }

    pub fn is_incident(self) -> bool {
        match self {
            NoticeKind::IncidentOpened
            | NoticeKind::IncidentUpdated
            | NoticeKind::IncidentResolved => true,
            NoticeKind::Announced
            | NoticeKind::Reminder
            | NoticeKind::Started
            | NoticeKind::Completed
            | NoticeKind::Overrun
            | NoticeKind::Extended
            | NoticeKind::Cancelled
            | NoticeKind::Test
            | NoticeKind::ConfirmSubscription => false,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Priority {
    Emergency,
    Important,
    Routine,
}

impl Priority {
    pub const ALL: [Priority; 3] = [Priority::Emergency, Priority::Important, Priority::Routine];

    pub fn parse(name: &str) -> Option<Priority> {
        Priority::ALL.into_iter().find(|p| p.as_str() == name)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Priority::Emergency => "emergency",
            Priority::Important => "important",
            Priority::Routine => "routine",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Impact {
    Outage,
    Degraded,
}

impl Impact {
    pub fn as_str(self) -> &'static str {
        match self {
            Impact::Outage => "outage",
            Impact::Degraded => "degraded",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AffectedService {
    pub name: ServiceName,
    pub impact: Impact,
}

/// An IANA time zone (`Asia/Shanghai`), known to this host's time zone database, kept with its
/// name so a stored notice reads back the same.
#[derive(Clone, PartialEq)]
pub struct ReaderZone {
    name: String,
    tz: TimeZone,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("`{0}` is not a time zone known here")]
pub struct UnknownZone(String);

impl ReaderZone {
    pub fn new(name: impl Into<String>) -> Result<Self, UnknownZone> {
        let name = name.into();
        match TimeZone::get(&name) {
            Ok(tz) => Ok(Self { name, tz }),
            Err(_) => Err(UnknownZone(name)),
        }
    }

    pub fn utc() -> Self {
        Self {
            name: "UTC".into(),
            tz: TimeZone::UTC,
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn tz(&self) -> &TimeZone {
        &self.tz
    }
}

impl fmt::Debug for ReaderZone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ReaderZone({})", self.name)
    }
}

impl Serialize for ReaderZone {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.name)
    }
}

impl<'de> Deserialize<'de> for ReaderZone {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let name = String::deserialize(d)?;
        ReaderZone::new(name).map_err(serde::de::Error::custom)
    }
}

/// `en` and `zh-CN` on the wire; upkeep-core's [`Lang`] in memory.
mod lang_serde {
    use serde::{Deserialize, Deserializer, Serializer};
    use upkeep_core::i18n::Lang;

    pub fn serialize<S: Serializer>(lang: &Lang, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(super::lang_tag(*lang))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Lang, D::Error> {
        match String::deserialize(d)?.as_str() {
            "en" => Ok(Lang::En),
            "zh-CN" => Ok(Lang::ZhCn),
            other => Err(serde::de::Error::custom(format!(
                "unknown language `{other}`: expected `en` or `zh-CN`"
            ))),
        }
    }
}

/// The BCP 47 tag of a language: `en`, `zh-CN` (template folders are named so).
pub fn lang_tag(lang: Lang) -> &'static str {
    match lang {
        Lang::En => "en",
        Lang::ZhCn => "zh-CN",
    }
}

/// The caller's key for one delivery (one outbox row): every attempt carries it, so a resend
/// after a crash is recognisably the same message (the email's Message-ID, the webhook's
/// `Idempotency-Key`). 1 to 128 characters of `A-Z a-z 0-9 - _ .`, no leading, trailing or
/// doubled dot: it must be a valid left part of a Message-ID and an HTTP header value.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct IdempotencyKey(String);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error(
    "idempotency key `{0}` must be 1 to 128 characters of letters, digits, `-`, `_` and `.` (no dot at either end, none doubled)"
)]
pub struct BadKey(String);

impl IdempotencyKey {
    pub fn new(key: impl Into<String>) -> Result<Self, BadKey> {
        let key = key.into();
        let ok_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
        if key.is_empty()
            || key.len() > 128
            || !key.chars().all(ok_char)
            || key.starts_with('.')
            || key.ends_with('.')
            || key.contains("..")
        {
            return Err(BadKey(key));
        }
        Ok(Self(key))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for IdempotencyKey {
    type Error = BadKey;
    fn try_from(s: String) -> Result<Self, BadKey> {
        Self::new(s)
    }
}

impl From<IdempotencyKey> for String {
    fn from(k: IdempotencyKey) -> String {
        k.0
    }
}

impl fmt::Display for IdempotencyKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Who one delivery goes to. Group bots (Slack, WeCom, DingTalk, Feishu, the generic webhook)
/// post to the group their URL names and ignore `address`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Recipient {
    /// Email: an address (`a@example.com` or `Name <a@example.com>`). Telegram: a chat id
    /// that replaces the channel's configured one. Empty for group bots.
    #[serde(default)]
    pub address: String,
    /// Email: a one-click unsubscribe URL (RFC 8058), sent as `List-Unsubscribe`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unsubscribe: Option<url::Url>,
}

impl Recipient {
    /// The group a bot's URL names.
    pub fn group() -> Self {
        Self::default()
    }

    pub fn address(address: impl Into<String>) -> Self {
        Self {
            address: address.into(),
            unsubscribe: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_fit_a_message_id() {
        assert!(IdempotencyKey::new("notice-42.r7_email").is_ok());
        for bad in [
            "",
            ".a",
            "a.",
            "a..b",
            "a b",
            "a@b",
            "<a>",
            &"k".repeat(129),
        ] {
            assert!(IdempotencyKey::new(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn a_notice_reads_back_from_json() {
        let json = serde_json::json!({
            "kind": "incident_resolved", "title": "API down", "reason": "disk full",
            "start": "2026-12-01T01:00:00Z", "actual_end": "2026-12-01T02:30:00Z",
            "services": [{"name": "api", "impact": "outage"}],
            "priority": "emergency", "duration": "PT1H30M", "runbook": "docs/runbooks/api.md",
            "lang": "zh-CN", "time_zone": "Asia/Shanghai"
        });
        let n: Notice = serde_json::from_value(json.clone()).unwrap();
        assert_eq!(n.kind, NoticeKind::IncidentResolved);
        assert_eq!(n.lang, Lang::ZhCn);
        assert_eq!(n.duration, Some(SignedDuration::from_mins(90)));
        let again: Notice = serde_json::from_value(serde_json::to_value(&n).unwrap()).unwrap();
        assert_eq!(again, n);
    }

    #[test]
    fn unknown_zone_and_language_are_refused() {
        let mut json = serde_json::json!({
            "kind": "announced", "title": "t", "reason": "r", "start": "2026-12-01T01:00:00Z",
            "priority": "routine", "lang": "en", "time_zone": "Mars/Olympus"
        });
        let e = serde_json::from_value::<Notice>(json.clone()).unwrap_err();
        assert!(e.to_string().contains("Mars/Olympus"), "{e}");
        json["time_zone"] = "UTC".into();
        json["lang"] = "fr".into();
        let e = serde_json::from_value::<Notice>(json).unwrap_err();
        assert!(e.to_string().contains("`fr`"), "{e}");
    }
}
