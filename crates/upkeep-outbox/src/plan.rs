//! Planning notices: a window's step or an incident event becomes a [`Notice`] per language
//! and zone, routed to its targets, as outbox rows ([`NewNotice`]) for the store to insert in
//! the transaction that decides them.
//!
//! Pure: the caller (the maintenance planner, an operator's step, the incident planner) says
//! what happened and when; nothing here reads the clock or the store. Each row's
//! idempotency key is derived from this node, what the notice is about, the channel and the
//! recipient, so a notice planned twice is the same row, and every attempt of a row (the
//! mail's Message-ID) is the same message. A target of a digest route makes a digest row,
//! due at the next `digest_at` after the news ([`NotifyConfig::next_digest`]).

use jiff::{SignedDuration, Timestamp};
use sha2::{Digest, Sha256};
use upkeep_core::ServiceName;
use upkeep_core::incident::{IncidentPriority, IncidentStatus};
use upkeep_core::window::{self, Step, WindowSpec};
use upkeep_store::NewNotice;

use crate::notice::{AffectedService, Impact, Notice, NoticeKind, Priority};
use crate::route::{Facts, NotifyConfig};

/// A window's step, with what it was about.
#[derive(Debug, Clone, Copy)]
pub struct WindowStep<'a> {
    pub id: i64,
    pub spec: &'a WindowSpec,
    /// The occurrence's planned start: its identity.
    pub occurrence: Timestamp,
    /// When it began or begins: earlier than `occurrence` when started early.
    pub start: Timestamp,
    /// The occurrence's expected end now (after any extension).
    pub end: Timestamp,
    pub step: Step,
    /// When the step was taken.
    pub at: Timestamp,
}

/// An incident event, with what the notice needs of it.
#[derive(Debug, Clone)]
pub struct IncidentNews {
    pub service: ServiceName,
    /// When the outage began (the incident's identity, with the service).
    pub since: Timestamp,
    pub reason: String,
    /// Some(duration) once resolved.
    pub resolved: Option<(Timestamp, SignedDuration)>,
    /// The event's number: a reopened incident's second resolution is a new notice.
    pub seq: u64,
    /// The stored incident's id, for the link.
    pub incident_id: Option<i64>,
    /// The incident's priority (its own, else its service's): routes match on it.
    pub priority: IncidentPriority,
    /// The title of an incident opened by hand (None: the service names it).
    pub title: Option<String>,
    /// What a person wrote, when the news is theirs (an update, a hand resolution).
    pub written: Option<Written>,
    /// When the news was made (the event's or the writing's time): a digest row waits for
    /// the first digest after it.
    pub at: Timestamp,
}

/// An update a person wrote, as its notice needs it.
#[derive(Debug, Clone)]
pub struct Written {
    pub status: IncidentStatus,
    /// The message, or None (a resolution without a last word, an incident opened with its
    /// title alone).
    pub message: Option<String>,
    /// Unique to this writing (`update:7`, `resolved:3`, `opened:3`): its rows' keys.
    pub key: String,
    /// The incident was just opened by hand: the notice says so.
    pub opened: bool,
}

/// The notice priority of an incident's: P1 pages everyone (emergency), P2 and P3 (the
/// default, as before priorities) are important, P4 routine.
pub fn notice_priority(p: IncidentPriority) -> Priority {
    match p {
        IncidentPriority::P1 => Priority::Emergency,
        IncidentPriority::P2 | IncidentPriority::P3 => Priority::Important,
        IncidentPriority::P4 => Priority::Routine,
    }
}

impl NotifyConfig {
    /// The rows of a window's step: one per target, each in its reader's language.
    pub fn window_rows(&self, node: &str, w: &WindowStep) -> Vec<NewNotice> {
        let (base, services, subject, origin) = self.window_notice(w);
        self.rows(node, &base, &services, &subject, &origin, w.at)
    }

    /// A window step's notice (in the default language and zone), the services it affects,
    /// its subject and what makes its rows' keys unique.
    pub(crate) fn window_notice(
        &self,
        w: &WindowStep,
    ) -> (Notice, Vec<ServiceName>, String, String) {
        let kind = match w.step {
            Step::Announced => NoticeKind::Announced,
            Step::Reminder { .. } => NoticeKind::Reminder,
            Step::Started => NoticeKind::Started,
            Step::Overrun { .. } => NoticeKind::Overrun,
            Step::Extended { .. } => NoticeKind::Extended,
            Step::Completed => NoticeKind::Completed,
            Step::Cancelled => NoticeKind::Cancelled,
        };
        let services: Vec<ServiceName> =
            w.spec.services.iter().map(|s| s.service.clone()).collect();
        let expected_end = match w.step {
            Step::Extended { until } => until,
            Step::Overrun { end } => end,
            _ => w.end,
        };
        let base = Notice {
            kind,
            title: w.spec.title.clone(),
            reason: w.spec.reason.clone(),
            start: w.start,
            expected_end: Some(expected_end),
            actual_end: matches!(w.step, Step::Completed).then_some(w.at),
            services: w
                .spec
                .services
                .iter()
                .map(|s| AffectedService {
                    name: s.service.clone(),
                    impact: match s.impact {
                        window::Impact::Outage => Impact::Outage,
                        window::Impact::Degraded => Impact::Degraded,
                    },
                })
                .collect(),
            alternatives: some(&w.spec.alternative),
            follow_up: some(&w.spec.follow_up),
            priority: priority(w.spec.priority()),
            // A window of hidden services alone has no public page: no link.
            link: if !w.spec.services.is_empty()
                && w.spec
                    .services
                    .iter()
                    .all(|s| self.hidden.contains(&s.service))
            {
                None
            } else {
                self.link(&format!("windows/{}", w.id))
            },
            duration: None,
            runbook: None,
            unsubscribe: None,
            lang: self.language,
            time_zone: self.time_zone.clone(),
        };
        let subject = format!("window:{}:{}", w.id, w.occurrence.as_millisecond());
        let origin = format!("{subject}:{}", w.step.key());
        (base, services, subject, origin)
    }

    /// The rows of an incident's news. Drill incidents are the caller's to leave out.
    pub fn incident_rows(&self, node: &str, n: &IncidentNews) -> Vec<NewNotice> {
        let (base, services, subject, origin) = self.incident_notice(n);
        self.rows(node, &base, &services, &subject, &origin, n.at)
    }

    /// An incident's notice, the service, its subject and what makes its rows' keys unique.
    pub(crate) fn incident_notice(
        &self,
        n: &IncidentNews,
    ) -> (Notice, Vec<ServiceName>, String, String) {
        let services = vec![n.service.clone()];
        let kind = match &n.written {
            Some(w) if w.status == IncidentStatus::Resolved => NoticeKind::IncidentResolved,
            Some(w) if w.opened => NoticeKind::IncidentOpened,
            Some(_) => NoticeKind::IncidentUpdated,
            None if n.resolved.is_some() => NoticeKind::IncidentResolved,
            None => NoticeKind::IncidentOpened,
        };
        let title = n.title.clone().unwrap_or_else(|| n.service.to_string());
        let base = Notice {
            kind,
            title: match &n.written {
                Some(w) if !w.opened && w.status != IncidentStatus::Resolved => {
                    format!("{title} ({})", w.status)
                }
                _ => title,
            },
            reason: match &n.written {
                Some(Written {
                    message: Some(m), ..
                }) => m.clone(),
                _ => n.reason.clone(),
            },
            start: n.since,
            expected_end: None,
            actual_end: n.resolved.map(|(at, _)| at),
            services: vec![AffectedService {
                name: n.service.clone(),
                impact: Impact::Outage,
            }],
            alternatives: None,
            follow_up: None,
            priority: notice_priority(n.priority),
            link: match n.incident_id {
                // A hidden service's incident has no public page, nor any news on the page.
                _ if self.hidden.contains(&n.service) => None,
                Some(id) => self.link(&format!("incidents/{id}")),
                None => self.link(""),
            },
            duration: n.resolved.map(|(_, d)| d),
            runbook: self.runbooks.get(&n.service).cloned(),
            unsubscribe: None,
            lang: self.language,
            time_zone: self.time_zone.clone(),
        };
        let subject = incident_subject(&n.service, n.since);
        let origin = match &n.written {
            Some(w) => format!("{subject}:{}", w.key),
            None => format!("{subject}:{}:{}", base.kind.as_str(), n.seq),
        };
        (base, services, subject, origin)
    }

    /// The rows of an incident whose priority became `n.priority` (from `was`, as it was
    /// in effect): an update saying so (`incident_updated`, titled with the new priority,
    /// its reason `P3 → P1`) for the targets the new priority reaches and the old one did
    /// not, since those never heard of the incident; none for the others, who did. (A
    /// priority routes; it is no news to the public: subscribers get nothing.) `n.written`
    /// carries the key that makes this change's rows its own.
    pub fn priority_rows(
        &self,
        node: &str,
        n: &IncidentNews,
        was: IncidentPriority,
    ) -> Vec<NewNotice> {
        let (mut base, services, subject, origin) = self.incident_notice(n);
        base.kind = NoticeKind::IncidentUpdated;
        let title = n.title.clone().unwrap_or_else(|| n.service.to_string());
        base.title = format!("{title} ({})", n.priority);
        base.reason = format!("{was} → {}", n.priority);
        let heard: Vec<(String, String)> = self
            .targets(&Facts {
                kind: base.kind,
                priority: notice_priority(was),
                services: &services,
            })
            .into_iter()
            .map(|t| (t.channel, t.recipient))
            .collect();
        self.rows(node, &base, &services, &subject, &origin, n.at)
            .into_iter()
            .filter(|r| {
                !heard
                    .iter()
                    .any(|(c, to)| *c == r.channel && *to == r.recipient)
            })
            .collect()
    }

    /// A test notice through `channel` (to `to`, or the channel's own recipients), whatever
    /// the routes say. `nonce` makes each test a notice of its own.
    pub fn test_rows(
        &self,
        node: &str,
        channel: &str,
        to: Option<&str>,
        at: Timestamp,
        nonce: &str,
    ) -> Vec<NewNotice> {
        let Some(spec) = self.channels.get(channel) else {
            return Vec::new();
        };
        let recipients: Vec<String> = match (to, spec.config.addressing()) {
            (Some(to), _) => vec![to.to_owned()],
            (None, crate::Addressing::Email) => spec.recipients.clone(),
            (None, _) => vec![String::new()],
        };
        let notice = Notice {
            kind: NoticeKind::Test,
            title: format!("upkeep → {channel}"),
            reason: "upkeep notify test".into(),
            start: at,
            expected_end: None,
            actual_end: None,
            services: Vec::new(),
            alternatives: None,
            follow_up: None,
            priority: Priority::Routine,
            link: self.link(""),
            duration: None,
            runbook: None,
            unsubscribe: None,
            lang: self.language,
            time_zone: self.time_zone.clone(),
        };
        let subject = format!("test:{nonce}");
        recipients
            .into_iter()
            .map(|recipient| row(node, &notice, channel, recipient, &subject, &subject))
            .collect()
    }

    fn rows(
        &self,
        node: &str,
        base: &Notice,
        services: &[ServiceName],
        subject: &str,
        origin: &str,
        at: Timestamp,
    ) -> Vec<NewNotice> {
        let digest = self.next_digest(at);
        let facts = Facts {
            kind: base.kind,
            priority: base.priority,
            services,
        };
        self.targets(&facts)
            .into_iter()
            .map(|t| {
                let notice = Notice {
                    lang: t.lang,
                    time_zone: t.zone.clone(),
                    ..base.clone()
                };
                let origin = format!("{origin}:{}", crate::lang_tag(t.lang));
                NewNotice {
                    digest: t.digest.then_some(digest),
                    ..row(node, &notice, &t.channel, t.recipient, subject, &origin)
                }
            })
            .collect()
    }

    pub(crate) fn link(&self, path: &str) -> Option<url::Url> {
        self.public_url.as_ref().and_then(|u| u.join(path).ok())
    }
}

/// What an incident's notices share (they are damped together).
pub fn incident_subject(service: &ServiceName, since: Timestamp) -> String {
    format!("incident:{service}:{}", since.as_millisecond())
}

pub(crate) fn row(
    node: &str,
    notice: &Notice,
    channel: &str,
    recipient: String,
    subject: &str,
    origin: &str,
) -> NewNotice {
    NewNotice {
        channel: channel.to_owned(),
        key: key(node, origin, channel, &recipient),
        recipient,
        kind: notice.kind.as_str().to_owned(),
        subject: subject.to_owned(),
        notice: serde_json::to_string(notice).expect("a notice serialises"),
        digest: None,
    }
}

/// `upk-` and 40 hex digits of SHA-256 over what makes the delivery unique: valid as a
/// Message-ID's left part and an HTTP header, the same every time the row is planned.
fn key(node: &str, origin: &str, channel: &str, recipient: &str) -> String {
    keyed("upk-", node, origin, channel, recipient)
}

/// `prefix` and 40 hex digits of SHA-256 over the parts (see [`key`]).
pub(crate) fn keyed(
    prefix: &str,
    node: &str,
    origin: &str,
    channel: &str,
    recipient: &str,
) -> String {
    let mut h = Sha256::new();
    for part in [node, origin, channel, recipient] {
        h.update(part.as_bytes());
        h.update([0]);
    }
    format!("{prefix}{}", &hex::encode(h.finalize())[..40])
}

fn some(text: &str) -> Option<String> {
    let t = text.trim();
    (!t.is_empty()).then(|| t.to_owned())
}

fn priority(p: window::Priority) -> Priority {
    match p {
        window::Priority::Emergency => Priority::Emergency,
        window::Priority::Important => Priority::Important,
        window::Priority::Routine => Priority::Routine,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::IdempotencyKey;
    use crate::route::tests::config;
    use upkeep_core::window::{AffectedService as Svc, WindowKind};

    fn spec() -> WindowSpec {
        WindowSpec {
            kind: WindowKind::Upgrade,
            title: "PostgreSQL 17".into(),
            reason: "security fixes".into(),
            start: "2026-12-01T00:00:00Z".parse().unwrap(),
            end: "2026-12-01T02:00:00Z".parse().unwrap(),
            tz: "UTC".into(),
            repeat: None,
            services: vec![Svc {
                service: ServiceName::new("db").unwrap(),
                impact: window::Impact::Outage,
            }],
            alternative: "the replica".into(),
            follow_up: " ".into(),
            priority: None,
        }
    }

    #[test]
    fn notices_about_hidden_services_alone_carry_no_link_to_the_public_page() {
        let mut c = config(None);
        c.public_url = Some("https://status.example.com/".parse().unwrap());
        c.hidden.insert(ServiceName::new("db").unwrap());
        let spec = spec();
        let step = WindowStep {
            id: 7,
            spec: &spec,
            occurrence: spec.start,
            start: spec.start,
            end: spec.end,
            step: Step::Announced,
            at: spec.start - SignedDuration::from_hours(48),
        };
        let link = |rows: Vec<NewNotice>| {
            serde_json::from_str::<Notice>(&rows[0].notice)
                .unwrap()
                .link
                .map(|l| l.to_string())
        };
        assert_eq!(link(c.window_rows("n", &step)), None, "db alone is hidden");
        let mut shared = spec.clone();
        shared.services.push(Svc {
            service: ServiceName::new("web").unwrap(),
            impact: window::Impact::Degraded,
        });
        let step = WindowStep {
            spec: &shared,
            ..step
        };
        assert_eq!(
            link(c.window_rows("n", &step)).as_deref(),
            Some("https://status.example.com/windows/7")
        );
        let news = |service: &str| IncidentNews {
            service: ServiceName::new(service).unwrap(),
            since: spec.start,
            reason: "down".into(),
            resolved: None,
            seq: 1,
            incident_id: Some(3),
            priority: IncidentPriority::P3,
            title: None,
            written: None,
            at: spec.start,
        };
        assert_eq!(link(c.incident_rows("n", &news("db"))), None);
        assert_eq!(
            link(c.incident_rows("n", &news("web"))).as_deref(),
            Some("https://status.example.com/incidents/3")
        );
    }

    #[test]
    fn a_window_step_carries_every_field_and_a_stable_key() {
        let mut c = config(None);
        c.public_url = Some("https://status.example.com/".parse().unwrap());
        let spec = spec();
        let step = WindowStep {
            id: 7,
            spec: &spec,
            occurrence: spec.start,
            start: spec.start,
            end: spec.end,
            step: Step::Reminder { before_s: 3600 },
            at: spec.start - SignedDuration::from_hours(1),
        };
        let rows = c.window_rows("node-a", &step);
        assert_eq!(rows.len(), 2, "routine: the two email recipients");
        // Routine, by the default routes: in the daily digest after the step.
        assert_eq!(
            rows[0].digest,
            Some("2026-12-01T08:00:00Z".parse().unwrap()),
            "{rows:?}"
        );
        let n: Notice = serde_json::from_str(&rows[0].notice).unwrap();
        assert_eq!(n.kind, NoticeKind::Reminder);
        assert_eq!(n.expected_end, Some(spec.end));
        assert_eq!(n.alternatives.as_deref(), Some("the replica"));
        assert_eq!(n.follow_up, None, "blank is left out");
        assert_eq!(
            n.link.unwrap().as_str(),
            "https://status.example.com/windows/7"
        );
        assert_eq!(
            rows[0].subject,
            format!("window:7:{}", spec.start.as_millisecond())
        );
        // The same step planned again is the same rows; another node's are its own.
        assert_eq!(c.window_rows("node-a", &step), rows);
        assert_ne!(c.window_rows("node-b", &step)[0].key, rows[0].key);
        assert_ne!(rows[0].key, rows[1].key);
        for r in &rows {
            IdempotencyKey::new(r.key.clone()).unwrap();
        }
    }

    #[test]
    fn an_incidents_resolution_carries_its_duration_and_runbook() {
        let mut c = config(None);
        let api = ServiceName::new("api").unwrap();
        c.runbooks
            .insert(api.clone(), "https://wiki/runbooks/api".into());
        let since: Timestamp = "2026-12-01T00:00:00Z".parse().unwrap();
        let news = IncidentNews {
            service: api.clone(),
            since,
            reason: "HTTP 500".into(),
            resolved: Some((
                since + SignedDuration::from_mins(90),
                SignedDuration::from_mins(90),
            )),
            seq: 42,
            incident_id: Some(3),
            priority: IncidentPriority::P3,
            title: None,
            written: None,
            at: since,
        };
        let rows = c.incident_rows("n", &news);
        assert_eq!(rows.len(), 3, "important: email twice and the chat app");
        let n: Notice = serde_json::from_str(&rows[0].notice).unwrap();
        assert_eq!(n.kind, NoticeKind::IncidentResolved);
        assert_eq!(n.duration, Some(SignedDuration::from_mins(90)));
        assert_eq!(n.runbook.as_deref(), Some("https://wiki/runbooks/api"));
        assert_eq!(rows[0].subject, incident_subject(&api, since));
    }

    #[test]
    fn a_written_update_is_its_own_notice_routed_by_the_incidents_priority() {
        let c = config(None);
        let api = ServiceName::new("api").unwrap();
        let since: Timestamp = "2026-12-01T00:00:00Z".parse().unwrap();
        let news = |p, status, key: &str| IncidentNews {
            service: api.clone(),
            since,
            reason: String::new(),
            resolved: None,
            seq: 0,
            incident_id: Some(3),
            priority: p,
            title: Some("payments down".into()),
            written: Some(Written {
                status,
                message: Some("a bad deploy".into()),
                key: key.into(),
                opened: false,
            }),
            at: since,
        };
        let (n, ..) = c.incident_notice(&news(
            IncidentPriority::P4,
            IncidentStatus::Identified,
            "u1",
        ));
        assert_eq!(n.kind, NoticeKind::IncidentUpdated);
        assert_eq!(n.title, "payments down (identified)");
        assert_eq!(n.reason, "a bad deploy");
        assert_eq!(n.priority, Priority::Routine);
        let (n, ..) = c.incident_notice(&news(IncidentPriority::P1, IncidentStatus::Resolved, "r"));
        assert_eq!(n.kind, NoticeKind::IncidentResolved);
        assert_eq!(n.priority, Priority::Emergency);
        assert_eq!(notice_priority(IncidentPriority::P3), Priority::Important);
        // Two writings are two notices; the same one planned twice is the same rows.
        let a = c.incident_rows(
            "n",
            &news(IncidentPriority::P2, IncidentStatus::Monitoring, "u1"),
        );
        let b = c.incident_rows(
            "n",
            &news(IncidentPriority::P2, IncidentStatus::Monitoring, "u2"),
        );
        assert!(!a.is_empty());
        assert_ne!(a[0].key, b[0].key);
        // Raised from P3 to P1: only what emergencies reach and important news does not
        // (the webhook) hears of it; lowered, or unchanged, no one new does.
        let raised = c.priority_rows(
            "n",
            &news(IncidentPriority::P1, IncidentStatus::Investigating, "p1"),
            IncidentPriority::P3,
        );
        let to: Vec<&str> = raised.iter().map(|r| r.channel.as_str()).collect();
        assert_eq!(to, ["hook"], "{raised:?}");
        let n: Notice = serde_json::from_str(&raised[0].notice).unwrap();
        assert_eq!(n.kind, NoticeKind::IncidentUpdated);
        assert_eq!(n.title, "payments down (P1)");
        assert_eq!(n.reason, "P3 → P1");
        assert_eq!(n.priority, Priority::Emergency);
        for (now, was) in [
            (IncidentPriority::P3, IncidentPriority::P1),
            (IncidentPriority::P2, IncidentPriority::P3),
        ] {
            let rows = c.priority_rows("n", &news(now, IncidentStatus::Investigating, "p"), was);
            assert!(rows.is_empty(), "{was} → {now}: {rows:?}");
        }
        assert_eq!(
            a,
            c.incident_rows(
                "n",
                &news(IncidentPriority::P2, IncidentStatus::Monitoring, "u1")
            )
        );
    }
}
