//! `[notify]`: channels, routes and how notices read, checked into upkeep-outbox's
//! [`NotifyConfig`].
//!
//! Each channel's table is upkeep-outbox's channel config of its `kind` (the same struct the
//! channel is built from), plus three keys every channel takes: `concurrency`, `rate` and
//! `recipients`. What needs the daemon's environment (secrets named by `*_env` and `*_file`)
//! is read when the daemon builds the channels, and reported there with its place in this
//! file; `upkeep check` reads no secrets. Routes must name configured channels and services,
//! known priorities and notice kinds, and recipients the channel can take; a digest route
//! (`digest = true`) email channels alone, since a digest is one mail.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use upkeep_core::ServiceName;
use upkeep_core::i18n::Lang;
use upkeep_outbox::{
    Addressing, ChannelConfig, ChannelSpec, NoticeKind, NotifyConfig, Priority, Rate, ReaderZone,
    Route, SubscribersConfig,
};

use super::Validator;
use crate::bounds::Limits;
use crate::raw::{RawNotify, RawRoute, RawSubscribers};

/// `flap_interval`: zero sends every change; a day at most.
const FLAP: Limits<Duration> = Limits {
    min: Duration::ZERO,
    max: Duration::from_secs(24 * 3600),
};
/// `lease`: long enough for a send (a channel's timeout is at most 5m), short enough that a
/// dead dispatcher's rows do not wait for hours.
const LEASE: Limits<Duration> = Limits {
    min: Duration::from_secs(10),
    max: Duration::from_secs(6 * 3600),
};
/// `give_up_after`: at least a minute of retries, at most a month.
const GIVE_UP: Limits<Duration> = Limits {
    min: Duration::from_secs(60),
    max: Duration::from_secs(30 * 24 * 3600),
};
/// `confirm_within`: a confirmation link works from ten minutes (a mail may be slow) to a
/// month.
const CONFIRM: Limits<Duration> = Limits {
    min: Duration::from_secs(600),
    max: Duration::from_secs(30 * 24 * 3600),
};
/// `confirmations_per_hour` (default 100) and `max_unconfirmed` (default 1000): a budget of
/// zero would refuse every subscription; more than these is a mail cannon, not a list.
const CONFIRMATIONS: Limits<u32> = Limits {
    min: 1,
    max: 100_000,
};
const UNCONFIRMED: Limits<u32> = Limits {
    min: 1,
    max: 1_000_000,
};

/// `concurrency`: sends in flight per channel.
const CONCURRENCY: Limits<u32> = Limits { min: 1, max: 256 };

const KINDS: &str = "email, webhook, slack, wecom, dingtalk, feishu, telegram";

impl Validator<'_> {
    pub(super) fn notify(
        &mut self,
        raw: RawNotify,
        base: &Path,
        services: &BTreeMap<ServiceName, super::ServiceConfig>,
    ) -> Option<NotifyConfig> {
        let before = self.problems.len();
        let k = |field: &'static str| ["notify", field];
        let public_url = raw.public_url.as_deref().and_then(|text| {
            match url::Url::parse(text) {
                Ok(mut u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => {
                    // Links are joined onto it: a base without a final slash would lose its
                    // last path segment.
                    if !u.path().ends_with('/') {
                        let path = format!("{}/", u.path());
                        u.set_path(&path);
                    }
                    Some(u)
                }
                _ => {
                    self.problem(
                        &k("public_url"),
                        format!("public_url `{text}` is not an http(s) URL"),
                        Some("e.g. public_url = \"https://status.example.com/\"".into()),
                    );
                    None
                }
            }
        });
        let language = self.language(&k("language"), &raw.language);
        let time_zone = self.zone(&k("timezone"), &raw.timezone);
        let templates_dir = raw.templates_dir.as_deref().map(|d| base.join(d));
        if let Some(dir) = &templates_dir
            && let Err(e) = upkeep_outbox::Templates::load(Some(dir))
        {
            self.problem(
                &k("templates_dir"),
                format!("the templates in {} do not load:\n{e}", dir.display()),
                None,
            );
        }
        let flap_interval = self.duration(&k("flap_interval"), &raw.flap_interval, FLAP);
        let lease = self.duration(&k("lease"), &raw.lease, LEASE);
        let give_up_after = self.duration(&k("give_up_after"), &raw.give_up_after, GIVE_UP);
        let digest_at = match raw.digest_at.trim().parse::<jiff::civil::Time>() {
            Ok(t) => Some(t),
            Err(_) => {
                self.problem(
                    &k("digest_at"),
                    format!("digest_at `{}` is not a time of day", raw.digest_at),
                    Some("e.g. digest_at = \"08:00\" (in [notify] timezone)".into()),
                );
                None
            }
        };
        let mut channels = BTreeMap::new();
        for (name, table) in raw.channels {
            if let Some(spec) = self.channel(&name, table) {
                channels.insert(name, spec);
            }
        }
        let routes = match raw.routes {
            Some(raw_routes) => raw_routes
                .into_iter()
                .enumerate()
                .filter_map(|(i, r)| self.route(i, r, &channels, services))
                .collect(),
            None => {
                for (name, spec) in &channels {
                    if spec.config.addressing() == Addressing::Email && spec.recipients.is_empty() {
                        self.problem(
                            &["notify", "channels", name],
                            format!("email channel `{name}` has no recipients"),
                            Some(
                                "add recipients = [\"ops@example.com\"], or routes that name some"
                                    .into(),
                            ),
                        );
                    }
                }
                upkeep_outbox::default_routes(&channels)
            }
        };
        let subscribers = raw
            .subscribers
            .and_then(|r| self.subscribers(r, base, &channels, public_url.is_some()));
        let runbooks = services
            .iter()
            .filter_map(|(n, s)| Some((n.clone(), s.runbook.clone()?)))
            .collect();
        let priorities = services
            .iter()
            .filter_map(|(n, s)| Some((n.clone(), s.priority?)))
            .collect();
        let hidden = services
            .iter()
            .filter(|(_, s)| s.page.hidden)
            .map(|(n, _)| n.clone())
            .collect();
        if self.problems.len() > before {
            return None;
        }
        Some(NotifyConfig {
            public_url,
            language: language?,
            time_zone: time_zone?,
            templates_dir,
            flap_interval: flap_interval?,
            lease: lease?,
            give_up_after: give_up_after?,
            digest_at: digest_at?,
            channels,
            routes,
            runbooks,
            priorities,
            hidden,
            subscribers,
        })
    }

    fn language<S: AsRef<str>>(&mut self, key: &[S], text: &str) -> Option<Lang> {
        match text {
            "en" => Some(Lang::En),
            "zh-CN" => Some(Lang::ZhCn),
            other => {
                self.problem(
                    key,
                    format!("unknown language `{other}`"),
                    Some("use \"en\" or \"zh-CN\"".into()),
                );
                None
            }
        }
    }

    fn zone<S: AsRef<str>>(&mut self, key: &[S], text: &str) -> Option<ReaderZone> {
        ReaderZone::new(text)
            .map_err(|e| {
                self.problem(
                    key,
                    e.to_string(),
                    Some("an IANA time zone such as \"Asia/Shanghai\" or \"UTC\"".into()),
                )
            })
            .ok()
    }

    fn channel(&mut self, name: &str, mut table: toml::Table) -> Option<ChannelSpec> {
        let key = |field: &str| {
            vec![
                "notify".to_owned(),
                "channels".into(),
                name.into(),
                field.into(),
            ]
        };
        let before = self.problems.len();
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            self.problem(
                &["notify", "channels", name],
                format!("channel name `{name}` may hold only letters, digits, `-` and `_`"),
                None,
            );
        }
        let concurrency = match table.remove("concurrency") {
            None => 4,
            Some(toml::Value::Integer(n))
                if (i64::from(CONCURRENCY.min)..=i64::from(CONCURRENCY.max)).contains(&n) =>
            {
                n as u32
            }
            Some(_) => {
                self.problem(
                    &key("concurrency"),
                    format!(
                        "concurrency must be a number from {} to {}",
                        CONCURRENCY.min, CONCURRENCY.max
                    ),
                    None,
                );
                1
            }
        };
        let rate = match table.remove("rate") {
            None => None,
            Some(toml::Value::String(text)) => {
                let rate = parse_rate(&text);
                if rate.is_none() {
                    self.problem(
                        &key("rate"),
                        format!(
                            "rate `{text}` is not a number of sends per second, minute or hour"
                        ),
                        Some("e.g. rate = \"20/m\" (also \"5/s\", \"100/h\")".into()),
                    );
                }
                rate
            }
            Some(_) => {
                self.problem(&key("rate"), "rate must be a string such as \"20/m\"", None);
                None
            }
        };
        let recipients = match table.remove("recipients") {
            None => Vec::new(),
            Some(v) => self.strings(&key("recipients"), v),
        };
        let config: Option<ChannelConfig> = match toml::Value::Table(table.clone()).try_into() {
            Ok(c) => Some(c),
            Err(e) => {
                let message = e.message().trim().to_owned();
                if let Some((field, mut names)) = super::unknown_key(&message) {
                    // Its kind's keys, and those every channel takes (read above): serde's
                    // list named only the first.
                    names.extend(["kind", "concurrency", "rate", "recipients"].map(String::from));
                    self.problem(
                        &key(&field),
                        format!("channel `{name}`: unknown key `{field}`"),
                        Some(super::unknown_key_hint(&field, &names)),
                    );
                    return None;
                }
                // Point at the key the message names when there is one.
                let field = message
                    .split('`')
                    .nth(1)
                    .filter(|f| table.contains_key(*f))
                    .unwrap_or("kind");
                let hint = (message.contains("variant") || !table.contains_key("kind"))
                    .then(|| format!("kind is one of {KINDS}"));
                self.problem(&key(field), format!("channel `{name}`: {message}"), hint);
                None
            }
        };
        if let Some(c) = &config {
            // Seen without reading a secret (break-it, session 12: check passed a webhook
            // naming none, and the daemon refused to start); said as the daemon says it.
            for what in c.unnamed_secrets() {
                self.problem(
                    &key(&format!("{what}_env")),
                    format!("channel `{name}`: the {what} is missing"),
                    Some(format!(
                        "name an environment variable with {what}_env or a file with {what}_file; a config never holds the {what} itself"
                    )),
                );
            }
            for r in &recipients {
                if let Err(why) = c.addressing().check(r) {
                    self.problem(&key("recipients"), format!("channel `{name}`: {why}"), None);
                }
            }
        }
        if self.problems.len() > before {
            return None;
        }
        let config = config?;
        // Each person once, an address's domain in lower case (break-it, session 11).
        let recipients = config.addressing().dedupe(&recipients);
        Some(ChannelSpec {
            config,
            concurrency,
            rate,
            recipients,
        })
    }

    fn strings(&mut self, key: &[String], v: toml::Value) -> Vec<String> {
        let list = match v {
            toml::Value::String(s) => vec![toml::Value::String(s)],
            toml::Value::Array(a) => a,
            _ => Vec::new(),
        };
        let mut out = Vec::new();
        for item in list {
            match item {
                toml::Value::String(s) => out.push(s),
                other => {
                    self.problem(key, format!("`{other}` is not a string"), None);
                }
            }
        }
        out
    }

    fn subscribers(
        &mut self,
        raw: RawSubscribers,
        base: &Path,
        channels: &BTreeMap<String, ChannelSpec>,
        has_public_url: bool,
    ) -> Option<SubscribersConfig> {
        let before = self.problems.len();
        let key = |field: &str| vec!["notify".to_owned(), "subscribers".into(), field.into()];
        if !has_public_url {
            self.problem(
                &["notify", "subscribers"],
                "subscribers need public_url: their mails link to it to confirm and unsubscribe",
                Some("set [notify] public_url = \"https://status.example.com/\"".into()),
            );
        }
        let email: Vec<&String> = channels
            .iter()
            .filter(|(_, c)| c.config.addressing() == Addressing::Email)
            .map(|(n, _)| n)
            .collect();
        let channel = match (&raw.channel, email.as_slice()) {
            (Some(name), _) if email.contains(&name) => Some(name.clone()),
            (Some(name), _) => {
                self.problem(
                    &key("channel"),
                    format!("`{name}` is not an email channel under [notify.channels]"),
                    None,
                );
                None
            }
            (None, [one]) => Some((*one).clone()),
            (None, []) => {
                self.problem(
                    &["notify", "subscribers"],
                    "subscribers need an email channel, and none is configured",
                    Some("add [notify.channels.mail] with kind = \"email\"".into()),
                );
                None
            }
            (None, _) => {
                self.problem(
                    &["notify", "subscribers"],
                    "there are several email channels: say which one subscribers' mails use",
                    Some(format!("channel = \"{}\"", email[0])),
                );
                None
            }
        };
        let notices = match raw.notice {
            None => SubscribersConfig::default_notices(),
            Some(v) => {
                let mut out = Vec::new();
                for n in self.strings(&key("notice"), v) {
                    match NoticeKind::parse(&n).filter(|k| {
                        !matches!(k, NoticeKind::Test | NoticeKind::ConfirmSubscription)
                    }) {
                        Some(k) => out.push(k),
                        None => self.problem(
                            &key("notice"),
                            format!("subscribers cannot be sent `{n}` notices"),
                            Some(format!(
                                "use {}",
                                SubscribersConfig::default_notices()
                                    .iter()
                                    .map(|k| k.as_str())
                                    .collect::<Vec<_>>()
                                    .join(", ")
                            )),
                        ),
                    }
                }
                out
            }
        };
        let confirm_within = self.duration(&key("confirm_within"), &raw.confirm_within, CONFIRM);
        let mut count =
            |name: &str, value: Option<i64>, default: u32, limits: Limits<u32>| match value {
                None => default,
                Some(n) if (i64::from(limits.min)..=i64::from(limits.max)).contains(&n) => n as u32,
                Some(_) => {
                    self.problem(
                        &key(name),
                        format!(
                            "{name} must be a number from {} to {}",
                            limits.min, limits.max
                        ),
                        None,
                    );
                    default
                }
            };
        let confirmations_per_hour = count(
            "confirmations_per_hour",
            raw.confirmations_per_hour,
            100,
            CONFIRMATIONS,
        );
        let max_unconfirmed = count("max_unconfirmed", raw.max_unconfirmed, 1000, UNCONFIRMED);
        if raw.secret_env.is_some() && raw.secret_file.is_some() {
            self.problem(
                &key("secret_file"),
                "secret_env and secret_file are both set: keep one",
                None,
            );
        }
        if self.problems.len() > before {
            return None;
        }
        Some(SubscribersConfig {
            channel: channel?,
            notices,
            confirm_within: confirm_within?,
            secret_env: raw.secret_env,
            secret_file: raw.secret_file.map(|f| base.join(f)),
            confirmations_per_hour,
            max_unconfirmed,
        })
    }

    fn route(
        &mut self,
        i: usize,
        raw: RawRoute,
        channels: &BTreeMap<String, ChannelSpec>,
        services: &BTreeMap<ServiceName, super::ServiceConfig>,
    ) -> Option<Route> {
        let before = self.problems.len();
        let index = i.to_string();
        let key = |field: &str| {
            vec![
                "notify".to_owned(),
                "routes".into(),
                index.clone(),
                field.into(),
            ]
        };
        let mut names = |field: &str, v: Option<toml::Value>| match v {
            None => Vec::new(),
            Some(v) => self.strings(&key(field), v),
        };
        let priority_names = names("priority", raw.priority);
        let notice_names = names("notice", raw.notice);
        let service_names = names("services", raw.services);
        let mut priorities = Vec::new();
        for p in priority_names {
            match Priority::parse(&p) {
                Some(p) => priorities.push(p),
                None => self.problem(
                    &key("priority"),
                    format!("unknown priority `{p}`"),
                    Some("use emergency, important or routine".into()),
                ),
            }
        }
        let mut notices = Vec::new();
        for n in notice_names {
            match NoticeKind::parse(&n) {
                Some(kind) => notices.push(kind),
                None => self.problem(
                    &key("notice"),
                    format!("unknown notice `{n}`"),
                    Some(format!(
                        "use {}",
                        NoticeKind::ALL.map(|k| k.as_str()).join(", ")
                    )),
                ),
            }
        }
        let mut route_services = Vec::new();
        for s in service_names {
            match ServiceName::new(s.clone())
                .ok()
                .filter(|n| services.contains_key(n))
            {
                Some(n) => route_services.push(n),
                None => self.problem(
                    &key("services"),
                    format!("no service named `{s}` is configured"),
                    None,
                ),
            }
        }
        if raw.channels.is_empty() {
            self.problem(
                &["notify", "routes", &index],
                "a route sends to no channel",
                Some("add channels = [\"...\"]".into()),
            );
        }
        let digest = match raw.digest {
            None => false,
            Some(toml::Value::Boolean(b)) => b,
            Some(toml::Value::String(s)) if s == "daily" => true,
            Some(other) => {
                self.problem(
                    &key("digest"),
                    format!("digest = {other} is neither true, false nor \"daily\""),
                    None,
                );
                false
            }
        };
        let mut takes_recipients = false;
        // How this route's recipients are addressed (one kind per route: checked below).
        let mut addressing = None;
        for c in &raw.channels {
            let Some(spec) = channels.get(c) else {
                self.problem(
                    &key("channels"),
                    format!("no channel named `{c}` is configured under [notify.channels]"),
                    None,
                );
                continue;
            };
            let addressing_of = spec.config.addressing();
            if digest && addressing_of != Addressing::Email {
                self.problem(
                    &key("digest"),
                    format!("a digest is one mail, and channel `{c}` is not an email channel"),
                    Some(
                        "give the chat apps and webhooks a route of their own, without digest"
                            .into(),
                    ),
                );
            }
            if addressing_of == Addressing::Group {
                continue;
            }
            takes_recipients = true;
            addressing.get_or_insert(addressing_of);
            match &raw.recipients {
                Some(list) => {
                    for r in list {
                        if let Err(why) = addressing_of.check(r) {
                            self.problem(
                                &key("recipients"),
                                format!("for channel `{c}`: {why}"),
                                Some("give each kind of recipient a route of its own".into()),
                            );
                        }
                    }
                }
                None if addressing_of == Addressing::Email && spec.recipients.is_empty() => self
                    .problem(
                        &key("channels"),
                        format!("email channel `{c}` has no recipients here or in its table"),
                        Some("add recipients = [\"ops@example.com\"] to the route".into()),
                    ),
                None => {}
            }
        }
        if raw.recipients.is_some() && !takes_recipients && self.problems.len() == before {
            self.problem(
                &key("recipients"),
                "none of this route's channels takes recipients (they post to their group)",
                None,
            );
        }
        let language = raw
            .language
            .as_deref()
            .and_then(|l| self.language(&key("language"), l));
        let time_zone = raw
            .timezone
            .as_deref()
            .and_then(|z| self.zone(&key("timezone"), z));
        if self.problems.len() > before {
            return None;
        }
        Some(Route {
            priorities,
            notices,
            services: route_services,
            channels: raw.channels,
            // Each person once, an address's domain in lower case (break-it, session 11).
            recipients: raw
                .recipients
                .map(|list| addressing.unwrap_or(Addressing::Chat).dedupe(&list)),
            language,
            time_zone,
            continue_: raw.continue_,
            digest,
        })
    }
}

/// `20/m`: a count and a unit (s, m, h; also sec, min, hour).
fn parse_rate(text: &str) -> Option<Rate> {
    let (count, unit) = text.split_once('/')?;
    let count: u32 = count
        .trim()
        .parse()
        .ok()
        .filter(|n| (1..=100_000).contains(n))?;
    let per = match unit.trim() {
        "s" | "sec" | "second" => Duration::from_secs(1),
        "m" | "min" | "minute" => Duration::from_secs(60),
        "h" | "hour" => Duration::from_secs(3600),
        _ => return None,
    };
    Some(Rate { count, per })
}

#[cfg(test)]
mod tests {
    use super::super::tests::{check, located, one_problem};

    const MAIL: &str = "[notify.channels.mail]\nkind = \"email\"\nurl = \"smtp://127.0.0.1:2525\"\nfrom = \"upkeep <noreply@example.com>\"\nrecipients = [\"ops@example.com\"]\n";

    /// Break-it, session 12: a webhook channel naming no secret passed `check`, and the
    /// daemon then refused to start ("the secret is missing"). Seen without reading any.
    #[test]
    fn a_channel_that_names_no_secret_it_needs_is_refused() {
        let (p, text) = one_problem(
            "[notify.channels.hook]\nkind = \"webhook\"\nurl = \"http://127.0.0.1:9/h\"\n",
        );
        located(&p, &text, "notify.channels.hook.secret_env", 1, 1);
        assert_eq!(p.message, "channel `hook`: the secret is missing");
        assert!(
            p.hint.as_deref().unwrap().starts_with(
                "name an environment variable with secret_env or a file with secret_file"
            ),
            "{text}"
        );
        let (p, _) = one_problem("[notify.channels.chat]\nkind = \"slack\"\n");
        assert_eq!(p.message, "channel `chat`: the url is missing");
        // Named, not read: a variable that is not set here is the daemon's to report.
        check(&format!(
            "{MAIL}[notify.channels.hook]\nkind = \"webhook\"\nurl = \"http://127.0.0.1:9/h\"\nsecret_env = \"SURELY_NOT_SET_S12\"\n"
        ))
        .unwrap();
    }

    #[test]
    fn no_notify_means_no_notices() {
        assert!(check("").unwrap().notify.is_none());
    }

    #[test]
    fn channels_and_default_routes() {
        let c = check(&format!(
            "[notify]\nlanguage = \"zh-CN\"\ntimezone = \"Asia/Shanghai\"\npublic_url = \"https://status.example.com/up\"\n{MAIL}concurrency = 8\nrate = \"30/m\"\n[notify.channels.hook]\nkind = \"webhook\"\nurl = \"http://127.0.0.1:9/h\"\nsecret_env = \"S\"\n"
        ))
        .unwrap();
        let n = c.notify.unwrap();
        assert_eq!(n.language, upkeep_core::i18n::Lang::ZhCn);
        assert_eq!(
            n.public_url.unwrap().as_str(),
            "https://status.example.com/up/"
        );
        let mail = &n.channels["mail"];
        assert_eq!(mail.concurrency, 8);
        assert_eq!(
            mail.rate.unwrap().spacing(),
            std::time::Duration::from_secs(2)
        );
        assert_eq!(n.routes.len(), 3, "the defaults, one per priority");
        assert_eq!(n.flap_interval, std::time::Duration::from_secs(600));
        assert_eq!(n.digest_at, jiff::civil::time(8, 0, 0, 0));
        let digests: Vec<bool> = n.routes.iter().map(|r| r.digest).collect();
        assert_eq!(digests, [false, false, true], "routine: the daily digest");
    }

    #[test]
    fn a_digest_route_sends_email_alone_at_digest_at() {
        const HOOK: &str = "[notify.channels.hook]\nkind = \"webhook\"\nurl = \"http://127.0.0.1:9/h\"\nsecret_env = \"S\"\n";
        let n = check(&format!(
            "[notify]\ndigest_at = \"07:30\"\n{MAIL}[[notify.routes]]\npriority = \"routine\"\nchannels = [\"mail\"]\ndigest = \"daily\"\n[[notify.routes]]\nchannels = [\"mail\"]\ndigest = false\n"
        ))
        .unwrap()
        .notify
        .unwrap();
        assert_eq!(n.digest_at, jiff::civil::time(7, 30, 0, 0));
        assert!(n.routes[0].digest && !n.routes[1].digest);
        let (p, text) = one_problem(&format!(
            "{MAIL}{HOOK}[[notify.routes]]\nchannels = [\"mail\", \"hook\"]\ndigest = true\n"
        ));
        located(&p, &text, "notify.routes.0.digest", 12, 10);
        assert!(
            text.contains("channel `hook` is not an email channel"),
            "{text}"
        );
        let (p, text) = one_problem(&format!(
            "{MAIL}[[notify.routes]]\nchannels = [\"mail\"]\ndigest = \"weekly\"\n"
        ));
        located(&p, &text, "notify.routes.0.digest", 8, 10);
        let (p, text) = one_problem(&format!("[notify]\ndigest_at = \"25:00\"\n{MAIL}"));
        located(&p, &text, "notify.digest_at", 2, 13);
    }

    #[test]
    fn a_bad_channel_is_located() {
        let (p, text) = one_problem("[notify.channels.mail]\nkind = \"pager\"\n");
        located(&p, &text, "notify.channels.mail.kind", 2, 8);
        assert!(text.contains("unknown variant `pager`"), "{text}");
        let (p, text) = one_problem(&format!("{MAIL}urll = \"x\"\n"));
        located(&p, &text, "notify.channels.mail.urll", 6, 8);
        let (p, text) = one_problem(&MAIL.replace("ops@example.com", "not an address"));
        located(&p, &text, "notify.channels.mail.recipients", 5, 14);
        let (p, text) = one_problem(&format!("{MAIL}rate = \"fast\"\n"));
        located(&p, &text, "notify.channels.mail.rate", 6, 8);
        let (p, _) = one_problem(&MAIL.replace("recipients = [\"ops@example.com\"]\n", ""));
        assert_eq!(p.key, "notify.channels.mail");
    }

    /// Break-it (session 11): case variants of one address were several recipients, several
    /// mails. A channel's and a route's recipients are kept with their domains in lower case
    /// (local parts as written), each person once.
    #[test]
    fn recipients_in_any_case_are_one_person_each() {
        let mail = MAIL.replace(
            "recipients = [\"ops@example.com\"]",
            "recipients = [\"Ops@Example.com\", \"ops@example.COM\", \"dba@example.com\"]",
        );
        let route = "[[notify.routes]]\nchannels = [\"mail\"]\nrecipients = [\"Ann@X.org\", \"ann@x.org\", \"ANN@X.ORG\", \"bob@x.org\"]\n";
        let n = check(&format!("{mail}{route}")).unwrap().notify.unwrap();
        assert_eq!(
            n.channels["mail"].recipients,
            ["Ops@example.com", "dba@example.com"]
        );
        assert_eq!(
            n.routes[0].recipients.as_deref(),
            Some(&["Ann@x.org".to_owned(), "bob@x.org".to_owned()][..])
        );
    }

    #[test]
    fn routes_name_what_exists() {
        let svc = "[services.db]\nprobes = [{ kind = \"tcp\", addr = \"127.0.0.1:5432\" }]\n";
        let ok = format!(
            "{svc}{MAIL}[[notify.routes]]\npriority = [\"emergency\", \"important\"]\nnotice = \"incident_opened\"\nservices = [\"db\"]\nchannels = [\"mail\"]\nrecipients = [\"dba@example.com\"]\nlanguage = \"zh-CN\"\ncontinue = true\n"
        );
        let n = check(&ok).unwrap().notify.unwrap();
        assert_eq!(n.routes.len(), 1);
        assert!(n.routes[0].continue_);
        let err = check(&format!(
            "{svc}{MAIL}[[notify.routes]]\npriority = \"urgent\"\nnotice = \"exploded\"\nservices = [\"nope\"]\nchannels = [\"mail\", \"sms\"]\nrecipients = [\"x\"]\ntimezone = \"Mars/Base\"\n"
        ))
        .unwrap_err();
        let text = err.to_string();
        for want in [
            "unknown priority `urgent`",
            "unknown notice `exploded`",
            "no service named `nope`",
            "no channel named `sms`",
            "`x` is not an email address",
            "Mars/Base",
        ] {
            assert!(text.contains(want), "{want} missing:\n{text}");
        }
        assert!(
            err.problems()
                .iter()
                .all(|p| p.key.starts_with("notify.routes.0.")),
            "{text}"
        );
    }

    #[test]
    fn subscribers_need_a_public_url_and_an_email_channel() {
        let c = check(&format!(
            "[notify]\npublic_url = \"https://status.example.com/\"\n{MAIL}[notify.subscribers]\nnotice = [\"announced\", \"incident_opened\"]\n"
        ))
        .unwrap();
        let s = c.notify.unwrap().subscribers.unwrap();
        assert_eq!((s.confirmations_per_hour, s.max_unconfirmed), (100, 1000));
        assert_eq!(s.channel, "mail", "the only email channel");
        assert_eq!(s.notices.len(), 2);
        assert_eq!(s.confirm_within, std::time::Duration::from_secs(48 * 3600));

        let (p, text) = one_problem(&format!("[notify]\n{MAIL}[notify.subscribers]\n"));
        assert!(p.message.contains("public_url"), "{text}");
        let (p, text) = one_problem(&format!(
            "[notify]\npublic_url = \"https://s.example.com/\"\n{MAIL}[notify.subscribers]\nnotice = \"test\"\n"
        ));
        located(&p, &text, "notify.subscribers.notice", 9, 10);
        let (p, text) = one_problem(&format!(
            "[notify]\npublic_url = \"https://s.example.com/\"\n{MAIL}[notify.subscribers]\nconfirm_within = \"1s\"\n"
        ));
        located(&p, &text, "notify.subscribers.confirm_within", 9, 18);
        let (p, text) = one_problem(&format!(
            "[notify]\npublic_url = \"https://s.example.com/\"\n{MAIL}[notify.subscribers]\nconfirmations_per_hour = 0\n"
        ));
        assert!(p.message.contains("from 1 to 100000"), "{text}");
        located(
            &p,
            &text,
            "notify.subscribers.confirmations_per_hour",
            9,
            26,
        );
        let (p, text) = one_problem(&format!(
            "[notify]\npublic_url = \"https://s.example.com/\"\n{MAIL}[notify.subscribers]\nmax_unconfirmed = -1\n"
        ));
        located(&p, &text, "notify.subscribers.max_unconfirmed", 9, 19);
    }

    #[test]
    fn a_heartbeat_url_is_an_http_url_without_credentials() {
        let c = check("[daemon]\nheartbeat_url = \"https://hc.example.com/ping/abc\"\n").unwrap();
        assert_eq!(
            c.daemon.heartbeat_url.unwrap().as_str(),
            "https://hc.example.com/ping/abc"
        );
        let (p, text) = one_problem("[daemon]\nheartbeat_url = \"ftp://x/y\"\n");
        located(&p, &text, "daemon.heartbeat_url", 2, 17);
        let (p, text) = one_problem("[daemon]\nheartbeat_url = \"https://u:p@hc.example.com/\"\n");
        assert!(p.message.contains("user or password"), "{text}");
    }
}
