//! The daemon's subscription desk: what the subscriber routes ask (`upkeep_web::Subscriptions`)
//! done over the store, the injected clock and `[notify.subscribers]`.
//!
//! A subscription's address is checked (one bare address an SMTP server takes, at most 254
//! bytes, kept in lower case), its services must be public ones (shown on the status page;
//! kept current by `upkeep reload`), its language `en` or `zh-CN`; the row is stored
//! unconfirmed and the double opt-in mail planned as an outbox row (so it survives a crash
//! like any notice). An address gets at most one confirmation mail per [`RESEND_AFTER`],
//! however often it is subscribed: the form must not be a way to flood someone's inbox. Links are checked against the secret, which comes
//! from `secret_env`, `secret_file`, or `<data_dir>/subscribers.key` (32 random bytes made
//! once, mode 0600, never opened through a symlink). An unsubscribe deletes the subscriber.
//! The fan-out of notices to subscribers is `notices.rs`'s (with the store, in the
//! transaction that decides each notice).

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use async_trait::async_trait;
use upkeep_core::subscription::{SubscribeAnswer, SubscribeRequest, SubscriberInfo};
use upkeep_core::{Clock, Principal, ServiceName};
use upkeep_outbox::{Addressing, NotifyConfig, SubscriptionKeys, TokenError, subscriber_lang};
use upkeep_store::{Store, Subscribed, Subscriber};
use upkeep_web::{ApiError, LinkError, Linked, Subscriptions};

/// The secret file in the data dir, when the config names none.
const KEY_FILE: &str = "subscribers.key";

/// An unconfirmed address is mailed again at most this often.
pub const RESEND_AFTER: std::time::Duration = std::time::Duration::from_secs(600);

/// The services the public may name: those the status page shows (not `public = false`).
pub fn public_services(config: &upkeep_config::Config) -> BTreeSet<ServiceName> {
    config
        .services
        .iter()
        .filter(|(_, c)| !c.page.hidden)
        .map(|(n, _)| n.clone())
        .collect()
}

/// Reads the links' secret: from the environment, a file, or the data dir (made once).
pub fn load_keys(
    c: &upkeep_outbox::SubscribersConfig,
    data_dir: &Path,
) -> Result<SubscriptionKeys> {
    if let Some(var) = &c.secret_env {
        let v = std::env::var(var)
            .with_context(|| format!("[notify.subscribers] secret_env: ${var} is not set"))?;
        if v.trim().len() < 16 {
            bail!(
                "[notify.subscribers] secret_env: ${var} holds under 16 bytes; use a long random secret"
            );
        }
        return Ok(SubscriptionKeys::new(v.trim().as_bytes().to_vec()));
    }
    if let Some(path) = &c.secret_file {
        let v = upkeep_core::files::read_small_text(path, upkeep_core::files::SMALL_FILE_MAX)
            .with_context(|| {
                format!(
                    "[notify.subscribers] secret_file: reading {}",
                    path.display()
                )
            })?;
        let v = v.lines().next().unwrap_or("").trim();
        if v.len() < 16 {
            bail!(
                "[notify.subscribers] secret_file: {} holds under 16 bytes on its first line",
                path.display()
            );
        }
        return Ok(SubscriptionKeys::new(v.as_bytes().to_vec()));
    }
    let path = data_dir.join(KEY_FILE);
    let mut open = std::fs::OpenOptions::new();
    open.read(true).custom_flags(libc::O_NOFOLLOW);
    match open.open(&path) {
        Ok(mut f) => {
            let mut secret = Vec::new();
            f.read_to_end(&mut secret)
                .with_context(|| format!("reading {}", path.display()))?;
            if secret.len() < 32 {
                bail!(
                    "{} is shorter than 32 bytes: remove it to make a new one (links already mailed stop working)",
                    path.display()
                );
            }
            Ok(SubscriptionKeys::new(secret))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let mut secret = [0u8; 32];
            getrandom::fill(&mut secret).context("drawing the subscribers' secret")?;
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .custom_flags(libc::O_NOFOLLOW)
                .open(&path)
                .with_context(|| format!("creating {}", path.display()))?;
            f.write_all(&secret)
                .and_then(|()| f.sync_all())
                .with_context(|| format!("writing {}", path.display()))?;
            tracing::info!(path = %path.display(), "made the secret subscribers' links are signed with");
            Ok(SubscriptionKeys::new(secret.to_vec()))
        }
        Err(e) => Err(e).with_context(|| format!("opening {}", path.display())),
    }
}

/// Answers the subscriber routes. Made by `notices::start` when `[notify.subscribers]` is set.
pub struct Desk {
    pub store: Arc<dyn Store>,
    pub clock: Clock,
    pub config: Arc<NotifyConfig>,
    pub keys: SubscriptionKeys,
    pub node: String,
    /// The public services (what subscribers may name and hear of), as of the last start or
    /// reload; the incident planner shares them.
    pub services: upkeep_outbox::PublicServices,
    /// The dispatcher's: a confirmation mail was planned.
    pub wake: Arc<tokio::sync::Notify>,
    /// Taken from counting the confirmation mails planned in the last hour to planning the
    /// next, so that requests served at once (the public listener has threads of its own)
    /// cannot each find the budget one short and all mail. Holds no state: the budget itself
    /// is the store's rows (see [`Desk::may_mail`]).
    /// Shared by every desk a reload builds.
    pub confirming: Arc<tokio::sync::Mutex<()>>,
}

pub(crate) fn info(s: Subscriber) -> SubscriberInfo {
    SubscriberInfo {
        id: s.id,
        email: s.email,
        services: s.services,
        lang: s.lang,
        created: s.created,
        confirmed: s.confirmed,
    }
}

fn unavailable(e: upkeep_store::Error) -> ApiError {
    ApiError::Unavailable {
        message: format!("the store is unreachable: {}", e.with_causes()),
        hint: Some("try again in a few minutes".into()),
    }
}

fn link_store_error(e: upkeep_store::Error) -> LinkError {
    tracing::warn!("a subscriber's link: {}", e.with_causes());
    LinkError::Unavailable
}

fn link_token_error(e: TokenError) -> LinkError {
    match e {
        TokenError::Expired(_) => LinkError::Expired,
        TokenError::Malformed | TokenError::Forged => LinkError::Forged,
    }
}

/// The address as stored (its domain in lower case, its local part as written: RFC 5321
/// makes only the domain case-insensitive, so a mail goes to the local part as typed), or
/// why it is refused. Subscribers are compared in any case all the same (the store's
/// `lower(email)`): `Ann@x.org` and `ann@x.org` are one person, one subscriber. Only what any SMTP server
/// carries: ASCII (a non-ASCII local part needs SMTPUTF8, which neither our mail channel nor
/// many receivers speak; a non-ASCII domain is written in its `xn--` form), and no control or
/// invisible formatting character (a U+202E would show the address reversed to operators).
pub fn check_address(text: &str) -> Result<String, String> {
    let t = text.trim();
    if t.len() > 254 {
        return Err("an email address is at most 254 characters".into());
    }
    let parsed = email_address::EmailAddress::parse_with_options(
        t,
        email_address::Options::default().without_display_text(),
    )
    .map_err(|e| format!("`{t}` is not an email address: {e}"))?;
    // Past the parse, so what is no address at all says so first.
    if let Some(c) = t.chars().find(|c| !c.is_ascii_graphic()) {
        let shown = upkeep_web::clip(&t.escape_debug().to_string());
        return Err(if c.is_alphanumeric() {
            format!(
                "`{shown}` is not an address mail can be sent to here: write it in ASCII (a domain in its xn-- form)"
            )
        } else {
            format!(
                "`{shown}` holds {} (a space, a control or an invisible formatting character): write the address alone",
                c.escape_unicode()
            )
        });
    }
    let domain = parsed.domain();
    if !domain.contains('.') || domain.starts_with('[') {
        return Err(format!("`{t}` is not an address on an internet domain"));
    }
    let stored = format!("{}@{}", parsed.local_part(), domain.to_ascii_lowercase());
    Addressing::Email.check(&stored)?;
    Ok(stored)
}

impl Desk {
    /// Confirmation mails in any hour, every address together (`confirmations_per_hour`):
    /// the limit per client address alone let 200 addresses plan 1,884 mails in 12 s.
    fn confirmations_per_hour(&self) -> u32 {
        self.config
            .subscribers
            .as_ref()
            .map_or(100, |s| s.confirmations_per_hour)
    }

    fn max_unconfirmed(&self) -> usize {
        self.config
            .subscribers
            .as_ref()
            .map_or(1000, |s| s.max_unconfirmed as usize)
    }

    /// A new unconfirmed subscription `s` may have its confirmation mail: within the hour's
    /// budget and the cap on unconfirmed ones; else it is taken back and the answer is a 429.
    /// The hour's budget is counted from the confirmation mails in the outbox (a sliding
    /// hour on the daemon's clock), not kept in memory: a restart or an upgrade used to
    /// refill it, so a flood had only to wait for one (break-it finding, session 9). Called
    /// with [`Desk::confirming`] held until the mail is planned.
    async fn may_mail(
        &self,
        s: &Subscriber,
        now: jiff::Timestamp,
        zh: bool,
    ) -> Result<(), ApiError> {
        let refused = |retry_after: std::time::Duration, why: String| {
            let minutes = retry_after.as_secs().div_ceil(60).max(1);
            ApiError::TooMany {
                message: if zh {
                    format!("{why}请 {minutes} 分钟后再试。")
                } else {
                    format!("{why} Try again in {minutes} min.")
                },
                retry_after,
            }
        };
        let hour = jiff::SignedDuration::from_hours(1);
        let per_hour = self.confirmations_per_hour();
        let spent = match per_hour {
            // Validation refuses 0; were it allowed, it would mail nothing.
            0 => Some(now),
            n => self
                .store
                .nth_newest_planned(
                    upkeep_outbox::NoticeKind::ConfirmSubscription.as_str(),
                    now.checked_sub(hour).unwrap_or(now),
                    n,
                )
                .await
                .map_err(unavailable)?,
        };
        let why = match spent {
            Some(oldest) => Some((
                // Free again an hour after the oldest of the hour's last `per_hour` mails.
                std::time::Duration::try_from(hour - now.duration_since(oldest))
                    .ok()
                    .filter(|d| !d.is_zero())
                    .unwrap_or(std::time::Duration::from_secs(1)),
                if zh {
                    "本小时的确认邮件已达上限。".to_owned()
                } else {
                    "This status page has sent as many confirmation mails as it sends in an hour."
                        .to_owned()
                },
            )),
            None => {
                let waiting = self
                    .store
                    .subscribers()
                    .await
                    .map_err(unavailable)?
                    .iter()
                    .filter(|w| w.confirmed.is_none())
                    .count();
                (waiting > self.max_unconfirmed()).then(|| {
                    (
                        // Unconfirmed ones expire after `confirm_within`; an hour is a guess.
                        std::time::Duration::from_secs(3600),
                        if zh {
                            "待确认的订阅过多。".to_owned()
                        } else {
                            "Too many subscriptions wait for their confirmation.".to_owned()
                        },
                    )
                })
            }
        };
        let Some((wait, why)) = why else {
            return Ok(());
        };
        self.store
            .unsubscribe(Some(s.id), &s.email)
            .await
            .map_err(unavailable)?;
        tracing::warn!(subscriber = s.id, "subscription refused: {why}");
        Err(refused(wait, why))
    }

    fn within(&self) -> std::time::Duration {
        self.config
            .subscribers
            .as_ref()
            .map(|s| s.confirm_within)
            .unwrap_or_default()
    }
}

#[async_trait]
impl Subscriptions for Desk {
    async fn subscribe(&self, req: SubscribeRequest) -> Result<SubscribeAnswer, ApiError> {
        let email = check_address(&req.email).map_err(|m| ApiError::BadRequest {
            message: m,
            hint: Some("one address, such as name@example.com".into()),
        })?;
        let mut services = BTreeSet::new();
        {
            let public = self.services.get();
            for s in &req.services {
                match ServiceName::new(s.clone())
                    .ok()
                    .filter(|n| public.contains(n))
                {
                    Some(n) => {
                        services.insert(n.to_string());
                    }
                    None => {
                        return Err(ApiError::BadRequest {
                            message: format!("no public service named `{}`", upkeep_web::clip(s)),
                            hint: Some(format!(
                                "subscribe to some of {}, or leave services out for all",
                                public
                                    .iter()
                                    .map(|n| n.as_str())
                                    .collect::<Vec<_>>()
                                    .join(", ")
                            )),
                        });
                    }
                }
            }
        }
        let lang = match req.lang.as_deref() {
            None => upkeep_outbox::lang_tag(self.config.language),
            Some(l) if l == "en" || l == "zh-CN" => l,
            Some(other) => {
                return Err(ApiError::BadRequest {
                    message: format!("unknown language `{other}`"),
                    hint: Some("use \"en\" or \"zh-CN\"".into()),
                });
            }
        };
        let services: Vec<String> = services.into_iter().collect();
        let now = self.clock.now();
        let within = self.within();
        let expired_before = now
            .checked_sub(jiff::SignedDuration::try_from(within).unwrap_or_default())
            .unwrap_or(now);
        let renew_before = now
            .checked_sub(jiff::SignedDuration::try_from(RESEND_AFTER).unwrap_or_default())
            .unwrap_or(now);
        let done = self
            .store
            .subscribe(&email, &services, lang, now, expired_before, renew_before)
            .await
            .map_err(unavailable)?;
        let zh = subscriber_lang(lang) == upkeep_core::i18n::Lang::ZhCn;
        if let Subscribed::Pending(s) = done {
            let _turn = self.confirming.lock().await;
            self.may_mail(&s, now, zh).await?;
            if let Some(row) = self.config.confirm_row(&self.node, &s, &self.keys) {
                self.store
                    .add_notices(&[row], now)
                    .await
                    .map_err(unavailable)?;
                self.wake.notify_one();
                tracing::info!(subscriber = s.id, "subscription: confirmation mail planned");
            }
        }
        let minutes = RESEND_AFTER.as_secs() / 60;
        Ok(SubscribeAnswer {
            status: "confirmation_sent".into(),
            message: if zh {
                format!(
                    "确认邮件已发送（如该地址尚未确认）：请点击邮件中的链接完成订阅。同一地址每 {minutes} 分钟最多发送一封确认邮件。"
                )
            } else {
                format!(
                    "If this address is not confirmed yet, a mail with a confirmation link is on its way. An address gets at most one confirmation mail every {minutes} minutes."
                )
            },
            confirm_within_s: within.as_secs(),
        })
    }

    async fn check_confirm(&self, token: &str) -> Result<Linked, LinkError> {
        let t = self
            .keys
            .check_confirm(token, self.clock.now(), self.within())
            .map_err(link_token_error)?;
        let all = self.store.subscribers().await.map_err(link_store_error)?;
        let s = all
            .into_iter()
            .find(|s| s.id == t.id && s.email == t.email)
            .ok_or(LinkError::Gone)?;
        Ok(Linked {
            lang: subscriber_lang(&s.lang),
            email: s.email,
        })
    }

    async fn confirm(&self, token: &str) -> Result<Linked, LinkError> {
        let now = self.clock.now();
        let t = self
            .keys
            .check_confirm(token, now, self.within())
            .map_err(link_token_error)?;
        let s = self
            .store
            .confirm_subscriber(t.id, &t.email, t.created, now)
            .await
            .map_err(link_store_error)?
            .ok_or(LinkError::Gone)?;
        tracing::info!(subscriber = s.id, "subscription confirmed");
        Ok(Linked {
            lang: subscriber_lang(&s.lang),
            email: s.email,
        })
    }

    async fn check_unsubscribe(&self, token: &str) -> Result<Linked, LinkError> {
        let t = self
            .keys
            .check_unsubscribe(token)
            .map_err(link_token_error)?;
        let all = self.store.subscribers().await.map_err(link_store_error)?;
        let s = all
            .into_iter()
            .find(|s| s.id == t.id && s.email == t.email)
            .ok_or(LinkError::Gone)?;
        Ok(Linked {
            lang: subscriber_lang(&s.lang),
            email: s.email,
        })
    }

    async fn unsubscribe(&self, token: &str) -> Result<Linked, LinkError> {
        let t = self
            .keys
            .check_unsubscribe(token)
            .map_err(link_token_error)?;
        // The language of the answer: the subscriber's, read before it goes.
        let lang = self
            .store
            .subscribers()
            .await
            .map_err(link_store_error)?
            .into_iter()
            .find(|s| s.id == t.id && s.email == t.email)
            .map(|s| subscriber_lang(&s.lang));
        // Gone already (a second click, or a mail client's one-click POST after the
        // person's): the same answer, since what was asked holds. The token is signed, so
        // it names an address that was subscribed.
        let Some(lang) = lang else {
            return Ok(Linked {
                email: t.email,
                lang: self.config.language,
            });
        };
        if self
            .store
            .unsubscribe(Some(t.id), &t.email)
            .await
            .map_err(link_store_error)?
        {
            tracing::info!(subscriber = t.id, "unsubscribed: the address is deleted");
        }
        Ok(Linked {
            email: t.email,
            lang,
        })
    }

    async fn list(&self) -> Result<Vec<SubscriberInfo>, ApiError> {
        Ok(self
            .store
            .subscribers()
            .await
            .map_err(unavailable)?
            .into_iter()
            .map(info)
            .collect())
    }

    async fn remove(&self, email: &str, by: &Principal) -> Result<SubscriberInfo, ApiError> {
        let email = email.trim();
        let all = self.store.subscribers().await.map_err(unavailable)?;
        // One subscriber per address in any case (the store's unique index says so).
        let found = all
            .into_iter()
            .find(|s| Addressing::Email.same(&s.email, email))
            .ok_or_else(|| ApiError::NotFound(format!("no subscriber `{email}`")))?;
        if !self
            .store
            .unsubscribe(Some(found.id), &found.email)
            .await
            .map_err(unavailable)?
        {
            return Err(ApiError::NotFound(format!("no subscriber `{email}`")));
        }
        tracing::info!(subscriber = found.id, by = %by, "subscriber removed by an operator");
        Ok(info(found))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_checked_and_their_domains_kept_in_lower_case() {
        // Break-it, session 10: the local part was lowercased too; only the domain is
        // case-insensitive.
        assert_eq!(
            check_address(" Ann.Lee@Example.COM ").unwrap(),
            "Ann.Lee@example.com"
        );
        for bad in [
            "",
            "ann",
            "ann@",
            "@example.com",
            "Ann <ann@example.com>",
            "ann@localhost",
            "a@b@example.com",
            "ann@[127.0.0.1]",
            &format!("{}@example.com", "a".repeat(250)),
        ] {
            assert!(check_address(bad).is_err(), "{bad:?} accepted");
        }
        // Only what SMTP carries without SMTPUTF8, and nothing invisible.
        for (bad, why) in [
            ("jürgen@example.com", "ASCII"),
            ("ann@exämple.com", "xn--"),
            ("\u{202e}ann@example.com", "u{202e}"),
            ("ann\u{200b}@example.com", "invisible"),
            ("ann lee@example.com", "not an email address"),
        ] {
            let e = check_address(bad).unwrap_err();
            assert!(e.contains(why), "{bad:?}: {e}");
        }
        assert!(check_address("ann@xn--exmple-cua.com").is_ok());
    }

    #[test]
    fn the_secret_is_made_once_with_mode_0600() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let c = upkeep_outbox::SubscribersConfig {
            channel: "mail".into(),
            notices: Vec::new(),
            confirm_within: std::time::Duration::from_secs(3600),
            secret_env: None,
            secret_file: None,
            confirmations_per_hour: 100,
            max_unconfirmed: 1000,
        };
        let a = load_keys(&c, dir.path()).unwrap();
        let mode = std::fs::metadata(dir.path().join(KEY_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let b = load_keys(&c, dir.path()).unwrap();
        assert_eq!(
            a.unsubscribe_token(1, "x@example.com"),
            b.unsubscribe_token(1, "x@example.com")
        );
    }
}
