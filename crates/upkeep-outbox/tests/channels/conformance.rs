//! One set of checks, run over every channel kind: a notice arrives with every content field,
//! and each way a receiver can fail sorts into retry or permanent as the dispatcher needs.

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use upkeep_core::i18n::Lang;
use upkeep_outbox::{Channel, Recipient, SendError};

use crate::support::{Helper, assert_every_field, build, env, free_port, key, rendered};

#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    Smtp,
    Webhook,
    Slack,
    Wecom,
    Dingtalk,
    Feishu,
    Telegram,
}

const ALL: [Kind; 7] = [
    Kind::Smtp,
    Kind::Webhook,
    Kind::Slack,
    Kind::Wecom,
    Kind::Dingtalk,
    Kind::Feishu,
    Kind::Telegram,
];

/// How the receiver should fail.
#[derive(Debug, Clone, Copy)]
enum Failure {
    /// HTTP 500; SMTP 451.
    ServerError,
    /// HTTP 400; SMTP 550.
    Rejected,
    /// Nothing listens.
    Refused,
    /// HTTP 429 with `Retry-After`. SMTP has no such answer.
    RateLimited(u64),
    /// Takes the connection and says nothing.
    Silent,
}

/// A receiver and an SMTP sink, and the channel of each kind pointed at them.
struct Rig {
    http: Helper,
    smtp: Helper,
    /// Accepts connections (the kernel's backlog) and never speaks: a hung mail server.
    mute: std::net::TcpListener,
}

impl Rig {
    async fn start() -> Rig {
        Rig {
            http: Helper::start("receiver.py", &[]).await,
            smtp: Helper::start("smtp_sink.py", &[]).await,
            mute: std::net::TcpListener::bind("127.0.0.1:0").unwrap(),
        }
    }

    /// The channel of `kind`, failing as `failure` says, and the recipient to send to.
    /// None: that failure does not exist for that kind.
    fn channel(
        &self,
        kind: Kind,
        failure: Option<Failure>,
    ) -> Option<(Arc<dyn Channel>, Recipient)> {
        let base = match failure {
            None => self.http.base(),
            Some(Failure::ServerError) => format!("{}/answer/500", self.http.base()),
            Some(Failure::Rejected) => format!("{}/answer/400", self.http.base()),
            Some(Failure::RateLimited(s)) => format!("{}/answer/429/{s}", self.http.base()),
            Some(Failure::Refused) => format!("http://127.0.0.1:{}", free_port()),
            Some(Failure::Silent) => format!("{}/answer/silent", self.http.base()),
        };
        // Short enough that a hung receiver ends the send soon, long enough for a slow host.
        let timeout = match failure {
            Some(Failure::Silent) => "1s",
            _ => "20s",
        };
        let group = Recipient::group();
        Some(match kind {
            Kind::Smtp => {
                let (port, to) = match failure {
                    None => (self.smtp.port, "ops@example.net"),
                    Some(Failure::ServerError) => (self.smtp.port, "tempfail@example.net"),
                    Some(Failure::Rejected) => (self.smtp.port, "permfail@example.net"),
                    Some(Failure::Refused) => (free_port(), "ops@example.net"),
                    Some(Failure::RateLimited(_)) => return None,
                    Some(Failure::Silent) => {
                        (self.mute.local_addr().unwrap().port(), "ops@example.net")
                    }
                };
                let config = format!(
                    "kind = \"smtp\"\nurl = \"smtp://127.0.0.1:{port}\"\nfrom = \"upkeep <noreply@example.com>\"\ntimeout = \"{timeout}\""
                );
                (build(&config, env(&[])), Recipient::address(to))
            }
            Kind::Webhook => (
                build(
                    &format!(
                        "kind = \"webhook\"\nurl = \"{base}/webhook\"\nsecret_env = \"WEBHOOK_SECRET\"\ntimeout = \"{timeout}\""
                    ),
                    env(&[]),
                ),
                group,
            ),
            Kind::Slack => (
                build(
                    &format!("kind = \"slack\"\nurl_env = \"SLACK_URL\"\ntimeout = \"{timeout}\""),
                    env(&[("SLACK_URL", &format!("{base}/slack/T0/B0/xyz"))]),
                ),
                group,
            ),
            Kind::Wecom => (
                build(
                    &format!("kind = \"wecom\"\nurl_env = \"WECOM_URL\"\ntimeout = \"{timeout}\""),
                    env(&[("WECOM_URL", &format!("{base}/wecom?key=wecom-key"))]),
                ),
                group,
            ),
            Kind::Dingtalk => (
                build(
                    &format!(
                        "kind = \"dingtalk\"\nurl_env = \"DT_URL\"\nsecret_env = \"DINGTALK_SECRET\"\ntimeout = \"{timeout}\""
                    ),
                    env(&[("DT_URL", &format!("{base}/dingtalk?access_token=dt-token"))]),
                ),
                group,
            ),
            Kind::Feishu => (
                build(
                    &format!(
                        "kind = \"feishu\"\nurl_env = \"FS_URL\"\nsecret_env = \"FEISHU_SECRET\"\ntimeout = \"{timeout}\""
                    ),
                    env(&[("FS_URL", &format!("{base}/feishu/hook/fs-hook"))]),
                ),
                group,
            ),
            Kind::Telegram => (
                build(
                    &format!(
                        "kind = \"telegram\"\ntoken_env = \"TELEGRAM_TOKEN\"\nchat_id = \"-100123\"\nbase_url = \"{base}\"\ntimeout = \"{timeout}\""
                    ),
                    env(&[]),
                ),
                group,
            ),
        })
    }

    /// What people read of the last delivery of `kind`.
    fn readable(&self, kind: Kind) -> String {
        if kind == Kind::Smtp {
            let mail = self.smtp.last();
            let parts = mail["parts"].as_array().unwrap();
            return parts
                .iter()
                .map(|p| p["text"].as_str().unwrap())
                .collect::<Vec<_>>()
                .join("\n");
        }
        let r = self.http.last();
        let j = &r["json"];
        let s = |v: &Value| {
            v.as_str()
                .unwrap_or_else(|| panic!("{kind:?}: no text in {r}"))
                .to_owned()
        };
        match kind {
            Kind::Smtp => unreachable!("returned above"),
            Kind::Webhook => s(&j["text"]),
            Kind::Slack => s(&j["text"]),
            Kind::Wecom => s(&j["markdown"]["content"]),
            Kind::Dingtalk => s(&j["markdown"]["text"]),
            Kind::Feishu => s(&j["card"]["elements"][0]["content"]),
            Kind::Telegram => s(&j["text"]),
        }
    }
}

#[tokio::test]
async fn every_kind_delivers_every_field() {
    let rig = Rig::start().await;
    let notice = rendered(Lang::En);
    for kind in ALL {
        let (channel, to) = rig.channel(kind, None).unwrap();
        let sent = channel.send(&to, &notice, &key("conformance-1")).await;
        assert!(sent.is_ok(), "{kind:?}: {sent:?}");
        assert_every_field(&format!("{kind:?}"), &rig.readable(kind));
        if kind != Kind::Smtp {
            let r = rig.http.last();
            assert_ne!(r["signature_ok"], Value::Bool(false), "{kind:?}: {r}");
        }
    }
}

async fn each_kind_fails(failure: Failure, check: impl Fn(Kind, &SendError)) {
    let rig = Rig::start().await;
    let notice = rendered(Lang::En);
    for kind in ALL {
        let Some((channel, to)) = rig.channel(kind, Some(failure)) else {
            continue;
        };
        match channel.send(&to, &notice, &key("conformance-2")).await {
            Ok(d) => panic!("{kind:?} under {failure:?}: delivered {d:?}"),
            Err(e) => check(kind, &e),
        }
    }
}

#[tokio::test]
async fn a_server_error_is_retried() {
    each_kind_fails(Failure::ServerError, |kind, e| {
        assert!(!e.is_permanent(), "{kind:?}: {e}");
        assert_eq!(e.retry_delay(), None, "{kind:?}: {e}");
    })
    .await;
}

#[tokio::test]
async fn a_rejection_is_permanent() {
    each_kind_fails(Failure::Rejected, |kind, e| {
        assert!(e.is_permanent(), "{kind:?}: {e}");
    })
    .await;
}

#[tokio::test]
async fn a_refused_connection_is_retried() {
    each_kind_fails(Failure::Refused, |kind, e| {
        assert!(!e.is_permanent(), "{kind:?}: {e}");
    })
    .await;
}

#[tokio::test]
async fn a_rate_limit_is_retried_after_the_receivers_delay() {
    each_kind_fails(Failure::RateLimited(7), |kind, e| {
        assert_eq!(
            e.retry_delay(),
            Some(Duration::from_secs(7)),
            "{kind:?}: {e}"
        );
    })
    .await;
}

#[tokio::test]
async fn a_receiver_that_never_answers_is_retried_after_the_timeout() {
    // Each send must end by its own 1 s timeout; the receiver would hold it for a minute.
    let deadline = Duration::from_secs(20);
    tokio::time::timeout(
        deadline,
        each_kind_fails(Failure::Silent, |kind, e| {
            assert!(!e.is_permanent(), "{kind:?}: {e}");
        }),
    )
    .await
    .expect("every kind gave up on a silent receiver within its timeout");
}

#[tokio::test]
async fn no_error_shows_a_secret() {
    // Credentials travel in URLs (a bot's key, Telegram's token): a refused connection is
    // where an HTTP client would print the URL.
    let rig = Rig::start().await;
    let notice = rendered(Lang::En);
    for kind in ALL {
        let (channel, to) = rig.channel(kind, Some(Failure::Refused)).unwrap();
        let e = channel
            .send(&to, &notice, &key("conformance-3"))
            .await
            .unwrap_err();
        let mut text = format!("{e} {e:?}");
        let mut cause = std::error::Error::source(&e);
        while let Some(c) = cause {
            text.push_str(&format!(" {c}"));
            cause = c.source();
        }
        for secret in ["wecom-key", "dt-token", "fs-hook", "test-token", "xyz"] {
            assert!(!text.contains(secret), "{kind:?} shows {secret}: {text}");
        }
    }
}
