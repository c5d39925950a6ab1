//! Subscribers' notices: which notices reach them (`[notify.subscribers]`), the signed tokens
//! of their confirmation and unsubscribe links, and their outbox rows (the double opt-in
//! mail, and one row per confirmed subscriber of a notice's services).
//!
//! Tokens are HMAC-SHA256 over what they name, with a secret the daemon keeps (see
//! `upkeep/src/subscriptions.rs`): `c.ID.CREATED_MS.EMAIL` confirms (it expires
//! `confirm_within` after CREATED, on the daemon's clock; a renewed subscription has a new
//! CREATED, so an older link no longer works), `u.ID.EMAIL` unsubscribes (it does not expire:
//! RFC 8058 wants a link in an old mail to work). A token is the payload and its MAC, each in
//! URL-safe base64, joined by a dot; a changed byte anywhere makes it forged.
//!
//! Storing and reading subscribers is the store's; answering the links is the daemon's. The
//! rows are made here, pure: [`SubscriberFanout`] is handed to the store, which calls it with
//! the confirmed subscribers inside the transaction that decides the notice.

use std::collections::BTreeSet;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use jiff::{SignedDuration, Timestamp};
use upkeep_core::ServiceName;
use upkeep_core::i18n::Lang;
use upkeep_store::{NewNotice, SUBSCRIBER_KEY_PREFIX, Subscriber, SubscriberRows};

use crate::notice::{AffectedService, Impact, Notice, NoticeKind, Priority};
use crate::plan::{IncidentNews, WindowStep, keyed};
use crate::route::NotifyConfig;

/// The services the public may hear of (not `public = false`): what subscribers may name
/// and what their notices tell of. One set, shared by the daemon's subscription desk and
/// the incident planner, and replaced by each reload.
#[derive(Debug, Clone, Default)]
pub struct PublicServices(Arc<RwLock<BTreeSet<ServiceName>>>);

impl PublicServices {
    pub fn new(services: BTreeSet<ServiceName>) -> Self {
        Self(Arc::new(RwLock::new(services)))
    }

    /// The set as of now (a poisoned lock still holds a whole set: it is only ever replaced).
    pub fn get(&self) -> BTreeSet<ServiceName> {
        self.0.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn set(&self, services: BTreeSet<ServiceName>) {
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = services;
    }
}

/// `[notify.subscribers]`, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct SubscribersConfig {
    /// The email channel subscribers' mails go through.
    pub channel: String,
    /// The notices subscribers get.
    pub notices: Vec<NoticeKind>,
    /// How long a confirmation link works.
    pub confirm_within: Duration,
    /// The environment variable holding the tokens' secret; or `secret_file`; neither: a
    /// secret made once and kept in the data dir.
    pub secret_env: Option<String>,
    pub secret_file: Option<std::path::PathBuf>,
    /// Confirmation mails sent in any hour, all addresses together (`confirmations_per_hour`).
    pub confirmations_per_hour: u32,
    /// Most subscriptions waiting for confirmation at once (`max_unconfirmed`).
    pub max_unconfirmed: u32,
}

impl SubscribersConfig {
    /// By default: every step of a window and an incident's opening and resolution.
    pub fn default_notices() -> Vec<NoticeKind> {
        NoticeKind::ALL
            .into_iter()
            .filter(|k| !matches!(k, NoticeKind::Test | NoticeKind::ConfirmSubscription))
            .collect()
    }
}

/// Why a link's token is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("the link is not one upkeep made (its token cannot be read)")]
    Malformed,
    #[error("the link's signature does not match: it was not made by this upkeep, or was changed")]
    Forged,
    #[error("the confirmation link expired at {0}: subscribe again for a new one")]
    Expired(Timestamp),
}

/// What a valid confirmation token names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfirmToken {
    pub id: i64,
    pub email: String,
    pub created: Timestamp,
}

/// What a valid unsubscribe token names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnsubscribeToken {
    pub id: i64,
    pub email: String,
}

/// The secret links are signed with.
#[derive(Clone)]
pub struct SubscriptionKeys {
    secret: Vec<u8>,
}

impl std::fmt::Debug for SubscriptionKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SubscriptionKeys(..)")
    }
}

impl SubscriptionKeys {
    pub fn new(secret: Vec<u8>) -> Self {
        SubscriptionKeys { secret }
    }

    fn sign(&self, payload: &str) -> String {
        let mac = crate::channels::hmac_sha256(&self.secret, payload.as_bytes());
        format!("{}.{}", B64.encode(payload), B64.encode(mac))
    }

    fn open(&self, token: &str) -> Result<String, TokenError> {
        let (payload, mac) = token.split_once('.').ok_or(TokenError::Malformed)?;
        let payload = B64.decode(payload).map_err(|_| TokenError::Malformed)?;
        let mac = B64.decode(mac).map_err(|_| TokenError::Malformed)?;
        let want = crate::channels::hmac_sha256(&self.secret, &payload);
        // Constant time: the comparison says nothing about how much of a guess was right.
        if mac.len() != want.len() || !bool::from(subtle_eq(&mac, &want)) {
            return Err(TokenError::Forged);
        }
        String::from_utf8(payload).map_err(|_| TokenError::Malformed)
    }

    /// The token of `s`'s confirmation link.
    pub fn confirm_token(&self, s: &Subscriber) -> String {
        self.sign(&format!(
            "c.{}.{}.{}",
            s.id,
            s.created.as_millisecond(),
            s.email
        ))
    }

    /// The token of `s`'s unsubscribe link.
    pub fn unsubscribe_token(&self, id: i64, email: &str) -> String {
        self.sign(&format!("u.{id}.{email}"))
    }

    /// A confirmation token, checked: signed by this secret, and used within `within` of its
    /// subscription at `now`.
    pub fn check_confirm(
        &self,
        token: &str,
        now: Timestamp,
        within: Duration,
    ) -> Result<ConfirmToken, TokenError> {
        let payload = self.open(token)?;
        let mut parts = payload.splitn(4, '.');
        let (Some("c"), Some(id), Some(created), Some(email)) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(TokenError::Malformed);
        };
        let id = id.parse().map_err(|_| TokenError::Malformed)?;
        let created = created
            .parse::<i64>()
            .ok()
            .and_then(|ms| Timestamp::from_millisecond(ms).ok())
            .ok_or(TokenError::Malformed)?;
        let within = SignedDuration::try_from(within).unwrap_or(SignedDuration::MAX);
        let expires = created.checked_add(within).unwrap_or(Timestamp::MAX);
        if now >= expires {
            return Err(TokenError::Expired(expires));
        }
        Ok(ConfirmToken {
            id,
            email: email.to_owned(),
            created,
        })
    }

    /// An unsubscribe token, checked: signed by this secret.
    pub fn check_unsubscribe(&self, token: &str) -> Result<UnsubscribeToken, TokenError> {
        let payload = self.open(token)?;
        let mut parts = payload.splitn(3, '.');
        let (Some("u"), Some(id), Some(email)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(TokenError::Malformed);
        };
        Ok(UnsubscribeToken {
            id: id.parse().map_err(|_| TokenError::Malformed)?,
            email: email.to_owned(),
        })
    }
}

fn subtle_eq(a: &[u8], b: &[u8]) -> subtle::Choice {
    use subtle::ConstantTimeEq;
    a.ct_eq(b)
}

/// The language a subscriber asked for (`zh-CN`, else English).
pub fn subscriber_lang(tag: &str) -> Lang {
    if tag.eq_ignore_ascii_case("zh-CN") || tag.eq_ignore_ascii_case("zh") {
        Lang::ZhCn
    } else {
        Lang::En
    }
}

/// One notice's rows for the confirmed subscribers of its services.
pub struct SubscriberFanout {
    node: String,
    channel: String,
    base: Notice,
    /// The services the notice affects (a subscriber of any of them gets it).
    services: Vec<ServiceName>,
    subject: String,
    origin: String,
    keys: SubscriptionKeys,
    public_url: url::Url,
}

impl SubscriberRows for SubscriberFanout {
    fn rows(&self, subscribers: &[Subscriber]) -> Vec<NewNotice> {
        subscribers
            .iter()
            .filter(|s| s.confirmed.is_some())
            .filter(|s| {
                s.services.is_empty()
                    || self
                        .services
                        .iter()
                        .any(|n| s.services.iter().any(|w| w == n.as_str()))
            })
            .map(|s| {
                let notice = Notice {
                    lang: subscriber_lang(&s.lang),
                    unsubscribe: Some(unsubscribe_url(&self.public_url, &self.keys, s)),
                    ..self.base.clone()
                };
                subscriber_row(
                    &self.node,
                    &notice,
                    &self.channel,
                    s,
                    &self.subject,
                    &self.origin,
                )
            })
            .collect()
    }
}

/// `<public_url>api/v1/unsubscribe?token=…`: the page (GET) and the one-click POST.
pub fn unsubscribe_url(public_url: &url::Url, keys: &SubscriptionKeys, s: &Subscriber) -> url::Url {
    let mut u = public_url
        .join("api/v1/unsubscribe")
        .expect("a base URL joins a path");
    u.query_pairs_mut()
        .append_pair("token", &keys.unsubscribe_token(s.id, &s.email));
    u
}

/// `<public_url>api/v1/subscribe/confirm?token=…`.
pub fn confirm_url(public_url: &url::Url, keys: &SubscriptionKeys, s: &Subscriber) -> url::Url {
    let mut u = public_url
        .join("api/v1/subscribe/confirm")
        .expect("a base URL joins a path");
    u.query_pairs_mut()
        .append_pair("token", &keys.confirm_token(s));
    u
}

fn subscriber_row(
    node: &str,
    notice: &Notice,
    channel: &str,
    s: &Subscriber,
    subject: &str,
    origin: &str,
) -> NewNotice {
    NewNotice {
        channel: channel.to_owned(),
        key: keyed(SUBSCRIBER_KEY_PREFIX, node, origin, channel, &s.email),
        digest: None,
        recipient: s.email.clone(),
        kind: notice.kind.as_str().to_owned(),
        subject: subject.to_owned(),
        notice: serde_json::to_string(notice).expect("a notice serialises"),
    }
}

impl NotifyConfig {
    /// Whether subscribers get notices of `kind`; with what, when they do.
    fn subscribers_for(&self, kind: NoticeKind) -> Option<(&SubscribersConfig, &url::Url)> {
        let c = self.subscribers.as_ref()?;
        let url = self.public_url.as_ref()?;
        c.notices.contains(&kind).then_some((c, url))
    }

    /// The subscribers' rows of a window's step, for the store to make in its transaction;
    /// None when subscribers do not get this step, or it affects no `public` service.
    pub fn window_fanout(
        &self,
        node: &str,
        w: &WindowStep,
        keys: &SubscriptionKeys,
        public: &BTreeSet<ServiceName>,
    ) -> Option<SubscriberFanout> {
        self.fanout(node, self.window_notice(w), keys, public)
    }

    /// The subscribers' rows of an incident's news; None when they do not get it, or its
    /// service is not `public`.
    pub fn incident_fanout(
        &self,
        node: &str,
        n: &IncidentNews,
        keys: &SubscriptionKeys,
        public: &BTreeSet<ServiceName>,
    ) -> Option<SubscriberFanout> {
        let (mut base, services, subject, origin) = self.incident_notice(n);
        // The public hears no runbook (it may name internal hosts).
        base.runbook = None;
        self.fanout(node, (base, services, subject, origin), keys, public)
    }

    /// The subscribers' rows of a notice about `services`: of the `public` ones only (a
    /// subscriber of every service hears of no hidden one, and a notice names none), and
    /// none when every service it is about is hidden.
    /// `notice`: the notice, the services it is about, its subject and what makes its rows'
    /// keys unique (as `window_notice` and `incident_notice` make them).
    fn fanout(
        &self,
        node: &str,
        notice: (Notice, Vec<ServiceName>, String, String),
        keys: &SubscriptionKeys,
        public: &BTreeSet<ServiceName>,
    ) -> Option<SubscriberFanout> {
        let (mut base, services, subject, origin) = notice;
        let (c, url) = self.subscribers_for(base.kind)?;
        let about_some = !services.is_empty();
        let services: Vec<ServiceName> = services
            .into_iter()
            .filter(|s| public.contains(s))
            .collect();
        if about_some && services.is_empty() {
            return None;
        }
        base.services.retain(|a| public.contains(&a.name));
        Some(SubscriberFanout {
            node: node.to_owned(),
            channel: c.channel.clone(),
            base,
            services,
            subject,
            origin,
            keys: keys.clone(),
            public_url: url.clone(),
        })
    }

    /// The double opt-in mail to `s` (unconfirmed), with its confirmation link; None
    /// without `[notify.subscribers]` (or `public_url`). Its key names the subscription's
    /// creation, so a renewed subscription mails a new link, and a repeated request within
    /// one does not mail twice.
    pub fn confirm_row(
        &self,
        node: &str,
        s: &Subscriber,
        keys: &SubscriptionKeys,
    ) -> Option<NewNotice> {
        let c = self.subscribers.as_ref()?;
        let url = self.public_url.as_ref()?;
        let lang = subscriber_lang(&s.lang);
        let services: Vec<AffectedService> = s
            .services
            .iter()
            .filter_map(|n| ServiceName::new(n.clone()).ok())
            .map(|name| AffectedService {
                name,
                impact: Impact::Outage,
            })
            .collect();
        let title = match (lang, services.is_empty()) {
            (Lang::ZhCn, true) => "全部服务".to_owned(),
            (Lang::En, true) => "all services".to_owned(),
            (_, false) => s.services.join(", "),
        };
        let notice = Notice {
            kind: NoticeKind::ConfirmSubscription,
            title,
            reason: String::new(),
            start: s.created,
            expected_end: None,
            actual_end: None,
            services,
            alternatives: None,
            follow_up: None,
            priority: Priority::Routine,
            link: Some(confirm_url(url, keys, s)),
            duration: SignedDuration::try_from(c.confirm_within).ok(),
            runbook: None,
            unsubscribe: None,
            lang,
            time_zone: self.time_zone.clone(),
        };
        let origin = format!("subscription:{}:{}", s.id, s.created.as_millisecond());
        Some(subscriber_row(
            node, &notice, &c.channel, s, &origin, &origin,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subscribers_hear_of_public_services_only() {
        let mut c = crate::route::tests::config(None);
        c.public_url = Some("https://status.example.com/".parse().unwrap());
        c.subscribers = Some(SubscribersConfig {
            channel: "mail".into(),
            notices: SubscribersConfig::default_notices(),
            confirm_within: Duration::from_secs(3600),
            secret_env: None,
            secret_file: None,
            confirmations_per_hour: 100,
            max_unconfirmed: 1000,
        });
        let keys = SubscriptionKeys::new(b"k".to_vec());
        let name = |n: &str| ServiceName::new(n).unwrap();
        let public: BTreeSet<ServiceName> = [name("web")].into();
        let mut all = sub("all@example.com");
        let mut secret = sub("secret@example.com");
        secret.id = 8;
        secret.services = vec!["secret".into()];
        for s in [&mut all, &mut secret] {
            s.confirmed = Some(s.created);
        }
        let subscribers = [all, secret];
        let at: Timestamp = "2026-12-01T00:00:00Z".parse().unwrap();
        let spec = |services: &[&str]| upkeep_core::window::WindowSpec {
            kind: upkeep_core::window::WindowKind::Maintenance,
            title: "disks".into(),
            reason: "new disks".into(),
            start: at,
            end: at + SignedDuration::from_hours(1),
            tz: "UTC".into(),
            repeat: None,
            services: services
                .iter()
                .map(|s| upkeep_core::window::AffectedService {
                    service: name(s),
                    impact: upkeep_core::window::Impact::Outage,
                })
                .collect(),
            alternative: String::new(),
            follow_up: String::new(),
            priority: None,
        };
        fn step(spec: &upkeep_core::window::WindowSpec) -> WindowStep<'_> {
            WindowStep {
                id: 1,
                spec,
                occurrence: spec.start,
                start: spec.start,
                end: spec.end,
                step: upkeep_core::window::Step::Announced,
                at: spec.start,
            }
        }
        // A window on a hidden service alone: no subscriber hears of it.
        let hidden = spec(&["secret"]);
        assert!(
            c.window_fanout("n", &step(&hidden), &keys, &public)
                .is_none()
        );
        // On both: those who follow everything hear of the public one, and only of it.
        let both = spec(&["web", "secret"]);
        let rows = c
            .window_fanout("n", &step(&both), &keys, &public)
            .unwrap()
            .rows(&subscribers);
        let to: Vec<&str> = rows.iter().map(|r| r.recipient.as_str()).collect();
        assert_eq!(to, ["all@example.com"]);
        let n: Notice = serde_json::from_str(&rows[0].notice).unwrap();
        let named: Vec<&str> = n.services.iter().map(|a| a.name.as_str()).collect();
        assert_eq!(named, ["web"]);
        // An incident of a hidden service: none of them.
        let news = IncidentNews {
            service: name("secret"),
            since: at,
            reason: "down".into(),
            resolved: None,
            seq: 1,
            incident_id: Some(1),
            priority: upkeep_core::incident::IncidentPriority::P3,
            title: None,
            written: None,
            at,
        };
        assert!(c.incident_fanout("n", &news, &keys, &public).is_none());
        // Operators' routes still hear of it.
        assert!(!c.incident_rows("n", &news).is_empty());
    }

    fn sub(email: &str) -> Subscriber {
        Subscriber {
            id: 7,
            email: email.into(),
            services: vec![],
            lang: "en".into(),
            created: "2026-12-01T00:00:00Z".parse().unwrap(),
            confirmed: None,
        }
    }

    #[test]
    fn tokens_round_trip_and_refuse_forgery_and_age() {
        let keys = SubscriptionKeys::new(b"0123456789abcdef0123456789abcdef".to_vec());
        let s = sub("a.b@example.com");
        let day = Duration::from_secs(86_400);
        let t = keys.confirm_token(&s);
        let ok = keys.check_confirm(&t, s.created, day).unwrap();
        assert_eq!((ok.id, ok.email.as_str()), (7, "a.b@example.com"));
        let later = s.created + SignedDuration::from_hours(24);
        assert_eq!(
            keys.check_confirm(&t, later, day),
            Err(TokenError::Expired(later))
        );
        // Another secret, a changed payload, a token of the other kind, garbage.
        let other = SubscriptionKeys::new(b"another secret".to_vec());
        assert_eq!(
            other.check_confirm(&t, s.created, day),
            Err(TokenError::Forged)
        );
        let (payload, mac) = t.split_once('.').unwrap();
        let changed = B64.encode(
            String::from_utf8(B64.decode(payload).unwrap())
                .unwrap()
                .replace("a.b@", "x.b@"),
        );
        assert_eq!(
            keys.check_confirm(&format!("{changed}.{mac}"), s.created, day),
            Err(TokenError::Forged)
        );
        let u = keys.unsubscribe_token(7, "a.b@example.com");
        assert_eq!(
            keys.check_confirm(&u, s.created, day),
            Err(TokenError::Malformed)
        );
        assert_eq!(
            keys.check_unsubscribe(&u).unwrap(),
            UnsubscribeToken {
                id: 7,
                email: "a.b@example.com".into()
            }
        );
        assert_eq!(keys.check_unsubscribe("nope"), Err(TokenError::Malformed));
    }

    #[test]
    fn the_confirmation_and_a_subscribers_notice_render_their_links_in_both_languages() {
        let mut c = crate::route::tests::config(None);
        c.public_url = Some("https://status.example.com/".parse().unwrap());
        c.subscribers = Some(SubscribersConfig {
            channel: "mail".into(),
            notices: SubscribersConfig::default_notices(),
            confirm_within: Duration::from_secs(48 * 3600),
            secret_env: None,
            secret_file: None,
            confirmations_per_hour: 100,
            max_unconfirmed: 1000,
        });
        let keys = SubscriptionKeys::new(b"k".to_vec());
        let t = crate::Templates::builtin();
        for (lang, words) in [("en", "2d"), ("zh-CN", "2天")] {
            let mut s = sub("a@example.com");
            s.lang = lang.into();
            let row = c.confirm_row("n", &s, &keys).unwrap();
            assert!(row.key.starts_with(SUBSCRIBER_KEY_PREFIX));
            let n: Notice = serde_json::from_str(&row.notice).unwrap();
            let r = t.render(&n).unwrap();
            let link = confirm_url(c.public_url.as_ref().unwrap(), &keys, &s);
            assert!(r.text.contains(link.as_str()), "{}", r.text);
            assert!(r.text.contains(words), "{}", r.text);
            assert!(!r.text.contains("Reason"), "{}", r.text);
            // A confirmed subscriber's notice carries its unsubscribe link.
            s.confirmed = Some(s.created);
            let spec = upkeep_core::window::WindowSpec {
                kind: upkeep_core::window::WindowKind::Upgrade,
                title: "PostgreSQL 17".into(),
                reason: "security fixes".into(),
                start: s.created,
                end: s.created + SignedDuration::from_hours(1),
                tz: "UTC".into(),
                repeat: None,
                services: vec![],
                alternative: String::new(),
                follow_up: String::new(),
                priority: None,
            };
            let step = WindowStep {
                id: 1,
                spec: &spec,
                occurrence: spec.start,
                start: spec.start,
                end: spec.end,
                step: upkeep_core::window::Step::Announced,
                at: spec.start,
            };
            let rows = c
                .window_fanout("n", &step, &keys, &BTreeSet::new())
                .unwrap()
                .rows(std::slice::from_ref(&s));
            assert_eq!(rows.len(), 1);
            let n: Notice = serde_json::from_str(&rows[0].notice).unwrap();
            let r = t.render(&n).unwrap();
            let unsub = unsubscribe_url(c.public_url.as_ref().unwrap(), &keys, &s);
            assert_eq!(n.unsubscribe.as_ref(), Some(&unsub));
            assert!(r.text.contains(unsub.as_str()), "{}", r.text);
            assert!(r.html.contains("unsubscribe?token="), "{}", r.html);
        }
    }
}
