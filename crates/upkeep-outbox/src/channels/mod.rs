//! The registry of channel kinds: one variant of [`ChannelConfig`] and one `build` arm each.
//!
//! A kind is one file here: its config struct (secrets as `*_env` / `*_file`), its checks,
//! its [`Channel`] impl and its unit tests. `http.rs` is what the HTTP kinds share (posting,
//! sorting answers into retry or permanent); `signing` below is their HMAC. Adding a kind:
//! a file, a variant, an arm; the compiler points at anything else.

use std::sync::Arc;

use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha2::Sha256;

use crate::channel::Channel;
use crate::config::{BuildContext, ConfigErrors};

mod dingtalk;
mod feishu;
mod http;
mod slack;
mod smtp;
mod telegram;
mod webhook;
mod wecom;

pub use dingtalk::DingtalkConfig;
pub use feishu::FeishuConfig;
pub use slack::SlackConfig;
pub use smtp::SmtpConfig;
pub use telegram::TelegramConfig;
pub use webhook::WebhookConfig;
pub use wecom::WecomConfig;

/// One configured channel, by `kind`. Email is `kind = "email"` (`smtp` is the same).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ChannelConfig {
    #[serde(rename = "email", alias = "smtp")]
    Smtp(SmtpConfig),
    Webhook(WebhookConfig),
    Slack(SlackConfig),
    Wecom(WecomConfig),
    Dingtalk(DingtalkConfig),
    Feishu(FeishuConfig),
    Telegram(TelegramConfig),
}

impl ChannelConfig {
    /// Checks the config, reads its secrets and builds the channel; `name` is the channel's
    /// name in the config, for messages. Reports every problem at once.
    pub fn build(&self, name: &str, ctx: &BuildContext) -> Result<Arc<dyn Channel>, ConfigErrors> {
        Ok(match self {
            ChannelConfig::Smtp(c) => Arc::new(c.build(name, ctx)?),
            ChannelConfig::Webhook(c) => Arc::new(c.build(name, ctx)?),
            ChannelConfig::Slack(c) => Arc::new(c.build(name, ctx)?),
            ChannelConfig::Wecom(c) => Arc::new(c.build(name, ctx)?),
            ChannelConfig::Dingtalk(c) => Arc::new(c.build(name, ctx)?),
            ChannelConfig::Feishu(c) => Arc::new(c.build(name, ctx)?),
            ChannelConfig::Telegram(c) => Arc::new(c.build(name, ctx)?),
        })
    }

    /// The secrets the channel cannot be built without and the config names no place for
    /// (neither `{what}_env` nor `{what}_file`), as `what` ("secret", "url", "token"):
    /// `upkeep check` refuses them as the daemon's build would at its start, reading no
    /// secret. The test below holds this to what `build` requires.
    pub fn unnamed_secrets(&self) -> Vec<&'static str> {
        let need = |what, env: &Option<String>, file: &Option<String>| {
            (env.is_none() && file.is_none()).then_some(what)
        };
        let unnamed = match self {
            // The password is optional: a server may take mail without a login.
            ChannelConfig::Smtp(_) => None,
            ChannelConfig::Webhook(c) => need("secret", &c.secret_env, &c.secret_file),
            ChannelConfig::Slack(c) => need("url", &c.url_env, &c.url_file),
            ChannelConfig::Wecom(c) => need("url", &c.url_env, &c.url_file),
            // Their signing secret is optional (a bot may sign nothing).
            ChannelConfig::Dingtalk(c) => need("url", &c.url_env, &c.url_file),
            ChannelConfig::Feishu(c) => need("url", &c.url_env, &c.url_file),
            ChannelConfig::Telegram(c) => need("token", &c.token_env, &c.token_file),
        };
        unnamed.into_iter().collect()
    }
}

/// Who a channel's notices go to: what a route's `recipients` must be for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Addressing {
    /// Email addresses, one message each.
    Email,
    /// Chat ids (Telegram), or none: the configured chat.
    Chat,
    /// The group the channel's URL names (webhook, Slack, WeCom, DingTalk, Feishu): no
    /// recipients.
    Group,
}

impl ChannelConfig {
    /// The kind's name, as `kind` writes it.
    pub fn kind(&self) -> &'static str {
        match self {
            ChannelConfig::Smtp(_) => "email",
            ChannelConfig::Webhook(_) => "webhook",
            ChannelConfig::Slack(_) => "slack",
            ChannelConfig::Wecom(_) => "wecom",
            ChannelConfig::Dingtalk(_) => "dingtalk",
            ChannelConfig::Feishu(_) => "feishu",
            ChannelConfig::Telegram(_) => "telegram",
        }
    }

    pub fn addressing(&self) -> Addressing {
        match self {
            ChannelConfig::Smtp(_) => Addressing::Email,
            ChannelConfig::Telegram(_) => Addressing::Chat,
            ChannelConfig::Webhook(_)
            | ChannelConfig::Slack(_)
            | ChannelConfig::Wecom(_)
            | ChannelConfig::Dingtalk(_)
            | ChannelConfig::Feishu(_) => Addressing::Group,
        }
    }

    /// A chat app (the "chat": important notices go there by default).
    pub fn is_chat(&self) -> bool {
        match self {
            ChannelConfig::Slack(_)
            | ChannelConfig::Wecom(_)
            | ChannelConfig::Dingtalk(_)
            | ChannelConfig::Feishu(_)
            | ChannelConfig::Telegram(_) => true,
            ChannelConfig::Smtp(_) | ChannelConfig::Webhook(_) => false,
        }
    }
}

impl Addressing {
    /// Why `recipient` cannot be one of this channel's recipients, if it cannot.
    pub fn check(self, recipient: &str) -> Result<(), String> {
        match self {
            Addressing::Email => smtp::check_address(recipient),
            Addressing::Chat => telegram::check_chat(recipient),
            Addressing::Group => {
                Err("this channel posts to the group its URL names: it takes no recipients".into())
            }
        }
    }

    /// `recipient` as it is kept: an address with its domain in lower case and its local
    /// part as written (RFC 5321: only the domain is case-insensitive everywhere); a chat
    /// id as written.
    pub fn normalise(self, recipient: &str) -> String {
        let r = recipient.trim();
        match (self, r.rsplit_once('@')) {
            (Addressing::Email, Some((local, domain))) => {
                format!("{local}@{}", domain.to_lowercase())
            }
            _ => r.to_owned(),
        }
    }

    /// Whether `a` and `b` reach one person: addresses in any case (`Ann@x.org` is
    /// `ann@X.org`: one person is one recipient, one mail), chat ids as written.
    pub fn same(self, a: &str, b: &str) -> bool {
        match self {
            Addressing::Email => a.trim().to_lowercase() == b.trim().to_lowercase(),
            Addressing::Chat | Addressing::Group => a == b,
        }
    }

    /// `recipients` normalised, each person once (the first spelling kept), in order.
    pub fn dedupe(self, recipients: &[String]) -> Vec<String> {
        let mut out: Vec<String> = Vec::with_capacity(recipients.len());
        for r in recipients {
            let r = self.normalise(r);
            if !out.iter().any(|o| self.same(o, &r)) {
                out.push(r);
            }
        }
        out
    }
}

#[cfg(test)]
mod addressing_tests {
    use super::Addressing;

    #[test]
    fn an_address_keeps_its_local_part_and_is_one_person_in_any_case() {
        let e = Addressing::Email;
        assert_eq!(e.normalise(" Ann@Example.ORG "), "Ann@example.org");
        assert!(e.same("Ann@example.org", "ann@EXAMPLE.org"));
        assert!(!e.same("ann@example.org", "anne@example.org"));
        let list = [
            "Ann@X.org",
            "ann@x.org",
            "bob@x.org",
            "ANN@X.ORG",
            "Bob@X.org",
        ]
        .map(String::from);
        assert_eq!(e.dedupe(&list), ["Ann@x.org", "bob@x.org"]);
        // A chat id is not an address: as written.
        let c = Addressing::Chat;
        assert_eq!(c.normalise("@MyChannel"), "@MyChannel");
        assert_eq!(c.dedupe(&["@A".into(), "@a".into()]), ["@A", "@a"]);
    }
}

/// HMAC-SHA256, the signature of the generic webhook and of the DingTalk and Feishu bots.
pub(crate) fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes a key of any length");
    mac.update(message);
    mac.finalize().into_bytes().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_kind_picks_the_config_and_unknown_keys_are_refused() {
        let c: ChannelConfig = toml::from_str("kind = \"wecom\"\nurl_env = \"WECOM_URL\"").unwrap();
        assert!(matches!(c, ChannelConfig::Wecom(_)));
        let e =
            toml::from_str::<ChannelConfig>("kind = \"wecom\"\nurl = \"https://x\"").unwrap_err();
        assert!(e.to_string().contains("unknown field `url`"), "{e}");
        let e = toml::from_str::<ChannelConfig>("kind = \"pager\"").unwrap_err();
        assert!(e.to_string().contains("unknown variant `pager`"), "{e}");
    }

    /// Break-it, session 12: `check` passed a webhook channel that named no secret, and the
    /// daemon refused to start. What `unnamed_secrets` lists is what `build` finds missing.
    #[test]
    fn unnamed_secrets_are_those_the_build_finds_missing() {
        let ctx = crate::config::BuildContext::system();
        for (kind, rest, want) in [
            ("webhook", "url = \"http://127.0.0.1:9/h\"", vec!["secret"]),
            ("slack", "", vec!["url"]),
            ("wecom", "", vec!["url"]),
            ("dingtalk", "", vec!["url"]),
            ("feishu", "", vec!["url"]),
            ("telegram", "chat_id = \"1\"", vec!["token"]),
            (
                "email",
                "url = \"smtp://127.0.0.1:25\"\nfrom = \"a <a@example.com>\"",
                vec![],
            ),
        ] {
            let c: ChannelConfig = toml::from_str(&format!("kind = \"{kind}\"\n{rest}"))
                .unwrap_or_else(|e| panic!("{kind}: {e}"));
            assert_eq!(c.unnamed_secrets(), want, "{kind}");
            let missing: Vec<String> = match c.build("x", &ctx) {
                Ok(_) => Vec::new(),
                Err(e) => e
                    .problems
                    .iter()
                    .filter(|p| p.message.ends_with(" is missing"))
                    .map(|p| p.field.trim_end_matches("_env").to_owned())
                    .collect(),
            };
            assert_eq!(missing, want, "{kind}");
        }
    }

    #[test]
    fn hmac_matches_rfc_4231_case_2() {
        let mac = hmac_sha256(b"Jefe", b"what do ya want for nothing?");
        assert_eq!(
            hex::encode(mac),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
