//! Routing: which channels and recipients a notice goes to, in which language and time zone.
//!
//! [`NotifyConfig`] is `[notify]` as upkeep-config validated it: the channels, the routes
//! (like Alertmanager's: each matches on priority, notice kind and services; the first that
//! matches wins unless it says `continue = true`) and the defaults. Without routes, the
//! defaults the issue asks for: emergency to every channel, important to email and the chat
//! apps, routine to email as one daily digest. A route with `digest = true` gathers its
//! notices for [`NotifyConfig::next_digest`] (`digest_at` in `[notify] timezone`) instead of
//! sending each at once. [`NotifyConfig::targets`] is the one decision; building notices is
//! `plan.rs`'s, sending the dispatcher's.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use upkeep_core::ServiceName;
use upkeep_core::i18n::Lang;

use crate::channels::{Addressing, ChannelConfig};
use crate::notice::{NoticeKind, Priority, ReaderZone};

/// `[notify]`, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct NotifyConfig {
    /// The public page notices link to (`https://status.example.com/`).
    pub public_url: Option<url::Url>,
    /// The language of notices unless a route says otherwise.
    pub language: Lang,
    /// The zone times are shown in unless a route says otherwise.
    pub time_zone: ReaderZone,
    /// A folder of templates replacing the built-in ones (`en/subject.txt`).
    pub templates_dir: Option<PathBuf>,
    /// At most one notice per incident within this.
    pub flap_interval: Duration,
    /// How long a dispatcher holds the rows it leased before another may take them.
    pub lease: Duration,
    /// A notice still not delivered this long after it was due is given up.
    pub give_up_after: Duration,
    /// When the daily digest goes out, in `time_zone` (`digest_at = "08:00"`).
    pub digest_at: jiff::civil::Time,
    pub channels: BTreeMap<String, ChannelSpec>,
    /// The routes as written, or the defaults when none were.
    pub routes: Vec<Route>,
    /// Each service's runbook (a URL or a path), for its incident notices.
    pub runbooks: BTreeMap<ServiceName, String>,
    /// Each service's incident priority (`priority = "P2"`), where configured: its
    /// incidents' unless they have their own (P3 when neither says).
    pub priorities: BTreeMap<ServiceName, upkeep_core::incident::IncidentPriority>,
    /// Services left off the status page (`public = false`): a notice about them alone
    /// carries no link to it (their pages there are a 404, as an unknown one's).
    pub hidden: std::collections::BTreeSet<ServiceName>,
    /// `[notify.subscribers]`: people who subscribed through the public API, and what they
    /// get. None: no subscriptions are taken.
    pub subscribers: Option<crate::SubscribersConfig>,
}

/// One `[notify.channels.NAME]`.
#[derive(Debug, Clone, PartialEq)]
pub struct ChannelSpec {
    pub config: ChannelConfig,
    /// Sends in flight at once.
    pub concurrency: u32,
    /// At most this many sends per period.
    pub rate: Option<Rate>,
    /// Who its notices go to when a route names none (addresses, chat ids).
    pub recipients: Vec<String>,
}

/// `rate = "30/m"`: at most `count` sends per `per`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    pub count: u32,
    pub per: Duration,
}

impl Rate {
    /// The time between two sends.
    pub fn spacing(&self) -> Duration {
        self.per / self.count.max(1)
    }
}

/// One `[[notify.routes]]`. An empty list matches everything.
#[derive(Debug, Clone, PartialEq)]
pub struct Route {
    pub priorities: Vec<Priority>,
    pub notices: Vec<NoticeKind>,
    /// Matches a notice that affects any of them.
    pub services: Vec<ServiceName>,
    pub channels: Vec<String>,
    /// Replaces each channel's own recipients.
    pub recipients: Option<Vec<String>>,
    pub language: Option<Lang>,
    pub time_zone: Option<ReaderZone>,
    /// Go on to the next routes after this one matched.
    pub continue_: bool,
    /// Gather the route's notices into the daily digest (one mail per recipient at
    /// `digest_at`) instead of one each. Email channels only (validation says so).
    pub digest: bool,
}

/// Where one copy of a notice goes.
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    pub channel: String,
    /// An address or chat id; empty for the channel's group (or its configured chat).
    pub recipient: String,
    pub lang: Lang,
    pub zone: ReaderZone,
    /// In the daily digest rather than at once.
    pub digest: bool,
}

/// What routes match on.
#[derive(Debug, Clone, Copy)]
pub struct Facts<'a> {
    pub kind: NoticeKind,
    pub priority: Priority,
    pub services: &'a [ServiceName],
}

impl Route {
    fn matches(&self, f: &Facts) -> bool {
        (self.priorities.is_empty() || self.priorities.contains(&f.priority))
            && (self.notices.is_empty() || self.notices.contains(&f.kind))
            && (self.services.is_empty() || f.services.iter().any(|s| self.services.contains(s)))
    }
}

/// The routes used when `[notify]` names none: emergency to every channel, important to
/// email and the chat apps (both at once), routine to email as the daily digest. Each
/// channel's own `recipients`.
pub fn default_routes(channels: &BTreeMap<String, ChannelSpec>) -> Vec<Route> {
    let pick = |keep: &dyn Fn(&ChannelConfig) -> bool| -> Vec<String> {
        channels
            .iter()
            .filter(|(_, c)| keep(&c.config))
            .map(|(n, _)| n.clone())
            .collect()
    };
    let route = |p: Priority, channels: Vec<String>, digest: bool| Route {
        priorities: vec![p],
        notices: Vec::new(),
        services: Vec::new(),
        channels,
        recipients: None,
        language: None,
        time_zone: None,
        continue_: false,
        digest,
    };
    let email = |c: &ChannelConfig| c.addressing() == Addressing::Email;
    vec![
        route(Priority::Emergency, pick(&|_| true), false),
        route(
            Priority::Important,
            pick(&|c| email(c) || c.is_chat()),
            false,
        ),
        route(Priority::Routine, pick(&email), true),
    ]
}

impl NotifyConfig {
    /// When the first digest after `at` goes out: the next `digest_at` in `[notify]
    /// timezone` strictly after `at` (a notice planned at 08:00 sharp waits for tomorrow's:
    /// today's may be on its way). A `digest_at` a daylight-saving change skips is the
    /// first time after the gap.
    pub fn next_digest(&self, at: jiff::Timestamp) -> jiff::Timestamp {
        let tz = self.time_zone.tz();
        let mut day = at.to_zoned(tz.clone()).date();
        for _ in 0..3 {
            if let Ok(z) = day.to_datetime(self.digest_at).to_zoned(tz.clone())
                && z.timestamp() > at
            {
                return z.timestamp();
            }
            match day.tomorrow() {
                Ok(next) => day = next,
                Err(_) => break,
            }
        }
        // The end of time: send now rather than never.
        at
    }

    /// An incident's priority: its own, else its service's configured one, else P3.
    pub fn incident_priority(
        &self,
        service: &ServiceName,
        own: Option<upkeep_core::incident::IncidentPriority>,
    ) -> upkeep_core::incident::IncidentPriority {
        own.or_else(|| self.priorities.get(service).copied())
            .unwrap_or_default()
    }

    /// Every copy of a notice with these facts: the first matching route's, and the next
    /// ones' while a matching route says `continue`. Each (channel, recipient, language) once.
    pub fn targets(&self, facts: &Facts) -> Vec<Target> {
        let mut out: Vec<Target> = Vec::new();
        for route in &self.routes {
            if !route.matches(facts) {
                continue;
            }
            let lang = route.language.unwrap_or(self.language);
            let zone = route.time_zone.as_ref().unwrap_or(&self.time_zone);
            for name in &route.channels {
                let Some(spec) = self.channels.get(name) else {
                    continue; // validation names every route's channels
                };
                let recipients = match spec.config.addressing() {
                    Addressing::Group => vec![String::new()],
                    Addressing::Email | Addressing::Chat => {
                        let list = route.recipients.as_ref().unwrap_or(&spec.recipients);
                        match (spec.config.addressing(), list.is_empty()) {
                            // A bot's configured chat.
                            (Addressing::Chat, true) => vec![String::new()],
                            _ => list.clone(),
                        }
                    }
                };
                for recipient in recipients {
                    let t = Target {
                        channel: name.clone(),
                        recipient,
                        lang,
                        zone: zone.clone(),
                        digest: route.digest,
                    };
                    // One person once per channel and language, whatever the case of the
                    // address each route spelled.
                    let same = |a: &str, b: &str| spec.config.addressing().same(a, b);
                    if !out.iter().any(|o| {
                        o.channel == t.channel
                            && same(&o.recipient, &t.recipient)
                            && o.lang == t.lang
                    }) {
                        out.push(t);
                    }
                }
            }
            if !route.continue_ {
                break;
            }
        }
        out
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    fn spec(toml_text: &str, recipients: &[&str]) -> ChannelSpec {
        ChannelSpec {
            config: toml::from_str(toml_text).unwrap(),
            concurrency: 4,
            rate: None,
            recipients: recipients.iter().map(|r| r.to_string()).collect(),
        }
    }

    pub(crate) fn config(routes: Option<Vec<Route>>) -> NotifyConfig {
        let mut channels = BTreeMap::new();
        channels.insert(
            "mail".to_owned(),
            spec(
                "kind = \"email\"\nurl = \"smtp://127.0.0.1:25\"\nfrom = \"u <u@example.com>\"",
                &["ops@example.com", "boss@example.com"],
            ),
        );
        channels.insert(
            "wecom".to_owned(),
            spec("kind = \"wecom\"\nurl_env = \"W\"", &[]),
        );
        channels.insert(
            "hook".to_owned(),
            spec(
                "kind = \"webhook\"\nurl = \"https://x\"\nsecret_env = \"S\"",
                &[],
            ),
        );
        let routes = routes.unwrap_or_else(|| default_routes(&channels));
        NotifyConfig {
            public_url: None,
            language: Lang::En,
            time_zone: ReaderZone::utc(),
            templates_dir: None,
            flap_interval: Duration::from_secs(600),
            lease: Duration::from_secs(600),
            give_up_after: Duration::from_secs(86_400),
            digest_at: jiff::civil::time(8, 0, 0, 0),
            channels,
            routes,
            runbooks: BTreeMap::new(),
            priorities: BTreeMap::new(),
            hidden: Default::default(),
            subscribers: None,
        }
    }

    fn facts(priority: Priority) -> Facts<'static> {
        Facts {
            kind: NoticeKind::Announced,
            priority,
            services: &[],
        }
    }

    fn sent(c: &NotifyConfig, f: &Facts) -> Vec<String> {
        c.targets(f)
            .into_iter()
            .map(|t| format!("{}:{}:{}", t.channel, t.recipient, crate::lang_tag(t.lang)))
            .collect()
    }

    #[test]
    fn defaults_send_by_priority() {
        let c = config(None);
        assert_eq!(
            sent(&c, &facts(Priority::Emergency)),
            [
                "hook::en",
                "mail:ops@example.com:en",
                "mail:boss@example.com:en",
                "wecom::en"
            ]
        );
        assert_eq!(
            sent(&c, &facts(Priority::Important)),
            [
                "mail:ops@example.com:en",
                "mail:boss@example.com:en",
                "wecom::en"
            ]
        );
        assert_eq!(
            sent(&c, &facts(Priority::Routine)),
            ["mail:ops@example.com:en", "mail:boss@example.com:en"]
        );
    }

    #[test]
    fn the_digest_goes_at_the_next_digest_at_in_the_notify_zone() {
        let mut c = config(None);
        c.time_zone = ReaderZone::new("Asia/Shanghai").unwrap();
        let t = |s: &str| s.parse::<jiff::Timestamp>().unwrap();
        // 19:00 UTC is 03:00 in Shanghai: today's 08:00 there is still to come.
        assert_eq!(
            c.next_digest(t("2026-11-26T19:00:00Z")),
            t("2026-11-27T00:00:00Z")
        );
        // 08:00 sharp: tomorrow's (today's may be on its way).
        assert_eq!(
            c.next_digest(t("2026-11-27T00:00:00Z")),
            t("2026-11-28T00:00:00Z")
        );
        c.time_zone = ReaderZone::new("Europe/Berlin").unwrap();
        c.digest_at = jiff::civil::time(2, 30, 0, 0);
        // 02:30 does not exist in Berlin on 2026-03-29: the first time after the gap.
        assert_eq!(
            c.next_digest(t("2026-03-28T23:00:00Z")),
            t("2026-03-29T01:30:00Z")
        );
    }

    #[test]
    fn defaults_gather_routine_notices_into_the_email_digest() {
        let c = config(None);
        let digest = |p| -> Vec<(String, bool)> {
            c.targets(&facts(p))
                .into_iter()
                .map(|t| (t.channel, t.digest))
                .collect()
        };
        assert!(
            digest(Priority::Routine)
                .iter()
                .all(|(ch, d)| ch == "mail" && *d)
        );
        assert!(digest(Priority::Important).iter().all(|(_, d)| !d));
        assert!(digest(Priority::Emergency).iter().all(|(_, d)| !d));
    }

    #[test]
    fn the_first_matching_route_wins_unless_it_continues() {
        let db = ServiceName::new("db").unwrap();
        let route = |services: Vec<ServiceName>, channels: &[&str], cont: bool| Route {
            priorities: Vec::new(),
            notices: vec![NoticeKind::Announced, NoticeKind::IncidentOpened],
            services,
            channels: channels.iter().map(|c| c.to_string()).collect(),
            recipients: Some(vec!["dba@example.com".into()]),
            language: Some(Lang::ZhCn),
            time_zone: None,
            continue_: cont,
            digest: false,
        };
        let mut c = config(Some(vec![
            route(vec![db.clone()], &["mail", "wecom"], false),
            route(Vec::new(), &["hook"], false),
        ]));
        let on_db = Facts {
            services: std::slice::from_ref(&db),
            ..facts(Priority::Routine)
        };
        assert_eq!(
            sent(&c, &on_db),
            ["mail:dba@example.com:zh-CN", "wecom::zh-CN"]
        );
        assert_eq!(sent(&c, &facts(Priority::Routine)), ["hook::zh-CN"]);
        let reminder = Facts {
            kind: NoticeKind::Reminder,
            ..on_db
        };
        assert!(sent(&c, &reminder).is_empty(), "no route matches");
        c.routes[0].continue_ = true;
        assert_eq!(
            sent(&c, &on_db),
            ["mail:dba@example.com:zh-CN", "wecom::zh-CN", "hook::zh-CN"]
        );
    }
}
